"""kubegpu.core.node_labels through Ansible against the test API server (three GPU nodes,
gpu-node-1..3; see tests/support/kubeapi/README.md for what the server emulates)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

from tests.support.kube_modules import node_labels, run_kube_module, writes
from tests.support.kubeapi.nodes import generate_nodes, nodes_yaml

NODES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]


def _labels(kubeapi, args, **kwargs):
    return run_kube_module(kubeapi, "node_labels", args, **kwargs)


@pytest.mark.matrix
def test_per_node_labels_check_mode_then_real_run_then_no_change(kubeapi):
    args = {
        "nodes": [
            {"name": "gpu-node-1", "labels": {"gpu": "on", "nvidia.com/gpu.count": 2}},
            {"name": "gpu-node-2", "labels": {"gpu": "on", "nvidia.com/gpu.present": None}},
        ]
    }
    check = _labels(kubeapi, args, check=True, diff=True)
    assert check.changed and not check.failed
    assert check.result["diff"]["after"]["gpu-node-1"] == {"gpu": "on", "nvidia.com/gpu.count": "2"}
    assert check.result["diff"]["before"]["gpu-node-2"] == {"nvidia.com/gpu.present": "true"}
    assert writes(kubeapi) == []
    assert "gpu" not in node_labels(kubeapi, "gpu-node-1")

    real = _labels(kubeapi, args, diff=True)
    assert real.changed and real.result["diff"] == check.result["diff"]
    assert node_labels(kubeapi, "gpu-node-1")["nvidia.com/gpu.count"] == "2"
    assert "nvidia.com/gpu.present" not in node_labels(kubeapi, "gpu-node-2")
    assert node_labels(kubeapi, "gpu-node-2")["kubernetes.io/hostname"] == "gpu-node-2"  # others' labels kept

    kubeapi.admin.reset_counters()
    again = _labels(kubeapi, args)
    assert not again.changed, again.result
    assert kubeapi.admin.counters() == {"list nodes": 1}


def test_one_list_and_one_patch_per_differing_node_only(kubeapi):
    kubeapi.admin.load(nodes_yaml(generate_nodes(40, prefix="bulk-")))
    args = {"nodes": [{"name": f"bulk-{index:04d}", "labels": {"a.io/x": "1", "b": "2"}} for index in range(40)]}
    first = _labels(kubeapi, {**args, "parallel": 8})
    assert first.changed and all(entry["changed"] for entry in first.result["nodes"])
    assert kubeapi.admin.counters() == {"list nodes": 1, "patch nodes": 40}
    # change one node behind the module's back: only that one is patched again
    kubeapi.admin.reset_counters()
    args["nodes"][7]["labels"]["b"] = "3"
    second = _labels(kubeapi, args)
    assert [entry["name"] for entry in second.result["nodes"] if entry["changed"]] == ["bulk-0007"]
    assert kubeapi.admin.counters() == {"list nodes": 1, "patch nodes": 1}


def test_a_no_op_run_on_a_fleet_reads_metadata_only_and_sends_no_patch(kubeapi):
    """Labels are metadata: the LIST pages are negotiated as ``PartialObjectMetadataList`` (the Accept header
    client-go's metadata client sends), answered by the server as kube-apiserver answers them (response.go), and
    move fewer bytes than the whole Nodes (status, images, conditions) a plain LIST returns."""
    count = 501  # two pages of 500
    fleet = generate_nodes(count, prefix="fleet-")
    for node in fleet:  # labelled by an earlier run: this run has nothing to do
        node["metadata"]["labels"]["kubegpu.io/pool"] = "a"
    kubeapi.admin.load(nodes_yaml(fleet))
    kubeapi.admin.reset_counters()
    args = {"nodes": [{"name": node["metadata"]["name"], "labels": {"kubegpu.io/pool": "a"}} for node in fleet]}
    again = _labels(kubeapi, args)
    assert not again.changed and len(again.result["nodes"]) == count
    log = kubeapi.admin.requests()
    assert [(entry["method"], entry["verb"], entry["resource"]) for entry in log] == [("GET", "list", "nodes")] * 2
    assert all("as=PartialObjectMetadataList;g=meta.k8s.io;v=v1" in entry["accept"].split(",")[0] for entry in log)
    metadata_bytes = sum(entry["bytes"] for entry in log)
    # the same two pages as whole Nodes (a plain LIST, as the module sent before)
    full_bytes, token = 0, ""
    for _page in range(2):
        url = f"{kubeapi.url}/api/v1/nodes?limit=500&continue={urllib.parse.quote(token)}"
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
        full_bytes += len(body)
        token = json.loads(body)["metadata"].get("continue", "")
    assert not token
    assert metadata_bytes < full_bytes


def test_selector_labels_every_matching_node(kubeapi):
    args = {"selector": "nvidia.com/gpu.present=true", "labels": {"kubegpu.io/managed": True}}
    check = _labels(kubeapi, args, check=True)
    assert check.changed and writes(kubeapi) == []
    real = _labels(kubeapi, args)
    assert sorted(entry["name"] for entry in real.result["nodes"]) == NODES
    assert all(node_labels(kubeapi, name)["kubegpu.io/managed"] == "true" for name in NODES)
    assert not _labels(kubeapi, args).changed
    kubeapi.admin.reset_counters()
    none = _labels(kubeapi, {"selector": "no-such=label", "labels": {"a": "b"}})
    assert not none.changed and none.result["nodes"] == []
    assert any("matched no node" in warning for warning in none.result.get("warnings", [])), none.result


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ({"nvidia.com/gpu.product": "Tesla-T4"}, "falls under exclusive_prefixes"),
        ({"nvidia.com/gpu.present": None}, "sets it to null"),
    ],
)
def test_a_task_that_would_remove_the_label_its_selector_requires_is_refused_before_any_request(kubeapi, labels, why):
    """Else the first run strips the selected label from every node and the next run matches none."""
    args = {"selector": "nvidia.com/gpu.present=true", "labels": labels, "exclusive_prefixes": ["nvidia.com/"]}
    kubeapi.admin.reset_counters()
    run = _labels(kubeapi, args)
    assert run.failed and "'nvidia.com/gpu.present'" in run.result["msg"] and why in run.result["msg"], run.result
    assert kubeapi.admin.requests() == [], "no request reached the API server"
    assert all(node_labels(kubeapi, name)["nvidia.com/gpu.present"] == "true" for name in NODES)


def test_exclusive_prefix_removes_stale_labels_under_it_only(kubeapi):
    _labels(kubeapi, {"nodes": [{"name": "gpu-node-1", "labels": {"kubegpu.io/old": "1", "other.io/keep": "1"}}]})
    args = {"nodes": [{"name": "gpu-node-1", "labels": {"kubegpu.io/new": "1"}}], "exclusive_prefixes": ["kubegpu.io/"]}
    check = _labels(kubeapi, args, check=True)
    assert check.changed and check.result["nodes"][0]["removed"] == ["kubegpu.io/old"]
    assert "kubegpu.io/old" in node_labels(kubeapi, "gpu-node-1")
    assert _labels(kubeapi, args).changed
    labels = node_labels(kubeapi, "gpu-node-1")
    assert "kubegpu.io/old" not in labels and labels["kubegpu.io/new"] == "1" and labels["other.io/keep"] == "1"
    assert not _labels(kubeapi, args).changed


def test_missing_ignore_labels_the_others_and_lists_the_missing(kubeapi):
    args = {"nodes": [{"name": "gpu-node-1", "labels": {"a": "b"}}, {"name": "ghost", "labels": {"a": "b"}}], "missing": "ignore"}
    run = _labels(kubeapi, args)
    assert run.changed and run.result["missing"] == ["ghost"]
    assert node_labels(kubeapi, "gpu-node-1")["a"] == "b"


@pytest.mark.parametrize(
    ("code", "count"),
    [(409, 1), (429, 2), (500, 2), (503, 1)],
    ids=["conflict", "too-many-requests", "internal-error", "unavailable"],
)
def test_injected_patch_faults_converge(kubeapi, code, count):
    kubeapi.admin.fail_next(count=count, code=code, method="PATCH", path="/nodes/gpu-node-2$")
    args = {"nodes": [{"name": name, "labels": {"fault": "survived"}} for name in NODES]}
    run = _labels(kubeapi, args)
    assert run.changed and not run.failed, run.result
    assert all(node_labels(kubeapi, name)["fault"] == "survived" for name in NODES)
    codes = [entry["code"] for entry in kubeapi.admin.requests() if entry["path"].endswith("/gpu-node-2")]
    assert codes[:count] == [code] * count and 200 in codes
    assert not _labels(kubeapi, args).changed


def test_429_waits_for_retry_after(kubeapi):
    """The server answers an injected 429 with ``Retry-After: 1``; the retry comes no sooner."""
    kubeapi.admin.fail_next(count=1, code=429, method="GET", path="/api/v1/nodes$")
    run = _labels(kubeapi, {"nodes": [{"name": "gpu-node-1", "labels": {"a": "b"}}]})
    assert run.changed, run.result
    log = [entry for entry in kubeapi.admin.requests() if entry["path"] == "/api/v1/nodes"]
    assert [entry["code"] for entry in log] == [429, 200]
    assert log[1]["time"] - log[0]["time"] >= 0.95


def test_lasting_500_fails_naming_server_node_and_status(kubeapi):
    kubeapi.admin.fail_next(count=1000, code=500, method="PATCH", path="/nodes/gpu-node-3$")
    run = _labels(kubeapi, {"nodes": [{"name": name, "labels": {"x": "y"}} for name in NODES], "api_timeout": 2})
    assert run.failed
    message = run.result["msg"]
    assert "gpu-node-3" in message and "HTTP 500" in message and kubeapi.url in message, message
    assert run.result["failed_nodes"] == ["gpu-node-3"]
    kubeapi.admin.clear_faults()
    assert node_labels(kubeapi, "gpu-node-1")["x"] == "y"


BAD_INPUTS = [
    ({"nodes": [{"name": "gpu-node-1", "labels": {"bad key!": "v"}}]}, ["'bad key!'", "gpu-node-1"]),
    ({"nodes": [{"name": "gpu-node-1", "labels": {"k": "v" * 64}}]}, ["'k'", "gpu-node-1", "63", "64"]),
    ({"nodes": [{"name": "gpu-node-1", "labels": {"k": "-dash"}}]}, ["'-dash'", "'k'"]),
    ({"nodes": [{"name": "gpu-node-1", "labels": {"Upper.Case/k": "v"}}]}, ["'Upper.Case'", "DNS subdomain"]),
    ({"nodes": [{"name": "gpu-node-1", "labels": {"k": ["a"]}}]}, ["must be a string", "'k'"]),
    ({"nodes": [{"name": "node/evil", "labels": {"k": "v"}}]}, ["invalid node name 'node/evil'"]),
    ({"nodes": [{"name": "ghost", "labels": {"k": "v"}}, {"name": "gpu-node-1", "labels": {"k": "v"}}]}, ["not found", "ghost"]),
    ({"nodes": [{"name": "gpu-node-1", "labels": {}}, {"name": "gpu-node-1", "labels": {}}]}, ["listed twice"]),
    ({"nodes": [], "exclusive_prefixes": ["not a prefix/"]}, ["exclusive_prefixes", "'not a prefix/'"]),
    ({"nodes": [], "parallel": 0}, ["parallel=0"]),
    ({"nodes": [{"labels": {"a": "b"}}]}, ["nodes[0] has no name"]),
    ({"nodes": [{"name": "gpu-node-1", "label": {"a": "b"}}]}, ["nodes[0] has unknown keys label"]),
    ({"selector": "gpu=on"}, ["labels"]),
    ({"nodes": [], "kubeconfig": "/nonexistent/kubeconfig"}, ["/nonexistent/kubeconfig", "not found"]),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_fails_before_any_write(kubeapi, args, words):
    run = _labels(kubeapi, args)
    assert run.failed, run.result
    for word in words:
        assert word in run.result["msg"], (word, run.result["msg"])
    assert writes(kubeapi) == []
