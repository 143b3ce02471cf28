"""Run one kubegpu.core role through the real ``ansible-playbook`` on the controller (localhost) against the
test API server, with an inventory of GPU hosts, and return every task result.

``run_role(kubeapi, "vgpu_scheduler", hosts={...}, variables={...}, check=True)`` writes an inventory whose
``gpu_nodes`` group holds ``hosts`` (host name -> host variables, e.g. ``kubegpu_default_runtime`` or
``kubegpu_node_name``), ``facts`` (host name -> ``ansible_facts``, e.g. ``{"gpu": ...}`` as the real
gpu_facts returned them) made those hosts' facts first (``set_fact`` with ``delegate_facts``, ``cacheable``), as
play 1 of site.yml would leave them, and a play on localhost that sets the connection of the
``kubegpu.core.k8s`` action group through ``module_defaults`` (as ``playbooks/cluster.yml`` does) and runs the
role. The results come from tests/support/callbacks/result_file.py, so tests see what a playbook registers.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import typing as t
from pathlib import Path

from tests.support.adhoc import BIN, REPO_ROOT, ansible_env


class RoleRun(t.NamedTuple):
    rc: int
    results: list[dict[str, t.Any]]  # {"status", "task", "host", "result"} in the order the tasks ran
    stdout: str
    stderr: str

    @property
    def failed(self) -> list[dict[str, t.Any]]:
        return [entry for entry in self.results if entry["status"] in ("failed", "unreachable")]

    @property
    def changed(self) -> list[str]:
        return [entry["task"] for entry in self.results if entry["result"].get("changed")]

    def task(self, name: str) -> dict[str, t.Any]:
        """The result of the last run of the task whose name ends with ``name``."""
        found = [entry for entry in self.results if entry["task"].endswith(name)]
        if not found:
            raise AssertionError(f"no task {name!r} ran; tasks: {[entry['task'] for entry in self.results]}")
        return found[-1]

    @property
    def message(self) -> str:
        """The failure message of the failed task (empty when none failed)."""
        return "\n".join(str(entry["result"].get("msg", "")) for entry in self.failed)


def run_role(
    kubeapi: t.Any,
    role: str,
    *,
    hosts: dict[str, dict[str, t.Any]] | None = None,
    facts: dict[str, dict[str, t.Any]] | None = None,
    variables: dict[str, t.Any] | None = None,
    check: bool = False,
    diff: bool = False,
    env: dict[str, str] | None = None,
) -> RoleRun:
    inventory = {
        "all": {
            "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python")}},
            "children": {"gpu_nodes": {"hosts": hosts or {}}},
        }
    }
    play = [
        {
            "name": f"kubegpu.core.{role} (test)",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "module_defaults": {"group/kubegpu.core.k8s": {"kubeconfig": str(kubeapi.kubeconfig)}},
            "pre_tasks": [
                {
                    "name": f"Facts of {host}",
                    "ansible.builtin.set_fact": {**host_facts, "cacheable": True},
                    "delegate_to": host,
                    "delegate_facts": True,
                }
                for host, host_facts in (facts or {}).items()
            ],
            "roles": [{"role": f"kubegpu.core.{role}"}],
        }
    ]
    with tempfile.TemporaryDirectory(prefix="kubegpu-role-") as scratch:
        root = Path(scratch)
        (root / "inventory.json").write_text(json.dumps(inventory))
        (root / "play.json").write_text(json.dumps(play))
        (root / "vars.json").write_text(json.dumps(variables or {}))
        result_file = root / "results.jsonl"
        run_env = ansible_env(
            {
                "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "tests" / "support" / "callbacks"),
                "ANSIBLE_CALLBACKS_ENABLED": "result_file",
                "KUBEGPU_RESULT_FILE": str(result_file),
                **(env or {}),
            }
        )
        argv = [str(BIN / "ansible-playbook"), "-i", str(root / "inventory.json"), "-e", f"@{root / 'vars.json'}"]
        argv += [str(root / "play.json")]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        proc = subprocess.run(argv, capture_output=True, text=True, env=run_env, cwd=REPO_ROOT, check=False)
        lines = result_file.read_text().splitlines() if result_file.exists() else []
    return RoleRun(proc.returncode, [json.loads(line) for line in lines], proc.stdout, proc.stderr)
