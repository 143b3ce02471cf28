"""How containerd_runtime and docker_runtime treat the file itself (issue 15, item 8).

Both modules write through plugins/module_utils/_files.py: a new file is 0644
and a new directory 0755 whatever the umask, and a path that is a symbolic
link is edited through the link, which stays. Each case runs the real module
through ``ansible``; containerd_runtime validates with Debian 13's real
containerd (tests/support/debs.py). Nothing is simulated.
"""

from __future__ import annotations

import contextlib
import os
import stat
import typing as t
from pathlib import Path

import pytest

from tests.support import debs
from tests.support.adhoc import run_module

NVIDIA = "/usr/bin/nvidia-container-runtime"
DOCKER_JSON = '{\n  "log-driver": "json-file"\n}\n'
# runc declared: containerd 1.x keeps only the runtimes a file declares once it declares any
CONTAINERD_TOML = (
    'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "runc"\n\n'
    '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n    runtime_type = "io.containerd.runc.v2"\n'
)


def docker(path: Path) -> tuple[str, dict[str, t.Any]]:
    return "kubegpu.core.docker_runtime", {"path": str(path), "name": "nvidia", "runtime_path": NVIDIA, "default": True}


def containerd(path: Path) -> tuple[str, dict[str, t.Any]]:
    binary = str(debs.fetch("containerd", "trixie") / "usr" / "bin" / "containerd")
    args = {"path": str(path), "name": "nvidia", "binary_name": NVIDIA, "default": True, "containerd_binary": binary}
    return "kubegpu.core.containerd_runtime", args


MODULES = [pytest.param(docker, DOCKER_JSON, id="docker"), pytest.param(containerd, CONTAINERD_TOML, id="containerd")]


@contextlib.contextmanager
def umask(mask: int) -> t.Iterator[None]:
    """The module inherits the umask of ``ansible``, which inherits this process's."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
@pytest.mark.parametrize(("module_args", "_text"), MODULES)
def test_new_file_is_0644_and_new_directories_0755_under_umask_077(tmp_path, module_args, _text):
    """Ansible's atomic_move gives a new file 0666 less the umask: 0600 here, before the fix."""
    path = tmp_path / "etc" / "runtime" / "config"
    module, args = module_args(path)
    with umask(0o077):
        check = run_module(module, args, check=True)
        assert not check.failed and check.changed, check.result
        assert not (tmp_path / "etc").exists()
        run = run_module(module, args)
        assert not run.failed and run.changed, run.result
        again = run_module(module, args)
        assert not again.failed and not again.changed, again.result
    assert mode(path) == 0o644
    assert mode(path.parent) == mode(path.parent.parent) == 0o755
    assert [p.name for p in path.parent.iterdir()] == ["config"], "a temporary file was left behind"


@pytest.mark.slow
@pytest.mark.parametrize(("module_args", "text"), MODULES)
def test_a_symlinked_config_is_edited_through_the_link(tmp_path, module_args, text):
    """/etc/.../config -> a managed directory, as configuration managers lay it out: the link stays a link."""
    managed = tmp_path / "managed"
    managed.mkdir()
    target = managed / "config"
    target.write_text(text)
    target.chmod(0o640)
    link = tmp_path / "etc" / "config"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(target, link.parent))
    module, args = module_args(link)

    check = run_module(module, args, check=True, diff=True)
    assert not check.failed and check.changed, check.result
    assert target.read_text() == text and link.is_symlink()
    run = run_module(module, args, diff=True)
    assert not run.failed and run.changed, run.result
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, link.parent)
    assert target.read_text() == run.result["diff"]["after"] == check.result["diff"]["after"] != text
    assert mode(target) == 0o640, "the target's mode is kept"
    assert sorted(p.name for p in managed.iterdir()) == ["config"]
    assert sorted(p.name for p in link.parent.iterdir()) == ["config"]
    again = run_module(module, args)
    assert not again.failed and not again.changed, again.result
    assert link.is_symlink()


@pytest.mark.slow
@pytest.mark.parametrize(("module_args", "_text"), MODULES)
def test_a_dangling_link_is_refused_and_nothing_is_created(tmp_path, module_args, _text):
    """A link to a file that does not exist (a managed filesystem not mounted yet) is not followed."""
    link = tmp_path / "config"
    link.symlink_to(tmp_path / "not-mounted" / "config")
    module, args = module_args(link)
    for check in (True, False):
        run = run_module(module, args, check=check)
        assert run.failed and f"{link} is a symbolic link to {tmp_path}/not-mounted/config" in run.result["msg"], run.result
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["config"]
