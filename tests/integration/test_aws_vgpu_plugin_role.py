"""Roles kubegpu.core.gpu_labels then kubegpu.core.aws_vgpu_plugin (as cluster.yml runs them) through
ansible-playbook against the test API server, with facts gathered by the real gpu_facts from the fake NVML
scenarios (tests/support/role_runs.py says what is simulated). The DaemonSet and the labels are read back from the
server's stored objects."""

from __future__ import annotations

import pytest

from tests.support.kube_modules import get_object, node_labels, writes
from tests.support.role_runs import GpuHost, run_role

pytestmark = pytest.mark.slow

AWS = {"kubegpu_default_runtime": "nvidia", "kubegpu_device_plugin": "aws_vgpu_plugin"}
# the labels the nodes of the fixture carry before any role runs
FIXTURE_LABELS = ("kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch")
FIXTURE_LABELS += tuple(f"beta.{key}" for key in FIXTURE_LABELS[1:])
DAEMONSET = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-virtual-gpu-device-plugin"
ROLES = ["gpu_labels", "aws_vgpu_plugin"]


def _run(kubeapi, hosts, variables=None, **kwargs):
    return run_role(kubeapi, ROLES, hosts=hosts, variables=variables, **kwargs)


def test_labels_taint_and_daemonset_on_the_aws_nodes_check_mode_real_run_no_change_then_absent(kubeapi):
    hosts = {
        "node1": GpuHost("v100x2", "gpu-node-1", AWS),
        "node2": GpuHost("t4", "gpu-node-2", {"kubegpu_default_runtime": "nvidia"}),  # the cluster default: HAMi
        "node3": GpuHost("h100x8", "gpu-node-3", AWS),
    }
    extra = {
        "aws_vgpu_plugin_vgpus_per_gpu": 4,
        "aws_vgpu_plugin_image": "mirror.example.com/aws/aws-virtual-gpu-device-plugin:v0.1.1",
        "kubegpu_gpu_taint": {"key": "gpu", "value": "", "effect": "NoSchedule"},
        "kubegpu_openfaas_enabled": True,  # OpenFaaS Standard profiles: the GPU nodes are tainted by default
        "gpu_labels_extra_labels": {"team.example.com/pool": "gpu"},
    }
    check = _run(kubeapi, hosts, extra, check=True, diff=True)
    assert check.rc == 0, check.stdout
    assert check.task("Label the GPU nodes").changed and check.task("Taint the GPU nodes").changed
    assert check.task("Apply the DaemonSet").changed
    assert all(entry["query"].get("dryRun") == "All" for entry in writes(kubeapi))  # check mode stores nothing
    assert get_object(kubeapi, DAEMONSET) is None and "gpu" not in node_labels(kubeapi, "gpu-node-1")

    real = _run(kubeapi, hosts, extra, diff=True)
    assert real.rc == 0, real.stdout
    assert real.task("Label the GPU nodes").result["diff"] == check.task("Label the GPU nodes").result["diff"]
    v100 = {key: value for key, value in node_labels(kubeapi, "gpu-node-1").items() if key not in FIXTURE_LABELS}
    assert v100 == {
        "nvidia.com/gpu.present": "true",
        "gpu": "on",
        "accelerator": "nvidia-tesla-v100",
        "nvidia.com/gpu.product": "Tesla-V100-SXM2-16GB",
        "nvidia.com/gpu.count": "2",
        "nvidia.com/gpu.memory": "16384",
        "nvidia.com/gpu.family": "volta",
        "nvidia.com/gpu.compute.major": "7",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/cuda.driver-version.major": "535",
        "nvidia.com/cuda.driver-version.minor": "161",
        "nvidia.com/cuda.driver-version.revision": "08",
        "nvidia.com/cuda.driver-version.full": "535.161.08",
        "nvidia.com/cuda.runtime-version.major": "12",
        "nvidia.com/cuda.runtime-version.minor": "2",
        "nvidia.com/cuda.runtime-version.full": "12.2",
        "nvidia.com/mig.capable": "false",
        "kubegpu.io/device-stack": "aws_vgpu_plugin",
        "k8s.amazonaws.com/accelerator": "vgpu",
        "team.example.com/pool": "gpu",
    }
    h100 = node_labels(kubeapi, "gpu-node-3")
    assert (h100["accelerator"], h100["nvidia.com/gpu.count"], h100["gpu"]) == ("nvidia-h100-80gb", "8", "on")
    assert not any(key.startswith(("nvidia.com/cuda.driver.", "nvidia.com/cuda.runtime.")) for key in h100)
    for node in ("gpu-node-1", "gpu-node-2", "gpu-node-3"):
        taints = get_object(kubeapi, f"/api/v1/nodes/{node}")["spec"]["taints"]
        assert [(taint["key"], taint.get("value", ""), taint["effect"]) for taint in taints] == [("gpu", "", "NoSchedule")]
    spec = get_object(kubeapi, DAEMONSET)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"k8s.amazonaws.com/accelerator": "vgpu", "kubegpu.io/device-stack": "aws_vgpu_plugin"}
    assert spec["hostIPC"] is True
    tolerations = {(item["key"], item.get("effect")) for item in spec["tolerations"]}
    assert {("k8s.amazonaws.com/vgpu", "NoSchedule"), ("gpu", "NoSchedule")} <= tolerations
    init = spec["initContainers"][0]
    assert init["command"] == ["nvidia-smi", "-c", "EXCLUSIVE_PROCESS"]
    assert init["securityContext"]["capabilities"]["add"] == ["SYS_ADMIN"]
    plugin, mps = spec["containers"]
    assert plugin["image"] == extra["aws_vgpu_plugin_image"] and "--vgpu=4" in plugin["args"]
    assert mps["env"] == [{"name": "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "value": "25"}]
    assert {"name": "nvidia-mps", "mountPath": "/tmp/nvidia-mps"} in mps["volumeMounts"]
    # the labels the DaemonSet selects on are on the AWS nodes only; the T4 stays with the vGPU scheduler
    for node in ("gpu-node-1", "gpu-node-3"):
        labels = node_labels(kubeapi, node)
        assert (labels["k8s.amazonaws.com/accelerator"], labels["kubegpu.io/device-stack"]) == ("vgpu", "aws_vgpu_plugin")
    t4 = node_labels(kubeapi, "gpu-node-2")
    assert "k8s.amazonaws.com/accelerator" not in t4 and t4["kubegpu.io/device-stack"] == "vgpu_scheduler"
    assert t4["accelerator"] == "nvidia-tesla-t4"

    version = get_object(kubeapi, DAEMONSET)["metadata"]["resourceVersion"]
    kubeapi.admin.reset_counters()
    again = _run(kubeapi, hosts, extra)
    assert again.rc == 0 and again.changed == [], again.changed
    assert [entry["action"] for entry in again.task("Apply the DaemonSet").result["objects"]] == ["unchanged"]
    assert get_object(kubeapi, DAEMONSET)["metadata"]["resourceVersion"] == version
    # server-side apply sends the same object again; nodes are not written
    assert [entry["path"] for entry in writes(kubeapi)] == [DAEMONSET]

    gone = _run(kubeapi, hosts, {**extra, "aws_vgpu_plugin_state": "absent"})
    assert gone.rc == 0 and gone.changed == ["Delete the DaemonSet"], gone.changed
    assert get_object(kubeapi, DAEMONSET) is None


def test_aws_plugin_on_a_pascal_gpu_is_refused_naming_the_node_before_any_change(kubeapi):
    hosts = {
        "node1": GpuHost("gtx1080ti", "gpu-node-1", AWS),
        "node2": GpuHost("t4", "gpu-node-2", AWS),
    }
    run = _run(kubeapi, hosts)
    assert run.rc != 0
    message = run.failed[0]["result"]["msg"]
    assert "compute capability 7.0" in message and "node gpu-node-1 (host node1)" in message, message
    assert "NVIDIA GeForce GTX 1080 Ti: compute capability 6.1" in message and "gpu-node-2" not in message, message
    assert writes(kubeapi) == [] and get_object(kubeapi, DAEMONSET) is None
