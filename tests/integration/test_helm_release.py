"""kubegpu.core.helm_release through Ansible with the real helm (v4 from .cache/bin) against the
test API server. Charts: tests/support/charts/gpu-demo as a directory, and packaged as versions
0.1.0 and 0.2.0 into a chart repository served over HTTP on 127.0.0.1 by this test module."""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.support.kube_clients import ensure_helm3
from tests.support.kube_modules import get_object, run_kube_module, writes

CHART = Path(__file__).resolve().parents[1] / "support" / "charts" / "gpu-demo"


@pytest.fixture(scope="module")
def chart_repo(tmp_path_factory, kube_clients):
    """A chart repository with gpu-demo 0.1.0 and 0.2.0, served on a free local port."""
    root = tmp_path_factory.mktemp("chart-repo")
    for version in ("0.1.0", "0.2.0"):
        subprocess.run(
            [str(kube_clients["helm"]), "package", str(CHART), "--version", version, "--destination", str(root)],
            check=True,
            capture_output=True,
        )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    subprocess.run([str(kube_clients["helm"]), "repo", "index", str(root), "--url", url], check=True, capture_output=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()


@pytest.fixture
def helm_env(tmp_path):
    """helm's config, cache and data in the test's own directory (no repositories configured)."""
    return {
        "HOME": str(tmp_path),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }


def _runner(kubeapi, binary, helm_env):
    def run(args, **kwargs):
        return run_kube_module(
            kubeapi, "helm_release", {"name": "demo", "binary_path": str(binary), **args}, env=helm_env, **kwargs
        )

    return run


@pytest.fixture(params=["helm4", "helm3"])
def helm_binary(request, kube_clients):
    """Behaviour tests run with helm v4.1 and v3.17 (their flags differ: --rollback-on-failure/--atomic, --wait)."""
    return kube_clients["helm"] if request.param == "helm4" else ensure_helm3()


@pytest.fixture
def release(kubeapi, helm_binary, helm_env):
    return _runner(kubeapi, helm_binary, helm_env)


@pytest.fixture
def release4(kubeapi, kube_clients, helm_env):
    """For failures that happen before helm writes anything: one helm version is enough."""
    return _runner(kubeapi, kube_clients["helm"], helm_env)


def configmap(kubeapi, name="demo-config", namespace="default"):
    return get_object(kubeapi, f"/api/v1/namespaces/{namespace}/configmaps/{name}")


@pytest.mark.matrix
def test_local_chart_install_check_real_noop_then_values_upgrade(kubeapi, release, helm):
    args = {"chart_ref": str(CHART), "values": {"message": "first"}}
    check = release(args, check=True, diff=True)
    assert check.changed and check.result["action"] == "installed"
    assert check.result["diff"]["after"] == {"chart": "gpu-demo-0.1.0", "values": {"message": "first"}}
    assert writes(kubeapi) == [] and helm("list", "-o", "json", json_output=True) == []

    real = release(args)
    assert real.changed and real.result["action"] == "installed"
    assert real.result["release"]["status"] == "deployed" and real.result["chart"] == "gpu-demo-0.1.0"
    assert configmap(kubeapi)["data"]["message"] == "first"

    kubeapi.admin.reset_counters()
    again = release(args)
    assert not again.changed and again.result["action"] == "unchanged", again.result
    assert again.result["user_values"] == {"message": "first"}, "the deployed user values are returned"
    assert writes(kubeapi) == []

    upgrade = {"chart_ref": str(CHART), "values": {"message": "second", "replicaCount": 2}}
    check = release(upgrade, check=True, diff=True)
    assert check.changed and check.result["diff"]["before"]["values"] == {"message": "first"}
    assert writes(kubeapi) == []
    assert release(upgrade).result["action"] == "upgraded"
    assert configmap(kubeapi)["data"]["message"] == "second"
    assert helm("get", "values", "demo", "-o", "json", json_output=True) == {"message": "second", "replicaCount": 2}
    assert not release(upgrade).changed


def test_values_files_merge_in_order_under_values(kubeapi, release, helm, tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("message: from-base\nimage:\n  tag: base\n")
    override = tmp_path / "override.yaml"
    override.write_text("image:\n  repository: mirror.local/cuda\n")
    args = {"chart_ref": str(CHART), "values_files": [str(base), str(override)], "values": {"gpus": 2}}
    assert release(args).changed
    assert helm("get", "values", "demo", "-o", "json", json_output=True) == {
        "message": "from-base",
        "image": {"tag": "base", "repository": "mirror.local/cuda"},
        "gpus": 2,
    }
    assert not release(args).changed


def test_repository_chart_added_once_and_version_upgrade(kubeapi, release, helm_env, chart_repo, kube_clients):
    args = {"chart_ref": "demo-repo/gpu-demo", "chart_repo_url": chart_repo, "chart_version": "0.1.0", "namespace": "gpu"}
    check = release({**args, "create_namespace": True}, check=True)
    assert check.changed and "repo_added" not in check.result
    assert not (Path(helm_env["HELM_CONFIG_HOME"]) / "repositories.yaml").exists()
    assert get_object(kubeapi, "/api/v1/namespaces/gpu") is None

    installed = release({**args, "create_namespace": True})
    assert installed.changed and installed.result["repo_added"] is True, installed.result
    assert installed.result["release"]["chart"] == "gpu-demo-0.1.0"
    assert configmap(kubeapi, namespace="gpu") is not None

    again = release(args)
    assert not again.changed and "repo_added" not in again.result and "repo_updated" not in again.result

    upgraded = release({**args, "chart_version": "0.2.0"}, diff=True)
    assert upgraded.changed and upgraded.result["diff"]["after"]["chart"] == "gpu-demo-0.2.0"
    assert upgraded.result["release"]["chart"] == "gpu-demo-0.2.0"
    assert not release({**args, "chart_version": "0.2.0"}).changed


def test_plain_chart_name_with_repo_url_resolves_the_newest_version(kubeapi, release, chart_repo):
    args = {"chart_ref": "gpu-demo", "chart_repo_url": chart_repo}
    run = release(args)
    assert run.changed and run.result["chart"] == "gpu-demo-0.2.0", run.result
    assert not release(args).changed


def test_absent_check_then_uninstall_then_no_change(kubeapi, release, helm):
    release({"chart_ref": str(CHART)})
    kubeapi.admin.reset_counters()
    check = release({"state": "absent"}, check=True)
    assert check.changed and check.result["action"] == "uninstalled" and writes(kubeapi) == []
    real = release({"state": "absent", "wait": True})
    assert real.changed and helm("list", "-o", "json", json_output=True) == []
    assert configmap(kubeapi) is None
    again = release({"state": "absent"})
    assert not again.changed and again.result["action"] == "absent"


def test_absent_of_a_release_of_another_chart_is_refused_naming_it_and_left_in_place(kubeapi, release, helm):
    release({"chart_ref": str(CHART)})
    kubeapi.admin.reset_counters()
    for check in (True, False):
        refused = release({"state": "absent", "chart_name": "gpu"}, check=check)  # gpu-demo-0.1.0 is not chart gpu
        assert refused.failed, refused.result
        assert "is of chart gpu-demo-0.1.0, not gpu" in refused.result["msg"], refused.result["msg"]
    assert writes(kubeapi) == [] and configmap(kubeapi) is not None
    removed = release({"state": "absent", "chart_name": "gpu-demo", "cascade": "foreground", "wait": True})
    assert removed.changed and "--cascade" in removed.result["command"], removed.result
    assert helm("list", "-o", "json", json_output=True) == [] and configmap(kubeapi) is None


def test_atomic_install_that_fails_waiting_is_rolled_back(kubeapi, release, helm):
    """Without the ready controller nothing becomes ready, so a waiting install times out."""
    run = release({"chart_ref": str(CHART), "atomic": True, "timeout": "3s"})
    assert run.failed and "installing release demo" in run.result["msg"], run.result
    assert helm("list", "--deployed", "--failed", "--pending", "-o", "json", json_output=True) == []


def test_helm_not_found(kubeapi, kube_clients, helm_env):
    run = run_kube_module(
        kubeapi, "helm_release", {"name": "demo", "chart_ref": str(CHART)}, env={**helm_env, "PATH": "/usr/bin:/bin"}
    )
    assert run.failed and "'helm' was not found" in run.result["msg"], run.result["msg"]


BAD_INPUTS = [
    ({"chart_ref": "/nonexistent/chart"}, ["chart /nonexistent/chart not found"]),
    ({"chart_ref": "nosuchrepo/chart"}, ["no repository named 'nosuchrepo'", "chart_repo_url"]),
    ({"chart_ref": str(CHART), "chart_version": "9.9.9"}, ["version 0.1.0, not chart_version=9.9.9"]),
    ({"chart_ref": str(CHART), "name": "Bad_Name"}, ["release name 'Bad_Name' is not valid"]),
    ({"chart_ref": str(CHART), "timeout": "five minutes"}, ["timeout='five minutes'"]),
    ({}, ["state=present needs chart_ref"]),
    ({"chart_ref": str(CHART), "values_files": ["/nonexistent/values.yaml"]}, ["values file /nonexistent/values.yaml"]),
    ({"chart_ref": str(CHART), "kubeconfig": "/nonexistent/kubeconfig"}, ["kubeconfig file /nonexistent/kubeconfig not found"]),
    ({"chart_ref": str(CHART), "username": "u", "password": "p"}, ["helm has no flag for username"]),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_fails_with_a_message_and_writes_nothing(kubeapi, release4, args, words):
    run = release4(args)
    assert run.failed, run.result
    for word in words:
        assert word in run.result["msg"], (word, run.result["msg"])
    assert writes(kubeapi) == []


def test_chart_version_missing_from_the_repository(kubeapi, release4, chart_repo):
    run = release4({"chart_ref": "demo-repo/gpu-demo", "chart_repo_url": chart_repo, "chart_version": "7.0.0"})
    assert run.failed and "chart demo-repo/gpu-demo version 7.0.0 not found" in run.result["msg"], run.result["msg"]
    assert run.result.get("repo_updated") is None  # the failure result carries only msg and details
    assert writes(kubeapi) == []


@pytest.mark.parametrize(
    ("text", "words"),
    [("message: [unclosed\n", ["is not valid YAML"]), ("- a\n- list\n", ["must hold a mapping", "list"])],
    ids=["broken-yaml", "not-a-mapping"],
)
def test_malformed_values_file(kubeapi, release4, tmp_path, text, words):
    bad = tmp_path / "values.yaml"
    bad.write_text(text)
    run = release4({"chart_ref": str(CHART), "values_files": [str(bad)]})
    assert run.failed and str(bad) in run.result["msg"]
    for word in words:
        assert word in run.result["msg"]
    assert writes(kubeapi) == []


def test_unreachable_repository_is_named(kubeapi, release4):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    run = release4({"chart_ref": "gone/gpu-demo", "chart_repo_url": url})
    assert run.failed and "adding repository gone" in run.result["msg"] and url in run.result["msg"]
    assert writes(kubeapi) == []
