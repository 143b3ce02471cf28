"""kubegpu.core.k8s_info through Ansible against the test API server: one object, a list by label selector, a kind
the cluster does not serve (no failure, served=false), /version, and bad inputs; it never writes."""

from __future__ import annotations

from pathlib import Path

from tests.support.adhoc import run_tasks
from tests.support.kube_modules import writes

CRD = Path(__file__).resolve().parents[1] / "support" / "manifests" / "openfaas-profile-crd.yaml"


def test_reads_lists_and_reports_kinds_not_served_without_writing(kubeapi):
    kubeapi.admin.set_version("v1.25.4")
    kubeapi.admin.load(CRD.read_text())
    kubeapi.admin.reset_counters()
    connection = {"kubeconfig": str(kubeapi.kubeconfig)}
    runs = run_tasks(
        {
            "one node": ("kubegpu.core.k8s_info", {**connection, "kind": "Node", "name": "gpu-node-2"}, None),
            "no such node": ("kubegpu.core.k8s_info", {**connection, "kind": "Node", "name": "gpu-node-9"}, None),
            "by selector": (
                "kubegpu.core.k8s_info",
                {**connection, "kind": "Namespace", "label_selector": "kubernetes.io/metadata.name=default"},
                None,
            ),
            "served crd": ("kubegpu.core.k8s_info", {**connection, "api_version": "openfaas.com/v1", "kind": "Profile"}, None),
            "not served": ("kubegpu.core.k8s_info", {**connection, "api_version": "example.io/v1", "kind": "Thing"}, None),
            "namespaced get without namespace": ("kubegpu.core.k8s_info", {**connection, "kind": "Pod", "name": "x"}, None),
            "kind with a slash": ("kubegpu.core.k8s_info", {**connection, "kind": "apps/Deployment"}, None),
        }
    )
    one = runs["one node"].result
    assert one["served"] and not runs["one node"].changed
    assert [node["metadata"]["name"] for node in one["resources"]] == ["gpu-node-2"]
    assert "managedFields" not in one["resources"][0]["metadata"]
    assert one["server_version"]["gitVersion"] == "v1.25.4"
    assert runs["no such node"].result["resources"] == [] and not runs["no such node"].failed
    listed = runs["by selector"].result["resources"]
    assert [(item["kind"], item["metadata"]["name"]) for item in listed] == [("Namespace", "default")]
    assert runs["served crd"].result == {**runs["served crd"].result, "served": True, "resources": []}
    assert runs["not served"].result["served"] is False and not runs["not served"].failed
    assert "Pod (v1) is namespaced: give namespace with name='x'" in runs["namespaced get without namespace"].result["msg"]
    assert "kind='apps/Deployment' is not valid" in runs["kind with a slash"].result["msg"]
    assert writes(kubeapi) == []
