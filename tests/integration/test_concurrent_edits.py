"""Concurrent runs of containerd_runtime and docker_runtime on one file keep every change.

Six real ``ansible`` runs of the module start at once, each adding its own runtime to
the same file; the file must end with all six (without the lock of
``_files.locked``, an flock on the file's directory, the last writer wins and most of them are lost: containerd's
``config dump`` of the candidate leaves a wide window between read and write).
The lock itself is then shown three ways: check mode takes none and changes
nothing; a real run waits for it at most ``lock_timeout`` and fails naming the
file; once it is free the run changes the file, and a re-run changes nothing.

Nothing is simulated: containerd is Debian bookworm's (1.6) unpacked by
tests/support/debs.py; daemon.json is read back as JSON. The other holder of the
lock is this test process, taking the same ``flock`` another run would.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomlkit

from tests.support import debs
from tests.support.adhoc import ModuleRun, run_module

pytestmark = pytest.mark.slow

RUNS = 6
CRI = '"io.containerd.grpc.v1.cri"'
CONFIG = f"""version = 2

[plugins.{CRI}.containerd]
  default_runtime_name = "runc"

  [plugins.{CRI}.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
"""


@pytest.fixture(scope="module")
def containerd() -> str:
    return str(debs.fetch("containerd", "bookworm") / "usr" / "bin" / "containerd")


def all_at_once(module: str, argsets: list[dict[str, t.Any]]) -> list[ModuleRun]:
    with ThreadPoolExecutor(max_workers=len(argsets)) as pool:
        return list(pool.map(lambda args: run_module(module, args), argsets))


def dumped_runtimes(containerd: str, path: Path) -> set[str]:
    proc = subprocess.run([containerd, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=True)
    return set(tomlkit.parse(proc.stdout).unwrap()["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"])


def test_six_concurrent_containerd_runs_each_keep_their_runtime(tmp_path, containerd):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    names = [f"gpu-{index}" for index in range(RUNS)]
    runs = all_at_once(
        "kubegpu.core.containerd_runtime",
        [{"path": str(path), "name": name, "binary_name": f"/usr/bin/{name}", "containerd_binary": containerd} for name in names],
    )
    assert [run.failed for run in runs] == [False] * RUNS, [run.result.get("msg") for run in runs]
    assert all(run.changed for run in runs)
    assert dumped_runtimes(containerd, path) == {"runc", *names}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"], "a temporary file was left behind"


def test_six_concurrent_docker_runs_each_keep_their_runtime(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{\n  "log-driver": "journald"\n}\n')
    names = [f"gpu-{index}" for index in range(RUNS)]
    runs = all_at_once(
        "kubegpu.core.docker_runtime", [{"path": str(path), "name": name, "runtime_path": f"/usr/bin/{name}"} for name in names]
    )
    assert [run.failed for run in runs] == [False] * RUNS, [run.result.get("msg") for run in runs]
    data = json.loads(path.read_text())
    assert data["runtimes"] == {name: {"path": f"/usr/bin/{name}"} for name in names}
    assert data["log-driver"] == "journald"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"], "a temporary file was left behind"


class HeldLock:
    """The lock another run would hold on ``path``: the same flock on the file's directory."""

    def __init__(self, path: Path) -> None:
        self.directory = path.parent
        self.fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        os.close(self.fd)


@pytest.mark.parametrize(
    "case",
    [
        ("kubegpu.core.containerd_runtime", "config.toml", CONFIG, {"binary_name": "/usr/bin/nvidia-container-runtime"}),
        ("kubegpu.core.docker_runtime", "daemon.json", "{}\n", {"runtime_path": "/usr/bin/nvidia-container-runtime"}),
    ],
    ids=["containerd", "docker"],
)
def test_a_held_lock_is_waited_for_at_most_lock_timeout(tmp_path, containerd, case):
    module, name, content, args = case
    path = tmp_path / name
    path.write_text(content)
    args = {"path": str(path), "name": "nvidia", "lock_timeout": 1, **args}
    if module.endswith("containerd_runtime"):
        args["containerd_binary"] = containerd

    held = HeldLock(path)
    try:
        # check mode takes no lock: it reports the change while another run holds it
        check = run_module(module, args, check=True)
        assert not check.failed and check.changed, check.result
        assert path.read_text() == content
        started = time.monotonic()
        blocked = run_module(module, args)
        assert blocked.failed
        assert f"{path} is being edited by another run" in blocked.result["msg"]
        assert f"held the lock on {held.directory} for more than lock_timeout=1 seconds" in blocked.result["msg"]
        assert time.monotonic() - started >= 1
        assert path.read_text() == content
    finally:
        held.release()

    real = run_module(module, args)
    assert not real.failed and real.changed, real.result
    assert "nvidia" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "a file was left behind"
    again = run_module(module, args)
    assert not again.failed and not again.changed, again.result
