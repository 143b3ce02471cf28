"""Run one module through the real ``ansible`` command against localhost and return its result.

The checkout resolves as kubegpu.core through ansible.cfg; the oneline callback
prints ``localhost | STATUS => {json}``, which is parsed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Variables a test sets for the module; never inherited from the caller's shell.
_ISOLATED = ("LD_LIBRARY_PATH", "FAKE_NVML_SCENARIO", "FAKE_NVML_CALL_LOG")


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _ISOLATED}
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.oneline",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }
    )
    env.update(extra or {})
    return env


def run_module(
    module: str,
    args: dict | None = None,
    *,
    env: dict[str, str] | None = None,
    check: bool = False,
    python: str | None = None,
) -> tuple[str, dict]:
    """``(status, result)``: status is ``SUCCESS``, ``CHANGED`` or ``FAILED!``."""
    argv = [str(BIN / "ansible"), "localhost", "-m", module, "-a", json.dumps(args or {})]
    if check:
        argv.append("--check")
    if python:
        argv += ["-e", f"ansible_python_interpreter={python}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(env), cwd=REPO_ROOT, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("localhost | "):
            head, _sep, payload = line.partition(" => ")
            return head.removeprefix("localhost | ").strip(), json.loads(payload)
    raise AssertionError(f"no result from {' '.join(argv)} (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
