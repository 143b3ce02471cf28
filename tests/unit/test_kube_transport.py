"""What goes on the wire from the shared Kubernetes client (module_utils/_kube.py KubeClient.request), read by a plain
HTTP listener: the request target for an API server behind a path prefix (as Rancher's cluster proxy serves it,
``https://rancher/k8s/clusters/<id>``) and, through an HTTP proxy, the absolute form RFC 9112 section 3.2.2 requires
of a request sent to a proxy. The client sends most requests straight to the API server's connection pool and
proxied ones through urllib3's ProxyManager; both must put the same API path on the wire."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils._kube import KubeClient


class _Listener:
    """An HTTP/1.1 listener that answers every request with ``{}`` and records its request line and headers."""

    def __init__(self) -> None:
        seen: list[tuple[str, str, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen.append((self.command, self.path, {key.lower(): value for key, value in self.headers.items()}))
                body = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PATCH = _answer

            def log_message(self, *args: object) -> None:
                return

        self.seen = seen
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    server = _Listener()
    yield server
    server.close()


def _client(host: str, proxy: str | None = None) -> KubeClient:
    return KubeClient(
        host, {}, verify=False, ca_cert=None, client_cert=None, client_key=None, proxy=proxy, timeout=10, parallel=4
    )


def test_requests_keep_the_api_servers_path_prefix(listener):
    client = _client(f"http://127.0.0.1:{listener.port}/k8s/clusters/c-m-1/")
    assert client.request("GET", "/api/v1/nodes", what="list", query={"limit": 500, "continue": None}) == {}
    body = {"metadata": {"labels": {"gpu": "on"}}}
    client.request("PATCH", "/api/v1/nodes/gpu-1", what="patch", body=body, content_type="application/merge-patch+json")
    assert [(method, path) for method, path, _headers in listener.seen] == [
        ("GET", "/k8s/clusters/c-m-1/api/v1/nodes?limit=500"),
        ("PATCH", "/k8s/clusters/c-m-1/api/v1/nodes/gpu-1"),
    ]
    assert listener.seen[1][2]["content-type"] == "application/merge-patch+json"
    assert listener.seen[0][2]["host"] == f"127.0.0.1:{listener.port}"


def test_requests_from_many_threads_reuse_the_connections(listener):
    client = _client(f"http://127.0.0.1:{listener.port}")
    results = client.map(lambda name: client.request("GET", f"/api/v1/nodes/{name}", what=name), [f"n{i}" for i in range(40)])
    assert [error for _item, _result, error in results] == [None] * 40
    assert sorted(path for _method, path, _headers in listener.seen) == sorted(f"/api/v1/nodes/n{i}" for i in range(40))


def test_through_a_proxy_the_request_line_carries_the_absolute_url(listener):
    # the proxy is the listener; the API server's address is never connected to
    client = _client("http://api.cluster.invalid:6443/prefix", proxy=f"http://user:secret@127.0.0.1:{listener.port}")
    client.request("GET", "/version", what="version")
    method, target, headers = listener.seen[0]
    assert (method, target) == ("GET", "http://api.cluster.invalid:6443/prefix/version")
    assert headers["proxy-authorization"] == "Basic dXNlcjpzZWNyZXQ="  # base64 of user:secret, RFC 7617
