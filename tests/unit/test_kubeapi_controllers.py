"""The controller doubles of the test API server (tests/support/kubeapi/controllers.py) without HTTP.

Expected values are Kubernetes' rules as its source states them: pkg/controller/daemon/util/daemonset_util.go
(the tolerations added to daemon pods, ``NodeShouldRunDaemonPod``), pkg/controller/job (the conditions of a finished
Job by version), kube-apiserver's strategies (a ``batch/v1`` Job orphans its pods unless told otherwise) and the
garbage collector's foreground deletion (the owner waits for its ``blockOwnerDeletion`` dependents).
"""

from __future__ import annotations

import pytest

from tests.support.kubeapi.controllers import node_should_run_daemon_pod
from tests.support.kubeapi.nodes import gpu_node
from tests.support.kubeapi.store import Store


def kind(store: Store, group: str, name: str):
    return store.catalogue.find_kind(group, "v1", name)


@pytest.fixture
def store() -> Store:
    store = Store()
    store.reset()
    store.ready_controller = True
    for name in ("a", "b"):
        store.create(kind(store, "", "Node"), None, gpu_node(name), manager="t")
    return store


def ds(pod_spec: dict) -> dict:
    spec = {"containers": [{"name": "c", "image": "i"}], **pod_spec}
    return {"metadata": {"name": "d", "namespace": "default", "uid": "u"}, "spec": {"template": {"spec": spec}}}


def tainted(effect: str, key: str = "node.kubernetes.io/network-unavailable") -> dict:
    node = gpu_node("n")
    node["spec"]["taints"] = [{"key": key, "effect": effect}]
    return node


@pytest.mark.parametrize(
    ("pod_spec", "node", "expected"),
    [
        ({}, gpu_node("n"), (True, True)),
        ({"nodeSelector": {"gpu": "on"}}, gpu_node("n"), (False, False)),
        ({"nodeName": "other"}, gpu_node("n"), (False, False)),
        # network-unavailable is tolerated only for hostNetwork pods
        ({}, tainted("NoSchedule"), (False, True)),
        ({"hostNetwork": True}, tainted("NoSchedule"), (True, True)),
        # the controller's own tolerations: unschedulable (NoSchedule), not-ready (NoExecute)
        ({}, tainted("NoSchedule", "node.kubernetes.io/unschedulable"), (True, True)),
        ({}, tainted("NoExecute", "node.kubernetes.io/not-ready"), (True, True)),
        ({}, tainted("NoSchedule", "node.kubernetes.io/not-ready"), (False, True)),
        # an untolerated NoExecute taint: neither run nor keep running
        ({}, tainted("NoExecute", "maintenance"), (False, False)),
        ({"tolerations": [{"key": "maintenance", "operator": "Exists"}]}, tainted("NoExecute", "maintenance"), (True, True)),
    ],
)
def test_node_should_run_daemon_pod(pod_spec, node, expected):
    assert node_should_run_daemon_pod(ds(pod_spec), node) == expected


def job(name: str) -> dict:
    spec = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
    return {"metadata": {"name": name}, "spec": {"template": {"spec": spec}}}


@pytest.mark.parametrize(("version", "conditions"), [("v1.30.14", ["Complete"]), ("v1.31.0", ["SuccessCriteriaMet", "Complete"])])
def test_a_finished_job_gets_the_conditions_of_its_version(store, version, conditions):
    store.kube_version = version
    store.create(kind(store, "batch", "Job"), "default", job("j"), manager="t")
    status = store.get(kind(store, "batch", "Job"), "default", "j")["status"]
    assert [c["type"] for c in status["conditions"]] == conditions
    assert status["succeeded"] == 1


def test_a_job_deleted_without_a_policy_orphans_its_pods_and_background_deletes_them(store):
    jobs, pods = kind(store, "batch", "Job"), kind(store, "", "Pod")
    store.create(jobs, "default", job("kept"), manager="t")
    store.create(jobs, "default", job("gone"), manager="t")
    store.delete(jobs, "default", "kept")
    store.delete(jobs, "default", "gone", propagation="Background")
    left = store.list(pods, "default", [], [])["items"]
    assert [p["metadata"]["name"].rsplit("-", 1)[0] for p in left] == ["kept"]
    assert "ownerReferences" not in left[0]["metadata"]


def test_foreground_deletion_waits_for_a_terminating_pod(store):
    daemonsets, pods = kind(store, "apps", "DaemonSet"), kind(store, "", "Pod")
    body = {
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"terminationGracePeriodSeconds": 30, "containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    store.create(daemonsets, "default", body, manager="t")
    assert len(store.list(pods, "default", [], [])["items"]) == 2
    store.delete(daemonsets, "default", "d", propagation="Foreground")
    owner = store.get(daemonsets, "default", "d")
    assert owner["metadata"]["finalizers"] == ["foregroundDeletion"] and owner["metadata"]["deletionTimestamp"]
    for pod in store.list(pods, "default", [], [])["items"]:
        assert pod["metadata"]["deletionTimestamp"]  # terminating for 30 s
        store.delete(pods, "default", pod["metadata"]["name"], grace_period=0)
    with pytest.raises(Exception, match="not found"):
        store.get(daemonsets, "default", "d")
