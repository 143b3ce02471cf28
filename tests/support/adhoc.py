"""Run one kubegpu.core module through the real ``ansible`` command and return its result.

``run_module("kubegpu.core.docker_runtime", {...}, check=True, diff=True)`` runs
``ansible localhost -m MODULE -a JSON`` with this checkout's ansible.cfg and reads
the whole result (``diff`` included) that ``tests/support/callbacks/result_file.py``
wrote, so tests see exactly what a playbook would register. Plays, roles and batches of
tasks run through ``ansible-playbook`` with the same callback: tests/support/role_runs.py.

Variables that steer the test bench (the fake NVML library and its scenario) are
never inherited from the caller's shell: a test names them in ``env``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_ISOLATED = ("LD_LIBRARY_PATH", "FAKE_NVML_SCENARIO", "FAKE_NVML_CALL_LOG", "FAKE_NVML_STATE")


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


def recording_env(result_file: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """``ansible_env`` with the test callback ``result_file`` on, writing every task result to ``result_file``."""
    return ansible_env(
        {
            "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "tests" / "support" / "callbacks"),
            "ANSIBLE_CALLBACKS_ENABLED": "result_file",
            "KUBEGPU_RESULT_FILE": str(result_file),
            **(extra or {}),
        }
    )


def read_records(result_file: Path) -> list[dict[str, t.Any]]:
    """The task results the callback wrote: ``{"status", "task", "host", "result"}`` in the order they came."""
    return [json.loads(line) for line in result_file.read_text().splitlines()] if result_file.exists() else []


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
        run_env = recording_env(result_file, env)
        argv = [str(BIN / "ansible"), "localhost", "-m", module, "-a", json.dumps(args or {})]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if interpreter:
            argv += ["-e", f"ansible_python_interpreter={interpreter}"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=run_env, cwd=REPO_ROOT, check=False)
        records = read_records(result_file)
    if len(records) != 1:
        raise AssertionError(f"expected one result from {argv}, got {len(records)}:\n{proc.stdout}\n{proc.stderr}")
    return ModuleRun(records[0]["status"], records[0]["result"], proc.stdout, proc.stderr)


def list_plays(playbook: str, cwd: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``ansible-playbook -i inventory/sample/hosts.yml PLAYBOOK --list-tasks`` as a user types it (a path relative to
    the checkout, or a collection playbook name the CLI resolves); the run and the names of its plays."""
    proc = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(REPO_ROOT / "inventory" / "sample" / "hosts.yml"),
            playbook if "/" not in playbook else str(REPO_ROOT / playbook),
            "--list-tasks",
        ],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=cwd,
        check=False,
    )
    return proc, re.findall(r"^\s*play #\d+ \([^)]*\): (.*?)\tTAGS", proc.stdout, flags=re.M)
