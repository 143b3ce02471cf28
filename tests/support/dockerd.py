"""The real dockerd 26.1 of Debian 13 (trixie) as the judge of a daemon.json.

``start(config_file, flags)`` runs Debian's own ``dockerd`` (package ``docker.io``,
with ``containerd`` and ``runc`` from the same suite, unpacked by
tests/support/debs.py) on that file and those extra command-line flags, in a
private temporary directory: its own ``--data-root``, ``--exec-root``,
``--pidfile`` and unix socket, no bridge, no iptables. It waits until the daemon
answers ``GET /info`` on the socket (or exits), stops it (SIGTERM, then SIGKILL
of its process group after a bounded wait), unmounts whatever it mounted under
the directory, removes the directory, and returns what the daemon reported: the
runtimes and the default runtime, or the error it exited with.

``with running(config_file, flags) as daemon:`` keeps it running for the block:
``daemon.report`` as above, ``daemon.environment`` the ``DOCKER_HOST`` and
``PATH`` (with Debian's ``docker`` client, package ``docker-cli``) under which
``docker info`` talks to it. Nothing is simulated; dockerd needs root.

Starting dockerd takes about three seconds: tests call this for a few cases only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import typing as t
from pathlib import Path

from tests.support import debs

SUITE = "trixie"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class Report(t.NamedTuple):
    started: bool
    runtimes: dict[str, t.Any]  # as GET /info reports them
    default_runtime: str | None
    log: str  # the daemon's output (its refusal when it did not start)

    @property
    def error(self) -> str:
        """The line with which dockerd refused to start ("failed to start daemon: ...")."""
        lines = [line for line in self.log.splitlines() if "failed to start daemon" in line or "unable to configure" in line]
        return lines[-1] if lines else self.log[-2000:]


def available() -> str | None:
    """None when dockerd can run here, else why not (for a skip)."""
    if os.geteuid() != 0:
        return "dockerd needs root"
    return None


def _path() -> str:
    roots = [debs.fetch(package, SUITE) for package in ("docker.io", "docker-cli", "containerd", "runc")]
    dirs = [str(root / sub) for root in roots for sub in ("usr/sbin", "usr/bin")]
    return os.pathsep.join([*dirs, os.environ.get("PATH", "/usr/bin:/bin")])


def version() -> str:
    env = dict(os.environ, PATH=_path())
    return subprocess.run(["dockerd", "--version"], capture_output=True, text=True, env=env, check=True).stdout.strip()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.socket_path)


def _info(socket_path: str) -> dict[str, t.Any] | None:
    connection = _UnixHTTPConnection(socket_path)
    try:
        connection.request("GET", "/info")
        response = connection.getresponse()
        if response.status != 200:
            return None
        return json.loads(response.read())
    except OSError:
        return None
    finally:
        connection.close()


def _mounts_under(directory: str) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        points = [line.split()[4] for line in handle]
    return [point for point in points if point == directory or point.startswith(directory + "/")]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT)
    # the daemon's own containerd runs in the process group dockerd leads; nothing of it may survive
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(STOP_TIMEOUT)


class Daemon(t.NamedTuple):
    report: Report
    environment: dict[str, str]  # DOCKER_HOST and PATH for the docker client


@contextlib.contextmanager
def running(config_file: str | Path, flags: t.Sequence[str] = ()) -> t.Iterator[Daemon]:
    """dockerd on ``config_file`` and ``flags`` for the ``with`` block; see the module docstring."""
    # a short directory: a unix socket path must stay under 108 bytes
    scratch = tempfile.mkdtemp(prefix="kgd-", dir="/tmp")
    socket_path = os.path.join(scratch, "docker.sock")
    log_path = os.path.join(scratch, "dockerd.log")
    argv = [
        "dockerd",
        f"--config-file={config_file}",
        f"--data-root={scratch}/data",
        f"--exec-root={scratch}/exec",
        f"--pidfile={scratch}/docker.pid",
        f"--host=unix://{socket_path}",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        *flags,
    ]
    path = _path()
    env = dict(os.environ, PATH=path)
    info = None
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and process.poll() is None:
                if os.path.exists(socket_path):
                    info = _info(socket_path)
                    if info is not None:
                        break
                time.sleep(0.1)
            text = Path(log_path).read_text(errors="replace")
            if info is None:
                report = Report(False, {}, None, text)
            else:
                report = Report(True, info.get("Runtimes") or {}, info.get("DefaultRuntime"), text)
            yield Daemon(report, {"DOCKER_HOST": f"unix://{socket_path}", "PATH": path})
        finally:
            _stop(process)
    finally:
        for point in reversed(_mounts_under(scratch)):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def start(config_file: str | Path, flags: t.Sequence[str] = ()) -> Report:
    """Start dockerd on ``config_file`` and ``flags``, ask it for its runtimes, stop it; see the module docstring."""
    with running(config_file, flags) as daemon:
        report = daemon.report
    return report
