"""The connection options every Kubernetes module shares (module_utils/_kube.py), exercised
through kubegpu.core.node_labels against the test API server. The server accepts any
credentials (it emulates no authentication), so these tests prove which server is reached
and with which headers, not that a real API server would accept them."""

from __future__ import annotations

import socket

import yaml

from tests.support.adhoc import run_module
from tests.support.kube_modules import node_labels, writes

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
