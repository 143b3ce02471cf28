"""Pure edits of docker's daemon.json (plugins/module_utils/_json_runtime.py)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils import _json_runtime as jr
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

NVIDIA = "/usr/bin/nvidia-container-runtime"


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("", {}),
        ("  \n", {}),
        ("{}", {}),
        ('{"b": 1, "a": {"x": [1, 2]}}', {"b": 1, "a": {"x": [1, 2]}}),
        ('{"runtimes": {"nvidia": {"path": "/x"}}, "default-runtime": "nvidia"}',
         {"runtimes": {"nvidia": {"path": "/x"}}, "default-runtime": "nvidia"}),
    ],
)  # fmt: skip
def test_parse_accepts_daemon_json(text, data):
    assert jr.parse(text) == data


def test_parse_keeps_key_order():
    assert list(jr.parse('{"z": 1, "a": 2, "m": 3}')) == ["z", "a", "m"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Python 3.13 points at the trailing comma, older releases at the brace after it
        ('{\n  "a": 1,\n}', r"not valid JSON \(line (2, column 9|3, column 1)\)"),
        ('{"a": 1', r"not valid JSON \(line 1, column 8\)"),
        ("nul", "not valid JSON"),
        ("[1]", "must hold a JSON object, found array"),
        ('"x"', "must hold a JSON object, found string"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"x": {"a": 1, "a": 2}}', "duplicate key 'a'"),
        ('{"runtimes": "nvidia"}', "'runtimes' must be an object, found string"),
        ('{"default-runtime": ["nvidia"]}', "'default-runtime' must be a string"),
    ],
)
def test_parse_rejects_broken_files_naming_the_problem(text, message):
    with pytest.raises(KubeGPUError, match=message) as info:
        jr.parse(text, "/etc/docker/daemon.json")
    assert info.value.msg.startswith("/etc/docker/daemon.json")


@pytest.mark.parametrize(
    ("text", "indent"),
    [("", 2), ("{}", 2), ('{\n  "a": 1\n}', 2), ('{\n    "a": 1\n}', 4), ('{\n\t"a": 1\n}', "\t"), ('{"a": {\n   "b": 1}}', 3)],
)
def test_detect_indent(text, indent):
    assert jr.detect_indent(text) == indent


@pytest.mark.parametrize(
    ("before", "args", "after", "changed"),
    [
        ({}, ("nvidia", NVIDIA), {"runtimes": {"nvidia": {"path": NVIDIA}}}, True),
        ({"runtimes": {"nvidia": {"path": NVIDIA}}}, ("nvidia", NVIDIA), {"runtimes": {"nvidia": {"path": NVIDIA}}}, False),
        ({"runtimes": {"nvidia": {"path": "/old"}}}, ("nvidia", NVIDIA), {"runtimes": {"nvidia": {"path": NVIDIA}}}, True),
        ({}, ("nvidia", NVIDIA, ["--debug"]), {"runtimes": {"nvidia": {"path": NVIDIA, "runtimeArgs": ["--debug"]}}}, True),
        ({"runtimes": {"nvidia": {"path": NVIDIA, "runtimeArgs": ["-x"]}}}, ("nvidia", NVIDIA),
         {"runtimes": {"nvidia": {"path": NVIDIA, "runtimeArgs": ["-x"]}}}, False),
        ({"runtimes": {"nvidia": {"path": NVIDIA, "runtimeArgs": ["-x"]}}}, ("nvidia", NVIDIA, []),
         {"runtimes": {"nvidia": {"path": NVIDIA}}}, True),
        ({"debug": True, "runtimes": {"crun": {"path": "/usr/bin/crun"}}}, ("nvidia", NVIDIA),
         {"debug": True, "runtimes": {"crun": {"path": "/usr/bin/crun"}, "nvidia": {"path": NVIDIA}}}, True),
    ],
)  # fmt: skip
def test_set_runtime(before, args, after, changed):
    assert jr.set_runtime(before, *args) is changed
    assert before == after


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("runc", NVIDIA), "built-in runtime"),
        (("nv idia", NVIDIA), "not a valid runtime name"),
        (("-nvidia", NVIDIA), "not a valid runtime name"),
        (("nvidia\n", NVIDIA), "not a valid runtime name"),
        (("nvidia", "nvidia-container-runtime"), "not an absolute path"),
    ],
)
def test_set_runtime_rejects_bad_input(args, message):
    with pytest.raises(KubeGPUError, match=message):
        jr.set_runtime({}, *args)


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        ({"runtimes": {"nvidia": {"path": NVIDIA}}}, {}, True),
        ({"runtimes": {"nvidia": {"path": NVIDIA}, "crun": {"path": "/c"}}}, {"runtimes": {"crun": {"path": "/c"}}}, True),
        ({"runtimes": {"crun": {"path": "/c"}}}, {"runtimes": {"crun": {"path": "/c"}}}, False),
        ({"debug": True}, {"debug": True}, False),
    ],
)
def test_remove_runtime(before, after, changed):
    assert jr.remove_runtime(before, "nvidia") is changed
    assert before == after


@pytest.mark.parametrize("before", [{}, {"default-runtime": "crun"}, {"debug": True, "default-runtime": "nvidia"}])
def test_default_on_then_off_removes_the_key(before):
    data = dict(before)
    assert jr.set_default(data, "nvidia") is (before.get("default-runtime") != "nvidia")
    assert not jr.set_default(data, "nvidia")
    assert data["default-runtime"] == "nvidia"
    assert jr.unset_default(data, "nvidia")
    assert not jr.unset_default(data, "nvidia")
    assert "default-runtime" not in data
    assert data == {key: value for key, value in before.items() if key != "default-runtime"}


def test_unset_default_leaves_another_runtimes_default():
    data = {"default-runtime": "crun"}
    assert not jr.unset_default(data, "nvidia")
    assert data == {"default-runtime": "crun"}


@pytest.mark.parametrize("indent", [2, 4, "\t"])
def test_dumps_round_trips_with_the_files_indent(indent):
    data = {"b": {"c": [1, "x"]}, "a": "é"}
    text = jr.dumps(data, indent)
    assert text.endswith("}\n") and "é" in text
    assert jr.parse(text) == data and jr.detect_indent(text) == indent


@pytest.mark.parametrize(
    ("data", "found"),
    [
        ({}, []),
        ({"runtimes": {"a": {"path": "/a", "runtimeType": "io.containerd.runc.v2"}}}, ["runtimes.a has both 'path'"]),
        ({"runtimes": {"a": {"PATH": "/a", "runtimeType": "io.containerd.runc.v2"}}}, ["runtimes.a has both 'path'"]),
        ({"runtimes": {"a": {"path": "/a", "options": {"x": 1}}}}, ["runtimes.a has 'options' beside 'path'"]),
        ({"runtimes": {"a": {"path": "/a", "options": {}}}}, []),
        ({"runtimes": {"a": {"runtimeType": "io.containerd.kata.v2", "runtimeArgs": ["-x"]}}}, ["'runtimeArgs' beside"]),
        ({"runtimes": {"a": {"args": []}}}, ["runtimes.a has neither"]),
        ({"runtimes": {"a": None}}, ["runtimes.a must be an object"]),
        ({"runtimes": {"a": {"path": 1}}}, ["runtimes.a.path must be a JSON string, found number"]),
        ({"runtimes": {"a": {"path": "/a", "runtimeArgs": [1]}}}, ["runtimes.a.runtimeArgs must be a list of strings"]),
        ({"runtimes": {"runc": {"path": "/r"}}}, ["the name 'runc' is reserved"]),
        ({"default-runtime": "x"}, ["default-runtime='x' names no runtime"]),
        ({"default-runtime": "io.containerd.kata.v2"}, []),
        ({"default-runtime": "runc"}, []),
        ({"default-runtime": "a", "runtimes": {"a": {"path": "a"}}}, []),
    ],
)
def test_problems_are_dockerds_start_rules(data, found):
    problems = jr.problems(data)
    assert len(problems) == len(found), problems
    for problem, words in zip(problems, found):
        assert words in problem


def test_host_problems_only_for_a_default_runtime_with_args_whose_binary_is_missing():
    data = {"default-runtime": "a", "runtimes": {"a": {"path": "/opt/a", "runtimeArgs": ["-x"]}}}
    assert "its path '/opt/a'" in jr.host_problems(data, which=lambda path: None)[0]
    assert jr.host_problems(data, which=lambda path: path) == []
    assert jr.host_problems({**data, "default-runtime": "runc"}, which=lambda path: None) == []


@pytest.mark.parametrize(
    ("before", "kwargs", "message"),
    [
        ({"runtimes": {"nvidia": {"runtimeType": "io.containerd.runc.v2"}}}, {"path": "/x"}, "is a shim runtime"),
        ({"runtimes": {"nvidia": {"options": {"a": 1}}}}, {"path": "/x"}, "is a shim runtime"),
        ({"runtimes": {"nvidia": {"path": "/x"}}}, {"runtime_type": "io.containerd.runc.v2"}, "is a path runtime"),
        ({}, {"runtime_type": "io.containerd.runc.v2", "runtime_args": ["-x"]}, "runtime_args cannot be combined"),
        ({}, {"path": "/x", "options": {"a": 1}}, "runtime_options cannot be combined"),
        ({}, {"runtime_type": "runc"}, "is not a containerd shim name"),
        ({}, {}, "give either runtime_path or runtime_type"),
    ],
)
def test_set_runtime_refuses_to_mix_the_two_forms(before, kwargs, message):
    data = json.loads(json.dumps(before))
    with pytest.raises(KubeGPUError, match=message):
        jr.set_runtime(data, "nvidia", **kwargs)
    assert data == before


def test_set_runtime_shim_form_merges_options_and_replaces_other_spellings():
    data = {"runtimes": {"nvidia": {"RuntimeType": "io.containerd.runc.v1", "options": {"Root": "/r"}}}}
    assert jr.set_runtime(data, "nvidia", runtime_type="io.containerd.runc.v2", options={"BinaryName": "/b"})
    assert data == {
        "runtimes": {"nvidia": {"options": {"Root": "/r", "BinaryName": "/b"}, "runtimeType": "io.containerd.runc.v2"}}
    }


def test_a_byte_order_mark_is_read_and_written_back():
    text = '\ufeff{"debug": true}'
    assert jr.parse(text) == {"debug": True} and jr.has_bom(text)
    assert jr.dumps({"debug": True}, 2, bom=True).startswith('\ufeff{\n  "debug"')
