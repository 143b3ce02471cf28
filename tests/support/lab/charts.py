"""The real charts the lab installs, and where they come from.

The lab's inventory (``inventory/lab/group_vars/all/lab.yml``) points each device stack role at a chart
package ``<name>-<version>.tgz`` in ``KUBEGPU_CHARTS_DIR``, with the name, version and repository of
that role's defaults (so the lab installs what a user of the role gets). The directory is:

1. ``KUBEGPU_CHARTS_DIR`` when set (``make test`` and ``make demo`` set it to ``../shared/upstream/charts``
   when that exists), which must then hold the package; else
2. ``.cache/charts``, where a missing package is fetched from the role's real repository with
   ``helm pull`` (when that repository is reachable).

Otherwise ``ensure_charts`` raises ``ChartsError`` naming the chart, its version and both ways to
provide it, before the lab changes anything (``python -m tests.support.lab charts``, the first step of
``make demo``). Only the chart of the lab's device stack (the ``vgpu_scheduler`` role: HAMi) is
required; the others (``STACK_ROLES``: NVIDIA's device plugin, the GPU Operator, the DRA driver
``dra-driver-nvidia-gpu``, whose default is an ``oci://`` reference pulled as such) are referenced for an
operator who switches ``kubegpu_device_plugin``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, NamedTuple, Optional

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CHARTS_ENV = "KUBEGPU_CHARTS_DIR"
CACHE = REPO_ROOT / ".cache" / "charts"
# the roles whose chart the lab must have: the lab's device stack
REQUIRED_ROLES = ("vgpu_scheduler",)
# every device stack role that installs a chart, each pointed at its package by inventory/lab
STACK_ROLES = ("vgpu_scheduler", "nvidia_device_plugin", "gpu_operator", "dra_driver")


class ChartsError(RuntimeError):
    pass


class Chart(NamedTuple):
    role: str
    name: str
    version: str
    repo_url: str  # a chart repository's URL, or the chart's own oci:// reference (dra_driver's)

    @property
    def package(self) -> str:
        """The file ``helm pull`` writes and the lab's inventory points at."""
        return f"{self.name}-{self.version}.tgz"

    @property
    def pull(self) -> list[str]:
        """The arguments of ``helm pull`` for this chart: an OCI chart by its reference, else by name and repository."""
        if self.repo_url.startswith("oci://"):
            return ["pull", self.repo_url, "--version", self.version]
        return ["pull", self.name, "--repo", self.repo_url, "--version", self.version]


def role_chart(role: str) -> Chart:
    """The chart a role installs by default: its ``<role>_chart_ref`` (``repo/name``, or an ``oci://`` reference,
    which is then also where it is pulled from), version and repository URL."""
    defaults = yaml.safe_load((REPO_ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    ref = defaults[f"{role}_chart_ref"]
    return Chart(
        role=role,
        name=ref.rsplit("/", 1)[-1],
        version=str(defaults[f"{role}_chart_version"]),
        repo_url=ref if ref.startswith("oci://") else defaults[f"{role}_chart_repo_url"],
    )


def _missing(chart: Chart, directory: Path, why: str) -> str:
    return (
        f"the lab needs the {chart.name} chart {chart.version} (role {chart.role}) as {directory / chart.package}: {why}. "
        f"Either set {CHARTS_ENV} to a directory that holds {chart.package} (a checkout beside shared/upstream: "
        f"{CHARTS_ENV}={REPO_ROOT.parent / 'shared' / 'upstream' / 'charts'}), or leave it unset and let the lab "
        f"fetch it into .cache/charts with `helm {' '.join(chart.pull)}` "
        f"({chart.repo_url} must be reachable)"
    )


def _pull(chart: Chart, helm: Path, directory: Path) -> Optional[str]:
    """``helm pull`` the chart into ``directory``; the error text when that fails."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="helm-") as home:
        env = {**os.environ, "HELM_CACHE_HOME": home, "HELM_CONFIG_HOME": home, "HELM_DATA_HOME": home}
        argv = [str(helm), *chart.pull]
        try:
            result = subprocess.run(
                [*argv, "--destination", str(directory)], capture_output=True, text=True, env=env, timeout=120, check=False
            )
        except subprocess.TimeoutExpired:
            return f"{' '.join(argv)} did not finish within 120 s"
    if result.returncode != 0 or not (directory / chart.package).is_file():
        return f"{' '.join(argv)} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-500:]}"
    return None


def ensure_charts(helm: Optional[Path] = None, charts: Optional[Iterable[Chart]] = None, cache: Path = CACHE) -> Path:
    """The charts directory, holding the package of each of ``charts`` (default: the charts of
    ``REQUIRED_ROLES``), pulled into ``cache`` when ``KUBEGPU_CHARTS_DIR`` is not set; ``ChartsError``
    when one cannot be had."""
    configured = os.environ.get(CHARTS_ENV)
    directory = Path(configured).resolve() if configured else cache
    for chart in charts if charts is not None else [role_chart(role) for role in REQUIRED_ROLES]:
        if (directory / chart.package).is_file():
            continue
        if configured:
            raise ChartsError(_missing(chart, directory, f"{CHARTS_ENV}={directory} does not hold it"))
        if helm is None:
            from tests.support.kube_clients import ensure_clients  # noqa: PLC0415 - only when a pull is needed

            helm = ensure_clients()["helm"]
        failure = _pull(chart, helm, directory)
        if failure:
            raise ChartsError(_missing(chart, directory, failure))
    return directory
