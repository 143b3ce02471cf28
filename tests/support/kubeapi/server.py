"""The HTTP side of the test API server: routing, discovery, OpenAPI, watch, faults, counters.

``KubeAPIServer`` runs a ``ThreadingHTTPServer`` on 127.0.0.1 in a background thread; its admin
endpoints under ``/_kubeapi/`` (fault injection, latency, counters, request log, reset, loading
objects) are driven by ``AdminClient`` from tests or from another process.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import re
import ssl
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import yaml

from . import eviction, negotiation, openapi, protobuf, table
from .catalogue import CRD_TYPE, ResourceType, discovery_resource_list
from .errors import ApiError, bad_request
from .eviction import grace_period, propagation_policy
from .selectors import SelectorError, fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import FIELD_VALIDATION, Store, clone

DEFAULT_VERSION = "v1.35.2"
ADMIN_PREFIX = "/_kubeapi/"
TOKEN = "kubeapi-test-token"


@dataclasses.dataclass
class Fault:
    code: int
    count: int
    method: Optional[str] = None
    path: Optional[str] = None  # a regular expression searched in the request path
    # serve the request (a write is applied), then close the connection without answering: a response lost on the
    # way back, as when a connection resets after the API server applied the write
    drop_response: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or re.search(self.path, path) is not None
        )


@dataclasses.dataclass
class Interposition:
    """Before serving the next ``count`` requests that match, the server first makes ``request``
    (``{"method", "path", "contentType", "body"}``) against itself, as another client would: a
    deterministic concurrent writer between a client's read and its write."""

    count: int
    method: Optional[str]
    path: Optional[str]
    request: dict
    skip: int = 0  # let this many matching requests through first

    matches = Fault.matches


class ServerState:
    """Everything the handler threads share: the store plus faults, latency, counters, request log."""

    def __init__(self, version: str, ready_controller: bool) -> None:
        self.store = Store(ready_controller=ready_controller, kube_version=version)
        self.version = version
        self.initial = (version, ready_controller)
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        # writes by "another client", made just before a matching request is served
        self.interpositions: list[Interposition] = []
        self.url = ""
        self.latency = 0.0
        # bearer tokens the server accepts (opt-in authentication); None: any or no credentials pass
        self.accepted_tokens: Optional[set[str]] = None
        self.counters: collections.Counter[str] = collections.Counter()
        self.requests: collections.deque[dict] = collections.deque(maxlen=20000)
        # when the counters were last reset: a request that started before (a long watch that ends later) is not counted
        self.counted_since = 0.0
        self.stopping = threading.Event()

    @property
    def version(self) -> str:
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        """The reported ``gitVersion``; built-in kinds are typed by the schemas of this version."""
        self._version = value
        self.store.kube_version = value

    def take_fault(self, method: str, path: str) -> Optional[Fault]:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and fault.matches(method, path):
                    fault.count -= 1
                    self.faults = [f for f in self.faults if f.count > 0]
                    return fault
        return None

    def take_interposition(self, method: str, path: str) -> Optional[Interposition]:
        with self.lock:
            for other in self.interpositions:
                if other.count > 0 and other.matches(method, path):
                    if other.skip > 0:
                        other.skip -= 1
                        return None
                    other.count -= 1
                    self.interpositions = [item for item in self.interpositions if item.count > 0]
                    return other
        return None

    def version_info(self) -> dict:
        match = re.match(r"v(\d+)\.(\d+)", self.version)
        major, minor = (match.group(1), match.group(2)) if match else ("1", "35")
        return {
            "major": major,
            "minor": minor,
            "gitVersion": self.version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-01-01T00:00:00Z",
            "goVersion": "go1.22.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }


@dataclasses.dataclass
class Route:
    rtype: ResourceType
    namespace: Optional[str]
    name: Optional[str]
    subresource: str
    watch: bool


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeapi-test"
    # Headers and body go out in separate writes; without TCP_NODELAY each small response waits
    # for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    state: ServerState  # set on the subclass made per server

    # -- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _header(self, name: str, default: Any = None) -> Any:
        """``self.headers.get(name, default)``, from the request's headers read once (``_dispatch``)."""
        return self._headers.get(name.lower(), default)

    def _body(self) -> bytes:
        if self._header("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self._header("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, payload: Any, content_type: str = "application/json", headers: Optional[dict] = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._code = code
        self._bytes = len(data)
        # Counted before the client can read the answer, so a test that asks for the counters next sees this request.
        self._record()
        if self._drop_response:  # the request was served; its answer is lost with the connection
            self.close_connection = True
            return
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            for one in value if isinstance(value, list) else [value]:
                self.send_header(key, one)
        self.end_headers()
        self.wfile.write(data)
        self._code = code

    def _error(self, error: ApiError, headers: Optional[dict] = None) -> None:
        self._send(error.code, error.status(), headers=headers)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        self._code = 0
        self._bytes = 0
        self._verb, self._resource = method.lower(), "other"
        self._pending: Optional[tuple[str, str, float, float]] = None
        self._drop_response = False
        self._headers: dict[str, str] = {}
        for key, value in self.headers.items():
            self._headers.setdefault(key.lower(), value)  # the first of a name, as headers.get() answers
        body = self._body()
        if path.startswith(ADMIN_PREFIX.rstrip("/")):
            self._admin(method, path, body)
            return
        state = self.state
        self._pending = (method, path, time.monotonic(), time.time())
        try:
            if state.latency:
                time.sleep(state.latency)
            self._authenticate()
            other = state.take_interposition(method, path)
            if other is not None and other.request:
                self._interpose(other.request)
            fault = state.take_fault(method, path)
            self._drop_response = fault is not None and fault.drop_response
            if fault is not None and not fault.drop_response:
                code = fault.code
                self._classify(method, path)
                # worded as kube-apiserver words them (apimachinery's NewInternalError, NewTimeoutError), so a
                # client that tells a transient failure by its words sees what it would see on a real cluster
                messages = {
                    409: "injected conflict",
                    429: "injected: too many requests, please try again later",
                    500: "Internal error occurred: injected internal error",
                    503: "injected: service unavailable",
                    504: "Timeout: injected timeout",
                }
                error = ApiError(code, messages.get(code, f"injected error {code}"))
                self._error(error, {"Retry-After": "1"} if code in (429, 503) else None)
                return
            self._route(method, path, body)
        except ApiError as error:
            self._error(error)
        except (BrokenPipeError, ConnectionResetError):
            self._code = 499
        except Exception as error:  # a bug in the server: answer like an API server would, keep serving
            self._error(ApiError(500, f"kubeapi test server error: {type(error).__name__}: {error}"))
        finally:
            self._record()

    def _presented_token(self) -> str:
        scheme, _space, token = (self._header("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def _authenticate(self) -> None:
        """With token checking on (``accept_tokens``), a request without an accepted bearer token is refused as
        kube-apiserver refuses a token no authenticator accepts (an expired or revoked one), anonymous requests
        included (as with ``--anonymous-auth=false``): 401 with the Status kube-apiserver sends."""
        accepted = self.state.accepted_tokens
        if accepted is not None and self._presented_token() not in accepted:
            self._verb, self._resource = "authenticate", "unauthorized"
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _record(self) -> None:
        """Count the request and add it to the request log, once (admin requests are not recorded)."""
        if self._pending is None:
            return
        method, path, started, started_at = self._pending
        self._pending = None
        state = self.state
        with state.lock:
            if started_at < state.counted_since:
                return
            state.counters[f"{self._verb} {self._resource}"] += 1
            state.requests.append(
                {
                    "method": method,
                    "path": path,
                    "query": self.query,
                    "verb": self._verb,
                    "resource": self._resource,
                    "code": self._code,
                    "contentType": self._header("Content-Type", ""),
                    "accept": self._header("Accept", ""),
                    # bytes of the response body (0 for a watch's stream)
                    "bytes": self._bytes,
                    "userAgent": self._header("User-Agent", ""),
                    "seconds": round(time.monotonic() - started, 6),
                    "dropped": self._drop_response,
                    "token": self._presented_token(),
                    "time": round(started_at, 6),
                }
            )

    # -- routing -------------------------------------------------------------------------------

    def _interpose(self, request: dict) -> None:
        """Make another client's request against this server (handled on another thread) and wait for it."""
        body = request.get("body")
        outgoing = urllib.request.Request(
            self.state.url + request["path"],
            data=None if body is None else json.dumps(body).encode(),
            method=request.get("method", "PATCH"),
            headers={
                "Content-Type": request.get("contentType", "application/merge-patch+json"),
                "User-Agent": "kubeapi-interposed-writer",
                **({"Authorization": f"Bearer {min(self.state.accepted_tokens)}"} if self.state.accepted_tokens else {}),
            },
        )
        context = ssl._create_unverified_context()  # our own test certificate
        with urllib.request.urlopen(outgoing, timeout=30, context=context) as response:
            response.read()

    def _classify(self, method: str, path: str) -> None:
        with contextlib.suppress(ApiError):
            route = self._parse(path)
            if route is not None:
                self._set_verb(method, route)

    def _set_verb(self, method: str, route: Route) -> None:
        collection = route.name is None
        if method == "GET":
            verb = "watch" if route.watch or self.query.get("watch") in ("true", "1") else ("list" if collection else "get")
        else:
            verb = {
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "deletecollection" if collection else "delete",
            }[method]
        self._verb = verb
        self._resource = route.rtype.plural + (f"/{route.subresource}" if route.subresource else "")

    def _parse(self, path: str) -> Optional[Route]:
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if not rest:
            return None
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (len(rest) == 3 and not group and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        rtype = self.state.store.catalogue.find(group, version, rest[0])
        if rtype is None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and subresource not in rtype.subresources:
            raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
        if namespace is not None and not rtype.namespaced:
            raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
        return Route(rtype, namespace, name, subresource, watch)

    def _route(self, method: str, path: str, body: bytes) -> None:
        state = self.state
        if path in ("/healthz", "/livez", "/readyz"):
            self._verb, self._resource = "get", "healthz"
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        if path == "/version":
            self._verb, self._resource = "get", "version"
            self._send(200, state.version_info())
            return
        if path.startswith("/openapi"):
            self._verb, self._resource = "get", "openapi"
            self._openapi(path)
            return
        discovery = self._discovery(path)
        if discovery is not None:
            self._verb, self._resource = "get", "discovery"
            self._send(200, discovery)
            return
        route = self._parse(path)
        if route is None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
        self._set_verb(method, route)
        self._resource_request(method, route, body)

    def _discovery(self, path: str) -> Optional[dict]:
        parts = path.strip("/").split("/")
        if path not in ("/api", "/api/v1") and not (parts[0] == "apis" and len(parts) <= 3):
            return None  # none of the cases below
        catalogue = self.state.store.catalogue
        with self.state.store.lock:
            if path == "/api":
                host = self._header("Host", "127.0.0.1")
                return {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
                }
            if path == "/api/v1":
                return discovery_resource_list("v1", catalogue.resources_of("", "v1"))
            groups = {group: versions for group, versions in catalogue.groups().items() if group}

            def group_entry(group: str, versions: list[str]) -> dict:
                entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
                return {"name": group, "versions": entries, "preferredVersion": entries[0]}

            if path == "/apis":
                return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_entry(g, v) for g, v in groups.items()]}
            parts = path.strip("/").split("/")
            if parts[0] == "apis" and len(parts) == 2:
                if parts[1] not in groups:
                    raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
                return {"kind": "APIGroup", "apiVersion": "v1", **group_entry(parts[1], groups[parts[1]])}
            if parts[0] == "apis" and len(parts) == 3:
                if parts[2] not in groups.get(parts[1], []):
                    raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
                return discovery_resource_list(f"{parts[1]}/{parts[2]}", catalogue.resources_of(parts[1], parts[2]))
        return None

    def _openapi_documents(self) -> dict[str, dict]:
        catalogue = self.state.store.catalogue
        documents = {}
        with self.state.store.lock:
            for group, versions in catalogue.groups().items():
                for version in versions:
                    documents[openapi.v3_key(group, version)] = openapi.v3_group_version(
                        catalogue.resources_of(group, version), self.state.version
                    )
        return documents

    def _openapi(self, path: str) -> None:
        if path == "/openapi/v2":
            accept = self._header("Accept", "")
            if accept and "json" not in accept and "*/*" not in accept:
                raise ApiError(406, "only application/json is served for /openapi/v2 by this test server")
            self._send(200, openapi.v2_document(self.state.store.catalogue.all(), self.state.version))
            return
        documents = self._openapi_documents()
        if path == "/openapi/v3":
            self._send(200, openapi.v3_root(documents))
            return
        key = path[len("/openapi/v3/") :]
        if key not in documents:
            raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
        self._send(200, documents[key])

    # -- resources -----------------------------------------------------------------------------

    def _decode(self, body: bytes, content_type: str) -> Any:
        if not body:
            return None
        if content_type == "application/vnd.kubernetes.protobuf":
            try:
                obj = protobuf.decode(body)
            except (protobuf.ProtobufError, UnicodeDecodeError) as error:
                raise bad_request(f"the body of the request could not be decoded: {error}") from error
            if obj is None:
                raise ApiError(
                    415,
                    "the body of the request was in an unknown format - "
                    "this test server decodes protobuf only for Secret, ConfigMap, Namespace, DeleteOptions, Deployment and Pod",
                )
            return obj
        if "json" not in content_type and "yaml" not in content_type:
            raise ApiError(
                415,
                "the body of the request was in an unknown format - "
                f"accepted media types include: application/json, application/yaml (got {content_type})",
            )
        try:
            if "yaml" in content_type:
                return yaml.safe_load(body)
            return json.loads(body)
        except (ValueError, yaml.YAMLError) as error:
            raise bad_request(f"the body of the request could not be decoded: {error}") from error

    def _dry_run(self) -> bool:
        value = self.query.get("dryRun")
        if value in (None, ""):
            return False
        if value != "All":
            raise bad_request(f'Invalid value: "{value}": supported values: "All"')
        return True

    def _field_validation(self) -> str:
        value = self.query.get("fieldValidation") or "Warn"
        if value not in FIELD_VALIDATION:
            raise bad_request(f'fieldValidation: Unsupported value: "{value}": supported values: "Ignore", "Strict", "Warn"')
        return value

    def _warning_headers(self, warnings: list[str]) -> Optional[dict]:
        if not warnings:
            return None
        # One header per warning, as the API server sends them (code 299, agent "-").
        return {"Warning": [f"299 - {json.dumps(text)}" for text in dict.fromkeys(warnings)]}

    def _manager(self) -> str:
        manager = self.query.get("fieldManager")
        if manager:
            if len(manager) > 128:
                raise bad_request("fieldManager: Too long: may not be longer than 128 characters")
            return manager
        return self._header("User-Agent", "unknown").split("/")[0][:128]

    def _selectors(self, route: Route) -> tuple[list, list]:
        try:
            return (
                parse_label_selector(self.query.get("labelSelector")),
                parse_field_selector(self.query.get("fieldSelector"), route.rtype.plural),
            )
        except SelectorError as error:
            raise bad_request(str(error)) from error

    def _resource_request(self, method: str, route: Route, raw: bytes) -> None:
        store = self.state.store
        rtype, namespace, name, sub = route.rtype, route.namespace, route.name, route.subresource
        content_type = (self._header("Content-Type") or "application/json").split(";")[0].strip()
        if self._verb == "watch":
            self._watch(route)
            return
        if method == "GET":
            target = negotiation.negotiate(self._header("Accept", ""))
            copy = not self._serialized_in_place(target)
            if name is None:
                label_selector, field_selector = self._selectors(route)
                try:
                    limit = int(self.query.get("limit") or 0)
                except ValueError as error:
                    raise bad_request(f"limit must be an integer: {error}") from error
            with store.lock:  # serialized before another write can replace what an answer without copies shares
                if name is None:
                    answer = store.list(
                        rtype,
                        namespace,
                        label_selector,
                        field_selector,
                        limit=limit,
                        continue_token=self.query.get("continue", ""),
                        metadata_only=(target or ("",))[0] == "PartialObjectMetadataList",
                        copy=copy,
                    )
                else:
                    answer = store.get(rtype, namespace, name, copy=copy)
                payload = self._json(self._converted(rtype, answer, target=target))
            self._send(200, payload)
            return
        dry_run = self._dry_run()
        body = self._decode(raw, content_type)
        if sub == "eviction":
            if method != "POST" or name is None:
                message = f"the server does not allow this method on the requested resource ({method})"
                raise ApiError(405, message, "MethodNotAllowed")
            self._send(201, eviction.evict(store, namespace, name, body, dry_run))
            return
        validation = self._field_validation() if method in ("POST", "PUT", "PATCH") else "Ignore"
        warnings: list[str] = []
        if method == "POST":
            if name is not None:
                raise ApiError(
                    405, f"the server does not allow this method on the requested resource ({method})", "MethodNotAllowed"
                )
            created = store.create(
                rtype, namespace, body, manager=self._manager(), dry_run=dry_run, field_validation=validation, warnings=warnings
            )
            self._send(201, self._converted(rtype, created, tables=False), headers=self._warning_headers(warnings))
        elif method == "PUT":
            if name is None:
                raise ApiError(405, "the server does not allow this method on the requested resource (PUT)", "MethodNotAllowed")
            updated = store.update(
                rtype,
                namespace,
                name,
                body,
                manager=self._manager(),
                dry_run=dry_run,
                subresource=sub,
                field_validation=validation,
                warnings=warnings,
            )
            self._send(200, self._converted(rtype, updated, tables=False), headers=self._warning_headers(warnings))
        elif method == "PATCH":
            if name is None:
                raise ApiError(405, "the server does not allow this method on the requested resource (PATCH)", "MethodNotAllowed")
            patch_type = {
                "application/merge-patch+json": "merge",
                "application/strategic-merge-patch+json": "strategic",
                "application/json-patch+json": "json",
                "application/apply-patch+yaml": "apply",
                "application/apply-patch+cbor": "unsupported",
            }.get(content_type)
            if patch_type is None or patch_type == "unsupported":
                raise ApiError(
                    415,
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    f"{'' if rtype.custom else ', application/strategic-merge-patch+json'} (got {content_type})",
                )
            force = self.query.get("force") in ("true", "1")
            if force and patch_type != "apply":
                raise bad_request("force: Forbidden: may not be specified for non-apply patch")
            manager = self.query.get("fieldManager", "") if patch_type == "apply" else self._manager()
            target = negotiation.negotiate(self._header("Accept", ""))
            with store.lock:  # serialized before another write can replace what an answer without copies shares
                obj, created = store.patch(
                    rtype,
                    namespace,
                    name,
                    patch_type,
                    body,
                    manager=manager,
                    dry_run=dry_run,
                    subresource=sub,
                    force=force,
                    field_validation=validation,
                    warnings=warnings,
                    copy=not self._serialized_in_place(target),
                )
                payload = self._json(self._converted(rtype, obj, tables=False, target=target))
            self._send(201 if created else 200, payload, headers=self._warning_headers(warnings))
        elif method == "DELETE":
            if name is None:
                label_selector, field_selector = self._selectors(route)
                self._send(200, store.delete_collection(rtype, namespace, label_selector, field_selector, dry_run))
                return
            options = body if isinstance(body, dict) else {}
            deleted = store.delete(
                rtype,
                namespace,
                name,
                dry_run,
                options.get("preconditions"),
                grace_period=grace_period(options, self.query),
                propagation=propagation_policy(options, self.query),
            )
            if rtype.custom or rtype.plural == "pods" or deleted["metadata"].get("deletionTimestamp"):
                self._send(200, deleted)
            else:
                details = {
                    "name": name,
                    **({"group": rtype.group} if rtype.group else {}),
                    "kind": rtype.plural,
                    "uid": deleted["metadata"]["uid"],
                }
                self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
        else:
            raise ApiError(405, f"the server does not allow this method on the requested resource ({method})", "MethodNotAllowed")

    @staticmethod
    def _serialized_in_place(target: Optional[tuple[str, str]]) -> bool:
        """Whether an answer converted to ``target`` (as ``negotiation.negotiate`` gives it) is serialized without
        changing the object: the store may then answer without copies (``Store._present``), serialized under its lock.
        A Table is built from a copy."""
        return target is None or target[0] != "Table"

    @staticmethod
    def _json(payload: Any) -> bytes:
        return json.dumps(payload).encode()

    def _converted(self, rtype: ResourceType, answer: dict, tables: bool = True, target: Any = "") -> dict:
        """The answer in the form the Accept header negotiates (``negotiation.py``, or ``target`` as it negotiated it):
        a ``meta.k8s.io`` Table (kubectl get asks for one), ``PartialObjectMetadata``/``PartialObjectMetadataList``
        (metadata-only clients), else as is."""
        if target == "":
            target = negotiation.negotiate(self._header("Accept", ""))
        if target is None:
            return answer
        kind, table_version = target
        if kind != "Table":
            return negotiation.as_metadata(rtype, answer, kind, table_version)
        if not tables:  # the answer of a write (kubectl asks no Table of one; not simulated)
            return answer
        crd = None
        if rtype.custom:
            crd = self.state.store.objects.get(CRD_TYPE.storage_key, {}).get(("", f"{rtype.plural}.{rtype.group}"))
        try:
            return table.to_table(rtype, answer, table_version, self.query.get("includeObject", ""), crd)
        except ValueError as error:
            raise bad_request(str(error)) from error

    # -- watch ---------------------------------------------------------------------------------

    def _chunk(self, payload: dict) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, route: Route) -> None:
        store = self.state.store
        rtype, namespace = route.rtype, route.namespace
        label_selector, field_selector = self._selectors(route)
        if route.name is not None:
            field_selector = [*field_selector, *parse_field_selector(f"metadata.name={route.name}", rtype.plural)]
        try:
            timeout = float(self.query.get("timeoutSeconds") or 1800)
        except ValueError as error:
            raise bad_request(f"timeoutSeconds must be a number: {error}") from error
        requested = self.query.get("resourceVersion", "")
        send_initial = self.query.get("sendInitialEvents") == "true" or requested in ("", "0")
        bookmarks = self.query.get("allowWatchBookmarks") == "true"

        def selected(obj: Optional[dict]) -> bool:
            if obj is None:
                return False
            metadata = obj.get("metadata") or {}
            if rtype.namespaced and namespace and metadata.get("namespace") != namespace:
                return False
            return labels_match(label_selector, metadata.get("labels")) and fields_match(field_selector, obj)

        # a metadata-only watch (client-go's metadata informers): each event's object as PartialObjectMetadata
        target = negotiation.negotiate(self._header("Accept", ""))
        metadata_version = target[1] if target is not None and target[0] == "PartialObjectMetadata" else None

        def present(obj: dict) -> dict:
            if metadata_version is not None:
                return negotiation.partial(clone(obj), metadata_version)
            out = clone(obj)
            out["apiVersion"], out["kind"] = rtype.group_version, rtype.kind
            return out

        with store.lock:
            if requested not in ("", "0") and not requested.isdigit():
                raise bad_request(f"resourceVersion {requested!r} is not valid")
            since = store.resource_version if requested in ("", "0") else int(requested)
            initial = []
            if send_initial:
                initial = [present(obj) for key, obj in sorted(store.objects.get(rtype.storage_key, {}).items()) if selected(obj)]
            expired = requested not in ("", "0") and since < store.oldest_watchable and not send_initial
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self._code = 200
        try:
            if expired:
                status = ApiError(410, f"too old resource version: {since} ({store.oldest_watchable})", "Expired").status()
                self._chunk({"type": "ERROR", "object": status})
                return
            for obj in initial:
                self._chunk({"type": "ADDED", "object": obj})
            if self.query.get("sendInitialEvents") == "true" and bookmarks:
                mark = {
                    "kind": rtype.kind,
                    "apiVersion": rtype.group_version,
                    "metadata": {"resourceVersion": str(since), "annotations": {"k8s.io/initial-events-end": "true"}},
                }
                self._chunk({"type": "BOOKMARK", "object": mark})
            deadline = time.monotonic() + timeout
            while not self.state.stopping.is_set():
                with store.lock:
                    pending = [e for e in store.events if e.resource_version > since and e.storage_key == rtype.storage_key]
                    if not pending:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        store.changed.wait(min(remaining, 0.5))
                        continue
                for event in pending:
                    since = event.resource_version
                    now_in, was_in = selected(event.obj), selected(event.old)
                    if event.type == "ADDED" and now_in:
                        self._chunk({"type": "ADDED", "object": present(event.obj)})
                    elif event.type == "DELETED" and (was_in or now_in):
                        self._chunk({"type": "DELETED", "object": present(event.obj)})
                    elif event.type == "MODIFIED":
                        if now_in and was_in:
                            self._chunk({"type": "MODIFIED", "object": present(event.obj)})
                        elif now_in:
                            self._chunk({"type": "ADDED", "object": present(event.obj)})
                        elif was_in:
                            self._chunk({"type": "DELETED", "object": present(event.obj)})
        finally:
            with contextlib.suppress(OSError):
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

    # -- admin ---------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, raw: bytes) -> None:
        state = self.state
        action = path[len(ADMIN_PREFIX) :]
        try:
            body = json.loads(raw) if raw and method in ("POST", "PUT") and action != "objects" else None
        except ValueError as error:
            self._error(bad_request(f"admin body is not JSON: {error}"))
            return
        try:
            if action == "faults" and method == "POST":
                if not body.get("dropResponse") and not body.get("code"):
                    raise KeyError("code (or dropResponse: true)")
                fault = Fault(
                    int(body.get("code") or 0),
                    int(body.get("count", 1)),
                    body.get("method"),
                    body.get("path"),
                    bool(body.get("dropResponse")),
                )
                with state.lock:
                    state.faults.append(fault)
                self._send(200, {"faults": [dataclasses.asdict(f) for f in state.faults]})
            elif action == "faults" and method == "DELETE":
                with state.lock:
                    state.faults.clear()
                self._send(200, {"faults": []})
            elif action == "faults":
                with state.lock:
                    self._send(200, {"faults": [dataclasses.asdict(f) for f in state.faults]})
            elif action == "interpose" and method == "POST":
                other = Interposition(
                    count=int(body.get("count", 1)),
                    method=body.get("method"),
                    path=body.get("path"),
                    request=dict(body["request"]),
                    skip=int(body.get("skip", 0)),
                )
                with state.lock:
                    state.interpositions.append(other)
                self._send(200, {"interpositions": [dataclasses.asdict(item) for item in state.interpositions]})
            elif action == "interpose" and method == "DELETE":
                with state.lock:
                    state.interpositions.clear()
                self._send(200, {"interpositions": []})
            elif action == "tokens" and method in ("POST", "PUT"):
                accepted = body.get("accepted")
                state.accepted_tokens = None if accepted is None else {str(token) for token in accepted}
                self._send(200, {"accepted": None if accepted is None else sorted(state.accepted_tokens)})
            elif action == "tokens" and method == "DELETE":
                state.accepted_tokens = None
                self._send(200, {"accepted": None})
            elif action == "latency" and method in ("POST", "PUT"):
                state.latency = float(body.get("seconds", 0))
                self._send(200, {"seconds": state.latency})
            elif action == "counters" and method == "DELETE":
                with state.lock:
                    state.counters.clear()
                    state.requests.clear()
                    state.counted_since = time.time()
                self._send(200, {})
            elif action == "counters":
                with state.lock:
                    self._send(200, dict(state.counters))
            elif action == "requests":
                with state.lock:
                    self._send(200, list(state.requests))
            elif action == "controller" and method in ("POST", "PUT"):
                state.store.ready_controller = bool(body.get("ready"))
                self._send(200, {"ready": state.store.ready_controller})
            elif action == "version" and method in ("POST", "PUT"):
                state.version = str(body["gitVersion"])
                self._send(200, state.version_info())
            elif action == "reset" and method == "POST":
                state.store.reset()
                state.version, state.store.ready_controller = state.initial
                with state.lock:
                    state.faults.clear()
                    state.interpositions.clear()
                    state.counters.clear()
                    state.requests.clear()
                    state.latency = 0.0
                    state.accepted_tokens = None
                self._send(200, {"resourceVersion": str(state.store.resource_version)})
            elif action == "snapshot" and method == "POST":
                state.store.snapshot()
                self._send(200, {"resourceVersion": str(state.store.resource_version)})
            elif action == "objects" and method == "POST":
                loaded = load_documents(state.store, raw.decode())
                self._send(200, {"loaded": loaded})
            else:
                self._error(ApiError(404, f"no admin action {method} {action!r}"))
        except ApiError as error:
            self._error(error)
        except (KeyError, TypeError, ValueError) as error:
            self._error(bad_request(f"admin {action}: {type(error).__name__}: {error}"))


def documents_from_yaml(text: str) -> list[dict]:
    """Objects of a YAML stream; ``kind: List`` documents contribute their items."""
    objects = []
    for document in yaml.safe_load_all(text):
        if not document:
            continue
        if isinstance(document, list):
            objects.extend(document)
        elif document.get("kind") == "List" or (document.get("kind", "").endswith("List") and "items" in document):
            objects.extend(document.get("items") or [])
        else:
            objects.append(document)
    return objects


def load_documents(store: Store, text: str) -> int:
    return load_objects(store, documents_from_yaml(text))


def load_objects(store: Store, objects: list[dict]) -> int:
    # CRDs and namespaces first, so that what depends on them can be stored.
    order = {"CustomResourceDefinition": 0, "Namespace": 1}
    for obj in sorted(objects, key=lambda o: order.get(o.get("kind", ""), 2)):
        store.load(obj)
    return len(objects)


class KubeAPIServer:
    """A test Kubernetes API server on 127.0.0.1, in background threads of this process.

    ``with KubeAPIServer(fixtures=[...]) as server: server.write_kubeconfig(path)``
    """

    def __init__(
        self,
        port: int = 0,
        *,
        version: str = DEFAULT_VERSION,
        fixtures: tuple[Any, ...] = (),
        ready_controller: bool = False,
        tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
    ) -> None:
        self.state = ServerState(version, ready_controller)
        for fixture in fixtures:
            if isinstance(fixture, (str, Path)):
                load_documents(self.state.store, Path(fixture).read_text())
            else:
                load_objects(self.state.store, list(fixture))
        self.state.store.snapshot()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.tls = bool(tls_cert)
        if tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.ca_cert = tls_cert
        self.state.url = self.url
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def store(self) -> Store:
        return self.state.store

    def start(self) -> KubeAPIServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=f"kubeapi-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.stopping.set()
        with self.state.store.lock:
            self.state.store.changed.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> KubeAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, context: str = "kubeapi-test") -> dict:
        cluster: dict[str, Any] = {"server": self.url}
        if self.tls and self.ca_cert:
            cluster["certificate-authority"] = str(Path(self.ca_cert).resolve())
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": {"token": TOKEN}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(self, path: Any, context: str = "kubeapi-test") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig(context), sort_keys=False))
        path.chmod(0o600)
        return path
