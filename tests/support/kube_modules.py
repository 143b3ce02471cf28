"""Helpers of the Kubernetes module tests: run a module against the test API server, read its request log."""

from __future__ import annotations

import json
import typing as t
import urllib.error
import urllib.request

from tests.support.adhoc import ModuleRun, run_module

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def run_kube_module(kubeapi: t.Any, module: str, args: dict[str, t.Any], **kwargs: t.Any) -> ModuleRun:
    """``run_module`` with the server's kubeconfig (unless ``args`` names a connection of its own)."""
    connection = {"kubeconfig": str(kubeapi.kubeconfig)}
    if any(key in args for key in ("kubeconfig", "host")):
        connection = {}
    return run_module(f"kubegpu.core.{module}", {**connection, **args}, **kwargs)


def writes(kubeapi: t.Any) -> list[dict]:
    """Every write request the server has logged since the last reset."""
    return [entry for entry in kubeapi.admin.requests() if entry["method"] in WRITE_METHODS]


def node_labels(kubeapi: t.Any, name: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{kubeapi.url}/api/v1/nodes/{name}", timeout=10) as response:
        return json.loads(response.read())["metadata"].get("labels") or {}


def get_object(kubeapi: t.Any, path: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{kubeapi.url}{path}", timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def label_nodes(kubeapi: t.Any, names: t.Iterable[str], labels: dict[str, str]) -> None:
    """Sets ``labels`` on the nodes ``names`` behind the roles' back (a merge patch straight to the server), then
    resets the request counters, so a test counts only the writes of what it runs next."""
    for name in names:
        request = urllib.request.Request(
            f"{kubeapi.url}/api/v1/nodes/{name}",
            data=json.dumps({"metadata": {"labels": labels}}).encode(),
            method="PATCH",
            headers={"Content-Type": "application/merge-patch+json"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
    kubeapi.admin.reset_counters()


def patch_node(kubeapi: t.Any, name: str, patch: dict) -> None:
    """Sets up a Node's state behind a role's back: a JSON merge patch straight to the test API server."""
    request = urllib.request.Request(
        f"{kubeapi.url}/api/v1/nodes/{name}",
        data=json.dumps(patch).encode(),
        method="PATCH",
        headers={"Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
