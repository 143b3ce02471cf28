"""kubegpu.core.containerd_runtime through real ``ansible``, checked by real containerd.

The containerd binaries are Debian's own packages of bookworm (1.6), trixie (1.7)
and sid (2.1), unpacked by tests/support/debs.py; nothing is simulated. Every
scenario ends with that binary's ``containerd --config FILE config dump``.
"""

from __future__ import annotations

import difflib
import os
import stat
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import tomlkit

from tests.support import debs
from tests.support.adhoc import ModuleRun, run_module

MODULE = "kubegpu.core.containerd_runtime"
NVIDIA = "/usr/bin/nvidia-container-runtime"
SUITES = ["bookworm", "trixie", "sid"]

pytestmark = pytest.mark.slow


class Containerd(t.NamedTuple):
    suite: str
    binary: str
    major: int
    root: Path

    def dump(self, path: Path) -> dict[str, t.Any]:
        """What containerd makes of the file (its ``config dump``), as data."""
        proc = subprocess.run([self.binary, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return tomlkit.parse(proc.stdout).unwrap()

    def cri(self, path: Path) -> dict[str, t.Any]:
        """The dumped CRI ``containerd`` table (containerd 2.x reports version 2 files migrated)."""
        plugin = "io.containerd.grpc.v1.cri" if self.major == 1 else "io.containerd.cri.v1.runtime"
        return self.dump(path)["plugins"][plugin]["containerd"]

    def default_config(self) -> str:
        return subprocess.run([self.binary, "config", "default"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module", params=SUITES)
def containerd(request) -> Containerd:
    root = debs.fetch("containerd", request.param)
    binary = str(root / "usr" / "bin" / "containerd")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    major = 2 if "/v2 " in version or " 2." in version else 1
    return Containerd(request.param, binary, major, root)


def hand_written(version: int) -> str:
    plugin = "io.containerd.grpc.v1.cri" if version == 2 else "io.containerd.cri.v1.runtime"
    images = (
        ""
        if version == 2
        else "\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = 'registry.k8s.io/pause:3.10'\n"
    )
    return f"""# Site containerd configuration -- maintained by the platform team.
# Do not remove the registry mirror below.
version = {version}
root = "/srv/containerd"   # big disk

[grpc]
  address = "/run/containerd/containerd.sock"

[metrics]
  address = "127.0.0.1:1338"  # scraped by node-exporter
{images}
[plugins."{plugin}".containerd]
  default_runtime_name = "runc"

  # runc with systemd cgroups, as the kubelet expects
  [plugins."{plugin}".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."{plugin}".containerd.runtimes.runc.options]
      SystemdCgroup = true

[plugins."io.containerd.internal.v1.opt"]
  path = "/opt/containerd"

# the end
"""


def removed_and_added(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines a change removed and the lines it added (unchanged lines are neither)."""
    removed: list[str] = []
    added: list[str] = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(True), b=after.splitlines(True), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += matcher.a[i1:i2]
            added += matcher.b[j1:j2]
    return removed, added


def snapshot(path: Path) -> tuple[bytes | None, list[str]]:
    """The file's bytes and everything under its nearest existing directory."""
    top = next(parent for parent in path.parents if parent.exists())
    return (path.read_bytes() if path.exists() else None), sorted(str(p.relative_to(top)) for p in top.rglob("*"))


def three_ways(args: dict[str, t.Any], path: Path) -> ModuleRun:
    """Check mode reports a change and changes nothing; the real run changes the file as
    check mode said; a re-run changes nothing. Returns the real run."""
    before = snapshot(path)
    check = run_module(MODULE, args, check=True, diff=True)
    assert not check.failed, check.result
    assert check.changed and check.result["restart_required"]
    assert snapshot(path) == before, "check mode touched the directory"
    real = run_module(MODULE, args, diff=True)
    assert not real.failed, real.result
    assert real.changed and real.result["restart_required"]
    assert real.result["diff"]["after"] == path.read_text() == check.result["diff"]["after"]
    assert real.result["diff"]["before"] == (before[0] or b"").decode()
    again = run_module(MODULE, args, diff=True)
    assert not again.failed, again.result
    assert not again.changed and not again.result["restart_required"]
    assert "diff" not in again.result
    return real


def base_args(containerd: Containerd, path: Path, **extra: t.Any) -> dict[str, t.Any]:
    return {"path": str(path), "name": "nvidia", "containerd_binary": containerd.binary, **extra}


def exercise(containerd: Containerd, path: Path, original: str | None) -> None:
    """Add, default on, default off, remove: each three ways, each ending with config dump."""
    add = base_args(containerd, path, binary_name=NVIDIA, options={"SystemdCgroup": True})

    three_ways(add, path)
    added_text = path.read_text()
    cri = containerd.cri(path)
    assert cri["runtimes"]["nvidia"]["runtime_type"] == "io.containerd.runc.v2"
    assert cri["runtimes"]["nvidia"]["options"]["BinaryName"] == NVIDIA
    assert cri["runtimes"]["nvidia"]["options"]["SystemdCgroup"] is True
    assert cri["default_runtime_name"] == "runc"
    if original is not None:
        removed, added = removed_and_added(original, added_text)
        assert removed == [], "adding a runtime changed existing lines"
        assert any("runtimes.nvidia]" in line for line in added)

    three_ways({**add, "default": True}, path)
    default_text = path.read_text()
    assert containerd.cri(path)["default_runtime_name"] == "nvidia"
    removed, added = removed_and_added(added_text, default_text)
    # only the default_runtime_name line changes (or is added, with its table's header when the file had none)
    assert all("default_runtime_name" in line for line in removed) and len(removed) <= 1
    assert [line.strip() for line in added if line.strip() and not line.lstrip().startswith("[")] == [
        'default_runtime_name = "nvidia"' if '"' in "".join(added) else "default_runtime_name = 'nvidia'"
    ]

    three_ways({**add, "default": False}, path)
    assert containerd.cri(path)["default_runtime_name"] == "runc"
    assert path.read_text() == added_text, "switching the default off did not restore the previous text"

    removal = three_ways(base_args(containerd, path, state="absent"), path)
    assert removal.result["runtime"] is None
    assert "nvidia" not in containerd.cri(path)["runtimes"]
    if original is not None:
        assert path.read_text() == original, "add then remove did not give back the original file byte for byte"


def test_add_default_remove_without_a_file_starts_from_containerd_default(containerd, tmp_path):
    path = tmp_path / "etc" / "containerd" / "config.toml"
    exercise(containerd, path, None)
    # created from this containerd's own default, so it round-trips to exactly that
    assert path.read_text() == containerd.default_config()


def test_add_default_remove_on_the_distro_default_config(containerd, tmp_path):
    path = tmp_path / "config.toml"
    original = containerd.default_config()
    path.write_text(original)
    exercise(containerd, path, original)


@pytest.mark.matrix
def test_add_default_remove_keeps_a_hand_written_config_byte_for_byte(containerd, tmp_path):
    path = tmp_path / "config.toml"
    original = hand_written(3 if containerd.major == 2 else 2)
    path.write_text(original)
    exercise(containerd, path, original)
    dumped = containerd.dump(path)
    assert dumped["root"] == "/srv/containerd"
    assert dumped["metrics"]["address"] == "127.0.0.1:1338"


def test_version_2_file_on_containerd_2_as_debian_ships_it(tmp_path):
    """Debian's containerd 2.1 package ships a version 2 config.toml: the module keeps
    editing version 2 tables, and containerd 2.1 migrates them when it reads the file."""
    root = debs.fetch("containerd", "sid")
    containerd = Containerd("sid", str(root / "usr/bin/containerd"), 2, root)
    path = tmp_path / "config.toml"
    original = (root / "etc/containerd/config.toml").read_text()
    assert "version = 2" in original
    path.write_text(original)
    exercise(containerd, path, original)


def test_removing_the_default_runtime_hands_the_default_back_to_runc(containerd, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(containerd.default_config())
    first = run_module(MODULE, base_args(containerd, path, binary_name=NVIDIA, default=True))
    assert first.changed and containerd.cri(path)["default_runtime_name"] == "nvidia"
    removal = three_ways(base_args(containerd, path, state="absent"), path)
    assert removal.result["default_runtime"] == "runc"
    cri = containerd.cri(path)
    assert cri["default_runtime_name"] == "runc" and "nvidia" not in cri["runtimes"]


def test_default_false_leaves_another_runtimes_default_alone(containerd, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(containerd.default_config())
    assert run_module(
        MODULE, base_args(containerd, path, name="kata", runtime_type="io.containerd.kata.v2", default=True)
    ).changed
    run = run_module(MODULE, base_args(containerd, path, binary_name=NVIDIA, default=False))
    assert run.changed and run.result["default_runtime"] == "kata"
    assert containerd.cri(path)["default_runtime_name"] == "kata"


def test_a_value_containerd_rejects_is_refused_before_the_file_is_touched(containerd, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(containerd.default_config())
    before = snapshot(path)
    args = base_args(containerd, path, binary_name=NVIDIA, settings={"privileged_without_host_devices": "yes"})
    for check in (True, False):
        run = run_module(MODULE, args, check=check)
        assert run.failed
        assert "containerd rejects the new" in run.result["msg"]
        # containerd's own words: 1.x "Can't convert yes(string) to bool", 2.x "cannot decode TOML string into ... bool"
        assert "bool" in run.result["msg"] and run.result["stderr"].strip() in run.result["msg"]
        assert snapshot(path) == before, "the rejected candidate was left behind or installed"


def test_a_config_version_containerd_does_not_know_is_refused_with_its_message(tmp_path):
    """version = 4 (containerd 2.3+) is valid for the module, but sid's containerd 2.1 rejects it."""
    root = debs.fetch("containerd", "sid")
    path = tmp_path / "config.toml"
    path.write_text("version = 4\n")
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "containerd_binary": str(root / "usr/bin/containerd")})
    assert run.failed and "expected containerd config version equal to or less than `3`" in run.result["msg"]
    assert path.read_text() == "version = 4\n"


def test_empty_file_gets_the_version_of_the_installed_containerd(containerd, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("# managed by hand\n")
    run = three_ways(base_args(containerd, path, binary_name=NVIDIA), path)
    expected = 3 if containerd.major == 2 else 2
    assert run.result["config_version"] == expected
    assert path.read_text().startswith(f"# managed by hand\n\nversion = {expected}\n")
    assert containerd.cri(path)["runtimes"]["nvidia"]["options"]["BinaryName"] == NVIDIA


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        pytest.param(
            '[plugins.cri]\n  sandbox_image = "pause:3.9"\n',
            {},
            "containerd config migrate",
            id="version-1-file",
        ),
        pytest.param("version = 2\n[plugins\nx = 1\n", {}, "is not valid TOML (line 2", id="broken-toml"),
        pytest.param("version = 2\n", {"config_version": "3"}, "has version = 2 but config_version=3", id="version-mismatch"),
        pytest.param("version = 7\n", {}, "config version=7 is not valid; expected one of: 2, 3, 4", id="unknown-version"),
        pytest.param("version = 2\n", {"name": "nv idia"}, "name='nv idia' is not a valid runtime name", id="bad-name"),
        pytest.param(
            "version = 2\n", {"runtime_type": "runc"}, "runtime_type='runc' is not a valid containerd shim", id="bad-type"
        ),
        pytest.param(
            "version = 2\n",
            {"binary_name": "/a", "options": {"BinaryName": "/b"}},
            "binary_name='/a' and options.BinaryName='/b' disagree",
            id="binary-twice",
        ),
    ],
)
def test_bad_input_or_file_fails_and_changes_nothing(tmp_path, text, args, message):
    root = debs.fetch("containerd", "trixie")
    path = tmp_path / "config.toml"
    path.write_text(text)
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "containerd_binary": str(root / "usr/bin/containerd"), **args})
    assert run.failed and message in run.result["msg"], run.result["msg"]
    assert path.read_text() == text
    assert os.listdir(tmp_path) == ["config.toml"]


def test_without_containerd_a_missing_file_is_created_minimal_when_validation_is_off(tmp_path):
    path = tmp_path / "config.toml"
    args = {"path": str(path), "name": "nvidia", "binary_name": NVIDIA, "containerd_binary": str(tmp_path / "no-containerd")}
    refused = run_module(MODULE, args)
    assert refused.failed and "set config_version" in refused.result["msg"] and not path.exists()
    refused = run_module(MODULE, {**args, "config_version": "3"})
    assert refused.failed and "validate=false" in refused.result["msg"] and not path.exists()
    three_ways({**args, "config_version": "3", "validate": False}, path)
    assert tomlkit.parse(path.read_text()).unwrap() == {
        "version": 3,
        "plugins": {"io.containerd.cri.v1.runtime": {"containerd": {"runtimes": {"nvidia": {
            "runtime_type": "io.containerd.runc.v2",
            "options": {"BinaryName": NVIDIA},
        }}}}},
    }  # fmt: skip
    # and the real containerd 2.1 accepts that minimal file
    root = debs.fetch("containerd", "sid")
    containerd = Containerd("sid", str(root / "usr/bin/containerd"), 2, root)
    assert containerd.cri(path)["runtimes"]["nvidia"]["options"]["BinaryName"] == NVIDIA


def test_backup_and_the_files_mode_are_kept(tmp_path):
    root = debs.fetch("containerd", "bookworm")
    path = tmp_path / "config.toml"
    original = hand_written(2)
    path.write_text(original)
    path.chmod(0o600)
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "binary_name": NVIDIA, "backup": True,
                              "containerd_binary": str(root / "usr/bin/containerd")})  # fmt: skip
    assert run.changed
    assert Path(run.result["backup_file"]).read_text() == original
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["config.toml", Path(run.result["backup_file"]).name])


def test_state_absent_without_a_file_changes_nothing(tmp_path):
    path = tmp_path / "config.toml"
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "state": "absent"})
    assert not run.failed and not run.changed and not path.exists()


@pytest.mark.skipif(
    subprocess.run(["/usr/bin/python3", "-c", "import tomlkit"], capture_output=True, check=False).returncode == 0,
    reason="the system Python has tomlkit",
)
def test_a_node_without_tomlkit_is_told_what_to_install(tmp_path):
    """The host's own Python (no tomlkit there) plays a node where it is not installed yet."""
    path = tmp_path / "config.toml"
    path.write_text("version = 2\n")
    run = run_module(MODULE, {"path": str(path), "name": "nvidia"}, interpreter="/usr/bin/python3")
    assert run.failed and "Failed to import the required Python library (tomlkit>=0.15.1)" in run.result["msg"]
    assert path.read_text() == "version = 2\n"


OLD_TOMLKIT = "0.11.8"


@pytest.fixture(scope="module")
def old_tomlkit_path() -> Path:
    """A real old tomlkit release (the line Debian bookworm packages), installed apart from the venv."""
    target = debs.REPO_ROOT / ".cache" / f"tomlkit-{OLD_TOMLKIT}"
    if not (target / "tomlkit").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), f"tomlkit=={OLD_TOMLKIT}"],
            check=True,
            capture_output=True,
        )
    return target


def test_an_old_tomlkit_on_the_node_is_refused_before_anything_changes(tmp_path, old_tomlkit_path):
    path = tmp_path / "config.toml"
    path.write_text("version = 2\n# keep me\n")
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "validate": False}, env={"PYTHONPATH": str(old_tomlkit_path)})
    assert run.failed
    assert f"tomlkit {OLD_TOMLKIT} is too old" in run.result["msg"] and "tomlkit>=0.15.1" in run.result["msg"]
    assert path.read_text() == "version = 2\n# keep me\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
