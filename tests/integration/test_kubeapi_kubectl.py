"""Fidelity of the test API server, judged by the real kubectl (v1.33 from .cache/bin).

Each test runs kubectl against the server and checks the result through kubectl and through
the server's request log, so a server that only looked right to our own code would fail here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFESTS = Path(__file__).resolve().parents[1] / "support" / "manifests"


def node(kubectl, name: str) -> dict:
    return kubectl("get", "node", name, "-o", "json", "--show-managed-fields", json_output=True)


def test_get_nodes_json_lists_the_fixture_gpu_nodes_with_capacity(kubectl):
    listed = kubectl("get", "nodes", "-o", "json", json_output=True)
    by_name = {item["metadata"]["name"]: item for item in listed["items"]}
    assert sorted(by_name) == ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
    assert [by_name[n]["status"]["capacity"]["nvidia.com/gpu"] for n in sorted(by_name)] == ["2", "1", "8"]
    for item in listed["items"]:
        assert item["kind"] == "Node"
        assert item["metadata"]["uid"]
        assert int(item["metadata"]["resourceVersion"]) > 0


def test_get_nodes_by_label_selector_and_default_table(kubectl):
    kubectl("label", "node", "gpu-node-3", "gpu.product=h100")
    selected = kubectl("get", "nodes", "-l", "gpu.product in (h100,a100)", "-o", "name").stdout.split()
    assert selected == ["node/gpu-node-3"]
    unselected = kubectl("get", "nodes", "-l", "!gpu.product", "-o", "name").stdout.split()
    assert unselected == ["node/gpu-node-1", "node/gpu-node-2"]
    table = kubectl("get", "nodes").stdout
    assert table.splitlines()[0].split()[0] == "NAME"
    assert "gpu-node-2" in table


def test_label_and_unlabel_node(kubectl, kubeapi):
    before = node(kubectl, "gpu-node-1")["metadata"]["resourceVersion"]
    assert "node/gpu-node-1 labeled" in kubectl("label", "node", "gpu-node-1", "nvidia.com/gpu.product=Tesla-V100").stdout
    labelled = node(kubectl, "gpu-node-1")
    assert labelled["metadata"]["labels"]["nvidia.com/gpu.product"] == "Tesla-V100"
    assert int(labelled["metadata"]["resourceVersion"]) > int(before)
    managers = {entry["manager"] for entry in labelled["metadata"]["managedFields"]}
    assert "kubectl-label" in managers

    assert "unlabeled" in kubectl("label", "node", "gpu-node-1", "nvidia.com/gpu.product-").stdout
    assert "nvidia.com/gpu.product" not in node(kubectl, "gpu-node-1")["metadata"]["labels"]
    patches = [r for r in kubeapi.admin.requests() if r["verb"] == "patch"]
    assert [r["resource"] for r in patches] == ["nodes", "nodes"]


def test_label_without_overwrite_refuses_to_change_a_value(kubectl):
    kubectl("label", "node", "gpu-node-2", "team=a")
    refused = kubectl("label", "node", "gpu-node-2", "team=b", check=False)
    assert refused.returncode != 0
    assert "already has a value (a)" in refused.stderr
    kubectl("label", "node", "gpu-node-2", "team=b", "--overwrite")
    assert node(kubectl, "gpu-node-2")["metadata"]["labels"]["team"] == "b"


def test_invalid_label_value_is_rejected_by_the_server(kubectl):
    result = kubectl("label", "node", "gpu-node-1", "--overwrite", "bad=value with spaces", check=False)
    assert result.returncode != 0
    assert "gpu-node-1" in result.stderr or "invalid" in result.stderr.lower()


def test_taint_and_untaint_node_keeps_other_taints(kubectl, kubeapi):
    assert "tainted" in kubectl("taint", "node", "gpu-node-2", "nvidia.com/gpu=present:NoSchedule").stdout
    kubectl("taint", "node", "gpu-node-2", "dedicated=ml:NoExecute")
    taints = node(kubectl, "gpu-node-2")["spec"]["taints"]
    assert {(t["key"], t.get("value"), t["effect"]) for t in taints} == {
        ("nvidia.com/gpu", "present", "NoSchedule"),
        ("dedicated", "ml", "NoExecute"),
    }
    assert "untainted" in kubectl("taint", "node", "gpu-node-2", "nvidia.com/gpu-").stdout
    taints = node(kubectl, "gpu-node-2")["spec"]["taints"]
    assert [(t["key"], t["effect"]) for t in taints] == [("dedicated", "NoExecute")]
    patch_types = {r["contentType"] for r in kubeapi.admin.requests() if r["verb"] == "patch"}
    assert patch_types == {"application/strategic-merge-patch+json"}


def test_taint_of_a_missing_node_reports_not_found(kubectl):
    result = kubectl("taint", "node", "no-such-node", "k=v:NoSchedule", check=False)
    assert result.returncode != 0
    assert 'nodes "no-such-node" not found' in result.stderr


def test_server_side_apply_of_crd_then_custom_resource_then_delete(kubectl):
    applied = kubectl("apply", "--server-side", "-f", str(MANIFESTS / "openfaas-profile-crd.yaml")).stdout
    assert "customresourcedefinition.apiextensions.k8s.io/profiles.openfaas.com serverside-applied" in applied
    crd = kubectl("get", "crd", "profiles.openfaas.com", "-o", "json", json_output=True)
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"

    assert (
        "profile.openfaas.com/gpu serverside-applied"
        in kubectl("apply", "--server-side", "-f", str(MANIFESTS / "gpu-profile.yaml")).stdout
    )
    profile = kubectl("get", "profile", "gpu", "-n", "default", "-o", "json", "--show-managed-fields", json_output=True)
    assert profile["spec"]["runtimeClassName"] == "nvidia"
    assert [(m["manager"], m["operation"]) for m in profile["metadata"]["managedFields"]] == [("kubectl", "Apply")]

    # Re-applying the same manifest is a no-op on a real server: the resourceVersion stays.
    kubectl("apply", "--server-side", "-f", str(MANIFESTS / "gpu-profile.yaml"))
    again = kubectl("get", "profile", "gpu", "-n", "default", "-o", "json", json_output=True)
    assert again["metadata"]["resourceVersion"] == profile["metadata"]["resourceVersion"]

    assert 'profile.openfaas.com "gpu" deleted' in kubectl("delete", "-f", str(MANIFESTS / "gpu-profile.yaml")).stdout
    missing = kubectl("get", "profile", "gpu", "-n", "default", check=False)
    assert missing.returncode != 0
    assert 'profiles.openfaas.com "gpu" not found' in missing.stderr
    kubectl("delete", "crd", "profiles.openfaas.com")
    assert "profiles.openfaas.com" not in kubectl("get", "crd", "-o", "name").stdout


def test_server_side_apply_conflict_between_managers_and_force(kubectl, tmp_path):
    manifest = yaml.safe_load((MANIFESTS / "gpu-profile.yaml").read_text())
    kubectl("apply", "--server-side", "-f", str(MANIFESTS / "openfaas-profile-crd.yaml"))
    kubectl("apply", "--server-side", "--field-manager", "first", "-f", str(MANIFESTS / "gpu-profile.yaml"))
    manifest["spec"]["runtimeClassName"] = "nvidia-cdi"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(manifest))
    conflict = kubectl("apply", "--server-side", "--field-manager", "second", "-f", str(changed), check=False)
    assert conflict.returncode != 0
    assert 'conflict with "first"' in conflict.stderr
    assert ".spec.runtimeClassName" in conflict.stderr
    kubectl("apply", "--server-side", "--field-manager", "second", "--force-conflicts", "-f", str(changed))
    profile = kubectl("get", "profile", "gpu", "-o", "json", "--show-managed-fields", json_output=True)
    assert profile["spec"]["runtimeClassName"] == "nvidia-cdi"
    owners = {m["manager"]: m["fieldsV1"] for m in profile["metadata"]["managedFields"]}
    assert "f:runtimeClassName" in owners["second"]["f:spec"]
    assert "f:runtimeClassName" not in owners["first"]["f:spec"]


def test_dry_run_server_changes_nothing(kubectl):
    before = node(kubectl, "gpu-node-1")
    out = kubectl("label", "node", "gpu-node-1", "dry=run", "--dry-run=server").stdout
    assert "labeled" in out
    after = node(kubectl, "gpu-node-1")
    assert "dry" not in after["metadata"]["labels"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_create_namespace_and_configmap_then_delete_namespace(kubectl):
    kubectl("create", "namespace", "gpu-operator")
    kubectl("create", "configmap", "settings", "-n", "gpu-operator", "--from-literal=mode=mps")
    cm = kubectl("get", "configmap", "settings", "-n", "gpu-operator", "-o", "json", json_output=True)
    assert cm["data"] == {"mode": "mps"}
    again = kubectl("create", "configmap", "settings", "-n", "gpu-operator", "--from-literal=mode=mps", check=False)
    assert again.returncode != 0
    assert 'configmaps "settings" already exists' in again.stderr
    kubectl("delete", "namespace", "gpu-operator")
    assert kubectl("get", "configmaps", "-n", "gpu-operator", "-o", "name", check=False).stdout.strip() == ""


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: nginx, resources: {limits: {nvidia.com/gpu: "1"}}}]
"""


def test_client_side_apply_rollout_status_and_wait_with_the_ready_controller(kubectl, kubeapi, tmp_path):
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(DEPLOYMENT)
    kubeapi.admin.set_ready_controller(True)
    assert "deployment.apps/web created" in kubectl("apply", "-f", str(manifest)).stdout
    assert 'deployment "web" successfully rolled out' in kubectl("rollout", "status", "deployment/web", "--timeout", "20s").stdout
    assert "condition met" in kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout", "20s").stdout
    assert "deployment.apps/web unchanged" in kubectl("apply", "-f", str(manifest)).stdout
    deployment = kubectl("get", "deployment", "web", "-o", "json", json_output=True)
    assert "kubectl.kubernetes.io/last-applied-configuration" in deployment["metadata"]["annotations"]
    assert deployment["status"]["readyReplicas"] == 2
    kubectl("delete", "-f", str(manifest), "--wait", "--timeout", "20s")
    assert kubectl("get", "deployments", "-o", "name").stdout.strip() == ""


def test_rollout_status_times_out_without_the_ready_controller(kubectl, tmp_path):
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(DEPLOYMENT)
    kubectl("apply", "-f", str(manifest))
    waiting = kubectl("rollout", "status", "deployment/web", "--timeout", "2s", check=False)
    assert waiting.returncode != 0
    assert "timed out" in waiting.stderr
