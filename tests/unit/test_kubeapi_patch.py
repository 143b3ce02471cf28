"""Merge patch, strategic merge patch and JSON patch of the test API server."""

from __future__ import annotations

import pytest

from tests.support.kubeapi.patch import PatchError, json_patch, list_strategy, merge_patch, strategic_merge_patch

POD = {
    "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "cuda:12",
                "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 80}],
                "args": ["--x"],
            },
            {"name": "side", "image": "busybox"},
        ],
        "tolerations": [{"key": "t1", "operator": "Exists"}],
        "volumes": [{"name": "v1", "emptyDir": {}}],
    },
}


def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists():
    result = merge_patch(POD, {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"tolerations": [{"key": "t2"}]}})
    assert result["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert result["spec"]["tolerations"] == [{"key": "t2"}]
    assert result["spec"]["containers"] == POD["spec"]["containers"]
    assert POD["metadata"]["labels"] == {"a": "1", "b": "2"}  # the original is not modified


def test_merge_patch_with_a_non_object_replaces_the_document():
    assert merge_patch({"a": 1}, ["x"]) == ["x"]


def test_strategic_merge_merges_keyed_lists_and_replaces_others():
    patch = {
        "spec": {
            "containers": [
                {"name": "main", "env": [{"name": "B", "value": "2"}], "args": ["--y"]},
                {"name": "new", "image": "n"},
            ],
            "tolerations": [{"key": "t2", "operator": "Exists"}],
            "volumes": [{"name": "v2", "emptyDir": {}}],
        }
    }
    result = strategic_merge_patch(POD, patch)
    containers = {c["name"]: c for c in result["spec"]["containers"]}
    assert list(containers) == ["main", "side", "new"]
    assert containers["main"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert containers["main"]["args"] == ["--y"]  # args has no merge key: replaced
    assert containers["main"]["image"] == "cuda:12"
    assert result["spec"]["tolerations"] == [{"key": "t2", "operator": "Exists"}]  # atomic in Kubernetes
    assert [v["name"] for v in result["spec"]["volumes"]] == ["v1", "v2"]


def test_strategic_merge_patch_directives():
    result = strategic_merge_patch(
        POD,
        {
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "finalizers": ["y"]},
            "spec": {"containers": [{"name": "side", "$patch": "delete"}], "volumes": [{"$patch": "replace"}, {"name": "only"}]},
        },
    )
    assert result["metadata"]["finalizers"] == ["y"]
    assert [c["name"] for c in result["spec"]["containers"]] == ["main"]
    assert result["spec"]["volumes"] == [{"name": "only"}]
    replaced = strategic_merge_patch(POD, {"metadata": {"labels": {"$patch": "replace", "z": "9"}}})
    assert replaced["metadata"]["labels"] == {"z": "9"}
    deleted = strategic_merge_patch(POD, {"spec": {"$patch": "delete"}})
    assert "spec" not in deleted


def test_strategic_merge_retain_keys_and_set_element_order():
    result = strategic_merge_patch(
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
    )
    assert result == {"spec": {"strategy": {"type": "Recreate"}}}
    ordered = strategic_merge_patch(POD, {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "main"}]}})
    assert [c["name"] for c in ordered["spec"]["containers"]] == ["side", "main"]


def test_strategic_merge_merges_container_ports_by_port_and_default_protocol():
    result = strategic_merge_patch(
        POD, {"spec": {"containers": [{"name": "main", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]}]}}
    )
    assert result["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]


def test_strategic_merge_item_without_merge_key_is_invalid():
    with pytest.raises(PatchError) as error:
        strategic_merge_patch(POD, {"spec": {"containers": [{"image": "x"}]}})
    assert error.value.code == 422


@pytest.mark.parametrize(
    ("fields", "custom", "strategy"),
    [
        (("spec", "containers"), False, ("map", ("name",))),
        (("spec", "template", "spec", "containers", "env"), False, ("map", ("name",))),
        (("spec", "template", "spec", "containers", "ports"), False, ("map", ("containerPort", "protocol"))),
        (("spec", "ports"), False, ("map", ("port", "protocol"))),
        (("spec", "taints"), False, ("atomic", ())),
        (("spec", "tolerations"), False, ("atomic", ())),
        (("metadata", "finalizers"), False, ("set", ())),
        (("metadata", "finalizers"), True, ("set", ())),
        (("spec", "containers"), True, ("atomic", ())),
    ],
)
def test_list_strategy_follows_kubernetes_types(fields, custom, strategy):
    assert list_strategy(fields, custom) == strategy


def test_json_patch_operations():
    document = {"metadata": {"labels": {"a/b": "1"}}, "items": [1, 2]}
    result = json_patch(
        document,
        [
            {"op": "add", "path": "/metadata/labels/c", "value": "3"},
            {"op": "remove", "path": "/metadata/labels/a~1b"},
            {"op": "replace", "path": "/items/0", "value": 10},
            {"op": "add", "path": "/items/-", "value": 3},
            {"op": "copy", "from": "/items/2", "path": "/copied"},
            {"op": "move", "from": "/copied", "path": "/moved"},
            {"op": "test", "path": "/moved", "value": 3},
        ],
    )
    assert result == {"metadata": {"labels": {"c": "3"}}, "items": [10, 2, 3], "moved": 3}
    assert document["items"] == [1, 2]


@pytest.mark.parametrize(
    ("operations", "code"),
    [
        ([{"op": "test", "path": "/a", "value": 2}], 422),
        ([{"op": "remove", "path": "/missing"}], 422),
        ([{"op": "replace", "path": "/missing", "value": 1}], 422),
        ([{"op": "add", "path": "/list/9", "value": 1}], 422),
        ([{"op": "frobnicate", "path": "/a"}], 400),
        ({"op": "add"}, 400),
        ([{"path": "/a"}], 400),
    ],
)
def test_json_patch_failures_carry_the_api_server_code(operations, code):
    with pytest.raises(PatchError) as error:
        json_patch({"a": 1, "list": []}, operations)
    assert error.value.code == code
