"""The collection reads kubeconfigs itself (module_utils/_kube.py KubeConfig), so that a module does not import the
``kubernetes`` library in every task. What it resolves is held to what the real library's ``load_kube_config`` puts
into a ``kubernetes.client.Configuration`` for the same file: the kubeconfigs are in the shapes real tools write them
(kubeadm's admin.conf, kind, k3s's k3s.yaml, ``aws eks update-kubeconfig``'s exec user, service account tokens, a
hand-written file with several contexts and relative paths). The library is imported here, in the test, only."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.incluster_config import InClusterConfigLoader

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._kube import KubeClient, _in_cluster


def _pem(kind: str, tag: str) -> bytes:
    body = base64.b64encode(f"{tag} {kind}".encode() * 8).decode()
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n".encode()


CA = _pem("CERTIFICATE", "cluster-ca")
CERT = _pem("CERTIFICATE", "admin")
KEY = _pem("RSA PRIVATE KEY", "admin")
OTHER_CA = _pem("CERTIFICATE", "other-ca")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write(path, config) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def _single(names, server, cluster, user):
    """A kubeconfig of one cluster, one user and one context (``names``: theirs, in that order), as kubeadm, kind,
    k3s and aws write them."""
    cluster_name, user_name, context_name = names
    return {
        "apiVersion": "v1",
        "clusters": [{"cluster": {**cluster, "server": server}, "name": cluster_name}],
        "contexts": [{"context": {"cluster": cluster_name, "user": user_name}, "name": context_name}],
        "current-context": context_name,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user_name, "user": user}],
    }


CERT_USER = {"client-certificate-data": _b64(CERT), "client-key-data": _b64(KEY)}


def kubeadm_admin_conf(tmp_path):
    """/etc/kubernetes/admin.conf as kubeadm init writes it."""
    names = ("kubernetes", "kubernetes-admin", "kubernetes-admin@kubernetes")
    config = _single(names, "https://192.168.10.11:6443", {"certificate-authority-data": _b64(CA)}, CERT_USER)
    return _write(tmp_path / "admin.conf", config), None


def kind_cluster(tmp_path):
    """~/.kube/config after ``kind create cluster``."""
    config = _single(
        ("kind-kind", "kind-kind", "kind-kind"), "https://127.0.0.1:39461", {"certificate-authority-data": _b64(CA)}, CERT_USER
    )
    return _write(tmp_path / "kind" / "config", config), None


def k3s_yaml(tmp_path):
    """/etc/rancher/k3s/k3s.yaml as k3s writes it (its names are all ``default``)."""
    config = _single(
        ("default", "default", "default"), "https://127.0.0.1:6443", {"certificate-authority-data": _b64(CA)}, CERT_USER
    )
    return _write(tmp_path / "k3s.yaml", config), None


# `aws eks get-token` stand-in on PATH: prints the ExecCredential the real one prints, its token made of the
# profile from the exec env and the cluster name from the args, so both must reach it.
FAKE_AWS = """#!/bin/sh
printf '{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "spec": {}, '
printf '"status": {"expirationTimestamp": "2999-01-01T00:00:00Z", "token": "k8s-aws-v1.%s.%s"}}\\n' "$AWS_PROFILE" "$6"
"""


def eks_exec(tmp_path):
    """~/.kube/config after ``aws eks update-kubeconfig --name prod-gpu --profile prod``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS)
    (bin_dir / "aws").chmod(0o755)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"  # restored by the fixture
    arn = "arn:aws:eks:us-west-2:123456789012:cluster/prod-gpu"
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "args": ["--region", "us-west-2", "eks", "get-token", "--cluster-name", "prod-gpu", "--output", "json"],
            "command": "aws",
            "env": [{"name": "AWS_PROFILE", "value": "prod"}],
        }
    }
    server = "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com"
    config = _single((arn, arn, arn), server, {"certificate-authority-data": _b64(CA)}, user)
    return _write(tmp_path / "eks" / "config", config), None


def exec_client_certificate(tmp_path):
    """An exec plugin that answers with a client certificate and key (PEM in the ExecCredential) instead of a token."""
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"clientCertificateData": CERT.decode(), "clientKeyData": KEY.decode()},
    }
    (tmp_path / "credential.json").write_text(json.dumps(credential))
    plugin = tmp_path / "cert-plugin"
    plugin.write_text('#!/bin/sh\ncat "$(dirname "$0")/credential.json"\n')
    plugin.chmod(0o755)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)}}
    config = _single(("lab", "lab", "lab"), "https://10.0.0.1:6443", {"certificate-authority-data": _b64(CA)}, user)
    return _write(tmp_path / "config", config), None


def token_user_with_relative_ca_file(tmp_path):
    """A service account kubeconfig handed out to a CI job: a static token, the CA as a file beside the kubeconfig."""
    (tmp_path / "sa" / "ca.crt").parent.mkdir(parents=True)
    (tmp_path / "sa" / "ca.crt").write_bytes(CA)
    user = {"token": "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJjaSJ9.c2ln"}
    config = _single(("ci", "ci-bot", "ci"), "https://k8s.example.com:6443/", {"certificate-authority": "ca.crt"}, user)
    return _write(tmp_path / "sa" / "kubeconfig", config), None


def token_file_relative(tmp_path):
    """A user whose token is a file relative to the kubeconfig's folder (a projected service account token)."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("projected-token-1")
    user = {"tokenFile": "secrets/token"}
    config = _single(("c", "u", "c"), "https://10.96.0.1:443", {"certificate-authority-data": _b64(CA)}, user)
    return _write(tmp_path / "kubeconfig", config), None


def _several(tmp_path):
    """A hand-kept kubeconfig: several clusters, users and contexts, certificates as relative paths (one above the
    kubeconfig's folder), a cluster reached through a proxy by a name other than its address, skipped TLS checks."""
    pki = tmp_path / "home" / "pki"
    pki.mkdir(parents=True)
    (pki / "admin.crt").write_bytes(CERT)
    (pki / "admin.key").write_bytes(KEY)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "ca.crt").write_bytes(OTHER_CA)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "lab", "cluster": {"server": "https://lab.example:6443", "certificate-authority": "../shared/ca.crt"}},
            {
                "name": "edge",
                "cluster": {
                    "server": "https://203.0.113.7:6443",
                    "certificate-authority-data": _b64(CA),
                    "tls-server-name": "kubernetes.default.svc",
                    "proxy-url": "http://proxy.example:3128",
                },
            },
            {"name": "dev", "cluster": {"server": "https://dev.example:6443", "insecure-skip-tls-verify": True}},
        ],
        "users": [
            {"name": "admin", "user": {"client-certificate": "pki/admin.crt", "client-key": "pki/admin.key"}},
            {"name": "basic", "user": {"username": "ops", "password": "s3cret:with:colons"}},
            {"name": "tok", "user": {"token": "edge-token"}},
        ],
        "contexts": [
            {"name": "lab-admin", "context": {"cluster": "lab", "user": "admin"}},
            {"name": "edge", "context": {"cluster": "edge", "user": "tok", "namespace": "gpu"}},
            {"name": "dev-basic", "context": {"cluster": "dev", "user": "basic"}},
        ],
        "current-context": "lab-admin",
    }


def several_current_context(tmp_path):
    return _write(tmp_path / "home" / "config", _several(tmp_path)), None


def several_edge_proxy_server_name(tmp_path):
    return _write(tmp_path / "home" / "config", _several(tmp_path)), "edge"


def several_insecure_basic_auth(tmp_path):
    return _write(tmp_path / "home" / "config", _several(tmp_path)), "dev-basic"


SHAPES = [
    kubeadm_admin_conf,
    kind_cluster,
    k3s_yaml,
    eks_exec,
    exec_client_certificate,
    token_user_with_relative_ca_file,
    token_file_relative,
    several_current_context,
    several_edge_proxy_server_name,
    several_insecure_basic_auth,
]

# what each shape must resolve to, read off the file written above (the library must agree too)
EXPECTED = {
    "kubeadm_admin_conf": {"ca": CA, "cert": CERT, "key": KEY, "authorization": None},
    "kind_cluster": {"host": "https://127.0.0.1:39461", "cert": CERT, "key": KEY},
    "k3s_yaml": {"host": "https://127.0.0.1:6443", "cert": CERT},
    "eks_exec": {"authorization": "Bearer k8s-aws-v1.prod.prod-gpu", "ca": CA, "cert": None},
    "exec_client_certificate": {"cert": CERT, "key": KEY, "authorization": None},
    "token_user_with_relative_ca_file": {"host": "https://k8s.example.com:6443", "ca": CA},
    "token_file_relative": {"authorization": "Bearer projected-token-1"},
    "several_current_context": {"host": "https://lab.example:6443", "ca": OTHER_CA, "cert": CERT, "key": KEY, "verify": True},
    "several_edge_proxy_server_name": {
        "authorization": "Bearer edge-token",
        "server_name": "kubernetes.default.svc",
        "proxy": "http://proxy.example:3128",
    },
    "several_insecure_basic_auth": {
        "verify": False,
        "authorization": "Basic " + base64.b64encode(b"ops:s3cret:with:colons").decode(),
    },
}


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", os.environ["PATH"])  # shapes may prepend a folder of fake tools


def _read(path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def ours(kubeconfig, context=None) -> dict:
    client = KubeClient.from_params({"kubeconfig": kubeconfig, "context": context})
    pool = client.pool.connection_pool_kw
    headers = {key.lower(): value for key, value in client.headers.items()}
    proxy = getattr(client.pool, "proxy", None)
    return {
        "host": client.host,
        "verify": pool["cert_reqs"] == "CERT_REQUIRED",
        "ca": _read(pool["ca_certs"]) if pool["ca_certs"] else None,
        "cert": _read(pool["cert_file"]) if pool["cert_file"] else None,
        "key": _read(pool["key_file"]) if pool["key_file"] else None,
        "authorization": client.credentials.header() if client.credentials else headers.get("authorization"),
        "server_name": pool.get("server_hostname"),
        "proxy": str(proxy) if proxy else None,
    }


def theirs(kubeconfig, context=None) -> dict:
    """What the real kubernetes library makes of the same kubeconfig."""
    cfg = k8s_client.Configuration()
    if isinstance(kubeconfig, dict):
        k8s_config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=cfg, persist_config=False)
    else:
        k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg, persist_config=False)
    return {
        "host": cfg.host,
        "verify": cfg.verify_ssl,
        "ca": _read(cfg.ssl_ca_cert) if cfg.ssl_ca_cert else None,
        "cert": _read(cfg.cert_file) if cfg.cert_file else None,
        "key": _read(cfg.key_file) if cfg.key_file else None,
        "authorization": cfg.auth_settings().get("BearerToken", {}).get("value"),
        "server_name": cfg.tls_server_name,
        "proxy": cfg.proxy,
    }


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.__name__ for shape in SHAPES])
def test_a_kubeconfig_resolves_as_the_kubernetes_library_resolves_it(shape, tmp_path):
    kubeconfig, context = shape(tmp_path)
    resolved = ours(kubeconfig, context)
    assert resolved == theirs(kubeconfig, context)
    for field, value in EXPECTED[shape.__name__].items():
        assert resolved[field] == value, field


def test_a_kubeconfig_given_as_a_dictionary_resolves_its_relative_paths_from_the_working_folder(tmp_path, monkeypatch):
    config = _several(tmp_path)
    monkeypatch.chdir(tmp_path / "home")
    resolved = ours(config)
    assert resolved == theirs(config)
    assert resolved["ca"] == OTHER_CA and resolved["cert"] == CERT


def test_certificate_data_goes_into_private_temporary_files_removed_at_exit_and_kubernetes_is_not_imported(tmp_path):
    """The module process (node_labels imported, its client built from a kubeconfig with a token and certificate
    data) never imports the kubernetes library, and leaves no copy of the key behind."""
    kubeconfig, _context = kubeadm_admin_conf(tmp_path)
    with open(kubeconfig, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    config["users"][0]["user"]["token"] = "static-token"
    _write(tmp_path / "admin.conf", config)
    script = (
        "import json, os, stat, sys\n"
        "from ansible_collections.kubegpu.core.plugins.modules import node_labels\n"
        "client = node_labels.kube.KubeClient.from_params({'kubeconfig': sys.argv[1]})\n"
        "pool = client.pool.connection_pool_kw\n"
        "files = [pool['ca_certs'], pool['cert_file'], pool['key_file']]\n"
        "print(json.dumps({'files': files, 'modes': [stat.S_IMODE(os.stat(path).st_mode) for path in files],\n"
        "    'authorization': client.credentials.header(),\n"
        "    'kubernetes': sorted(name for name in sys.modules if name.split('.')[0] == 'kubernetes')}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    done = subprocess.run([sys.executable, "-c", script, kubeconfig], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["kubernetes"] == []
    assert seen["authorization"] == "Bearer static-token"
    assert seen["modes"] == [0o600, 0o600, 0o600]
    assert [os.path.exists(path) for path in seen["files"]] == [False, False, False]


def _environ(host):
    return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": "443"}


@pytest.mark.parametrize("service_host", ["10.96.0.1", "fd00:10:96::1"], ids=["ipv4", "ipv6"])
def test_in_cluster_config_as_the_kubernetes_library_reads_it(service_host, tmp_path):
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("service-account-token")
    ca.write_bytes(CA)
    cfg = k8s_client.Configuration()
    InClusterConfigLoader(str(token), str(ca), environ=_environ(service_host)).load_and_set(cfg)
    options = _in_cluster(str(token), str(ca), _environ(service_host))
    assert options["host"] == cfg.host
    assert options["ca_cert"] == cfg.ssl_ca_cert and options["verify"] is True
    # the library writes the scheme "bearer", client-go "Bearer": HTTP reads it either way (RFC 9110 section 11.1)
    assert options["credentials"].header() == "Bearer service-account-token"
    assert cfg.auth_settings()["BearerToken"]["value"].lower() == "bearer service-account-token"


def test_in_cluster_config_without_a_token_fails_naming_the_file(tmp_path):
    (tmp_path / "ca.crt").write_bytes(CA)
    with pytest.raises(KubeGPUError, match=f"tokenFile {tmp_path}/token"):
        _in_cluster(str(tmp_path / "token"), str(tmp_path / "ca.crt"), _environ("10.96.0.1"))


def _jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def _oidc(tmp_path):
    token = _jwt({"iss": "https://dex.example", "sub": "ops", "exp": int(time.time()) + 3600})
    user = {
        "auth-provider": {
            "name": "oidc",
            "config": {"client-id": "kubectl", "id-token": token, "idp-issuer-url": "https://dex.example"},
        }
    }
    config = _single(("c", "oidc-user", "c"), "https://10.0.0.1:6443", {"certificate-authority-data": _b64(CA)}, user)
    return _write(tmp_path / "kubeconfig", config), token


def test_an_auth_provider_user_is_read_by_the_kubernetes_library(tmp_path):
    kubeconfig, token = _oidc(tmp_path)
    resolved = ours(kubeconfig)
    assert resolved == theirs(kubeconfig)
    assert resolved["authorization"] == f"Bearer {token}" and resolved["ca"] == CA


def test_an_auth_provider_user_without_the_kubernetes_library_names_what_to_install(tmp_path, monkeypatch):
    kubeconfig, _token = _oidc(tmp_path)
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes now raises ImportError
    with pytest.raises(KubeGPUError) as failure:
        KubeClient.from_params({"kubeconfig": kubeconfig})
    message = str(failure.value)
    assert kubeconfig in message and "auth-provider 'oidc'" in message and "(kubernetes)" in message, message


def _broken(tmp_path, change):
    config = _several(tmp_path)
    change(config)
    return _write(tmp_path / "home" / "config", config)


@pytest.mark.parametrize(
    ("change", "context", "expected"),
    [
        (lambda config: None, "prod", "context 'prod' is not in the kubeconfig {path}; its contexts: lab-admin, edge, dev-basic"),
        (lambda config: config.pop("current-context"), None, "the kubeconfig {path} has no current-context: give context"),
        (
            lambda config: config.update({"current-context": "gone"}),
            None,
            "the current-context 'gone' of the kubeconfig {path} is not in its contexts: lab-admin, edge, dev-basic",
        ),
        (
            lambda config: config["contexts"][0]["context"].update(cluster="nowhere"),
            None,
            "the context 'lab-admin' of the kubeconfig {path} names the cluster 'nowhere', which is not in its clusters",
        ),
        (
            lambda config: config["clusters"][0]["cluster"].pop("server"),
            None,
            "the cluster 'lab' of the kubeconfig {path} (context 'lab-admin') has no server",
        ),
        (
            lambda config: config["clusters"][0]["cluster"].update({"certificate-authority": "missing.crt"}),
            None,
            "certificate-authority {folder}/missing.crt of the cluster in the kubeconfig {path} (context 'lab-admin'): "
            "no such file",
        ),
        (
            lambda config: config["clusters"][1]["cluster"].update({"certificate-authority-data": "not base64!"}),
            "edge",
            "certificate-authority-data of the cluster in the kubeconfig {path} is not base64",
        ),
    ],
    ids=[
        "unknown-context",
        "no-current-context",
        "current-context-gone",
        "unknown-cluster",
        "no-server",
        "ca-file-missing",
        "bad-base64",
    ],
)
def test_a_broken_kubeconfig_fails_naming_the_file_the_context_and_the_field(tmp_path, change, context, expected):
    path = _broken(tmp_path, change)
    with pytest.raises(KubeGPUError) as failure:
        KubeClient.from_params({"kubeconfig": path, "context": context})
    assert expected.format(path=path, folder=os.path.dirname(path)) in str(failure.value)


def test_an_exec_plugin_that_fails_is_named_with_its_error(tmp_path):
    plugin = tmp_path / "plugin"
    plugin.write_text("#!/bin/sh\necho 'error: SSO session expired' >&2\nexit 3\n")
    plugin.chmod(0o755)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)}}
    config = _single(("c", "u", "c"), "https://10.0.0.1:6443", {}, user)
    with pytest.raises(KubeGPUError, match=r"exec plugin .*plugin failed \(exit 3\): error: SSO session expired"):
        KubeClient.from_params({"kubeconfig": _write(tmp_path / "kubeconfig", config)})
