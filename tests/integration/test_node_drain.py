"""kubegpu.core.node_drain through Ansible against the test API server, whose pods/eviction
subresource checks PodDisruptionBudgets as kube-apiserver does (tests/support/kubeapi/eviction.py;
held to the real kubectl drain in test_kubeapi_eviction.py). Pods are stored as a kubelet would
leave them (Running, Ready); nothing recreates an evicted pod, as no controller runs."""

from __future__ import annotations

import time

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
