"""The test API server's controller doubles (tests/support/kubeapi/controllers.py), judged by the real kubectl and helm.

The expected placements come from Kubernetes' documented rules (the DaemonSet controller's
``NodeShouldRunDaemonPod`` and the tolerations it adds to every daemon pod, kube-scheduler's filters, the garbage
collector's propagation policies) and, for the real nvidia-device-plugin chart, from the selectors and tolerations
the real helm renders; the counts from what kubectl prints (``get -o wide``, ``rollout status``, ``describe``).
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.support import upstream

NODES = ("gpu-node-1", "gpu-node-2", "gpu-node-3")


def apply(kubectl, *docs: dict) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def daemonset(name: str, pod_spec: dict, namespace: str = "default") -> dict:
    labels = {"app": name}
    spec = {"containers": [{"name": "main", "image": "registry.test/plugin:1"}], **pod_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},  # the real API server's default; the bench does not default
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def deployment(name: str, pod_spec: dict, replicas: int = 1) -> dict:
    labels = {"app": name}
    spec = {"containers": [{"name": "main", "image": "registry.test/web:1"}], **pod_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def job(name: str, pod_spec: dict) -> dict:
    spec = {"restartPolicy": "Never", "containers": [{"name": "main", "image": "registry.test/smoke:1"}], **pod_spec}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {"spec": spec}},
    }


def pods_wide(kubectl) -> dict[str, tuple[str, str, str]]:
    """``kubectl get pods -A -o wide`` as {pod: (namespace, status, node)}."""
    lines = kubectl("get", "pods", "-A", "-o", "wide").stdout.splitlines()
    header = lines[0].split()  # NAMESPACE NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE ...
    assert header[:8] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"], header
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        rows[cells[1]] = (cells[0], cells[3], cells[7])
    return rows


def nodes_of(kubectl, prefix: str) -> list[tuple[str, str]]:
    """Sorted (node, status) of the pods named ``<prefix>-xxxxx`` (node ``<none>`` while unscheduled)."""
    return sorted(
        (node, status)
        for name, (_ns, status, node) in pods_wide(kubectl).items()
        if re.fullmatch(rf"{prefix}-[a-z0-9]{{5}}", name)
    )


@pytest.fixture
def controllers(kubeapi):
    kubeapi.admin.set_ready_controller(True)
    return kubeapi


def test_daemonset_pods_follow_selectors_taints_and_node_changes(kubectl, controllers):
    """NodeShouldRunDaemonPod: the nodeSelector must match; an untolerated NoSchedule taint keeps a new pod off but
    leaves a running one; a cordoned node still gets its pod (the controller tolerates node.kubernetes.io/unschedulable);
    a removed label or an untolerated NoExecute taint deletes the pod."""
    kubectl("label", "nodes", "gpu-node-1", "gpu-node-2", "gpu-node-3", "gpu=on")
    kubectl("taint", "nodes", "gpu-node-3", "dedicated=ml:NoSchedule")
    kubectl("cordon", "gpu-node-2")
    apply(kubectl, daemonset("plugin", {"nodeSelector": {"gpu": "on"}}))
    assert nodes_of(kubectl, "plugin") == [("gpu-node-1", "Running"), ("gpu-node-2", "Running")]
    rollout = kubectl("rollout", "status", "daemonset/plugin", "--timeout=20s").stdout
    assert 'daemon set "plugin" successfully rolled out' in rollout
    described = kubectl("describe", "daemonset", "plugin").stdout
    for line in (
        "Desired Number of Nodes Scheduled: 2",
        "Current Number of Nodes Scheduled: 2",
        "Number of Nodes Scheduled with Up-to-date Pods: 2",
        "Number of Nodes Scheduled with Available Pods: 2",
        "Number of Nodes Misscheduled: 0",
        "Pods Status:  2 Running / 0 Waiting / 0 Succeeded / 0 Failed",
    ):
        assert line in described, described

    pod = next(p for p in kubectl("get", "pods", "-l", "app=plugin", "-o", "json", json_output=True)["items"])
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("DaemonSet", "plugin", True)
    assert {"controller-revision-hash", "pod-template-generation", "app"} <= set(pod["metadata"]["labels"])
    term = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [pod["spec"]["nodeName"]]}]}]
    added = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
    assert added == {
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    }

    kubectl("taint", "nodes", "gpu-node-1", "late=yes:NoSchedule")  # added later: the pod stays
    kubectl("taint", "nodes", "gpu-node-3", "dedicated=ml:NoSchedule-")  # removed: gpu-node-3 gets one
    assert nodes_of(kubectl, "plugin") == [(node, "Running") for node in NODES]
    kubectl("label", "nodes", "gpu-node-3", "gpu-")  # selector no longer matches: deleted
    kubectl("taint", "nodes", "gpu-node-2", "evict=now:NoExecute")  # untolerated NoExecute: deleted
    assert nodes_of(kubectl, "plugin") == [("gpu-node-1", "Running")]
    status = kubectl("get", "daemonset", "plugin", "-o", "json", json_output=True)["status"]
    # the pod kept on gpu-node-1 (tainted after it started) is not desired there: misscheduled (updateDaemonSetStatus)
    assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["numberMisscheduled"]) == (0, 0, 1)


def test_rollout_status_waits_for_a_pod_that_cannot_be_placed(kubectl, controllers):
    """A daemon pod asking for more GPUs than a node has stays Pending (kube-scheduler binds daemon pods since 1.12),
    so the rollout is not done; a Deployment whose pods match no node is unavailable until a node is labelled."""
    apply(
        kubectl,
        daemonset("greedy", {"containers": [{"name": "main", "image": "i", "resources": {"limits": {"nvidia.com/gpu": "4"}}}]}),
    )
    # only gpu-node-3 has 4 GPUs (8); the pods for gpu-node-1 (2) and gpu-node-2 (1) stay unbound
    assert nodes_of(kubectl, "greedy") == [("<none>", "Pending"), ("<none>", "Pending"), ("gpu-node-3", "Running")]
    stuck = kubectl("rollout", "status", "daemonset/greedy", "--timeout=2s", check=False)
    assert stuck.returncode != 0
    assert 'Waiting for daemon set "greedy" rollout to finish: 1 of 3 updated pods are available...' in stuck.stdout
    assert "timed out waiting for the condition" in stuck.stderr

    apply(kubectl, deployment("web", {"nodeSelector": {"pool": "web"}}, replicas=2))
    waiting = kubectl("rollout", "status", "deployment/web", "--timeout=2s", check=False)
    assert waiting.returncode != 0
    assert 'Waiting for deployment "web" rollout to finish: 0 of 2 updated replicas are available...' in waiting.stdout
    described = kubectl("get", "deployment", "web", "-o", "json", json_output=True)["status"]
    available = next(c for c in described["conditions"] if c["type"] == "Available")
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert described["unavailableReplicas"] == 2
    pending = kubectl("get", "pods", "-l", "app=web", "-o", "json", json_output=True)["items"][0]["status"]
    assert "3 node(s) didn't match Pod's node affinity/selector" in pending["conditions"][0]["message"]

    kubectl("label", "nodes", "gpu-node-2", "pool=web")  # the scheduler retries the Pending pods
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=20s").stdout
    assert nodes_of(kubectl, ready_rs(kubectl, "web")) == [("gpu-node-2", "Running")] * 2


def test_rollout_status_reports_a_deployment_past_its_progress_deadline(kubectl, controllers):
    """progress.go: no progress for progressDeadlineSeconds turns Progressing False, ProgressDeadlineExceeded, and
    kubectl rollout status stops with its error instead of waiting out its timeout."""
    stuck = deployment("stuck", {"nodeSelector": {"pool": "absent"}})
    stuck["spec"]["progressDeadlineSeconds"] = 2
    apply(kubectl, stuck)
    rollout = kubectl("rollout", "status", "deployment/stuck", "--timeout=30s", check=False)
    assert rollout.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in rollout.stderr
    status = kubectl("get", "deployment", "stuck", "-o", "json", json_output=True)["status"]
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == f'ReplicaSet "{ready_rs(kubectl, "stuck")}" has timed out progressing.'


def ready_rs(kubectl, deployment_name: str) -> str:
    listed = kubectl("get", "replicasets", "-l", f"app={deployment_name}", "-o", "json", json_output=True)["items"]
    (current,) = [rs for rs in listed if rs["spec"]["replicas"] > 0]
    return current["metadata"]["name"]


def test_deployment_rolls_to_a_new_replicaset_and_scales_the_old_one_to_zero(kubectl, controllers):
    apply(kubectl, deployment("web", {}, replicas=2))
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=20s").stdout
    first = ready_rs(kubectl, "web")
    rs = kubectl("get", "replicaset", first, "-o", "json", json_output=True)
    template_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert first == f"web-{template_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": template_hash}
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    kubectl("set", "image", "deployment/web", "main=registry.test/web:2")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=20s").stdout
    second = ready_rs(kubectl, "web")
    assert second != first
    replicas = {
        rs["metadata"]["name"]: rs["spec"]["replicas"]
        for rs in kubectl("get", "replicasets", "-o", "json", json_output=True)["items"]
    }
    assert replicas == {first: 0, second: 2}
    images = {
        p["spec"]["containers"][0]["image"]
        for p in kubectl("get", "pods", "-l", "app=web", "-o", "json", json_output=True)["items"]
    }
    assert images == {"registry.test/web:2"}
    status = kubectl("get", "deployment", "web", "-o", "json", json_output=True)["status"]
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["reason"], progressing["message"]) == (
        "NewReplicaSetAvailable",
        f'ReplicaSet "{second}" has successfully progressed.',
    )
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"], status["observedGeneration"]) == (
        2,
        2,
        2,
        2,
    )


def test_job_runs_to_completion_or_stays_active_when_its_pod_cannot_be_placed(kubectl, controllers):
    apply(kubectl, job("once", {}))
    kubectl("wait", "--for=condition=complete", "job/once", "--timeout=20s")
    status = kubectl("get", "job", "once", "-o", "json", json_output=True)["status"]
    assert status["succeeded"] == 1 and status["startTime"] and status["completionTime"]
    # 1.31+: SuccessCriteriaMet before Complete (pkg/controller/job: delayTerminalCondition)
    assert [c["type"] for c in status["conditions"]] == ["SuccessCriteriaMet", "Complete"]

    apply(kubectl, job("nowhere", {"nodeSelector": {"pool": "absent"}}))
    waited = kubectl("wait", "--for=condition=complete", "job/nowhere", "--timeout=2s", check=False)
    assert waited.returncode != 0
    status = kubectl("get", "job", "nowhere", "-o", "json", json_output=True)["status"]
    assert status["active"] == 1 and "succeeded" not in status and "conditions" not in status


def test_statefulset_pods_are_numbered(kubectl, controllers):
    apply(
        kubectl,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "updateStrategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "main", "image": "i"}]}},
            },
        },
    )
    rows = pods_wide(kubectl)
    assert {name: rows[name][1] for name in rows if name.startswith("db-")} == {
        "db-0": "Running",
        "db-1": "Running",
        "db-2": "Running",
    }
    rollout = kubectl("rollout", "status", "statefulset/db", "--timeout=20s").stdout
    assert "statefulset rolling update complete 3 pods at revision db-" in rollout


@pytest.mark.parametrize(
    ("cascade", "replicasets_left", "pods_left"),
    [("background", 0, 0), ("foreground", 0, 0), ("orphan", 1, 2)],
)
def test_deleting_a_deployment_collects_or_orphans_its_dependents(kubectl, controllers, cascade, replicasets_left, pods_left):
    apply(kubectl, deployment("web", {}, replicas=2))
    before = (kubectl("get", "replicasets", "-o", "name").stdout.split(), kubectl("get", "pods", "-o", "name").stdout.split())
    assert (len(before[0]), len(before[1])) == (1, 2)
    kubectl("delete", "deployment", "web", f"--cascade={cascade}", "--wait=true", "--timeout=20s")
    replicasets = kubectl("get", "replicasets", "-o", "json", json_output=True)["items"]
    pods = kubectl("get", "pods", "-o", "json", json_output=True)["items"]
    assert (len(replicasets), len(pods)) == (replicasets_left, pods_left)
    if cascade == "orphan":
        assert "ownerReferences" not in replicasets[0]["metadata"]
        assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in pods)


def test_real_nvidia_device_plugin_chart_runs_on_the_gpu_nodes_it_selects_and_tolerates(helm, kubectl, controllers):
    """helm install --wait of the real chart: its DaemonSet's required node affinity (rendered by the real helm)
    selects nodes labelled nvidia.com/gpu.present=true and tolerates nvidia.com/gpu:NoSchedule, not other taints;
    the MPS control daemon selects nvidia.com/mps.capable=true, which no node has here."""
    chart = upstream.chart("nvidia-device-plugin-0.20.0.tgz")
    rendered = upstream.load_all(
        helm("template", "nvdp", str(chart), "-n", "nvdp").stdout  # the real render: what the expectation rests on
    )
    plugin = next(d for d in rendered if d["kind"] == "DaemonSet" and d["metadata"]["name"] == "nvdp-nvidia-device-plugin")
    pod_spec = plugin["spec"]["template"]["spec"]
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]} in terms
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec["tolerations"]
    assert all(t.get("key") and t["key"] != "dedicated" for t in pod_spec["tolerations"])  # no wildcard toleration

    # gpu-node-1: labelled, GPU taint (tolerated); gpu-node-2: labelled, another taint; gpu-node-3: label removed
    kubectl("taint", "nodes", "gpu-node-1", "nvidia.com/gpu=present:NoSchedule")
    kubectl("taint", "nodes", "gpu-node-2", "dedicated=ml:NoSchedule")
    kubectl("label", "nodes", "gpu-node-3", "nvidia.com/gpu.present-")
    helm("install", "nvdp", str(chart), "-n", "nvdp", "--create-namespace", "--wait", "--timeout", "60s")
    daemonsets = {
        d["metadata"]["name"]: d["status"]
        for d in kubectl("get", "daemonsets", "-n", "nvdp", "-o", "json", json_output=True)["items"]
    }
    assert daemonsets["nvdp-nvidia-device-plugin"]["desiredNumberScheduled"] == 1
    assert daemonsets["nvdp-nvidia-device-plugin-mps-control-daemon"]["desiredNumberScheduled"] == 0
    placed = {
        (ns, node, status)
        for name, (ns, status, node) in pods_wide(kubectl).items()
        if name.startswith("nvdp-nvidia-device-plugin-")
    }
    assert placed == {("nvdp", "gpu-node-1", "Running")}
    helm("uninstall", "nvdp", "-n", "nvdp", "--wait", "--timeout", "30s")
    assert json.loads(kubectl("get", "pods", "-n", "nvdp", "-o", "json").stdout)["items"] == []
