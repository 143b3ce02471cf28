"""kubegpu.core.node_taints through Ansible against the test API server (three GPU nodes,
gpu-node-1..3). The "other writer" is the server's interposition: it makes another client's
PATCH just before serving ours, deterministically between our read and our write."""

from __future__ import annotations

import pytest

from tests.support.kube_modules import get_object, run_kube_module, writes

NODES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _taints(kubeapi, args, **kwargs):
    return run_kube_module(kubeapi, "node_taints", args, **kwargs)


def taints_of(kubeapi, name):
    return (get_object(kubeapi, f"/api/v1/nodes/{name}").get("spec") or {}).get("taints") or []


@pytest.mark.matrix
def test_add_check_mode_then_real_run_then_no_change(kubeapi, kubectl):
    args = {"nodes": ["gpu-node-1", "gpu-node-2"], "taints": [GPU_TAINT]}
    check = _taints(kubeapi, args, check=True, diff=True)
    assert check.changed and not check.failed
    assert check.result["diff"]["after"]["gpu-node-1"] == [GPU_TAINT]
    assert writes(kubeapi) == [] and taints_of(kubeapi, "gpu-node-1") == []

    real = _taints(kubeapi, args, diff=True)
    assert real.changed and real.result["diff"] == check.result["diff"]
    assert taints_of(kubeapi, "gpu-node-2") == [GPU_TAINT]
    assert taints_of(kubeapi, "gpu-node-3") == []
    # real kubectl reads the taint back as kubectl taint would have written it
    assert "nvidia.com/gpu=present:NoSchedule" in kubectl("describe", "node", "gpu-node-1").stdout

    kubeapi.admin.reset_counters()
    again = _taints(kubeapi, args)
    assert not again.changed and kubeapi.admin.counters() == {"list nodes": 1}


def test_remove_check_mode_then_real_run_then_no_change_keeps_other_taints(kubeapi, kubectl):
    kubectl("taint", "node", "gpu-node-1", "nvidia.com/gpu=present:NoSchedule", "nvidia.com/gpu=present:NoExecute")
    kubectl("taint", "node", "gpu-node-1", "dedicated=ml:PreferNoSchedule")
    kubeapi.admin.reset_counters()
    args = {"selector": "nvidia.com/gpu.present=true", "taints": [{"key": "nvidia.com/gpu"}], "state": "absent"}
    check = _taints(kubeapi, args, check=True)
    assert check.changed and len(taints_of(kubeapi, "gpu-node-1")) == 3 and writes(kubeapi) == []
    real = _taints(kubeapi, args)
    assert [entry["name"] for entry in real.result["nodes"] if entry["changed"]] == ["gpu-node-1"]
    assert taints_of(kubeapi, "gpu-node-1") == [{"key": "dedicated", "value": "ml", "effect": "PreferNoSchedule"}]
    assert not _taints(kubeapi, args).changed


def test_new_value_replaces_the_value_of_the_same_key_and_effect(kubeapi, kubectl):
    kubectl("taint", "node", "gpu-node-3", "nvidia.com/gpu=old:NoSchedule")
    args = {"nodes": ["gpu-node-3"], "taints": [GPU_TAINT]}
    assert _taints(kubeapi, args).changed
    assert taints_of(kubeapi, "gpu-node-3") == [GPU_TAINT]
    assert not _taints(kubeapi, args).changed


def test_taint_added_by_another_writer_between_read_and_write_survives(kubeapi):
    other = {"key": "maintenance", "value": "disk", "effect": "NoExecute"}
    kubeapi.admin.interpose(
        "PATCH",
        "/api/v1/nodes/gpu-node-2",
        {"spec": {"taints": [other]}},
        method="PATCH",
        path="/api/v1/nodes/gpu-node-2$",
    )
    run = _taints(kubeapi, {"nodes": NODES, "taints": [GPU_TAINT]})
    assert run.changed, run.result
    entry = next(item for item in run.result["nodes"] if item["name"] == "gpu-node-2")
    assert entry["conflicts"] == 1
    assert taints_of(kubeapi, "gpu-node-2") == [other, GPU_TAINT]
    codes = [(entry["userAgent"], entry["code"]) for entry in kubeapi.admin.requests() if entry["method"] == "PATCH"]
    assert ("kubeapi-interposed-writer", 200) in codes
    assert sum(1 for agent, code in codes if code == 409 and agent == "kubegpu.core") == 1


@pytest.mark.parametrize(("code", "count"), [(409, 2), (429, 1), (500, 2)], ids=["conflict", "too-many", "internal"])
def test_injected_faults_converge(kubeapi, code, count):
    kubeapi.admin.fail_next(count=count, code=code, method="PATCH", path="/nodes/gpu-node-1$")
    args = {"nodes": NODES, "taints": [GPU_TAINT]}
    run = _taints(kubeapi, args)
    assert run.changed and not run.failed, run.result
    assert all(taints_of(kubeapi, name) == [GPU_TAINT] for name in NODES)
    assert not _taints(kubeapi, args).changed


def test_a_write_applied_whose_response_is_lost_reports_the_change(kubeapi):
    """The server applies the PATCH of gpu-node-1 and the connection closes before its answer; the client sends it
    again, meets 409 (its own write changed the resourceVersion), rereads, finds the taint there: the task's write
    happened, so the node is reported changed, with the taints read before the first attempt as the diff's before."""
    kubeapi.admin.drop_responses(method="PATCH", path="/nodes/gpu-node-1$")
    args = {"nodes": ["gpu-node-1"], "taints": [GPU_TAINT]}
    run = _taints(kubeapi, args, diff=True)
    assert run.changed and not run.failed, run.result
    entry = next(item for item in run.result["nodes"] if item["name"] == "gpu-node-1")
    assert entry["changed"] and entry["taints"] == [GPU_TAINT], entry
    assert run.result["diff"]["before"]["gpu-node-1"] == [] and run.result["diff"]["after"]["gpu-node-1"] == [GPU_TAINT]
    patches = [(item["code"], item["dropped"]) for item in writes(kubeapi) if item["path"] == "/api/v1/nodes/gpu-node-1"]
    assert patches == [(200, True), (409, False)], patches
    assert taints_of(kubeapi, "gpu-node-1") == [GPU_TAINT]
    assert not _taints(kubeapi, args).changed


BAD_INPUTS = [
    ({"nodes": ["gpu-node-1"], "taints": [{"key": "nvidia.com/gpu", "effect": "NoScheduled"}]}, ["NoScheduled", "effect"]),
    ({"nodes": ["gpu-node-1"], "taints": [{"key": "bad key", "effect": "NoSchedule"}]}, ["invalid taint key 'bad key'"]),
    ({"nodes": ["gpu-node-1"], "taints": [{"key": "k", "value": "v" * 64, "effect": "NoSchedule"}]}, ["'k'", "63"]),
    ({"nodes": ["gpu-node-1"], "taints": [{"key": "k"}]}, ["'k' has no effect"]),
    ({"nodes": ["gpu-node-1", "ghost"], "taints": [GPU_TAINT]}, ["not found", "ghost"]),
    ({"nodes": ["a/b"], "taints": [GPU_TAINT]}, ["invalid node name 'a/b'"]),
    # kubectl taint: "duplicated taints with the same key and effect"; the API server: "taints must be unique by key
    # and effect pair" (validateNodeTaints): a node holds one taint per key and effect
    (
        {"nodes": ["gpu-node-1"], "taints": [GPU_TAINT, {**GPU_TAINT, "value": "other"}]},
        ["'nvidia.com/gpu=present:NoSchedule' and 'nvidia.com/gpu=other:NoSchedule'", "same key and effect"],
    ),
    (
        {
            "nodes": ["gpu-node-1"],
            "taints": [{"key": "k", "effect": "NoExecute"}, {"key": "k", "value": "v", "effect": "NoExecute"}],
        },
        ["'k:NoExecute' and 'k=v:NoExecute'"],
    ),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_fails_before_any_write(kubeapi, args, words):
    run = _taints(kubeapi, args)
    assert run.failed, run.result
    for word in words:
        assert word in run.result["msg"], (word, run.result["msg"])
    assert writes(kubeapi) == []
