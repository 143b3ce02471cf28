"""Fidelity of the test API server, judged by the real helm (v4 from .cache/bin).

helm 4 installs with server-side apply (field manager ``helm``), keeps releases in Secrets it
writes as protobuf, and waits with watches; the chart is tests/support/charts/gpu-demo, then each
real chart of ../shared/upstream/charts, installed with ``--wait`` as an operator would install it.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
import yaml

from tests.support import upstream
from tests.support.kubeapi import DEFAULT_VERSION

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


# -- the real charts of ../shared/upstream/charts, installed as an operator would -----------------

# What each chart's own templates demand beyond its defaults (they fail the render otherwise).
CHART_ARGS = {
    # validation.yaml: GPU allocation only with the explicit override (it cannot share a node with a device plugin)
    "dra-driver-nvidia-gpu": ["--set", "gpuResourcesEnabledOverride=true"],
}
# The legacy vgpu chart's kube-scheduler configuration is kubescheduler.config.k8s.io/v1beta2, which
# Kubernetes 1.28 removed: it can only work on 1.27 and older.
CHART_KUBE_VERSION = {"vgpu": "v1.27.16"}
# The node labels the charts select on, as the roles / NFD / GFD write them on GPU nodes.
GPU_NODE_LABELS = ["gpu=on", "nvidia.com/gpu.present=true", "feature.node.kubernetes.io/pci-10de.present=true"]


@pytest.mark.parametrize(
    "chart",
    upstream.real_charts() or [pytest.param(None, marks=pytest.mark.skip(reason=upstream.MISSING))],
    ids=lambda chart: chart.name if chart else "none",
)
def test_each_real_chart_installs_with_wait_and_every_object_is_stored(helm, kubectl, kubeapi, chart, tmp_path):
    if chart is None:
        return
    name = chart.name.rsplit("-", 1)[0]
    version = CHART_KUBE_VERSION.get(name, DEFAULT_VERSION)
    kubeapi.admin.set_version(version)
    kubeapi.admin.set_ready_controller(True)
    kubectl("label", "nodes", "--all", *GPU_NODE_LABELS, "--overwrite")
    args = [str(chart), "-n", f"{name}-system", "--create-namespace", *CHART_ARGS.get(name, [])]
    installed = helm("install", name, *args, "--wait", "--timeout", "60s")
    assert "STATUS: deployed" in installed.stdout, installed.stdout
    assert "unknown field" not in installed.stderr, installed.stderr  # the server's schemas know every field

    # every object of the release, as helm rendered it, is on the server
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(helm("get", "manifest", name, "-n", f"{name}-system").stdout)
    rendered = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    stored = kubectl("get", "-f", str(manifest), "-n", f"{name}-system", "-o", "json", json_output=True)["items"]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in stored) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in rendered
    )
    daemonsets = [o for o in stored if o["kind"] == "DaemonSet"]
    assert daemonsets, "every GPU stack chart runs a DaemonSet on the GPU nodes"
    # each DaemonSet is on every labelled GPU node, except those of optional features no node has labels for
    scheduled = {o["metadata"]["name"]: o["status"]["desiredNumberScheduled"] for o in daemonsets}
    assert max(scheduled.values()) == 3, scheduled
    assert all(o["status"]["numberReady"] == o["status"]["desiredNumberScheduled"] for o in daemonsets)
