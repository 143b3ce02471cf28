"""The test API server's resource.k8s.io/v1 and the scheduler double's DRA allocation (tests/support/kubeapi/dra.py),
held to the real kubectl 1.35 and the real NVIDIA DRA driver chart.

Expected behaviour, from outside the bench:
- The DeviceClass ``gpu.nvidia.com`` is the real chart's (../shared/upstream/charts/dra-driver-nvidia-gpu-0.4.1.tgz,
  rendered by real helm), its CEL selector ``device.attributes['gpu.nvidia.com'].type == 'gpu'``.
- The ResourceSlices are as the NVIDIA DRA driver publishes GPUs (kubernetes-sigs/dra-driver-nvidia-gpu,
  cmd/gpu-kubelet-plugin/deviceinfo.go ``GpuInfo.GetDevice``: devices ``gpu-<minor>``, attributes ``type``,
  ``productName``, ``architecture``, ``cudaComputeCapability`` (a version), ``uuid``, capacity ``memory`` in bytes,
  BinarySI), for the fixture nodes' GPUs: gpu-node-1 2x Tesla V100-SXM2-16GB, gpu-node-2 1x Tesla T4,
  gpu-node-3 8x NVIDIA H100 80GB HBM3 (tests/support/fake_nvml scenarios).
- Allocation as https://kubernetes.io/docs/concepts/scheduling-eviction/dynamic-resource-allocation/ describes it:
  ``count`` devices (default 1), ``allocationMode: All`` every matching device of the node, a device given to one
  claim at a time, the result in ``status.allocation.devices.results`` (request, driver, pool, device) with a
  ``nodeSelector``, the Pod in ``status.reservedFor``; a claim from a ResourceClaimTemplate is named
  ``<pod>-<claim>-<random>`` and recorded in the Pod's ``status.resourceClaimStatuses``; an unsatisfiable claim leaves
  the Pod Pending with ``FailedScheduling`` "cannot allocate all claims" (kube-scheduler's dynamicresources plugin).
- kube-apiserver compiles CEL selectors on write (pkg/apis/resource/validation, ``compilation failed``).
"""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import requests
import yaml

from tests.support import upstream
from tests.support.kubeapi import dra as dra_double

# product, architecture, CUDA compute capability, memory, GPUs
GPUS = {
    "gpu-node-1": ("Tesla V100-SXM2-16GB", "Volta", "7.0.0", "16Gi", 2),
    "gpu-node-2": ("Tesla T4", "Turing", "7.5.0", "15Gi", 1),
    "gpu-node-3": ("NVIDIA H100 80GB HBM3", "Hopper", "9.0.0", "81559Mi", 8),
}


@pytest.fixture(scope="module")
def gpu_device_class():
    docs = upstream.helm_template(
        upstream.chart("dra-driver-nvidia-gpu-0.4.1.tgz"),
        {"gpuResourcesEnabledOverride": True},
        release="dra",
        namespace="nvidia-dra-driver-gpu",
        kube_version="v1.35.0",
    )
    (device_class,) = [d for d in docs if d["kind"] == "DeviceClass" and d["metadata"]["name"] == "gpu.nvidia.com"]
    return device_class


def resource_slice(node: str) -> dict:
    product, architecture, compute_capability, memory, count = GPUS[node]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-gpu.nvidia.com-abcde"},
        "spec": {
            "driver": "gpu.nvidia.com",
            "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "devices": [
                {
                    "name": f"gpu-{index}",
                    "attributes": {
                        "type": {"string": "gpu"},
                        "productName": {"string": product},
                        "architecture": {"string": architecture},
                        "cudaComputeCapability": {"version": compute_capability},
                        "uuid": {"string": f"GPU-{node}-{index}"},
                    },
                    "capacity": {"memory": {"value": memory}},
                }
                for index in range(count)
            ],
        },
    }


PLURALS = {
    "DeviceClass": "deviceclasses",
    "ResourceSlice": "resourceslices",
    "ResourceClaim": "resourceclaims",
    "ResourceClaimTemplate": "resourceclaimtemplates",
    "Pod": "pods",
    "Event": "events",
}


class Api:
    """Plain HTTP to the test API server, as any client writes (kubectl itself is held in the first test only:
    each kubectl run costs about a second of discovery on a loaded machine)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def path(self, kind: str, name: str = "", namespaced: bool = True) -> str:
        base = "/api/v1" if kind in ("Pod", "Event") else "/apis/resource.k8s.io/v1"
        scope = "/namespaces/default" if namespaced and kind not in ("DeviceClass", "ResourceSlice") else ""
        return f"{self.url}{base}{scope}/{PLURALS[kind]}" + (f"/{name}" if name else "")

    def create(self, *objects: dict, expect: int = 201) -> requests.Response:
        for obj in objects:
            answer = requests.post(self.path(obj["kind"]), json=obj, timeout=30)
            assert answer.status_code == expect, answer.text
        return answer

    def get(self, kind: str, name: str = "", **params: str) -> dict:
        answer = requests.get(self.path(kind, name), params=params, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def gone(self, kind: str, name: str) -> bool:
        return requests.get(self.path(kind, name), timeout=30).status_code == 404

    def delete(self, kind: str, name: str, grace_period: int) -> None:
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace_period}
        answer = requests.delete(self.path(kind, name), json=options, timeout=30)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def dra(kubeapi, gpu_device_class):
    """A 1.35 server with the ready controller, the chart's DeviceClass and one ResourceSlice per fixture node."""
    kubeapi.admin.set_ready_controller(True)
    api = Api(kubeapi.url)
    api.create(gpu_device_class, *(resource_slice(node) for node in GPUS))
    return api


def apply(kubectl, *objects: dict):
    return kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))


def template(name: str, request: dict) -> dict:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com", **request}}]}}
        },
    }


def claim(name: str, request: dict) -> dict:
    body = template(name, request)
    return {**body, "kind": "ResourceClaim", "spec": body["spec"]["spec"]}


def pod(name: str, *, template_name: str = "", claim_name: str = "", restart: str = "Always") -> dict:
    """A Pod using a claim; with ``restart`` ``Always`` the kubelet double keeps it Running (and its claim reserved),
    with ``Never`` it is ``Succeeded`` as soon as it is placed."""
    source = {"resourceClaimTemplateName": template_name} if template_name else {"resourceClaimName": claim_name}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": restart,
            "resourceClaims": [{"name": "gpu", **source}],
            "containers": [{"name": "main", "image": "registry.invalid/cuda:1", "resources": {"claims": [{"name": "gpu"}]}}],
        },
    }


def claim_of(api: Api, pod_name: str) -> dict:
    stored = api.get("Pod", pod_name)
    (entry,) = stored["status"]["resourceClaimStatuses"]
    return api.get("ResourceClaim", entry["resourceClaimName"])


def allocated(claim_obj: dict) -> list[tuple[str, str, str, str]]:
    results = claim_obj["status"]["allocation"]["devices"]["results"]
    return [(r["request"], r["driver"], r["pool"], r["device"]) for r in results]


def assert_pending(api: Api, pod_name: str, reason: str) -> None:
    stored = api.get("Pod", pod_name)
    assert "nodeName" not in stored["spec"]
    (scheduled,) = [c for c in stored["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert reason in scheduled["message"]
    events = api.get("Event", fieldSelector=f"involvedObject.name={pod_name}")["items"]
    assert [(e["reason"], e["type"]) for e in events] == [("FailedScheduling", "Warning")]
    assert reason in events[0]["message"]


def test_resource_k8s_io_v1_is_held_to_kubectl_from_1_34_only(kubeapi, kubectl, gpu_device_class):
    kubeapi.admin.set_version("v1.33.5")
    old = kubectl("get", "resourceslices", check=False)
    assert 'the server doesn\'t have a resource type "resourceslices"' in old.stderr
    assert "resource.k8s.io/v1" not in kubectl("api-versions").stdout.split()

    kubeapi.admin.set_version("v1.35.2")
    resources = kubectl("api-resources", "--api-group=resource.k8s.io", "-o", "wide").stdout
    assert "resourceclaims" in resources and "resourceslices" in resources and "resourceclaimtemplates" in resources
    apply(kubectl, gpu_device_class, resource_slice("gpu-node-2"), claim("shared-gpu", {}), template("one-gpu", {}))
    # columns of kubernetes pkg/printers/internalversion/printers.go (nodeResourceSliceColumnDefinitions, resourceClaimState)
    slices = [line.split() for line in kubectl("get", "resourceslices").stdout.splitlines()]
    assert slices[0] == ["NAME", "NODE", "DRIVER", "POOL", "AGE"]
    assert slices[1][:4] == ["gpu-node-2-gpu.nvidia.com-abcde", "gpu-node-2", "gpu.nvidia.com", "gpu-node-2"]
    claims = [line.split() for line in kubectl("get", "resourceclaims", "-A").stdout.splitlines()]
    assert claims[0] == ["NAMESPACE", "NAME", "STATE", "AGE"]
    assert claims[1][:3] == ["default", "shared-gpu", "pending"]
    described = kubectl("describe", "resourceclaim", "shared-gpu").stdout
    assert "shared-gpu" in described and "gpu.nvidia.com" in described
    status = kubectl("get", "--raw", "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/shared-gpu/status")
    assert json.loads(status.stdout)["metadata"]["name"] == "shared-gpu"
    kubeapi.admin.set_ready_controller(True)
    apply(kubectl, pod("user", claim_name="shared-gpu"))
    claims = [line.split() for line in kubectl("get", "resourceclaims").stdout.splitlines()]
    assert claims[1][:2] == ["shared-gpu", "allocated,reserved"]


def test_a_template_claim_gets_one_gpu_on_a_node_that_publishes_one(dra):
    dra.create(template("one-gpu", {}), pod("smoke", template_name="one-gpu"))
    stored = dra.get("Pod", "smoke")
    assert stored["status"]["phase"] == "Running"
    node = stored["spec"]["nodeName"]
    allocated_claim = claim_of(dra, "smoke")
    assert allocated_claim["metadata"]["name"].startswith("smoke-gpu-")
    assert allocated_claim["metadata"]["ownerReferences"][0]["name"] == "smoke"
    assert allocated(allocated_claim) == [("gpu", "gpu.nvidia.com", node, "gpu-0")]
    selector = allocated_claim["status"]["allocation"]["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"]
    assert selector == [{"key": "metadata.name", "operator": "In", "values": [node]}]
    assert allocated_claim["status"]["reservedFor"] == [{"resource": "pods", "name": "smoke", "uid": stored["metadata"]["uid"]}]


def test_count_and_all_take_that_many_devices_of_one_node(dra):
    dra.create(
        template("two", {"count": 2}),
        template(
            "all-h100",
            {
                "allocationMode": "All",
                "selectors": [{"cel": {"expression": "device.attributes['gpu.nvidia.com'].productName.contains('H100')"}}],
            },
        ),
    )
    dra.create(pod("pair", template_name="two"), pod("everything", template_name="all-h100"))
    assert allocated(claim_of(dra, "pair")) == [("gpu", "gpu.nvidia.com", "gpu-node-1", f"gpu-{i}") for i in range(2)]
    assert allocated(claim_of(dra, "everything")) == [("gpu", "gpu.nvidia.com", "gpu-node-3", f"gpu-{i}") for i in range(8)]


def test_a_cel_selector_on_product_name_and_memory_lands_on_the_right_node(dra):
    expression = (
        "device.attributes['gpu.nvidia.com'].productName.lowerAscii().contains('t4') && "
        "device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('8Gi')) >= 0"
    )
    dra.create(template("t4", {"selectors": [{"cel": {"expression": expression}}]}), pod("on-t4", template_name="t4"))
    assert dra.get("Pod", "on-t4")["spec"]["nodeName"] == "gpu-node-2"


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param({"count": 9}, id="a-count-above-what-any-node-has"),
        pytest.param(
            {"selectors": [{"cel": {"expression": "device.attributes['gpu.nvidia.com'].productName == 'A100'"}}]},
            id="a-selector-that-matches-nothing",
        ),
        pytest.param(
            {"selectors": [{"cel": {"expression": "device.capacity['gpu.nvidia.com'].memory.isGreaterThan(quantity('80Gi'))"}}]},
            id="no-device-with-that-memory",
        ),
    ],
)
def test_a_claim_no_node_can_satisfy_leaves_the_pod_pending(dra, request_):
    dra.create(template("impossible", request_), pod("waiting", template_name="impossible"))
    assert_pending(dra, "waiting", "0/3 nodes are available: 3 cannot allocate all claims.")
    assert "allocation" not in (claim_of(dra, "waiting").get("status") or {})


def test_a_device_is_not_given_to_a_second_claim(dra):
    t4 = {"selectors": [{"cel": {"expression": "device.attributes['gpu.nvidia.com'].productName == 'Tesla T4'"}}]}
    dra.create(template("t4", t4), pod("first", template_name="t4"))
    assert dra.get("Pod", "first")["spec"]["nodeName"] == "gpu-node-2"
    dra.create(pod("second", template_name="t4"))
    assert_pending(dra, "second", "cannot allocate all claims")


def test_no_device_class_or_no_claim_is_refused_by_name(dra):
    dra.create(claim("nowhere", {"deviceClassName": "tpu.example.com"}), pod("classless", claim_name="nowhere"))
    assert_pending(dra, "classless", "request gpu: device class tpu.example.com does not exist")
    dra.create(pod("claimless", claim_name="missing"))
    assert_pending(dra, "claimless", 'resourceclaim "missing" not found')


def test_a_cel_expression_that_does_not_compile_is_refused_at_create(dra):
    broken = template("broken", {"selectors": [{"cel": {"expression": "device.driver == "}}]})
    status = dra.create(broken, expect=422).json()
    assert status["reason"] == "Invalid"
    (cause,) = status["details"]["causes"]
    assert cause["field"] == "spec.spec.devices.requests[0].exactly.selectors[0].cel.expression"
    assert "compilation failed" in cause["message"]
    dra.create(claim("fine", {"selectors": [{"cel": {"expression": "device.driver == 'gpu.nvidia.com'"}}]}))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/ and the memory examples of
        # https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/ (128974848, 129e6, 129M, 123Mi)
        ("128974848", 128974848),
        ("129e6", 129000000),
        ("129M", 129000000),
        ("123Mi", 123 * 2**20),
        ("80Gi", 80 * 2**30),
        ("500m", Fraction(1, 2)),
        ("1.5", Fraction(3, 2)),
    ],
)
def test_capacity_quantities_parse_as_kubernetes_writes_them(text, value):
    assert dra_double.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["12 GB", "1.5.2", "Gi", "16gi"])
def test_a_string_that_is_no_quantity_is_refused(text):
    with pytest.raises(ValueError, match="quantities must match"):
        dra_double.parse_quantity(text)


# The resourceclaim controller of kube-controller-manager (kubernetes pkg/controller/resourceclaim/controller.go,
# read at the newest version the search tool holds, resource.k8s.io v1alpha3; the logic named here is unchanged in
# v1.35 as far as it could be compared): ``enqueuePod`` syncs the claims of a Pod ``podNeedsClaims`` says no longer
# needs them (removed, terminal phase, or deleted before it was scheduled); ``syncClaim`` drops from
# ``status.reservedFor`` every Pod that is gone, has another uid or ``isPodDone`` (Succeeded/Failed, or
# deletionTimestamp without nodeName: a bound Pod that is terminating keeps its reservation until it is removed),
# clears ``status.allocation`` when the last reservation goes (claims allocated by the scheduler, which all are), and
# deletes a claim with no reservation left whose controller owner is a Pod (``owningPod``) that still exists and is
# done; a claim whose Pod is gone is left to the garbage collector (pkg/controller/garbagecollector: dependents of a
# deleted owner are deleted, Background propagation).
T4 = {"selectors": [{"cel": {"expression": "device.attributes['gpu.nvidia.com'].productName == 'Tesla T4'"}}]}


def test_a_template_claim_is_deleted_once_its_pod_succeeded_and_its_device_is_free_again(dra):
    dra.create(template("t4", T4), pod("job-pod", template_name="t4", restart="Never"))
    stored = dra.get("Pod", "job-pod")
    assert (stored["status"]["phase"], stored["spec"]["nodeName"]) == ("Succeeded", "gpu-node-2")
    (entry,) = stored["status"]["resourceClaimStatuses"]
    assert dra.gone("ResourceClaim", entry["resourceClaimName"])
    # the one T4 is no longer in any claim's allocation: the next pod that asks for it is placed
    dra.create(pod("next", template_name="t4"))
    assert dra.get("Pod", "next")["spec"]["nodeName"] == "gpu-node-2"
    assert allocated(claim_of(dra, "next")) == [("gpu", "gpu.nvidia.com", "gpu-node-2", "gpu-0")]


def test_a_template_claim_goes_with_its_deleted_pod_not_while_the_bound_pod_terminates(dra):
    dra.create(template("t4", T4), pod("infer", template_name="t4"))
    claim_name = claim_of(dra, "infer")["metadata"]["name"]
    dra.delete("Pod", "infer", grace_period=30)
    terminating = dra.get("Pod", "infer")
    assert terminating["metadata"]["deletionTimestamp"] and terminating["spec"]["nodeName"] == "gpu-node-2"
    kept = dra.get("ResourceClaim", claim_name)
    assert [ref["name"] for ref in kept["status"]["reservedFor"]] == ["infer"]
    assert allocated(kept) == [("gpu", "gpu.nvidia.com", "gpu-node-2", "gpu-0")]
    dra.delete("Pod", "infer", grace_period=0)  # its kubelet removes it
    assert dra.gone("Pod", "infer") and dra.gone("ResourceClaim", claim_name)

    # deleted before it was scheduled (no node can serve it): done at once, its claim goes with it
    dra.create(template("nine", {"count": 9}), pod("never-placed", template_name="nine"))
    claim_name = claim_of(dra, "never-placed")["metadata"]["name"]
    dra.delete("Pod", "never-placed", grace_period=30)
    assert dra.gone("Pod", "never-placed") and dra.gone("ResourceClaim", claim_name)


def test_a_shared_claim_stays_and_loses_each_pod_that_ends_from_reserved_for(dra):
    dra.create(claim("shared", T4), pod("server", claim_name="shared"), pod("probe", claim_name="shared", restart="Never"))
    assert dra.get("Pod", "probe")["status"]["phase"] == "Succeeded"
    shared = dra.get("ResourceClaim", "shared")
    server_uid = dra.get("Pod", "server")["metadata"]["uid"]
    assert shared["status"]["reservedFor"] == [{"resource": "pods", "name": "server", "uid": server_uid}]
    assert allocated(shared) == [("gpu", "gpu.nvidia.com", "gpu-node-2", "gpu-0")]
    dra.delete("Pod", "server", grace_period=0)
    shared = dra.get("ResourceClaim", "shared")
    assert "reservedFor" not in shared["status"] and "allocation" not in shared["status"]
    assert "deletionTimestamp" not in shared["metadata"]
