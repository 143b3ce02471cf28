from __future__ import annotations

import sys

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils._command import CommandRunner
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError


def test_run_captures_rc_stdout_and_stderr(ansible_module):
    runner = CommandRunner(ansible_module, sys.executable)
    result = runner.run(["-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
    assert (result.rc, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.ok is False
    assert result.argv[0] == sys.executable


def test_arguments_are_passed_as_argv_not_through_a_shell(ansible_module):
    runner = CommandRunner(ansible_module, sys.executable)
    result = runner.run(["-c", "import sys; print(sys.argv[1])", "$HOME; echo injected"], check=True)
    assert result.stdout == "$HOME; echo injected\n"


def test_json_output_is_parsed(ansible_module):
    runner = CommandRunner(ansible_module, sys.executable)
    result = runner.run(["-c", "import json; print(json.dumps({'releases': [1, 2]}))"], check=True)
    assert result.json() == {"releases": [1, 2]}


def test_non_json_output_is_a_clear_error(ansible_module):
    runner = CommandRunner(ansible_module, sys.executable)
    result = runner.run(["-c", "print('Error: no such release')"])
    with pytest.raises(KubeGPUError, match=r"did not print JSON.*no such release"):
        result.json()


def test_check_raises_with_command_and_message(ansible_module):
    runner = CommandRunner(ansible_module, sys.executable)
    with pytest.raises(KubeGPUError) as caught:
        runner.run(["-c", "import sys; sys.exit('containerd: invalid plugin config')"], check=True, what="validating config")
    error = caught.value
    assert error.msg.startswith("validating config: `")
    assert "exited with 1: containerd: invalid plugin config" in error.msg
    assert error.details["rc"] == 1


def test_stdin_data_reaches_the_command(ansible_module):
    runner = CommandRunner(ansible_module, sys.executable)
    result = runner.run(["-c", "import sys; print(sys.stdin.read().upper())"], data="apiVersion: v1", check=True)
    assert result.stdout.strip() == "APIVERSION: V1"


def test_missing_required_binary_names_it(ansible_module):
    with pytest.raises(KubeGPUError, match="'no-such-tool-kubegpu' was not found on PATH or in /opt/x"):
        CommandRunner(ansible_module, "no-such-tool-kubegpu", extra_dirs=["/opt/x"])


def test_missing_optional_binary_is_unavailable_and_refuses_to_run(ansible_module, tmp_path):
    runner = CommandRunner(ansible_module, str(tmp_path / "nvidia-smi"), required=False)
    assert runner.available is False
    with pytest.raises(KubeGPUError, match="is not available"):
        runner.run(["-L"])


def test_binary_found_in_extra_dirs(ansible_module, tmp_path):
    tool = tmp_path / "fake-helm"
    tool.write_text("#!/bin/sh\necho helm-ran\n")
    tool.chmod(0o755)
    runner = CommandRunner(ansible_module, "fake-helm", extra_dirs=[str(tmp_path)])
    assert runner.run([], check=True).stdout == "helm-ran\n"
