"""Fidelity of the test API server, judged by the real helm (v4 from .cache/bin).

helm 4 installs with server-side apply (field manager ``helm``), keeps releases in Secrets it
writes as protobuf, and waits with watches; the chart is tests/support/charts/gpu-demo.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

CHART = str(Path(__file__).resolve().parents[1] / "support" / "charts" / "gpu-demo")


def release_secrets(kubeapi, name: str) -> list[dict]:
    listed = kubeapi.server.store.list(
        kubeapi.server.store.catalogue.find("", "v1", "secrets"), "default", [], [], limit=0, continue_token=""
    )
    return [s for s in listed["items"] if s["metadata"].get("labels", {}).get("name") == name]


def decode_release(secret: dict) -> dict:
    """helm stores a release as base64(gzip(JSON)) inside the Secret's base64 data."""
    payload = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    return json.loads(gzip.decompress(payload))


def test_install_list_get_values_upgrade_rollback_uninstall(helm, kubectl, kubeapi):
    installed = helm("install", "demo", CHART, "--set", "message=first").stdout
    assert "STATUS: deployed" in installed
    releases = helm("list", "-o", "json", json_output=True)
    assert [(r["name"], r["revision"], r["status"], r["chart"]) for r in releases] == [
        ("demo", "1", "deployed", "gpu-demo-0.1.0")
    ]
    assert helm("get", "values", "demo", "-o", "json", json_output=True) == {"message": "first"}
    deployment = kubectl("get", "deployment", "demo", "-o", "json", "--show-managed-fields", json_output=True)
    assert deployment["spec"]["replicas"] == 1
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    )  # a Quantity reads back as a string
    assert [(m["manager"], m["operation"]) for m in deployment["metadata"]["managedFields"]] == [("helm", "Apply")]
    assert kubectl("get", "configmap", "demo-config", "-o", "json", json_output=True)["data"] == {
        "message": "first",
        "revision": "1",
    }

    helm("upgrade", "demo", CHART, "--set", "message=second", "--set", "replicaCount=3")
    assert helm("get", "values", "demo", "-o", "json", json_output=True) == {"message": "second", "replicaCount": 3}
    assert kubectl("get", "deployment", "demo", "-o", "json", json_output=True)["spec"]["replicas"] == 3
    assert kubectl("get", "configmap", "demo-config", "-o", "json", json_output=True)["data"]["message"] == "second"
    assert kubectl("get", "deployment", "demo", "-o", "json", json_output=True)["metadata"]["generation"] == 2

    helm("rollback", "demo", "1")
    releases = helm("list", "-o", "json", json_output=True)
    assert [(r["revision"], r["status"]) for r in releases] == [("3", "deployed")]
    assert kubectl("get", "deployment", "demo", "-o", "json", json_output=True)["spec"]["replicas"] == 1
    assert kubectl("get", "configmap", "demo-config", "-o", "json", json_output=True)["data"]["message"] == "first"
    history = {decode_release(s)["version"]: decode_release(s)["info"]["status"] for s in release_secrets(kubeapi, "demo")}
    assert history == {1: "superseded", 2: "superseded", 3: "deployed"}

    assert 'release "demo" uninstalled' in helm("uninstall", "demo").stdout
    assert helm("list", "-o", "json", json_output=True) == []
    assert (
        kubectl(
            "get", "deployment,configmap,service,serviceaccount", "-l", "app.kubernetes.io/instance=demo", "-o", "name"
        ).stdout.strip()
        == ""
    )
    assert release_secrets(kubeapi, "demo") == []


def test_install_refuses_a_release_name_in_use(helm):
    helm("install", "demo", CHART)
    again = helm("install", "demo", CHART, check=False)
    assert again.returncode != 0
    assert "a name that is still in use" in again.stderr


def test_install_dry_run_server_creates_nothing(helm, kubectl):
    out = helm("install", "demo", CHART, "--dry-run=server").stdout
    assert "kind: Deployment" in out
    assert kubectl("get", "deployments", "-o", "name").stdout.strip() == ""
    assert helm("list", "-o", "json", json_output=True) == []


def test_wait_completes_with_the_ready_controller_and_times_out_without(helm, kubectl, kubeapi):
    kubeapi.admin.set_ready_controller(True)
    helm("install", "ready", CHART, "--wait", "--timeout", "30s")
    assert helm("list", "-o", "json", json_output=True)[0]["status"] == "deployed"
    status = kubectl("get", "deployment", "ready", "-o", "json", json_output=True)["status"]
    assert (status["readyReplicas"], status["observedGeneration"]) == (1, 1)

    kubeapi.admin.set_ready_controller(False)
    stuck = helm("install", "stuck", CHART, "--wait", "--timeout", "3s", check=False)
    assert stuck.returncode != 0
    assert "not ready" in stuck.stderr


def test_install_retries_through_an_injected_server_error(helm, kubeapi):
    """A 500 on the release Secret's creation fails the install, as on a real cluster; a retry then succeeds."""
    kubeapi.admin.fail_next(count=1, code=500, method="POST", path="/secrets$")
    failed = helm("install", "demo", CHART, check=False)
    assert failed.returncode != 0
    assert "injected internal error" in failed.stderr
    helm("install", "demo", CHART)
    assert helm("list", "-o", "json", json_output=True)[0]["status"] == "deployed"
