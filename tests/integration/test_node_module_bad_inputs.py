"""One table of bad inputs for the three node modules (issue 15): each fails with a message naming the
bad value, and leaves the file (or the tree it reads) byte-identical, with the same mtime.

Every case runs the real module through Ansible: all cases are the tasks of one ``ansible-playbook``
run (tests/support/role_runs.py ``run_tasks``), each on files of its own, checked one by one.
containerd_runtime gets Debian 13's real containerd (tests/support/debs.py); gpu_facts reads a fake
sysfs tree (tests/support/fake_sysfs.py) and the fake NVML library of tests/support/fake_nvml.
"Permissions" cases make a directory immutable (``chattr +i``), which stops root too, as a
read-only or locked-down /etc would.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import typing as t
from pathlib import Path

import pytest

from tests.support import debs, fake_nvml
from tests.support.adhoc import ModuleRun
from tests.support.fake_sysfs import PciFunction, build
from tests.support.role_runs import run_tasks

NVIDIA = "/usr/bin/nvidia-container-runtime"
DOCKER = "kubegpu.core.docker_runtime"
CONTAINERD = "kubegpu.core.containerd_runtime"
GPU_FACTS = "kubegpu.core.gpu_facts"
GOOD_TOML = b'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "runc"\n'
GOOD_JSON = b'{\n  "log-driver": "json-file"\n}\n'
LONG_NAME = "n" * 64


class Case(t.NamedTuple):
    module: str
    content: bytes | None  # the file's bytes (None: the case lays out the path itself)
    args: dict[str, t.Any]
    message: str  # the part of the message that names the bad value
    layout: str = "file"  # file, directory, immutable-dir, dangling-link, not-a-directory


CASES = {
    # docker_runtime: file shapes
    "docker-directory-as-path": Case(DOCKER, None, {}, "is a directory, expected a file", "directory"),
    "docker-not-utf8": Case(DOCKER, b'{"debug": "\xff\xfe"}\n', {}, "is not UTF-8 text (line 1)"),
    "docker-utf16": Case(DOCKER, '{"debug": true}'.encode("utf-16"), {}, "is not UTF-8 text"),
    "docker-trailing-comma": Case(DOCKER, b'{\n  "debug": true,\n}\n', {}, "is not valid JSON (line 3, column 1)"),
    "docker-array": Case(DOCKER, b'["debug"]\n', {}, "must hold a JSON object, found array"),
    "docker-runtimes-not-object": Case(DOCKER, b'{"runtimes": ["nvidia"]}', {}, "'runtimes' must be an object, found array"),
    "docker-default-not-string": Case(DOCKER, b'{"default-runtime": true}', {}, "'default-runtime' must be a string, found True"),
    "docker-duplicate-key": Case(DOCKER, b'{"debug": true, "debug": false}', {}, "duplicate key 'debug'"),
    "docker-nan": Case(DOCKER, b'{"max-concurrent-downloads": NaN}', {}, "NaN is not a JSON value"),
    "docker-runtime-not-object": Case(DOCKER, b'{"runtimes": {"nvidia": "/usr/bin/x"}}', {}, "runtimes.nvidia must be an object"),
    "docker-shim-runtime-given-a-path": Case(
        DOCKER, b'{"runtimes": {"nvidia": {"runtimeType": "io.containerd.runc.v2"}}}', {}, "runtimes.nvidia is a shim runtime"
    ),
    "docker-other-runtime-broken": Case(
        DOCKER, b'{"runtimes": {"kata": {"path": "/k", "runtimeType": "io.containerd.kata.v2"}}}', {}, "runtimes.kata has both"
    ),
    # docker_runtime: names, paths, options
    "docker-name-slash": Case(DOCKER, GOOD_JSON, {"name": "nvidia/gpu"}, "name='nvidia/gpu' is not a valid runtime name"),
    "docker-name-64-chars": Case(DOCKER, GOOD_JSON, {"name": LONG_NAME}, f"name={LONG_NAME!r} is not a valid runtime name"),
    "docker-name-empty": Case(DOCKER, GOOD_JSON, {"name": ""}, "name='' is not a valid runtime name"),
    "docker-name-reserved": Case(DOCKER, GOOD_JSON, {"name": "runc"}, "name='runc' is docker's built-in runtime"),
    "docker-runtime-path-relative": Case(
        DOCKER,
        GOOD_JSON,
        {"runtime_path": "bin/nvidia-container-runtime"},
        "runtime_path='bin/nvidia-container-runtime' is not an absolute",
    ),
    "docker-runtime-type-not-a-shim": Case(
        DOCKER, GOOD_JSON, {"runtime_path": None, "runtime_type": "runc"}, "runtime_type='runc' is not a containerd shim name"
    ),
    "docker-runtime-option-null": Case(
        DOCKER,
        GOOD_JSON,
        {"runtime_path": None, "runtime_type": "io.containerd.runc.v2", "runtime_options": {"SystemdCgroup": None}},
        "runtime_options.SystemdCgroup is null",
    ),
    "docker-absent-default-true": Case(
        DOCKER,
        GOOD_JSON,
        {"state": "absent", "runtime_path": None, "default": True},
        "default=true cannot be combined with state=absent",
    ),
    "docker-state-unknown": Case(DOCKER, GOOD_JSON, {"state": "enabled"}, "got: enabled"),
    "docker-dangling-link": Case(DOCKER, None, {}, "is a symbolic link to", "dangling-link"),
    "docker-parent-is-a-file": Case(DOCKER, None, {}, "Not a directory", "not-a-directory"),
    "docker-immutable-directory": Case(DOCKER, GOOD_JSON, {}, "cannot write a temporary file in", "immutable-dir"),
    "docker-lock-timeout-negative": Case(DOCKER, GOOD_JSON, {"lock_timeout": -1}, "lock_timeout=-1.0 is not valid"),
    # containerd_runtime: what it refuses today
    "containerd-directory-as-path": Case(CONTAINERD, None, {}, "is a directory, expected a file", "directory"),
    "containerd-not-utf8": Case(CONTAINERD, b"version = 2\n# caf\xe9\n", {}, "is not UTF-8 text (line 2)"),
    "containerd-broken-toml": Case(CONTAINERD, b"version = 2\n[plugins\nx = 1\n", {}, "is not valid TOML (line 2"),
    "containerd-version-1-file": Case(CONTAINERD, b'[plugins.cri]\n  sandbox_image = "pause:3.9"\n', {}, "legacy version 1"),
    "containerd-unknown-version": Case(CONTAINERD, b"version = 7\n", {}, "config version=7 is not valid"),
    "containerd-version-not-integer": Case(CONTAINERD, b'version = "2"\n', {}, "version = '2' is not an integer"),
    "containerd-version-mismatch": Case(CONTAINERD, GOOD_TOML, {"config_version": "3"}, "has version = 2 but config_version=3"),
    "containerd-name-slash": Case(
        CONTAINERD, GOOD_TOML, {"name": "nvidia/gpu"}, "name='nvidia/gpu' is not a valid RuntimeClass handler"
    ),
    "containerd-name-64-chars": Case(
        CONTAINERD, GOOD_TOML, {"name": LONG_NAME}, f"name={LONG_NAME!r} is not a valid RuntimeClass handler"
    ),
    "containerd-bad-runtime-type": Case(
        CONTAINERD, GOOD_TOML, {"runtime_type": "runc"}, "runtime_type='runc' is not a valid containerd shim"
    ),
    "containerd-absent-default-true": Case(
        CONTAINERD, GOOD_TOML, {"state": "absent", "default": True}, "default=true cannot be combined with state=absent"
    ),
    "containerd-immutable-directory": Case(CONTAINERD, GOOD_TOML, {}, "cannot write a temporary file in", "immutable-dir"),
    # containerd_runtime: a name written must be a RuntimeClass handler; runc options are typed
    "containerd-name-uppercase": Case(
        CONTAINERD, GOOD_TOML, {"name": "Nvidia"}, "name='Nvidia' is not a valid RuntimeClass handler"
    ),
    "containerd-name-underscore": Case(
        CONTAINERD, GOOD_TOML, {"name": "my_rt"}, "name='my_rt' is not a valid RuntimeClass handler"
    ),
    "containerd-name-dot": Case(CONTAINERD, GOOD_TOML, {"name": "a.b"}, "name='a.b' is not a valid RuntimeClass handler"),
    "containerd-binary-name-list": Case(
        CONTAINERD,
        GOOD_TOML,
        {"binary_name": None, "options": {"BinaryName": ["a"]}},
        "options.BinaryName=['a'] is not valid for the runc shim (io.containerd.runc.v2): BinaryName must be a string, not an "
        "array",
    ),
    "containerd-systemd-cgroup-string": Case(
        CONTAINERD,
        GOOD_TOML,
        {"options": {"SystemdCgroup": "true"}},
        "SystemdCgroup must be a boolean (true or false), not a string",
    ),
    "containerd-io-uid-negative": Case(
        CONTAINERD, GOOD_TOML, {"options": {"IoUid": -1}}, "IoUid must be an integer from 0 to 4294967295"
    ),
    "containerd-lock-timeout-negative": Case(CONTAINERD, GOOD_TOML, {"lock_timeout": -1}, "lock_timeout=-1.0 is not valid"),
    # gpu_facts: its options (the sysfs tree it reads must stay as it was)
    "gpu-facts-no-source": Case(GPU_FACTS, None, {"sources": []}, "sources=[] is not valid", "sysfs"),
    "gpu-facts-timeout-negative": Case(GPU_FACTS, None, {"timeout": -1}, "timeout=-1.0 is not valid", "sysfs"),
    "gpu-facts-unknown-source": Case(GPU_FACTS, None, {"sources": ["dcgm"]}, "dcgm", "sysfs"),
    "gpu-facts-smi-path-empty": Case(GPU_FACTS, None, {"nvidia_smi_path": ""}, "nvidia_smi_path='' is not valid", "sysfs"),
    "gpu-facts-smi-path-relative": Case(
        GPU_FACTS, None, {"nvidia_smi_path": "bin/nvidia-smi"}, "nvidia_smi_path='bin/nvidia-smi' is not valid", "sysfs"
    ),
    "gpu-facts-sysfs-is-a-file": Case(GPU_FACTS, None, {}, "is not valid; give the absolute path of the directory", "sysfs-file"),
}


@contextlib.contextmanager
def immutable(directory: Path) -> t.Iterator[None]:
    subprocess.run(["chattr", "+i", str(directory)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def snapshot(root: Path) -> dict[str, tuple[bytes | str | None, int]]:
    """Every entry under ``root``: its bytes (a link's target, None for a directory) and mtime."""
    entries = {}
    for path in sorted([root, *root.rglob("*")]):
        if path.is_symlink():
            entries[str(path)] = (os.readlink(path), path.lstat().st_mtime_ns)
        elif path.is_dir():
            entries[str(path)] = (None, path.stat().st_mtime_ns)
        else:
            entries[str(path)] = (path.read_bytes(), path.stat().st_mtime_ns)
    return entries


def lay_out(case: Case, root: Path) -> dict[str, t.Any]:
    """The files of ``case`` under ``root``; returns the module's arguments."""
    if case.module == GPU_FACTS:
        sysfs = build(root / "sys", [PciFunction("0000:3b:00.0", driver="nvidia")], modules=("nvidia",))
        if case.layout == "sysfs-file":
            sysfs = root / "sysfs.txt"
            sysfs.write_text("not a directory\n")
        return {"sysfs_root": str(sysfs), **case.args}
    name = "daemon.json" if case.module == DOCKER else "config.toml"
    path = root / "etc" / name
    path.parent.mkdir()
    if case.layout == "directory":
        path.mkdir()
        (path / "keep").write_text("x")
    elif case.layout == "dangling-link":
        path.symlink_to(root / "not-mounted" / name)
    elif case.layout == "not-a-directory":
        (root / "etc" / "docker").write_text("a file where a directory is expected\n")
        path = root / "etc" / "docker" / name
    else:
        path.write_bytes(case.content or b"")
    args: dict[str, t.Any] = {"path": str(path), "name": "nvidia", "default": True}
    if case.module == DOCKER:
        args["runtime_path"] = NVIDIA
    else:
        args["binary_name"] = NVIDIA
        args["containerd_binary"] = str(debs.fetch("containerd", "trixie") / "usr" / "bin" / "containerd")
    args.update(case.args)
    return {key: value for key, value in args.items() if value is not None}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[ModuleRun, dict[str, t.Any], dict[str, t.Any]]]:
    """Every case laid out in a directory of its own and run as one task of a single ``ansible-playbook``
    run (the start-up cost of one); ``{case: (its result, the tree before, the tree after)}``."""
    roots, tasks, before = {}, {}, {}
    for name, case in CASES.items():
        root = tmp_path_factory.mktemp(name)
        args = lay_out(case, root)
        roots[name] = root
        env = fake_nvml.environment("t4") if case.module == GPU_FACTS else None
        tasks[name] = (case.module, args, env)
        before[name] = snapshot(root)
    with contextlib.ExitStack() as stack:
        for name, case in CASES.items():
            if case.layout == "immutable-dir":
                stack.enter_context(immutable(roots[name] / "etc"))
        runs = run_tasks(tasks)
    return {name: (runs[name], before[name], snapshot(roots[name])) for name in CASES}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_naming_the_value_and_leaves_the_file_alone(outcomes, name):
    run, before, after = outcomes[name]
    assert run.failed, run.result
    assert CASES[name].message in run.result["msg"], run.result["msg"]
    assert after == before, "the file or its directory changed"
