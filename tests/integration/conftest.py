"""Fixtures of the integration tests: the test Kubernetes API server and real kubectl/helm."""

from __future__ import annotations

from tests.support.kubeapi.pytest_fixtures import helm, kube_clients, kubeapi, kubeapi_server, kubectl  # noqa: F401
