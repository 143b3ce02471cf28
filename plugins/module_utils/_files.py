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
modules (two playbooks, overlapping AWX jobs): an advisory ``flock`` on a lock
file next to the file, ``<file>.kubegpu.lock``, there only while a run holds it.
The lock cannot be taken on the file itself, as the atomic rename puts a new
inode in its place: a second run that opened the old inode would hold a lock
nobody else waits for, and then edit stale content.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import tempfile
import time
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils._diff import text_diff
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

NEW_FILE_MODE = 0o644
LOCK_SUFFIX = ".kubegpu.lock"
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


def check_lock_timeout(timeout: float) -> float:
    """``lock_timeout`` when it is a number of seconds a run can wait; else KubeGPUError."""
    if timeout is None or not math.isfinite(timeout) or timeout < 0:
        raise KubeGPUError(f"lock_timeout={timeout!r} is not valid; give the seconds to wait for another run's lock (0 or more)")
    return timeout


@contextlib.contextmanager
def edit_lock(module: t.Any, path: str, timeout: float) -> t.Iterator[None]:
    """``locked`` for a module's read-modify-write of ``path``, except in check mode:
    check mode changes nothing on the host (not even a lock file, and a user who may only
    read can run it), and its single read of a file that is only ever replaced by a
    rename sees one whole version of it."""
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
    """The lock file of ``path``: next to the file that holds its content (a symbolic
    link's target), so runs editing it through different links share one lock."""
    return target_of(path) + LOCK_SUFFIX


@contextlib.contextmanager
def locked(path: str, timeout: float) -> t.Iterator[str]:
    """Holds an exclusive advisory lock for ``path`` for the ``with`` block; yields the
    lock file's path.

    Waits at most ``timeout`` seconds for another run to let go, then fails naming the
    file and the lock file.  The lock file is created (with missing directories) and
    removed again by its holder before it lets go, so none is left beside the config.
    A run that waited on a lock file its holder then removed sees that the path no
    longer names the inode it locked and starts over on the new lock file, so two runs
    never hold locks on different inodes.  The lock goes with the process too: a killed
    run never leaves the file locked (only, at worst, an empty lock file).
    """
    lock_file = lock_path(path)
    deadline = time.monotonic() + timeout
    while True:
        fd = _open_lock_file(path, lock_file)
        try:
            _wait_for_lock(fd, path, lock_file, timeout, deadline)
            if _same_inode(fd, lock_file):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed the lock file while this run waited: lock the new one
    try:
        yield lock_file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_file)
        os.close(fd)  # lets go of the lock


def _open_lock_file(path: str, lock_file: str) -> int:
    try:
        _make_directories(os.path.dirname(os.path.abspath(lock_file)))
        return os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, NEW_FILE_MODE)
    except OSError as exc:
        raise KubeGPUError(f"cannot create the lock file {lock_file} for {path}: {exc.strerror}; nothing was changed") from exc


def _wait_for_lock(fd: int, path: str, lock_file: str, timeout: float, deadline: float) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise KubeGPUError(
                    f"{path} is being edited by another run, which has held its lock {lock_file} for more than "
                    f"lock_timeout={timeout:g} seconds; nothing was changed. Run again when it has finished, or "
                    "raise lock_timeout",
                    lock_file=lock_file,
                ) from None
            time.sleep(LOCK_POLL_SECONDS)


def _same_inode(fd: int, lock_file: str) -> bool:
    try:
        named = os.stat(lock_file)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
