"""The node-side modules run with each supported node Python as the module interpreter.

Each Python (``KUBEGPU_NODE_PYTHONS``, default the oldest and newest supported: 3.9 and
3.13) gets a venv with the node-side libraries, as the node_python role makes one on a
node, and runs the modules through real ``ansible`` with ``ansible_python_interpreter``
set to it: containerd_runtime against Debian's real containerd 1.6, docker_runtime on a
daemon.json, gpu_facts against the fake NVML library (the simulated part: no GPU here).
`make matrix` runs these for every node Python, one at a time.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import tomlkit

from tests.support import debs, fake_nvml
from tests.support.adhoc import run_module
from tests.support.fake_sysfs import build
from tests.support.pythons import node_venv

NODE_PYTHONS = os.environ.get("KUBEGPU_NODE_PYTHONS", "3.9 3.13").split()
NVIDIA = "/usr/bin/nvidia-container-runtime"

pytestmark = [pytest.mark.node_python, pytest.mark.slow]


@pytest.fixture(scope="module", params=NODE_PYTHONS)
def node_python(request) -> str:
    interpreter = node_venv(request.param)
    version = subprocess.run([interpreter, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split()[1].startswith(request.param + "."), version
    return interpreter


def three_ways(module: str, args: dict, interpreter: str, path) -> dict:
    """Check mode leaves the file alone, the real run changes it, a re-run does not."""
    before = path.read_bytes() if path.exists() else None
    check = run_module(module, args, check=True, interpreter=interpreter)
    assert not check.failed and check.changed, check.result
    assert (path.read_bytes() if path.exists() else None) == before
    real = run_module(module, args, interpreter=interpreter)
    assert not real.failed and real.changed, real.result
    again = run_module(module, args, interpreter=interpreter)
    assert not again.failed and not again.changed, again.result
    return real.result


def test_containerd_runtime_adds_and_removes_the_default_runtime(node_python, tmp_path):
    binary = str(debs.fetch("containerd", "bookworm") / "usr" / "bin" / "containerd")
    path = tmp_path / "config.toml"
    original = (
        'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "runc"\n\n'
        '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n    runtime_type = "io.containerd.runc.v2"\n'
    )
    path.write_text(original)
    args = {"path": str(path), "name": "nvidia", "binary_name": NVIDIA, "containerd_binary": binary}

    result = three_ways("kubegpu.core.containerd_runtime", {**args, "default": True}, node_python, path)
    assert result["default_runtime"] == "nvidia"
    dump = subprocess.run([binary, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=True)
    cri = tomlkit.parse(dump.stdout).unwrap()["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert cri["default_runtime_name"] == "nvidia"
    assert cri["runtimes"]["nvidia"]["options"]["BinaryName"] == NVIDIA

    three_ways("kubegpu.core.containerd_runtime", {**args, "state": "absent"}, node_python, path)
    assert path.read_text() == original


def test_docker_runtime_adds_and_removes_the_runtime(node_python, tmp_path):
    path = tmp_path / "daemon.json"
    original = {"exec-opts": ["native.cgroupdriver=systemd"], "log-driver": "json-file"}
    path.write_text(json.dumps(original, indent=4) + "\n")
    args = {"path": str(path), "name": "nvidia", "runtime_path": NVIDIA}

    three_ways("kubegpu.core.docker_runtime", {**args, "default": True}, node_python, path)
    assert json.loads(path.read_text()) == {**original, "runtimes": {"nvidia": {"path": NVIDIA}}, "default-runtime": "nvidia"}
    three_ways("kubegpu.core.docker_runtime", {**args, "state": "absent"}, node_python, path)
    assert json.loads(path.read_text()) == original


def test_gpu_facts_reads_nvml_with_the_node_python(node_python, tmp_path):
    sysfs = str(build(tmp_path / "sys", []))
    run = run_module(
        "kubegpu.core.gpu_facts",
        {"sysfs_root": sysfs, "nvidia_smi_path": "/nonexistent/nvidia-smi"},
        env=fake_nvml.environment("v100x2"),
        interpreter=node_python,
    )
    assert not run.failed and not run.changed, run.result
    facts = run.result["ansible_facts"]["gpu"]
    assert facts["source"] == "nvml"
    assert [device["name"] for device in facts["devices"]] == ["Tesla V100-SXM2-16GB"] * 2
