"""Fidelity of the test API server's pods/eviction subresource, judged by the real kubectl v1.35:
``kubectl drain`` finds the Eviction API in discovery, is refused by a PodDisruptionBudget (429)
and retries until its timeout, then drains once the budget allows; ``cordon``/``uncordon``."""

from __future__ import annotations

import requests
import yaml

from tests.support.kubeapi.pods import DAEMONSET, budget, pod


def test_kubectl_drain_is_held_by_a_budget_then_evicts(kubeapi, kubectl):
    objects = [
        DAEMONSET,
        pod("web-a", "gpu-node-1"),
        pod("web-b", "gpu-node-2"),
        pod("plugin-x", "gpu-node-1", owner=("DaemonSet", "gpu-plugin"), labels={"app": "ds"}),
        budget("web", min_available=2),
    ]
    kubeapi.admin.load(yaml.safe_dump_all(objects))
    blocked = kubectl("drain", "gpu-node-1", "--ignore-daemonsets", "--timeout=3s", check=False)
    assert blocked.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget" in blocked.stderr
    assert "global timeout reached" in blocked.stderr
    evictions = [e for e in kubeapi.admin.requests() if e["path"].endswith("/pods/web-a/eviction")]
    assert evictions and {e["code"] for e in evictions} == {429}

    kubectl("patch", "pdb", "web", "--type=merge", "-p", '{"spec": {"minAvailable": 1}}')
    drained = kubectl("drain", "gpu-node-1", "--ignore-daemonsets", "--timeout=20s")
    assert "pod/web-a evicted" in drained.stdout and "node/gpu-node-1 drained" in drained.stdout
    names = kubectl("get", "pods", "-o", "name").stdout.split()
    assert sorted(names) == ["pod/plugin-x", "pod/web-b"]
    node = kubectl("get", "node", "gpu-node-1", "-o", "json", json_output=True)
    assert node["spec"]["unschedulable"] is True


def test_kubectl_cordon_and_uncordon(kubeapi, kubectl):
    assert "node/gpu-node-2 cordoned" in kubectl("cordon", "gpu-node-2").stdout
    assert kubectl("get", "node", "gpu-node-2", "-o", "json", json_output=True)["spec"]["unschedulable"] is True
    assert "node/gpu-node-2 uncordoned" in kubectl("uncordon", "gpu-node-2").stdout
    assert "unschedulable" not in kubectl("get", "node", "gpu-node-2", "-o", "json", json_output=True)["spec"]


def test_eviction_dry_run_and_unknown_pod(kubeapi):
    kubeapi.admin.load(yaml.safe_dump_all([pod("web-a", "gpu-node-1")]))
    url = f"{kubeapi.url}/api/v1/namespaces/default/pods/web-a/eviction"
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-a", "namespace": "default"}}
    dry = requests.post(url, params={"dryRun": "All"}, json=body, timeout=10)
    assert dry.status_code == 201 and requests.get(url.rsplit("/", 1)[0], timeout=10).status_code == 200
    missing = requests.post(url.replace("web-a", "nope"), json={**body, "metadata": {"name": "nope"}}, timeout=10)
    assert missing.status_code == 404


def test_kubectl_drain_fails_at_once_on_a_pod_under_two_budgets(kubeapi, kubectl):
    """kube-apiserver answers the eviction of a pod two budgets select with NewInternalError's 500;
    kubectl drain (evictPods) retries only 429 and fails at once on anything else."""
    objects = [pod("web-a", "gpu-node-1"), budget("web", min_available=0), budget("web-too", max_unavailable=1)]
    kubeapi.admin.load(yaml.safe_dump_all(objects))
    failed = kubectl("drain", "gpu-node-1", "--timeout=60s", check=False)
    assert failed.returncode != 0
    assert (
        "Internal error occurred: This pod has more than one PodDisruptionBudget, "
        "which the eviction subresource does not support." in failed.stderr
    ), failed.stderr
    evictions = [e for e in kubeapi.admin.requests() if e["path"].endswith("/pods/web-a/eviction")]
    assert [e["code"] for e in evictions] == [500]


def test_graceful_deletion_and_finalizers_keep_a_pod_terminating_as_kubectl_sees_it(kubeapi, kubectl):
    """A pod deleted with a grace period stays with deletionTimestamp and deletionGracePeriodSeconds
    until its kubelet removes it; a finalizer keeps it after that. kubectl drain waits for a
    terminating pod (the skipDeletedFilter keeps it, waitForDelete waits) until its timeout."""
    held = pod("held", "gpu-node-1")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    kubeapi.admin.load(yaml.safe_dump_all([pod("slow", "gpu-node-1"), held]))
    kubectl("delete", "pod", "slow", "--grace-period=2", "--wait=false")
    slow = kubectl("get", "pod", "slow", "-o", "json", json_output=True)
    assert slow["metadata"]["deletionGracePeriodSeconds"] == 2 and slow["metadata"]["deletionTimestamp"]
    kubectl("wait", "--for=delete", "pod/slow", "--timeout=10s")

    kubectl("delete", "pod", "held", "--wait=false")
    blocked = kubectl("drain", "gpu-node-1", "--force", "--timeout=2s", check=False)
    assert blocked.returncode != 0, blocked.stderr
    assert 'error when waiting for pod "held" in namespace "default" to terminate' in blocked.stderr
    assert kubectl("get", "pod", "held", "-o", "json", json_output=True)["metadata"]["deletionTimestamp"]
    kubectl("patch", "pod", "held", "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
    assert kubectl("get", "pods", "-o", "name").stdout.split() == []
