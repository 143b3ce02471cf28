"""Storage semantics of the test API server, without HTTP: bookkeeping, no-op writes, status, finalizers, CRDs."""

from __future__ import annotations

import pytest

from tests.support.kubeapi.errors import ApiError
from tests.support.kubeapi.nodes import gpu_node
from tests.support.kubeapi.store import Store


@pytest.fixture
def store() -> Store:
    return Store()


def workload_spec(**extra) -> dict:
    """The least a real API server accepts for a Deployment or DaemonSet spec: selector and a pod template."""
    labels = {"app": "x"}
    pod = {"containers": [{"name": "c", "image": "busybox"}], **extra.pop("pod", {})}
    return {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": pod}, **extra}


def rtype(store: Store, group: str, version: str, plural: str):
    found = store.catalogue.find(group, version, plural)
    assert found is not None
    return found


def test_create_sets_bookkeeping_and_resource_versions_increase(store):
    configmaps = rtype(store, "", "v1", "configmaps")
    first = store.create(configmaps, "default", {"metadata": {"name": "a"}}, manager="test")
    second = store.create(configmaps, "default", {"metadata": {"name": "b"}}, manager="test")
    assert first["metadata"]["uid"] != second["metadata"]["uid"]
    assert first["metadata"]["generation"] == 1
    assert first["metadata"]["creationTimestamp"].endswith("Z")
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert (first["apiVersion"], first["kind"]) == ("v1", "ConfigMap")


def test_a_write_that_changes_nothing_keeps_the_resource_version(store):
    configmaps = rtype(store, "", "v1", "configmaps")
    created = store.create(configmaps, "default", {"metadata": {"name": "a"}, "data": {"k": "v"}}, manager="test")
    same, _created = store.patch(configmaps, "default", "a", "merge", {"data": {"k": "v"}}, manager="test")
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    changed, _created = store.patch(configmaps, "default", "a", "merge", {"data": {"k": "w"}}, manager="test")
    assert int(changed["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_generation_counts_spec_changes_only(store):
    deployments = rtype(store, "apps", "v1", "deployments")
    body = {"metadata": {"name": "d"}, "spec": workload_spec(replicas=1)}
    store.create(deployments, "default", body, manager="test")
    labelled, _created = store.patch(deployments, "default", "d", "merge", {"metadata": {"labels": {"a": "b"}}}, manager="test")
    assert labelled["metadata"]["generation"] == 1
    scaled, _created = store.patch(deployments, "default", "d", "merge", {"spec": {"replicas": 2}}, manager="test")
    assert scaled["metadata"]["generation"] == 2


def test_status_is_reset_on_create_and_only_written_through_the_subresource(store):
    deployments = rtype(store, "apps", "v1", "deployments")
    created = store.create(
        deployments, "default", {"metadata": {"name": "d"}, "spec": workload_spec(), "status": {"replicas": 9}}, manager="t"
    )
    assert "status" not in created
    ignored, _created = store.patch(deployments, "default", "d", "merge", {"status": {"replicas": 9}}, manager="t")
    assert "status" not in ignored
    written, _created = store.patch(
        deployments,
        "default",
        "d",
        "merge",
        {"status": {"replicas": 3}, "spec": {"replicas": 7}},
        manager="t",
        subresource="status",
    )
    assert written["status"] == {"replicas": 3}
    assert "replicas" not in written["spec"]


def test_stale_resource_version_and_missing_objects(store):
    nodes = rtype(store, "", "v1", "nodes")
    node = store.create(nodes, None, {"metadata": {"name": "n1"}}, manager="t")
    store.update(nodes, None, "n1", {**node, "metadata": {**node["metadata"], "labels": {"a": "1"}}}, manager="t")
    with pytest.raises(ApiError) as stale:
        store.update(nodes, None, "n1", {**node, "metadata": {**node["metadata"], "labels": {"a": "2"}}}, manager="t")
    assert (stale.value.code, stale.value.reason) == (409, "Conflict")
    with pytest.raises(ApiError) as missing:
        store.get(nodes, None, "n2")
    assert (missing.value.code, missing.value.message) == (404, 'nodes "n2" not found')
    with pytest.raises(ApiError) as exists:
        store.create(nodes, None, {"metadata": {"name": "n1"}}, manager="t")
    assert (exists.value.code, exists.value.reason) == (409, "AlreadyExists")


def test_dry_run_stores_nothing(store):
    configmaps = rtype(store, "", "v1", "configmaps")
    rv = store.resource_version
    answered = store.create(configmaps, "default", {"metadata": {"name": "a"}}, manager="t", dry_run=True)
    assert answered["metadata"]["name"] == "a"
    assert store.resource_version == rv
    assert store.list(configmaps, "default", [], [])["items"] == []


def test_finalizers_hold_deletion_until_removed(store):
    configmaps = rtype(store, "", "v1", "configmaps")
    store.create(configmaps, "default", {"metadata": {"name": "a", "finalizers": ["x/y"]}}, manager="t")
    deleting = store.delete(configmaps, "default", "a")
    assert deleting["metadata"]["deletionTimestamp"]
    store.patch(configmaps, "default", "a", "json", [{"op": "remove", "path": "/metadata/finalizers"}], manager="t")
    with pytest.raises(ApiError):
        store.get(configmaps, "default", "a")


def test_crd_serves_its_kind_and_takes_its_objects_when_deleted(store):
    crds = rtype(store, "apiextensions.k8s.io", "v1", "customresourcedefinitions")
    crd = {
        "metadata": {"name": "profiles.openfaas.com"},
        "spec": {
            "group": "openfaas.com",
            "scope": "Namespaced",
            "names": {"kind": "Profile", "plural": "profiles"},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    created = store.create(crds, None, crd, manager="t")
    assert {c["type"] for c in created["status"]["conditions"]} == {"Established", "NamesAccepted"}
    profiles = rtype(store, "openfaas.com", "v1", "profiles")
    store.create(profiles, "default", {"metadata": {"name": "gpu"}, "spec": {}}, manager="t")
    store.delete(crds, None, "profiles.openfaas.com")
    assert store.catalogue.find("openfaas.com", "v1", "profiles") is None
    assert ("openfaas.com", "profiles") not in store.objects


def test_crd_name_must_be_plural_dot_group(store):
    crds = rtype(store, "apiextensions.k8s.io", "v1", "customresourcedefinitions")
    bad = {
        "metadata": {"name": "profile"},
        "spec": {"group": "openfaas.com", "names": {"kind": "Profile", "plural": "profiles"}, "versions": [{"name": "v1"}]},
    }
    with pytest.raises(ApiError) as invalid:
        store.create(crds, None, bad, manager="t")
    assert invalid.value.code == 422


def test_ready_controller_runs_a_daemon_pod_on_each_node_its_selector_matches(store):
    """One pod per Ready node whose labels match (Kubernetes' DaemonSet rules); a node that is not Ready gets its pod,
    which stays Pending there, so it counts as desired and scheduled but not ready."""
    store.ready_controller = True
    daemonsets = rtype(store, "apps", "v1", "daemonsets")
    nodes = rtype(store, "", "v1", "nodes")
    pods = rtype(store, "", "v1", "pods")
    for name, gpu, ready in (("a", "true", True), ("b", "false", True), ("c", "true", False)):
        store.create(nodes, None, gpu_node(name, labels={"gpu": gpu}, ready=ready), manager="t")
    spec = workload_spec(pod={"nodeSelector": {"gpu": "true"}})
    store.create(daemonsets, "kube-system", {"metadata": {"name": "plugin"}, "spec": spec}, manager="t")
    status = store.get(daemonsets, "kube-system", "plugin")["status"]
    assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["numberReady"]) == (2, 2, 1)
    assert (status["numberMisscheduled"], status["numberUnavailable"], status["observedGeneration"]) == (0, 1, 1)
    placed = {p["spec"]["nodeName"]: p["status"]["phase"] for p in store.list(pods, "kube-system", [], [])["items"]}
    assert placed == {"a": "Running", "c": "Pending"}


def test_namespaced_writes_need_an_existing_namespace(store):
    configmaps = rtype(store, "", "v1", "configmaps")
    with pytest.raises(ApiError) as missing:
        store.create(configmaps, "absent", {"metadata": {"name": "a"}}, manager="t")
    assert missing.value.message == 'namespaces "absent" not found'
