"""kubegpu.core.docker_runtime through real ``ansible`` on temporary daemon.json files.

Tests marked ``slow`` start the real dockerd 26.1 of Debian 13 on the result
(tests/support/dockerd.py); nothing is simulated.
"""

from __future__ import annotations

import json
import stat
import typing as t
from pathlib import Path

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils import _json_runtime as json_runtime
from tests.support import debs, dockerd
from tests.support.adhoc import ModuleRun, run_module

MODULE = "kubegpu.core.docker_runtime"
NVIDIA = "/usr/bin/nvidia-container-runtime"
INSTALLED = "/bin/true"  # an executable every test host has, for a runtime that must exist
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
    """A default runtime with runtimeArgs must be installed (dockerd looks for it at start): /bin/true plays it."""
    path = tmp_path / "daemon.json"
    path.write_text(DAEMON_JSON)
    original = json.loads(DAEMON_JSON)
    args = {"path": str(path), "name": "nvidia", "runtime_path": INSTALLED}

    three_ways({**args, "runtime_args": ["--debug"]}, path)
    data = json.loads(path.read_text())
    assert data["runtimes"] == {"nvidia": {"path": INSTALLED, "runtimeArgs": ["--debug"]}}
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


def test_default_alone_switches_an_existing_runtime_and_leaves_it_as_written(tmp_path):
    """Only the default is asked for: the runtime, here in the shim form nvidia-ctk writes, is kept as it is."""
    path = tmp_path / "daemon.json"
    shim = {"runtimeType": "io.containerd.runc.v2", "options": {"BinaryName": NVIDIA}}
    path.write_text(json.dumps({"log-driver": "json-file", "runtimes": {"nvidia": shim}}, indent=4) + "\n")
    three_ways({"path": str(path), "name": "nvidia", "default": True}, path)
    data = json.loads(path.read_text())
    assert data == {"log-driver": "json-file", "runtimes": {"nvidia": shim}, "default-runtime": "nvidia"}
    three_ways({"path": str(path), "name": "nvidia", "default": False}, path)
    assert "default-runtime" not in json.loads(path.read_text())


def test_default_alone_on_a_runtime_the_file_lacks_is_refused_naming_it(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(DAEMON_JSON)
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "default": True})
    assert run.failed and f"{path} has no runtime 'nvidia'; give runtime_path" in run.result["msg"], run.result
    assert path.read_text() == DAEMON_JSON


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
        pytest.param('["debug"]', {}, "must hold a JSON object, found array", id="not-an-object"),
        pytest.param('{"debug": true, "debug": false}', {}, "duplicate key 'debug'", id="duplicate-key"),
        pytest.param('{"runtimes": []}', {}, "'runtimes' must be an object, found array", id="runtimes-list"),
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


# --- dockerd's runtime rules (issue 15, item 3), judged by the real dockerd 26.1 of Debian 13 ---

SHIM_NVIDIA = {"runtimeType": "io.containerd.runc.v2", "options": {"BinaryName": NVIDIA}}


@pytest.fixture
def real_dockerd():
    why_not = dockerd.available()
    if why_not:
        pytest.skip(why_not)
    return dockerd


@pytest.mark.slow
@pytest.mark.parametrize(
    ("document", "starts"),
    [
        pytest.param(
            {"runtimes": {"nvidia": {"path": NVIDIA, "runtimeType": "io.containerd.runc.v2"}}}, False, id="path-and-type"
        ),
        pytest.param({"runtimes": {"nvidia": {"Path": NVIDIA, "runtimeType": "io.containerd.runc.v2"}}}, False, id="key-case"),
        pytest.param(
            {"runtimes": {"nvidia": {"path": NVIDIA, "options": {"BinaryName": NVIDIA}}}}, False, id="options-with-path"
        ),
        pytest.param(
            {"runtimes": {"kata": {"runtimeType": "io.containerd.kata.v2", "runtimeArgs": ["-x"]}}}, False, id="args-with-type"
        ),
        pytest.param({"runtimes": {"nvidia": {"runtimeArgs": ["-x"]}}}, False, id="neither-path-nor-type"),
        pytest.param({"runtimes": {"runc": {"path": "/usr/sbin/runc"}}}, False, id="runc-reserved"),
        pytest.param({"default-runtime": "nvidia"}, False, id="default-unknown"),
        pytest.param({"runtimes": {"nvidia": {"path": NVIDIA, "runtimeArgs": 1}}}, False, id="args-not-a-list"),
        pytest.param(
            {"runtimes": {"nvidia": SHIM_NVIDIA, "crun": {"path": "/usr/bin/crun", "options": {}}}}, True, id="both-forms"
        ),
        pytest.param({"default-runtime": "io.containerd.kata.v2"}, True, id="default-shim-name"),
        pytest.param({"default-runtime": "io.containerd.runc.v2", "runtimes": {}}, True, id="default-builtin"),
    ],
)
def test_the_rules_the_module_knows_are_the_rules_dockerd_applies(real_dockerd, tmp_path, document, starts):
    """_json_runtime.problems() finds a problem exactly when the real dockerd refuses to start."""
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(document))
    report = real_dockerd.start(path)
    assert report.started is starts, report.error
    assert (json_runtime.problems(document) == []) is starts, json_runtime.problems(document)


@pytest.mark.slow
def test_runtime_path_on_a_shim_runtime_is_refused_and_dockerd_still_starts(real_dockerd, tmp_path):
    """Issue 15 item 3: main added 'path' beside 'runtimeType' and dockerd 26.1 refused to start."""
    path = tmp_path / "daemon.json"
    text = json.dumps({"log-driver": "json-file", "runtimes": {"nvidia": SHIM_NVIDIA}}, indent=2) + "\n"
    path.write_text(text)
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "runtime_path": NVIDIA, "default": True})
    assert run.failed, run.result
    message = run.result["msg"]
    assert "runtimes.nvidia" in message and "runtimeType" in message and "runtime_type" in message, message
    assert path.read_text() == text
    assert real_dockerd.start(path).started


@pytest.mark.slow
def test_runtime_type_form_three_ways_and_dockerd_runs_it_as_default(real_dockerd, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(DAEMON_JSON.replace('"data-root": "/srv/docker",\n    ', ""))
    args = {"path": str(path), "name": "nvidia", "runtime_type": "io.containerd.runc.v2"}
    three_ways({**args, "runtime_options": {"BinaryName": NVIDIA}, "default": True}, path)
    data = json.loads(path.read_text())
    assert data["runtimes"] == {"nvidia": SHIM_NVIDIA} and data["default-runtime"] == "nvidia"
    three_ways({**args, "runtime_options": {"SystemdCgroup": True}}, path)
    assert json.loads(path.read_text())["runtimes"]["nvidia"]["options"] == {"BinaryName": NVIDIA, "SystemdCgroup": True}
    report = real_dockerd.start(path)
    assert report.started, report.error
    assert "nvidia" in report.runtimes and report.default_runtime == "nvidia"
    refused = run_module(
        MODULE, {"path": str(path), "name": "nvidia", "runtime_type": "io.containerd.runc.v2", "runtime_args": ["-x"]}
    )
    assert refused.failed and "runtime_args" in refused.result["msg"]


@pytest.mark.slow
def test_path_runtime_with_args_as_default_is_what_dockerd_reports(real_dockerd, tmp_path):
    """dockerd looks for a default runtime's binary at start when it has runtimeArgs: Debian's runc plays it."""
    binary = str(debs.fetch("runc", "trixie") / "usr" / "sbin" / "runc")
    path = tmp_path / "daemon.json"
    path.write_text(DAEMON_JSON.replace('"data-root": "/srv/docker",\n    ', ""))
    args = {"path": str(path), "name": "nvidia", "runtime_args": ["--debug"], "default": True}
    refused = run_module(MODULE, {**args, "runtime_path": NVIDIA})
    assert refused.failed and f"its path {NVIDIA!r}" in refused.result["msg"], refused.result["msg"]
    three_ways({**args, "runtime_path": binary}, path)
    report = real_dockerd.start(path)
    assert report.started, report.error
    assert report.runtimes["nvidia"]["path"] == binary and report.default_runtime == "nvidia"


def test_path_runtime_request_on_an_existing_path_runtime_with_other_keys_keeps_them(tmp_path):
    path = tmp_path / "daemon.json"
    # nvidia-ctk writes "args" (which dockerd ignores) and a bare command name
    path.write_text('{"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}')
    three_ways({"path": str(path), "name": "nvidia", "runtime_path": NVIDIA}, path)
    assert json.loads(path.read_text()) == {"runtimes": {"nvidia": {"args": [], "path": NVIDIA}}}


def test_runtime_type_on_a_path_runtime_is_refused(tmp_path):
    path = tmp_path / "daemon.json"
    text = '{"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}}'
    path.write_text(text)
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "runtime_type": "io.containerd.runc.v2"})
    assert run.failed and "runtimes.nvidia is a path runtime" in run.result["msg"] and "runtime_path" in run.result["msg"]
    assert path.read_text() == text


@pytest.mark.parametrize(
    ("runtimes", "named"),
    [
        pytest.param(
            {"kata": {"path": "/usr/bin/kata-runtime", "runtimeType": "io.containerd.kata.v2"}},
            "runtimes.kata has both",
            id="both",
        ),
        pytest.param({"runc": {"path": "/usr/sbin/runc"}}, "runtimes.runc: the name 'runc' is reserved", id="runc"),
        pytest.param({"crun": {}}, "runtimes.crun has neither", id="empty"),
    ],
)
def test_a_file_another_runtime_already_breaks_is_not_written(tmp_path, runtimes, named):
    """The operator's broken runtime is not rewritten, and no file dockerd cannot start with is written."""
    path = tmp_path / "daemon.json"
    text = json.dumps({"runtimes": runtimes})
    path.write_text(text)
    run = run_module(MODULE, {"path": str(path), "name": "nvidia", "runtime_path": NVIDIA})
    assert run.failed and named in run.result["msg"] and "(already so in the file)" in run.result["msg"], run.result["msg"]
    assert path.read_text() == text


def test_absent_leaves_a_default_that_names_a_shim(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"default-runtime": "io.containerd.kata.v2", "runtimes": {"nvidia": {"path": "/x"}}}')
    three_ways({"path": str(path), "name": "nvidia", "state": "absent"}, path)
    assert json.loads(path.read_text()) == {"default-runtime": "io.containerd.kata.v2"}


@pytest.mark.slow
def test_byte_order_mark_is_kept_and_dockerd_reads_the_result(real_dockerd, tmp_path):
    """dockerd reads a daemon.json with a UTF-8 BOM (Windows editors write one); so does the module, keeping it."""
    path = tmp_path / "daemon.json"
    path.write_bytes(b'\xef\xbb\xbf{\n  "log-level": "info"\n}\n')
    assert real_dockerd.start(path).started
    three_ways({"path": str(path), "name": "nvidia", "runtime_path": NVIDIA, "default": True}, path)
    assert path.read_bytes().startswith(b'\xef\xbb\xbf{\n  "log-level": "info",\n  "runtimes"')
    report = real_dockerd.start(path)
    assert report.started and report.default_runtime == "nvidia", report.error
