"""Fixtures of the integration tests: the test Kubernetes API server and real kubectl/helm."""

from __future__ import annotations

from tests.support.kubeapi import pytest_fixtures

kubeapi_server = pytest_fixtures.kubeapi_server
kubeapi = pytest_fixtures.kubeapi
kube_clients = pytest_fixtures.kube_clients
kubectl = pytest_fixtures.kubectl
helm = pytest_fixtures.helm
