"""The aws_vgpu_plugin role's DaemonSet judged by the real upstream manifest (``../shared/upstream/manifests``,
awslabs/aws-virtual-gpu-device-plugin), by kube-scheduler's placement predicates against the nodes as the real
gpu_labels role leaves them, and by the Kubernetes schemas (tests/support/upstream.py). The DaemonSet is what the
role's own task sends: the role runs in check mode with diff against the test API server (a dry-run apply), so no
copy of its template is made here."""

from __future__ import annotations

import typing as t

import pytest
import yaml

from tests.support.role_runs import GpuHost, run_role
from tests.support.upstream import KUBE_VERSIONS, images, nodes_after_gpu_labels, placement_problem, require, schema_errors

pytestmark = pytest.mark.slow

AWS = {"kubegpu_default_runtime": "nvidia", "kubegpu_device_plugin": "aws_vgpu_plugin"}
HOSTS = {
    "node1": GpuHost("v100x2", "gpu-node-1", AWS),
    "node2": GpuHost("t4", "gpu-node-2", {"kubegpu_default_runtime": "nvidia"}),  # the cluster default: HAMi
    "node3": GpuHost("h100x8", "gpu-node-3", AWS),
}
# a taint other than the default, so the toleration is seen to follow kubegpu_gpu_taint
VARIABLES = {
    "kubegpu_gpu_taint": {"key": "example.com/gpu", "value": "true", "effect": "NoExecute"},
    "kubegpu_gpu_taint_enabled": True,
}
MIRROR = "registry.mirror.example.com"
MIRRORED = {
    "aws_vgpu_plugin_image": f"{MIRROR}/amazon/aws-virtual-gpu-device-plugin:v0.1.1",
    "aws_vgpu_plugin_mps_image": f"{MIRROR}/nvidia/mps",
    "aws_vgpu_plugin_init_image": f"{MIRROR}/nvidia/cuda:12.4.1-base-ubuntu22.04",
}


@pytest.fixture(scope="module")
def rendered(kubeapi_server) -> tuple[dict[str, t.Any], dict[str, t.Any], dict[str, dict[str, t.Any]]]:
    """(the upstream DaemonSet, the role's DaemonSet with mirrored images, the nodes after gpu_labels): two role
    runs for the module's tests, on the session's server reset as the ``kubeapi`` fixture resets it."""
    kubeapi = kubeapi_server
    kubeapi.admin.reset()
    upstream = yaml.safe_load(require("manifests", "aws-virtual-gpu-device-plugin.yml").read_text())
    nodes = nodes_after_gpu_labels(kubeapi, HOSTS, VARIABLES)
    run = run_role(kubeapi, "aws_vgpu_plugin", hosts=HOSTS, variables={**VARIABLES, **MIRRORED}, check=True, diff=True)
    assert run.rc == 0, run.explain()
    (entry,) = run.task("Apply the DaemonSet").result["objects"]
    assert entry["action"] == "created" and entry["object"]["kind"] == "DaemonSet", entry
    return upstream, entry["object"], nodes


def _by_volume(spec: dict[str, t.Any], host_path: str) -> list[tuple[str, str]]:
    """(container, mount path) of every container that mounts the volume of ``host_path``."""
    (volume,) = [volume["name"] for volume in spec["volumes"] if volume.get("hostPath", {}).get("path") == host_path]
    return [
        (container["name"], mount["mountPath"])
        for container in spec.get("initContainers", []) + spec["containers"]
        for mount in container.get("volumeMounts", [])
        if mount["name"] == volume
    ]


def test_the_roles_daemonset_keeps_what_the_upstream_manifest_needs(rendered):
    upstream, ours = rendered[0], rendered[1]
    theirs, mine = upstream["spec"]["template"]["spec"], ours["spec"]["template"]["spec"]
    assert mine["hostIPC"] is theirs["hostIPC"] is True
    assert mine.get("priorityClassName") == theirs["priorityClassName"]
    # the MPS server: its container mounts the host's /tmp/nvidia-mps where upstream's does, with the same env
    (their_mps,) = _by_volume(theirs, "/tmp/nvidia-mps")
    (my_mps,) = _by_volume(mine, "/tmp/nvidia-mps")
    assert my_mps[1] == their_mps[1]
    env_names = {c["name"]: {e["name"] for e in c.get("env", [])} for c in mine["containers"]}
    their_env = {c["name"]: {e["name"] for e in c.get("env", [])} for c in theirs["containers"]}
    assert env_names[my_mps[0]] == their_env[their_mps[0]] == {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"}
    # the kubelet's device plugin socket directory
    assert [mount[1] for mount in _by_volume(mine, "/var/lib/kubelet/device-plugins")] == [
        mount[1] for mount in _by_volume(theirs, "/var/lib/kubelet/device-plugins")
    ]
    # the EXCLUSIVE_PROCESS init step, with the capability it needs
    (their_init,), (my_init,) = theirs["initContainers"], mine["initContainers"]
    assert my_init["command"] == their_init["command"]
    assert my_init["securityContext"] == their_init["securityContext"]
    # the plugin binary and its flags (the --vgpu count is the role's setting)
    (their_plugin,) = [c for c in theirs["containers"] if c.get("args", [])[0:1] == ["/usr/bin/vgpu-device-plugin"]]
    (my_plugin,) = [c for c in mine["containers"] if c.get("args", [])[0:1] == ["/usr/bin/vgpu-device-plugin"]]
    assert [arg.split("=")[0] for arg in my_plugin["args"]] == [arg.split("=")[0] for arg in their_plugin["args"]]
    assert my_plugin["securityContext"] == their_plugin["securityContext"]
    # upstream's selection and tolerations are kept (the role adds its own beside them)
    assert theirs["nodeSelector"].items() <= mine["nodeSelector"].items()
    for toleration in theirs["tolerations"]:
        assert toleration in mine["tolerations"], toleration
    assert ours["spec"]["selector"]["matchLabels"].items() <= ours["spec"]["template"]["metadata"]["labels"].items()


def test_it_lands_on_the_aws_nodes_only_as_gpu_labels_leaves_them(rendered):
    ours, nodes = rendered[1], rendered[2]
    pod = ours["spec"]["template"]
    assert any(taint["key"] == "example.com/gpu" for taint in nodes["gpu-node-1"]["spec"].get("taints", []))
    for name in ("gpu-node-1", "gpu-node-3"):
        assert placement_problem(pod, nodes[name]) is None, (name, placement_problem(pod, nodes[name]))
    assert placement_problem(pod, nodes["gpu-node-2"]) is not None, "the HAMi node is selected too"


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_is_valid_for_the_kubernetes_version(rendered, kube_version):
    ours = rendered[1]
    assert schema_errors([ours], kube_version) == []


def test_with_a_mirror_every_image_comes_from_it(rendered):
    ours = rendered[1]
    found = images([ours])
    assert len(found) == 3 and all(image.startswith(f"{MIRROR}/") for _where, image in found), found
