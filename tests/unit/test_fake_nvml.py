"""The fake NVML library itself: its JSON reader and its answers, through the real pynvml binding.

Each case runs in a fresh Python process, because the dynamic loader reads
LD_LIBRARY_PATH only when a process starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import fake_nvml

PROBE = """
import json, sys, pynvml
try:
    pynvml.nvmlInit()
except pynvml.NVMLError as exc:
    print(json.dumps({"init_error": exc.value}))
    sys.exit(0)
handle = pynvml.nvmlDeviceGetHandleByIndex(0)
print(json.dumps({"name": pynvml.nvmlDeviceGetName(handle), "count": pynvml.nvmlDeviceGetCount()}))
pynvml.nvmlShutdown()
try:
    pynvml.nvmlDeviceGetCount()
except pynvml.NVMLError as exc:
    print(json.dumps({"after_shutdown": exc.value}))
"""


def probe(scenario_text: str | None, tmp_path) -> tuple[list[dict], str]:
    env = {key: value for key, value in os.environ.items() if key != "FAKE_NVML_SCENARIO"}
    env["LD_LIBRARY_PATH"] = str(fake_nvml.library_dir())
    if scenario_text is not None:
        path = tmp_path / "scenario.json"
        path.write_text(scenario_text, encoding="utf-8")
        env["FAKE_NVML_SCENARIO"] = str(path)
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def test_escapes_and_unicode_in_strings_are_decoded(tmp_path):
    name = 'GPU \\"quoted\\" \\\\ \\/ \\u00e9\\u4e2d \\ud83d\\ude80'
    answers, _stderr = probe('{"devices": [{"name": "' + name + '"}], "extra": [1.5e3, -0.25, true, null, {}]}', tmp_path)
    assert answers == [{"name": 'GPU "quoted" \\ / é中 🚀', "count": 1}, {"after_shutdown": 1}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"devices": [', "offset 13: unexpected end of input"),
        ('{"devices" []}', "expected ':' after key \"devices\""),
        ('{"a": 1,}', "expected a string key"),
        ('{"a": tru}', "unexpected character 't'"),
        ('{"a": "\\x"}', "bad escape \\x"),
        ('{"a": 01}', "expected ',' or '}'"),
        ("[1] [2]", "trailing characters"),
        ('{"a": "unterminated}', "unterminated string"),
        ("[" * 100, "nested deeper than 64"),
    ],
)
def test_malformed_scenarios_fail_init_with_a_message(tmp_path, text, message):
    answers, stderr = probe(text, tmp_path)
    assert answers == [{"init_error": 999}]
    assert message in stderr


def test_missing_scenario_variable_fails_init(tmp_path):
    answers, stderr = probe(None, tmp_path)
    assert answers == [{"init_error": 999}]
    assert "FAKE_NVML_SCENARIO is not set" in stderr


def test_without_the_variable_the_default_scenario_path_is_read(tmp_path):
    """A copy built with DEFAULT_SCENARIO pointing into tmp_path (the lab installs it at /etc/fake-nvml)."""
    default = tmp_path / "default" / "scenario.json"
    build = tmp_path / "build"
    subprocess.run(
        ["make", "-s", "-C", str(fake_nvml.HERE), f"BUILD_DIR={build}", f"DEFAULT_SCENARIO={default}"],
        check=True,
        capture_output=True,
    )
    env = {key: value for key, value in os.environ.items() if key != "FAKE_NVML_SCENARIO"}
    env["LD_LIBRARY_PATH"] = str(build)
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    assert json.loads(run.stdout.splitlines()[0]) == {"init_error": 999}
    assert f"{default} is not readable" in run.stderr
    default.parent.mkdir()
    default.write_text(fake_nvml.scenario("t4").read_text(), encoding="utf-8")
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    assert json.loads(run.stdout.splitlines()[0]) == {"name": "Tesla T4", "count": 1}


def test_every_shipped_scenario_is_valid_json_with_a_description():
    assert set(fake_nvml.SCENARIOS) >= {
        "v100x2",
        "t4",
        "a100_mig",
        "h100x8",
        "gtx1080ti",
        "driver_not_loaded",
        "no_devices",
        "old_driver",
    }
    for name in fake_nvml.SCENARIOS:
        assert fake_nvml.load(name)["description"]
