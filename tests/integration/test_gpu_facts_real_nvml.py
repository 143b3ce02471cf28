"""gpu_facts against the real NVIDIA libraries of Debian bookworm non-free, on a host without a GPU.

Nothing is simulated: ``libnvidia-ml1`` and ``nvidia-smi`` are unpacked from
their .deb files (tests/support/debs.py) and loaded as they are; with no NVIDIA
kernel driver on this host, the real library must be reported as
"driver not loaded", with a reason, never as a crash.
"""

from __future__ import annotations

import ctypes
import os

import pytest

from tests.support import debs
from tests.support.adhoc import run_module
from tests.support.fake_sysfs import build

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_nvml_dir():
    library_dir = debs.fetch("libnvidia-ml1", "bookworm") / "usr/lib/x86_64-linux-gnu/nvidia/current"
    assert (library_dir / "libnvidia-ml.so.1").exists()
    return library_dir


@pytest.fixture(scope="module")
def real_nvidia_smi():
    binary = debs.fetch("nvidia-smi", "bookworm") / "usr/lib/nvidia/current/nvidia-smi"
    assert os.access(binary, os.X_OK)
    return binary


@pytest.fixture
def sysfs(tmp_path):
    return str(build(tmp_path / "sys", []))


def test_real_nvml_without_a_driver_reports_driver_not_loaded(real_nvml_dir, sysfs):
    status, result, _stdout, _stderr = run_module(
        "kubegpu.core.gpu_facts",
        {"sysfs_root": sysfs, "sources": ["nvml", "pci"]},
        env={"LD_LIBRARY_PATH": str(real_nvml_dir)},
    )
    assert status == "ok", result
    facts = result["ansible_facts"]["gpu"]
    assert (facts["present"], facts["driver_loaded"], facts["source"], facts["count"]) == (False, False, "none", 0)
    assert facts["reason"] == (
        "nvml: NVML found no NVIDIA kernel driver (Driver Not Loaded): the nvidia kernel module is not loaded; "
        "no NVIDIA GPU found"
    )


def _host_has_nvml() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(_host_has_nvml(), reason="this host has an NVML library of its own")
def test_without_the_library_the_reason_names_it(sysfs):
    status, result, _stdout, _stderr = run_module("kubegpu.core.gpu_facts", {"sysfs_root": sysfs, "sources": ["nvml"]})
    assert status == "ok", result
    assert result["ansible_facts"]["gpu"]["reason"].startswith("nvml: the NVML library libnvidia-ml.so.1 was not found")


def test_real_nvidia_smi_without_a_driver_gives_its_message(real_nvml_dir, real_nvidia_smi, sysfs):
    status, result, _stdout, _stderr = run_module(
        "kubegpu.core.gpu_facts",
        {"sysfs_root": sysfs, "sources": ["nvidia-smi"], "nvidia_smi_path": str(real_nvidia_smi)},
        env={"LD_LIBRARY_PATH": str(real_nvml_dir)},
    )
    assert status == "ok", result
    facts = result["ansible_facts"]["gpu"]
    assert (facts["present"], facts["driver_loaded"], facts["source"]) == (False, False, "none")
    assert "exited with 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver" in facts["reason"]


def test_real_nvidia_smi_without_its_library_gives_its_message(real_nvidia_smi, sysfs):
    status, result, _stdout, _stderr = run_module(
        "kubegpu.core.gpu_facts",
        {"sysfs_root": sysfs, "sources": ["nvidia-smi"], "nvidia_smi_path": str(real_nvidia_smi)},
    )
    assert status == "ok", result
    reason = result["ansible_facts"]["gpu"]["reason"]
    assert "exited with 12: NVIDIA-SMI couldn't find libnvidia-ml.so library in your system" in reason
