"""Server-side apply field ownership of the test API server (structured-merge-diff semantics)."""

from __future__ import annotations

import json

import pytest

from tests.support.kubeapi import apply as ssa
from tests.support.kubeapi.apply import (
    ApplyConflict,
    field_set,
    field_values,
    from_fields_v1,
    lookup,
    path_string,
    record_update,
    server_side_apply,
    to_fields_v1,
)

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d", "namespace": "default", "labels": {"app": "d"}},
    "spec": {
        "replicas": 1,
        "template": {"spec": {"containers": [{"name": "main", "image": "cuda:12", "ports": [{"containerPort": 80}]}]}},
    },
}


def apply(live, applied, manager, force=False, custom=False):
    return server_side_apply(live, applied, manager, api_version="apps/v1", force=force, custom=custom, has_status=True)


def managers(obj):
    return {entry["manager"]: from_fields_v1(entry["fieldsV1"]) for entry in obj["metadata"]["managedFields"]}


def test_field_set_uses_keys_for_keyed_lists_and_ignores_identity():
    paths = field_set(DEPLOYMENT)
    item = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"main"}')
    assert item in paths
    assert (*item, "f:image") in paths
    assert (*item, "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}', "f:containerPort") in paths
    assert ("f:metadata", "f:labels", "f:app") in paths
    assert ("f:metadata", "f:name") not in paths
    assert ("f:apiVersion",) not in paths


def test_fields_v1_round_trip_marks_items_with_dot():
    paths = field_set(DEPLOYMENT)
    encoded = to_fields_v1(paths)
    container = encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"main"}']
    assert container["."] == {}
    assert container["f:image"] == {}
    assert from_fields_v1(encoded) == paths


def test_path_string_reads_like_kubernetes_messages():
    path = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"main"}', "f:image")
    assert path_string(path) == '.spec.template.spec.containers[name="main"].image'


def test_first_apply_creates_ownership_and_reapply_is_stable():
    created = apply(None, DEPLOYMENT, "kubegpu")
    assert list(managers(created)) == ["kubegpu"]
    again = apply(created, DEPLOYMENT, "kubegpu")
    assert again["spec"] == created["spec"]
    assert managers(again) == managers(created)


def test_conflict_when_another_manager_owns_a_field_with_a_different_value():
    live = apply(None, DEPLOYMENT, "helm")
    changed = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 3}}
    with pytest.raises(ApplyConflict) as conflict:
        apply(live, changed, "kubegpu")
    assert conflict.value.conflicts == [("helm", "apps/v1", ".spec.replicas")]
    assert str(conflict.value) == 'Apply failed with 1 conflict: conflict with "helm" using apps/v1: .spec.replicas'


def test_same_value_is_shared_ownership_not_a_conflict():
    live = apply(None, DEPLOYMENT, "helm")
    shared = apply(
        live, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}}, "kubegpu"
    )
    owners = managers(shared)
    assert ("f:spec", "f:replicas") in owners["helm"]
    assert ("f:spec", "f:replicas") in owners["kubegpu"]


def test_force_takes_ownership_from_the_other_manager():
    live = apply(None, DEPLOYMENT, "helm")
    changed = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 3}}
    forced = apply(live, changed, "kubegpu", force=True)
    assert forced["spec"]["replicas"] == 3
    owners = managers(forced)
    assert ("f:spec", "f:replicas") not in owners["helm"]
    assert ("f:spec", "f:replicas") in owners["kubegpu"]


def test_fields_no_longer_applied_are_removed_unless_someone_else_owns_them():
    base = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "1", "b": "2"}}}
    live = apply(None, base, "one")
    live = apply(live, {**base, "metadata": {"name": "d", "labels": {"b": "2"}}}, "two")
    trimmed = apply(live, {**base, "metadata": {"name": "d", "labels": {}}}, "one")
    assert trimmed["metadata"]["labels"] == {"b": "2"}  # a: owned by "one" only, dropped; b: still "two"'s


def test_apply_merges_keyed_list_items_and_leaves_other_managers_items():
    live = apply(None, DEPLOYMENT, "helm")
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}},
    }
    merged = apply(live, sidecar, "injector")
    assert [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]] == ["main", "side"]


def test_custom_resource_lists_are_atomic():
    profile = {
        "apiVersion": "openfaas.com/v1",
        "kind": "Profile",
        "metadata": {"name": "p"},
        "spec": {"tolerations": [{"key": "a"}]},
    }
    live = apply(None, profile, "one", custom=True)
    with pytest.raises(ApplyConflict):
        apply(live, {**profile, "spec": {"tolerations": [{"key": "b"}]}}, "two", custom=True)


def test_status_is_not_owned_through_the_main_resource():
    created = apply(None, {**DEPLOYMENT, "status": {"replicas": 5}}, "kubegpu")
    assert "status" not in created
    assert not any(path[0] == "f:status" for path in managers(created)["kubegpu"])


def test_update_gives_the_writer_the_fields_it_changed():
    live = apply(None, DEPLOYMENT, "helm")
    edited = {**live, "spec": {**live["spec"], "replicas": 4}}
    record_update(live, edited, "kubectl-scale", api_version="apps/v1", custom=False, has_status=True)
    owners = {(e["manager"], e["operation"]): from_fields_v1(e["fieldsV1"]) for e in edited["metadata"]["managedFields"]}
    assert owners[("kubectl-scale", "Update")] == {("f:spec", "f:replicas")}
    assert ("f:spec", "f:replicas") not in owners[("helm", "Apply")]
    # ... so a later apply by helm with another value conflicts, as on a real cluster
    with pytest.raises(ApplyConflict):
        apply(edited, {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 2}}, "helm")


# keyed lists where lookup() finds another item than a walk would: a repeated key, and an item whose key (no
# whenUnsatisfiable) also matches an earlier item that has one
TRICKY_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "finalizers": ["a", "b"]},
    "spec": {
        "containers": [
            {"name": "main", "image": "one", "ports": [{"containerPort": 80}, {"containerPort": 80, "protocol": "TCP"}]},
            {"name": "main", "image": "two", "env": [{"name": "X", "value": "1"}]},
        ],
        "topologySpreadConstraints": [
            {"topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 1},
            {"topologyKey": "zone", "maxSkew": 2},
        ],
    },
    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
}


@pytest.mark.parametrize("obj", [DEPLOYMENT, TRICKY_POD], ids=["deployment", "repeated-keys"])
def test_field_values_are_the_field_set_with_what_lookup_finds(obj):
    values = field_values(obj)
    assert set(values) == field_set(obj)
    for path in values:
        assert ssa._found(values, obj, path) == lookup(obj, path), path


def test_record_update_owns_a_field_changed_in_a_repeated_item_as_lookup_sees_it():
    """The second "main" container's image changes: lookup() reads the first one, unchanged, so no field is owned;
    then the first one's image changes: the writer owns it and the item."""
    old = json_copy(TRICKY_POD)
    new = json_copy(TRICKY_POD)
    new["spec"]["containers"][1]["image"] = "three"
    record_update(old, new, "writer", api_version="v1", custom=False, has_status=True)
    assert "managedFields" not in new["metadata"]
    new["spec"]["containers"][0]["image"] = "three"
    record_update(old, new, "writer", api_version="v1", custom=False, has_status=True)
    owned = from_fields_v1(new["metadata"]["managedFields"][0]["fieldsV1"])
    item = ("f:spec", "f:containers", 'k:{"name":"main"}')
    assert owned == {item, (*item, "f:image")}


def json_copy(obj):
    return json.loads(json.dumps(obj))
