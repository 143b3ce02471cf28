"""The playbooks of kubegpu.core end to end on the test bench: GPU nodes whose facts come from the fake NVML
library, the test API server as their cluster, real helm.

``SiteBench(kubeapi, tmp_path, scenarios={"gpu-node-1": "v100x2", ...})`` writes an inventory with kubespray's
groups in which each GPU node is a host on this machine (``ansible_connection: local``) whose Python interpreter
is a small wrapper script: it exports ``LD_LIBRARY_PATH`` (the fake ``libnvidia-ml.so.1``) and
``FAKE_NVML_SCENARIO`` (that node's scenario) and runs the controller's Python. So the real
``playbooks/facts.yml`` gathers each node's facts with the real ``gpu_facts`` and pynvml, each node seeing its
own GPUs, in the same ``ansible-playbook`` run as the playbooks that read them. Simulated: the GPUs (fake NVML)
and the cluster (test API server); the nodes' own set-up (node Python, driver, toolkit) is not run, so the
inventory says what container_toolkit would have set (``kubegpu_default_runtime: nvidia``).

``bench.run("facts.yml", "cluster.yml", extra_vars={...}, check=True)`` returns a ``PlaybookRun`` with
ansible-playbook's exit code, output and every task result (tests/support/callbacks/result_file.py).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import typing as t
from pathlib import Path

import yaml

from tests.support import fake_nvml
from tests.support.adhoc import BIN, REPO_ROOT, ansible_env
from tests.support.kube_clients import ensure_clients

PLAYBOOKS = REPO_ROOT / "playbooks"
CHARTS = REPO_ROOT / "tests" / "support" / "charts"
# The three GPU nodes of tests/support/kubeapi/fixtures/gpu-nodes.yaml and their GPUs.
NODE_SCENARIOS = {"gpu-node-1": "v100x2", "gpu-node-2": "t4", "gpu-node-3": "h100x8"}


class PlaybookRun(t.NamedTuple):
    rc: int
    records: list[dict[str, t.Any]]
    stdout: str
    stderr: str

    @property
    def changed(self) -> list[str]:
        """``host: task`` of every result that reported a change (loop items included)."""
        found = []
        for record in self.records:
            result = record["result"]
            items = result.get("results") if isinstance(result.get("results"), list) else []
            if result.get("changed") or any(isinstance(item, dict) and item.get("changed") for item in items):
                found.append(f"{record['host']}: {record['task']}")
        return found

    @property
    def failures(self) -> list[str]:
        """The message of every failed task, with its host and task name."""
        messages = []
        for record in self.records:
            if record["status"] in ("failed", "unreachable"):
                result = record["result"]
                texts = [result.get("msg")] + [item.get("msg") for item in result.get("results") or [] if isinstance(item, dict)]
                messages.append(f"{record['host']}: {record['task']}: " + " ".join(str(text) for text in texts if text))
        return messages

    def explain(self) -> str:
        return f"rc={self.rc}\n{self.stdout[-6000:]}\n{self.stderr[-3000:]}"


class SiteBench:
    def __init__(self, kubeapi: t.Any, workdir: Path, scenarios: dict[str, str] | None = None) -> None:
        self.kubeapi = kubeapi
        self.workdir = workdir
        self.scenarios = dict(scenarios or NODE_SCENARIOS)
        self.host_vars: dict[str, dict[str, t.Any]] = {name: {} for name in self.scenarios}
        self.helm = ensure_clients()["helm"] if kubeapi is not None else Path("helm")
        (workdir / "helm").mkdir(parents=True, exist_ok=True)

    def interpreter(self, scenario: str) -> Path:
        """A Python that loads the fake NVML library answering ``scenario``."""
        wrapper = self.workdir / f"python-{scenario}"
        env = fake_nvml.environment(scenario)
        wrapper.write_text(
            "#!/bin/sh\n# test bench: this node's GPUs are the fake NVML scenario below\n"
            f"export LD_LIBRARY_PATH='{env['LD_LIBRARY_PATH']}'\n"
            f"export FAKE_NVML_SCENARIO='{env['FAKE_NVML_SCENARIO']}'\n"
            f"exec '{sys.executable}' \"$@\"\n"
        )
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        return wrapper

    def inventory(self) -> Path:
        nodes = {
            name: {"ansible_python_interpreter": str(self.interpreter(scenario)), **self.host_vars[name]}
            for name, scenario in self.scenarios.items()
        }
        data = {
            "all": {
                "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
                "children": {
                    "k8s_cluster": {"children": {"kube_control_plane": {"hosts": {}}, "kube_node": {"hosts": nodes}}},
                },
                "vars": {"ansible_connection": "local", "kubegpu_default_runtime": "nvidia"},
            }
        }
        path = self.workdir / "hosts.yml"
        path.write_text(yaml.safe_dump(data))
        return path

    def base_vars(self) -> dict[str, t.Any]:
        """The cluster as the test API server, the charts as the local test charts, no node set-up."""
        return {
            **({"kubegpu_kubeconfig": str(self.kubeapi.kubeconfig)} if self.kubeapi is not None else {}),
            "kubegpu_manage_node_python": False,
            "gpu_validate_report_dir": str(self.workdir / "report"),
            **{
                f"{role}_{key}": value
                for role, chart in {
                    "vgpu_scheduler": "hami",
                    "nvidia_device_plugin": "nvidia-device-plugin",
                    "gpu_operator": "gpu-operator",
                    "openfaas_profile": "openfaas",
                }.items()
                for key, value in {"chart_ref": str(CHARTS / chart), "chart_repo_url": "", "chart_version": ""}.items()
            },
        }

    def run(self, *playbooks: str, extra_vars: dict[str, t.Any] | None = None, check: bool = False) -> PlaybookRun:
        result_file = self.workdir / "results.jsonl"
        result_file.unlink(missing_ok=True)
        vars_file = self.workdir / "vars.json"
        vars_file.write_text(json.dumps({**self.base_vars(), **(extra_vars or {})}))
        helm_home = self.workdir / "helm"
        env = ansible_env(
            {
                "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "tests" / "support" / "callbacks"),
                "ANSIBLE_CALLBACKS_ENABLED": "result_file",
                "KUBEGPU_RESULT_FILE": str(result_file),
                "PATH": f"{self.helm.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "HELM_CACHE_HOME": str(helm_home / "cache"),
                "HELM_CONFIG_HOME": str(helm_home / "config"),
                "HELM_DATA_HOME": str(helm_home / "data"),
            }
        )
        # a name is one of playbooks/, a path any other playbook (a test's probe)
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.inventory()), *(str(PLAYBOOKS / name) for name in playbooks)]
        argv += ["-e", f"@{vars_file}"]
        if check:
            argv += ["--check", "--diff"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.workdir, check=False, timeout=900)
        records = [json.loads(line) for line in result_file.read_text().splitlines()] if result_file.exists() else []
        return PlaybookRun(proc.returncode, records, proc.stdout, proc.stderr)
