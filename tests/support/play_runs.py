"""Run a kubegpu.core role through the real ``ansible-playbook`` on the controller (localhost), against the test
API server, as playbooks/cluster.yml runs the cluster roles: ``module_defaults`` of ``group/kubegpu.core.k8s``
carry the kubeconfig, helm comes from ``.cache/bin`` with private config/cache/data directories.

``run_role(kubeapi, "openfaas_profile", {...}, check=True)`` returns a ``PlayRun``: ansible-playbook's exit code,
its output, and every task result as the test callback ``result_file`` recorded it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

from tests.support.adhoc import BIN, REPO_ROOT, ansible_env
from tests.support.kube_clients import ensure_clients


class PlayRun(t.NamedTuple):
    rc: int
    records: list[dict[str, t.Any]]
    stdout: str
    stderr: str

    @property
    def changed_tasks(self) -> list[str]:
        return [record["task"] for record in self.records if record["result"].get("changed")]

    @property
    def failed_tasks(self) -> list[dict[str, t.Any]]:
        return [record for record in self.records if record["status"] == "failed"]

    def result(self, task: str) -> dict[str, t.Any]:
        """The last result of the task of this name (for a task run per host or in a loop: the last one)."""
        found = [record["result"] for record in self.records if record["task"] == task]
        if not found:
            raise AssertionError(f"no result of task {task!r}; tasks: {[record['task'] for record in self.records]}")
        return found[-1]


def run_role(
    kubeapi: t.Any,
    role: str,
    role_vars: dict[str, t.Any] | None = None,
    *,
    check: bool = False,
    diff: bool = False,
    inventory: str | None = None,
    extra_vars: dict[str, t.Any] | None = None,
    workdir: Path | None = None,
    pre_plays: list[dict[str, t.Any]] | None = None,
) -> PlayRun:
    """One play on localhost (connection local, no facts) that runs ``kubegpu.core.<role>`` with ``role_vars``.
    ``inventory`` is an INI/YAML inventory text (hosts are never contacted: only their variables are read);
    ``workdir`` is ansible-playbook's working directory (default: a fresh temporary one); ``pre_plays`` run first
    (for example kubegpu.core.gpu_facts on the inventory's GPU hosts, as playbooks/facts.yml does)."""
    clients = ensure_clients()
    with tempfile.TemporaryDirectory(prefix="kubegpu-role-") as scratch_name:
        scratch = Path(scratch_name)
        play = [
            *(pre_plays or []),
            {
                "name": f"kubegpu.core.{role} (test)",
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "module_defaults": {"group/kubegpu.core.k8s": {"kubeconfig": str(kubeapi.kubeconfig)}},
                "roles": [{"role": f"kubegpu.core.{role}", "vars": role_vars or {}}],
            },
        ]
        playbook = scratch / "play.yml"
        playbook.write_text(json.dumps(play))
        hosts = scratch / "inventory.yml"
        hosts.write_text(inventory or "all:\n  hosts:\n    localhost:\n")
        result_file = scratch / "results.jsonl"
        env = ansible_env(
            {
                "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "tests" / "support" / "callbacks"),
                "ANSIBLE_CALLBACKS_ENABLED": "result_file",
                "KUBEGPU_RESULT_FILE": str(result_file),
                "PATH": f"{clients['helm'].parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "HELM_CACHE_HOME": str(scratch / "helm-cache"),
                "HELM_CONFIG_HOME": str(scratch / "helm-config"),
                "HELM_DATA_HOME": str(scratch / "helm-data"),
            }
        )
        # the controller's Python (the venv's, with the kubernetes library) runs the modules on localhost
        argv = [
            str(BIN / "ansible-playbook"),
            "-i",
            str(hosts),
            str(playbook),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        cwd = workdir or scratch
        env["PWD"] = str(cwd)  # as a shell sets it: relative paths of the play are taken from here
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=600)
        records = [json.loads(line) for line in result_file.read_text().splitlines()] if result_file.exists() else []
    return PlayRun(proc.returncode, records, proc.stdout, proc.stderr)
