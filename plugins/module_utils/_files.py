# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and atomically replacing a config file. Private to the collection.

A new version of a file is first written as a candidate next to the file (same
directory, so relative paths in it resolve the same way and the final rename
stays on one filesystem), can be checked there, and is then renamed over the
file with ``AnsibleModule.atomic_move``, which keeps the old file's mode, owner
and SELinux context.  A reader never sees a half-written file.

A new file gets mode 0644 whatever the umask.  A path that is a symbolic link
is edited through it: the link's target is replaced and the link stays.  A
dangling link is refused rather than followed, as its target may live on a
filesystem that is not mounted yet.

``locked`` serialises the read-modify-write of one file between runs of the
modules (two playbooks, overlapping AWX jobs): an advisory ``flock`` on the
file's directory.  The lock cannot be taken on the file itself, as the atomic
rename puts a new inode in its place: a second run that opened the old inode
would hold a lock nobody else waits for, and then edit stale content.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import tempfile
import time
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils._diff import text_diff
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

NEW_FILE_MODE = 0o644
# how often a waiting run tries the lock again
LOCK_POLL_SECONDS = 0.05


def target_of(path: str) -> str:
    """The file that holds ``path``'s content: ``path`` itself, or the file a
    symbolic link (or a chain of them) points to.  Refuses a dangling link or a loop."""
    if not os.path.islink(path):
        return path
    target = os.path.realpath(path)
    if not os.path.exists(target) or os.path.islink(target):
        try:
            pointing_to = os.readlink(path)
        except OSError:
            pointing_to = "?"
        raise KubeGPUError(
            f"{path} is a symbolic link to {pointing_to}, which does not exist (or is a loop of links); "
            "create the target file or replace the link with a file; nothing was changed"
        )
    return target


def read_text(path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise KubeGPUError(f"{path} is a directory, expected a file") from exc
    except OSError as exc:
        raise KubeGPUError(f"cannot read {path}: {exc.strerror}; nothing was changed") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise KubeGPUError(f"{path} is not UTF-8 text (line {line}); nothing was changed", line=line) from exc


def _make_directories(directory: str) -> None:
    """``directory`` and its missing parents, each 0755 whatever the umask."""
    missing = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for path in reversed(missing):
        os.mkdir(path)
        os.chmod(path, 0o755)


class Candidate:
    """A new version of ``path``, written to a temporary file.

    With ``scratch`` (check mode) the temporary file goes to the same directory
    when it exists, else to the system's temporary directory, and is only ever
    removed; otherwise the directory is created if needed and ``install()``
    renames the candidate over ``path``.  Use as a context manager: a candidate
    that was not installed is removed on exit.
    """

    def __init__(self, module: t.Any, path: str, text: str, *, scratch: bool = False) -> None:
        self.module = module
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            if scratch:
                directory = tempfile.gettempdir()
            else:
                try:
                    _make_directories(directory)
                except OSError as exc:
                    raise KubeGPUError(f"cannot create the directory {directory}: {exc.strerror}") from exc
        prefix = f".{os.path.basename(path)}."
        try:
            fd, self.name = tempfile.mkstemp(prefix=prefix, suffix=".kubegpu.tmp", dir=directory)
        except OSError as exc:
            if not scratch:
                raise KubeGPUError(f"cannot write a temporary file in {directory}: {exc.strerror}; nothing was changed") from exc
            # check mode as a user who may read but not write the directory
            fd, self.name = tempfile.mkstemp(prefix=prefix, suffix=".kubegpu.tmp")
        self.installed = False
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            os.unlink(self.name)
            raise KubeGPUError(f"cannot write {self.name}: {exc.strerror}; nothing was changed") from exc

    def __enter__(self) -> Candidate:
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        if not self.installed and os.path.exists(self.name):
            os.unlink(self.name)

    def install(self) -> None:
        """Renames the candidate over the file, keeping the file's mode and owner
        (a new file gets 0644, root's usual config file mode, whatever the umask).
        A symbolic link is kept: its target is replaced."""
        destination = target_of(self.path)
        existed = os.path.exists(destination)
        self.module.atomic_move(self.name, destination)
        self.installed = True
        if not existed:
            # atomic_move gives a new file 0666 less the umask (0600 under umask 077)
            try:
                os.chmod(destination, NEW_FILE_MODE)
            except OSError as exc:
                raise KubeGPUError(f"{destination} was written but its mode cannot be set to 0644: {exc.strerror}") from exc


def backup(module: t.Any, path: str) -> str | None:
    """A timestamped copy of ``path`` next to it (Ansible's usual backup name), or None
    when there is no file to back up."""
    if not os.path.exists(path):
        return None
    return module.backup_local(path)


# The options of a module that edits a configuration file in place (documented once in the
# doc fragment kubegpu.core._config_edit).
CONFIG_EDIT_ARG_SPEC: dict[str, dict] = {
    "backup": {"type": "bool", "default": False},
    "lock_timeout": {"type": "float", "default": 60},
}


def check_lock_timeout(timeout: float) -> float:
    """``lock_timeout`` when it is a number of seconds a run can wait; else KubeGPUError."""
    if timeout is None or not math.isfinite(timeout) or timeout < 0:
        raise KubeGPUError(f"lock_timeout={timeout!r} is not valid; give the seconds to wait for another run's lock (0 or more)")
    return timeout


@contextlib.contextmanager
def edit_lock(module: t.Any, path: str, timeout: float) -> t.Iterator[None]:
    """``locked`` for a module's read-modify-write of ``path``, except in check mode:
    check mode changes nothing on the host (it would create a missing directory to lock
    it) and never waits for a real run; its single read of a file that is only ever
    replaced by a rename sees one whole version of it."""
    if module.check_mode:
        yield
        return
    with locked(path, timeout):
        yield


def replace_file(
    module: t.Any,
    path: str,
    before: str | None,
    after: str,
    *,
    make_backup: bool = False,
    validate: t.Callable[[Candidate], None] | None = None,
) -> dict[str, t.Any]:
    """Replace ``path`` (text ``before``, None when missing) with ``after``, which differs.

    ``validate`` checks the candidate file and raises to refuse it, in check mode
    too; outside check mode the candidate is then installed, after an optional
    backup.  Returns the result keys of the change: ``changed``, ``diff`` in diff
    mode, ``backup_file`` when one was made.
    """
    target_of(path)  # a dangling link fails here, in check mode too
    changes: dict[str, t.Any] = {"changed": True}
    if module._diff:
        changes["diff"] = text_diff(before or "", after, path)
    if module.check_mode and validate is None:
        return changes
    with Candidate(module, path, after, scratch=module.check_mode) as candidate:
        if validate is not None:
            validate(candidate)
        if module.check_mode:
            return changes
        if make_backup:
            backup_file = backup(module, path)
            if backup_file:
                changes["backup_file"] = backup_file
        candidate.install()
    return changes


def lock_path(path: str) -> str:
    """What is locked for ``path``: the directory of the file that holds its content (a
    symbolic link's target), so runs editing it through different links share one lock."""
    return os.path.dirname(os.path.abspath(target_of(path)))


@contextlib.contextmanager
def locked(path: str, timeout: float) -> t.Iterator[str]:
    """Holds an exclusive advisory lock for ``path`` for the ``with`` block; yields the
    locked directory.

    The lock is an ``flock`` on the file's directory, created first if missing: the
    directory's inode stays while the file is replaced in it, and nothing is written to
    take the lock (no lock file left behind, no change to the directory, and it works
    where the directory is read-only).  Runs editing other files of the same directory
    wait for each other too.  Waits at most ``timeout`` seconds for another run to let
    go, then fails naming the file and the directory.  The lock goes when the block ends
    or the process dies, so a killed run never leaves the file locked.
    """
    directory = lock_path(path)
    existing = directory
    while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise KubeGPUError(
            f"cannot lock {directory} to edit {path}: {existing}: {os.strerror(errno.ENOTDIR)}; nothing was changed"
        )
    try:
        _make_directories(directory)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise KubeGPUError(f"cannot open the directory {directory} to lock {path}: {exc.strerror}; nothing was changed") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise KubeGPUError(
                        f"{path} is being edited by another run, which has held the lock on {directory} for more than "
                        f"lock_timeout={timeout:g} seconds; nothing was changed. Run again when it has finished, or "
                        "raise lock_timeout",
                        locked_directory=directory,
                    ) from None
                time.sleep(LOCK_POLL_SECONDS)
            except OSError as exc:
                raise KubeGPUError(
                    f"cannot lock {directory} to edit {path}: {exc.strerror} (flock); nothing was changed"
                ) from exc
        yield directory
    finally:
        os.close(fd)  # also lets go of the lock
