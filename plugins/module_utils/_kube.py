# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes connection options and the one API client of the collection. Private to the collection.

Modules that talk to the API compose their argument spec from ``KUBE_ARG_SPEC``
(``spec = deepcopy(KUBE_ARG_SPEC); spec.update(...)``) and document it with the
``kubegpu.core._kube`` doc fragment; a unit test holds the two together.

``KubeClient.from_params(module.params)`` reads the connection the way kubectl
does (kubeconfig path or dict, context, or a bare host, or the in-cluster service
account), then sends plain JSON requests through urllib3 (the ``kubernetes``
library's own transport): the modules need raw objects, concurrency and their own
retry policy, not typed models. The kubeconfig is read here, as client-go reads it
(``KubeConfig``), without importing the ``kubernetes`` library, which takes most of
a second to import in every task; the library is imported only for a kubeconfig
user with an ``auth-provider`` (oidc, gcp, azure), which is not implemented here.
Every request is retried on 429 (after ``Retry-After``), 500/502/503/504 and
dropped connections, within ``api_timeout`` seconds (except the 500s that are an
answer, ``PERMANENT_500_MESSAGES``); a failure names the API
server, the object and the HTTP status.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import datetime
import email.utils
import json
import math
import os
import random
import re
import tempfile
import threading
import time
import traceback
import typing as t
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils._command import CommandTimeout
from ansible_collections.kubegpu.core.plugins.module_utils._command import _run_bounded as run_bounded
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

try:
    import urllib3
except ImportError:
    HAS_URLLIB3 = False
    URLLIB3_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_URLLIB3 = True
    URLLIB3_IMPORT_ERROR = None

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core
    yaml = None

KUBE_ARG_SPEC: dict[str, dict] = {
    "kubeconfig": {"type": "raw", "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG", "KUBECONFIG"])},
    "context": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
    "host": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_HOST"])},
    "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_API_KEY"])},
    "username": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_USERNAME"])},
    "password": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_PASSWORD"])},
    "validate_certs": {
        "type": "bool",
        "aliases": ["verify_ssl"],
        "fallback": (env_fallback, ["K8S_AUTH_VERIFY_SSL"]),
    },
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"], "fallback": (env_fallback, ["K8S_AUTH_SSL_CA_CERT"])},
    "client_cert": {"type": "path", "aliases": ["cert_file"], "fallback": (env_fallback, ["K8S_AUTH_CERT_FILE"])},
    "client_key": {"type": "path", "aliases": ["key_file"], "no_log": False, "fallback": (env_fallback, ["K8S_AUTH_KEY_FILE"])},
    "proxy": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_PROXY"])},
    "api_timeout": {"type": "float", "default": 60.0, "fallback": (env_fallback, ["KUBEGPU_API_TIMEOUT"])},
}

RETRIED_STATUSES = frozenset((429, 500, 502, 503, 504))
# 500s that are the API server's answer, not an outage: retrying cannot change them, so they fail at once
# (kube-apiserver's eviction of a pod that more than one PodDisruptionBudget selects)
PERMANENT_500_MESSAGES = ("more than one PodDisruptionBudget",)
IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
IN_CLUSTER_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
# connection refused / no route: a restarting API server comes back quickly or not at all
CONNECT_ATTEMPTS = 3
PAGE_SIZE = 500
USER_AGENT = "kubegpu.core"
# Metadata-only reads, negotiated as client-go's metadata client (k8s.io/client-go/metadata) asks for them, JSON
# only: kube-apiserver answers a PartialObjectMetadataList (each item: kind, apiVersion and the whole metadata) and
# a PartialObjectMetadata for one object; a server that cannot convert answers the plain object (the last range),
# whose metadata reads the same.
METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


class KubeAPIError(KubeGPUError):
    """An API request that failed: ``status`` is the HTTP status (0 when none came back)."""

    def __init__(self, msg: str, status: int = 0, reason: str = "", **details: t.Any) -> None:
        super().__init__(msg, status=status, **details)
        self.status = status
        self.reason = reason


def _status_message(data: bytes) -> tuple[str, str]:
    """(reason, message) of a Kubernetes ``Status`` body, or of whatever text came back."""
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        return "", data[:300].decode(errors="replace").strip()
    if isinstance(body, dict):
        message = str(body.get("message") or "")
        causes = [str(cause.get("message")) for cause in (body.get("details") or {}).get("causes") or [] if cause.get("message")]
        if causes and not any(cause in message for cause in causes):
            message += f" ({'; '.join(causes)})"
        return str(body.get("reason") or ""), message
    return "", ""


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.1, 0.2, 0.4 ... seconds, at most 5."""
    return min(5.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def check_api_timeout(value: t.Any) -> float:
    """``api_timeout`` in seconds: a positive, finite number (60 when not given)."""
    if value is None:
        return 60.0
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise KubeGPUError(
            f"api_timeout={value!r} is not valid: give a positive number of seconds that one API request may take, "
            "retries included (default 60)"
        )
    return seconds


def _kubeconfig_contexts(data: t.Any, where: str) -> list[str]:
    if not isinstance(data, dict):
        raise KubeGPUError(f"the kubeconfig {where} is not a YAML mapping")
    return [str(item.get("name")) for item in data.get("contexts") or [] if isinstance(item, dict)]


def _rfc3339(value: t.Any) -> float | None:
    """Epoch seconds of an RFC 3339 time (``2026-01-02T03:04:05Z``), or None."""
    if not isinstance(value, str) or not value:
        return None
    # Python 3.9's fromisoformat takes neither Z nor fractions of other than 3 or 6 digits
    text = re.sub(r"\.\d+", lambda match: match.group(0)[:7].ljust(7, "0"), value.strip()).upper().replace("Z", "+00:00")
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)).timestamp()


def _exec_credential(config: dict[str, t.Any], base: str) -> dict[str, t.Any]:
    """Run a kubeconfig user's exec plugin as client-go does (``KUBERNETES_EXEC_INFO``, the plugin's ``env``, a command
    with a path separator relative to the kubeconfig's folder) and return the ``status`` of its ``ExecCredential``: a
    ``token`` (``aws eks get-token``, kubelogin) or a ``clientCertificateData`` and ``clientKeyData`` (PEM)."""
    command = str(config.get("command") or "")
    if not command:
        raise KubeGPUError("the kubeconfig user's exec plugin has no command")
    if os.sep in command and not os.path.isabs(command):
        command = os.path.join(base, command)
    api_version = str(config.get("apiVersion") or "client.authentication.k8s.io/v1")
    env = dict(os.environ)
    env.update({str(item.get("name")): str(item.get("value")) for item in config.get("env") or [] if isinstance(item, dict)})
    exec_info = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(exec_info)
    argv = [command, *[str(arg) for arg in config.get("args") or []]]
    try:
        # the collection's one bounded runner (no module object reaches here, so not run_command)
        returncode, stdout, stderr = run_bounded(argv, 120, None, env, None)
    except (OSError, CommandTimeout) as exc:
        raise KubeGPUError(f"the kubeconfig user's exec plugin {command} could not run: {exc}") from exc
    if returncode != 0:
        raise KubeGPUError(f"the kubeconfig user's exec plugin {command} failed (exit {returncode}): {stderr.strip()[-500:]}")
    try:
        status = json.loads(stdout).get("status") or {}
    except (ValueError, AttributeError) as exc:
        raise KubeGPUError(f"the kubeconfig user's exec plugin {command} did not print an ExecCredential: {exc}") from exc
    if not isinstance(status, dict) or not (status.get("token") or status.get("clientCertificateData")):
        raise KubeGPUError(
            f"the kubeconfig user's exec plugin {command} gave neither a token nor a clientCertificateData in its "
            "ExecCredential status"
        )
    return status


class BearerToken:
    """A kubeconfig user's bearer token that its source can renew: the user's exec plugin (an ``ExecCredential``, as
    client-go runs it: ``aws eks get-token``, ``kubelogin``) or its ``tokenFile`` (or the in-cluster service account
    token, which the kubelet rotates). Asked before each request: the token read when the kubeconfig was loaded (or
    the file's, read at the first request), then a new one once its ``expirationTimestamp`` has passed (client-go's
    rule; a token just fetched is used once even so). On a 401 the client ``renew``s it (runs the plugin again, or
    reads the file again) and repeats the request once."""

    def __init__(
        self,
        initial: str | None,
        *,
        expiry: float | None = None,
        exec_config: dict[str, t.Any] | None,
        token_file: str | None,
        base: str,
    ) -> None:
        # a token file's trailing newline may not go into a header; client-go trims it
        self._token = initial.strip() if initial else None
        self._expiry = expiry
        self._fresh = self._token is not None
        self._exec = exec_config
        self._token_file = token_file
        self._base = base
        self._lock = threading.Lock()

    def header(self) -> str:
        """The ``Authorization`` header to send now."""
        with self._lock:
            expired = self._expiry is not None and time.time() >= self._expiry
            if self._token is None or (expired and not self._fresh):
                self._fetch()
            self._fresh = False
            return t.cast(str, self._token)

    def renew(self, used: str) -> bool:
        """A new token after ``used`` was refused (401); False when the source gives the same one again."""
        with self._lock:
            if self._token is not None and self._token != used:
                return True  # another thread renewed it already
            self._fetch()
            return self._token != used

    def _fetch(self) -> None:
        if self._exec is not None:
            status = _exec_credential(self._exec, self._base)
            if not status.get("token"):
                command = self._exec.get("command")
                raise KubeGPUError(f"the kubeconfig user's exec plugin {command} gave no token in its ExecCredential status")
            token, self._expiry = str(status["token"]), _rfc3339(status.get("expirationTimestamp"))
        else:
            try:
                with open(t.cast(str, self._token_file), encoding="utf-8") as handle:
                    token = handle.read().strip()
            except OSError as exc:
                raise KubeGPUError(f"cannot read the kubeconfig user's tokenFile {self._token_file}: {exc}") from exc
            if not token:
                raise KubeGPUError(f"the token file {self._token_file} is empty")
            self._expiry = None
        self._token = f"Bearer {token}"


# certificates and keys given as *-data (or by an exec plugin): urllib3 loads them from files only
_DATA_FILES: dict[bytes, str] = {}


def _remove_data_files() -> None:
    for path in _DATA_FILES.values():
        with contextlib.suppress(OSError):
            os.remove(path)
    _DATA_FILES.clear()


def _data_file(data: bytes) -> str:
    """A private temporary file (0600, as ``mkstemp`` makes it) that holds ``data``, removed when the process ends."""
    path = _DATA_FILES.get(data)
    if path is None:
        if not _DATA_FILES:
            atexit.register(_remove_data_files)
        descriptor, path = tempfile.mkstemp(prefix="kubegpu-kubeconfig-")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        _DATA_FILES[data] = path
    return path


def _named(data: dict[str, t.Any], section: str, name: t.Any, where: str) -> dict[str, t.Any] | None:
    """The mapping under the entry called ``name`` of a kubeconfig list (``clusters``, ``users``), or None."""
    item = section[:-1]
    for entry in data.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            found = entry.get(item)
            if not isinstance(found, dict):
                raise KubeGPUError(f"the {item} {name!r} of the kubeconfig {where} has no {item} mapping")
            return found
    return None


class KubeConfig:
    """One context of a kubeconfig, resolved as client-go's clientcmd resolves it (k8s.io/client-go/tools/clientcmd:
    client_config.go, loader.go ResolvePaths; the fields of api/v1/types.go), into the options of a ``KubeClient``:
    the cluster's ``server``, ``certificate-authority(-data)``, ``insecure-skip-tls-verify``, ``tls-server-name`` and
    ``proxy-url``; the user's ``token``/``tokenFile``, ``client-certificate(-data)``/``client-key(-data)``, ``exec``
    plugin or ``username``/``password``, in the order the kubernetes Python library tries them. Relative paths start
    from the kubeconfig's folder; ``*-data`` goes into private temporary files. A user with an ``auth-provider`` is
    handed to the kubernetes library (``library_options``)."""

    def __init__(self, data: t.Any, context: str | None, where: str, base: str) -> None:
        names = _kubeconfig_contexts(data, where)
        listed = ", ".join(names) or "(none)"
        if context and context not in names:
            raise KubeGPUError(f"context {context!r} is not in the kubeconfig {where}; its contexts: {listed}")
        self.where = where
        self.base = base
        self.name = context or data.get("current-context")
        if not self.name:
            raise KubeGPUError(f"the kubeconfig {where} has no current-context: give context (its contexts: {listed})")
        entries = [item for item in data.get("contexts") or [] if isinstance(item, dict) and item.get("name") == self.name]
        entry = entries[0].get("context") if entries else None
        if not isinstance(entry, dict):
            raise KubeGPUError(
                f"the current-context {self.name!r} of the kubeconfig {where} is not in its contexts: {listed}"
                if not entries
                else f"the context {self.name!r} of the kubeconfig {where} has no context mapping"
            )
        cluster = _named(data, "clusters", entry.get("cluster"), where)
        if cluster is None:
            raise KubeGPUError(
                f"the context {self.name!r} of the kubeconfig {where} names the cluster {entry.get('cluster')!r}, "
                "which is not in its clusters"
            )
        self.cluster = cluster
        # a user the kubeconfig does not hold sends no credentials (as the kubernetes library does)
        self.user = (_named(data, "users", entry.get("user"), where) or {}) if entry.get("user") else {}
        if not cluster.get("server"):
            cluster_name = entry.get("cluster")
            raise KubeGPUError(f"the cluster {cluster_name!r} of the kubeconfig {where} (context {self.name!r}) has no server")

    @property
    def needs_library(self) -> bool:
        return bool(self.user.get("auth-provider"))

    def _file(self, section: dict[str, t.Any], key: str, what: str) -> str | None:
        """The file of ``key`` (``certificate-authority``, ``client-certificate``, ``client-key``): ``key-data``
        decoded into a private temporary file, else ``key`` relative to the kubeconfig's folder (it must exist)."""
        encoded = section.get(f"{key}-data")
        if encoded:
            try:
                return _data_file(base64.b64decode(str(encoded), validate=True))
            except (binascii.Error, ValueError) as exc:
                raise KubeGPUError(f"{key}-data of the {what} in the kubeconfig {self.where} is not base64: {exc}") from exc
        path = section.get(key)
        if not path:
            return None
        path = os.path.normpath(os.path.join(self.base, str(path)))
        if not os.path.isfile(path):
            raise KubeGPUError(f"{key} {path} of the {what} in the kubeconfig {self.where} (context {self.name!r}): no such file")
        return path

    def options(self) -> dict[str, t.Any]:
        """``KubeClient`` keyword arguments: host, headers, verify, ca_cert, client_cert, client_key, proxy,
        server_hostname, credentials."""
        host = str(self.cluster["server"]).rstrip("/")
        user = self.user
        cert_file = key_file = None
        headers: dict[str, str] = {}
        credentials = None
        exec_config = user.get("exec") if isinstance(user.get("exec"), dict) else None
        token_file = os.path.join(self.base, os.path.expanduser(str(user["tokenFile"]))) if user.get("tokenFile") else None
        if user.get("token") or token_file:
            # the token the kubeconfig holds, or its file's (read at the first request); renewed from the file, or by
            # the exec plugin when there is one, on 401
            initial = f"Bearer {str(user['token']).strip()}" if user.get("token") else None
            credentials = BearerToken(initial, exec_config=exec_config, token_file=token_file, base=self.base)
        elif exec_config is not None:
            status = _exec_credential(exec_config, self.base)
            if status.get("token"):
                expiry = _rfc3339(status.get("expirationTimestamp"))
                initial = f"Bearer {status['token']}"
                credentials = BearerToken(initial, expiry=expiry, exec_config=exec_config, token_file=None, base=self.base)
            elif not status.get("clientKeyData"):
                raise KubeGPUError(
                    f"the kubeconfig user's exec plugin {exec_config.get('command')} gave a clientCertificateData without "
                    "its clientKeyData"
                )
            else:
                cert_file = _data_file(str(status["clientCertificateData"]).encode())
                key_file = _data_file(str(status["clientKeyData"]).encode())
        elif user.get("username") and user.get("password") is not None:
            basic = urllib3.util.make_headers(basic_auth=f"{user['username']}:{user['password']}")
            headers["authorization"] = basic["authorization"]
        ca_cert = None
        if host.startswith("https"):  # certificates mean nothing over plain HTTP (the library skips them too)
            ca_cert = self._file(self.cluster, "certificate-authority", "cluster")
            if cert_file is None:
                cert_file = self._file(user, "client-certificate", "user")
                key_file = self._file(user, "client-key", "user")
        return {
            "host": host,
            "headers": headers,
            "verify": not self.cluster.get("insecure-skip-tls-verify", False),
            "ca_cert": ca_cert,
            "client_cert": cert_file,
            "client_key": key_file,
            "proxy": self.cluster.get("proxy-url") or None,
            "server_hostname": self.cluster.get("tls-server-name") or None,
            "credentials": credentials,
        }

    def library_options(self, source: t.Any) -> dict[str, t.Any]:
        """``options()`` read by the kubernetes library from ``source`` (the kubeconfig's path or dictionary), for a
        user with an ``auth-provider``: imported here only, as it takes most of a second to import."""
        provider = self.user.get("auth-provider")
        provider = provider.get("name") if isinstance(provider, dict) else provider
        try:
            from kubernetes import client as k8s_client  # noqa: PLC0415 (most of a second to import)
            from kubernetes import config as k8s_config  # noqa: PLC0415
            from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415
        except ImportError as exc:
            raise KubeGPUError(
                f"the user of the context {self.name!r} in the kubeconfig {self.where} authenticates with the "
                f"auth-provider {provider!r}, which only the kubernetes Python library reads: "
                + missing_required_lib("kubernetes"),
                exception=traceback.format_exc(),
            ) from exc
        cfg = k8s_client.Configuration()
        try:
            if isinstance(source, dict):
                k8s_config.load_kube_config_from_dict(source, context=self.name, client_configuration=cfg, persist_config=False)
            else:
                k8s_config.load_kube_config(config_file=source, context=self.name, client_configuration=cfg, persist_config=False)
        except ConfigException as exc:
            raise KubeGPUError(f"cannot use the kubeconfig {self.where} (context {self.name!r}): {exc}") from exc
        headers = {}
        for setting in cfg.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return {
            "host": cfg.host,
            "headers": headers,
            "verify": bool(cfg.verify_ssl),
            "ca_cert": cfg.ssl_ca_cert,
            "client_cert": cfg.cert_file,
            "client_key": cfg.key_file,
            # the library's Configuration takes a proxy from the environment too; the kubeconfig's proxy-url only here
            "proxy": None if getattr(cfg, "_proxy_from_env", False) else cfg.proxy,
            "server_hostname": getattr(cfg, "tls_server_name", None),
            "credentials": None,
        }


def _in_cluster(token_file: str = IN_CLUSTER_TOKEN, ca_file: str = IN_CLUSTER_CA, environ: t.Any = None) -> dict[str, t.Any]:
    """``KubeClient`` options of the pod's service account, as client-go's rest.InClusterConfig reads them: the API
    server at ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, verified with the service account's
    ``ca.crt``, its token read from ``token_file`` (read again on 401: the kubelet rotates it)."""
    environ = os.environ if environ is None else environ
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeGPUError("in a pod, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set")
    if not os.path.isfile(ca_file):
        raise KubeGPUError(f"the service account's CA certificate {ca_file} does not exist")
    credentials = BearerToken(None, exec_config=None, token_file=token_file, base="/")
    credentials.header()  # a missing or empty token fails here, before any request
    return {
        "host": f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        "headers": {},
        "verify": True,
        "ca_cert": ca_file,
        "client_cert": None,
        "client_key": None,
        "proxy": None,
        "server_hostname": None,
        "credentials": credentials,
    }


class KubeClient:
    """JSON requests to one API server, with retries; safe to use from many threads."""

    def __init__(
        self,
        host: str,
        headers: dict[str, str],
        *,
        verify: bool,
        ca_cert: str | None,
        client_cert: str | None,
        client_key: str | None,
        proxy: str | None,
        timeout: float,
        parallel: int = 1,
        server_hostname: str | None = None,
        credentials: BearerToken | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        self.headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **headers}
        # a bearer token that can be renewed (exec plugin, token file), asked before each request and again on 401
        self.credentials = credentials
        self.timeout = timeout
        self.parallel = max(1, parallel)
        self._lock = threading.Lock()
        self.requests_sent = 0
        pool_args: dict[str, t.Any] = {
            "num_pools": 2,
            "maxsize": self.parallel,
            "block": True,
            "retries": False,
            "cert_reqs": "CERT_REQUIRED" if verify else "CERT_NONE",
            "ca_certs": ca_cert,
            "cert_file": client_cert,
            "key_file": client_key,
        }
        if server_hostname:
            pool_args["server_hostname"] = server_hostname
        if not verify:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if proxy:
            parsed = urllib.parse.urlsplit(proxy)
            proxy_headers = None
            if parsed.username:
                auth = f"{urllib.parse.unquote(parsed.username)}:{urllib.parse.unquote(parsed.password or '')}"
                proxy_headers = urllib3.util.make_headers(proxy_basic_auth=auth)
            self.pool: t.Any = urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **pool_args)
        else:
            self.pool = urllib3.PoolManager(**pool_args)
        # Without a proxy every request goes straight to the API server's connection pool: the PoolManager would parse
        # the URL and look its pool up again on each request, a quarter of the client's cost per request when a task
        # sends thousands (node_labels on a fleet). Through a proxy, the ProxyManager keeps the request form the proxy
        # needs (absolute URLs, proxy headers, CONNECT).
        self._direct: t.Any = None if proxy else self.pool.connection_from_url(self.host)
        self._base_path = (urllib3.util.parse_url(self.host).path or "").rstrip("/")

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_params(cls, params: dict[str, t.Any], *, parallel: int = 1) -> KubeClient:
        """The client the connection options describe (see the ``_kube`` doc fragment)."""
        timeout = check_api_timeout(params.get("api_timeout"))
        if not HAS_URLLIB3:
            raise KubeGPUError(missing_required_lib("urllib3"), exception=URLLIB3_IMPORT_ERROR)
        kubeconfig = params.get("kubeconfig")
        context = params.get("context")
        host = params.get("host")
        source: t.Any = None  # what the kubeconfig was read from: its path, or the dictionary
        if isinstance(kubeconfig, dict):
            source = kubeconfig
            config = KubeConfig(kubeconfig, context, "given as a dictionary", os.getcwd())
        else:
            if kubeconfig:
                source = cls._kubeconfig_path(kubeconfig)
            elif not host and os.path.exists(os.path.expanduser("~/.kube/config")):
                source = os.path.expanduser("~/.kube/config")
            if source is not None:
                config = KubeConfig(cls._read_yaml(source), context, source, os.path.dirname(os.path.abspath(source)))
        if source is not None:
            options = config.library_options(source) if config.needs_library else config.options()
        elif host:
            options = {"host": host, "headers": {}, "verify": True, "ca_cert": None, "client_cert": None, "client_key": None}
            options.update(proxy=None, server_hostname=None, credentials=None)
        elif os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(IN_CLUSTER_TOKEN):
            options = _in_cluster()
        else:
            raise KubeGPUError(
                "no Kubernetes connection: give kubeconfig (or set K8S_AUTH_KUBECONFIG / KUBECONFIG) or host, "
                "or run in a pod with a service account"
            )
        if host:
            options["host"] = host
        if params.get("api_key"):
            options.update(headers={"Authorization": f"Bearer {params['api_key']}"}, credentials=None)
        elif params.get("username"):
            basic = urllib3.util.make_headers(basic_auth=f"{params['username']}:{params.get('password') or ''}")
            options.update(headers={"Authorization": basic["authorization"]}, credentials=None)
        if params.get("validate_certs") is not None:
            options["verify"] = params["validate_certs"]
        for option in ("ca_cert", "client_cert", "client_key", "proxy"):
            if params.get(option):
                options[option] = params[option]
        for option in ("ca_cert", "client_cert", "client_key"):
            path = params.get(option)
            if path and not os.path.isfile(path):
                raise KubeGPUError(f"{option}={path!r}: no such file")
        return cls(timeout=timeout, parallel=parallel, **options)

    @staticmethod
    def _kubeconfig_path(value: t.Any) -> str:
        if not isinstance(value, str):
            raise KubeGPUError(f"kubeconfig must be a file path or a dictionary, not {type(value).__name__}")
        path = os.path.expanduser(value.split(os.pathsep)[0])
        if not os.path.isfile(path):
            raise KubeGPUError(f"kubeconfig file {path} not found")
        return path

    @staticmethod
    def _read_yaml(path: str) -> t.Any:
        try:
            with open(path, encoding="utf-8") as handle:
                return yaml.safe_load(handle)
        except (OSError, yaml.YAMLError) as exc:
            raise KubeGPUError(f"cannot read the kubeconfig {path}: {exc}") from exc

    # -- requests -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: dict[str, t.Any] | None = None,
        body: t.Any = None,
        content_type: str = "application/json",
        retry_conflict: bool = False,
        not_found_ok: bool = False,
        no_retry: t.Container[int] = (),
        accept: str | None = None,
    ) -> t.Any:
        """Send one request and return its JSON body; ``what`` names the object in errors
        (e.g. ``"PATCH node gpu-1"``). ``retry_conflict`` also retries 409s (for requests
        that carry no resourceVersion, where a conflict cannot be a lost update); statuses in
        ``no_retry`` fail at once (a caller with its own waiting policy, e.g. evictions);
        ``accept`` replaces the Accept header (``METADATA_ACCEPT`` for a metadata-only answer)."""
        target = path
        if query:
            target += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        url = self.host + target
        headers = dict(self.headers)
        if accept:
            headers["Accept"] = accept
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        deadline = time.monotonic() + self.timeout
        attempt = 0
        connect_failures = 0
        renewed = False
        while True:
            attempt += 1
            if self.credentials is not None:
                token = self.credentials.header()
                headers["authorization"] = token
            remaining = max(0.1, deadline - time.monotonic())
            try:
                with self._lock:
                    self.requests_sent += 1
                timeouts = urllib3.Timeout(connect=min(10.0, remaining), read=remaining)
                if self._direct is not None:
                    # redirect=False: a redirect is answered as it is, as retries=False makes the PoolManager do
                    response = self._direct.request(
                        method,
                        self._base_path + target,
                        body=data,
                        headers=headers,
                        timeout=timeouts,
                        retries=False,
                        redirect=False,
                    )
                else:
                    response = self.pool.request(method, url, body=data, headers=headers, timeout=timeouts, retries=False)
            except urllib3.exceptions.NewConnectionError as exc:
                connect_failures += 1
                problem = f"cannot connect to the API server {self.host} ({_reason(exc)})"
                if connect_failures < CONNECT_ATTEMPTS and self._wait(_backoff(attempt), deadline):
                    continue
                raise KubeAPIError(f"{what}: {problem}") from exc
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError) as exc:
                problem = f"the connection to the API server {self.host} failed ({_reason(exc)})"
                if self._wait(_backoff(attempt), deadline):
                    continue
                raise KubeAPIError(f"{what}: {problem}; gave up after {attempt} attempts") from exc
            except urllib3.exceptions.HTTPError as exc:  # TLS and proxy errors: retrying will not help
                raise KubeAPIError(f"{what}: cannot talk to the API server {self.host}: {_reason(exc)}") from exc
            status = response.status
            if 200 <= status < 300:
                return json.loads(response.data or b"null")
            if status == 404 and not_found_ok:
                return None
            if status == 401 and self.credentials is not None and not renewed:
                # the token expired or was revoked: ask its source for a new one and try once more
                renewed = True
                if self.credentials.renew(token):
                    continue
            retried = (status in RETRIED_STATUSES or (status == 409 and retry_conflict)) and status not in no_retry
            if retried and status == 500:
                retried = not any(text in _status_message(response.data)[1] for text in PERMANENT_500_MESSAGES)
            if retried:
                delay = _retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
                if self._wait(_backoff(attempt) if delay is None else delay, deadline):
                    continue
            reason, message = _status_message(response.data)
            tries = f" (after {attempt} attempts in {self.timeout:g}s)" if attempt > 1 else ""
            raise KubeAPIError(
                f"{what}: the API server {self.host} answered HTTP {status}"
                f"{' ' + reason if reason else ''}: {message or response.reason}{tries}",
                status=status,
                reason=reason,
            )

    @staticmethod
    def _wait(delay: float, deadline: float) -> bool:
        """Sleep ``delay`` if that leaves time for another attempt before ``deadline``."""
        if time.monotonic() + delay >= deadline:
            return False
        time.sleep(delay)
        return True

    def list_all(
        self, path: str, *, what: str, query: dict[str, t.Any] | None = None, accept: str | None = None
    ) -> tuple[list[dict], int]:
        """Every item of a collection, read in pages of ``PAGE_SIZE`` (server-side paging with ``continue``);
        returns (items, pages)."""
        items: list[dict] = []
        pages = 0
        token = None
        while True:
            page = self.request(
                "GET", path, what=what, query={**(query or {}), "limit": PAGE_SIZE, "continue": token}, accept=accept
            )
            pages += 1
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items, pages

    def list_metadata(self, path: str, *, what: str, query: dict[str, t.Any] | None = None) -> tuple[list[dict], int]:
        """Every item of a collection with its ``metadata`` only (name, labels, annotations, resourceVersion ...),
        as a ``PartialObjectMetadataList`` in pages: for tasks that read nothing else (labels), a fraction of the
        bytes of whole objects (a Node's status, images and conditions stay on the server); returns (items, pages)."""
        return self.list_all(path, what=what, query=query, accept=METADATA_LIST_ACCEPT)

    def map(self, function: t.Callable[[t.Any], t.Any], items: t.Sequence[t.Any]) -> list[tuple[t.Any, t.Any, Exception | None]]:
        """``function(item)`` for every item on ``parallel`` threads: ``(item, result, error)`` in order."""

        def call(item: t.Any) -> tuple[t.Any, t.Any, Exception | None]:
            try:
                return item, function(item), None
            except KubeGPUError as exc:
                return item, None, exc

        if self.parallel == 1 or len(items) <= 1:
            return [call(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(items))) as pool:
            return list(pool.map(call, items))


def _reason(exc: Exception) -> str:
    inner = getattr(exc, "reason", None) or (exc.args[-1] if exc.args else None)
    text = str(inner or exc)
    if "Connection refused" in text:
        return "connection refused"
    return text


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")


def object_name_problem(name: t.Any) -> str | None:
    """Why ``name`` cannot name a Node (or any object named by a DNS-1123 subdomain), or None."""
    if not isinstance(name, str) or not name:
        return "a name is a non-empty string"
    if len(name) > 253:
        return f"a name has at most 253 characters; this one has {len(name)}"
    if not _DNS_SUBDOMAIN.match(name):
        return "a name holds lowercase letters, digits, '-' and '.', and begins and ends with a letter or digit"
    return None


def check_node_name(name: t.Any) -> str:
    problem = object_name_problem(name)
    if problem:
        raise KubeGPUError(f"invalid node name {name!r}: {problem}")
    return name


def node_path(name: str) -> str:
    return f"/api/v1/nodes/{urllib.parse.quote(name, safe='')}"


# What to install when a group is not served; anything else gets a generic hint.
PROVIDERS = {
    "openfaas.com": "install OpenFaaS first",
    "nvidia.com": "install the NVIDIA GPU Operator first",
    "monitoring.coreos.com": "install the Prometheus Operator first",
}


class Discovery:
    """Kinds the cluster serves, read once per group-version."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.served: dict[str, dict[str, dict[str, t.Any]] | None] = {}

    def resource(self, api_version: str, kind: str, *, fresh: bool = False) -> dict[str, t.Any] | None:
        if fresh or api_version not in self.served:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.client.request("GET", path, what=f"discovery of {api_version}", not_found_ok=True)
            kinds: dict[str, dict[str, t.Any]] = {}
            for resource in (listing or {}).get("resources") or []:
                if "/" not in resource.get("name", ""):
                    kinds[resource["kind"]] = resource
            self.served[api_version] = kinds if listing is not None else None
        return (self.served[api_version] or {}).get(kind)

    def find(self, api_version: str, name: str) -> dict[str, t.Any] | None:
        """The served resource of ``api_version`` that ``name`` names, as kubectl resolves a resource type: its kind;
        its plural or singular name in any case (discovery's ``singularName``, else the kind lowercased, as
        client-go's discovery RESTMapper builds it and lowercases the input); or one of its ``shortNames`` exactly
        as written (kubectl's shortcut expander). None when nothing matches."""
        self.resource(api_version, name)
        resources = list((self.served[api_version] or {}).values())
        lowered = name.lower()
        for resource in resources:
            if name == resource["kind"] or lowered in (
                resource["name"],
                (resource.get("singularName") or resource["kind"]).lower(),
            ):
                return resource
        return next((resource for resource in resources if name in (resource.get("shortNames") or ())), None)

    @staticmethod
    def collection_path(api_version: str, resource: dict[str, t.Any], namespace: str | None) -> str:
        """The URL path of a served resource's collection (in ``namespace`` when it is namespaced and one is given)."""
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if resource.get("namespaced") and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
        return f"{base}/{resource['name']}"


def not_served(api_version: str, kind: str) -> str:
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    hint = PROVIDERS.get(group) or (
        "install the CustomResourceDefinition (or the operator) that provides it first"
        if "." in group
        else "check apiVersion and kind for a typo or a version this cluster does not serve"
    )
    return f"{kind} ({api_version}) is not served by this cluster: {hint}"


def without_managed_fields(obj: dict[str, t.Any] | None) -> dict[str, t.Any] | None:
    """The object as the API server returned it, less ``metadata.managedFields``."""
    if obj is None:
        return None
    result = dict(obj)
    result["metadata"] = {key: value for key, value in (obj.get("metadata") or {}).items() if key != "managedFields"}
    return result
