# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes connection options and the one API client of the collection. Private to the collection.

Modules that talk to the API compose their argument spec from ``KUBE_ARG_SPEC``
(``spec = deepcopy(KUBE_ARG_SPEC); spec.update(...)``) and document it with the
``kubegpu.core._kube`` doc fragment; a unit test holds the two together.

``KubeClient.from_params(module.params)`` reads the connection the way kubectl
does (kubeconfig path or dict, context, or a bare host, or the in-cluster service
account) with the ``kubernetes`` library's configuration loaders, then sends
plain JSON requests through urllib3 (the library's own transport): the modules
need raw objects, concurrency and their own retry policy, not typed models.
Every request is retried on 429 (after ``Retry-After``), 500/502/503/504 and
dropped connections, within ``api_timeout`` seconds (except the 500s that are an
answer, ``PERMANENT_500_MESSAGES``); a failure names the API
server, the object and the HTTP status.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import math
import os
import random
import re
import threading
import time
import traceback
import typing as t
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import env_fallback

from ansible_collections.kubegpu.core.plugins.module_utils._command import CommandTimeout
from ansible_collections.kubegpu.core.plugins.module_utils._command import _run_bounded as run_bounded
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

try:
    import urllib3
    import yaml
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None

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


def _kubeconfig_user(data: t.Any, context: str | None) -> dict[str, t.Any]:
    """The ``user`` entry of the kubeconfig's context (the current one when ``context`` is None), or {}."""
    if not isinstance(data, dict):
        return {}
    name = context or data.get("current-context")
    entry = next(
        (item.get("context") for item in data.get("contexts") or [] if isinstance(item, dict) and item.get("name") == name), None
    )
    user = (entry or {}).get("user") if isinstance(entry, dict) else None
    found = next(
        (item.get("user") for item in data.get("users") or [] if isinstance(item, dict) and item.get("name") == user), None
    )
    return found if isinstance(found, dict) else {}


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


class BearerToken:
    """A kubeconfig user's bearer token that its source can renew: the user's exec plugin (an ``ExecCredential``, as
    client-go runs it: ``aws eks get-token``, ``kubelogin``) or its ``tokenFile`` (or the in-cluster service account
    token, which the kubelet rotates). The kubernetes library reads them once, when the kubeconfig is loaded; a long
    task outlives such a token. Asked before each request: the token the library loaded until it is renewed here
    (the library's refresh hook runs the exec plugin again when that token's ``expirationTimestamp`` is near), then
    this source's own token until its ``expirationTimestamp`` passes (client-go's rule). On a 401 the client
    ``renew``s it (runs the plugin again, or reads the file again) and repeats the request once."""

    def __init__(
        self, cfg: t.Any, initial: str | None, *, exec_config: dict[str, t.Any] | None, token_file: str | None, base: str
    ) -> None:
        self._cfg = cfg
        # the library keeps a token file's trailing newline, which no header may hold; client-go trims it
        self._initial = initial.strip() if initial else None
        self._exec = exec_config
        self._token_file = token_file
        self._base = base
        self._token: str | None = None
        self._expiry: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def of_user(cls, user: dict[str, t.Any], base: str, cfg: t.Any, initial: str | None) -> BearerToken | None:
        exec_config = user.get("exec") if isinstance(user.get("exec"), dict) else None
        if not initial:  # an exec plugin that gave a client certificate (the library uses it), not a bearer token
            exec_config = None
        token_file = user.get("tokenFile") if isinstance(user.get("tokenFile"), str) else None
        if exec_config is None and token_file is None:
            return None
        if token_file:
            token_file = os.path.join(base, os.path.expanduser(token_file))
        return cls(cfg, initial, exec_config=exec_config, token_file=token_file, base=base)

    def header(self) -> str:
        """The ``Authorization`` header to send now."""
        with self._lock:
            if self._token is not None:
                if self._expiry is not None and time.time() >= self._expiry:
                    self._fetch()
                return self._token
            if self._exec is not None:  # the library's refresh hook honours the loaded token's expirationTimestamp
                for setting in self._cfg.auth_settings().values():
                    if setting.get("in") == "header" and setting.get("key", "").lower() == "authorization":
                        self._initial = (setting.get("value") or "").strip() or self._initial
            if self._initial is None:  # the library read no token file
                self._fetch()
                return t.cast(str, self._token)
            return self._initial

    def renew(self, used: str) -> bool:
        """A new token after ``used`` was refused (401); False when the source gives the same one again."""
        with self._lock:
            if self._token is not None and self._token != used:
                return True  # another thread renewed it already
            self._fetch()
            return self._token != used

    def _fetch(self) -> None:
        if self._exec is not None:
            token, self._expiry = self._run_plugin(self._exec)
        else:
            try:
                with open(t.cast(str, self._token_file), encoding="utf-8") as handle:
                    token = handle.read().strip()
            except OSError as exc:
                raise KubeGPUError(f"cannot read the kubeconfig user's tokenFile {self._token_file}: {exc}") from exc
            self._expiry = None
        self._token = f"Bearer {token}"

    def _run_plugin(self, config: dict[str, t.Any]) -> tuple[str, float | None]:
        """Run the exec plugin as client-go does (``KUBERNETES_EXEC_INFO``, the plugin's ``env``, a command with a
        path separator relative to the kubeconfig's folder) and read the token of its ``ExecCredential``."""
        command = str(config.get("command") or "")
        if os.sep in command and not os.path.isabs(command):
            command = os.path.join(self._base, command)
        api_version = str(config.get("apiVersion") or "client.authentication.k8s.io/v1")
        env = dict(os.environ)
        env.update({str(item.get("name")): str(item.get("value")) for item in config.get("env") or [] if isinstance(item, dict)})
        env["KUBERNETES_EXEC_INFO"] = json.dumps(
            {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        )
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
        if not status.get("token"):
            raise KubeGPUError(f"the kubeconfig user's exec plugin {command} gave no token in its ExecCredential status")
        return str(status["token"]), _rfc3339(status.get("expirationTimestamp"))


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
        if not HAS_KUBERNETES:
            raise KubeGPUError("the kubernetes Python library is required", exception=KUBERNETES_IMPORT_ERROR)
        cfg = k8s_client.Configuration()
        kubeconfig = params.get("kubeconfig")
        context = params.get("context")
        host = params.get("host")
        # the kubeconfig user (and the folder its relative paths start from), for a token that can be renewed
        user: tuple[dict[str, t.Any], str] | None = None
        try:
            if isinstance(kubeconfig, dict):
                cls._check_context(kubeconfig, context, "given as a dictionary")
                k8s_config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=cfg, persist_config=False)
                user = (_kubeconfig_user(kubeconfig, context), os.getcwd())
            elif kubeconfig:
                path = cls._kubeconfig_path(kubeconfig)
                data = cls._read_yaml(path)
                cls._check_context(data, context, path)
                k8s_config.load_kube_config(config_file=path, context=context, client_configuration=cfg, persist_config=False)
                user = (_kubeconfig_user(data, context), os.path.dirname(os.path.abspath(path)))
            elif host:
                cfg.host = host
            elif os.path.exists(os.path.expanduser("~/.kube/config")):
                path = os.path.expanduser("~/.kube/config")
                data = cls._read_yaml(path)
                cls._check_context(data, context, path)
                k8s_config.load_kube_config(config_file=path, context=context, client_configuration=cfg, persist_config=False)
                user = (_kubeconfig_user(data, context), os.path.dirname(path))
            elif os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(IN_CLUSTER_TOKEN):
                k8s_config.load_incluster_config(client_configuration=cfg)
                user = ({"tokenFile": IN_CLUSTER_TOKEN}, "/")
            else:
                raise KubeGPUError(
                    "no Kubernetes connection: give kubeconfig (or set K8S_AUTH_KUBECONFIG / KUBECONFIG) or host, "
                    "or run in a pod with a service account"
                )
        except ConfigException as exc:
            raise KubeGPUError(f"cannot use the kubeconfig: {exc}") from exc
        if host:
            cfg.host = host
        headers = cls._auth_headers(cfg, params)
        credentials = None
        if user is not None and not params.get("api_key") and not params.get("username"):
            credentials = BearerToken.of_user(user[0], user[1], cfg, headers.get("authorization"))
            if credentials is not None:
                headers.pop("authorization", None)
        verify = params.get("validate_certs")
        if verify is None:
            verify = bool(getattr(cfg, "verify_ssl", True))
        proxy = params.get("proxy")
        if not proxy and not getattr(cfg, "_proxy_from_env", False):
            proxy = getattr(cfg, "proxy", None)
        for option in ("ca_cert", "client_cert", "client_key"):
            path = params.get(option)
            if path and not os.path.isfile(path):
                raise KubeGPUError(f"{option}={path!r}: no such file")
        return cls(
            cfg.host,
            headers,
            verify=verify,
            ca_cert=params.get("ca_cert") or cfg.ssl_ca_cert,
            client_cert=params.get("client_cert") or cfg.cert_file,
            client_key=params.get("client_key") or cfg.key_file,
            proxy=proxy,
            timeout=timeout,
            parallel=parallel,
            server_hostname=getattr(cfg, "tls_server_name", None),
            credentials=credentials,
        )

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

    @staticmethod
    def _check_context(data: t.Any, context: str | None, where: str) -> None:
        names = _kubeconfig_contexts(data, where)
        if context and context not in names:
            raise KubeGPUError(
                f"context {context!r} is not in the kubeconfig {where}; its contexts: {', '.join(names) or '(none)'}"
            )

    @staticmethod
    def _auth_headers(cfg: t.Any, params: dict[str, t.Any]) -> dict[str, str]:
        if params.get("api_key"):
            return {"Authorization": f"Bearer {params['api_key']}"}
        if params.get("username"):
            token = urllib3.util.make_headers(basic_auth=f"{params['username']}:{params.get('password') or ''}")
            return {"Authorization": token["authorization"]}
        headers = {}
        for setting in cfg.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

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
                    response = self._direct.urlopen(
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
