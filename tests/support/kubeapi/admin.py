"""Client of the test server's admin endpoints (``/_kubeapi/...``), usable from any process."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any, Optional


class AdminClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, action: str, body: Any = None, raw: Optional[bytes] = None) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(f"{self.url}/_kubeapi/{action}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/yaml" if raw is not None else "application/json")
        try:
            context = ssl._create_unverified_context() if self.url.startswith("https:") else None  # the bench's own certificate
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise RuntimeError(
                f"kubeapi admin {method} {action}: {error.code} {error.read().decode(errors='replace')}"
            ) from error

    def fail_next(self, count: int = 1, code: int = 500, method: Optional[str] = None, path: Optional[str] = None) -> None:
        """The next ``count`` requests (optionally: with this method, whose path matches this regex) fail with ``code``."""
        self._call("POST", "faults", {"code": code, "count": count, "method": method, "path": path})

    def drop_responses(self, count: int = 1, method: Optional[str] = None, path: Optional[str] = None) -> None:
        """The next ``count`` matching requests are served (a write is applied) but their answers are lost: the
        server closes the connection instead of answering, as when a connection resets after the write."""
        self._call("POST", "faults", {"count": count, "method": method, "path": path, "dropResponse": True})

    def interpose(
        self,
        request_method: str,
        request_path: str,
        body: Any = None,
        content_type: str = "application/merge-patch+json",
        *,
        method: Optional[str] = None,
        path: Optional[str] = None,
        count: int = 1,
        skip: int = 0,
    ) -> None:
        """Before the next ``count`` requests (optionally: with this method, whose path matches this regex;
        after letting ``skip`` of them through) are served, the server makes ``request_method request_path``
        with ``body`` against itself, as a concurrent writer would between a client's read and its write."""
        request = {"method": request_method, "path": request_path, "contentType": content_type, "body": body}
        self._call("POST", "interpose", {"count": count, "method": method, "path": path, "request": request, "skip": skip})

    def clear_interpositions(self) -> None:
        self._call("DELETE", "interpose")

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")["faults"]

    def accept_tokens(self, tokens: Optional[list[str]]) -> None:
        """Check bearer tokens (off until called, and after ``reset``): only these are accepted, any other request is
        refused 401 Unauthorized, as an expired or revoked token is; ``None`` turns checking off."""
        self._call("POST", "tokens", {"accepted": tokens})

    def set_latency(self, seconds: float) -> None:
        """Delay every API request by ``seconds``."""
        self._call("POST", "latency", {"seconds": seconds})

    def counters(self) -> dict[str, int]:
        """Requests served so far, keyed ``"<verb> <resource>"``, e.g. ``"patch nodes"``, ``"list nodes"``."""
        return self._call("GET", "counters")

    def requests(self) -> list[dict]:
        """The request log: method, path, query, verb, resource, code, contentType, userAgent, seconds, time (start,
        epoch), dropped (served but its answer lost, ``drop_responses``), token (the bearer token presented, or "")."""
        return self._call("GET", "requests")

    def reset_counters(self) -> None:
        """Empty the counters and the request log; a request that started before (a watch that ends later) stays out."""
        self._call("DELETE", "counters")

    def set_ready_controller(self, ready: bool) -> None:
        """Switch the controller doubles on or off (controllers.py: DaemonSets, Deployments, ReplicaSets, StatefulSets,
        Jobs, garbage collection; kubelet.py: scheduling and running Pods)."""
        self._call("POST", "controller", {"ready": ready})

    def set_version(self, git_version: str) -> None:
        """What ``/version`` answers, e.g. ``v1.25.4``."""
        self._call("POST", "version", {"gitVersion": git_version})

    def load(self, yaml_text: str) -> int:
        """Store the objects of a YAML stream as they are (status included); returns how many."""
        return self._call("POST", "objects", raw=yaml_text.encode())["loaded"]

    def snapshot(self) -> None:
        """Make the current objects the state ``reset()`` returns to."""
        self._call("POST", "snapshot")

    def reset(self) -> None:
        """Objects back to the snapshot; version and ready controller as started; faults, latency, counters, log cleared."""
        self._call("POST", "reset")
