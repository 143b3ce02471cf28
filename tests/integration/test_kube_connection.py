"""The connection options every Kubernetes module shares (module_utils/_kube.py), exercised
through kubegpu.core.node_labels against the test API server. The server accepts any
credentials (it emulates no authentication), so these tests prove which server is reached
and with which headers, not that a real API server would accept them."""

from __future__ import annotations

import socket
import subprocess

import pytest
import yaml

from tests.support.adhoc import run_module
from tests.support.kube_modules import node_labels, writes
from tests.support.kubeapi.pytest_fixtures import GPU_NODES
from tests.support.kubeapi.server import KubeAPIServer

LABEL = {"nodes": [{"name": "gpu-node-1", "labels": {"conn": "ok"}}]}


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
