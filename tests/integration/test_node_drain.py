"""kubegpu.core.node_drain through Ansible against the test API server, whose pods/eviction
subresource checks PodDisruptionBudgets as kube-apiserver does and whose pods terminate gracefully
(tests/support/kubeapi/eviction.py, store.py; held to the real kubectl drain in
test_kubeapi_eviction.py). Pods are stored as a kubelet would leave them (Running, Ready); nothing
recreates an evicted pod unless a test does. Each test names the behaviour of kubectl drain
(k8s.io/kubectl/pkg/drain and pkg/cmd/drain) it holds the module to."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
import yaml

from tests.support.kube_modules import get_object, run_kube_module, writes
from tests.support.kubeapi.pods import DAEMONSET, budget, pod


def _drain(kubeapi, args, **kwargs):
    return run_kube_module(kubeapi, "node_drain", args, **kwargs)


def load(kubeapi, *objects):
    kubeapi.admin.load(yaml.safe_dump_all(list(objects)))
    kubeapi.admin.reset_counters()


def pod_exists(kubeapi, name, namespace="default"):
    return get_object(kubeapi, f"/api/v1/namespaces/{namespace}/pods/{name}") is not None


def unschedulable(kubeapi, node):
    return bool(get_object(kubeapi, f"/api/v1/nodes/{node}")["spec"].get("unschedulable"))


@pytest.fixture
def workload(kubeapi):
    """On gpu-node-1: two web pods, a DaemonSet pod and a mirror pod; a third web pod on gpu-node-2."""
    load(
        kubeapi,
        DAEMONSET,
        pod("web-a", "gpu-node-1"),
        pod("web-b", "gpu-node-1"),
        pod("web-c", "gpu-node-2"),
        pod("plugin-x", "gpu-node-1", owner=("DaemonSet", "gpu-plugin"), labels={"app": "ds"}),
        pod("static-etcd", "gpu-node-1", owner=None, mirror=True, labels={"tier": "control-plane"}),
    )


def test_cordon_then_uncordon_three_ways(kubeapi):
    for state, value in (("cordon", True), ("uncordon", False)):
        args = {"nodes": ["gpu-node-1", "gpu-node-2"], "state": state}
        check = _drain(kubeapi, args, check=True, diff=True)
        assert check.changed and writes(kubeapi) == []
        assert check.result["diff"]["after"]["gpu-node-1.unschedulable"] is value
        real = _drain(kubeapi, args)
        assert real.changed and unschedulable(kubeapi, "gpu-node-1") is value and unschedulable(kubeapi, "gpu-node-2") is value
        assert not unschedulable(kubeapi, "gpu-node-3")
        kubeapi.admin.reset_counters()
        assert not _drain(kubeapi, args).changed
        assert writes(kubeapi) == []


@pytest.mark.matrix
def test_drain_three_ways_evicts_through_the_eviction_api_and_skips_daemonset_and_mirror_pods(kubeapi, workload):
    args = {"nodes": ["gpu-node-1"], "state": "drain"}
    check = _drain(kubeapi, args, check=True)
    assert check.changed and sorted(check.result["nodes"][0]["evicted"]) == ["default/web-a", "default/web-b"]
    assert writes(kubeapi) == [] and pod_exists(kubeapi, "web-a")

    real = _drain(kubeapi, args)
    assert real.changed, real.result
    assert sorted(real.result["nodes"][0]["skipped"]) == ["default/plugin-x", "default/static-etcd"]
    assert unschedulable(kubeapi, "gpu-node-1")
    assert not pod_exists(kubeapi, "web-a") and not pod_exists(kubeapi, "web-b")
    assert pod_exists(kubeapi, "plugin-x") and pod_exists(kubeapi, "static-etcd") and pod_exists(kubeapi, "web-c")
    evictions = [entry["path"] for entry in writes(kubeapi) if entry["path"].endswith("/eviction")]
    assert sorted(evictions) == [
        "/api/v1/namespaces/default/pods/web-a/eviction",
        "/api/v1/namespaces/default/pods/web-b/eviction",
    ]

    kubeapi.admin.reset_counters()
    assert not _drain(kubeapi, args).changed
    assert writes(kubeapi) == []


def test_budget_that_blocks_makes_drain_wait_then_fail_naming_the_pod(kubeapi, workload):
    load(kubeapi, budget("web", min_available=3))
    started = time.monotonic()
    run = _drain(kubeapi, {"nodes": ["gpu-node-1"], "timeout": 5})
    assert run.failed
    message = run.result["msg"]
    assert "default/web-a" in message and "timeout=5s" in message, message
    assert "The disruption budget web needs 3 healthy pods and has 3 currently" in message
    assert time.monotonic() - started >= 5
    refused = [entry for entry in writes(kubeapi) if entry["path"].endswith("web-a/eviction")]
    assert len(refused) >= 3 and {entry["code"] for entry in refused} == {429}
    assert pod_exists(kubeapi, "web-a") and unschedulable(kubeapi, "gpu-node-1")


def test_budget_that_frees_up_while_waiting_lets_the_drain_finish(kubeapi, workload):
    """minAvailable 3 of the 3 web pods refuses both evictions; another client relaxes the budget
    (the server's interposition, before the third eviction request), and the retries succeed."""
    load(kubeapi, budget("web", min_available=3))
    kubeapi.admin.interpose(
        "PATCH",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web",
        {"spec": {"minAvailable": 1}},
        method="POST",
        path="/eviction$",
        skip=2,
    )
    run = _drain(kubeapi, {"nodes": ["gpu-node-1"], "timeout": 30})
    assert run.changed and not run.failed, run.result
    assert not pod_exists(kubeapi, "web-a") and not pod_exists(kubeapi, "web-b")
    for name in ("web-a", "web-b"):
        codes = [entry["code"] for entry in writes(kubeapi) if entry["path"].endswith(f"/{name}/eviction")]
        # refused first, evicted in the end (a retry racing the relaxation may be refused once more)
        assert codes[0] == 429 and codes[-1] == 201 and set(codes) == {429, 201}, (name, codes)


def test_unmanaged_and_emptydir_pods_stop_the_drain_before_any_write_unless_allowed(kubeapi):
    load(
        kubeapi,
        pod("lonely", "gpu-node-3", owner=None, labels={"app": "lonely"}),
        pod("cache", "gpu-node-3", empty_dir=True, labels={"app": "cache"}),
        pod("done", "gpu-node-3", owner=("Job", "once"), phase="Succeeded", ready=False, labels={"app": "job"}),
    )
    run = _drain(kubeapi, {"nodes": ["gpu-node-3"]})
    assert run.failed
    assert "default/lonely is managed by no controller (set force=true" in run.result["msg"]
    assert "default/cache has emptyDir data (set delete_emptydir_data=true" in run.result["msg"]
    assert writes(kubeapi) == [] and not unschedulable(kubeapi, "gpu-node-3")

    args = {"nodes": ["gpu-node-3"], "force": True, "delete_emptydir_data": True, "grace_period": 0}
    assert _drain(kubeapi, args, check=True).changed and writes(kubeapi) == []
    real = _drain(kubeapi, args)
    assert real.changed and sorted(real.result["nodes"][0]["evicted"]) == ["default/cache", "default/done", "default/lonely"]
    assert not any(pod_exists(kubeapi, name) for name in ("lonely", "cache", "done"))
    deleted = [entry for entry in writes(kubeapi) if entry["method"] == "DELETE"]
    assert [entry["path"] for entry in deleted] == ["/api/v1/namespaces/default/pods/done"]  # finished: no eviction
    assert not _drain(kubeapi, args).changed


def test_injected_500_on_an_eviction_is_retried(kubeapi, workload):
    kubeapi.admin.fail_next(count=2, code=500, method="POST", path="/eviction$")
    run = _drain(kubeapi, {"nodes": ["gpu-node-1"]})
    assert run.changed and not run.failed, run.result
    assert not pod_exists(kubeapi, "web-a") and not pod_exists(kubeapi, "web-b")


def node_pods(kubeapi, node):
    listing = get_object(kubeapi, f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")
    return sorted(item["metadata"]["name"] for item in listing["items"])


def held(name, node, **kwargs):
    """A pod whose finalizer keeps it Terminating after its deletion, until the finalizer is removed."""
    manifest = pod(name, node, **kwargs)
    manifest["metadata"]["finalizers"] = ["example.com/hold"]
    return manifest


def release(kubeapi, name):
    request = urllib.request.Request(
        f"{kubeapi.url}/api/v1/namespaces/default/pods/{name}",
        data=json.dumps({"metadata": {"finalizers": None}}).encode(),
        method="PATCH",
        headers={"Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def delete(kubeapi, name, grace=None):
    body = None if grace is None else json.dumps({"gracePeriodSeconds": grace}).encode()
    request = urllib.request.Request(
        f"{kubeapi.url}/api/v1/namespaces/default/pods/{name}",
        data=body,
        method="DELETE",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def test_every_node_is_cordoned_before_the_first_eviction_and_each_node_listed_at_its_turn(kubeapi):
    """(a) kubectl drain cordons all its nodes first (RunCordonOrUncordon in pkg/cmd/drain before any
    deleteOrEvictPods) and lists a node's pods when it drains that node (getPodsForDeletion). Here the
    replacement of web-a, created when web-a is evicted from gpu-node-1, is scheduled by the
    scheduler double on the first schedulable node by name: gpu-node-3, because gpu-node-2 is
    already cordoned; and whatever is on gpu-node-2 at its turn is drained."""
    kubeapi.admin.set_ready_controller(True)
    load(kubeapi, pod("web-a", "gpu-node-1"), pod("web-b", "gpu-node-2"))
    replacement = pod("web-a-2", "")
    del replacement["spec"]["nodeName"]
    del replacement["status"]
    kubeapi.admin.interpose(
        "POST", "/api/v1/namespaces/default/pods", replacement, "application/json", method="POST", path="web-a/eviction$"
    )
    run = _drain(kubeapi, {"nodes": ["gpu-node-1", "gpu-node-2"]})
    assert run.changed and not run.failed, run.result
    assert node_pods(kubeapi, "gpu-node-1") == [] and node_pods(kubeapi, "gpu-node-2") == []
    assert node_pods(kubeapi, "gpu-node-3") == ["web-a-2"]
    log = [entry for entry in writes(kubeapi) if entry["userAgent"] != "kubeapi-interposed-writer"]
    first_eviction = next(i for i, entry in enumerate(log) if entry["path"].endswith("/eviction"))
    cordons = [i for i, entry in enumerate(log) if entry["method"] == "PATCH" and "/nodes/" in entry["path"]]
    assert len(cordons) == 2 and max(cordons) < first_eviction, log


def _drain_releasing(kubeapi, args, names, *, once):
    """node_drain with ``args`` while a thread removes the finalizers of the pods ``names`` as soon as ``once()``
    is true (a condition on the server's request log), as a controller would finish its clean-up."""
    done = threading.Event()

    def release_once():
        while not done.is_set():
            if once():
                for name in names:
                    release(kubeapi, name)
                return
            time.sleep(0.1)

    releaser = threading.Thread(target=release_once, daemon=True)
    releaser.start()
    try:
        return _drain(kubeapi, args)
    finally:
        done.set()
        releaser.join()


def test_a_pod_already_terminating_is_waited_for(kubeapi):
    """(b) kubectl's skipDeletedFilter keeps terminating pods (skipWaitForDeleteTimeout 0) and
    waitForDelete waits until each is gone. A terminating pod a finalizer holds: released once the
    drain has looked at the node again after its turn (it is waiting), it is gone when the drain
    returns; never released, the drain fails at its timeout naming it."""
    load(kubeapi, held("going", "gpu-node-1", labels={"app": "going"}), held("stuck", "gpu-node-2", labels={"app": "stuck"}))
    delete(kubeapi, "going")
    delete(kubeapi, "stuck")
    assert pod_exists(kubeapi, "going") and pod_exists(kubeapi, "stuck")

    def waiting():  # the drain listed gpu-node-1's pods before any write, at its turn, then while waiting
        looks = [entry for entry in kubeapi.admin.requests() if "gpu-node-1" in str(entry["query"].get("fieldSelector"))]
        return len(looks) >= 3

    run = _drain_releasing(kubeapi, {"nodes": ["gpu-node-1"], "timeout": 20}, ["going"], once=waiting)
    assert run.changed and not run.failed, run.result
    assert not pod_exists(kubeapi, "going")

    run = _drain(kubeapi, {"nodes": ["gpu-node-2"], "timeout": 3})
    assert run.failed and "still terminating after timeout=3s: default/stuck" in run.result["msg"], run.result
    assert pod_exists(kubeapi, "stuck") and unschedulable(kubeapi, "gpu-node-2")


def test_all_pods_of_a_node_are_evicted_before_waiting_for_any(kubeapi):
    """(c) kubectl's evictPods sends every pod's eviction at once and waits for each afterwards. Twelve
    pods each held by a finalizer: the finalizers are removed only once all twelve evictions have
    reached the server, so a drain that waits for a pod before evicting the next never finishes."""
    names = [f"job-{index:02d}" for index in range(12)]
    load(kubeapi, *[held(name, "gpu-node-1") for name in names])

    def all_evicted():
        return len({entry["path"] for entry in writes(kubeapi) if entry["path"].endswith("/eviction")}) == len(names)

    run = _drain_releasing(kubeapi, {"nodes": ["gpu-node-1"], "timeout": 8}, names, once=all_evicted)
    assert run.changed and not run.failed, run.result
    assert node_pods(kubeapi, "gpu-node-1") == []
    evictions = [entry for entry in writes(kubeapi) if entry["path"].endswith("/eviction")]
    assert len(evictions) == len(names) and {entry["code"] for entry in evictions} == {201}


def test_a_pod_under_two_budgets_fails_at_once_naming_it(kubeapi, workload):
    """(d) kube-apiserver refuses to evict a pod that two PodDisruptionBudgets select with a 500
    InternalError; kubectl's evictPods retries only 429 and fails at once on it. One eviction
    request per pod, no retries."""
    load(kubeapi, budget("web", min_available=0), budget("web-too", max_unavailable=1))
    run = _drain(kubeapi, {"nodes": ["gpu-node-1"], "api_timeout": 30, "timeout": 60})
    assert run.failed
    message = run.result["msg"]
    assert "evicting pod default/web-a" in message and "more than one PodDisruptionBudget" in message, message
    for name in ("web-a", "web-b"):
        assert [entry["code"] for entry in writes(kubeapi) if entry["path"].endswith(f"/{name}/eviction")] == [500]
    assert pod_exists(kubeapi, "web-a") and unschedulable(kubeapi, "gpu-node-1")


def test_a_pod_of_a_daemonset_that_is_gone_is_refused_unless_force(kubeapi):
    """(e) kubectl's daemonSetFilter: a pod whose DaemonSet exists is skipped (--ignore-daemonsets), one
    whose DaemonSet is not found is an error unless --force, then evicted; a finished DaemonSet pod
    is deleted. Refused before any write, cordon included."""
    load(
        kubeapi,
        DAEMONSET,
        pod("plugin-x", "gpu-node-3", owner=("DaemonSet", "gpu-plugin"), labels={"app": "ds"}),
        pod("orphan", "gpu-node-3", owner=("DaemonSet", "gone-plugin"), labels={"app": "gone"}),
        pod("ds-done", "gpu-node-3", owner=("DaemonSet", "gone-plugin"), phase="Succeeded", ready=False, labels={"app": "x"}),
    )
    run = _drain(kubeapi, {"nodes": ["gpu-node-3"]})
    assert run.failed
    message = run.result["msg"]
    assert "default/orphan belongs to DaemonSet default/gone-plugin, which does not exist (set force=true" in message
    assert "ds-done" not in message and "plugin-x" not in message
    assert writes(kubeapi) == [] and not unschedulable(kubeapi, "gpu-node-3")

    real = _drain(kubeapi, {"nodes": ["gpu-node-3"], "force": True})
    assert real.changed and not real.failed, real.result
    assert sorted(real.result["nodes"][0]["evicted"]) == ["default/ds-done", "default/orphan"]
    assert real.result["nodes"][0]["skipped"] == ["default/plugin-x"]
    assert node_pods(kubeapi, "gpu-node-3") == ["plugin-x"]
    assert not _drain(kubeapi, {"nodes": ["gpu-node-3"], "force": True}).changed


BAD_INPUTS = [
    ({"nodes": ["ghost"]}, ["not found", "ghost"]),
    ({"nodes": ["bad/name"]}, ["invalid node name 'bad/name'"]),
    ({"nodes": ["gpu-node-1"], "timeout": 0}, ["timeout=0"]),
    ({"nodes": ["gpu-node-1"], "grace_period": -1}, ["grace_period=-1"]),
    ({"nodes": ["gpu-node-1"], "state": "evict"}, ["state", "evict"]),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_fails_before_any_write(kubeapi, args, words):
    run = _drain(kubeapi, args)
    assert run.failed, run.result
    for word in words:
        assert word in run.result["msg"], (word, run.result["msg"])
    assert writes(kubeapi) == []
