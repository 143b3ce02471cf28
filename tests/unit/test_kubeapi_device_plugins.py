"""The bench convention the device plugin doubles rely on (tests/support/kubeapi/device_plugins.py): a GPU node
names its GPUs by fake NVML scenario, and the fixture, the lab and the site bench describe the same hardware."""

from __future__ import annotations

import yaml

from tests.support import fake_nvml
from tests.support.kubeapi import device_plugins
from tests.support.kubeapi.nodes import gpu_node
from tests.support.kubeapi.pytest_fixtures import GPU_NODES
from tests.support.kubeapi.store import Store
from tests.support.lab import node_objects
from tests.support.site_bench import NODE_SCENARIOS

# The real AWS plugin's container (awslabs/aws-virtual-gpu-device-plugin manifests/device-plugin.yml).
AWS_PLUGIN = {
    "name": "aws-virtual-gpu-device-plugin-ctr",
    "image": "amazon/aws-virtual-gpu-device-plugin:v0.1.1",
    "args": ["/usr/bin/vgpu-device-plugin", "--vgpu=10"],
}


def _scenarios(nodes: list[dict]) -> dict[str, tuple[str, str]]:
    """Node name -> (its scenario, its nvidia.com/gpu capacity) for the GPU Node objects of ``nodes``."""
    return {
        node["metadata"]["name"]: (
            node["metadata"]["annotations"][device_plugins.SCENARIO_ANNOTATION],
            node["status"]["capacity"]["nvidia.com/gpu"],
        )
        for node in nodes
        if node.get("kind") == "Node" and "nvidia.com/gpu" in node["status"]["capacity"]
    }


def test_fixture_and_lab_nodes_name_the_scenario_whose_gpus_they_advertise():
    [fixture] = [doc for doc in yaml.safe_load_all(GPU_NODES.read_text()) if doc]
    for nodes in (fixture["items"], node_objects("containerd://1.7.24")):
        named = _scenarios(nodes)
        assert {name: scenario for name, (scenario, _capacity) in named.items()} == NODE_SCENARIOS
        for scenario, capacity in named.values():
            assert int(capacity) == len(fake_nvml.load(scenario)["devices"]), scenario


def test_a_node_without_a_scenario_is_left_as_its_test_wrote_it():
    store = Store(ready_controller=True)
    store.reset()
    nodes = store.catalogue.find_kind("", "v1", "Node")
    pods = store.catalogue.find_kind("", "v1", "Pod")
    store.create(nodes, None, gpu_node("by-hand", gpus=2), manager="t")
    store.create(nodes, None, gpu_node("annotated", gpus=2, scenario="v100x2"), manager="t")
    for node in ("by-hand", "annotated"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"aws-{node}", "namespace": "kube-system"}}
        pod["spec"] = {"nodeName": node, "containers": [AWS_PLUGIN]}
        store.create(pods, "kube-system", pod, manager="t")
        assert store.get(pods, "kube-system", f"aws-{node}")["status"]["phase"] == "Running"
    assert "k8s.amazonaws.com/vgpu" not in store.get(nodes, None, "by-hand")["status"]["allocatable"]
    assert store.get(nodes, None, "annotated")["status"]["allocatable"]["k8s.amazonaws.com/vgpu"] == "20"
