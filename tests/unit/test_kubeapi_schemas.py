"""Typed decoding, field rules and CRD schemas of the test API server, as pure functions (no HTTP)."""

from __future__ import annotations

import decimal
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.kubeapi import generate_nodes, typed
from tests.support.kubeapi.crd_schema import prune_and_validate
from tests.support.kubeapi.errors import ApiError
from tests.support.kubeapi.rules import (
    builtin_errors,
    quantity_value,
    resource_name_errors,
    taint_errors,
    toleration_errors,
)
from tests.support.kubeapi.store import Store


def bodies(errors) -> list[tuple[str, str]]:
    return [(e.field, e.body()) for e in errors]


# -- typed decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "schema"),
    [
        ("v1.31.2", (1, 31)),
        ("v1.25.0", (1, 25)),
        ("v1.20.4", (1, 25)),
        ("v1.99.0", typed.shipped_versions()[-1]),
        ("", typed.shipped_versions()[-1]),
    ],
)
def test_schema_version_is_the_same_minor_or_the_nearest_shipped(server, schema):
    assert typed.schema_version(server) == schema


def test_type_errors_name_the_go_struct_field_and_the_apply_path():
    pod = typed.schemas_for("v1.31.2").kind("", "v1", "Pod")
    obj = {
        "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": 1}]}], "nodeSelector": {"gpu": True}}
    }
    result = typed.check(obj, pod, prune=False, required=True)
    messages = sorted(p.decoder_message() for p in result.type_problems)
    assert messages == [
        "json: cannot unmarshal bool into Go struct field PodSpec.spec.nodeSelector of type string",
        "json: cannot unmarshal number into Go struct field EnvVar.spec.containers.env.value of type string",
    ]
    assert sorted(p.apply_message() for p in result.type_problems)[0] == (
        '.spec.containers[name="c"].env[name="A"].value: expected string, got &value.valueUnstructured{Value:1}'
    )


def test_unknown_fields_are_reported_and_pruned_in_place_but_open_objects_keep_everything():
    node = typed.schemas_for("v1.31.2").kind("", "v1", "Node")
    obj = {
        "metadata": {"name": "n", "managedFields": [{"manager": "m", "fieldsV1": {"f:anything": {}}}]},
        "spec": {"taints": [{"key": "k", "effect": "NoSchedule", "colour": "red"}], "bogus": 1},
    }
    result = typed.check(obj, node, prune=True, required=True)
    assert [typed.field_path(p) for p in result.unknown] == ["spec.taints[0].colour", "spec.bogus"]
    assert obj["spec"] == {"taints": [{"key": "k", "effect": "NoSchedule"}]}
    assert obj["metadata"]["managedFields"][0]["fieldsV1"] == {"f:anything": {}}


def test_required_fields_are_missing_outside_status_only():
    node = typed.schemas_for("v1.31.2").kind("", "v1", "Node")
    obj = {"spec": {"taints": [{"key": "k"}]}, "status": {"conditions": [{"type": "Ready"}]}}
    result = typed.check(obj, node, prune=False, required=True)
    assert [typed.field_path(p) for p in result.missing] == ["spec.taints[0].effect"]


def test_thousand_fixture_nodes_type_check_in_well_under_a_second():
    node = typed.schemas_for("v1.31.2").kind("", "v1", "Node")
    nodes = generate_nodes(1000)
    started = time.perf_counter()
    for obj in nodes:
        result = typed.check(obj, node, prune=True, required=True)
        assert not (result.type_problems or result.unknown or result.missing)
    assert time.perf_counter() - started < 1.0


# -- field rules ------------------------------------------------------------------------------------


def test_taint_rules():
    errors = taint_errors(
        [
            {"key": "bad key", "effect": "NoSchedule"},
            {"key": "a", "value": "x y", "effect": "Bogus"},
            {"key": "a", "effect": ""},
            {"key": "b", "effect": "NoExecute"},
            {"key": "b", "effect": "NoExecute", "value": "v"},
        ],
        "spec.taints",
    )
    fields = [e.field for e in errors]
    assert fields == [
        "spec.taints[0].key",
        "spec.taints[1].value",
        "spec.taints[1].effect",
        "spec.taints[2].effect",
        "spec.taints[4]",
    ]
    assert errors[2].body() == 'Unsupported value: "Bogus": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'
    assert errors[3].body() == "Required value"
    assert errors[4].body() == (
        'Duplicate value: core.Taint{Key:"b", Value:"v", Effect:"NoExecute", TimeAdded:<nil>}: '
        "taints must be unique by key and effect pair"
    )


def test_toleration_rules():
    errors = toleration_errors(
        [
            {"operator": "Exists"},
            {"key": "k", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "k", "value": "v"},
            {"key": "k", "operator": "Exists", "tolerationSeconds": 5, "effect": "NoSchedule"},
            {"key": "k", "operator": "Gt"},
        ],
        "spec.tolerations",
    )
    assert bodies(errors) == [
        (
            "spec.tolerations[3].effect",
            "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
        ),
        ("spec.tolerations[4].operator", 'Unsupported value: "Gt": supported values: "Equal", "Exists"'),
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cpu", None),
        ("hugepages-2Mi", None),
        ("nvidia.com/gpu", None),
        ("nvidia.com/gpumem-percentage", None),
        ("nvidia.com/gpumem\u2212percentage", "name part must consist of alphanumeric characters"),
        ("gpu", "must be a standard resource for containers"),
        ("nvidia.com/", "name part must be non-empty"),
        ("Bad_Domain/gpu", "prefix part a lowercase RFC 1123 subdomain"),
    ],
)
def test_container_resource_names(name, message):
    errors = resource_name_errors(name, "limits")
    if message is None:
        assert errors == []
    else:
        assert errors
        assert message in errors[0].detail


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        ("500m", "0.5"),
        ("1Gi", "1073741824"),
        ("2k", "2000"),
        ("1e3", "1000"),
        ("1E", "1e18"),
        (3, "3"),
        (0.25, "0.25"),
        ("x", None),
        (True, None),
    ],
)
def test_quantity_values(quantity, value):
    assert quantity_value(quantity) == (None if value is None else decimal.Decimal(value))


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=3, allow_nan=False, allow_infinity=False))
@pytest.mark.property
def test_milli_quantities_round_trip(number):
    """A number written with the m suffix reads back as a thousandth of it."""
    text = f"{int(number * 1000)}m"
    assert quantity_value(text) == decimal.Decimal(int(number * 1000)) / 1000


def test_pod_template_rules_apply_to_every_workload_kind():
    spec = {"containers": [{"name": "c", "image": "i"}], "tolerations": [{"key": "k", "operator": "Nope"}]}
    for group, kind, body in (
        ("", "Pod", {"spec": spec}),
        ("apps", "DaemonSet", {"spec": {"template": {"spec": spec}}}),
        ("batch", "CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
    ):
        assert [e.field for e in builtin_errors(group, kind, body)][-1].endswith("spec.tolerations[0].operator"), kind
    assert builtin_errors("", "ConfigMap", {"data": {"a": "b"}}) == []


# -- CRD schemas ------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["mode"],
            "properties": {
                "mode": {"type": "string", "enum": ["time-slicing", "mps"]},
                "replicas": {"x-kubernetes-int-or-string": True},
                "count": {"type": "integer", "minimum": 1},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "limits": {"type": "object", "additionalProperties": {"type": "string"}},
                "empty": {"type": "object"},
                "note": {"type": "string", "nullable": True},
            },
        }
    },
}


def test_crd_pruning_keeps_what_the_schema_declares_or_preserves():
    obj = {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "a", "labels": {"k": "v"}},
        "spec": {
            "mode": "mps",
            "typo": 1,
            "extra": {"anything": {"goes": True}},
            "limits": {"a": "1"},
            "empty": {"dropped": 1},
            "note": None,
            "count": None,
        },
    }
    unknown, errors = prune_and_validate(obj, SCHEMA)
    assert unknown == ["spec.typo", "spec.empty.dropped"]
    assert errors == []
    assert obj["spec"] == {"mode": "mps", "extra": {"anything": {"goes": True}}, "limits": {"a": "1"}, "empty": {}, "note": None}
    assert obj["metadata"] == {"name": "a", "labels": {"k": "v"}}


def test_crd_validation_types_enums_required_int_or_string_and_bounds():
    obj = {"spec": {"mode": "shared", "replicas": True, "count": 0, "limits": {"a": 1}}}
    _unknown, errors = prune_and_validate(obj, SCHEMA)
    assert bodies(errors) == [
        ("spec.mode", 'Unsupported value: "shared": supported values: "time-slicing", "mps"'),
        ("spec.replicas", 'Invalid value: "boolean": spec.replicas in body must be of type integer,string: "boolean"'),
        ("spec.count", "Invalid value: 0: spec.count in body should be greater than or equal to 1"),
        ("spec.limits.a", 'Invalid value: "integer": spec.limits.a in body must be of type string: "integer"'),
    ]
    _unknown, missing = prune_and_validate({"spec": {}}, SCHEMA)
    assert bodies(missing) == [("spec.mode", "Required value")]
    assert prune_and_validate({"spec": {"mode": "mps", "replicas": "50%"}}, SCHEMA) == ([], [])


# -- the store: fixtures are decoded strictly -------------------------------------------------------


def test_store_load_refuses_fixture_typos_and_mistyped_values():
    store = Store(kube_version="v1.31.2")
    with pytest.raises(ApiError) as typo:
        store.load({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"taint": []}})
    assert typo.value.code == 400
    assert (
        typo.value.message
        == 'Node in version "v1" cannot be handled as a Node: strict decoding error: unknown field "spec.taint"'
    )
    with pytest.raises(ApiError) as mistyped:
        store.load({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"unschedulable": "yes"}})
    assert mistyped.value.code == 400
    assert "Go struct field NodeSpec.spec.unschedulable of type bool" in mistyped.value.message


def test_a_taint_without_effect_or_key_gets_the_rule_error_once():
    store = Store(kube_version="v1.31.2")
    nodes = store.catalogue.find("", "v1", "nodes")
    store.create(nodes, None, {"metadata": {"name": "n"}})
    with pytest.raises(ApiError) as error:
        store.patch(nodes, None, "n", "merge", {"spec": {"taints": [{"key": "", "value": "v"}]}}, manager="t")
    assert error.value.code == 422
    assert [(c["field"], c["reason"]) for c in error.value.details["causes"]] == [
        ("spec.taints[0].key", "FieldValueInvalid"),
        ("spec.taints[0].effect", "FieldValueRequired"),
    ]


@given(st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.lists(st.text(), max_size=2)))
@pytest.mark.property
def test_any_non_string_node_selector_value_is_a_decode_error(value):
    """What YAML makes of `gpu: true`, `gpu: 1`, `gpu: 1.0` or `gpu: [a]` never reaches the store."""
    store = Store(kube_version="v1.31.2")
    pods = store.catalogue.find("", "v1", "pods")
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"gpu": value}}}
    with pytest.raises(ApiError) as error:
        store.create(pods, "default", body)
    assert error.value.code == 400
    assert "Go struct field PodSpec.spec.nodeSelector of type string" in error.value.message
    assert store.list(pods, "default", [], [])["items"] == []


@pytest.mark.parametrize("version", ["v1.28.15", "v1.31.2", "v1.35.2"])
def test_every_served_built_in_type_is_compiled_into_that_minors_schemas(version):
    """The catalogue serves a built-in group-version-kind only where that Kubernetes minor has it
    (the kubernetes-validate schemas, generated from each release's OpenAPI)."""
    schemas = typed.schemas_for(version)
    served = Store(kube_version=version).catalogue.all()
    assert [r.group_version + " " + r.kind for r in served if schemas.kind(r.group, r.version, r.kind) is None] == []
