"""kubegpu.core.helm_release through Ansible with the real helm (v4 from .cache/bin) against the
test API server. Charts: tests/support/charts/gpu-demo as a directory, and packaged as versions
0.1.0 and 0.2.0 into a chart repository served over HTTP on 127.0.0.1 by this test module."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from tests.support.kube_clients import ensure_helm3
from tests.support.kube_modules import get_object, run_kube_module, writes

CHART = Path(__file__).resolve().parents[1] / "support" / "charts" / "gpu-demo"


def package_into(helm_binary, root, versions, url):
    """gpu-demo packaged as ``versions`` into ``root``, and ``root``'s index.yaml (re)written for ``url``."""
    for version in versions:
        subprocess.run(
            [str(helm_binary), "package", str(CHART), "--version", version, "--destination", str(root)],
            check=True,
            capture_output=True,
        )
    subprocess.run([str(helm_binary), "repo", "index", str(root), "--url", url], check=True, capture_output=True)


@contextlib.contextmanager
def served_chart_repo(helm_binary, root, versions):
    """A chart repository of gpu-demo ``versions`` in ``root``, served on a free local port: yields its URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    package_into(helm_binary, root, versions, url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def chart_repo(tmp_path_factory, kube_clients):
    """A chart repository with gpu-demo 0.1.0 and 0.2.0, served on a free local port."""
    with served_chart_repo(kube_clients["helm"], tmp_path_factory.mktemp("chart-repo"), ("0.1.0", "0.2.0")) as url:
        yield url


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
    ({"chart_ref": str(CHART), "api_timeout": 0}, ["api_timeout=0.0 is not valid", "positive number"]),
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


# -- values as helm reads them, release names as helm validates them, check mode against a newer index ----

# Plain scalars that PyYAML (YAML 1.1) and helm (go-yaml v2 through sigs.k8s.io/yaml) read differently, or that
# JSON cannot carry as Python loads them: the expected values are what real helm stores from the same file.
TYPED_VALUES = """\
releaseDate: 2024-05-01
builtAt: 2024-05-01 10:00:00
tzStamp: 2001-12-14t21:59:43.10-05:00
tagged: !!timestamp 2024-05-01
big: 9007199254740993
yesShort: y
noShort: N
sexagesimal: 1:20
octal: 017
goOctal: 0o17
hex: 0x1F
exponent: 1e3
underscored: 1_000
quoted: "2024-05-01"
nested:
  - when: 2024-06-30
    gpus: 2
"""


def test_values_file_reaches_helm_as_helm_reads_the_same_file(kubeapi, release4, helm, tmp_path):
    """A date in a values file ended in a traceback (date not JSON serializable); y, 1:20, 0o17 and 1e3 were
    typed by YAML 1.1, not as helm types them. Oracle: the same file given to real helm with -f."""
    values = tmp_path / "values.yaml"
    values.write_text(TYPED_VALUES)
    helm("install", "oracle", str(CHART), "-f", str(values))
    expected = helm("get", "values", "oracle", "-o", "json", json_output=True)
    assert expected["releaseDate"] == "2024-05-01" and expected["big"] == 9007199254740992  # what helm keeps

    args = {"chart_ref": str(CHART), "values_files": [str(values)]}
    check = release4(args, check=True, diff=True)
    assert check.changed and check.result["diff"]["after"]["values"] == expected, check.result
    real = release4(args)
    assert real.changed, real.result
    assert helm("get", "values", "demo", "-o", "json", json_output=True) == expected
    kubeapi.admin.reset_counters()
    again = release4(args)
    assert not again.changed and again.result["user_values"] == expected, again.result
    assert writes(kubeapi) == []


def test_integer_beyond_float64_upgrades_once_with_a_warning(kubeapi, release4, helm):
    """helm keeps values as float64 (v3.17 as v4.1), so 2**53 + 1 comes back as 2**53: the module compares as
    helm stores."""
    args = {"chart_ref": str(CHART), "values": {"counter": 2**53 + 1, "small": 7}}
    real = release4(args)
    assert real.changed, real.result
    assert helm("get", "values", "demo", "-o", "json", json_output=True) == {"counter": 2**53, "small": 7}
    kubeapi.admin.reset_counters()
    again = release4(args)
    assert not again.changed and again.result["action"] == "unchanged", again.result
    assert writes(kubeapi) == []
    assert any("counter=9007199254740993 (helm stores 9007199254740992)" in w for w in real.result["warnings"]), real.result


def test_release_name_with_dots_as_helm_allows(kubeapi, release4, helm, tmp_path):
    """helm's ValidateReleaseName: a DNS-1123 subdomain, at most 53 characters (a.b is valid, a..b is not).
    The chart names a ConfigMap after the release (gpu-demo's Service, a DNS-1035 label, could not take a dot)."""
    chart = tmp_path / "dotted"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: dotted\nversion: 0.1.0\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  chart: dotted\n"
    )
    args = {"chart_ref": str(chart), "name": "gpu.demo-1"}
    check = release4(args, check=True)
    assert check.changed and writes(kubeapi) == [], check.result
    assert release4(args).changed
    assert [entry["name"] for entry in helm("list", "-o", "json", json_output=True)] == ["gpu.demo-1"]
    assert configmap(kubeapi, "gpu.demo-1") is not None
    assert not release4(args).changed
    longest = ".".join(["a"] * 27)  # 53 characters
    assert release4({"chart_ref": str(chart), "name": longest}, check=True).changed
    for bad in ("gpu..demo", f"{longest}a"):
        refused = release4({"chart_ref": str(chart), "name": bad})
        assert refused.failed and f"release name {bad!r} is not valid" in refused.result["msg"], refused.result


def test_check_mode_reads_a_newer_index_without_touching_helms_cache(kubeapi, release4, helm_env, kube_clients, tmp_path):
    """The cached index lacks 0.3.0; the real run updates it and upgrades. Check mode must say so too (it said
    "not found"), reading the repository into a scratch cache: helm's own configuration and cache stay as they were."""
    root = tmp_path / "repo"
    root.mkdir()
    with served_chart_repo(kube_clients["helm"], root, ("0.1.0",)) as url:
        args = {"chart_ref": "demo-repo/gpu-demo", "chart_repo_url": url}
        assert release4({**args, "chart_version": "0.1.0"}).result["chart"] == "gpu-demo-0.1.0"
        package_into(kube_clients["helm"], root, ("0.3.0",), url)
        helm_files = sorted(Path(helm_env["HELM_CACHE_HOME"]).rglob("*")) + sorted(Path(helm_env["HELM_CONFIG_HOME"]).rglob("*"))
        before = {path: path.read_bytes() for path in helm_files if path.is_file()}
        kubeapi.admin.reset_counters()

        check = release4({**args, "chart_version": "0.3.0"}, check=True, diff=True)
        assert check.changed and check.result["diff"]["after"]["chart"] == "gpu-demo-0.3.0", check.result
        assert "repo_updated" not in check.result and writes(kubeapi) == []
        after_files = sorted(Path(helm_env["HELM_CACHE_HOME"]).rglob("*")) + sorted(Path(helm_env["HELM_CONFIG_HOME"]).rglob("*"))
        assert {path: path.read_bytes() for path in after_files if path.is_file()} == before

        real = release4({**args, "chart_version": "0.3.0"})
        assert real.changed and real.result["repo_updated"] is True and real.result["chart"] == "gpu-demo-0.3.0"


def test_check_mode_of_a_repository_not_added_yet_knows_its_newest_version(kubeapi, release4, helm_env, chart_repo):
    check = release4({"chart_ref": "demo-repo/gpu-demo", "chart_repo_url": chart_repo}, check=True, diff=True)
    assert check.changed and check.result["chart"] == "gpu-demo-0.2.0", check.result
    assert not (Path(helm_env["HELM_CONFIG_HOME"]) / "repositories.yaml").exists()


# -- transient API failures are retried; credentials never outlive a failure ---------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/secrets$"), ("POST", "/secrets$")], ids=["listing-releases", "storing-the-release"]
)
def test_a_transient_server_error_is_retried(kubeapi, release4, helm, method, path):
    """kube-apiserver's 500 (no Retry-After, so client-go inside helm does not retry it) on helm list and on the
    release Secret's creation: the module runs the command again, as the other modules retry a 5xx."""
    kubeapi.admin.fail_next(1, 500, method=method, path=path)
    run = release4({"chart_ref": str(CHART)})
    assert run.changed and run.result["action"] == "installed", run.result
    codes = [entry["code"] for entry in kubeapi.admin.requests() if entry["method"] == method and "/secrets" in entry["path"]]
    assert 500 in codes and codes[-1] in (200, 201), codes
    assert helm("list", "-o", "json", json_output=True)[0]["status"] == "deployed"


def test_a_server_error_that_lasts_fails_after_api_timeout_naming_the_attempts(kubeapi, release4):
    kubeapi.admin.fail_next(1000, 500, method="GET", path="/secrets$")
    run = release4({"chart_ref": str(CHART), "api_timeout": 8})
    assert run.failed and "Internal error occurred: injected internal error" in run.result["msg"], run.result
    attempts = int(re.search(r"after (\d+) attempts", run.result["msg"]).group(1))
    failed = [entry for entry in kubeapi.admin.requests() if entry["code"] == 500]
    assert attempts >= 2 and len(failed) == attempts, (attempts, len(failed))  # backoff from 0.1 s within 8 s
    assert writes(kubeapi) == []


def test_a_permanent_api_error_is_not_retried(kubeapi, release4):
    kubeapi.admin.fail_next(5, 403, method="GET", path="/secrets$")
    run = release4({"chart_ref": str(CHART)})
    assert run.failed and "injected error 403" in run.result["msg"] and "attempts" not in run.result["msg"], run.result
    assert len(kubeapi.admin.faults()) == 1 and kubeapi.admin.faults()[0]["count"] == 4  # one try only


def test_kubeconfig_dict_is_removed_when_the_helm_version_check_fails(kubeapi, tmp_path, helm_env):
    """A kubeconfig given as a dict is written (token included) to a scratch directory for helm; a helm that is
    not v3 or v4 failed the task before that directory was removed."""
    old_helm = tmp_path / "helm2"
    old_helm.write_text('#!/bin/sh\necho "v2.17.0"\n')  # helm v2's version, which helm_release refuses
    old_helm.chmod(0o755)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    kubeconfig = yaml.safe_load(Path(kubeapi.kubeconfig).read_text())
    run = run_kube_module(
        kubeapi,
        "helm_release",
        {"name": "demo", "chart_ref": str(CHART), "binary_path": str(old_helm), "kubeconfig": kubeconfig},
        env={**helm_env, "TMPDIR": str(scratch)},
    )
    assert run.failed and "kubegpu.core needs helm v3.12 or later v3, or v4" in run.result["msg"], run.result
    assert [path.name for path in scratch.iterdir() if path.name.startswith("kubegpu-helm-")] == []
