# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One runner for the command-line tools the modules wrap (helm, containerd,
nvidia-smi, ...). Private to the collection.

Commands are argv lists, never shell strings; every run captures rc, stdout and
stderr, and a failure becomes a ``KubeGPUError`` that quotes the command and
what it printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError


class CommandResult:
    __slots__ = ("argv", "rc", "stderr", "stdout")

    def __init__(self, argv: list[str], rc: int, stdout: str, stderr: str) -> None:
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def cmdline(self) -> str:
        return shlex.join(self.argv)

    def json(self) -> t.Any:
        """stdout parsed as JSON; a tool that printed something else is an error."""
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise KubeGPUError(
                f"`{self.cmdline}` did not print JSON ({exc}): {self.stdout[:200]!r}",
                cmd=self.cmdline,
                stdout=self.stdout,
                stderr=self.stderr,
            ) from exc

    def failure(self, what: str) -> KubeGPUError:
        """The error to raise when a command failed while doing ``what``."""
        message = (self.stderr or self.stdout).strip() or "(no output)"
        return KubeGPUError(
            f"{what}: `{self.cmdline}` exited with {self.rc}: {message}",
            cmd=self.cmdline,
            rc=self.rc,
            stdout=self.stdout,
            stderr=self.stderr,
        )


class CommandTimeout(KubeGPUError):
    """A command that did not finish within its time limit (it was killed)."""


# how long a killed command may take to let go of its output pipes; one stuck in the
# kernel (a wedged driver) may never do so, and is then left behind
KILL_GRACE_SECONDS = 2.0


def _run_bounded(
    argv: list[str], timeout: float, data: str | None, environ: dict[str, str], cwd: str | None
) -> tuple[int, str, str]:
    """``argv`` run in its own session, killed (the whole process group) after ``timeout``
    seconds; AnsibleModule.run_command has no time limit."""
    # run_command cannot bound the time or kill a process group: this is the one place that needs to
    process = subprocess.Popen(  # pylint: disable=ansible-bad-function
        argv,
        stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **environ},
        cwd=cwd,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(None if data is None else data.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # stuck in the kernel: it dies when it can
            process.communicate(timeout=KILL_GRACE_SECONDS)
        cmdline = shlex.join(argv)
        raise CommandTimeout(f"`{cmdline}` did not finish within {timeout:g} seconds and was killed", cmd=cmdline) from None
    return process.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")


class CommandRunner:
    """Runs argv lists through ``AnsibleModule.run_command``.

    ``binary`` may be a name looked up on PATH (and in ``extra_dirs``) or a path.
    """

    def __init__(self, module: t.Any, binary: str, *, extra_dirs: t.Sequence[str] = (), required: bool = True) -> None:
        self.module = module
        self.binary = binary
        if "/" in binary:
            self.path = binary if os.path.isfile(binary) and os.access(binary, os.X_OK) else None
        else:
            self.path = module.get_bin_path(binary, required=False, opt_dirs=list(extra_dirs))
        if required and not self.path:
            raise KubeGPUError(f"the command {binary!r} was not found on {_where(extra_dirs)}; install it or give its path")

    @property
    def available(self) -> bool:
        return self.path is not None

    def run(
        self,
        args: t.Sequence[str],
        *,
        check: bool = False,
        what: str | None = None,
        data: str | None = None,
        environ: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run ``binary args...``; with ``check`` a non-zero rc raises, naming ``what``.
        With ``timeout`` (seconds) a command still running then is killed, with the
        processes it started, and CommandTimeout is raised."""
        if self.path is None:
            raise KubeGPUError(f"the command {self.binary!r} is not available on this host")
        argv = [self.path, *[str(arg) for arg in args]]
        if timeout is not None:
            rc, stdout, stderr = _run_bounded(argv, timeout, data, environ or {}, cwd)
            result = CommandResult(argv, rc, stdout, stderr)
            if check and not result.ok:
                raise result.failure(what or f"running {self.binary}")
            return result
        rc, stdout, stderr = self.module.run_command(
            argv,
            data=data,
            binary_data=data is not None,
            environ_update=environ or {},
            cwd=cwd,
            check_rc=False,
            # argv is literal: no ~ or $VAR expansion of user-supplied values
            expand_user_and_vars=False,
        )
        result = CommandResult(argv, rc, stdout, stderr)
        if check and not result.ok:
            raise result.failure(what or f"running {self.binary}")
        return result


def _where(extra_dirs: t.Sequence[str]) -> str:
    return "PATH" + (f" or in {', '.join(extra_dirs)}" if extra_dirs else "")
