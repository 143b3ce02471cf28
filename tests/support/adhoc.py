"""Run one kubegpu.core module through the real ``ansible`` command and return its result.

``run_module("kubegpu.core.docker_runtime", {...}, check=True, diff=True)`` runs
``ansible localhost -m MODULE -a JSON`` with this checkout's ansible.cfg and reads
the whole result (``diff`` included) that ``tests/support/callbacks/result_file.py``
wrote, so tests see exactly what a playbook would register.

Variables that steer the test bench (the fake NVML library and its scenario) are
never inherited from the caller's shell: a test names them in ``env``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_ISOLATED = ("LD_LIBRARY_PATH", "FAKE_NVML_SCENARIO", "FAKE_NVML_CALL_LOG")


class ModuleRun(t.NamedTuple):
    status: str  # ok, failed, skipped, unreachable
    result: dict[str, t.Any]
    stdout: str
    stderr: str

    @property
    def failed(self) -> bool:
        return self.status == "failed" or bool(self.result.get("failed"))

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an ``ansible``/``ansible-playbook`` run over this checkout."""
    env = {key: value for key, value in os.environ.items() if key not in _ISOLATED}
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }
    )
    env.update(extra or {})
    return env


def run_module(
    module: str,
    args: dict[str, t.Any] | None = None,
    *,
    check: bool = False,
    diff: bool = False,
    interpreter: str | None = None,
    env: dict[str, str] | None = None,
) -> ModuleRun:
    """``interpreter`` runs the module with another Python on the target, as a node's own would;
    ``env`` adds variables for the module (e.g. the fake NVML scenario)."""
    with tempfile.TemporaryDirectory(prefix="kubegpu-adhoc-") as scratch:
        result_file = Path(scratch) / "results.jsonl"
        run_env = ansible_env(
            {
                "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "tests" / "support" / "callbacks"),
                "ANSIBLE_CALLBACKS_ENABLED": "result_file",
                "KUBEGPU_RESULT_FILE": str(result_file),
                **(env or {}),
            }
        )
        argv = [str(BIN / "ansible"), "localhost", "-m", module, "-a", json.dumps(args or {})]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if interpreter:
            argv += ["-e", f"ansible_python_interpreter={interpreter}"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=run_env, cwd=REPO_ROOT, check=False)
        lines = result_file.read_text().splitlines() if result_file.exists() else []
    if len(lines) != 1:
        raise AssertionError(f"expected one result from {argv}, got {len(lines)}:\n{proc.stdout}\n{proc.stderr}")
    record = json.loads(lines[0])
    return ModuleRun(record["status"], record["result"], proc.stdout, proc.stderr)


def run_tasks(tasks: dict[str, tuple[str, dict[str, t.Any], dict[str, str] | None]]) -> dict[str, ModuleRun]:
    """Runs ``{task name: (module, args, environment)}`` as the tasks of one ``ansible-playbook`` run on
    localhost (``ignore_errors``, so every task runs) and returns each task's result by name: many module
    runs for the start-up cost of one."""
    play = [
        {
            "name": "kubegpu.core tests",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": name, module: args, "environment": environment or {}, "ignore_errors": True}
                for name, (module, args, environment) in tasks.items()
            ],
        }
    ]
    with tempfile.TemporaryDirectory(prefix="kubegpu-tasks-") as scratch:
        playbook = Path(scratch) / "play.yml"
        playbook.write_text(json.dumps(play))
        result_file = Path(scratch) / "results.jsonl"
        run_env = ansible_env(
            {
                "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "tests" / "support" / "callbacks"),
                "ANSIBLE_CALLBACKS_ENABLED": "result_file",
                "KUBEGPU_RESULT_FILE": str(result_file),
            }
        )
        argv = [str(BIN / "ansible-playbook"), str(playbook)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=run_env, cwd=REPO_ROOT, check=False)
        records = [json.loads(line) for line in result_file.read_text().splitlines()] if result_file.exists() else []
    runs = {record["task"]: ModuleRun(record["status"], record["result"], proc.stdout, proc.stderr) for record in records}
    if set(runs) != set(tasks):
        raise AssertionError(f"expected a result for each of {sorted(tasks)}, got {sorted(runs)}:\n{proc.stdout}\n{proc.stderr}")
    return runs


class PlaybookRun(t.NamedTuple):
    rc: int
    records: list[dict[str, t.Any]]  # every task result: status, task, host, result
    stdout: str
    stderr: str

    def result(self, task: str, host: str = "localhost") -> ModuleRun:
        """The one result of ``task`` (its name as the callback reports it; a role's task as ``role : name``) on ``host``."""
        found = [record for record in self.records if record["task"].endswith(task) and record["host"] == host]
        if len(found) != 1:
            raise AssertionError(f"expected one result of {task!r} on {host}, got {len(found)}:\n{self.stdout}\n{self.stderr}")
        return ModuleRun(found[0]["status"], found[0]["result"], self.stdout, self.stderr)

    @property
    def changed(self) -> list[str]:
        """The ``host: task`` of every result that reports a change."""
        return [f"{record['host']}: {record['task']}" for record in self.records if record["result"].get("changed")]

    @property
    def failed(self) -> list[dict[str, t.Any]]:
        return [record for record in self.records if record["status"] == "failed"]


def run_playbook(
    playbook: Path, inventory: Path, *, extra_vars: dict[str, t.Any] | None = None, check: bool = False, diff: bool = False
) -> PlaybookRun:
    """``ansible-playbook -i INVENTORY PLAYBOOK`` over this checkout, every task result recorded."""
    with tempfile.TemporaryDirectory(prefix="kubegpu-playbook-") as scratch:
        result_file = Path(scratch) / "results.jsonl"
        run_env = ansible_env(
            {
                "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "tests" / "support" / "callbacks"),
                "ANSIBLE_CALLBACKS_ENABLED": "result_file",
                "KUBEGPU_RESULT_FILE": str(result_file),
            }
        )
        argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)]
        if extra_vars:
            extra_file = Path(scratch) / "extra-vars.json"
            extra_file.write_text(json.dumps(extra_vars))
            argv += ["-e", f"@{extra_file}"]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        proc = subprocess.run(argv, capture_output=True, text=True, env=run_env, cwd=REPO_ROOT, check=False)
        records = [json.loads(line) for line in result_file.read_text().splitlines()] if result_file.exists() else []
    return PlaybookRun(proc.returncode, records, proc.stdout, proc.stderr)
