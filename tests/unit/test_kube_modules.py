"""Pure parts of the Kubernetes modules: label and taint edits, values merging, object comparison,
Retry-After parsing and the test server's budget selector matching."""

from __future__ import annotations

import email.utils
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._helm import deep_merge
from ansible_collections.kubegpu.core.plugins.module_utils._kube import _retry_after, not_served, object_name_problem
from ansible_collections.kubegpu.core.plugins.modules.k8s_apply import comparable, load_documents
from ansible_collections.kubegpu.core.plugins.modules.node_labels import desired_labels, label_changes, prefixes
from ansible_collections.kubegpu.core.plugins.modules.node_taints import check_taint, wanted_taints
from tests.support.kubeapi.eviction import selector_matches


@pytest.mark.parametrize(
    ("current", "wanted", "owned", "changes"),
    [
        ({}, {"a": "1"}, [], {"a": "1"}),
        ({"a": "1"}, {"a": "1"}, [], {}),
        ({"a": "1"}, {"a": None}, [], {"a": None}),
        ({}, {"a": None}, [], {}),
        ({"x.io/old": "1", "y.io/keep": "1"}, {"x.io/new": "2"}, ["x.io/"], {"x.io/new": "2", "x.io/old": None}),
        ({"x.io/same": "1"}, {"x.io/same": "1"}, ["x.io/"], {}),
        ({"x.iox/other": "1"}, {}, ["x.io/"], {}),
    ],
)
def test_label_changes_are_the_minimal_merge_patch(current, wanted, owned, changes):
    assert label_changes(current, wanted, owned) == changes


def test_label_values_from_yaml_scalars_become_strings_and_bad_ones_are_named():
    assert desired_labels({"a": True, "b": 8, "c": None, "d": "x"}, "on node 'n'") == {"a": "true", "b": "8", "c": None, "d": "x"}
    with pytest.raises(KubeGPUError, match=r"invalid value 'x_' for label 'k' on node 'n'"):
        desired_labels({"k": "x_"}, "on node 'n'")
    with pytest.raises(KubeGPUError, match=r"invalid label key 'a b' on node 'n'"):
        desired_labels({"a b": None}, "on node 'n'")


@pytest.mark.parametrize(("given", "normalised"), [(["nvidia.com/"], ["nvidia.com/"]), (["nvidia.com"], ["nvidia.com/"])])
def test_exclusive_prefixes_are_normalised(given, normalised):
    assert prefixes(given) == normalised


@pytest.mark.parametrize("bad", ["", "Upper.com/", "a/b/", "bad prefix/"])
def test_exclusive_prefixes_refuse_what_is_no_prefix(bad):
    with pytest.raises(KubeGPUError, match="exclusive_prefixes"):
        prefixes([bad])


@pytest.mark.parametrize(
    ("name", "ok"),
    [("gpu-node-1", True), ("node.example.com", True), ("a/b", False), ("Upper", False), ("-x", False), ("x" * 254, False)],
)
def test_node_names_are_dns_subdomains(name, ok):
    assert (object_name_problem(name) is None) is ok


GPU = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("current", "taints", "state", "after"),
    [
        ([], [GPU], "present", [GPU]),
        ([GPU], [GPU], "present", [GPU]),
        ([{**GPU, "value": "old", "timeAdded": "t"}], [GPU], "present", [GPU]),
        ([{**GPU, "effect": "NoExecute"}], [GPU], "present", [{**GPU, "effect": "NoExecute"}, GPU]),
        ([GPU, {**GPU, "effect": "NoExecute"}], [{"key": "nvidia.com/gpu", "effect": None}], "absent", []),
        ([GPU, {**GPU, "effect": "NoExecute"}], [{"key": "nvidia.com/gpu", "effect": "NoExecute"}], "absent", [GPU]),
    ],
)
def test_wanted_taints(current, taints, state, after):
    assert wanted_taints(current, taints, state) == after


def test_check_taint_names_the_problem():
    with pytest.raises(KubeGPUError, match="has no effect"):
        check_taint({"key": "k", "value": None, "effect": None}, "present")
    with pytest.raises(KubeGPUError, match="invalid effect 'Never'"):
        check_taint({"key": "k", "value": None, "effect": "Never"}, "present")
    assert check_taint({"key": "k", "value": None, "effect": None}, "absent") == {"key": "k", "effect": None}


taint_strategy = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["a", "b", "x.io/c"]),
        "value": st.sampled_from(["", "1", "2"]),
        "effect": st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"]),
    }
).map(lambda taint: {key: value for key, value in taint.items() if value != ""})


@pytest.mark.property
@given(
    current=st.lists(taint_strategy, max_size=5, unique_by=lambda t: (t["key"], t["effect"])),
    wanted=st.lists(taint_strategy, min_size=1, max_size=3, unique_by=lambda t: (t["key"], t["effect"])),
    state=st.sampled_from(["present", "absent"]),
)
def test_taint_edits_are_idempotent_and_keep_others_taints(current, wanted, state):
    after = wanted_taints(current, wanted, state)
    assert wanted_taints(after, wanted, state) == after
    touched = {(taint["key"], taint["effect"]) for taint in wanted}
    assert [t for t in current if (t["key"], t["effect"]) not in touched] == [
        t for t in after if (t["key"], t["effect"]) not in touched
    ]
    for taint in wanted:
        present = [t for t in after if (t["key"], t["effect"]) == (taint["key"], taint["effect"])]
        assert present == ([taint] if state == "present" else [])


def test_deep_merge_coalesces_maps_and_replaces_the_rest():
    base = {"image": {"repository": "a", "tag": "1"}, "list": [1, 2], "keep": True}
    assert deep_merge(base, {"image": {"tag": "2"}, "list": [3]}) == {
        "image": {"repository": "a", "tag": "2"},
        "list": [3],
        "keep": True,
    }
    assert base["image"]["tag"] == "1"  # inputs unchanged


def test_comparable_drops_what_the_server_sets():
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "resourceVersion": "7", "uid": "u", "managedFields": [], "labels": {"a": "b"}},
        "data": {"k": "v"},
        "status": {"x": 1},
    }
    assert comparable(live) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"a": "b"}},
        "data": {"k": "v"},
    }
    assert comparable(None) is None


def test_documents_are_checked_and_lists_flattened():
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    assert load_documents({"apiVersion": "v1", "kind": "List", "items": [configmap, configmap]}, None) == [configmap, configmap]
    assert load_documents("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n", None) == [configmap]
    with pytest.raises(KubeGPUError, match="definition document 2 has no kind"):
        load_documents([configmap, {"apiVersion": "v1", "metadata": {"name": "y"}}], None)


def test_not_served_message_suggests_what_to_install():
    assert not_served("openfaas.com/v1", "Profile") == (
        "Profile (openfaas.com/v1) is not served by this cluster: install OpenFaaS first"
    )
    assert "CustomResourceDefinition" in not_served("example.io/v1", "Thing")
    assert "typo" in not_served("v2", "ConfigMap")


def test_retry_after_reads_seconds_and_http_dates():
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _retry_after(later) <= 31
    assert _retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}, {"app": "db"}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {"app": "web"}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {}, True),
        ({}, {"anything": "x"}, True),
    ],
)
def test_budget_selectors_match_like_label_selectors(selector, labels, matches):
    assert selector_matches(selector, labels) is matches
