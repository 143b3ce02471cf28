"""Fidelity of the test API server, judged by the real kubectl (v1.35 from .cache/bin).

Each test runs kubectl against the server and checks the result through kubectl and through
the server's request log, so a server that only looked right to our own code would fail here.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
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


# -- what a user of the lab types: server-side Table output, describe, create, helm list -A ------------------


def columns(text: str) -> list[list[str]]:
    """kubectl's table output as rows of cells (cells separated by two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def test_get_nodes_prints_the_servers_table_status_roles_age_version(kubectl, kubeapi):
    kubectl("label", "node", "gpu-node-1", "node-role.kubernetes.io/control-plane=")
    kubectl("label", "node", "gpu-node-1", "node-role.kubernetes.io/worker=")
    kubectl("cordon", "gpu-node-2")
    kubeapi.admin.counters()
    table = columns(kubectl("get", "nodes").stdout)
    assert table[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {row[0]: row for row in table[1:]}
    assert rows["gpu-node-1"][1:3] == ["Ready", "control-plane,worker"]
    assert rows["gpu-node-2"][1:3] == ["Ready,SchedulingDisabled", "<none>"]
    assert rows["gpu-node-3"][4] == "v1.35.2"
    assert all(row[3].endswith("s") or row[3].endswith("m") for row in table[1:])  # an age, e.g. 3s
    wide = columns(kubectl("get", "nodes", "-o", "wide").stdout)
    assert wide[0][5:] == ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert wide[3][5] == "10.0.0.13"
    assert wide[3][9] == "containerd://1.7.24"
    # --show-labels reads the labels from the rows' PartialObjectMetadata
    labelled = columns(kubectl("get", "node", "gpu-node-1", "--show-labels").stdout)
    assert labelled[0][-1] == "LABELS"
    assert "node-role.kubernetes.io/worker=" in labelled[1][-1]


def test_table_rows_carry_partial_metadata_the_object_or_nothing(kubeapi):
    """The server's answer to kubectl's Accept header, read directly (row objects as includeObject asks)."""

    def get(query: str) -> dict:
        request = urllib.request.Request(
            f"{kubeapi.url}/api/v1/nodes{query}",
            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
        )
        with urllib.request.urlopen(request) as response:
            return json.load(response)

    table = get("")
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == ["Name", "Status", "Roles", "Age", "Version"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert "status" not in table["rows"][0]["object"]
    assert get("?includeObject=Object")["rows"][0]["object"]["status"]["capacity"]["nvidia.com/gpu"] == "2"
    assert "object" not in get("?includeObject=None")["rows"][0]
    plain = urllib.request.Request(f"{kubeapi.url}/api/v1/nodes", headers={"Accept": "application/json"})
    with urllib.request.urlopen(plain) as response:
        assert json.load(response)["kind"] == "NodeList"


def test_create_deployment_and_run_then_get_pods_all_namespaces(kubectl, kubeapi):
    kubeapi.admin.set_ready_controller(True)
    kubectl("create", "namespace", "team-a")
    assert (
        "deployment.apps/web created"
        in kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "--port=80", "-n", "team-a").stdout
    )
    created = kubectl("get", "deployment", "web", "-n", "team-a", "-o", "json", json_output=True)
    assert created["spec"]["replicas"] == 2
    assert created["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    (container,) = created["spec"]["template"]["spec"]["containers"]
    assert container == {
        "name": "nginx",
        "image": "nginx:1.27",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "resources": {},
    }
    assert "creationTimestamp" not in created["spec"]["template"]["metadata"]
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "-n", "team-a", "--timeout=10s").stdout
    deployments = columns(kubectl("get", "deployments", "-A").stdout)
    assert deployments[0] == ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deployments[1][:5] == ["team-a", "web", "2/2", "2", "2"]
    kubectl("run", "smoke", "--image=busybox", "-n", "team-a", "--", "sleep", "1")
    pods = columns(kubectl("get", "pods", "-A").stdout)
    assert pods[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1][:5] == ["team-a", "smoke", "1/1", "Running", "0"]
    pod = kubectl("get", "pod", "smoke", "-n", "team-a", "-o", "json", json_output=True)
    assert pod["spec"]["containers"] == [{"name": "smoke", "image": "busybox", "args": ["sleep", "1"], "resources": {}}]
    creates = [r for r in kubeapi.admin.requests() if r["verb"] == "create" and r["resource"] == "deployments"]
    assert [r["contentType"] for r in creates] == ["application/vnd.kubernetes.protobuf"]  # decoded by protobuf.py


def test_describe_node_shows_gpu_capacity_and_allocatable(kubectl, kubeapi):
    kubeapi.server.store.patch(
        kubeapi.server.store.catalogue.find("", "v1", "nodes"),
        None,
        "gpu-node-3",
        "merge",
        {"status": {"allocatable": {"nvidia.com/gpu": "7"}}},
        manager="kubelet",
        subresource="status",
    )
    described = kubectl("describe", "node", "gpu-node-3").stdout
    capacity = described.split("Capacity:")[1].split("Allocatable:")[0]
    allocatable = described.split("Allocatable:")[1].split("System Info:")[0]
    assert re_search(r"nvidia\.com/gpu:\s+8\n", capacity)
    assert re_search(r"nvidia\.com/gpu:\s+7\n", allocatable)
    assert re_search(r"Kubelet Version:\s+v1\.35\.2", described)
    assert re_search(r"nvidia\.com/gpu\s+0\s+0", described.split("Allocated resources:")[1])


def re_search(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def test_get_custom_resources_and_configmaps_print_server_columns(kubectl):
    kubectl("apply", "--server-side", "-f", str(MANIFESTS / "openfaas-profile-crd.yaml"))
    table = columns(kubectl("get", "crd").stdout)
    assert table[0] == ["NAME", "AGE"]
    kubectl("create", "configmap", "c1", "--from-literal=a=1", "--from-literal=b=2")
    assert columns(kubectl("get", "configmap", "c1").stdout)[1][:2] == ["c1", "2"]


def test_helm_list_all_namespaces_shows_releases(helm, kubectl, tmp_path):
    chart = Path(__file__).resolve().parents[1] / "support" / "charts" / "gpu-demo"
    kubectl("create", "namespace", "gpu-system")
    helm("install", "demo", str(chart), "-n", "gpu-system")
    helm("install", "other", str(chart), "-n", "default")
    listed = [[cell.strip() for cell in line.split("\t")] for line in helm("list", "-A").stdout.strip().splitlines()]
    assert listed[0][:5] == ["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS"]
    assert sorted((row[0], row[1], row[2], row[4]) for row in listed[1:]) == [
        ("demo", "gpu-system", "1", "deployed"),
        ("other", "default", "1", "deployed"),
    ]


# What `kubectl api-versions` lists on a kubeadm cluster of each minor (default --runtime-config),
# from Kubernetes' deprecated API migration guide and release notes: flowcontrol v1beta2 removed in
# 1.29, v1 GA in 1.29, v1beta3 removed in 1.32; resource.k8s.io/v1 (DRA) GA and on in 1.34, its betas
# off by default. authentication.k8s.io/v1 and authorization.k8s.io/v1 (the create-only review
# APIs) are left out: the test API server emulates no authentication or authorization (README).
GA_IN_EVERY_SUPPORTED_MINOR = [
    "admissionregistration.k8s.io/v1",
    "apiextensions.k8s.io/v1",
    "apiregistration.k8s.io/v1",
    "apps/v1",
    "autoscaling/v1",
    "autoscaling/v2",
    "batch/v1",
    "certificates.k8s.io/v1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "events.k8s.io/v1",
    "networking.k8s.io/v1",
    "node.k8s.io/v1",
    "policy/v1",
    "rbac.authorization.k8s.io/v1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1",
    "v1",
]
SERVED_BY_MINOR = {
    "v1.28.15": ["flowcontrol.apiserver.k8s.io/v1beta2", "flowcontrol.apiserver.k8s.io/v1beta3"],
    "v1.31.2": ["flowcontrol.apiserver.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1beta3"],
    "v1.35.2": ["flowcontrol.apiserver.k8s.io/v1", "resource.k8s.io/v1"],
}


@pytest.mark.parametrize("version", sorted(SERVED_BY_MINOR))
def test_api_versions_are_those_a_kube_apiserver_of_the_reported_minor_serves(kubectl, kubeapi, version):
    kubeapi.admin.set_version(version)
    assert kubectl("api-versions").stdout.split() == sorted(GA_IN_EVERY_SUPPORTED_MINOR + SERVED_BY_MINOR[version])
    flowcontrol = kubectl("get", "--raw", "/apis/flowcontrol.apiserver.k8s.io", json_output=True)
    assert flowcontrol["preferredVersion"]["version"] == ("v1beta3" if version == "v1.28.15" else "v1")


def test_dra_device_classes_are_served_and_typed_from_1_34_only(kubectl, kubeapi, tmp_path):
    """DeviceClass (resource.k8s.io/v1) as the real DRA driver chart writes them; a typo is refused by its 1.35 schema."""
    device_class = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": "gpu.example.com"},
        "spec": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.example.com'"}}]},
    }
    manifest = tmp_path / "deviceclass.yaml"
    manifest.write_text(yaml.safe_dump(device_class))
    kubeapi.admin.set_version("v1.31.2")
    old = kubectl("get", "deviceclasses", check=False)
    assert old.returncode != 0
    assert 'the server doesn\'t have a resource type "deviceclasses"' in old.stderr

    kubeapi.admin.set_version("v1.35.2")
    kubectl("apply", "--server-side", "-f", str(manifest))
    stored = kubectl("get", "deviceclass", "gpu.example.com", "-o", "json", json_output=True)
    assert stored["spec"]["selectors"] == device_class["spec"]["selectors"]
    device_class["spec"]["selector"] = device_class["spec"].pop("selectors")
    manifest.write_text(yaml.safe_dump(device_class))
    typo = kubectl("create", "--validate=strict", "-f", str(manifest), check=False)
    assert typo.returncode != 0
    assert 'unknown field "spec.selector"' in typo.stderr
