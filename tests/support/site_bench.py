"""The playbooks of kubegpu.core end to end on the test bench: GPU nodes whose facts come from the fake NVML
library, the test API server as their cluster, real helm.

``SiteBench(kubeapi, tmp_path, scenarios={"gpu-node-1": "v100x2", ...})`` writes an inventory with kubespray's
groups in which each GPU node is a ``role_runs.GpuHost`` (this machine, ``ansible_connection: local``, its
Python a wrapper loading the fake ``libnvidia-ml.so.1`` that answers that node's scenario; see
tests/support/role_runs.py). So the real ``playbooks/facts.yml`` gathers each node's facts with the real
``gpu_facts`` and pynvml, each node seeing its own GPUs, in the same ``ansible-playbook`` run as the playbooks
that read them. Simulated: the GPUs (fake NVML) and the cluster (test API server); the nodes' own set-up (node
Python, driver, toolkit) is not run, so the inventory says what container_toolkit would have set
(``kubegpu_default_runtime: nvidia``).

``bench.run("facts.yml", "cluster.yml", extra_vars={...}, check=True)`` runs them through
``role_runs.run_playbook`` (check mode with diff) and returns its ``PlaybookRun``.
"""

from __future__ import annotations

import os
import sys
import typing as t
from pathlib import Path

from tests.support.adhoc import REPO_ROOT
from tests.support.kube_clients import ensure_clients
from tests.support.role_runs import PLAYBOOKS, GpuHost, PlaybookRun, gpu_host_vars, helm_env, run_playbook

__all__ = ["CHARTS", "NODE_SCENARIOS", "PLAYBOOKS", "UPSTREAM_CHARTS", "PlaybookRun", "SiteBench"]

CHARTS = REPO_ROOT / "tests" / "support" / "charts"
# The real charts (../shared/upstream/charts; KUBEGPU_CHARTS_DIR names another place).
UPSTREAM_CHARTS = Path(os.environ.get("KUBEGPU_CHARTS_DIR") or REPO_ROOT.parent / "shared" / "upstream" / "charts")
# The three GPU nodes of tests/support/kubeapi/fixtures/gpu-nodes.yaml and their GPUs.
NODE_SCENARIOS = {"gpu-node-1": "v100x2", "gpu-node-2": "t4", "gpu-node-3": "h100x8"}


class SiteBench:
    def __init__(self, kubeapi: t.Any, workdir: Path, scenarios: dict[str, str] | None = None) -> None:
        self.kubeapi = kubeapi
        self.workdir = workdir
        self.scenarios = dict(scenarios or NODE_SCENARIOS)
        self.host_vars: dict[str, dict[str, t.Any]] = {name: {} for name in self.scenarios}
        self.helm = ensure_clients()["helm"] if kubeapi is not None else Path("helm")
        (workdir / "helm").mkdir(parents=True, exist_ok=True)

    def inventory(self) -> dict[str, t.Any]:
        nodes = {
            name: gpu_host_vars(name, GpuHost(scenario, vars=self.host_vars[name]), self.workdir / "hosts")
            for name, scenario in self.scenarios.items()
        }
        return {
            "all": {
                "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
                "children": {
                    "k8s_cluster": {"children": {"kube_control_plane": {"hosts": {}}, "kube_node": {"hosts": nodes}}},
                },
                "vars": {"ansible_connection": "local", "kubegpu_default_runtime": "nvidia"},
            }
        }

    def base_vars(self) -> dict[str, t.Any]:
        """The cluster as the test API server, the device stacks' charts as the real ones of ../shared/upstream
        (OpenFaaS': the local stand-in, no real one is at hand), no node set-up."""
        return {
            **({"kubegpu_kubeconfig": str(self.kubeapi.kubeconfig)} if self.kubeapi is not None else {}),
            "kubegpu_manage_node_python": False,
            "gpu_validate_report_dir": str(self.workdir / "report"),
            **{
                f"{role}_{key}": value
                for role, chart in {
                    "vgpu_scheduler": UPSTREAM_CHARTS / "hami-2.10.0.tgz",
                    "nvidia_device_plugin": UPSTREAM_CHARTS / "nvidia-device-plugin-0.20.0.tgz",
                    "gpu_operator": UPSTREAM_CHARTS / "gpu-operator-v26.7.0.tgz",
                    "dra_driver": UPSTREAM_CHARTS / "dra-driver-nvidia-gpu-0.4.1.tgz",
                    "openfaas_profile": CHARTS / "openfaas",
                }.items()
                for key, value in {"chart_ref": str(chart), "chart_repo_url": "", "chart_version": ""}.items()
            },
        }

    def run(
        self,
        *playbooks: str | Path | dict[str, t.Any],
        extra_vars: dict[str, t.Any] | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> PlaybookRun:
        """``playbooks``: a name of playbooks/ (``"facts.yml"``), a playbook file, or a play (a test's probe);
        ``env``: more environment for ansible-playbook (e.g. ``ANSIBLE_VERBOSITY``)."""
        return run_playbook(
            list(playbooks),
            self.inventory(),
            extra_vars={**self.base_vars(), **(extra_vars or {})},
            check=check,
            diff=check,
            env={**(helm_env(self.workdir / "helm") if self.kubeapi is not None else {}), **(env or {})} or None,
            cwd=self.workdir,
            timeout=900,
        )
