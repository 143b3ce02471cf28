"""kubegpu.core.docker_runtime through real ``ansible`` on temporary daemon.json files."""

from __future__ import annotations

import json
import stat
import typing as t
from pathlib import Path

import pytest

from tests.support.adhoc import ModuleRun, run_module

MODULE = "kubegpu.core.docker_runtime"
NVIDIA = "/usr/bin/nvidia-container-runtime"
# a daemon.json as operators write it: 4-space indent, unrelated keys, nested objects
DAEMON_JSON = """{
    "data-root": "/srv/docker",
    "log-driver": "json-file",
    "log-opts": {
        "max-size": "100m"
    },
    "exec-opts": ["native.cgroupdriver=systemd"],
    "registry-mirrors": ["https://mirror.example.internal"]
}
"""


def snapshot(path: Path) -> tuple[bytes | None, list[str]]:
    top = next(parent for parent in path.parents if parent.exists())
    return (path.read_bytes() if path.exists() else None), sorted(str(p.relative_to(top)) for p in top.rglob("*"))


def three_ways(args: dict[str, t.Any], path: Path) -> ModuleRun:
    """Check mode reports the change and changes nothing; the real run makes it; a re-run does nothing."""
    before = snapshot(path)
    check = run_module(MODULE, args, check=True, diff=True)
    assert not check.failed, check.result
    assert check.changed and check.result["restart_required"]
    assert snapshot(path) == before
    real = run_module(MODULE, args, diff=True)
    assert not real.failed, real.result
    assert real.changed and real.result["restart_required"]
    assert real.result["diff"]["after"] == path.read_text() == check.result["diff"]["after"]
    again = run_module(MODULE, args)
    assert not again.failed and not again.changed and not again.result["restart_required"]
    return real


@pytest.mark.matrix
def test_add_default_and_remove_keep_unrelated_keys(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(DAEMON_JSON)
    original = json.loads(DAEMON_JSON)
    args = {"path": str(path), "name": "nvidia", "runtime_path": NVIDIA}

    three_ways({**args, "runtime_args": ["--debug"]}, path)
    data = json.loads(path.read_text())
    assert data["runtimes"] == {"nvidia": {"path": NVIDIA, "runtimeArgs": ["--debug"]}}
    assert {key: data[key] for key in original} == original
    assert list(data)[: len(original)] == list(original), "key order changed"
    assert '\n    "data-root"' in path.read_text(), "indentation changed"

    three_ways({**args, "default": True}, path)
    data = json.loads(path.read_text())
    assert data["default-runtime"] == "nvidia"
    assert data["runtimes"]["nvidia"]["runtimeArgs"] == ["--debug"], "omitted runtime_args must keep the old ones"

    three_ways({**args, "default": False}, path)
    assert "default-runtime" not in json.loads(path.read_text())

    three_ways({"path": str(path), "name": "nvidia", "state": "absent"}, path)
    assert json.loads(path.read_text()) == original


def test_missing_file_is_created_and_removing_the_default_runtime_clears_default(tmp_path):
    path = tmp_path / "etc" / "docker" / "daemon.json"
    three_ways({"path": str(path), "name": "nvidia", "runtime_path": NVIDIA, "default": True}, path)
    assert json.loads(path.read_text()) == {"runtimes": {"nvidia": {"path": NVIDIA}}, "default-runtime": "nvidia"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    three_ways({"path": str(path), "name": "nvidia", "state": "absent"}, path)
    assert json.loads(path.read_text()) == {}


def test_other_default_runtime_is_left_alone(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"default-runtime": "crun", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}\n')
    run = three_ways({"path": str(path), "name": "nvidia", "runtime_path": NVIDIA, "default": False}, path)
    assert run.result["default_runtime"] == "crun"
    assert json.loads(path.read_text())["runtimes"]["crun"] == {"path": "/usr/bin/crun"}


def test_same_content_in_another_layout_is_not_rewritten(tmp_path):
    path = tmp_path / "daemon.json"
    text = '{"runtimes":{"nvidia":{"path":"/usr/bin/nvidia-container-runtime"}},"debug":true}'
    path.write_text(text)
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "runtime_path": NVIDIA})
    assert not run.failed and not run.changed and path.read_text() == text


def test_backup_keeps_the_old_file_and_mode_is_kept(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(DAEMON_JSON)
    path.chmod(0o600)
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "runtime_path": NVIDIA, "backup": True})
    assert run.changed and Path(run.result["backup_file"]).read_text() == DAEMON_JSON
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        pytest.param('{\n  "debug": true,\n}\n', {}, "is not valid JSON (line 3, column 1)", id="trailing-comma"),
        pytest.param('{"debug": true', {}, "is not valid JSON (line 1", id="truncated"),
        pytest.param('["debug"]', {}, "must hold a JSON object, found list", id="not-an-object"),
        pytest.param('{"debug": true, "debug": false}', {}, "duplicate key 'debug'", id="duplicate-key"),
        pytest.param('{"runtimes": []}', {}, "'runtimes' must be an object, found list", id="runtimes-list"),
        pytest.param('{"default-runtime": 1}', {}, "'default-runtime' must be a string", id="default-not-string"),
        pytest.param('{"runtimes": {"nvidia": "x"}}', {}, "runtimes.nvidia must be an object", id="runtime-not-object"),
        pytest.param("{}", {"name": "runc"}, "docker's built-in runtime", id="reserved-name"),
        pytest.param("{}", {"name": "nv/idia"}, "name='nv/idia' is not a valid runtime name", id="bad-name"),
        pytest.param("{}", {"runtime_path": "nvidia-container-runtime"}, "is not an absolute path", id="relative-path"),
        pytest.param("{}", {"state": "absent", "default": True}, "default=true cannot be combined", id="absent-default"),
    ],
)
def test_malformed_daemon_json_or_bad_input_fails_and_changes_nothing(tmp_path, text, args, message):
    path = tmp_path / "daemon.json"
    path.write_text(text)
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "runtime_path": NVIDIA, **args})
    assert run.failed and message in run.result["msg"], run.result["msg"]
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["daemon.json"]


def test_runs_on_the_hosts_plain_python(tmp_path):
    """docker_runtime needs only the standard library: the host's /usr/bin/python3 plays a bare node."""
    path = tmp_path / "daemon.json"
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "runtime_path": NVIDIA}, interpreter="/usr/bin/python3")
    assert not run.failed and run.changed, run.result
    assert json.loads(path.read_text()) == {"runtimes": {"nvidia": {"path": NVIDIA}}}
