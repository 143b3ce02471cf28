"""The connection options every Kubernetes module shares (module_utils/_kube.py), exercised
through kubegpu.core.node_labels against the test API server. The server accepts any
credentials unless a test turns its token checking on (``admin.accept_tokens``); the token
renewal tests do, and hold its 401 to real kubectl with the same exec plugin."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
import yaml

from tests.support.adhoc import run_module
from tests.support.kube_modules import node_labels, run_kube_module, writes
from tests.support.kubeapi.admin import AdminClient
from tests.support.kubeapi.pytest_fixtures import GPU_NODES
from tests.support.kubeapi.server import KubeAPIServer

LABEL = {"nodes": [{"name": "gpu-node-1", "labels": {"conn": "ok"}}]}
GPU_NAMES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_kubeconfig_given_as_a_dictionary(kubeapi):
    config = yaml.safe_load(kubeapi.kubeconfig.read_text())
    run = run_module("kubegpu.core.node_labels", {"kubeconfig": config, **LABEL})
    assert run.changed, run.result
    assert node_labels(kubeapi, "gpu-node-1")["conn"] == "ok"


def test_host_and_api_key_without_kubeconfig_send_a_bearer_token(kubeapi, tmp_path):
    env = {"HOME": str(tmp_path), "KUBECONFIG": "", "K8S_AUTH_KUBECONFIG": ""}
    run = run_module("kubegpu.core.node_labels", {"host": kubeapi.url, "api_key": "s3cret-token", **LABEL}, env=env)
    assert run.changed, run.result
    assert "s3cret-token" not in run.stdout + run.stderr + str(run.result)


def test_environment_fallbacks_k8s_auth_kubeconfig_and_context(kubeapi):
    context = yaml.safe_load(kubeapi.kubeconfig.read_text())["current-context"]
    env = {"K8S_AUTH_KUBECONFIG": str(kubeapi.kubeconfig), "K8S_AUTH_CONTEXT": context}
    check = run_module("kubegpu.core.node_labels", LABEL, check=True, env=env)
    assert check.changed and writes(kubeapi) == []
    assert run_module("kubegpu.core.node_labels", LABEL, env=env).changed
    assert not run_module("kubegpu.core.node_labels", LABEL, env=env).changed


def test_wrong_context_fails_listing_the_contexts(kubeapi):
    run = run_module("kubegpu.core.node_labels", {"kubeconfig": str(kubeapi.kubeconfig), "context": "nope", **LABEL})
    assert run.failed
    assert "context 'nope' is not in the kubeconfig" in run.result["msg"]
    assert writes(kubeapi) == []


def test_unreachable_server_fails_naming_it_quickly(kubeapi):
    url = f"http://127.0.0.1:{_free_port()}"
    run = run_module("kubegpu.core.node_labels", {"host": url, **LABEL})
    assert run.failed
    assert url in run.result["msg"] and "connection refused" in run.result["msg"], run.result["msg"]


def test_malformed_kubeconfig_is_reported(tmp_path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("- just\n- a list\n")
    run = run_module("kubegpu.core.node_labels", {"kubeconfig": str(bad), **LABEL})
    assert run.failed and str(bad) in run.result["msg"] and "not a YAML mapping" in run.result["msg"]


def test_missing_client_certificate_file_is_named(kubeapi):
    run = run_module(
        "kubegpu.core.node_labels", {"kubeconfig": str(kubeapi.kubeconfig), "client_cert": "/nonexistent.crt", **LABEL}
    )
    assert run.failed and "client_cert='/nonexistent.crt'" in run.result["msg"]
    assert writes(kubeapi) == []


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A second test API server over HTTPS with a self-signed certificate for 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=True,
    )  # fmt: skip
    with KubeAPIServer(fixtures=(GPU_NODES,), tls_cert=str(cert), tls_key=str(key)) as server:
        yield server, server.write_kubeconfig(tmp / "kubeconfig"), cert


def test_tls_verified_with_the_kubeconfig_ca_or_ca_cert_and_refused_without(tls_server, tmp_path):
    server, kubeconfig, cert = tls_server
    env = {"HOME": str(tmp_path), "KUBECONFIG": "", "K8S_AUTH_KUBECONFIG": ""}
    check = {**LABEL, "api_timeout": 5}
    assert run_module("kubegpu.core.node_labels", {"kubeconfig": str(kubeconfig), **check}, check=True).changed
    with_ca = {"host": server.url, "ca_cert": str(cert), **check}
    assert run_module("kubegpu.core.node_labels", with_ca, check=True, env=env).changed
    refused = run_module("kubegpu.core.node_labels", {"host": server.url, **check}, env=env)
    assert refused.failed and server.url in refused.result["msg"] and "CERTIFICATE_VERIFY_FAILED" in refused.result["msg"]
    insecure = {"host": server.url, "validate_certs": False, **check}
    assert run_module("kubegpu.core.node_labels", insecure, check=True, env=env).changed


@pytest.mark.parametrize("timeout", [0, -1, "nan"], ids=["zero", "negative", "nan"])
def test_api_timeout_not_a_positive_number_is_refused_naming_the_option_before_any_request(kubeapi, timeout):
    kubeapi.admin.reset_counters()
    run = run_module("kubegpu.core.node_labels", {"kubeconfig": str(kubeapi.kubeconfig), "api_timeout": timeout, **LABEL})
    assert run.failed, run.result
    assert f"api_timeout={float(timeout)!r} is not valid" in run.result["msg"] and "positive" in run.result["msg"]
    assert kubeapi.admin.requests() == []


# An exec credential plugin (client.authentication.k8s.io/v1, the protocol of `aws eks get-token` and kubelogin): its
# Nth run prints the token exec-token-N, expiring at $EXPIRY.
EXEC_PLUGIN = """#!/bin/sh
n=$(( $(cat "$COUNTER" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$COUNTER"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
printf '"status":{"token":"exec-token-%s","expirationTimestamp":"%s"}}\\n' "$n" "$EXPIRY"
"""


def _user_kubeconfig(server, folder, user):
    """A kubeconfig for ``server`` whose user is ``user`` (exec or tokenFile) instead of the bench's static token."""
    folder.mkdir(parents=True, exist_ok=True)
    config = server.kubeconfig()
    config["users"][0]["user"] = user
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def _exec_kubeconfig(server, folder, expiry):
    """A kubeconfig whose user runs EXEC_PLUGIN (its runs counted in folder/runs); returns (kubeconfig, runs file)."""
    folder.mkdir(parents=True, exist_ok=True)
    plugin = folder / "plugin.sh"
    plugin.write_text(EXEC_PLUGIN)
    plugin.chmod(0o755)
    runs = folder / "runs"
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "interactiveMode": "Never",
            "env": [{"name": "COUNTER", "value": str(runs)}, {"name": "EXPIRY", "value": expiry}],
        }
    }
    return _user_kubeconfig(server, folder, user), runs


def test_an_exec_plugin_token_refused_401_is_renewed_by_running_the_plugin_again_as_kubectl_does(
    tls_server, tmp_path, kube_clients
):
    """The server takes only the plugin's second token: real kubectl (which sends exec credentials over TLS only)
    meets 401 with the first, runs the plugin again and goes on with the second; the module must do the same."""
    server, _kubeconfig, _cert = tls_server
    admin = AdminClient(server.url)
    admin.reset()
    admin.accept_tokens(["exec-token-2"])
    try:
        kubeconfig, runs = _exec_kubeconfig(server, tmp_path / "kubectl", "2999-01-01T00:00:00Z")
        argv = [str(kube_clients["kubectl"]), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]
        answer = subprocess.run([*argv, "get", "nodes", "-o", "name"], capture_output=True, text=True, timeout=120, check=False)
        assert answer.returncode == 0 and "node/gpu-node-1" in answer.stdout, answer.stderr[-2000:]
        assert runs.read_text().strip() == "2"
        seen = [(entry["code"], entry["token"]) for entry in admin.requests()]
        assert seen[0] == (401, "exec-token-1") and set(seen[1:]) == {(200, "exec-token-2")}, seen

        admin.reset_counters()
        kubeconfig, runs = _exec_kubeconfig(server, tmp_path / "module", "2999-01-01T00:00:00Z")
        run = run_module("kubegpu.core.node_labels", {"kubeconfig": str(kubeconfig), **LABEL})
        assert run.changed and not run.failed, run.result
        assert runs.read_text().strip() == "2"
        seen = [(entry["method"], entry["code"], entry["token"]) for entry in admin.requests()]
        assert seen == [("GET", 401, "exec-token-1"), ("GET", 200, "exec-token-2"), ("PATCH", 200, "exec-token-2")], seen
    finally:
        admin.reset()


def test_an_exec_plugin_token_past_its_expiration_timestamp_is_asked_again_before_the_next_request(kubeapi, tmp_path):
    """client-go runs the plugin again once the ExecCredential's expirationTimestamp has passed: a token that is
    always already expired is asked for again before every request, so no two requests carry the same token."""
    kubeconfig, _runs = _exec_kubeconfig(kubeapi.server, tmp_path, "2001-01-01T00:00:00Z")
    args = {"kubeconfig": str(kubeconfig), "nodes": [{"name": name, "labels": {"conn": "ok"}} for name in GPU_NAMES]}
    run = run_module("kubegpu.core.node_labels", {**args, "parallel": 1})
    assert run.changed and not run.failed, run.result
    tokens = [entry["token"] for entry in kubeapi.admin.requests()]
    assert len(tokens) == 4 and len(set(tokens)) == 4 and all(token.startswith("exec-token-") for token in tokens), tokens


def test_a_token_file_rotated_during_a_long_task_is_read_again_on_401(kubeapi, tmp_path):
    """The kubelet rotates a projected service account token in its file and the old one expires: the module, slowed
    by the server's latency, meets 401 after the rotation, reads the file again and finishes."""
    token_file = tmp_path / "token"
    token_file.write_text("file-token-1")
    kubeconfig = _user_kubeconfig(kubeapi.server, tmp_path, {"tokenFile": str(token_file)})
    kubeapi.admin.accept_tokens(["file-token-1"])
    kubeapi.admin.set_latency(0.3)

    def rotate():
        deadline = time.monotonic() + 60
        while not kubeapi.admin.requests() and time.monotonic() < deadline:  # the LIST has been served
            time.sleep(0.02)
        token_file.write_text("file-token-2\n")
        kubeapi.admin.accept_tokens(["file-token-2"])

    rotation = threading.Thread(target=rotate)
    rotation.start()
    run = run_kube_module(
        kubeapi,
        "node_taints",
        {"kubeconfig": str(kubeconfig), "nodes": GPU_NAMES, "parallel": 1, "taints": [{"key": "k", "effect": "NoSchedule"}]},
    )
    rotation.join()
    assert run.changed and not run.failed, run.result
    seen = [(entry["method"], entry["code"], entry["token"]) for entry in kubeapi.admin.requests()]
    assert seen[0] == ("GET", 200, "file-token-1") and ("PATCH", 401, "file-token-1") in seen, seen
    assert [entry for entry in seen if entry[1] == 200][1:] == [("PATCH", 200, "file-token-2")] * 3, seen


def test_a_token_file_ending_with_a_newline_is_trimmed_as_client_go_trims_it(kubeapi, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("file-token-1\n")
    kubeconfig = _user_kubeconfig(kubeapi.server, tmp_path, {"tokenFile": str(token_file)})
    kubeapi.admin.accept_tokens(["file-token-1"])
    run = run_module("kubegpu.core.node_labels", {"kubeconfig": str(kubeconfig), **LABEL}, check=True)
    assert run.changed and not run.failed, run.result
    assert [entry["code"] for entry in kubeapi.admin.requests()] == [200]
