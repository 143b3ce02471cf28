"""A test Kubernetes API server for the test bench (never shipped: tests/ is left out of the build).

No real kube-apiserver can run on the test machines, so this is an honest stand-in: a real HTTP
server with discovery, OpenAPI, generic storage for built-in kinds and CRDs, resourceVersion
conflicts, selectors, the four patch types including server-side apply, dry runs, watches,
Kubernetes ``Status`` errors, fault injection and request counters. Real clients (kubectl, helm,
the kubernetes Python client) are run against it in tests/integration/test_kubeapi_*.py. What it
does not emulate is listed in README.md next to this file.
"""

from __future__ import annotations

from pathlib import Path

from .admin import AdminClient
from .nodes import generate_nodes, gpu_node
from .server import DEFAULT_VERSION, KubeAPIServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"

__all__ = ["DEFAULT_VERSION", "FIXTURES", "AdminClient", "KubeAPIServer", "generate_nodes", "gpu_node"]
