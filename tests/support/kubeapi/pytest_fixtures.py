"""pytest fixtures for the test API server and the real kubectl/helm clients.

Expose them in a conftest.py, as tests/integration/conftest.py does::

    from tests.support.kubeapi import pytest_fixtures
    kubeapi = pytest_fixtures.kubeapi  # and kubeapi_server, kube_clients, kubectl, helm

``kubeapi`` is the one tests use: a server shared by the whole session (one per xdist worker),
reset before each test to its fixture state (the three GPU nodes of fixtures/gpu-nodes.yaml and
the default namespaces), with faults, latency, counters and the ready controller cleared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from ..kube_clients import ensure_clients
from .admin import AdminClient
from .server import KubeAPIServer

GPU_NODES = Path(__file__).resolve().parent / "fixtures" / "gpu-nodes.yaml"


@dataclasses.dataclass
class KubeAPI:
    """A running test API server: its URL, a kubeconfig file for it, and its admin API."""

    server: KubeAPIServer
    kubeconfig: Path
    admin: AdminClient

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def kubeapi_server(tmp_path_factory: pytest.TempPathFactory):
    """One server for the session, pre-populated with three GPU nodes."""
    with KubeAPIServer(fixtures=(GPU_NODES,)) as server:
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kubeapi") / "kubeconfig")
        yield KubeAPI(server, kubeconfig, AdminClient(server.url))


@pytest.fixture
def kubeapi(kubeapi_server: KubeAPI) -> KubeAPI:
    """The session's server, reset to its fixture state for this test."""
    kubeapi_server.admin.reset()
    return kubeapi_server


@pytest.fixture(scope="session")
def kube_clients() -> dict[str, Path]:
    """Real kubectl and helm (downloaded into .cache/bin on first use)."""
    return ensure_clients()


Runner = Callable[..., subprocess.CompletedProcess]


def _runner(binary: Path, base: list[str], env: dict[str, str]) -> Runner:
    def run(*args: str, check: bool = True, json_output: bool = False, input: str | None = None):
        result = subprocess.run(
            [str(binary), *base, *args], capture_output=True, text=True, env=env, input=input, timeout=120, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{binary.name} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        if json_output:
            return json.loads(result.stdout)
        return result

    return run


@pytest.fixture
def kubectl(kubeapi: KubeAPI, kube_clients: dict[str, Path], tmp_path: Path) -> Runner:
    """``kubectl(*args)`` against the reset server, with a private HOME and discovery cache."""
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(kubeapi.kubeconfig)}
    return _runner(
        kube_clients["kubectl"], ["--kubeconfig", str(kubeapi.kubeconfig), "--cache-dir", str(tmp_path / "kube-cache")], env
    )


@pytest.fixture
def helm(kubeapi: KubeAPI, kube_clients: dict[str, Path], tmp_path: Path) -> Runner:
    """``helm(*args)`` against the reset server, with private cache, config and data directories."""
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "KUBECONFIG": str(kubeapi.kubeconfig),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    return _runner(kube_clients["helm"], ["--kubeconfig", str(kubeapi.kubeconfig)], env)
