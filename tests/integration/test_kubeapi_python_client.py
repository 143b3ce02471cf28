"""Fidelity of the test API server, judged by the kubernetes Python client (typed, custom objects, dynamic, watch)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

MANIFESTS = Path(__file__).resolve().parents[1] / "support" / "manifests"
PROFILE_CRD = yaml.safe_load((MANIFESTS / "openfaas-profile-crd.yaml").read_text())


@pytest.fixture
def api_client(kubeapi):
    api = config.new_client_from_config(config_file=str(kubeapi.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def core(api_client) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def profile_crd(api_client):
    return client.ApiextensionsV1Api(api_client).create_custom_resource_definition(PROFILE_CRD)


def profile(name: str, **spec) -> dict:
    return {"apiVersion": "openfaas.com/v1", "kind": "Profile", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def test_strategic_merge_patch_of_node_labels_and_taints(core, kubeapi):
    core.patch_node(
        "gpu-node-1",
        {
            "metadata": {"labels": {"nvidia.com/gpu.product": "Tesla-V100"}},
            "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
        },
    )
    core.patch_node("gpu-node-1", {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}})
    node = core.read_node("gpu-node-1")
    assert node.metadata.labels["nvidia.com/gpu.product"] == "Tesla-V100"
    assert node.metadata.labels["kubernetes.io/hostname"] == "gpu-node-1"
    # Node taints have no merge key in Kubernetes: a strategic merge patch replaces the list.
    assert [(t.key, t.effect) for t in node.spec.taints] == [("b", "NoExecute")]
    patches = [r for r in kubeapi.admin.requests() if r["verb"] == "patch"]
    assert {r["contentType"] for r in patches} == {"application/strategic-merge-patch+json"}


def test_merge_patch_of_node_removes_a_label_with_null(core, kubeapi):
    core.patch_node(
        "gpu-node-2",
        {"metadata": {"labels": {"team": "ml", "kubernetes.io/os": None}}},
        _content_type="application/merge-patch+json",
    )
    labels = core.read_node("gpu-node-2").metadata.labels
    assert labels["team"] == "ml"
    assert "kubernetes.io/os" not in labels
    assert [r["contentType"] for r in kubeapi.admin.requests() if r["verb"] == "patch"] == ["application/merge-patch+json"]


def test_strategic_merge_patch_merges_containers_by_name_and_env_by_name(core):
    pod = {
        "metadata": {"name": "cuda"},
        "spec": {
            "containers": [
                {"name": "main", "image": "cuda:12", "env": [{"name": "A", "value": "1"}]},
                {"name": "side", "image": "busybox"},
            ]
        },
    }
    core.create_namespaced_pod("default", pod)
    core.patch_namespaced_pod(
        "cuda", "default", {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]}}
    )
    containers = core.read_namespaced_pod("cuda", "default").spec.containers
    assert [c.name for c in containers] == ["main", "side"]
    assert [(e.name, e.value) for e in containers[0].env] == [("A", "1"), ("B", "2")]
    assert containers[0].image == "cuda:12"
    core.patch_namespaced_pod("cuda", "default", {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}})
    assert [c.name for c in core.read_namespaced_pod("cuda", "default").spec.containers] == ["main"]


def test_json_patch_of_node(core):
    core.patch_node("gpu-node-3", [{"op": "add", "path": "/metadata/labels/nvidia.com~1mig.strategy", "value": "single"}])
    assert core.read_node("gpu-node-3").metadata.labels["nvidia.com/mig.strategy"] == "single"
    with pytest.raises(ApiException) as failed:
        core.patch_node("gpu-node-3", [{"op": "test", "path": "/metadata/labels/nvidia.com~1mig.strategy", "value": "mixed"}])
    assert failed.value.status == 422


def test_stale_resource_version_is_a_409_conflict(core):
    node = core.read_node("gpu-node-1")
    node.metadata.labels["first"] = "writer"
    core.replace_node("gpu-node-1", node)
    node.metadata.labels["second"] = "writer"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        core.replace_node("gpu-node-1", node)
    assert stale.value.status == 409
    assert "the object has been modified" in stale.value.body
    assert '"reason":"Conflict"' in stale.value.body.replace(" ", "")
    fresh = core.read_node("gpu-node-1")
    assert "second" not in fresh.metadata.labels


def test_errors_are_kubernetes_status_objects(core):
    with pytest.raises(ApiException) as missing:
        core.read_node("absent")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as exists:
        core.create_node({"metadata": {"name": "gpu-node-1"}})
    assert exists.value.status == 409
    assert "AlreadyExists" in exists.value.body
    with pytest.raises(ApiException) as invalid:
        core.create_node({"metadata": {"name": "Bad_Name"}})
    assert invalid.value.status == 422
    assert "metadata.name" in invalid.value.body
    with pytest.raises(ApiException) as bad_label:
        core.patch_node("gpu-node-1", {"metadata": {"labels": {"bad key": "x"}}})
    assert bad_label.value.status == 422
    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert no_namespace.value.status == 404


def test_dry_run_all_changes_nothing(core):
    before = core.read_node("gpu-node-1").metadata.resource_version
    answered = core.patch_node("gpu-node-1", {"metadata": {"labels": {"dry": "run"}}}, dry_run="All")
    assert answered.metadata.labels["dry"] == "run"
    after = core.read_node("gpu-node-1")
    assert "dry" not in after.metadata.labels
    assert after.metadata.resource_version == before
    core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    assert core.list_namespaced_config_map("default").items == []
    core.delete_node("gpu-node-1", dry_run="All")
    assert core.read_node("gpu-node-1").metadata.name == "gpu-node-1"


def test_status_subresource_is_separate_from_the_main_resource(core):
    core.patch_node("gpu-node-1", {"status": {"capacity": {"nvidia.com/gpu": "7"}}})
    assert core.read_node("gpu-node-1").status.capacity["nvidia.com/gpu"] == "2"
    core.patch_node_status("gpu-node-1", {"status": {"capacity": {"nvidia.com/gpu": "4"}}})
    assert core.read_node("gpu-node-1").status.capacity["nvidia.com/gpu"] == "4"


def test_list_with_selectors_limit_and_continue(core):
    for index in range(5):
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"cm-{index}", "labels": {"tier": "gpu" if index % 2 else "cpu"}}}
        )
    first = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1"]
    assert first.metadata.remaining_item_count == 3
    second = core.list_namespaced_config_map("default", limit=2, _continue=first.metadata._continue)
    assert [c.metadata.name for c in second.items] == ["cm-2", "cm-3"]
    assert [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="tier=gpu").items] == [
        "cm-1",
        "cm-3",
    ]
    assert [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="tier notin (gpu)").items] == [
        "cm-0",
        "cm-2",
        "cm-4",
    ]
    assert [c.metadata.name for c in core.list_namespaced_config_map("default", field_selector="metadata.name=cm-4").items] == [
        "cm-4"
    ]
    core.delete_collection_namespaced_config_map("default", label_selector="tier=cpu")
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["cm-1", "cm-3"]


def test_watch_streams_modifications(core):
    start = core.list_node().metadata.resource_version
    events = []

    def label_later():
        time.sleep(0.3)
        core.patch_node("gpu-node-2", {"metadata": {"labels": {"watched": "yes"}}})

    writer = threading.Thread(target=label_later)
    writer.start()
    stream = watch.Watch()
    for event in stream.stream(core.list_node, resource_version=start, timeout_seconds=5):
        events.append((event["type"], event["object"].metadata.name, event["object"].metadata.labels.get("watched")))
        stream.stop()
    writer.join()
    assert events == [("MODIFIED", "gpu-node-2", "yes")]


def test_custom_objects_create_get_patch_profile(api_client, profile_crd):
    custom = client.CustomObjectsApi(api_client)
    created = custom.create_namespaced_custom_object(
        "openfaas.com", "v1", "default", "profiles", profile("gpu", runtimeClassName="nvidia")
    )
    assert created["metadata"]["generation"] == 1
    fetched = custom.get_namespaced_custom_object("openfaas.com", "v1", "default", "profiles", "gpu")
    assert fetched["spec"] == {"runtimeClassName": "nvidia"}
    patched = custom.patch_namespaced_custom_object(
        "openfaas.com",
        "v1",
        "default",
        "profiles",
        "gpu",
        {"spec": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}},
    )
    assert patched["spec"]["runtimeClassName"] == "nvidia"
    assert patched["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_strategic_merge_patch_on_custom_resource_is_unsupported(api_client, profile_crd):
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object("openfaas.com", "v1", "default", "profiles", profile("gpu"))
    with pytest.raises(ApiException) as unsupported:
        custom.patch_namespaced_custom_object(
            "openfaas.com",
            "v1",
            "default",
            "profiles",
            "gpu",
            {"spec": {"x": 1}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert unsupported.value.status == 415


def test_dynamic_client_server_side_apply_with_conflicts_and_force(api_client, profile_crd):
    dyn = dynamic.DynamicClient(api_client)
    profiles = dyn.resources.get(api_version="openfaas.com/v1", kind="Profile")
    created = profiles.server_side_apply(
        body=profile("gpu", runtimeClassName="nvidia"), name="gpu", namespace="default", field_manager="kubegpu"
    )
    assert created.metadata.managedFields[0].manager == "kubegpu"
    assert created.metadata.managedFields[0].operation == "Apply"
    rv = created.metadata.resourceVersion
    same = profiles.server_side_apply(
        body=profile("gpu", runtimeClassName="nvidia"), name="gpu", namespace="default", field_manager="kubegpu"
    )
    assert same.metadata.resourceVersion == rv

    with pytest.raises(ApiException) as conflict:
        profiles.server_side_apply(
            body=profile("gpu", runtimeClassName="runc"), name="gpu", namespace="default", field_manager="someone-else"
        )
    assert conflict.value.status == 409
    assert 'conflict with \\"kubegpu\\"' in conflict.value.body or 'conflict with "kubegpu"' in conflict.value.body

    forced = profiles.server_side_apply(
        body=profile("gpu", runtimeClassName="runc"),
        name="gpu",
        namespace="default",
        field_manager="someone-else",
        force_conflicts=True,
    )
    assert forced.spec.runtimeClassName == "runc"

    # The first manager stops applying a field it alone owns: the server removes it.
    profiles.server_side_apply(
        body=profile("gpu", runtimeClassName="runc", priority="high"),
        name="gpu",
        namespace="default",
        field_manager="kubegpu",
        force_conflicts=True,
    )
    trimmed = profiles.server_side_apply(
        body=profile("gpu", runtimeClassName="runc"), name="gpu", namespace="default", field_manager="kubegpu"
    )
    assert "priority" not in trimmed.spec


def test_dynamic_client_server_side_apply_of_a_daemonset_with_dry_run(api_client):
    dyn = dynamic.DynamicClient(api_client)
    daemonsets = dyn.resources.get(api_version="apps/v1", kind="DaemonSet")
    body = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "aws-virtual-gpu-device-plugin", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"name": "vgpu"}},
            "template": {
                "metadata": {"labels": {"name": "vgpu"}},
                "spec": {"containers": [{"name": "plugin", "image": "plugin:1"}]},
            },
        },
    }
    planned = daemonsets.server_side_apply(
        body=body, name=body["metadata"]["name"], namespace="kube-system", field_manager="kubegpu", dry_run="All"
    )
    assert planned.spec.template.spec.containers[0].image == "plugin:1"
    assert daemonsets.get(namespace="kube-system").items == []
    daemonsets.server_side_apply(body=body, name=body["metadata"]["name"], namespace="kube-system", field_manager="kubegpu")
    assert len(daemonsets.get(namespace="kube-system").items) == 1


# Metadata-only reads, as client-go's metadata client (k8s.io/client-go/metadata) asks for them: protobuf first,
# then JSON, then plain JSON as the last fallback. kube-apiserver's answer is read in
# staging/src/k8s.io/apiserver/pkg/endpoints/handlers/response.go (asPartialObjectMetadataList) and
# negotiation/negotiate.go (NegotiateMediaTypeOptions): kind PartialObjectMetadataList, apiVersion meta.k8s.io/v1,
# list metadata kept, each item kind PartialObjectMetadata with the object's whole metadata.
METADATA_LIST_ACCEPT = (
    "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
)
METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


def test_dynamic_client_lists_nodes_as_partial_object_metadata_in_pages(api_client, core, kubeapi):
    nodes = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="Node")
    first = nodes.get(header_params={"Accept": METADATA_LIST_ACCEPT}, limit=2).to_dict()
    assert (first["kind"], first["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    assert first["metadata"]["continue"] and first["metadata"]["remainingItemCount"] == 1
    rest = nodes.get(header_params={"Accept": METADATA_LIST_ACCEPT}, limit=2, _continue=first["metadata"]["continue"]).to_dict()
    assert "continue" not in rest["metadata"] or not rest["metadata"]["continue"]
    items = first["items"] + rest["items"]
    assert {tuple(sorted(item)) for item in items} == {("apiVersion", "kind", "metadata")}
    assert {(item["kind"], item["apiVersion"]) for item in items} == {("PartialObjectMetadata", "meta.k8s.io/v1")}
    # the same metadata as the typed client reads in the full objects (labels, uid, resourceVersion)
    full = {node.metadata.name: node.metadata for node in core.list_node().items}
    assert [item["metadata"]["name"] for item in items] == list(full)
    for item in items:
        typed = full[item["metadata"]["name"]]
        assert item["metadata"]["labels"] == typed.labels
        assert (item["metadata"]["uid"], item["metadata"]["resourceVersion"]) == (typed.uid, typed.resource_version)
    lists = [r for r in kubeapi.admin.requests() if r["verb"] == "list" and r["accept"] == METADATA_LIST_ACCEPT]
    assert len(lists) == 2
    # fewer bytes than the full Node list for the same nodes
    full_list = [r for r in kubeapi.admin.requests() if r["verb"] == "list" and "as=" not in r["accept"]][-1]
    assert sum(r["bytes"] for r in lists) < full_list["bytes"]


def test_partial_object_metadata_of_one_node_and_406_for_the_wrong_shape(api_client):
    dyn = dynamic.DynamicClient(api_client)
    nodes = dyn.resources.get(api_version="v1", kind="Node")
    one = nodes.get(name="gpu-node-1", header_params={"Accept": METADATA_ACCEPT}).to_dict()
    assert (one["kind"], one["apiVersion"], one["metadata"]["name"]) == ("PartialObjectMetadata", "meta.k8s.io/v1", "gpu-node-1")
    assert "spec" not in one and "status" not in one
    # response.go: asPartialObjectMetadata of a list and asPartialObjectMetadataList of one object are NotAcceptable
    with pytest.raises(ApiException) as refused:
        nodes.get(header_params={"Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"})
    assert refused.value.status == 406
    assert "you requested PartialObjectMetadata, but the requested object is a list (*core.NodeList)" in refused.value.body
    with pytest.raises(ApiException) as refused:
        nodes.get(name="gpu-node-1", header_params={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"})
    assert refused.value.status == 406 and "NotAcceptable" in refused.value.body


def test_an_unknown_conversion_is_skipped_for_the_next_media_range_or_the_plain_object(api_client):
    """negotiate.go: a range whose as/g/v the endpoint cannot convert to is skipped; with none left the server
    answers its default media type (the Node itself), not a 406."""
    nodes = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="Node")
    skipped = "application/json;as=Foo;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2"
    node = nodes.get(name="gpu-node-1", header_params={"Accept": skipped}).to_dict()
    assert (node["kind"], node["apiVersion"]) == ("Node", "v1") and "status" in node
    second = (
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v3,"
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"
    )
    partial = nodes.get(name="gpu-node-1", header_params={"Accept": second}).to_dict()
    assert (partial["kind"], partial["apiVersion"]) == ("PartialObjectMetadata", "meta.k8s.io/v1beta1")


def test_a_metadata_only_merge_patch_answers_partial_object_metadata(api_client, core):
    """client-go's metadata client patches with the same Accept; the write is applied, the answer is metadata."""
    nodes = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="Node")
    answer = nodes.patch(
        name="gpu-node-2",
        body={"metadata": {"labels": {"team": "ml"}}},
        content_type="application/merge-patch+json",
        header_params={"Accept": METADATA_ACCEPT},
    ).to_dict()
    assert answer["kind"] == "PartialObjectMetadata" and answer["metadata"]["labels"]["team"] == "ml"
    assert core.read_node("gpu-node-2").metadata.labels["team"] == "ml"


def test_a_metadata_only_watch_sends_partial_object_metadata_events(core):
    """client-go's metadata informers watch with as=PartialObjectMetadata: each event's object is converted
    (response.go's watchEmbeddedEncoder runs the same doTransformObject per event)."""
    events = list(watch.Watch().stream(core.list_node, timeout_seconds=1, _headers={"Accept": METADATA_ACCEPT}))
    raw = [event["raw_object"] for event in events]
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in raw] == [
        ("PartialObjectMetadata", f"gpu-node-{index}") for index in (1, 2, 3)
    ]
    assert all("status" not in obj and "spec" not in obj for obj in raw)
