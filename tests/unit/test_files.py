"""Reading and atomically replacing files (plugins/module_utils/_files.py), with a real AnsibleModule."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._files import (
    Candidate,
    backup,
    check_lock_timeout,
    locked,
    read_text,
    target_of,
)


def test_read_text_of_a_missing_file_is_none(tmp_path):
    assert read_text(str(tmp_path / "absent")) is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"ok\nok\n\xff\n"), r"is not UTF-8 text \(line 3\)"),
    ],
)
def test_read_text_refuses_what_is_not_a_text_file(tmp_path, setup, message):
    path = tmp_path / "config"
    setup(path)
    with pytest.raises(KubeGPUError, match=message):
        read_text(str(path))


def test_candidate_replaces_the_file_keeping_its_mode(ansible_module, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("old\n")
    path.chmod(0o640)
    with Candidate(ansible_module, str(path), "new\n") as candidate:
        assert os.path.dirname(candidate.name) == str(tmp_path)
        assert path.read_text() == "old\n"
        candidate.install()
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["config.toml"]


def test_candidate_creates_a_new_file_and_its_directory(ansible_module, tmp_path):
    path = tmp_path / "etc" / "containerd" / "config.toml"
    with Candidate(ansible_module, str(path), "version = 2\n") as candidate:
        candidate.install()
    assert path.read_text() == "version = 2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_candidate_not_installed_leaves_nothing_behind(ansible_module, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("old\n")
    with Candidate(ansible_module, str(path), "new\n") as candidate:
        assert Path(candidate.name).read_text() == "new\n"
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["config.toml"]


def test_a_scratch_candidate_for_a_missing_directory_does_not_create_it(ansible_module, tmp_path):
    path = tmp_path / "missing" / "config.toml"
    with Candidate(ansible_module, str(path), "x\n", scratch=True) as candidate:
        assert os.path.exists(candidate.name)
        scratch_name = candidate.name
    assert not os.path.exists(scratch_name)
    assert os.listdir(tmp_path) == []


def test_backup_copies_the_old_file_or_returns_none(ansible_module, tmp_path):
    path = tmp_path / "daemon.json"
    assert backup(ansible_module, str(path)) is None
    path.write_text("{}\n")
    copy = backup(ansible_module, str(path))
    assert copy and copy != str(path) and Path(copy).read_text() == "{}\n"


def test_target_of_follows_a_chain_of_links_and_refuses_dangling_ones_and_loops(tmp_path):
    real = tmp_path / "real"
    real.write_text("x")
    (tmp_path / "one").symlink_to("real")
    (tmp_path / "two").symlink_to("one")
    assert target_of(str(tmp_path / "two")) == str(real)
    assert target_of(str(real)) == str(real)
    assert target_of(str(tmp_path / "missing")) == str(tmp_path / "missing")
    (tmp_path / "dangling").symlink_to("nowhere")
    with pytest.raises(KubeGPUError, match="is a symbolic link to nowhere, which does not exist"):
        target_of(str(tmp_path / "dangling"))
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(KubeGPUError, match="loop of links"):
        target_of(str(tmp_path / "a"))


def test_install_through_a_link_replaces_the_target_and_keeps_the_link(ansible_module, tmp_path):
    (tmp_path / "managed").mkdir()
    target = tmp_path / "managed" / "config"
    target.write_text("old\n")
    link = tmp_path / "config"
    link.symlink_to("managed/config")
    with Candidate(ansible_module, str(link), "new\n") as candidate:
        candidate.install()
    assert link.is_symlink() and target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "managed"]


def test_a_new_file_and_directories_are_0644_and_0755_under_umask_077(ansible_module, tmp_path):
    path = tmp_path / "a" / "b" / "config"
    old = os.umask(0o077)
    try:
        with Candidate(ansible_module, str(path), "x\n") as candidate:
            candidate.install()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755


def test_a_lock_is_exclusive_bounded_and_changes_nothing_on_disk(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("x")
    mtime = tmp_path.stat().st_mtime_ns
    with locked(str(path), 5) as directory:
        assert directory == str(tmp_path)
        started = time.monotonic()
        with pytest.raises(KubeGPUError) as info, locked(str(path), 0.3):
            pass
        assert time.monotonic() - started >= 0.3
        assert info.value.msg.startswith(f"{path} is being edited by another run, which has held the lock on {tmp_path}")
        assert "lock_timeout=0.3 seconds" in info.value.msg
    assert os.listdir(tmp_path) == ["config.toml"] and tmp_path.stat().st_mtime_ns == mtime
    with locked(str(path), 0):  # free again, at once
        pass


def test_a_lock_survives_the_file_being_replaced(tmp_path):
    """The rename that installs a new version must not end the lock (it would on the file's own inode)."""
    path = tmp_path / "config.toml"
    path.write_text("old")
    with locked(str(path), 5):
        (tmp_path / "new").write_text("new")
        os.rename(tmp_path / "new", path)
        with pytest.raises(KubeGPUError, match="being edited by another run"), locked(str(path), 0.1):
            pass


def test_a_lock_is_shared_through_a_symbolic_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "config.toml"
    target.write_text("")
    (tmp_path / "link.toml").symlink_to(target)
    link = str(tmp_path / "link.toml")
    with locked(str(target), 5), pytest.raises(KubeGPUError, match="being edited by another run"), locked(link, 0.1):
        pass


def test_a_lock_for_a_file_in_a_missing_directory_creates_the_directory(tmp_path):
    with locked(str(tmp_path / "etc" / "containerd" / "config.toml"), 1) as directory:
        assert directory == str(tmp_path / "etc" / "containerd") and os.path.isdir(directory)


def test_a_waiting_run_gets_the_lock_when_the_holder_lets_go(tmp_path):
    path = str(tmp_path / "config.toml")
    got = threading.Event()

    def waiter():
        with locked(path, 10):
            got.set()

    with locked(path, 1):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)
        assert not got.is_set()
    thread.join(10)
    assert got.is_set()


@pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf"), None])
def test_a_lock_timeout_that_is_no_number_of_seconds_is_refused(timeout):
    with pytest.raises(KubeGPUError, match=rf"lock_timeout={timeout!r} is not valid"):
        check_lock_timeout(timeout)


def test_a_lock_under_a_file_where_a_directory_should_be_is_refused(tmp_path):
    (tmp_path / "docker").write_text("a file where a directory is expected\n")
    with (
        pytest.raises(KubeGPUError, match=rf"{tmp_path}/docker: Not a directory; nothing was changed"),
        locked(str(tmp_path / "docker" / "daemon.json"), 1),
    ):
        pass
    assert os.listdir(tmp_path) == ["docker"]
