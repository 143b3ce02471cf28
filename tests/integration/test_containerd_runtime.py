"""kubegpu.core.containerd_runtime through real ``ansible``, checked by real containerd.

The containerd binaries are Debian's own packages of bookworm (1.6), trixie (1.7)
and sid (2.1), unpacked by tests/support/debs.py; nothing is simulated. Every
scenario ends with that binary's ``containerd --config FILE config dump``.
"""

from __future__ import annotations

import difflib
import json
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
    # bytes, not read_text(): that would turn CRLF into LF
    assert real.result["diff"]["after"] == path.read_bytes().decode() == check.result["diff"]["after"]
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
    # runc first: containerd 1.x drops its built-in runc once a file declares any runtime
    run = three_ways(base_args(containerd, path, name="runc"), path)
    expected = 3 if containerd.major == 2 else 2
    assert run.result["config_version"] == expected
    assert path.read_text().startswith(f"# managed by hand\n\nversion = {expected}\n")
    three_ways(base_args(containerd, path, binary_name=NVIDIA), path)
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
        pytest.param("version = 2\n", {"name": "nv idia"}, "name='nv idia' is not a valid RuntimeClass handler", id="bad-name"),
        pytest.param(
            "version = 2\n", {"runtime_type": "runc"}, "runtime_type='runc' is not a valid containerd shim", id="bad-type"
        ),
        pytest.param(
            "version = 2\n",
            {"binary_name": "/a", "options": {"BinaryName": "/b"}},
            "binary_name='/a' and options.BinaryName='/b' disagree",
            id="binary-twice",
        ),
        pytest.param(
            "version = 2\n",
            {"state": "absent", "copy_from": ["runc"]},
            "copy_from=['runc'] cannot be combined with state=absent",
            id="copy-from-with-absent",
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


# --- configs written by someone else (issue 15): every shape TOML allows, drop-ins, encodings ---

CRI2 = '"io.containerd.grpc.v1.cri"'
KATA = "io.containerd.kata.v2"


def v2_plugin_cri(cri: dict[str, t.Any]) -> dict[str, t.Any]:
    """The runtimes and default of a dumped CRI containerd table, without the keys containerd fills in."""
    return {
        "default": cri.get("default_runtime_name"),
        "runtimes": {name: (rt.get("runtime_type"), rt.get("options") or {}) for name, rt in cri.get("runtimes", {}).items()},
    }


SHAPES = {
    "dotted-keys-in-the-containerd-table": f"""version = 2
[plugins.{CRI2}.containerd]
  default_runtime_name = "runc"
  runtimes.runc.runtime_type = "io.containerd.runc.v2"
  runtimes.kata.runtime_type = "{KATA}"
""",
    "dotted-keys-at-the-top": f"""version = 2
plugins.{CRI2}.containerd.default_runtime_name = "runc"
plugins.{CRI2}.containerd.runtimes.runc.runtime_type = "io.containerd.runc.v2"
plugins.{CRI2}.containerd.runtimes.kata.runtime_type = "{KATA}"

[plugins."io.containerd.internal.v1.opt"]
  path = "/opt/containerd"
""",
    "inline-runtimes-table": f"""version = 2
[plugins.{CRI2}.containerd]
  default_runtime_name = "runc"
  runtimes = {{ runc = {{ runtime_type = "io.containerd.runc.v2" }}, kata = {{ runtime_type = "{KATA}" }} }}
""",
    "implicit-super-tables-and-inline-options": f"""version = 2
# runc, as the kubelet wants it
[plugins.{CRI2}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  options = {{ SystemdCgroup = true }}

[plugins."io.containerd.internal.v1.opt"]
  path = "/opt/containerd"

[plugins.{CRI2}.containerd.runtimes.kata]
  runtime_type = "{KATA}"
""",
}


def containerd_of(suite: str) -> Containerd:
    root = debs.fetch("containerd", suite)
    return Containerd(suite, str(root / "usr/bin/containerd"), 2 if suite == "sid" else 1, root)


@pytest.mark.parametrize(
    ("suite", "shape"),
    [(suite, "dotted-keys-in-the-containerd-table") for suite in SUITES] + [("trixie", shape) for shape in list(SHAPES)[1:]],
)
def test_any_toml_shape_gets_the_runtime_in_the_cri_table_and_keeps_the_others(tmp_path, suite, shape):
    """Issue 15 items 1 and 4: on main, dotted keys put the runtime outside the CRI plugin
    (and kata inside nvidia's options), and an inline runtimes table raised tomlkit's own error.
    The dotted shape runs on containerd 1.6, 1.7 and 2.1, the others on 1.7 (the property
    tests cover every shape on all three)."""
    containerd = containerd_of(suite)
    path = tmp_path / "config.toml"
    original = SHAPES[shape]
    path.write_text(original)
    before = v2_plugin_cri(containerd.cri(path))
    assert before["runtimes"]["kata"][0] == KATA

    add = base_args(containerd, path, binary_name=NVIDIA, default=True)
    three_ways(add, path)
    after = v2_plugin_cri(containerd.cri(path))
    assert after["default"] == "nvidia"
    assert after["runtimes"].pop("nvidia") == ("io.containerd.runc.v2", {"BinaryName": NVIDIA})
    assert after["runtimes"] == before["runtimes"], "another runtime changed"
    copy = tmp_path / "original" / "config.toml"
    copy.parent.mkdir()
    copy.write_text(original)
    others, others_before = containerd.dump(path), containerd.dump(copy)
    for dump in (others, others_before):
        dump["plugins"].pop("io.containerd.grpc.v1.cri" if containerd.major == 1 else "io.containerd.cri.v1.runtime")
        dump.pop("imports", None)  # 1.x lists the file it read
    assert others == others_before, "a plugin other than the CRI runtimes changed"

    three_ways(base_args(containerd, path, state="absent"), path)
    assert v2_plugin_cri(containerd.cri(path)) == before
    if "default_runtime_name" in original:
        assert path.read_text() == original, "add then remove did not give back the original file"
    # else the file declares runc, so taking the default back writes default_runtime_name = "runc"


def test_a_task_with_only_settings_leaves_an_existing_runtimes_type_alone(tmp_path):
    """Issue 15 item 2: on main, runtime_type's default overwrote kata's shim with runc's."""
    containerd = containerd_of("trixie")
    path = tmp_path / "config.toml"
    path.write_text(f'version = 2\n[plugins.{CRI2}.containerd.runtimes.kata]\n  runtime_type = "{KATA}"\n')
    run = three_ways(base_args(containerd, path, name="kata", settings={"privileged_without_host_devices": True}), path)
    assert run.result["runtime"] == {"runtime_type": KATA, "privileged_without_host_devices": True}
    kata = containerd.cri(path)["runtimes"]["kata"]
    assert kata["runtime_type"] == KATA and kata["privileged_without_host_devices"] is True


def test_a_null_option_or_setting_removes_that_key(tmp_path):
    """Issue 15 item 4: on main, options: {SystemdCgroup: null} raised."""
    containerd = containerd_of("trixie")
    path = tmp_path / "config.toml"
    original = (
        f'version = 2\n[plugins.{CRI2}.containerd.runtimes.nvidia]\n  runtime_type = "io.containerd.runc.v2"\n'
        f"  privileged_without_host_devices = true\n  [plugins.{CRI2}.containerd.runtimes.nvidia.options]\n"
        f'    BinaryName = "{NVIDIA}"\n    SystemdCgroup = true\n'
    )
    path.write_text(original)
    args = base_args(containerd, path, options={"SystemdCgroup": None}, settings={"privileged_without_host_devices": None})
    run = three_ways(args, path)
    assert run.result["runtime"] == {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": NVIDIA}}
    nvidia = containerd.cri(path)["runtimes"]["nvidia"]
    assert nvidia["options"] == {"BinaryName": NVIDIA} and nvidia["privileged_without_host_devices"] is False


BOM_CONFIG = (
    f'\ufeffversion = 2\n[plugins.{CRI2}.containerd]\n  default_runtime_name = "runc"\n'
    f'  [plugins.{CRI2}.containerd.runtimes.runc]\n    runtime_type = "io.containerd.runc.v2"\n'
)


def test_a_byte_order_mark_is_kept_where_containerd_reads_it_and_refused_where_it_does_not(containerd, tmp_path):
    """Issue 15 item 5: containerd 1.6 and 1.7 read a file that starts with a UTF-8 BOM,
    2.1 refuses it (checked here on the unedited file first); the module agrees with
    each. On main, every containerd got 'not valid TOML'."""
    path = tmp_path / "config.toml"
    path.write_bytes(BOM_CONFIG.encode())
    accepted = subprocess.run([containerd.binary, "--config", str(path), "config", "dump"], capture_output=True, check=False)
    assert (accepted.returncode == 0) is (containerd.major == 1)
    args = base_args(containerd, path, binary_name=NVIDIA)
    if containerd.major == 1:
        three_ways(args, path)
        data = path.read_bytes()
        assert data.startswith(b"\xef\xbb\xbfversion = 2\n") and data.count(b"\xef\xbb\xbf") == 1
        assert containerd.cri(path)["runtimes"]["nvidia"]["options"]["BinaryName"] == NVIDIA
        three_ways(base_args(containerd, path, state="absent"), path)
        assert path.read_bytes() == BOM_CONFIG.encode()
    else:
        for check in (True, False):
            run = run_module(MODULE, args, check=check)
            assert run.failed and "byte-order mark" in run.result["msg"] and str(path) in run.result["msg"]
            assert path.read_bytes() == BOM_CONFIG.encode()
        assert os.listdir(tmp_path) == ["config.toml"]


def test_crlf_line_ends_are_kept_on_every_line(tmp_path):
    """Issue 15 item 5: on main, the lines the module added ended with LF in a CRLF file."""
    containerd = containerd_of("bookworm")
    path = tmp_path / "config.toml"
    original = hand_written(2).replace("\n", "\r\n")
    path.write_bytes(original.encode())
    three_ways(base_args(containerd, path, binary_name=NVIDIA, default=True), path)
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") > original.count("\n")
    assert containerd.cri(path)["default_runtime_name"] == "nvidia"
    three_ways(base_args(containerd, path, state="absent"), path)
    assert path.read_bytes() == original.encode()


@pytest.mark.parametrize(
    "text", ["", "\n", "# nothing configured yet\n", "version = 2\n", f"version = 2\n[plugins.{CRI2}.cni]\n"]
)
def test_absent_on_a_file_without_the_runtime_changes_nothing(tmp_path, text):
    """Issue 15 item 7: on main, an empty or comment-only file got `version = 2`."""
    root = debs.fetch("containerd", "trixie")
    path = tmp_path / "config.toml"
    path.write_text(text)
    for check in (True, False):
        run = run_module(MODULE, {"path": str(path), "name": "nvidia", "state": "absent",
                                  "containerd_binary": str(root / "usr/bin/containerd")}, check=check, diff=True)  # fmt: skip
        assert not run.failed and not run.changed and "diff" not in run.result, run.result
        assert path.read_text() == text
    assert os.listdir(tmp_path) == ["config.toml"]


def nvidia_ctk_layout(tmp_path: Path, version: int) -> tuple[Path, Path, str, str]:
    """A main config importing conf.d/*.toml, and the drop-in `nvidia-ctk runtime configure
    --drop-in-config` writes: the nvidia runtime and default_runtime_name."""
    plugin = CRI2 if version == 2 else '"io.containerd.cri.v1.runtime"'
    main = tmp_path / "config.toml"
    drop_in = tmp_path / "conf.d" / "99-nvidia.toml"
    drop_in.parent.mkdir()
    main_text = (
        f'version = {version}\nimports = ["{tmp_path}/conf.d/*.toml"]\n\n[plugins.{plugin}.containerd]\n'
        f'  default_runtime_name = "runc"\n\n  [plugins.{plugin}.containerd.runtimes.runc]\n'
        '    runtime_type = "io.containerd.runc.v2"\n'
    )
    drop_in_text = (
        f'version = {version}\n\n[plugins.{plugin}.containerd]\n  default_runtime_name = "nvidia"\n\n'
        f'  [plugins.{plugin}.containerd.runtimes.nvidia]\n    runtime_type = "io.containerd.runc.v2"\n\n'
        f'    [plugins.{plugin}.containerd.runtimes.nvidia.options]\n      BinaryName = "{NVIDIA}"\n'
    )
    main.write_text(main_text)
    drop_in.write_text(drop_in_text)
    return main, drop_in, main_text, drop_in_text


def test_a_drop_in_that_keeps_nvidia_the_default_makes_absent_and_default_false_fail(containerd, tmp_path):
    """Issue 15 item 6: on main, state=absent reported no change while the drop-in kept
    nvidia the effective default (containerd's own config dump says so)."""
    main, drop_in, main_text, drop_in_text = nvidia_ctk_layout(tmp_path, 3 if containerd.major == 2 else 2)
    assert containerd.cri(main)["default_runtime_name"] == "nvidia"
    for args in (base_args(containerd, main, state="absent"), base_args(containerd, main, binary_name=NVIDIA, default=False)):
        for check in (True, False):
            run = run_module(MODULE, args, check=check)
            assert run.failed, run.result
            assert "still makes 'nvidia' the default runtime" in run.result["msg"]
            assert str(drop_in) in run.result["msg"] and f"path={drop_in}" in run.result["msg"]
            assert run.result["default_runtime_file"] == str(drop_in)
            assert main.read_text() == main_text and drop_in.read_text() == drop_in_text
            assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.d", "config.toml"]


def test_the_result_says_which_file_defines_the_runtime_and_the_default(containerd, tmp_path):
    main, drop_in, main_text, _drop_in_text = nvidia_ctk_layout(tmp_path, 3 if containerd.major == 2 else 2)
    run = run_module(MODULE, base_args(containerd, main, binary_name=NVIDIA, default=True), check=True)
    assert not run.failed and run.changed, run.result  # the main file gets them too
    assert main.read_text() == main_text
    assert run.result["runtime_file"] == str(drop_in) and run.result["default_runtime_file"] == str(drop_in)
    assert run.result["effective_default_runtime"] == "nvidia" and run.result["drop_ins"] == [str(drop_in)]
    assert run.result["effective_runtime"]["options"]["BinaryName"] == NVIDIA


def test_a_drop_in_containerd_ignores_is_not_named_as_the_source(tmp_path):
    """containerd 2.1 does not take runtimes from a version 2 drop-in imported by a version 3 file (its own
    config dump shows runc as the default and no nvidia): the result must not name that drop-in."""
    containerd_21 = str(debs.fetch("containerd", "sid") / "usr" / "bin" / "containerd")
    main, drop_in, main_text, _drop_in_text = nvidia_ctk_layout(tmp_path, 3)
    plugin = CRI2
    drop_in.write_text(
        f'version = 2\n\n[plugins.{plugin}.containerd]\n  default_runtime_name = "nvidia"\n\n'
        f'  [plugins.{plugin}.containerd.runtimes.nvidia]\n    runtime_type = "io.containerd.runc.v2"\n'
    )
    args = {"path": str(main), "name": "nvidia", "state": "absent", "containerd_binary": containerd_21}
    run = run_module(MODULE, args)
    assert not run.failed and not run.changed, run.result
    assert run.result["effective_default_runtime"] == "runc" and run.result["effective_runtime"] is None
    assert run.result["runtime_file"] is None, "the ignored drop-in was named as defining the runtime"
    assert run.result["default_runtime_file"] == str(main)
    assert main.read_text() == main_text


def test_editing_the_drop_in_itself_takes_nvidia_back(containerd, tmp_path):
    """The way out the failure message names: the module run on the drop-in, then on the main file."""
    main, drop_in, main_text, _drop_in_text = nvidia_ctk_layout(tmp_path, 3 if containerd.major == 2 else 2)
    three_ways(base_args(containerd, drop_in, state="absent"), drop_in)
    run = run_module(MODULE, base_args(containerd, main, state="absent"))
    assert not run.failed and not run.changed, run.result
    assert run.result["effective_default_runtime"] == "runc" and run.result["runtime_file"] is None
    assert main.read_text() == main_text
    assert "nvidia" not in containerd.cri(main)["runtimes"]


# --- regressions found by tests/integration/test_containerd_properties.py ---


def test_containerd_1_losing_its_built_in_runc_is_refused_with_the_way_out(tmp_path):
    """hypothesis found it: containerd 1.x replaces its built-in runtimes with the ones a file
    declares, so nvidia alone in a file without runtimes left 1.6/1.7 without runc, the
    default runtime (the CRI plugin then does not start). containerd 2.1 merges and keeps runc."""
    containerd = containerd_of("bookworm")
    path = tmp_path / "config.toml"
    original = f'version = 2\n[plugins.{CRI2}.containerd]\n  snapshotter = "overlayfs"\n'
    path.write_text(original)
    assert "runc" in containerd.cri(path)["runtimes"]
    add = base_args(containerd, path, binary_name=NVIDIA)
    for check in (True, False):
        run = run_module(MODULE, add, check=check)
        assert run.failed and "would no longer have the runtime(s) runc, its default runtime" in run.result["msg"]
        assert "name=runc" in run.result["msg"] and str(path) in run.result["msg"]
        assert path.read_text() == original and os.listdir(tmp_path) == ["config.toml"]
    # the way out the message names: declare runc, then add nvidia
    three_ways(base_args(containerd, path, name="runc"), path)
    three_ways(add, path)
    assert set(containerd.cri(path)["runtimes"]) == {"runc", "nvidia"}


def test_default_false_for_runc_is_no_change(tmp_path):
    """hypothesis found it: name=runc with default=false was refused by the self-check
    (runc stays the default: it is what the default goes back to)."""
    containerd = containerd_of("sid")
    path = tmp_path / "config.toml"
    original = (
        f'version = 2\n[plugins.{CRI2}.containerd]\n  default_runtime_name = "runc"\n'
        f'  runtimes.runc.runtime_type = "io.containerd.runc.v2"\n'
    )
    path.write_text(original)
    run = run_module(MODULE, base_args(containerd, path, name="runc", default=False))
    assert not run.failed and not run.changed, run.result
    run = three_ways(base_args(containerd, path, name="runc", default=False, options={"SystemdCgroup": True}), path)
    assert run.result["default_runtime"] == "runc" and run.result["effective_default_runtime"] == "runc"


def test_runc_options_of_the_wrong_type_pass_containerds_own_check(containerd, tmp_path):
    """What real containerd says about ``BinaryName = ["a"]``, ``SystemdCgroup = "yes"``, ``IoUid = -1``:
    nothing. 1.6, 1.7 and 2.1 all dump such a file as it is, since a runtime's options stay
    untyped until a container starts; the module's own check (below) is the only one before then."""
    plugin = "io.containerd.grpc.v1.cri" if containerd.major == 1 else "io.containerd.cri.v1.runtime"
    path = tmp_path / "config.toml"
    path.write_text(
        f'version = {2 if containerd.major == 1 else 3}\n[plugins."{plugin}".containerd.runtimes.nv]\n'
        f'  runtime_type = "io.containerd.runc.v2"\n[plugins."{plugin}".containerd.runtimes.nv.options]\n'
        '  BinaryName = ["a"]\n  SystemdCgroup = "yes"\n  IoUid = -1\n'
    )
    assert containerd.cri(path)["runtimes"]["nv"]["options"] == {"BinaryName": ["a"], "SystemdCgroup": "yes", "IoUid": -1}


def test_runc_options_are_type_checked_and_other_names_in_the_file_stay_removable(containerd, tmp_path):
    """A file with runtimes other tools named (``Nvidia``, ``kata-qemu``): a wrong option type is
    refused naming key, value and type; typed options are written (three ways) and containerd
    reads them back; ``Nvidia`` stays untouched, and is then removed (three ways)."""
    version = 2 if containerd.major == 1 else 3
    plugin = "io.containerd.grpc.v1.cri" if version == 2 else "io.containerd.cri.v1.runtime"
    path = tmp_path / "config.toml"
    path.write_text(
        hand_written(version)
        + f'\n[plugins."{plugin}".containerd.runtimes.Nvidia]\n  runtime_type = "io.containerd.runc.v2"\n'
        + f'\n[plugins."{plugin}".containerd.runtimes.kata-qemu]\n  runtime_type = "io.containerd.kata-qemu.v2"\n'
    )
    original = path.read_bytes()

    wrong = run_module(MODULE, base_args(containerd, path, options={"BinaryName": ["a"]}))
    assert wrong.failed and "options.BinaryName=['a'] is not valid for the runc shim" in wrong.result["msg"]
    assert "BinaryName must be a string, not an array" in wrong.result["msg"]
    assert path.read_bytes() == original

    options = {"SystemdCgroup": True, "IoUid": 0, "Root": "/run/nvidia-runc"}
    three_ways(base_args(containerd, path, binary_name=NVIDIA, options=options), path)
    runtimes = containerd.cri(path)["runtimes"]
    assert runtimes["nvidia"]["options"] == {"BinaryName": NVIDIA, **options} or (
        # containerd 1.x dumps every field of the runc options it knows; the ones given must be as given
        {key: runtimes["nvidia"]["options"][key] for key in ("BinaryName", *options)} == {"BinaryName": NVIDIA, **options}
    )
    assert runtimes["Nvidia"]["runtime_type"] == "io.containerd.runc.v2"
    assert runtimes["kata-qemu"]["runtime_type"] == "io.containerd.kata-qemu.v2"

    three_ways(base_args(containerd, path, name="Nvidia", state="absent"), path)
    runtimes = containerd.cri(path)["runtimes"]
    assert "Nvidia" not in runtimes and {"nvidia", "kata-qemu", "runc"} <= set(runtimes)


# --- copy_from: the runtime as `nvidia-ctk runtime configure` derives it ---
# nvidia-container-toolkit, pkg/config/engine/containerd AddRuntime: the new runtime is a copy of the
# whole table of the first low-level runtime the config has (the default unless nvidia*, else runc,
# else crun) with options.BinaryName set; nothing else of the table it replaces is kept.


def nvidia_ctk_copy(source: dict[str, t.Any], **options: t.Any) -> dict[str, t.Any]:
    """nvidia-ctk's copy of ``source`` with BinaryName (and ``options``) set. One deviation the module
    documents: an option ``source`` spells otherwise (kubespray v2.27's ``binaryName``) is not kept beside
    the one set, where nvidia-ctk would leave containerd two spellings to choose from."""
    copy = json.loads(json.dumps(source))
    given = {key.lower() for key in ("BinaryName", *options)}
    kept = {key: value for key, value in (copy.get("options") or {}).items() if key.lower() not in given}
    copy["options"] = {**kept, "BinaryName": NVIDIA, **options}
    return copy


def runs_as(runtime: dict[str, t.Any]) -> dict[str, t.Any]:
    """What containerd runs a runtime with, from its dumped table. containerd 2.x gives a runtime without
    a sandboxer the pod sandbox (internal/cri/config ValidateRuntimeConfig: "If empty, use default podSandbox
    mode"); the runc shim reads its options into a protobuf message (runcoptions.Options), matching names
    whatever their case, where an absent field is its zero value. Two spellings of one option are refused
    here: which one containerd takes is not defined."""
    table = {key: value for key, value in runtime.items() if key != "options"}
    if table.get("sandboxer") == "":
        table["sandboxer"] = "podsandbox"
    options = runtime.get("options") or {}
    spellings = [key.lower() for key in options]
    assert len(spellings) == len(set(spellings)), f"one option spelt twice: {sorted(options)}"
    table["options"] = {key.lower(): value for key, value in options.items() if value not in ("", 0, [], None)}
    return table


def cri_plugin(version: int) -> str:
    return "io.containerd.grpc.v1.cri" if version == 2 else "io.containerd.cri.v1.runtime"


def runc_and_tuned_nvidia(version: int) -> str:
    plugin = cri_plugin(version)
    return f"""version = {version}

[plugins."{plugin}".containerd]
  default_runtime_name = "runc"

  [plugins."{plugin}".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    base_runtime_spec = "/etc/containerd/cri-base.json"
    privileged_without_host_devices = true
    [plugins."{plugin}".containerd.runtimes.runc.options]
      BinaryName = "/usr/bin/runc"
      SystemdCgroup = true

  # tuned by hand: what runc does not set goes, as nvidia-ctk replaces the whole table
  [plugins."{plugin}".containerd.runtimes.nvidia]
    runtime_type = "io.containerd.runc.v2"
    cni_conf_dir = "/etc/cni/nvidia"
    [plugins."{plugin}".containerd.runtimes.nvidia.options]
      BinaryName = "{NVIDIA}"
      NoPivotRoot = true
"""


def test_copy_from_makes_the_runtime_runcs_table_with_its_own_binary_name(containerd, tmp_path):
    """Version 2 on containerd 1.6 and 1.7, version 3 on 2.1: check mode, diff, the run and the re-run; then
    runc loses a key and the next run takes it from the nvidia runtime too."""
    version = 2 if containerd.major == 1 else 3
    path = tmp_path / "config.toml"
    path.write_text(runc_and_tuned_nvidia(version))
    args = base_args(containerd, path, binary_name=NVIDIA, copy_from=["runc", "crun"], default=True)
    run = three_ways(args, path)
    assert run.result["copied_from"] == "runc"
    cri = containerd.cri(path)
    nvidia, runc = cri["runtimes"]["nvidia"], cri["runtimes"]["runc"]
    assert cri["default_runtime_name"] == "nvidia"
    assert runs_as(nvidia) == runs_as(nvidia_ctk_copy(runc))
    assert nvidia["base_runtime_spec"] == "/etc/containerd/cri-base.json" and nvidia["options"]["SystemdCgroup"] is True
    assert nvidia["cni_conf_dir"] == "" and not nvidia["options"].get("NoPivotRoot"), "a key runc lacks was kept"

    # the kubelet moved to cgroupfs: runc loses SystemdCgroup (its first line in the file is runc's)
    path.write_text(path.read_text().replace("      SystemdCgroup = true\n", "", 1))
    three_ways(args, path)
    cri = containerd.cri(path)
    nvidia, runc = cri["runtimes"]["nvidia"], cri["runtimes"]["runc"]
    assert not runc["options"].get("SystemdCgroup") and not nvidia["options"].get("SystemdCgroup")
    assert runs_as(nvidia) == runs_as(nvidia_ctk_copy(runc))
    written = tomlkit.parse(path.read_text()).unwrap()["plugins"][cri_plugin(version)]["containerd"]["runtimes"]
    assert written["nvidia"]["options"] == {"BinaryName": NVIDIA}


def test_copy_from_takes_the_source_runtime_from_a_drop_in(tmp_path):
    """runc's tuning lives in an imported file (containerd 2.1 merges it key by key into the main file's
    runc): the nvidia runtime, written into the main file, gets it, as containerd's config dump shows it."""
    containerd = containerd_of("sid")
    plugin = cri_plugin(3)
    path = tmp_path / "config.toml"
    (tmp_path / "conf.d").mkdir()
    path.write_text(
        f'version = 3\nimports = ["{tmp_path}/conf.d/*.toml"]\n\n[plugins."{plugin}".containerd]\n'
        f'  default_runtime_name = "runc"\n  [plugins."{plugin}".containerd.runtimes.runc]\n'
        '    runtime_type = "io.containerd.runc.v2"\n'
    )
    (tmp_path / "conf.d" / "10-runc.toml").write_text(
        f'version = 3\n[plugins."{plugin}".containerd.runtimes.runc]\n  base_runtime_spec = "/etc/containerd/cri-base.json"\n'
        f'[plugins."{plugin}".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n'
    )
    run = three_ways(base_args(containerd, path, binary_name=NVIDIA, copy_from=["runc"]), path)
    assert run.result["copied_from"] == "runc" and run.result["drop_ins"] == [str(tmp_path / "conf.d" / "10-runc.toml")]
    runtimes = containerd.cri(path)["runtimes"]
    assert runtimes["runc"]["base_runtime_spec"] == "/etc/containerd/cri-base.json"
    assert runs_as(runtimes["nvidia"]) == runs_as(nvidia_ctk_copy(runtimes["runc"]))


def test_copy_from_without_containerd_copies_the_table_as_the_file_writes_it(tmp_path):
    """validate=false and no containerd: nvidia-ctk's copy of runc's table as the file writes it, exactly
    (keys containerd would fill in included); the real containerd 2.1 then runs nvidia as runc."""
    path = tmp_path / "config.toml"
    path.write_text(runc_and_tuned_nvidia(3))
    args = {"path": str(path), "name": "nvidia", "binary_name": NVIDIA, "copy_from": ["runc"], "validate": False,
            "containerd_binary": str(tmp_path / "no-containerd")}  # fmt: skip
    run = three_ways(args, path)
    assert run.result["copied_from"] == "runc"
    written = tomlkit.parse(path.read_text()).unwrap()["plugins"][cri_plugin(3)]["containerd"]["runtimes"]
    assert written["nvidia"] == nvidia_ctk_copy(written["runc"])
    runtimes = containerd_of("sid").cri(path)["runtimes"]
    assert runs_as(runtimes["nvidia"]) == runs_as(nvidia_ctk_copy(runtimes["runc"]))


def test_copy_from_falls_back_to_crun_where_containerd_has_no_runc(containerd, tmp_path):
    """A node running crun, with no runc in its config: containerd 1.x then has no runc (it keeps only the
    runtimes a file declares), and crun is copied. containerd 2.1 always has its built-in runc (it merges
    the file into its defaults, as its config dump shows), so runc it is there, as nvidia-ctk reading that
    dump would pick."""
    version = 2 if containerd.major == 1 else 3
    plugin = cri_plugin(version)
    path = tmp_path / "config.toml"
    path.write_text(
        f'version = {version}\n[plugins."{plugin}".containerd]\n  default_runtime_name = "crun"\n'
        f'  [plugins."{plugin}".containerd.runtimes.crun]\n    runtime_type = "io.containerd.runc.v2"\n'
        f'    [plugins."{plugin}".containerd.runtimes.crun.options]\n      BinaryName = "/usr/bin/crun"\n'
        "      SystemdCgroup = true\n"
    )
    source = "crun" if containerd.major == 1 else "runc"
    assert ("runc" in containerd.cri(path)["runtimes"]) is (source == "runc")
    run = three_ways(base_args(containerd, path, binary_name=NVIDIA, copy_from=["runc", "crun"]), path)
    assert run.result["copied_from"] == source
    runtimes = containerd.cri(path)["runtimes"]
    assert runs_as(runtimes["nvidia"]) == runs_as(nvidia_ctk_copy(runtimes[source]))
    assert runtimes["nvidia"]["options"].get("SystemdCgroup", False) is (source == "crun")


KUBESPRAY_V2_27_RUNC = f"""version = 2
[plugins.{CRI2}.containerd]
  default_runtime_name = "runc"
  [plugins.{CRI2}.containerd.runtimes]
    [plugins.{CRI2}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_engine = ""
      runtime_root = ""
      base_runtime_spec = "/etc/containerd/cri-base.json"

      [plugins.{CRI2}.containerd.runtimes.runc.options]
        systemdCgroup = true
        binaryName = "/usr/local/bin/runc"
"""  # as kubespray v2.27.0's config.toml.j2 renders its containerd_runc_runtime


def test_copy_from_spellings_of_kubespray_v2_27_and_the_operators_options_win(tmp_path):
    """kubespray v2.27 writes runc's options ``systemdCgroup`` and ``binaryName`` (containerd 1.7, version 2):
    the copy keeps systemdCgroup and never binaryName. Then the operator's ``SystemdCgroup: false`` and a
    setting win over the copy, and leave one spelling of the option, not two."""
    containerd = containerd_of("trixie")
    path = tmp_path / "config.toml"
    path.write_text(KUBESPRAY_V2_27_RUNC)
    args = base_args(containerd, path, binary_name=NVIDIA, copy_from=["runc"])
    three_ways(args, path)
    runtimes = containerd.cri(path)["runtimes"]
    assert runtimes["nvidia"]["options"] == {"systemdCgroup": True, "BinaryName": NVIDIA}
    assert runs_as(runtimes["nvidia"]) == runs_as(nvidia_ctk_copy(runtimes["runc"]))

    own = {**args, "options": {"SystemdCgroup": False}, "settings": {"privileged_without_host_devices": True}}
    three_ways(own, path)
    runtimes = containerd.cri(path)["runtimes"]
    expected = {**nvidia_ctk_copy(runtimes["runc"], SystemdCgroup=False), "privileged_without_host_devices": True}
    assert runs_as(runtimes["nvidia"]) == runs_as(expected)
    assert runtimes["nvidia"]["options"] == {"SystemdCgroup": False, "BinaryName": NVIDIA}


def cri_plugin_table(containerd: Containerd, path: Path) -> dict[str, t.Any]:
    """The dumped CRI plugin table, where enable_cdi and cdi_spec_dirs are."""
    data = containerd.dump(path)
    return data["plugins"][cri_plugin(2 if containerd.major == 1 else 3)]


def without_cdi_switch(containerd: Containerd, path: Path) -> dict[str, t.Any]:
    data = containerd.dump(path)
    data.pop("imports", None)  # containerd 1.x lists the file it read
    data["plugins"][cri_plugin(2 if containerd.major == 1 else 3)].pop("enable_cdi", None)
    return data


def test_enable_cdi_on_the_distro_default_config(containerd, tmp_path):
    """containerd's own default: 1.7 writes enable_cdi = false, which becomes true (three ways) with nothing else in its
    config dump changed; 2.1 writes enable_cdi = true and is left as it is; 1.6 has no CDI (no enable_cdi in its dump)
    and is refused, naming its version, in check mode and for real, the file untouched."""
    path = tmp_path / "config.toml"
    path.write_text(containerd.default_config())
    before = path.read_bytes()
    args = base_args(containerd, path, enable_cdi=True)
    if containerd.suite == "bookworm":
        assert "enable_cdi" not in cri_plugin_table(containerd, path)
        for check in (True, False):
            run = run_module(MODULE, args, check=check)
            assert run.failed and "1.6.20" in run.result["msg"] and "no CDI support" in run.result["msg"], run.result
            assert path.read_bytes() == before and os.listdir(tmp_path) == ["config.toml"]
        return
    if containerd.suite == "sid":
        run = run_module(MODULE, {**args, "name": "runc"}, diff=True)
        assert not run.failed and not run.changed and run.result["cdi_enabled"] is True, run.result
        assert run.result["cdi_spec_dirs"] == ["/etc/cdi", "/var/run/cdi"] and path.read_bytes() == before
        return
    original = without_cdi_switch(containerd, path)
    assert cri_plugin_table(containerd, path)["enable_cdi"] is False
    real = three_ways({**args, "name": "runc"}, path)
    assert real.result["cdi_enabled"] is True and real.result["cdi_spec_dirs"] == ["/etc/cdi", "/var/run/cdi"]
    removed, added = removed_and_added(before.decode(), path.read_text())
    assert [line.strip() for line in removed] == ["enable_cdi = false"] and [line.strip() for line in added] == [
        "enable_cdi = true"
    ]
    assert cri_plugin_table(containerd, path)["enable_cdi"] is True
    assert without_cdi_switch(containerd, path) == original
    # and off again: the option says what containerd does, both ways
    off = run_module(MODULE, {**args, "name": "runc", "enable_cdi": False})
    assert off.changed and off.result["cdi_enabled"] is False and path.read_bytes() == before


def test_enable_cdi_in_a_hand_written_file_keeps_every_other_line(tmp_path):
    """A version 2 file that does not write the CRI plugin's own table (only its containerd table): containerd 1.7 has
    CDI off, so the table gets enable_cdi = true, and every line of the file stays as it was."""
    containerd = containerd_of("trixie")
    path = tmp_path / "config.toml"
    original = hand_written(2)
    path.write_text(original)
    dumped = without_cdi_switch(containerd, path)
    real = three_ways(base_args(containerd, path, name="runc", enable_cdi=True), path)
    assert real.result["cdi_enabled"] is True
    removed, added = removed_and_added(original, path.read_text())
    assert removed == [] and "".join(added).strip() == '[plugins."io.containerd.grpc.v1.cri"]\nenable_cdi = true'
    assert cri_plugin_table(containerd, path)["enable_cdi"] is True and without_cdi_switch(containerd, path) == dumped


def test_a_drop_in_that_turns_cdi_off_fails_enable_cdi_naming_it(tmp_path):
    """containerd 2.1 merges a drop-in key by key: a drop-in's enable_cdi = false wins over the main file's true, so
    enable_cdi=true fails naming the drop-in, changing nothing; without the import it passes with no change."""
    containerd = containerd_of("sid")
    main = tmp_path / "config.toml"
    drop_in = tmp_path / "conf.d" / "50-no-cdi.toml"
    drop_in.parent.mkdir()
    drop_in.write_text("version = 3\n\n[plugins.'io.containerd.cri.v1.runtime']\n  enable_cdi = false\n")
    default = containerd.default_config()
    assert "imports = []\n" in default
    text = default.replace("imports = []\n", f"imports = ['{tmp_path}/conf.d/*.toml']\n", 1)
    main.write_text(text)
    assert cri_plugin_table(containerd, main)["enable_cdi"] is False
    for check in (True, False):
        run = run_module(MODULE, base_args(containerd, main, name="runc", enable_cdi=True), check=check)
        assert run.failed and "enable_cdi = false, not true" in run.result["msg"], run.result
        assert f"set by {drop_in}" in run.result["msg"] and run.result["cdi_enabled"] is False
        assert main.read_text() == text


def test_enable_cdi_without_containerd_follows_the_config_version(tmp_path):
    """validate=false (containerd not asked): a version 2 file (containerd 1.x, CDI off by default) gets the key, a
    version 3 file (containerd 2.x, on by default) does not; cdi_enabled is not returned."""
    for version, written in ((2, True), (3, False)):
        path = tmp_path / f"v{version}.toml"
        path.write_text(f"version = {version}\n")
        args = {"path": str(path), "name": "runc", "validate": False, "enable_cdi": True}
        run = run_module(MODULE, args)
        assert not run.failed and "cdi_enabled" not in run.result, run.result
        assert ("enable_cdi = true" in path.read_text()) is written, path.read_text()
        assert not run_module(MODULE, args).changed
