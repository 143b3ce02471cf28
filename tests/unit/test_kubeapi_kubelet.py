"""The scheduler and kubelet doubles of the test API server's ready controller (tests/support/kubeapi/kubelet.py):
each rule that can keep a smoke pod from completing, checked against kube-scheduler's and the kubelet's behaviour."""

from __future__ import annotations

import pytest

from tests.support.kubeapi import kubelet
from tests.support.kubeapi.nodes import gpu_node
from tests.support.kubeapi.store import Store

STAMP = "2026-01-01T00:00:00Z"


def pod(name="smoke", node=None, *, limits=None, tolerations=None, affinity_node=None, scheduler=None, restart="Never", **spec):
    body = {
        "restartPolicy": restart,
        "containers": [
            {"name": "c", "image": "x", "resources": {"limits": limits if limits is not None else {"nvidia.com/gpu": "1"}}}
        ],
        **spec,
    }
    if node:
        body["nodeName"] = node
    if tolerations:
        body["tolerations"] = tolerations
    if scheduler:
        body["schedulerName"] = scheduler
    if affinity_node:
        body["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [affinity_node]}]}
                    ]
                }
            }
        }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": body}


def tainted(node: dict, *taints: dict) -> dict:
    node["spec"]["taints"] = list(taints)
    return node


NODES = [gpu_node("a", gpus=2), gpu_node("b", gpus=0), gpu_node("c", gpus=1, labels={"gpu": "on"})]


def test_affinity_on_the_node_name_picks_that_node():
    assert kubelet.schedule(pod(affinity_node="c"), NODES, []) == ("c", "")


def test_a_node_without_the_gpu_resource_is_insufficient_with_the_schedulers_message():
    node, message = kubelet.schedule(pod(affinity_node="b"), NODES, [])
    assert node is None
    assert (
        message == "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node affinity/selector."
    )


def test_gpus_used_by_running_pods_count_and_finished_ones_do_not():
    running = pod("other", node="c")
    running["status"] = {"phase": "Running"}
    assert kubelet.schedule(pod(affinity_node="c"), NODES, [running])[0] is None
    running["status"] = {"phase": "Succeeded"}
    assert kubelet.schedule(pod(affinity_node="c"), NODES, [running])[0] == "c"


@pytest.mark.parametrize(
    ("toleration", "fits"),
    [
        (None, False),
        ({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "gpu", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),
        ({"key": "gpu", "operator": "Equal", "value": "x", "effect": "NoSchedule"}, False),
        ({"key": "gpu", "operator": "Exists", "effect": "NoExecute"}, False),
    ],
)
def test_a_noschedule_taint_needs_a_matching_toleration(toleration, fits):
    nodes = [tainted(gpu_node("t", gpus=1), {"key": "gpu", "effect": "NoSchedule"})]
    node, message = kubelet.schedule(pod(affinity_node="t", tolerations=[toleration] if toleration else None), nodes, [])
    assert (node == "t") is fits
    if not fits:
        assert message == "0/1 nodes are available: 1 node(s) had untolerated taint {gpu: }."


def test_prefer_no_schedule_taints_do_not_block():
    nodes = [tainted(gpu_node("t", gpus=1), {"key": "gpu", "effect": "PreferNoSchedule"})]
    assert kubelet.schedule(pod(affinity_node="t"), nodes, [])[0] == "t"


def test_hami_scheduler_ignores_gpumem_and_gpucores_but_not_gpu():
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1024", "nvidia.com/gpucores": "10"}
    assert kubelet.schedule(pod(affinity_node="a", limits=limits, scheduler="hami-scheduler"), NODES, [])[0] == "a"
    node, message = kubelet.schedule(pod(affinity_node="a", limits=limits), NODES, [])
    assert node is None and "1 Insufficient nvidia.com/gpucores, Insufficient nvidia.com/gpumem" in message
    assert kubelet.schedule(pod(affinity_node="b", limits=limits, scheduler="hami-scheduler"), NODES, [])[0] is None


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ({"key": "gpu", "operator": "In", "values": ["on"]}, ["c"]),
        ({"key": "gpu", "operator": "NotIn", "values": ["on"]}, ["a", "b"]),
        ({"key": "gpu", "operator": "Exists"}, ["c"]),
        ({"key": "gpu", "operator": "DoesNotExist"}, ["a", "b"]),
    ],
)
def test_label_expressions_of_node_affinity(expression, matches):
    spec = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}
        }
    }
    assert [node["metadata"]["name"] for node in NODES if kubelet.matches_affinity(pod(affinity=spec), node)] == matches


def test_run_to_completion_pod_succeeds_and_a_service_pod_runs():
    done = kubelet.pod_status(pod(node="a"), NODES[0], [], STAMP)
    assert done["phase"] == "Succeeded"
    assert done["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    ready = {item["type"]: item["status"] for item in done["conditions"]}
    assert ready["Ready"] == "False" and ready["PodScheduled"] == "True"
    running = kubelet.pod_status(pod(node="a", restart="Always"), NODES[0], [], STAMP)
    assert running["phase"] == "Running" and {item["type"]: item["status"] for item in running["conditions"]}["Ready"] == "True"


def test_init_containers_complete_in_order_and_a_never_pod_that_only_sleeps_keeps_running():
    """As the kubelet reports a pod whose init containers ran: each terminated 0 (Completed) in
    initContainerStatuses, in order, then the main containers; a main container that only sleeps keeps it Running."""
    inits = [{"name": "smoke", "image": "x", "command": ["nvidia-smi", "-L"]}, {"name": "second", "image": "x"}]
    waiting = pod(node="a", initContainers=inits)
    waiting["spec"]["containers"] = [{"name": "hold", "image": "x", "command": ["sleep", "300"]}]
    status = kubelet.pod_status(waiting, NODES[0], [], STAMP)
    assert status["phase"] == "Running"
    assert [
        (item["name"], item["state"]["terminated"]["exitCode"], item["state"]["terminated"]["reason"])
        for item in status["initContainerStatuses"]
    ] == [("smoke", 0, "Completed"), ("second", 0, "Completed")]
    assert status["containerStatuses"][0]["state"] == {"running": {"startedAt": STAMP}}
    assert {item["type"]: item["status"] for item in status["conditions"]}["Initialized"] == "True"
    # a run-to-completion pod with init containers and a main container that does work still completes
    done = kubelet.pod_status(pod(node="a", initContainers=inits), NODES[0], [], STAMP)
    assert done["phase"] == "Succeeded" and len(done["initContainerStatuses"]) == 2
    # the narrow rule: sleep as the command (else the args), by any path; a shell running sleep is work
    assert kubelet.only_waits({"args": ["/bin/sleep", "1"]}) and not kubelet.only_waits({"command": ["sh", "-c", "sleep 1"]})
    assert "initContainerStatuses" not in kubelet.pod_status(pod(node="a"), NODES[0], [], STAMP)


def test_kubelet_admission_refuses_more_gpus_than_the_node_has_and_drops_ones_it_does_not_advertise():
    over = kubelet.pod_status(pod(node="c", limits={"nvidia.com/gpu": "2"}), NODES[2], [], STAMP)
    assert over["phase"] == "Failed" and over["reason"] == "OutOfnvidia.com/gpu"
    assert "requested: 2, capacity: 1" in over["message"]
    # bound by nodeName to a node without the resource: the kubelet drops the unknown extended resource
    assert kubelet.pod_status(pod(node="b"), NODES[1], [], STAMP)["phase"] == "Succeeded"


def test_a_missing_or_not_ready_node_leaves_the_pod_pending():
    assert kubelet.pod_status(pod(node="x"), None, [], STAMP)["phase"] == "Pending"
    assert kubelet.pod_status(pod(node="x"), gpu_node("x", ready=False), [], STAMP)["phase"] == "Pending"


def test_store_binds_and_completes_a_pod_only_with_the_ready_controller():
    store = Store()
    store.reset()
    nodes = store.catalogue.find_kind("", "v1", "Node")
    pods = store.catalogue.find_kind("", "v1", "Pod")
    store.create(nodes, None, gpu_node("gpu-1", gpus=1), manager="t")
    store.create(pods, "default", pod("off", affinity_node="gpu-1"), manager="t")
    assert store.get(pods, "default", "off")["status"] == {"phase": "Pending"}
    store.ready_controller = True
    store.create(pods, "default", pod("on", affinity_node="gpu-1"), manager="t")
    stored = store.get(pods, "default", "on")
    assert stored["spec"]["nodeName"] == "gpu-1" and stored["status"]["phase"] == "Succeeded"
    store.create(pods, "default", pod("second", affinity_node="gpu-1", restart="Always"), manager="t")
    assert store.get(pods, "default", "second")["status"]["phase"] == "Running"  # the first one has finished
    store.create(pods, "default", pod("third", affinity_node="gpu-1"), manager="t")
    third = store.get(pods, "default", "third")["status"]
    assert third["phase"] == "Pending" and "1 Insufficient nvidia.com/gpu" in third["conditions"][0]["message"]
