"""The lab's driver doubles (tests/support/fake_nvml/fake_driver.py) held to the real tools they stand in for, run on
this machine with a temporary scenario and state (no Docker), with the fake NVML library read through the real pynvml.

Expected texts are the real tools': kmod's modprobe prints ``modprobe: FATAL: Module %s is in use.`` (kmod
``tools/modprobe.c``, rmmod_do_module, LOG at LOG_CRIT, which kmod's ``tools/log.c`` prefixes ``modprobe: FATAL:``) and
``Module %s not found in directory %s``; kmod's modinfo ``modinfo: ERROR: Module %s not found.``; nvidia-installer
(``kernel.c``, check_for_loaded_kernel_module) "An NVIDIA kernel module 'nvidia' appears to already be loaded in your
kernel"; NVML's ``nvmlInit`` answers ``NVML_ERROR_DRIVER_NOT_LOADED`` (9) without the kernel module (nvml.h).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils import _pci
from tests.support import fake_nvml, fake_sysfs

OLD, NEW = "535.161.08", "570.172.08"
UNLOAD = ["-r", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia"]


@pytest.fixture
def node(tmp_path):
    """A node's worth of state: the t4 scenario, the driver installed and loaded, persistenced inactive."""
    scenario = tmp_path / "scenario.json"
    shutil.copy(fake_nvml.scenario("t4"), scenario)
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("modprobe", "modinfo", "dkms"):
        (tools / tool).write_text(fake_nvml.tool_wrapper(tool, str(fake_nvml.DRIVER_DOUBLE)))
        (tools / tool).chmod(0o755)
    # systemctl is-active --quiet <unit>: active while <state>/active-<unit> exists
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f'#!/bin/sh\ntest -e "{tmp_path}/active-$3"\n')
    systemctl.chmod(0o755)
    env = {
        **os.environ,
        "FAKE_NVML_SCENARIO": str(scenario),
        "FAKE_DRIVER_STATE": str(tmp_path / "state"),
        "FAKE_DRIVER_SYSTEMCTL": str(systemctl),
        "FAKE_DRIVER_REAL_MODPROBE": str(tmp_path / "no-real-modprobe"),
        "FAKE_DRIVER_REAL_MODINFO": str(tmp_path / "no-real-modinfo"),
        "FAKE_DRIVER_SYSFS": str(fake_sysfs.build(tmp_path / "sys", fake_nvml.pci_functions("t4"))),
        "LD_LIBRARY_PATH": str(fake_nvml.library_dir()),
    }
    subprocess.run([sys.executable, str(fake_nvml.DRIVER_DOUBLE), "initialise", OLD], env=env, check=True)

    class Node:
        path = tmp_path
        sysfs = str(tmp_path / "sys")

        @staticmethod
        def run(tool: str, *args: str) -> subprocess.CompletedProcess:
            argv = [str(tools / tool)] if tool in ("modprobe", "modinfo", "dkms") else [tool]
            return subprocess.run([*argv, *args], env=env, capture_output=True, text=True, check=False)

        @staticmethod
        def nvml() -> str:
            """What pynvml reads through the fake library: the driver version, or the error's name."""
            probe = (
                "import pynvml\n"
                "try:\n    pynvml.nvmlInit()\nexcept pynvml.NVMLError as e:\n    print(type(e).__name__)\n"
                "else:\n    print(pynvml.nvmlSystemGetDriverVersion())\n"
            )
            return subprocess.run(
                [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()

    return Node


def test_unloading_is_refused_with_kmods_message_while_persistenced_holds_the_module(node):
    (node.path / "active-nvidia-persistenced").touch()
    refused = node.run("modprobe", *UNLOAD)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "modprobe: FATAL: Module nvidia is in use."
    assert node.nvml() == OLD  # nothing unloaded: NVML still answers

    (node.path / "active-nvidia-persistenced").unlink()
    assert node.run("modprobe", *UNLOAD).returncode == 0
    assert node.nvml() == "NVMLError_DriverNotLoaded"
    # the GPU stays on the bus, unbound, as gpu_facts' PCI scan reads it (t4.json: 00000000:00:1E.0, 0x1EB810DE)
    assert not _pci.kernel_module_loaded(node.sysfs)
    assert [(f["pci_bus_id"], f["pci_device_id"], f["driver"]) for f in _pci.scan(node.sysfs)] == [
        ("0000:00:1e.0", "0x1eb8", None)
    ]
    # modprobe -r of modules not loaded is no error (modprobe(8))
    assert node.run("modprobe", *UNLOAD).returncode == 0


def test_nvidia_alone_cannot_go_while_nvidia_uvm_depends_on_it(node):
    refused = node.run("modprobe", "-r", "nvidia")
    assert (refused.returncode, refused.stderr.strip()) == (1, "modprobe: FATAL: Module nvidia is in use.")


def test_the_installer_refuses_while_the_module_is_loaded(node, tmp_path):
    runfile, _sha = fake_nvml.runfile(NEW, tmp_path, double=str(fake_nvml.DRIVER_DOUBLE))
    refused = node.run("sh", str(runfile), "--silent", "--dkms", "--kernel-module-type=open")
    assert refused.returncode == 1
    assert "An NVIDIA kernel module 'nvidia' appears to already be loaded in your kernel" in refused.stderr
    assert node.run("modinfo", "-k", "6.1.0-28-amd64", "-F", "version", "nvidia").stdout.strip() == OLD


def test_an_install_after_unloading_reaches_modinfo_dkms_and_after_loading_nvml(node, tmp_path):
    runfile, sha = fake_nvml.runfile(NEW, tmp_path, double=str(fake_nvml.DRIVER_DOUBLE))
    assert runfile.name == f"NVIDIA-Linux-x86_64-{NEW}.run"
    assert sha == hashlib.sha256(runfile.read_bytes()).hexdigest()
    assert node.run("modprobe", *UNLOAD).returncode == 0
    installed = node.run("sh", str(runfile), "--silent", "--dkms", "--kernel-module-type=open")
    assert installed.returncode == 0, installed.stderr
    assert node.run("modinfo", "-k", "6.1.0-28-amd64", "-F", "version", "nvidia").stdout.strip() == NEW
    assert node.run("dkms", "status").stdout.startswith(f"nvidia/{NEW}, ")
    assert node.nvml() == "NVMLError_DriverNotLoaded"  # installed, not loaded yet
    assert node.run("modprobe", "nvidia").returncode == 0
    assert node.nvml() == NEW
    assert _pci.kernel_module_loaded(node.sysfs)
    assert [f["driver"] for f in _pci.scan(node.sysfs)] == ["nvidia"]
    # the fake nvidia-smi reads the same scenario
    smi = node.run(str(fake_nvml.HERE / "nvidia-smi"), "--query-gpu=driver_version", "--format=csv,noheader,nounits")
    assert smi.stdout.strip() == NEW


def test_a_failing_module_build_fails_the_install_and_keeps_the_old_driver(node, tmp_path):
    runfile, _sha = fake_nvml.runfile(NEW, tmp_path, double=str(fake_nvml.DRIVER_DOUBLE))
    (node.path / "state" / "fail-build").touch()
    assert node.run("modprobe", *UNLOAD).returncode == 0
    failed = node.run("sh", str(runfile), "--silent", "--dkms")
    assert failed.returncode == 1
    assert 'An error occurred while performing the step: "Building kernel modules"' in failed.stderr
    assert "Installation has failed" in failed.stderr
    assert node.run("modinfo", "-F", "version", "nvidia").stdout.strip() == OLD
    assert node.run("modprobe", "nvidia").returncode == 0
    assert node.nvml() == OLD


def test_other_modules_go_to_the_real_tools_or_are_not_found_as_kmod_says(node):
    probe = node.run("modprobe", "br_netfilter")
    assert probe.returncode == 1
    assert probe.stderr.startswith("modprobe: FATAL: Module br_netfilter not found in directory /lib/modules/")
    info = node.run("modinfo", "-F", "version", "overlay")
    assert (info.returncode, info.stderr.strip()) == (1, "modinfo: ERROR: Module overlay not found.")
    state = json.loads((node.path / "state" / "driver.json").read_text())
    assert state["loaded"] == ["nvidia", "nvidia_modeset", "nvidia_drm", "nvidia_uvm"]
