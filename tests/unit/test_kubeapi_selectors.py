"""Label and field selectors of the test API server, against the Kubernetes selector grammar."""

from __future__ import annotations

import pytest

from tests.support.kubeapi.selectors import SelectorError, fields_match, labels_match, parse_field_selector, parse_label_selector

LABELS = {"nvidia.com/gpu.present": "true", "tier": "gpu", "count": "8"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("tier=gpu", True),
        ("tier==gpu", True),
        ("tier=cpu", False),
        ("tier!=cpu", True),
        ("missing!=x", True),
        ("tier in (gpu,cpu)", True),
        ("tier in (cpu)", False),
        ("tier notin (cpu, edge)", True),
        ("missing notin (a)", True),
        ("tier notin (gpu)", False),
        ("nvidia.com/gpu.present", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("tier=gpu,nvidia.com/gpu.present=true", True),
        ("tier=gpu,!nvidia.com/gpu.present", False),
        ("count>4", True),
        ("count<4", False),
        ("tier=", False),
    ],
)
def test_label_selector_matches_like_kubernetes(selector, matches):
    assert labels_match(parse_label_selector(selector), LABELS) is matches


def test_empty_value_matches_only_an_empty_label():
    assert labels_match(parse_label_selector("tier="), {"tier": ""})
    assert not labels_match(parse_label_selector("tier="), {})


@pytest.mark.parametrize(
    "selector",
    ["tier in gpu", "tier in ()", "tier=gpu,", "=gpu", "tier=bad value", "-bad=x", "a/b/c=d", "tier in (gpu", "count>x", "a b"],
)
def test_malformed_label_selectors_are_refused(selector):
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


NODE = {"metadata": {"name": "gpu-node-1"}, "spec": {"unschedulable": True}}
POD = {"metadata": {"name": "p", "namespace": "kube-system"}, "spec": {"nodeName": "gpu-node-1"}, "status": {"phase": "Running"}}


@pytest.mark.parametrize(
    ("selector", "plural", "obj", "matches"),
    [
        ("metadata.name=gpu-node-1", "nodes", NODE, True),
        ("metadata.name!=gpu-node-1", "nodes", NODE, False),
        ("metadata.name==other", "nodes", NODE, False),
        ("spec.unschedulable=true", "nodes", NODE, True),
        ("spec.unschedulable=false", "nodes", {"metadata": {"name": "n"}}, True),
        ("metadata.namespace=kube-system,spec.nodeName=gpu-node-1", "pods", POD, True),
        ("status.phase!=Running", "pods", POD, False),
    ],
)
def test_field_selector_matches(selector, plural, obj, matches):
    assert fields_match(parse_field_selector(selector, plural), obj) is matches


@pytest.mark.parametrize(
    ("selector", "plural"), [("spec.nodeName=x", "nodes"), ("metadata.labels=x", "pods"), ("nonsense", "pods")]
)
def test_unsupported_field_selectors_are_refused(selector, plural):
    with pytest.raises(SelectorError):
        parse_field_selector(selector, plural)
