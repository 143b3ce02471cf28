"""The kubelet double with the device plugin doubles (tests/support/kubeapi/device_plugins.py), judged by the real
charts and the real kubectl.

Each test renders the REAL chart (../shared/upstream, ``helm template``) or takes the real AWS manifest, creates its
ConfigMaps and one plugin Pod per node as the DaemonSet controller creates them (the pod template, pinned to the node
by a ``matchFields`` node affinity: kubernetes pkg/controller/daemon/util ``ReplaceDaemonSetPodNodeNameNodeAffinity``)
and reads the Node back with kubectl. The expected amounts come from the plugins' documentation and source, for the
fixture nodes' GPUs (tests/support/fake_nvml: gpu-node-1 2x V100 16 GiB, gpu-node-2 1x T4, gpu-node-3 8x H100):

- NVIDIA/k8s-device-plugin README, "Shared Access to GPUs with CUDA Time-Slicing": ``replicas: 10`` on a node with
  8 GPUs advertises 80 ``nvidia.com/gpu``; with ``renameByDefault: true`` 80 ``nvidia.com/gpu.shared`` instead;
  cmd/config-manager/main.go picks the config named by the node label ``nvidia.com/device-plugin.config``, else
  the one named ``default``.
- HAMi README / chart values: ``deviceSplitCount`` tasks per GPU; the plugin advertises GPUs x deviceSplitCount
  ``nvidia.com/gpu`` and writes the GPUs (memory, cores) in ``hami.io/node-nvidia-register``
  (pkg/device-plugin/nvidiadevice/nvinternal/plugin/register.go); gpumem and gpucores are no node resources.
- awslabs/aws-virtual-gpu-device-plugin main.go: ``--vgpu`` virtual GPUs per physical GPU as
  ``k8s.amazonaws.com/vgpu``; more than 48 is refused.
- kubernetes pkg/kubelet/cm/devicemanager/manager.go: a plugin that goes away leaves its resource's capacity and
  sets its allocatable to 0 (``markResourceUnhealthy``).
"""

from __future__ import annotations

import copy
import json
import typing as t

import pytest
import yaml

from tests.support import fake_nvml
from tests.support.kubeapi import device_plugins
from tests.support.kubeapi.nodes import gpu_node
from tests.support.upstream import chart, helm_template, named, require

KUBE_VERSION = "v1.35.0"
NAMESPACE = "kube-system"


@pytest.fixture(autouse=True)
def _ready_controller(kubeapi):
    kubeapi.admin.set_ready_controller(True)


def render(filename: str, values: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    return helm_template(chart(filename), values, release="gpu", namespace=NAMESPACE, kube_version=KUBE_VERSION)


def create(kubectl, *objects: dict[str, t.Any]) -> None:
    kubectl("create", "-f", "-", input=yaml.safe_dump_all(objects))


def daemon_pod(daemonset: dict[str, t.Any], node: str) -> dict[str, t.Any]:
    """The Pod the DaemonSet controller creates for ``node``: the template, its required node affinity replaced by
    one ``matchFields`` term on the node's name."""
    template = copy.deepcopy(daemonset["spec"]["template"])
    spec = template["spec"]
    spec.setdefault("affinity", {})["nodeAffinity"] = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
        }
    }
    metadata = {"name": f"{daemonset['metadata']['name']}-{node}", "namespace": NAMESPACE}
    metadata["labels"] = template.get("metadata", {}).get("labels", {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def node_json(kubectl, name: str) -> dict[str, t.Any]:
    return kubectl("get", "node", name, "-o", "json", json_output=True)


def allocatable(kubectl, node: str, resource: str) -> str:
    escaped = resource.replace(".", "\\.")
    return kubectl("get", "node", node, "-o", f"jsonpath={{.status.allocatable.{escaped}}}").stdout


def pod_ready(kubectl, name: str) -> str:
    jsonpath = '{.status.phase}/{.status.conditions[?(@.type=="Ready")].status}'
    return kubectl("get", "pod", "-n", NAMESPACE, name, "-o", f"jsonpath={jsonpath}").stdout


def time_slicing(replicas: int, *, rename: bool = False) -> str:
    config: dict[str, t.Any] = {
        "version": "v1",
        "sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": replicas}]}},
    }
    if rename:
        config["sharing"]["timeSlicing"]["renameByDefault"] = True
    return yaml.safe_dump(config)


def nvidia_plugin(kubectl, config_map: dict[str, str], nodes: t.Sequence[str]) -> None:
    docs = render("nvidia-device-plugin-0.20.0.tgz", {"config": {"map": config_map}})
    create(kubectl, *named(docs, "ConfigMap"))
    [daemonset] = named(docs, "DaemonSet", "gpu-nvidia-device-plugin")
    create(kubectl, *(daemon_pod(daemonset, node) for node in nodes))


def test_time_slicing_replicas_multiply_the_gpus_of_each_node_by_its_chosen_config(kubectl):
    kubectl("label", "node", "gpu-node-3", "nvidia.com/device-plugin.config=two")
    nvidia_plugin(kubectl, {"default": time_slicing(4), "two": time_slicing(2)}, ["gpu-node-1", "gpu-node-3"])

    assert pod_ready(kubectl, "gpu-nvidia-device-plugin-gpu-node-1") == "Running/True"
    # the config named "default" (no label): 2 GPUs x 4 replicas; the labelled node's "two": 8 GPUs x 2
    assert allocatable(kubectl, "gpu-node-1", "nvidia.com/gpu") == "8"
    assert node_json(kubectl, "gpu-node-1")["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert allocatable(kubectl, "gpu-node-3", "nvidia.com/gpu") == "16"
    assert allocatable(kubectl, "gpu-node-2", "nvidia.com/gpu") == "1"  # no plugin pod there: as the fixture says


def test_rename_by_default_advertises_gpu_shared_and_the_plain_gpu_is_no_longer_allocatable(kubectl):
    nvidia_plugin(kubectl, {"default": time_slicing(4, rename=True)}, ["gpu-node-1"])

    status = node_json(kubectl, "gpu-node-1")["status"]
    assert status["allocatable"]["nvidia.com/gpu.shared"] == "8"
    # nvidia.com/gpu is no longer registered by a running plugin: the kubelet keeps its capacity, allocatable 0
    assert (status["capacity"]["nvidia.com/gpu"], status["allocatable"]["nvidia.com/gpu"]) == ("2", "0")


def test_a_config_label_naming_no_config_fails_the_plugin_and_changes_no_resource(kubectl):
    kubectl("label", "node", "gpu-node-1", "nvidia.com/device-plugin.config=missing")
    nvidia_plugin(kubectl, {"default": time_slicing(4)}, ["gpu-node-1"])

    assert pod_ready(kubectl, "gpu-nvidia-device-plugin-gpu-node-1") == "Running/False"
    pod = kubectl("get", "pod", "-n", NAMESPACE, "gpu-nvidia-device-plugin-gpu-node-1", "-o", "json", json_output=True)
    waiting = [
        s["state"].get("waiting", {}) for s in pod["status"]["containerStatuses"] if s["name"] == "nvidia-device-plugin-ctr"
    ]
    assert waiting[0]["reason"] == "CrashLoopBackOff"
    assert "specified config missing does not exist" in waiting[0]["message"]
    status = node_json(kubectl, "gpu-node-1")["status"]
    assert (status["capacity"]["nvidia.com/gpu"], status["allocatable"]["nvidia.com/gpu"]) == ("2", "0")


def test_mps_sharing_waits_for_the_mps_control_daemon_on_the_node(kubectl):
    mps = yaml.safe_dump({"version": "v1", "sharing": {"mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 3}]}}})
    nvidia_plugin(kubectl, {"default": mps}, ["gpu-node-1"])
    assert pod_ready(kubectl, "gpu-nvidia-device-plugin-gpu-node-1") == "Running/False"

    docs = render("nvidia-device-plugin-0.20.0.tgz", {"config": {"map": {"default": mps}}})
    [daemon] = named(docs, "DaemonSet", "gpu-nvidia-device-plugin-mps-control-daemon")
    kubectl("label", "node", "gpu-node-1", "nvidia.com/mps.capable=true")  # the daemon's nodeSelector (GFD's label)
    create(kubectl, daemon_pod(daemon, "gpu-node-1"))

    assert pod_ready(kubectl, "gpu-nvidia-device-plugin-gpu-node-1") == "Running/True"
    assert allocatable(kubectl, "gpu-node-1", "nvidia.com/gpu") == "6"


def test_hami_advertises_gpus_times_split_count_and_registers_memory_and_cores_in_its_annotation(kubectl):
    docs = render("hami-2.10.0.tgz", {"devicePlugin": {"deviceSplitCount": 10, "deviceMemoryScaling": 2}})
    create(kubectl, *named(docs, "ConfigMap"))
    [daemonset] = named(docs, "DaemonSet", "gpu-hami-device-plugin")
    # the chart's nodeSelector gpu: "on": without the label the pod stays Pending and changes nothing
    create(kubectl, daemon_pod(daemonset, "gpu-node-2"))
    assert pod_ready(kubectl, "gpu-hami-device-plugin-gpu-node-2") == "Pending/"
    assert allocatable(kubectl, "gpu-node-2", "nvidia.com/gpu") == "1"
    kubectl("label", "node", "gpu-node-1", "gpu=on")
    create(kubectl, daemon_pod(daemonset, "gpu-node-1"))

    node = node_json(kubectl, "gpu-node-1")
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "20"
    assert not {"nvidia.com/gpumem", "nvidia.com/gpucores"} & set(node["status"]["allocatable"])
    registered = json.loads(node["metadata"]["annotations"]["hami.io/node-nvidia-register"])
    gpus = fake_nvml.load("v100x2")["devices"]
    assert [(d["id"], d.get("index", 0), d["count"]) for d in registered] == [(g["uuid"], i, 10) for i, g in enumerate(gpus)]
    assert {(d["devmem"], d["devcore"], d["type"], d["health"]) for d in registered} == {
        (2 * 16384, 100, "NVIDIA-Tesla V100-SXM2-16GB", True)
    }
    assert "hami.io/node-nvidia-register" not in (node_json(kubectl, "gpu-node-2")["metadata"].get("annotations") or {})


def test_aws_plugin_advertises_gpus_times_vgpu_and_its_removal_leaves_capacity_but_no_allocatable(kubectl):
    manifest = require("manifests", "aws-virtual-gpu-device-plugin.yml")
    [daemonset] = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    assert "--vgpu=10" in daemonset["spec"]["template"]["spec"]["containers"][0]["args"]
    kubectl("label", "node", "gpu-node-1", "k8s.amazonaws.com/accelerator=vgpu")
    create(kubectl, daemon_pod(daemonset, "gpu-node-1"))

    assert allocatable(kubectl, "gpu-node-1", "k8s.amazonaws.com/vgpu") == "20"
    kubectl("delete", "pod", "-n", NAMESPACE, "aws-virtual-gpu-device-plugin-daemonset-gpu-node-1", "--wait=true")
    status = node_json(kubectl, "gpu-node-1")["status"]
    assert (status["capacity"]["k8s.amazonaws.com/vgpu"], status["allocatable"]["k8s.amazonaws.com/vgpu"]) == ("20", "0")


def _advertised(docs: list[dict[str, t.Any]], daemonset: str, node: dict[str, t.Any]) -> list[device_plugins.Advertisement]:
    config_maps = {(NAMESPACE, doc["metadata"]["name"]): doc for doc in named(docs, "ConfigMap")}
    [workload] = named(docs, "DaemonSet", daemonset)
    pod = daemon_pod(workload, node["metadata"]["name"])
    pod["spec"]["nodeName"] = node["metadata"]["name"]
    return device_plugins.advertisements(pod, node, lambda ns, name: config_maps.get((ns, name)), [])


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (time_slicing(1), "number of replicas must be >= 2"),  # api/config/v1/replicas.go
        (yaml.safe_dump({"version": "v2"}), "unknown version: v2"),  # api/config/v1/config.go parseConfigFrom
        (yaml.safe_dump({"version": "v1", "sharing": {"timeSlicing": {}}}), "no resources specified"),
    ],
    ids=["one-replica", "unknown-version", "no-resources"],
)
def test_an_nvidia_config_the_plugin_refuses_registers_nothing(config, reason):
    docs = render("nvidia-device-plugin-0.20.0.tgz", {"config": {"map": {"default": config}}})
    [advertised] = _advertised(docs, "gpu-nvidia-device-plugin", gpu_node("n", gpus=2, scenario="v100x2"))
    assert reason in advertised.error
    assert advertised.resources == {}


def _mig_node(tmp_path, gpus: list[tuple[int, list[str]]]) -> dict[str, t.Any]:
    """A node of A100 80GB GPUs (fake NVML scenario file of its own): per GPU its MIG mode and its MIG devices' profiles,
    named as NVML names them (``NVIDIA A100-SXM4-80GB MIG 1g.10gb``)."""
    base = fake_nvml.load("a100_mig")
    template = base["devices"][0]
    devices = []
    for index, (current, profiles) in enumerate(gpus):
        migs = [
            {**template["mig"]["devices"][0], "name": f"NVIDIA A100-SXM4-80GB MIG {profile}", "gpu_instance_id": slot + 1}
            for slot, profile in enumerate(profiles)
        ]
        devices.append(
            {
                **template,
                "uuid": f"GPU-{index}",
                "mig": {**template["mig"], "current": current, "pending": current, "devices": migs},
            }
        )
    path = tmp_path / "mig-node.json"
    path.write_text(json.dumps({**base, "devices": devices}))
    return gpu_node("n", gpus=len(gpus), scenario=str(path))


# NVIDIA's "MIG Support in Kubernetes" (docs.nvidia.com/datacenter/cloud-native/kubernetes/latest/index.html): with the
# mixed strategy each MIG device is a resource nvidia.com/mig-<slice count>g.<memory size>gb, with single every MIG
# device is an nvidia.com/gpu and the node's GPUs must all have MIG on with one profile; k8s-device-plugin v0.20.0
# internal/rm/rm.go ("+" in a profile becomes "."), internal/rm/device_map.go (the refusals' wording).
@pytest.mark.parametrize(
    ("strategy", "gpus", "resources", "error"),
    [
        (
            "mixed",
            [(1, ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]), (0, [])],
            {"nvidia.com/gpu": 1, "nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-2g.20gb": 1, "nvidia.com/mig-1g.10gb": 2},
            "",
        ),
        ("mixed", [(1, ["1g.10gb+me"])], {"nvidia.com/mig-1g.10gb.me": 1}, ""),
        ("mixed", [(1, ["1c.3g.40gb"])], {}, "MIG profile '1c.3g.40gb' does not match any resource patterns"),
        ("single", [(1, ["1g.10gb"] * 7), (1, ["1g.10gb"] * 7)], {"nvidia.com/gpu": 14}, ""),
        ("single", [(1, ["1g.10gb", "3g.40gb"])], {}, "more than one MIG device type present on node"),
        ("single", [(1, ["1g.10gb"]), (0, [])], {}, "all devices on the node must be configured with the same migEnabled value"),
        ("single", [(1, ["1g.10gb"]), (1, [])], {}, "device 1 has no MIG devices configured"),
        ("none", [(1, ["1g.10gb"] * 7), (0, [])], {"nvidia.com/gpu": 2}, ""),
    ],
    ids=[
        "mixed",
        "mixed-media-extensions",
        "mixed-partial-compute",
        "single",
        "single-two-profiles",
        "single-mig-on-and-off",
        "single-empty",
        "none",
    ],
)
def test_the_nvidia_plugin_advertises_mig_devices_as_its_mig_strategy_says(tmp_path, strategy, gpus, resources, error):
    docs = render("nvidia-device-plugin-0.20.0.tgz", {"migStrategy": strategy})
    [advertised] = _advertised(docs, "gpu-nvidia-device-plugin", _mig_node(tmp_path, gpus))
    assert (advertised.resources, error in advertised.error, bool(advertised.error)) == (resources, True, bool(error))


def test_aws_plugin_refuses_more_vgpus_than_mps_clients_and_nvidia_plugin_waits_without_nvml():
    manifest = require("manifests", "aws-virtual-gpu-device-plugin.yml")
    [daemonset] = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    daemonset["spec"]["template"]["spec"]["containers"][0]["args"][1] = "--vgpu=49"
    [refused] = _advertised([daemonset], daemonset["metadata"]["name"], gpu_node("n", gpus=2, scenario="v100x2"))
    assert refused.error == "Number of virtual GPUs can not exceed maximum number of MPS clients"

    docs = render("nvidia-device-plugin-0.20.0.tgz", {"failOnInitError": False})
    [waiting] = _advertised(docs, "gpu-nvidia-device-plugin", gpu_node("n", gpus=2, scenario="driver_not_loaded"))
    assert (waiting.error, waiting.resources) == ("", {})  # FAIL_ON_INIT_ERROR=false: runs, registers nothing
    docs = render("nvidia-device-plugin-0.20.0.tgz", {})
    [failed] = _advertised(docs, "gpu-nvidia-device-plugin", gpu_node("n", gpus=2, scenario="driver_not_loaded"))
    assert "failed to initialize NVML" in failed.error
