# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: writes every task result, whole (``diff`` included), as a JSON
line to the file named by ``KUBEGPU_RESULT_FILE``, with the name of the play it ran in and the seconds from the task's
start to this result (what the task cost within the run, without ansible-playbook's own start). Lets tests and
benchmarks read what a module returned through real ``ansible``/``ansible-playbook`` runs (ansible-core has no
JSON callback of its own)."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: result_file
type: aggregate
short_description: write task results as JSON lines (kubegpu.core tests only)
description:
  - Writes each task result to the file named by the environment variable KUBEGPU_RESULT_FILE.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "result_file"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._play = ""
        self._started: dict[str, float] = {}  # task uuid -> when it started

    def v2_playbook_on_play_start(self, play) -> None:
        self._play = play.get_name()

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._started[task._uuid] = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self._started[task._uuid] = time.monotonic()

    def _write(self, status: str, result) -> None:
        path = os.environ.get("KUBEGPU_RESULT_FILE")
        if not path:
            return
        record = {
            "status": status,
            "task": result.task_name,
            "host": result._host.get_name(),
            "play": self._play,
            "seconds": round(time.monotonic() - self._started.get(result._task._uuid, time.monotonic()), 3),
            "result": result._result,
        }
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    def v2_runner_on_ok(self, result) -> None:
        self._write("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._write("failed", result)

    def v2_runner_on_skipped(self, result) -> None:
        self._write("skipped", result)

    def v2_runner_on_unreachable(self, result) -> None:
        self._write("unreachable", result)
