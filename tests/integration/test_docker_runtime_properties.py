"""Property-based tests of kubegpu.core.docker_runtime (issue 15), judged by the real dockerd 26.1.

hypothesis writes daemon.json files the way operators, nvidia-ctk and
distributions do (log, storage, registry and cgroup keys, other runtimes in the
path form and the runtimeType + options form, any key order, indentation, one
line, unicode, a UTF-8 byte-order mark) and asks for a runtime present (either
form, default true/false/omitted) or absent. The module runs in-process
(``patch_module_args`` + ``main()``, the code ``ansible`` runs, without its
start-up cost); the per-behaviour tests in test_docker_runtime.py go through
real ``ansible``. Invariants: check mode leaves the file byte-identical and
predicts the real run; only ``runtimes.<name>`` and ``default-runtime`` differ,
every other key is identical and in the same order; a re-run changes nothing;
``absent`` after ``present`` gives back the original data; or the module refuses
with a message and the file stays byte-identical, and only for a reason the
test can name. For a few examples the real dockerd of Debian 13 starts on the
result (tests/support/dockerd.py) and reports the requested runtimes and
default. Nothing is simulated.
"""

from __future__ import annotations

import contextlib
import io
import json
import typing as t
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ansible_collections.kubegpu.core.plugins.module_utils import _json_runtime as json_runtime
from ansible_collections.kubegpu.core.plugins.modules import docker_runtime
from tests.support import dockerd
from tests.support.module_args import patch_module_args

NAME = "nvidia"
NVIDIA = "/usr/bin/nvidia-container-runtime"
BUILTIN = {"runc", "io.containerd.runc.v2"}

pytestmark = pytest.mark.property

# --- what daemon.json files hold ---

SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
TOP_LEVEL = {
    "log-driver": st.sampled_from(["json-file", "local"]),
    "log-opts": st.fixed_dictionaries({}, optional={"max-size": st.sampled_from(["10m", "100m"]), "max-file": st.just("3")}),
    "exec-opts": st.sampled_from([["native.cgroupdriver=systemd"], ["native.cgroupdriver=cgroupfs"], []]),
    "storage-driver": st.sampled_from(["overlay2", "vfs"]),
    "registry-mirrors": st.lists(
        st.sampled_from(["https://mirror.example.internal", "https://m2.example.internal:5000"]), unique=True
    ),
    "insecure-registries": st.lists(st.sampled_from(["registry.local:5000", "10.0.0.0/8"]), unique=True),
    "live-restore": st.booleans(),
    "debug": st.booleans(),
    "max-concurrent-downloads": st.integers(1, 10),
    # dockerd refuses two labels with one key ("conflict labels"): one value per key
    "labels": st.dictionaries(
        st.sampled_from(["zone", "rack", "gpu.vendor"]),
        SAFE_TEXT.filter(lambda s: "=" not in s and s.strip() == s and s),
        max_size=2,
    ).map(lambda labels: [f"{key}={value}" for key, value in labels.items()]),
    "features": st.fixed_dictionaries({}, optional={"buildkit": st.booleans(), "containerd-snapshotter": st.just(False)}),
    "default-ulimits": st.just({"nofile": {"Name": "nofile", "Hard": 65536, "Soft": 65536}}),
}
# keys dockerd also takes as flags; tests/support/dockerd.py sets those flags, so a file with them cannot be started there
FLAG_KEYS = {"data-root": st.sampled_from(["/srv/docker", "/var/lib/dockér"]), "exec-root": st.just("/run/docker-x")}

PATH_RUNTIME = st.fixed_dictionaries(
    {"path": st.sampled_from(["/usr/bin/crun", "/usr/local/bin/youki", "crun", "nvidia-container-runtime"])},
    optional={"runtimeArgs": st.lists(st.sampled_from(["--debug", "--systemd-cgroup", "--log=/tmp/x"]), min_size=1, max_size=2)},
)
NVIDIA_CTK_RUNTIME = st.just({"args": [], "path": "nvidia-container-runtime"})  # what nvidia-ctk writes
SHIM_RUNTIME = st.one_of(
    st.fixed_dictionaries(
        {"runtimeType": st.just("io.containerd.runc.v2")},
        optional={
            "options": st.fixed_dictionaries(
                {"BinaryName": st.sampled_from([NVIDIA, "/usr/bin/crun"])}, optional={"SystemdCgroup": st.booleans()}
            )
        },
    ),
    st.fixed_dictionaries(
        {"runtimeType": st.sampled_from(["io.containerd.kata.v2", "io.containerd.runsc.v1"])},
        optional={"options": st.fixed_dictionaries({}, optional={"ConfigPath": st.just("/etc/kata/configuration.toml")})},
    ),
)
OTHER_NAMES = st.sampled_from(["crun", "kata", "runsc", "youki", "sysbox-runc", "nvidia-cdi", "nvidia"])


@st.composite
def daemon_documents(draw: t.Callable[..., t.Any], for_dockerd: bool = False) -> dict[str, t.Any]:
    keys = dict(TOP_LEVEL) if for_dockerd else {**TOP_LEVEL, **FLAG_KEYS}
    chosen = draw(st.lists(st.sampled_from(sorted(keys)), unique=True, max_size=6))
    document = {key: draw(keys[key]) for key in chosen}
    runtimes = draw(st.dictionaries(OTHER_NAMES, st.one_of(PATH_RUNTIME, NVIDIA_CTK_RUNTIME, SHIM_RUNTIME), max_size=3))
    if runtimes or draw(st.booleans()):
        document["runtimes"] = runtimes
    # a default dockerd accepts: a configured runtime (not one with runtimeArgs: dockerd looks for its binary), or a built-in
    defaults = sorted(BUILTIN | {name for name, runtime in runtimes.items() if not runtime.get("runtimeArgs")})
    if draw(st.booleans()):
        document["default-runtime"] = draw(st.sampled_from(defaults))
    order = draw(st.permutations(list(document)))
    return {key: document[key] for key in order}


@st.composite
def daemon_texts(draw: t.Callable[..., t.Any], for_dockerd: bool = False) -> tuple[dict[str, t.Any], bytes]:
    document = draw(daemon_documents(for_dockerd))
    indent = draw(st.sampled_from([None, 2, 4, "\t", 8]))
    text = json.dumps(document, indent=indent, ensure_ascii=draw(st.booleans()))
    text += draw(st.sampled_from(["\n", "", "\n\n"]))
    if draw(st.booleans()) and draw(st.booleans()):
        text = "\ufeff" + text  # a Windows editor's UTF-8 byte-order mark; dockerd reads it
    return document, text.encode("utf-8")


REQUESTS = st.one_of(
    st.fixed_dictionaries(
        {"state": st.just("present"), "runtime_path": st.just(NVIDIA)},
        optional={"runtime_args": st.sampled_from([[], ["--debug"]]), "default": st.booleans()},
    ),
    st.fixed_dictionaries(
        {"state": st.just("present"), "runtime_type": st.just("io.containerd.runc.v2")},
        optional={"runtime_options": st.just({"BinaryName": NVIDIA}), "default": st.booleans()},
    ),
    st.fixed_dictionaries({"state": st.just("absent")}, optional={"default": st.just(False)}),
)


# --- the module, in-process ---


def run(path: Path, request: dict[str, t.Any], check: bool = False) -> dict[str, t.Any]:
    """docker_runtime's main() as ansible runs it, with ``request`` as its arguments; returns its result."""
    args = {"path": str(path), "name": NAME, **request, "_ansible_check_mode": check, "_ansible_diff": True}
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        docker_runtime.main()
    return json.loads(out.getvalue())


def without_target(document: dict[str, t.Any]) -> dict[str, t.Any]:
    """The document less what the module may change: runtimes.<NAME> and default-runtime (an empty
    ``runtimes`` counts as none, as it does for dockerd)."""
    rest = {key: value for key, value in document.items() if key != "default-runtime"}
    runtimes = {name: value for name, value in (rest.pop("runtimes", None) or {}).items() if name != NAME}
    if runtimes:
        rest["runtimes"] = runtimes
    return rest


def refusal_reason(document: dict[str, t.Any], request: dict[str, t.Any]) -> str | None:
    """Why the module must refuse ``request`` on ``document`` (a valid file), as a word its message holds;
    None when it must not refuse."""
    if request["state"] == "absent":
        return None
    existing = (document.get("runtimes") or {}).get(NAME) or {}
    if "runtime_path" in request and (existing.get("runtimeType") or existing.get("options")):
        return "runtimeType"  # dockerd refuses path beside runtimeType
    if "runtime_type" in request and (existing.get("path") or existing.get("runtimeArgs")):
        return "path runtime"
    args = request.get("runtime_args", existing.get("runtimeArgs")) if "runtime_path" in request else None
    default = request.get("default")
    if default is True:
        new_default = NAME
    elif default is False:
        new_default = None if document.get("default-runtime") == NAME else document.get("default-runtime")
    else:
        new_default = document.get("default-runtime")
    if new_default == NAME and args:
        return "its path"  # dockerd looks for a default runtime's binary when it has runtimeArgs; not on this host
    return None


def check_edit(path: Path, document: dict[str, t.Any], original: bytes, request: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """Every invariant of one request on one file; returns the data written, None when refused."""
    check = run(path, request, check=True)
    assert path.read_bytes() == original, "check mode changed the file"
    real = run(path, request)
    reason = refusal_reason(document, request)
    if real.get("failed"):
        assert check.get("failed") and check["msg"] == real["msg"], (check, real)
        assert path.read_bytes() == original, "a refused request changed the file"
        assert reason is not None and reason in real["msg"], (reason, real["msg"])
        assert "othing was changed" in real["msg"], real["msg"]
        return None
    assert reason is None, (reason, real)
    assert not check.get("failed"), check
    after_bytes = path.read_bytes()
    assert real["changed"] == check["changed"] == (after_bytes != original)
    if real["changed"]:
        assert real["diff"]["after"] == check["diff"]["after"] == after_bytes.decode("utf-8")
        assert after_bytes.startswith(b"\xef\xbb\xbf") == original.startswith(b"\xef\xbb\xbf"), "the byte-order mark"
    after = json_runtime.parse(after_bytes.decode("utf-8"))
    # only the requested runtime and default differ; every other key is identical, in the same order
    assert without_target(after) == without_target(document)
    assert [key for key in after if key in document] == [key for key in document if key in after]
    assert json_runtime.problems(after) == []
    runtime = (after.get("runtimes") or {}).get(NAME)
    if request["state"] == "absent":
        assert runtime is None
        assert after.get("default-runtime") == (
            None if document.get("default-runtime") == NAME else document.get("default-runtime")
        )
    else:
        existing = (document.get("runtimes") or {}).get(NAME) or {}
        if "runtime_path" in request:
            assert runtime["path"] == NVIDIA and "runtimeType" not in runtime
            assert runtime.get("runtimeArgs") == (request.get("runtime_args", existing.get("runtimeArgs")) or None)
        else:
            assert runtime["runtimeType"] == "io.containerd.runc.v2" and "path" not in runtime
            assert runtime.get("options") == ({**existing.get("options", {}), **request.get("runtime_options", {})} or None)
        # other keys of an existing runtime (nvidia-ctk's "args") are kept
        assert {k: v for k, v in runtime.items() if k not in json_runtime.RUNTIME_KEYS} == {
            k: v for k, v in existing.items() if k not in json_runtime.RUNTIME_KEYS
        }
        if request.get("default") is True:
            assert after["default-runtime"] == NAME
        elif request.get("default") is False:
            expected = None if document.get("default-runtime") == NAME else document.get("default-runtime")
            assert after.get("default-runtime") == expected
        else:
            assert after.get("default-runtime") == document.get("default-runtime")
    again = run(path, request)
    assert not again.get("failed") and not again["changed"], again
    assert path.read_bytes() == after_bytes, "a re-run rewrote the file"
    return after


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(file=daemon_texts(), request=REQUESTS)
@example(  # issue 15 item 3: path requested on a runtimeType runtime
    file=(
        {"runtimes": {NAME: {"runtimeType": "io.containerd.runc.v2"}}},
        b'{"runtimes": {"nvidia": {"runtimeType": "io.containerd.runc.v2"}}}',
    ),
    request={"state": "present", "runtime_path": NVIDIA, "default": True},
)
def test_only_the_requested_runtime_and_default_change(tmp_path_factory, file, request):
    document, original = file
    path = tmp_path_factory.mktemp("daemon") / "daemon.json"
    path.write_bytes(original)
    after = check_edit(path, document, original, request)
    if after is None or request["state"] == "absent":
        return
    # absent after present gives back the original data, less a runtime of that name the file already had
    # and less a default the request replaced
    removed = run(path, {"state": "absent"})
    assert not removed.get("failed"), removed
    restored = json_runtime.parse(path.read_text(encoding="utf-8"))
    assert without_target(restored) == without_target(document)
    replaced = request.get("default") is True or document.get("default-runtime") == NAME
    assert restored.get("default-runtime") == (None if replaced else document.get("default-runtime"))
    if NAME not in (document.get("runtimes") or {}) and not replaced:
        assert restored == {key: value for key, value in document.items() if key != "runtimes" or value}


DOCKERD_EXAMPLES = max(2, settings().max_examples // 5)


@pytest.mark.slow
@settings(max_examples=DOCKERD_EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(file=daemon_texts(for_dockerd=True), request=REQUESTS.filter(lambda r: not (r.get("default") and r.get("runtime_args"))))
def test_dockerd_starts_on_the_result_with_the_requested_runtimes(tmp_path_factory, file, request):
    """The real dockerd 26.1 starts on what the module wrote and reports exactly its runtimes and default."""
    why_not = dockerd.available()
    if why_not:
        pytest.skip(why_not)
    document, original = file
    assume(refusal_reason(document, request) is None)
    path = tmp_path_factory.mktemp("daemon") / "daemon.json"
    path.write_bytes(original)
    after = check_edit(path, document, original, request)
    assert after is not None
    report = dockerd.start(path)
    assert report.started, f"{report.error}\n{path.read_text()}"
    assert set(report.runtimes) == BUILTIN | set(after.get("runtimes") or {})
    assert report.default_runtime == (after.get("default-runtime") or "runc")
    runtime = (after.get("runtimes") or {}).get(NAME)
    if runtime and "path" in runtime:
        assert report.runtimes[NAME]["path"] == NVIDIA


BROKEN_RUNTIMES = st.sampled_from(
    [
        {"path": "/usr/bin/kata-runtime", "runtimeType": "io.containerd.kata.v2"},  # both forms
        {"path": "/usr/bin/crun", "options": {"SystemdCgroup": True}},  # options with a path
        {"runtimeType": "io.containerd.runsc.v1", "runtimeArgs": ["--debug"]},  # arguments with a shim
        {"args": []},  # neither form
    ]
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(file=daemon_texts(), broken=BROKEN_RUNTIMES, request=REQUESTS)
def test_a_runtime_the_operator_broke_is_kept_and_blocks_every_write(tmp_path_factory, file, broken, request):
    """A runtime dockerd would refuse is the operator's: never rewritten, and no file is written while it is there.
    The same request on the same file without it says whether the module had anything to write."""
    document, _original = file
    directory = tmp_path_factory.mktemp("daemon")
    clean, path = directory / "clean.json", directory / "daemon.json"
    clean.write_text(json.dumps(document))
    with_broken = dict(document)
    with_broken["runtimes"] = {**(document.get("runtimes") or {}), "legacy": broken}
    original = json.dumps(with_broken, indent=2).encode("utf-8")
    path.write_bytes(original)
    reference = run(clean, request)
    result = run(path, request)
    assert path.read_bytes() == original
    if reference.get("failed"):
        assert result.get("failed"), result
    elif reference["changed"]:
        assert result.get("failed") and "runtimes.legacy" in result["msg"] and "(already so in the file)" in result["msg"], result
    else:
        assert not result.get("failed") and not result["changed"], result
