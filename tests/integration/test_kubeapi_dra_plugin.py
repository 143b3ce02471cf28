"""The kubelet-plugin double of the NVIDIA DRA driver (tests/support/kubeapi/dra_plugin.py), driven by the real chart.

The DaemonSet ``dra-driver-nvidia-gpu-kubelet-plugin`` and the DeviceClass ``gpu.nvidia.com`` are the real chart's
(../shared/upstream/charts/dra-driver-nvidia-gpu-0.4.1.tgz, rendered by real helm); the DaemonSet controller double
places its pods. Expected slices, from kubernetes-sigs/dra-driver-nvidia-gpu v0.4.1 (cmd/gpu-kubelet-plugin
deviceinfo.go ``GpuInfo.GetDevice``/``Attributes``, nvlib.go ``getGpuInfo``, partitions.go ``fullGpuCapacity``; the
vendored go-nvlib, Masterminds/semver and k8s.io/dynamic-resource-allocation resourceslice controller) applied by hand
to the fixture nodes' fake NVML scenarios (gpu-node-1 v100x2, gpu-node-2 t4, gpu-node-3 h100x8; driver 535.161.08,
CUDA 12020): one slice per GPU node, ``generateName`` ``00000-gpu.nvidia.com-<node>-``, owned by its Node, pool
``<node>`` generation 1 of 1 slice; devices ``gpu-<minor>``; V100 brand 2 = ``Tesla``, architecture 5 = ``Volta``,
H100 brand 14 = ``Nvidia``, architecture 9 = ``Hopper``; versions ``7.0.0``, ``535.161.8`` (semver drops the leading
zero), ``12.2.0``; memory 16384 MiB = ``16Gi``, 81559 MiB = ``81559Mi`` (BinarySI); NVML bus id
``00000000:18:00.0`` published as ``0000:18:00.0``.
"""

from __future__ import annotations

import typing as t

import pytest
import requests

from tests.support import fake_nvml, upstream
from tests.support.kubeapi import dra_plugin, nodes

NAMESPACE = "nvidia-dra-driver-gpu"
DAEMONSET = "dra-driver-nvidia-gpu-kubelet-plugin"
SLICES = "/apis/resource.k8s.io/v1/resourceslices"


@pytest.fixture(scope="module")
def chart_docs() -> list[dict[str, t.Any]]:
    return upstream.helm_template(
        upstream.chart("dra-driver-nvidia-gpu-0.4.1.tgz"),
        {"gpuResourcesEnabledOverride": True},
        release="dra",
        namespace=NAMESPACE,
        kube_version="v1.35.0",
    )


def post(url: str, path: str, obj: dict) -> dict:
    answer = requests.post(url + path, json=obj, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()


def get(url: str, path: str, **params: str) -> dict:
    answer = requests.get(url + path, params=params, timeout=30)
    answer.raise_for_status()
    return answer.json()


@pytest.fixture
def bench(kubeapi, chart_docs):
    """The fixture GPU nodes, a CPU node, a GPU node whose driver is not loaded, and the chart's DeviceClass and
    kubelet plugin DaemonSet (its pods placed and started by the ready controller)."""
    kubeapi.admin.set_ready_controller(True)
    url = kubeapi.url
    post(url, "/api/v1/nodes", nodes.gpu_node("cpu-node-1", gpus=0))
    broken = nodes.gpu_node("gpu-node-4", gpus=1, scenario="driver_not_loaded")
    post(url, "/api/v1/nodes", broken)
    post(url, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    (device_class,) = upstream.named(chart_docs, "DeviceClass", "gpu.nvidia.com")
    post(url, "/apis/resource.k8s.io/v1/deviceclasses", device_class)
    (daemonset,) = upstream.named(chart_docs, "DaemonSet", DAEMONSET)
    post(url, f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets", daemonset)
    return kubeapi


def slices_by_node(url: str) -> dict[str, dict]:
    items = get(url, SLICES)["items"]
    found: dict[str, dict] = {}
    for item in items:
        assert item["spec"]["nodeName"] not in found, "one slice per node"
        found[item["spec"]["nodeName"]] = item
    return found


def test_the_chart_plugin_publishes_one_slice_per_gpu_node_as_the_driver_does(bench, kubectl):
    url = bench.url
    slices = slices_by_node(url)
    assert sorted(slices) == ["gpu-node-1", "gpu-node-2", "gpu-node-3"]  # no CPU node, no node without NVML
    node_1 = get(url, "/api/v1/nodes/gpu-node-1")
    v100 = slices["gpu-node-1"]
    assert v100["metadata"]["name"].startswith("00000-gpu.nvidia.com-gpu-node-1-")
    assert v100["metadata"]["generateName"] == "00000-gpu.nvidia.com-gpu-node-1-"
    assert v100["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "gpu-node-1", "uid": node_1["metadata"]["uid"], "controller": True}
    ]
    assert v100["spec"]["driver"] == "gpu.nvidia.com"
    assert v100["spec"]["pool"] == {"name": "gpu-node-1", "generation": 1, "resourceSliceCount": 1}
    scenario = fake_nvml.load("v100x2")["devices"]
    assert v100["spec"]["devices"][0] == {
        "name": "gpu-0",
        "attributes": {
            "type": {"string": "gpu"},
            "uuid": {"string": scenario[0]["uuid"]},
            "productName": {"string": "Tesla V100-SXM2-16GB"},
            "brand": {"string": "Tesla"},
            "architecture": {"string": "Volta"},
            "cudaComputeCapability": {"version": "7.0.0"},
            "driverVersion": {"version": "535.161.8"},
            "cudaDriverVersion": {"version": "12.2.0"},
            "resource.kubernetes.io/pciBusID": {"string": "0000:18:00.0"},
        },
        "capacity": {"memory": {"value": "16Gi"}},
    }
    assert [d["attributes"]["uuid"]["string"] for d in v100["spec"]["devices"]] == [g["uuid"] for g in scenario]
    h100 = slices["gpu-node-3"]["spec"]["devices"]
    assert [d["name"] for d in h100] == [f"gpu-{i}" for i in range(8)]
    assert {(d["attributes"]["brand"]["string"], d["attributes"]["architecture"]["string"]) for d in h100} == {
        ("Nvidia", "Hopper")
    }
    assert {d["capacity"]["memory"]["value"] for d in h100} == {"81559Mi"}
    assert [d["attributes"]["uuid"]["string"] for d in slices["gpu-node-2"]["spec"]["devices"]] == [
        fake_nvml.load("t4")["devices"][0]["uuid"]
    ]

    # the plugin on the node without a loaded driver fails and publishes nothing; the CPU node gets no pod
    pods = get(url, f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["gpu-node-1", "gpu-node-2", "gpu-node-3", "gpu-node-4"]
    (failing,) = [p for p in pods if p["spec"]["nodeName"] == "gpu-node-4"]
    (gpus,) = [s for s in failing["status"]["containerStatuses"] if s["name"] == "gpus"]
    assert gpus["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "ERROR_DRIVER_NOT_LOADED" in gpus["state"]["waiting"]["message"]

    # real kubectl 1.35 prints them with kube-apiserver's columns
    table = [line.split() for line in kubectl("get", "resourceslices").stdout.splitlines()]
    assert table[0] == ["NAME", "NODE", "DRIVER", "POOL", "AGE"]
    assert sorted(row[1:4] for row in table[1:]) == [[f"gpu-node-{i}", "gpu.nvidia.com", f"gpu-node-{i}"] for i in (1, 2, 3)]


def test_a_claim_is_allocated_from_the_published_slice_and_the_slices_go_with_the_plugin(bench, kubectl):
    url = bench.url
    expression = "device.attributes['gpu.nvidia.com'].architecture == 'Turing'"
    request = {
        "name": "gpu",
        "exactly": {"deviceClassName": "gpu.nvidia.com", "selectors": [{"cel": {"expression": expression}}]},
    }
    template = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": "turing", "namespace": "default"},
        "spec": {"spec": {"devices": {"requests": [request]}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "smoke", "namespace": "default"},
        "spec": {
            # kept Running: the claim of a pod that finished is deleted (the resourceclaim controller)
            "restartPolicy": "Always",
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "turing"}],
            "containers": [{"name": "main", "image": "registry.invalid/cuda:1", "resources": {"claims": [{"name": "gpu"}]}}],
        },
    }
    post(url, "/apis/resource.k8s.io/v1/namespaces/default/resourceclaimtemplates", template)
    post(url, "/api/v1/namespaces/default/pods", pod)
    stored = get(url, "/api/v1/namespaces/default/pods/smoke")
    assert stored["spec"]["nodeName"] == "gpu-node-2"
    (claim_status,) = stored["status"]["resourceClaimStatuses"]
    claim = get(url, f"/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/{claim_status['resourceClaimName']}")
    results = claim["status"]["allocation"]["devices"]["results"]
    assert [(r["driver"], r["pool"], r["device"]) for r in results] == [("gpu.nvidia.com", "gpu-node-2", "gpu-0")]

    # deleting the plugin DaemonSet (kubectl's default: background propagation) removes its pods, then the slices
    kubectl("delete", "daemonset", "-n", NAMESPACE, DAEMONSET)
    assert get(url, f"/api/v1/namespaces/{NAMESPACE}/pods")["items"] == []
    assert get(url, SLICES)["items"] == []


def plugin_pod(url: str, node: str) -> dict:
    (pod,) = [p for p in get(url, f"/api/v1/namespaces/{NAMESPACE}/pods")["items"] if p["spec"]["nodeName"] == node]
    return pod


def test_a_restarted_plugin_publishes_again_and_a_stopping_one_takes_its_slice_away(bench):
    url = bench.url
    pods = f"{url}/api/v1/namespaces/{NAMESPACE}/pods"
    before = slices_by_node(url)["gpu-node-2"]
    answer = requests.delete(f"{pods}/{plugin_pod(url, 'gpu-node-2')['metadata']['name']}", timeout=30)
    assert answer.status_code == 200, answer.text
    after = slices_by_node(url)["gpu-node-2"]  # the DaemonSet controller made a new pod; its plugin published again
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"] == before["spec"]

    # without its DaemonSet (orphaned pods keep running and publishing), a pod told to stop takes its slice with it
    # while it is still terminating: the plugin stops on SIGTERM and the kubelet wipes the driver's slices of the node
    answer = requests.delete(
        f"{url}/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{DAEMONSET}", json={"propagationPolicy": "Orphan"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert sorted(slices_by_node(url)) == ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
    stopping = plugin_pod(url, "gpu-node-2")["metadata"]["name"]
    answer = requests.delete(f"{pods}/{stopping}", params={"gracePeriodSeconds": "30"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert get(url, f"/api/v1/namespaces/{NAMESPACE}/pods/{stopping}")["metadata"]["deletionTimestamp"]
    assert sorted(slices_by_node(url)) == ["gpu-node-1", "gpu-node-3"]


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        # GeForce = brand 5, Pascal = architecture 4 (go-nvlib); 11264 MiB = 11Gi; compute 6.1 -> 6.1.0
        ("gtx1080ti", [("gpu-0", "GeForce", "Pascal", "6.1.0", "11Gi", "0000:01:00.0")]),
        ("a100_80gb", [("gpu-0", "Nvidia", "Ampere", "8.0.0", "80Gi", "0000:07:00.0")]),
        ("a100_mig", []),  # MIG on: the driver publishes MIG devices instead of the GPU, which the bench does not
        ("no_devices", []),  # driver loaded, no GPU: the pool's one slice, empty
    ],
)
def test_other_scenarios_publish_as_the_driver_would(chart_docs, scenario, expected):
    (daemonset,) = upstream.named(chart_docs, "DaemonSet", DAEMONSET)
    pod = {"metadata": {"name": "plugin"}, "spec": daemonset["spec"]["template"]["spec"]}
    node = nodes.gpu_node("n", gpus=1, scenario=scenario)
    node["metadata"]["uid"] = "u-1"
    outcome, devices = dra_plugin.publication(pod, node)
    assert outcome is not None and (outcome.container, outcome.error) == ("gpus", "")
    seen = [
        (
            d["name"],
            d["attributes"]["brand"]["string"],
            d["attributes"]["architecture"]["string"],
            d["attributes"]["cudaComputeCapability"]["version"],
            d["capacity"]["memory"]["value"],
            d["attributes"]["resource.kubernetes.io/pciBusID"]["string"],
        )
        for d in devices
    ]
    assert seen == expected
    assert dra_plugin.resource_slice(node, devices)["spec"]["devices"] == devices
    assert dra_plugin.publication(pod, nodes.gpu_node("m", gpus=1)) == (None, [])  # no scenario annotation
