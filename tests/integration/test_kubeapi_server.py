"""The test API server over plain HTTP: discovery, OpenAPI, faults, counters, watches, lifecycle, TLS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.support.kubeapi import KubeAPIServer, generate_nodes

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILE_CRD = yaml.safe_load((REPO_ROOT / "tests" / "support" / "manifests" / "openfaas-profile-crd.yaml").read_text())


def test_version_discovery_and_group_documents(kubeapi):
    base = kubeapi.url
    assert requests.get(f"{base}/version", timeout=5).json()["gitVersion"] == "v1.35.2"
    assert requests.get(f"{base}/api", timeout=5).json()["versions"] == ["v1"]
    core = {r["name"]: r for r in requests.get(f"{base}/api/v1", timeout=5).json()["resources"]}
    assert core["nodes"]["namespaced"] is False
    assert core["nodes/status"]["verbs"] == ["get", "patch", "update"]
    assert core["pods"]["namespaced"] is True
    groups = {g["name"] for g in requests.get(f"{base}/apis", timeout=5).json()["groups"]}
    assert {"apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io", "batch", "storage.k8s.io", "scheduling.k8s.io"} <= groups
    assert {"coordination.k8s.io", "policy", "networking.k8s.io", "node.k8s.io"} <= groups
    apps = requests.get(f"{base}/apis/apps", timeout=5).json()
    assert apps["preferredVersion"]["groupVersion"] == "apps/v1"
    assert requests.get(f"{base}/apis/no.such.group", timeout=5).status_code == 404


def test_version_is_configurable(kubeapi):
    kubeapi.admin.set_version("v1.28.15")
    info = requests.get(f"{kubeapi.url}/version", timeout=5).json()
    assert (info["major"], info["minor"], info["gitVersion"]) == ("1", "28", "v1.28.15")


def test_crd_becomes_discoverable_and_appears_in_openapi_v3(kubeapi):
    base = kubeapi.url
    root = requests.get(f"{base}/openapi/v3", timeout=5).json()["paths"]
    assert "apis/openfaas.com/v1" not in root
    apps_url = root["apis/apps/v1"]["serverRelativeURL"]
    created = requests.post(f"{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=PROFILE_CRD, timeout=5)
    assert created.status_code == 201
    root = requests.get(f"{base}/openapi/v3", timeout=5).json()["paths"]
    assert root["apis/apps/v1"]["serverRelativeURL"] == apps_url  # unchanged documents keep their hash
    document = requests.get(f"{base}{root['apis/openfaas.com/v1']['serverRelativeURL']}", timeout=5).json()
    patch = document["paths"]["/apis/openfaas.com/v1/namespaces/{namespace}/profiles/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "openfaas.com", "version": "v1", "kind": "Profile"}
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    resources = requests.get(f"{base}/apis/openfaas.com/v1", timeout=5).json()["resources"]
    assert [(r["name"], r["kind"], r["namespaced"]) for r in resources] == [("profiles", "Profile", True)]
    assert requests.delete(f"{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/profiles.openfaas.com", timeout=5).ok
    assert requests.get(f"{base}/apis/openfaas.com/v1", timeout=5).status_code == 404


def test_injected_faults_match_method_and_path_and_are_counted(kubeapi):
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeapi.kubeconfig)))
    kubeapi.admin.fail_next(count=2, code=503, method="PATCH", path="/nodes/gpu-node-1$")
    assert core.read_node("gpu-node-1").metadata.name == "gpu-node-1"  # a GET does not match
    for _attempt in range(2):
        with pytest.raises(ApiException) as unavailable:
            core.patch_node("gpu-node-1", {"metadata": {"labels": {"a": "b"}}})
        assert unavailable.value.status == 503
        assert json.loads(unavailable.value.body)["reason"] == "ServiceUnavailable"
    core.patch_node("gpu-node-1", {"metadata": {"labels": {"a": "b"}}})
    assert kubeapi.admin.faults() == []
    kubeapi.admin.fail_next(code=429)
    throttled = requests.get(f"{kubeapi.url}/api/v1/nodes", timeout=5)
    assert (throttled.status_code, throttled.headers["Retry-After"], throttled.json()["reason"]) == (429, "1", "TooManyRequests")
    counters = kubeapi.admin.counters()
    assert counters["patch nodes"] == 3
    assert counters["get nodes"] == 1
    assert counters["list nodes"] == 1


def test_a_dropped_response_is_applied_and_its_connection_closed_without_an_answer(kubeapi):
    kubeapi.admin.drop_responses(method="PATCH", path="/nodes/gpu-node-1$")
    patch = {"metadata": {"labels": {"dropped": "yes"}}}
    headers = {"Content-Type": "application/merge-patch+json"}
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.patch(f"{kubeapi.url}/api/v1/nodes/gpu-node-1", json=patch, headers=headers, timeout=5)
    node = requests.get(f"{kubeapi.url}/api/v1/nodes/gpu-node-1", timeout=5).json()
    assert node["metadata"]["labels"]["dropped"] == "yes"
    assert [(e["method"], e["code"], e["dropped"]) for e in kubeapi.admin.requests()] == [
        ("PATCH", 200, True),
        ("GET", 200, False),
    ]
    assert kubeapi.admin.faults() == []


def test_latency_is_added_to_api_requests(kubeapi):
    kubeapi.admin.set_latency(0.2)
    started = time.monotonic()
    requests.get(f"{kubeapi.url}/api/v1/nodes", timeout=5)
    assert time.monotonic() - started >= 0.2
    assert kubeapi.admin.requests()[-1]["seconds"] >= 0.2


def test_reset_restores_fixture_state_and_keeps_resource_versions_increasing(kubeapi):
    before = requests.get(f"{kubeapi.url}/api/v1/nodes", timeout=5).json()["metadata"]["resourceVersion"]
    requests.delete(f"{kubeapi.url}/api/v1/nodes/gpu-node-1", timeout=5)
    kubeapi.admin.reset()
    listed = requests.get(f"{kubeapi.url}/api/v1/nodes", timeout=5).json()
    assert [n["metadata"]["name"] for n in listed["items"]] == ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
    assert int(listed["metadata"]["resourceVersion"]) > int(before)
    expired = requests.get(
        f"{kubeapi.url}/api/v1/nodes", params={"watch": "true", "resourceVersion": before}, timeout=5, stream=True
    )
    event = json.loads(next(expired.iter_lines()))
    assert (event["type"], event["object"]["code"]) == ("ERROR", 410)


def test_finalizers_delay_deletion_until_removed(kubeapi):
    base = f"{kubeapi.url}/api/v1/namespaces/default/configmaps"
    requests.post(base, json={"metadata": {"name": "held", "finalizers": ["kubegpu.io/hold"]}}, timeout=5)
    deleting = requests.delete(f"{base}/held", timeout=5).json()
    assert deleting["metadata"]["deletionTimestamp"]
    assert requests.get(f"{base}/held", timeout=5).status_code == 200
    requests.patch(
        f"{base}/held",
        data=json.dumps({"metadata": {"finalizers": None}}),
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=5,
    )
    assert requests.get(f"{base}/held", timeout=5).status_code == 404


def test_watch_with_label_selector_turns_relabelling_into_added_and_deleted(kubeapi):
    base = kubeapi.url
    start = requests.get(f"{base}/api/v1/nodes", timeout=5).json()["metadata"]["resourceVersion"]
    patch = {"headers": {"Content-Type": "application/merge-patch+json"}, "timeout": 5}
    requests.patch(f"{base}/api/v1/nodes/gpu-node-1", data=json.dumps({"metadata": {"labels": {"pool": "gpu"}}}), **patch)
    requests.patch(f"{base}/api/v1/nodes/gpu-node-1", data=json.dumps({"metadata": {"labels": {"other": "x"}}}), **patch)
    requests.patch(f"{base}/api/v1/nodes/gpu-node-1", data=json.dumps({"metadata": {"labels": {"pool": None}}}), **patch)
    params = {"watch": "true", "resourceVersion": start, "labelSelector": "pool=gpu", "timeoutSeconds": "1"}
    lines = requests.get(f"{base}/api/v1/nodes", params=params, timeout=10).text.splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["ADDED", "MODIFIED", "DELETED"]


def test_generated_thousand_nodes_list_in_pages(tmp_path):
    with KubeAPIServer(fixtures=(generate_nodes(1000),)) as server:
        names = []
        token = ""
        while True:
            page = requests.get(f"{server.url}/api/v1/nodes", params={"limit": 400, "continue": token}, timeout=30).json()
            names += [n["metadata"]["name"] for n in page["items"]]
            token = page["metadata"].get("continue", "")
            if not token:
                break
    assert len(names) == 1000
    assert names[0] == "gpu-node-0000"
    assert names == sorted(set(names))


def test_command_line_serves_in_background_and_stops_on_request(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    fixture = REPO_ROOT / "tests" / "support" / "kubeapi" / "fixtures" / "gpu-nodes.yaml"
    command = [sys.executable, "-m", "tests.support.kubeapi"]
    started = subprocess.run(
        [*command, "serve", "--kubeconfig", str(kubeconfig), "--fixture", str(fixture), "--version", "v1.30.6", "--background"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    assert "serving http://127.0.0.1:" in started.stdout
    pid = int(Path(f"{kubeconfig}.pid").read_text())
    try:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        assert len(core.list_node().items) == 3
        assert client.VersionApi(core.api_client).get_code().git_version == "v1.30.6"
    finally:
        stopped = subprocess.run(
            [*command, "stop", "--kubeconfig", str(kubeconfig)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(f"{kubeconfig}.pid").exists()
    with pytest.raises(ProcessLookupError):
        for _attempt in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
def test_tls_with_a_self_signed_certificate_in_the_kubeconfig(tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=True,
    )  # fmt: skip
    with KubeAPIServer(tls_cert=str(cert), tls_key=str(key)) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        assert server.url.startswith("https://")
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        assert [ns.metadata.name for ns in core.list_namespace().items] == [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
        ]
