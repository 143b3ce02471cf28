"""Property-based tests of kubegpu.core.containerd_runtime, with the real containerd as the oracle.

hypothesis writes containerd configs in the shapes TOML allows (standard tables,
dotted keys in a table or at the top, inline tables, implicit and split tables),
with comments, CRLF line ends, a UTF-8 byte-order mark, other runtimes (runc, kata,
gVisor's runsc, crun, a shim given as a path) with their own types and options, and
drop-ins through ``imports``; config version 2 for Debian's containerd 1.6
(bookworm), 1.7 (trixie) and 2.1 (sid), and version 3 for 2.1. For each config and
a request (add nvidia, change only settings or options of a runtime already there,
default on or off, remove), the facts are taken from that containerd's own
``config dump`` of the original and of the result, never from tomlkit:

* only the requested runtime and ``default_runtime_name`` differ, every other
  runtime and plugin is identical; the runtime has what was asked, keys not given
  keep their values;
* check mode leaves the directory byte for byte as it was; a second run reports no
  change; removing a runtime the run added gives back the original dump;
* lines outside the edited runtime's table and ``default_runtime_name`` stay, in order;
* or the module refuses with a message naming the file or the runtime, and nothing
  on disk changed.

The module's code runs in-process (a real ``AnsibleModule`` built from the task's
arguments, ``ContainerdRuntime(module).run()``, exactly what ``main()`` calls) to
keep an example under a second; tests/integration/test_containerd_runtime.py runs
the same module through ``ansible``. Nothing is simulated.
"""

from __future__ import annotations

import copy
import subprocess
import typing as t
from pathlib import Path

import pytest
import tomlkit
from ansible.module_utils.basic import AnsibleModule
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.modules import containerd_runtime
from tests.support import debs
from tests.support.module_args import patch_module_args

pytestmark = [pytest.mark.slow, pytest.mark.property]

SUITES = ["bookworm", "trixie", "sid"]
NVIDIA = "/usr/bin/nvidia-container-runtime"
CRI = {2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
OTHER_RUNTIMES: dict[str, dict[str, t.Any]] = {
    "runc": {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}},
    "kata": {"runtime_type": "io.containerd.kata.v2", "privileged_without_host_devices": True},
    "gvisor": {
        "runtime_type": "io.containerd.runsc.v1",
        "options": {"TypeUrl": "io.containerd.runsc.v1.options", "ConfigPath": "/etc/containerd/runsc.toml"},
    },
    "crun": {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": "/usr/bin/crun", "SystemdCgroup": False}},
    "custom-shim": {"runtime_type": "/usr/local/bin/containerd-shim-custom-v1", "pod_annotations": ["example.com/*"]},
    "nvidia": {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": NVIDIA}},
}
SHAPES = ["standard", "dotted", "top-dotted", "inline-runtimes", "inline-options", "implicit-split", "mixed"]
DROP_INS = [None, "other-plugin", "other-runtime", "nvidia-default"]


def containerd_binary(suite: str) -> str:
    return str(debs.fetch("containerd", suite) / "usr" / "bin" / "containerd")


def dump(binary: str, path: Path) -> dict[str, t.Any] | None:
    """containerd's effective config of ``path`` as data; None when containerd refuses the file."""
    proc = subprocess.run([binary, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    data = tomlkit.parse(proc.stdout).unwrap()
    data.pop("imports", None)  # containerd 1.x lists the files it read, temporary ones included
    return data


def cri_table(data: dict[str, t.Any]) -> dict[str, t.Any]:
    plugin = CRI[2] if data.get("version") == 2 else CRI[3]
    return data["plugins"][plugin]["containerd"]


def without(data: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    """The dump without runtime ``name`` and the default: what the edit must not change."""
    data = copy.deepcopy(data)
    cri = cri_table(data)
    (cri.get("runtimes") or {}).pop(name, None)
    cri.pop("default_runtime_name", None)
    return data


def value(item: t.Any) -> str:
    return tomlkit.item(item).as_string()


def inline(content: dict[str, t.Any]) -> str:
    parts = [f"{key} = {inline(item) if isinstance(item, dict) else value(item)}" for key, item in content.items()]
    return "{ " + ", ".join(parts) + " }" if parts else "{}"


def flat(content: dict[str, t.Any], prefix: str = "") -> list[str]:
    lines = []
    for key, item in content.items():
        if isinstance(item, dict):
            lines += flat(item, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key} = {value(item)}")
    return lines


def standard_runtime(
    c: str, name: str, runtime: dict[str, t.Any], *, indent: str, comment: str, inline_options: bool
) -> list[str]:
    keys = {key: item for key, item in runtime.items() if key != "options"}
    lines = [f"{comment}{indent}[{c}.runtimes.{name}]"]
    lines += [f"{indent}  {line}" for line in flat(keys)]
    if "options" in runtime:
        if inline_options:
            lines.append(f"{indent}  options = {inline(runtime['options'])}")
        else:
            lines.append(f"{indent}  [{c}.runtimes.{name}.options]")
            lines += [f"{indent}    {line}" for line in flat(runtime["options"])]
    return lines


@st.composite
def configs(draw: t.Any) -> dict[str, t.Any]:
    suite = draw(st.sampled_from(SUITES))
    version = draw(st.sampled_from([2, 3])) if suite == "sid" else 2
    names = draw(st.lists(st.sampled_from(sorted(OTHER_RUNTIMES)), unique=True, max_size=4))
    runtimes = {name: copy.deepcopy(OTHER_RUNTIMES[name]) for name in names}
    if "runc" in runtimes:
        runtimes["runc"]["options"]["SystemdCgroup"] = draw(st.booleans())
    default = draw(st.one_of(st.none(), st.sampled_from([*names, "runc"])))
    shape = draw(st.sampled_from(SHAPES))
    comments = draw(st.booleans())
    indent = draw(st.sampled_from(["", "  "]))
    drop_in = draw(st.sampled_from(DROP_INS))
    relative_import = draw(st.booleans())
    mixed = {name: draw(st.sampled_from(["standard", "dotted", "inline"])) for name in names}
    text = render(version, runtimes, default, shape, comments, indent, drop_in is not None, relative_import, mixed)
    return {
        "suite": suite,
        "version": version,
        "runtimes": runtimes,
        "default": default,
        "shape": shape,
        "text": text,
        "drop_in": drop_in,
        "relative_import": relative_import,
        "crlf": draw(st.booleans()),
        "bom": draw(st.integers(0, 5)) == 0,
    }


def render(  # noqa: PLR0917 - one argument per drawn choice
    version: int,
    runtimes: dict[str, dict[str, t.Any]],
    default: str | None,
    shape: str,
    comments: bool,
    indent: str,
    imports: bool,
    relative_import: bool,
    mixed: dict[str, str],
) -> str:
    p = f'plugins."{CRI[version]}"'
    c = f"{p}.containerd"
    note_line = "# maintained by the platform team\n" if comments else ""
    trailing = "  # why" if comments else ""
    head = [f"{note_line}version = {version}{trailing}", 'root = "/var/lib/containerd"']
    if imports:
        head.append('imports = ["conf.d/*.toml"]' if relative_import else 'imports = ["@DIR@/conf.d/*.toml"]')
    tables: list[str] = [f'\n{note_line}[metrics]\n{indent}address = "127.0.0.1:1338"{trailing}']
    cri: list[str] = []
    default_line = [f'{indent}default_runtime_name = "{default}"{trailing}'] if default else []
    if shape == "top-dotted":
        head += [f'{c}.default_runtime_name = "{default}"'] if default else []
        for name, runtime in runtimes.items():
            head += [f"{c}.runtimes.{name}.{line}" for line in flat(runtime)]
    elif shape in ("standard", "inline-options"):
        cri.append(f"{note_line}[{c}]")
        cri += default_line
        for name, runtime in runtimes.items():
            cri += [
                "",
                *standard_runtime(c, name, runtime, indent=indent, comment=note_line, inline_options=shape == "inline-options"),
            ]
    elif shape == "dotted":
        cri.append(f"[{c}]")
        cri += default_line
        for name, runtime in runtimes.items():
            cri += [f"{indent}runtimes.{name}.{line}{trailing}" for line in flat(runtime)]
    elif shape == "inline-runtimes":
        cri.append(f"[{c}]")
        cri += default_line
        cri.append(f"{indent}runtimes = {inline(runtimes)}{trailing}")
    elif shape == "implicit-split":
        # no [..containerd] header before the runtimes; the default's table comes after another plugin
        for name, runtime in runtimes.items():
            cri += ["", *standard_runtime(c, name, runtime, indent="", comment=note_line, inline_options=False)]
        if default:
            tables.append(f'\n[plugins."io.containerd.internal.v1.opt"]\n  path = "/opt/containerd"\n\n[{c}]')
            tables += default_line
    elif shape == "mixed":
        cri.append(f"[{c}]")
        cri += default_line
        later: list[str] = []
        for name, runtime in runtimes.items():
            if mixed[name] == "dotted":
                cri += [f"{indent}runtimes.{name}.{line}" for line in flat(runtime)]
            elif mixed[name] == "inline":
                cri.append(f"{indent}runtimes.{name} = {inline(runtime)}")
            else:
                later += ["", *standard_runtime(c, name, runtime, indent=indent, comment=note_line, inline_options=False)]
        cri += later
    if shape != "implicit-split" or not default:
        tables.append(f'\n[plugins."io.containerd.internal.v1.opt"]\n{indent}path = "/opt/containerd"')
    if comments:
        tables.append("\n# end of file")
    return "\n".join([*head, "", *cri, *tables]) + "\n"


def drop_in_text(kind: str, version: int) -> str:
    c = f'plugins."{CRI[version]}".containerd'
    if kind == "other-plugin":
        return f'version = {version}\n[plugins."io.containerd.internal.v1.opt"]\n  path = "/opt/from-drop-in"\n'
    if kind == "other-runtime":
        return f'version = {version}\n[{c}.runtimes.dropin]\n  runtime_type = "io.containerd.runc.v2"\n'
    return (
        f'version = {version}\n[{c}]\n  default_runtime_name = "nvidia"\n[{c}.runtimes.nvidia]\n'
        f'  runtime_type = "io.containerd.runc.v2"\n[{c}.runtimes.nvidia.options]\n  BinaryName = "{NVIDIA}"\n'
    )


@st.composite
def requests(draw: t.Any, config: dict[str, t.Any]) -> dict[str, t.Any]:
    names = sorted(config["runtimes"])
    kind = draw(st.sampled_from(["add-nvidia", "tune-existing", "absent"] if names else ["add-nvidia", "absent"]))
    if kind == "add-nvidia":
        request: dict[str, t.Any] = {"name": "nvidia", "binary_name": NVIDIA}
        if draw(st.booleans()):
            request["options"] = {"SystemdCgroup": draw(st.booleans())}
        if draw(st.booleans()):
            request["settings"] = {"privileged_without_host_devices": draw(st.booleans())}
        default = draw(st.sampled_from([None, True, False]))
    elif kind == "tune-existing":
        request = {"name": draw(st.sampled_from(names))}
        if draw(st.booleans()):
            request["settings"] = {"privileged_without_host_devices": draw(st.sampled_from([True, False, None]))}
        else:
            request["options"] = {"SystemdCgroup": draw(st.sampled_from([True, False, None]))}
        default = draw(st.sampled_from([None, True, False]))
    else:
        request = {"name": draw(st.sampled_from([*names, "nvidia"])), "state": "absent"}
        default = draw(st.sampled_from([None, False]))
    if default is not None:
        request["default"] = default
    return request


def run_in_process(args: dict[str, t.Any], *, check: bool = False) -> dict[str, t.Any]:
    """What ``main()`` does, without the process: the module's result, or its failure."""
    with patch_module_args({**args, "_ansible_check_mode": check, "_ansible_diff": True}):
        module = AnsibleModule(argument_spec=containerd_runtime.ARGUMENT_SPEC, supports_check_mode=True)
        try:
            return containerd_runtime.ContainerdRuntime(module).run()
        except KubeGPUError as exc:
            return {"failed": True, **exc.fail_kwargs()}


def state_of(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file()}


def kept_lines(text: str, name: str) -> list[str]:
    """The lines an edit of runtime ``name`` must keep: comments, and all other lines but
    blank ones, the lines of that runtime's tables and keys, default_runtime_name and the
    headers of the tables above it."""
    kept = []
    in_runtime = False
    for line in text.replace("\r\n", "\n").lstrip("\ufeff").split("\n"):
        stripped = line.strip()
        if stripped.startswith("["):
            in_runtime = f"runtimes.{name}]" in stripped or f"runtimes.{name}." in stripped
            if stripped.endswith((".containerd]", ".containerd.runtimes]")) or in_runtime:
                continue
        if stripped.startswith("#") and name not in line:
            kept.append(line.rstrip("\r"))  # a comment above the next header is in the table before it
            continue
        if not stripped or in_runtime or "default_runtime_name" in line or name in line or "runtimes = {" in line:
            continue
        kept.append(line.rstrip("\r"))
    return kept


def is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    remaining = iter(haystack)
    return all(any(needle == line for line in remaining) for needle in needles)


def write_config(directory: Path, config: dict[str, t.Any]) -> Path:
    path = directory / "config.toml"
    text = config["text"].replace("@DIR@", str(directory))
    if config["crlf"]:
        text = text.replace("\n", "\r\n")
    path.write_bytes(("\ufeff" if config["bom"] else "").encode() + text.encode())
    if config["drop_in"]:
        (directory / "conf.d").mkdir()
        (directory / "conf.d" / "50-extra.toml").write_text(drop_in_text(config["drop_in"], config["version"]))
    return path


def check_example(directory: Path, config: dict[str, t.Any], request: dict[str, t.Any]) -> str:
    """Runs the request on the config and checks every property; returns what happened."""
    binary = containerd_binary(config["suite"])
    path = write_config(directory, config)
    original_dump = dump(binary, path)
    plain_text = config["text"].replace("@DIR@", str(directory))
    note(f"containerd {config['suite']}, request {request}\n{plain_text}")
    # a config the generator wrote that containerd itself refuses says nothing about the module
    # unless only the byte-order mark is to blame (containerd 2.x refuses it)
    if original_dump is None:
        bare = directory / "bare" / "config.toml"
        bare.parent.mkdir()
        bare.write_text(plain_text)
        assume(config["bom"] and dump(binary, bare) is not None)
    args = {"path": str(path), "containerd_binary": binary, **request}
    name = request["name"]
    before = state_of(directory)

    checked = run_in_process(args, check=True)
    assert state_of(directory) == before, "check mode changed the directory"
    result = run_in_process(args)
    if result.get("failed"):
        assert checked.get("failed"), f"check mode passed but the real run failed: {result['msg']}"
        assert str(path) in result["msg"] or repr(name) in result["msg"], result["msg"]
        # the self-check caught a shape the edit gets wrong: only the known limit is allowed, removing the last
        # runtime of a containerd table split around other tables (see the unit test of that case)
        if not (config["shape"] == "implicit-split" and request.get("state") == "absent"):
            assert "went wrong" not in result["msg"] and "cannot remove" not in result["msg"], result["msg"]
        assert state_of(directory) == before, "a refused run changed the directory"
        return "refused"
    assert not checked.get("failed"), checked
    assert checked["changed"] == result["changed"]
    after = state_of(directory)
    if not result["changed"]:
        assert after == before
    else:
        assert result["diff"]["after"] == checked["diff"]["after"] == path.read_bytes().decode()
        assert set(after) == set(before), "files appeared or vanished"
        assert {k: v for k, v in after.items() if k != "config.toml"} == {k: v for k, v in before.items() if k != "config.toml"}
        assert path.read_bytes().startswith(b"\xef\xbb\xbf") is config["bom"]
        data = path.read_bytes()
        if config["crlf"]:
            assert data.count(b"\n") == data.count(b"\r\n"), "a line lost its CRLF"
        assert is_subsequence(kept_lines(before["config.toml"].decode(), name), kept_lines(data.decode(), name)), (
            "lines outside the edited runtime changed"
        )

    new_dump = dump(binary, path)
    assert new_dump is not None, "containerd refuses the result"
    changed_view = without(new_dump, name)
    if "runc" not in (cri_table(original_dump).get("runtimes") or {}):
        # containerd 1.x brings its built-in runc back once the file declares no runtime
        (cri_table(changed_view).get("runtimes") or {}).pop("runc", None)
    assert changed_view == without(original_dump, name), "something besides the runtime and the default changed"
    old_cri, new_cri = cri_table(original_dump), cri_table(new_dump)
    old_runtime = (old_cri.get("runtimes") or {}).get(name)
    new_runtime = (new_cri.get("runtimes") or {}).get(name)
    old_default, new_default = old_cri.get("default_runtime_name"), new_cri.get("default_runtime_name")
    if request.get("state") == "absent":
        assert new_runtime is None
        assert new_default == ("runc" if old_default == name else old_default)
    else:
        assert new_runtime is not None
        settings = request.get("settings", {})
        options = {**request.get("options", {}), **({"BinaryName": request["binary_name"]} if "binary_name" in request else {})}
        expected_type = old_runtime["runtime_type"] if old_runtime else "io.containerd.runc.v2"
        assert new_runtime["runtime_type"] == expected_type
        for key, item in new_runtime.items():
            if key in settings and settings[key] is not None:
                assert item == settings[key], key
            elif key != "options" and old_runtime is not None and key not in settings:
                assert item == old_runtime[key], f"{key} changed though the task did not give it"
        new_options = new_runtime.get("options") or {}
        old_options = (old_runtime or {}).get("options") or {}
        for key in {*new_options, *old_options, *options}:
            if key in options:
                assert new_options.get(key) == options[key], key
            else:
                assert new_options.get(key) == old_options.get(key), key
        if request.get("default") is True:
            assert new_default == name
        elif request.get("default") is False:
            assert new_default == ("runc" if old_default == name else old_default)
        else:
            assert new_default == old_default

    again = run_in_process(args)
    assert not again.get("failed") and not again["changed"], again
    assert state_of(directory) == after

    if request.get("state") != "absent" and old_runtime is None:
        removal = run_in_process({"path": str(path), "containerd_binary": binary, "name": name, "state": "absent"})
        if removal.get("failed"):
            # removing the default runtime hands the default to runc; where containerd 1.x has no runc (the
            # file's runtimes replaced it) that is refused: the CRI plugin would not start
            assert new_default == name and "runc" not in (new_cri.get("runtimes") or {}), removal["msg"]
            assert "would have no runtime table" in removal["msg"] and str(path) in removal["msg"]
            assert state_of(directory) == after
            return "changed, removal refused"
        assert not removal.get("failed"), removal
        restored = dump(binary, path)
        assert restored is not None
        if request.get("default") is True and old_default != name:
            assert without(restored, name) == without(original_dump, name)
        else:
            assert restored == original_dump, "removing the runtime the run added did not give back the original dump"
    return "changed" if result["changed"] else "unchanged"


@st.composite
def examples(draw: t.Any) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    config = draw(configs())
    return config, draw(requests(config))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(example_=examples())
def test_the_edit_changes_only_the_requested_runtime_in_containerds_own_view(tmp_path_factory, example_):
    config, request = example_
    outcome = check_example(tmp_path_factory.mktemp("example"), config, request)
    note(f"outcome: {outcome}")
