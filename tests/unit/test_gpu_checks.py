"""The per-node checks of gpu_validate (plugins/module_utils/_gpu_checks.py), pure functions over API objects.

Node affinity and tolerations are held to Kubernetes' own rules (the NodeSelectorRequirement operators and
Toleration.ToleratesTaint, as the API reference documents them) and to the test bench's scheduler predicates
(tests/support/kubeapi/kubelet.py, read from kube-scheduler), over every DaemonSet of the real charts
(../shared/upstream, rendered by the real helm) and the AWS manifest; the DaemonSet names each stack must have
come from those renders.
"""

from __future__ import annotations

import copy
import functools

import pytest
import yaml

from ansible_collections.kubegpu.core.plugins.filter.gpu_readiness import gpu_readiness, gpu_readiness_failures
from ansible_collections.kubegpu.core.plugins.module_utils import _gpu_checks as checks
from tests.support import upstream

KUBE = "v1.35.0"


def node(name="gpu-1", labels=None, taints=()):
    return upstream.node(name, labels or {}, taints)


# ---- Kubernetes' rules


@pytest.mark.parametrize(
    ("requirement", "labels", "met"),
    [
        ({"key": "a", "operator": "In", "values": ["x", "y"]}, {"a": "y"}, True),
        ({"key": "a", "operator": "In", "values": ["x"]}, {"a": "X"}, False),
        ({"key": "a", "operator": "In", "values": ["x"]}, {}, False),
        ({"key": "a", "operator": "NotIn", "values": ["x"]}, {"a": "y"}, True),
        ({"key": "a", "operator": "NotIn", "values": ["x"]}, {}, True),  # an absent label is not in the set
        ({"key": "a", "operator": "NotIn", "values": ["x"]}, {"a": "x"}, False),
        ({"key": "a", "operator": "Exists"}, {"a": ""}, True),
        ({"key": "a", "operator": "Exists"}, {"b": "x"}, False),
        ({"key": "a", "operator": "DoesNotExist"}, {}, True),
        ({"key": "a", "operator": "DoesNotExist"}, {"a": ""}, False),
        ({"key": "n", "operator": "Gt", "values": ["7"]}, {"n": "8"}, True),
        ({"key": "n", "operator": "Gt", "values": ["8"]}, {"n": "8"}, False),
        ({"key": "n", "operator": "Gt", "values": ["7"]}, {"n": "eight"}, False),  # not an integer: no match
        ({"key": "n", "operator": "Gt", "values": ["7"]}, {}, False),
        ({"key": "n", "operator": "Lt", "values": ["8"]}, {"n": "7"}, True),
        ({"key": "n", "operator": "Lt", "values": ["8"]}, {"n": "8"}, False),
        ({"key": "a", "operator": "Like", "values": ["x"]}, {"a": "x"}, False),
    ],
)
def test_node_selector_requirements_match_as_kubernetes_defines_them(requirement, labels, met):
    problem = checks.requirement_problem(requirement, labels)
    assert (problem is None) is met, problem
    if not met:
        assert requirement["key"] in problem


def test_terms_are_ored_their_requirements_anded_and_fields_match_the_name():
    ready = node("gpu-1", {"a": "1", "b": "2"})
    both = {
        "matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}, {"key": "b", "operator": "In", "values": ["3"]}]
    }
    name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-1"]}]}
    required = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [both]}}}
    assert "label b in ['3'] is needed, the node has b='2'" in checks.affinity_problem(required, ready)
    required["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"].append(name)
    assert checks.affinity_problem(required, ready) is None
    assert checks.term_problem({}, ready) == "an empty node selector term selects no node"
    assert checks.affinity_problem(None, ready) is None


@pytest.mark.parametrize(
    ("toleration", "taint", "tolerated"),
    [
        ({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, {"key": "gpu", "effect": "NoSchedule"}, True),
        ({"key": "gpu", "operator": "Exists"}, {"key": "gpu", "value": "x", "effect": "NoExecute"}, True),  # no effect: all
        ({"key": "gpu", "operator": "Exists", "effect": "NoExecute"}, {"key": "gpu", "effect": "NoSchedule"}, False),
        ({"operator": "Exists"}, {"key": "anything", "value": "v", "effect": "NoSchedule"}, True),  # empty key + Exists
        ({"key": "gpu", "operator": "Equal", "value": "true"}, {"key": "gpu", "value": "true", "effect": "NoSchedule"}, True),
        ({"key": "gpu", "value": "true"}, {"key": "gpu", "value": "true", "effect": "NoSchedule"}, True),  # Equal by default
        ({"key": "gpu", "operator": "Equal", "value": "true"}, {"key": "gpu", "value": "True", "effect": "NoSchedule"}, False),
        ({"key": "gpu", "operator": "Equal", "value": ""}, {"key": "gpu", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, {"key": "gpu", "effect": "NoSchedule"}, False),
        ({"operator": "Equal", "value": "x"}, {"key": "gpu", "value": "x", "effect": "NoSchedule"}, False),
    ],
)
def test_tolerations_match_as_kubernetes_defines_them(toleration, taint, tolerated):
    assert checks.tolerates(toleration, taint) is tolerated


def test_prefer_no_schedule_blocks_nothing_and_daemon_pods_tolerate_a_cordoned_node():
    soft = node(taints=[{"key": "gpu", "effect": "PreferNoSchedule"}])
    assert checks.placement_problem({}, soft) is None
    cordoned = node(taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    assert checks.placement_problem({}, cordoned, daemon=True) is None
    assert "node.kubernetes.io/unschedulable:NoSchedule" in checks.placement_problem({}, cordoned)


# ---- the real charts


@functools.cache
def _render(chart: str, release: str, namespace: str, values_yaml: str = "{}") -> tuple:
    docs = upstream.helm_template(
        upstream.chart(chart), yaml.safe_load(values_yaml), release=release, namespace=namespace, kube_version=KUBE
    )
    return tuple(docs)


def _daemonsets(chart: str, release: str, namespace: str, values: dict | None = None) -> dict[str, dict]:
    docs = _render(chart, release, namespace, yaml.safe_dump(values or {}, sort_keys=True))
    found = {}
    for doc in upstream.named(list(docs), "DaemonSet"):
        daemonset = copy.deepcopy(doc)
        daemonset["metadata"]["namespace"] = namespace
        found[daemonset["metadata"]["name"]] = daemonset
    return found


MPS = {
    "config": {"map": {"kubegpu": "version: v1\nsharing:\n  mps:\n    resources:\n    - {name: nvidia.com/gpu, replicas: 2}\n"}}
}
GFD = {"gfd": {"enabled": True}, "nfd": {"enabled": True}}


def _all_daemonsets() -> dict[str, dict]:
    found = {}
    found.update(_daemonsets("hami-2.10.0.tgz", "hami", "kube-system"))
    found.update(_daemonsets("nvidia-device-plugin-0.20.0.tgz", "nvdp", "nvdp", {**GFD, **MPS}))
    found.update(_daemonsets("gpu-operator-v26.7.0.tgz", "gpu-operator", "gpu-operator"))
    aws = yaml.safe_load(upstream.require("manifests", "aws-virtual-gpu-device-plugin.yml").read_text())
    found[aws["metadata"]["name"]] = aws
    return found


def _nodes() -> list[dict]:
    """GPU nodes with the chart-relevant labels gpu_labels writes (nvidia.com/gpu.present, gpu=on, the AWS
    accelerator label), with and without the GPU taint and the labels each stack's own components add (GFD's
    mps.capable, NFD's pci-10de), held back (no gpu=on), and a node of nothing."""
    base = {"nvidia.com/gpu.present": "true", "gpu": "on", "k8s.amazonaws.com/accelerator": "vgpu"}
    found = []
    for extra in ({}, {"nvidia.com/mps.capable": "true", "feature.node.kubernetes.io/pci-10de.present": "true"}, {"gpu": None}):
        for taints in (
            (),
            ({"key": "gpu", "effect": "NoSchedule"},),
            ({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},),
        ):
            merged = {key: value for key, value in {**base, **extra}.items() if value is not None}
            found.append(node(f"n{len(found)}", merged, taints))
    found.append(node("plain", {"kubernetes.io/os": "linux"}))
    return found


def test_the_placement_of_every_real_daemonset_agrees_with_kube_schedulers_predicates():
    """For every DaemonSet of the real charts and every node: placed by the check's rules exactly when the bench's
    scheduler predicates place it, and otherwise with a reason."""
    compared = 0
    for name, daemonset in _all_daemonsets().items():
        template = daemonset["spec"]["template"]
        for each in _nodes():
            ours = checks.placement_problem(template["spec"], each, daemon=True)
            bench = upstream.placement_problem(template, each)
            assert (ours is None) is (bench is None), (name, each["metadata"], ours, bench)
            compared += 1
    assert compared > 50


def test_a_daemonset_that_misses_a_node_says_why_from_its_real_template():
    found = _all_daemonsets()
    tainted = node("gpu-1", {"nvidia.com/gpu.present": "true", "gpu": "on"}, [{"key": "gpu", "effect": "NoSchedule"}])
    # the GPU Operator's NFD worker tolerates the control-plane taint and nvidia.com/gpu only
    worker = found["gpu-operator-node-feature-discovery-worker"]
    assert checks.daemonset_problem(worker, tainted, []) == (
        "DaemonSet gpu-operator/gpu-operator-node-feature-discovery-worker places no pod on the node: "
        "it does not tolerate the node's taint gpu:NoSchedule"
    )
    # the MPS control daemon selects nvidia.com/mps.capable=true, which only GPU Feature Discovery writes
    untainted = node("gpu-1", {"nvidia.com/gpu.present": "true", "gpu": "on"})
    assert checks.daemonset_problem(found["nvdp-nvidia-device-plugin-mps-control-daemon"], untainted, []) == (
        "DaemonSet nvdp/nvdp-nvidia-device-plugin-mps-control-daemon places no pod on the node: "
        "its nodeSelector needs the label nvidia.com/mps.capable=true, the node lacks it"
    )
    # HAMi's device plugin selects gpu=on
    held = node("gpu-1", {"nvidia.com/gpu.present": "true"})
    assert "its nodeSelector needs the label gpu=on, the node lacks it" in checks.daemonset_problem(
        found["hami-device-plugin"], held, []
    )
    # the NVIDIA plugin's affinity: three terms, none met
    problem = checks.daemonset_problem(found["nvdp-nvidia-device-plugin"], node("gpu-1", {"gpu": "on"}), [])
    assert "no term of its required node affinity is met" in problem
    assert "term 3: label nvidia.com/gpu.present in ['true'] is needed, the node has no label nvidia.com/gpu.present" in problem


def _pod(daemonset, on, ready=True, **status):
    meta = daemonset["metadata"]
    return {
        "metadata": {
            "name": f"{meta['name']}-x",
            "ownerReferences": [{"kind": "DaemonSet", "name": meta["name"], "uid": meta.get("uid")}],
        },
        "spec": {"nodeName": on},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "ContainersNotReady"}],
            **status,
        },
    }


def test_a_pod_on_the_node_must_be_ready_and_owned_by_the_daemonset():
    hami = _all_daemonsets()["hami-device-plugin"]
    on = node("gpu-1", {"gpu": "on"})
    assert checks.daemonset_problem(hami, on, [_pod(hami, "gpu-1")]) is None
    assert checks.daemonset_problem(hami, on, [_pod(hami, "gpu-2")]).endswith("(the DaemonSet controller has not placed one)")
    waiting = [{"name": "device-plugin", "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
    assert checks.daemonset_problem(hami, on, [_pod(hami, "gpu-1", ready=False, containerStatuses=waiting)]) == (
        "DaemonSet kube-system/hami-device-plugin: its pod hami-device-plugin-x is not Ready "
        "(phase Running, Ready=False (ContainersNotReady), container device-plugin waiting (CrashLoopBackOff))"
    )
    other = copy.deepcopy(hami)
    other["metadata"].update(name="hami-device-plugin", uid="new")
    stale = _pod(hami, "gpu-1")
    stale["metadata"]["ownerReferences"][0]["uid"] = "old"  # a pod of a deleted DaemonSet of the same name
    assert checks.daemonset_problem(other, on, [stale]) is not None


@pytest.mark.parametrize(
    ("stack", "settings", "chart", "values"),
    [
        ("vgpu_scheduler", {"release": "hami", "namespace": "kube-system"}, "hami-2.10.0.tgz", {}),
        ("vgpu_scheduler", {"release": "x", "namespace": "kube-system"}, "hami-2.10.0.tgz", {}),
        ("vgpu_scheduler", {"release": "vgpu", "namespace": "kube-system", "chart_flavor": "vgpu"}, "vgpu-2.0.0.tgz", {}),
        ("nvidia_device_plugin", {"release": "nvidia-device-plugin", "namespace": "n"}, "nvidia-device-plugin-0.20.0.tgz", {}),
        ("nvidia_device_plugin", {"release": "nvdp", "namespace": "n", "sharing": "mps"}, "nvidia-device-plugin-0.20.0.tgz", GFD),
        (
            "nvidia_device_plugin",
            {"release": "nvdp", "namespace": "n", "gfd_enabled": True, "nfd_enabled": False},
            "nvidia-device-plugin-0.20.0.tgz",
            {"gfd": {"enabled": True}, "nfd": {"enabled": False}},
        ),
        (
            "gpu_operator",
            {"release": "gpu-operator", "namespace": "g", "device_plugin_enabled": False},
            "gpu-operator-v26.7.0.tgz",
            {},
        ),
        ("gpu_operator", {"release": "op", "namespace": "g", "device_plugin_enabled": False}, "gpu-operator-v26.7.0.tgz", {}),
    ],
)
def test_the_daemonsets_a_stack_requires_are_those_its_real_chart_renders(stack, settings, chart, values):
    if chart.startswith("vgpu"):
        docs = upstream.helm_template(
            upstream.chart(chart), values, release=settings["release"], namespace="kube-system", kube_version="v1.27.16"
        )
    else:
        docs = list(_render(chart, settings["release"], settings["namespace"], yaml.safe_dump(values, sort_keys=True)))
    rendered = {doc["metadata"]["name"] for doc in upstream.named(docs, "DaemonSet")}
    required = checks.stack_expectations(stack, {stack: settings}, {"devices": [{}]})["required"]
    assert required and {want["name"] for want in required} <= rendered, (required, rendered)
    if stack == "nvidia_device_plugin":
        kinds = {want["what"] for want in required}
        assert ("the MPS control daemon" in kinds) is (settings.get("sharing") == "mps")
        gfd = settings.get("sharing") == "mps" or settings.get("gfd_enabled") is True
        assert ("the NFD worker" in kinds) is (gfd and settings.get("nfd_enabled", True))


def test_the_operators_device_plugin_operand_is_required_by_the_name_the_operator_gives_it():
    """The GPU Operator creates its device plugin as DaemonSet nvidia-device-plugin-daemonset (its assets,
    state-device-plugin); the chart renders no such DaemonSet, the operator does."""
    required = checks.stack_expectations(
        "gpu_operator", {"gpu_operator": {"release": "gpu-operator", "namespace": "g"}}, {"devices": [{}, {}]}
    )
    assert [want["name"] for want in required["required"]] == [
        "gpu-operator-node-feature-discovery-worker",
        "nvidia-device-plugin-daemonset",
    ]
    assert required["allocatable"] == {"nvidia.com/gpu": 2}


# ---- allocatable, gpu=on, the Profile


@pytest.mark.parametrize(
    ("stack", "settings", "expected"),
    [
        # HAMi: deviceSplitCount devices per GPU as nvidia.com/gpu (its docs: 2 GPUs, split 10 -> nvidia.com/gpu: 20)
        ("vgpu_scheduler", {"release": "hami", "namespace": "k", "device_split_count": 10}, {"nvidia.com/gpu": 20}),
        ("nvidia_device_plugin", {"release": "n", "namespace": "n"}, {"nvidia.com/gpu": 2}),
        # time-slicing and MPS: replicas per GPU; renameByDefault advertises nvidia.com/gpu.shared instead
        (
            "nvidia_device_plugin",
            {"release": "n", "namespace": "n", "sharing": "time-slicing", "replicas": 4},
            {"nvidia.com/gpu": 8},
        ),
        (
            "nvidia_device_plugin",
            {"release": "n", "namespace": "n", "sharing": "time-slicing", "replicas": 4, "rename_by_default": True},
            {"nvidia.com/gpu.shared": 8},
        ),
        ("nvidia_device_plugin", {"release": "n", "namespace": "n", "sharing": "mps", "replicas": 3}, {"nvidia.com/gpu": 6}),
        ("aws_vgpu_plugin", {"name": "a", "namespace": "k", "vgpus_per_gpu": 10}, {"k8s.amazonaws.com/vgpu": 20}),
    ],
)
def test_the_allocatable_a_stack_implies(stack, settings, expected):
    found = checks.stack_expectations(stack, {stack: settings}, {"devices": [{"index": 0}, {"index": 1}]})
    assert found["allocatable"] == expected and found["allocatable_skip"] == ""


def test_allocatable_fails_naming_the_resource_and_both_counts():
    on = node()
    on["status"] = {"allocatable": {"nvidia.com/gpu": "8"}}
    assert checks.check_allocatable(on, {"nvidia.com/gpu": 32}) == {
        "check": "allocatable",
        "result": "failed",
        "message": "nvidia.com/gpu is 8, expected 32",
    }
    assert (
        checks.check_allocatable(on, {"nvidia.com/gpu.shared": 8})["message"]
        == "nvidia.com/gpu.shared is not allocatable (expected 8)"
    )
    assert checks.check_allocatable(on, {"nvidia.com/gpu": 8})["result"] == "passed"


def _mig_gpu(index: int, *profiles: str) -> dict:
    """A GPU of gpu_facts with MIG on and MIG devices named as NVML names them (``<GPU name> MIG <profile>``)."""
    return {
        "index": index,
        "mig_mode_current": True,
        "mig_devices": [{"name": f"NVIDIA A100-SXM4-80GB MIG {profile}"} for profile in profiles],
    }


PLUGIN = {"release": "n", "namespace": "n"}


# k8s-device-plugin v0.20.0 internal/rm/rm.go (mixed: one resource "mig-<profile>" per profile, "+" turned into ".";
# single: every MIG device as "gpu") and internal/rm/device_map.go (single: uniform MIG devices, no GPU without MIG,
# every MIG-enabled GPU with a MIG device, else "invalid MIG configuration"; mixed: GPUs with MIG off stay nvidia.com/gpu)
@pytest.mark.parametrize(
    "strategy, devices, expected",
    [
        ("mixed", [_mig_gpu(0, *["1g.10gb"] * 7)], {"nvidia.com/mig-1g.10gb": 7}),
        (
            "mixed",
            [_mig_gpu(0, "3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"), {"index": 1, "mig_mode_current": False}],
            {"nvidia.com/gpu": 1, "nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-2g.20gb": 1, "nvidia.com/mig-1g.10gb": 2},
        ),
        ("mixed", [_mig_gpu(0, "1g.10gb+me")], {"nvidia.com/mig-1g.10gb.me": 1}),
        ("single", [_mig_gpu(0, *["1g.10gb"] * 7), _mig_gpu(1, *["1g.10gb"] * 7)], {"nvidia.com/gpu": 14}),
    ],
)
def test_mig_devices_are_counted_as_the_plugins_mig_strategy_advertises_them(strategy, devices, expected):
    found = checks.stack_expectations(
        "nvidia_device_plugin", {"nvidia_device_plugin": {**PLUGIN, "mig_strategy": strategy}}, {"devices": devices}
    )
    assert (found["allocatable"], found["allocatable_skip"]) == (expected, "")
    operator = checks.stack_expectations(
        "gpu_operator", {"gpu_operator": {**PLUGIN, "mig_strategy": strategy}}, {"devices": devices}
    )
    assert operator["allocatable"] == expected


@pytest.mark.parametrize(
    "devices, why",
    [
        ([_mig_gpu(0, "1g.10gb"), {"index": 1, "mig_mode_current": False}], "GPUs with MIG on and off"),
        ([_mig_gpu(0, "1g.10gb", "3g.40gb")], "more than one MIG profile (1g.10gb, 3g.40gb)"),
        ([_mig_gpu(0, "1g.10gb"), _mig_gpu(1)], "GPU 1 has MIG on without MIG devices"),
    ],
)
def test_single_strategy_on_a_node_the_plugin_refuses_counts_nothing_and_says_why(devices, why):
    found = checks.stack_expectations(
        "nvidia_device_plugin", {"nvidia_device_plugin": {**PLUGIN, "mig_strategy": "single"}}, {"devices": devices}
    )
    assert found["allocatable"] == {} and why in found["allocatable_skip"]


def test_a_mig_profile_the_node_does_not_advertise_fails_naming_the_resource():
    on = node()
    on["status"] = {"allocatable": {"nvidia.com/gpu": "0", "nvidia.com/mig-3g.40gb": "2"}}
    expected = checks.stack_expectations(
        "nvidia_device_plugin",
        {"nvidia_device_plugin": {**PLUGIN, "mig_strategy": "mixed"}},
        {"devices": [_mig_gpu(0, *["1g.10gb"] * 7)]},
    )["allocatable"]
    assert checks.check_allocatable(on, expected)["message"] == "nvidia.com/mig-1g.10gb is not allocatable (expected 7)"


def test_gpu_on_exactly_where_gpu_labels_did_not_hold_back():
    labelled, bare = node(labels={"gpu": "on"}), node(labels={"gpu": "true"})
    assert checks.check_gpu_label(labelled, ("gpu", "on"), None)["result"] == "passed"
    assert checks.check_gpu_label(bare, ("gpu", "on"), None)["message"] == (
        "gpu=on is missing (the node has gpu='true'), though gpu_labels did not hold it back"
    )
    assert checks.check_gpu_label(labelled, ("gpu", "on"), "the NVIDIA driver is not loaded")["result"] == "failed"
    assert checks.check_gpu_label(bare, ("gpu", "on"), "the NVIDIA driver is not loaded")["result"] == "passed"


PROFILE = {
    "spec": {
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["on"]}]}]
                }
            }
        },
    }
}


def test_the_profile_must_select_and_tolerate_exactly_the_gpu_nodes():
    tainted = node("gpu-1", {"gpu": "on"}, [{"key": "gpu", "effect": "NoSchedule"}])
    assert checks.check_profile(PROFILE, "openfaas/withgpu", tainted, True)["result"] == "passed"
    other = node("gpu-1", {"gpu": "on"}, [{"key": "dedicated", "value": "ml", "effect": "NoExecute"}])
    assert checks.check_profile(PROFILE, "openfaas/withgpu", other, True)["message"] == (
        "the Profile openfaas/withgpu does not select this GPU node: "
        "its tolerations do not tolerate the node's taint dedicated=ml:NoExecute"
    )
    typed = copy.deepcopy(PROFILE)
    typed["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ][0]["values"] = ["True"]
    assert "label gpu in ['True'] is needed, the node has gpu='on'" in checks.check_profile(typed, "p", tainted, True)["message"]
    assert (
        checks.check_profile(PROFILE, "p", tainted, False)["message"]
        == "the Profile p selects this node, which gpu_labels held back"
    )
    assert (
        checks.check_profile(PROFILE, "p", tainted, True, ["cpu-1"])["message"]
        == "the Profile p also selects nodes that are not GPU nodes: cpu-1"
    )
    assert (
        checks.check_profile(None, "openfaas/withgpu", tainted, True)["message"]
        == "the OpenFaaS Profile openfaas/withgpu does not exist"
    )


# ---- the report entry


FACTS = {"present": True, "driver_loaded": True, "devices": [{"index": 0, "name": "Tesla T4"}]}
STACKS = {"vgpu_scheduler": {"release": "hami", "namespace": "kube-system", "device_split_count": 10}, "gpu_label": ["gpu", "on"]}


def test_an_entry_has_every_check_in_order_and_fails_when_one_fails():
    hami = _all_daemonsets()["hami-device-plugin"]
    on = node("gpu-1", {"gpu": "on"}, [])
    on["status"] = {"allocatable": {"nvidia.com/gpu": "10"}}
    target = {
        "node": "gpu-1",
        "host": "gpu-1",
        "device_plugin": "vgpu_scheduler",
        "gpu": FACTS,
        "default_runtime": "nvidia",
        "smoke": False,
    }
    profile = {"enabled": True, "where": "openfaas/withgpu", "object": PROFILE, "gpu_nodes": ["gpu-1"]}
    [entry] = gpu_readiness(
        [target], [on], [], stacks=STACKS, daemonsets=[hami], stack_pods=[_pod(hami, "gpu-1")], profile=profile
    )
    assert [(item["check"], item["result"]) for item in entry["checks"]] == [
        ("daemonsets", "passed"),
        ("allocatable", "passed"),
        ("profile", "passed"),
        ("smoke", "skipped"),
        ("gpu_label", "passed"),
    ]
    assert entry["result"] == "passed"
    [broken] = gpu_readiness([target], [on], [], stacks=STACKS, daemonsets=[], stack_pods=[], profile=profile)
    assert broken["result"] == "failed"
    assert gpu_readiness_failures([broken]) == [
        "gpu-1: daemonsets: DaemonSet kube-system/hami-device-plugin (HAMi's device plugin) is missing"
    ]
    [gone] = gpu_readiness([{**target, "node": "gpu-9"}], [on], [], stacks=STACKS, profile=profile)
    assert {item["result"] for item in gone["checks"]} == {"failed"}
    assert all(
        item["message"] == "node gpu-9 is not registered with the API server"
        for item in gone["checks"]
        if item["check"] != "smoke"
    )


# ---- the DRA driver's ResourceSlices


def _dra_slice(node_name: str, devices: list[tuple[str, str]], driver: str = "gpu.nvidia.com") -> dict:
    """A ResourceSlice as the driver's kubelet plugin writes it: ``devices`` as (name, type)."""
    return {
        "spec": {
            "driver": driver,
            "nodeName": node_name,
            "pool": {"name": node_name, "generation": 1, "resourceSliceCount": 1},
            "devices": [
                {"name": name, "attributes": {"type": {"string": kind}, "productName": {"string": "NVIDIA A100-SXM4-40GB"}}}
                for name, kind in devices
            ],
        }
    }


def test_resourceslices_count_gpus_with_mig_off_and_mig_devices_of_gpus_with_mig_on():
    """The real driver publishes a GPU with MIG on only through its MIG devices (type mig); another driver's slice
    and another node's slice do not count."""
    facts = {
        "devices": [
            {"index": 0, "mig_mode_current": True, "mig_devices": [{"name": "a"}, {"name": "b"}]},
            {"index": 1, "mig_mode_current": False},
        ]
    }
    assert checks.dra_expected(facts) == {"gpu": 1, "mig": 2}
    assert checks.dra_class(facts) == "gpu.nvidia.com"
    assert checks.dra_class({"devices": [facts["devices"][0]]}) == "mig.nvidia.com"
    good = _dra_slice("gpu-1", [("gpu-0-mig-9-0-4", "mig"), ("gpu-0-mig-9-4-4", "mig"), ("gpu-1", "gpu")])
    others = [_dra_slice("gpu-2", [("gpu-0", "gpu")]), _dra_slice("gpu-1", [("x", "gpu")], driver="other.example.com")]
    result = checks.check_resourceslices("gpu-1", facts, [good, *others])
    assert result["result"] == checks.PASSED, result
    short = _dra_slice("gpu-1", [("gpu-0-mig-9-0-4", "mig"), ("gpu-1", "gpu")])
    assert checks.check_resourceslices("gpu-1", facts, [short, *others]) == checks.check(
        "resourceslices", checks.FAILED, "node gpu-1: 1 mig device(s) published (gpu-0-mig-9-0-4), the facts found 2"
    )
