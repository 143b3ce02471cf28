"""kubegpu.core.k8s_info through Ansible against the test API server (simulated: the cluster, with its three GPU
nodes and a settable ``/version``): one object, a list, a list by label selector, a kind the cluster does not serve
(no failure, served=false), ``/version`` and the release it names, and bad inputs; it never writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kube_modules import run_kube_module, writes
from tests.support.role_runs import run_tasks

CRD = Path(__file__).resolve().parents[1] / "support" / "manifests" / "openfaas-profile-crd.yaml"


@pytest.mark.matrix
def test_a_node_and_the_release_are_read_in_check_mode_too_and_nothing_is_written(kubeapi):
    kubeapi.admin.set_version("v1.31.1+k3s1")
    for check in (True, False):
        run = run_kube_module(kubeapi, "k8s_info", {"kind": "Node", "name": "gpu-node-2"}, check=check)
        assert not run.failed and not run.changed, run.result
        assert run.result["version"]["gitVersion"] == "v1.31.1+k3s1" and run.result["server_version"] == "v1.31.1"
        [node] = run.result["resources"]
        assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true" and "managedFields" not in node["metadata"]
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "1" and not node["spec"].get("taints")
    assert writes(kubeapi) == []


def test_metadata_only_reads_return_the_objects_metadata_under_their_own_kind(kubeapi):
    """metadata_only negotiates PartialObjectMetadataList / PartialObjectMetadata (the server answers as
    kube-apiserver's response.go does); the module gives each back as the kind asked for, metadata only."""
    connection = {"kubeconfig": str(kubeapi.kubeconfig)}
    runs = run_tasks(
        {
            "list": ("kubegpu.core.k8s_info", {**connection, "kind": "Node", "metadata_only": True}, None),
            "one": ("kubegpu.core.k8s_info", {**connection, "kind": "Node", "name": "gpu-node-3", "metadata_only": True}, None),
            "none": ("kubegpu.core.k8s_info", {**connection, "kind": "Node", "name": "gpu-node-9", "metadata_only": True}, None),
        }
    )
    listed = runs["list"].result["resources"]
    assert [(node["apiVersion"], node["kind"], node["metadata"]["name"]) for node in listed] == [
        ("v1", "Node", f"gpu-node-{index}") for index in (1, 2, 3)
    ]
    assert all(sorted(node) == ["apiVersion", "kind", "metadata"] for node in listed)
    assert listed[0]["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert "managedFields" not in listed[0]["metadata"]
    [one] = runs["one"].result["resources"]
    assert sorted(one) == ["apiVersion", "kind", "metadata"] and one["metadata"]["name"] == "gpu-node-3"
    assert runs["none"].result["resources"] == [] and not runs["none"].failed
    reads = [entry for entry in kubeapi.admin.requests() if entry["resource"] == "nodes"]
    assert [(entry["verb"], entry["accept"].split(",")[0]) for entry in reads] == [
        ("list", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
        ("get", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
        ("get", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
    ]


def test_reads_lists_and_reports_kinds_not_served_without_writing(kubeapi):
    kubeapi.admin.set_version("v1.28.15")
    kubeapi.admin.load(CRD.read_text())
    kubeapi.admin.reset_counters()
    connection = {"kubeconfig": str(kubeapi.kubeconfig)}
    runs = run_tasks(
        {
            "one node": ("kubegpu.core.k8s_info", {**connection, "kind": "Node", "name": "gpu-node-2"}, None),
            "no such node": ("kubegpu.core.k8s_info", {**connection, "kind": "Node", "name": "gpu-node-9"}, None),
            "every node": ("kubegpu.core.k8s_info", {**connection, "kind": "Node"}, None),
            "by selector": (
                "kubegpu.core.k8s_info",
                {**connection, "kind": "Namespace", "label_selector": "kubernetes.io/metadata.name=default"},
                None,
            ),
            "served crd": ("kubegpu.core.k8s_info", {**connection, "api_version": "openfaas.com/v1", "kind": "Profile"}, None),
            "not served": ("kubegpu.core.k8s_info", {**connection, "api_version": "example.io/v1", "kind": "Thing"}, None),
            "namespaced get without namespace": ("kubegpu.core.k8s_info", {**connection, "kind": "Pod", "name": "x"}, None),
        }
    )
    one = runs["one node"].result
    assert one["served"] and not runs["one node"].changed
    assert [node["metadata"]["name"] for node in one["resources"]] == ["gpu-node-2"]
    assert "managedFields" not in one["resources"][0]["metadata"]
    assert one["version"]["gitVersion"] == "v1.28.15" and one["server_version"] == "v1.28.15"
    assert runs["no such node"].result["resources"] == [] and not runs["no such node"].failed
    every = runs["every node"].result["resources"]
    assert [(node["kind"], node["metadata"]["name"]) for node in every] == [
        ("Node", "gpu-node-1"),
        ("Node", "gpu-node-2"),
        ("Node", "gpu-node-3"),
    ]
    listed = runs["by selector"].result["resources"]
    assert [(item["kind"], item["metadata"]["name"]) for item in listed] == [("Namespace", "default")]
    assert runs["served crd"].result == {**runs["served crd"].result, "served": True, "resources": []}
    not_served = runs["not served"].result
    assert not_served["served"] is False and not runs["not served"].failed and not_served["server_version"] == "v1.28.15"
    assert "Pod (v1) is namespaced: give namespace with name='x'" in runs["namespaced get without namespace"].result["msg"]
    assert writes(kubeapi) == []


def test_a_version_that_names_no_release_gives_none_and_bad_inputs_are_refused_before_any_request(kubeapi):
    kubeapi.admin.set_version("1.28.15-custom")
    connection = {"kubeconfig": str(kubeapi.kubeconfig)}
    release = run_kube_module(kubeapi, "k8s_info", {"kind": "Namespace", "name": "default"})
    assert release.result["version"]["gitVersion"] == "1.28.15-custom" and release.result["server_version"] is None

    kubeapi.admin.reset_counters()
    runs = run_tasks(
        {
            "kind with a slash": ("kubegpu.core.k8s_info", {**connection, "kind": "apps/Deployment"}, None),
            "empty name": ("kubegpu.core.k8s_info", {**connection, "kind": "Node", "name": ""}, None),
            "api_version with two slashes": ("kubegpu.core.k8s_info", {**connection, "api_version": "a/b/c", "kind": "X"}, None),
        }
    )
    assert "kind='apps/Deployment' is not valid" in runs["kind with a slash"].result["msg"]
    assert "name='' is not valid" in runs["empty name"].result["msg"]
    assert "api_version='a/b/c' is not valid" in runs["api_version with two slashes"].result["msg"]
    assert kubeapi.admin.requests() == []


# kubectl's RESTMapper: plural and singular names (discovery's singularName, else the kind lowercased) in any case,
# short names (discovery's shortNames) exactly as written; anything else is not a resource type
SPELLINGS = ["node", "nodes", "no", "Node", "NODE", "NO", "nod", "Namespaces"]


def test_a_kind_is_found_by_every_name_kubectl_accepts_and_not_by_others(kubeapi, kubectl):
    connection = {"kubeconfig": str(kubeapi.kubeconfig)}
    runs = run_tasks({spelling: ("kubegpu.core.k8s_info", {**connection, "kind": spelling}, None) for spelling in SPELLINGS})
    for spelling in SPELLINGS:
        answer = kubectl("get", spelling, "-o", "name", check=False)
        result = runs[spelling].result
        assert not runs[spelling].failed, result
        assert result["served"] is (answer.returncode == 0), (spelling, answer.stderr, result["served"])
        names = [f"{item['kind'].lower()}/{item['metadata']['name']}" for item in result["resources"]]
        assert names == answer.stdout.split(), (spelling, names, answer.stdout)
