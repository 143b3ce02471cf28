"""kubegpu.core.gpu_facts run through the real ``ansible`` command.

Simulated: the GPUs and driver (the fake libnvidia-ml.so.1 of
tests/support/fake_nvml, loaded by the real pynvml binding through
LD_LIBRARY_PATH, answering from a JSON scenario), the PCI bus (a fake sysfs tree
from tests/support/fake_sysfs.py) and, for the fallback's success path,
nvidia-smi (tests/support/fake_nvml/nvidia-smi). Every test gives the module a
sysfs tree of its own, so the host's own devices never leak into the facts.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import fake_nvml
from tests.support.adhoc import REPO_ROOT, run_module
from tests.support.fake_sysfs import PciFunction, build
from tests.support.role_runs import run_playbook

FAKE_SMI = str(fake_nvml.HERE / "nvidia-smi")
MISSING_SMI = "/nonexistent/nvidia-smi"


@pytest.fixture
def empty_sysfs(tmp_path):
    return str(build(tmp_path / "sys", []))


def gather(scenario: str, sysfs: str, check: bool = False, **args) -> dict:
    status, result, _stdout, _stderr = run_module(
        "kubegpu.core.gpu_facts",
        {"sysfs_root": sysfs, "nvidia_smi_path": MISSING_SMI, **args},
        env=fake_nvml.environment(scenario),
        check=check,
    )
    assert status == "ok", result
    assert result["changed"] is False
    return result["ansible_facts"]["gpu"]


@pytest.mark.matrix
def test_two_v100_give_every_field_from_nvml(empty_sysfs):
    facts = gather("v100x2", empty_sysfs)
    device = {
        "index": 0,
        "uuid": "GPU-c87686d4-87f9-5150-a794-f938b76c238b",
        "name": "Tesla V100-SXM2-16GB",
        "brand": "Tesla",
        "architecture": "Volta",
        "compute_capability": "7.0",
        "compute_major": 7,
        "compute_minor": 0,
        "memory_total_mib": 16384,
        "memory_free_mib": 16384,
        "memory_used_mib": 0,
        "mig_capable": False,
        "mig_mode_current": None,
        "mig_mode_pending": None,
        "mig_device_count": None,
        "mig_devices": [],
        "compute_mode": "Default",
        "persistence_mode": True,
        "pci_bus_id": "0000:18:00.0",
        "pci_device_id": "0x1db1",
        "pci_driver": None,
        "power_limit_watts": 300.0,
        "temperature_c": 34,
        "utilization_gpu_percent": 0,
        "utilization_memory_percent": 0,
        # the scenario gives no ECC, retirement or clock readings (NOT_SUPPORTED): nothing says the GPU is not well
        "health": "ok",
        "health_reasons": [],
    }
    second = dict(device, index=1, uuid="GPU-97d47cb3-6ba1-5a3b-ad79-b5d7ddb38b56", pci_bus_id="0000:2a:00.0")
    assert facts == {
        "present": True,
        "driver_loaded": True,
        "driver_state": "ready",
        "driver_state_reason": None,
        "kernel_module_version": None,
        "source": "nvml",
        "reason": None,
        "count": 2,
        "driver_version": "535.161.08",
        "cuda_driver_version": "12.2",
        "nvml_version": "12.535.161.08",
        "devices": [device, second],
        "pci_devices": [],
        "pci_virtual_functions": [],
    }


def test_a100_with_mig_lists_its_two_instances_and_no_utilization(empty_sysfs):
    facts = gather("a100_mig", empty_sysfs)
    (device,) = facts["devices"]
    assert (device["name"], device["architecture"], device["brand"]) == ("NVIDIA A100-SXM4-40GB", "Ampere", "NVIDIA")
    assert (device["mig_capable"], device["mig_mode_current"], device["mig_mode_pending"]) == (True, True, True)
    assert device["mig_device_count"] == 2
    assert device["mig_devices"] == [
        {
            "index": 0,
            "uuid": "MIG-76058065-6508-5df1-ae69-e48b190acbd2",
            "name": "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
            "gpu_instance_id": 1,
            "compute_instance_id": 0,
            "memory_total_mib": 19968,
            "memory_free_mib": 19955,
            "memory_used_mib": 13,
        },
        {
            "index": 1,
            "uuid": "MIG-7805a0eb-298d-50c3-8baa-c66e74eddf29",
            "name": "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
            "gpu_instance_id": 2,
            "compute_instance_id": 0,
            "memory_total_mib": 19968,
            "memory_free_mib": 19955,
            "memory_used_mib": 13,
        },
    ]
    # NVML answers NOT_SUPPORTED for utilisation while MIG is on: null, not a failure
    assert (device["utilization_gpu_percent"], device["utilization_memory_percent"]) == (None, None)
    assert facts["reason"] is None


FIELDS = ("name", "architecture", "compute_capability", "memory_total_mib", "mig_capable", "persistence_mode", "compute_mode")


@pytest.mark.parametrize(
    ("scenario", "count", "expected"),
    [
        ("t4", 1, ("Tesla T4", "Turing", "7.5", 15360, False, False, "Default")),
        ("h100x8", 8, ("NVIDIA H100 80GB HBM3", "Hopper", "9.0", 81559, True, True, "Default")),
        ("gtx1080ti", 1, ("NVIDIA GeForce GTX 1080 Ti", "Pascal", "6.1", 11264, False, False, "Exclusive_Process")),
    ],
)
def test_each_scenario_reports_its_gpus(empty_sysfs, scenario, count, expected):
    facts = gather(scenario, empty_sysfs)
    assert (facts["present"], facts["driver_loaded"], facts["source"], facts["reason"]) == (True, True, "nvml", None)
    assert facts["count"] == len(facts["devices"]) == count
    assert [device["index"] for device in facts["devices"]] == list(range(count))
    assert len({device["uuid"] for device in facts["devices"]}) == count
    power = {gpu["power_limit_mw"] / 1000 for gpu in fake_nvml.load(scenario)["devices"]}
    for device in facts["devices"]:
        assert tuple(device[field] for field in FIELDS) == expected
        assert device["mig_device_count"] == (0 if device["mig_capable"] else None)
        assert {device["power_limit_watts"]} == power


def test_h100_temperatures_come_per_device(empty_sysfs):
    facts = gather("h100x8", empty_sysfs)
    assert [device["temperature_c"] for device in facts["devices"]] == list(range(30, 38))
    assert [device["pci_bus_id"] for device in facts["devices"]][:2] == ["0000:18:00.0", "0000:2a:00.0"]


def test_old_driver_without_newer_calls_leaves_those_fields_null(empty_sysfs):
    """The scenario's library answers FUNCTION_NOT_FOUND for nvmlDeviceGetArchitecture and the MIG calls."""
    facts = gather("old_driver", empty_sysfs)
    (device,) = facts["devices"]
    assert facts["source"] == "nvml"
    assert (facts["driver_version"], facts["cuda_driver_version"]) == ("418.226.00", "10.1")
    # architecture falls back to the compute capability
    assert (device["architecture"], device["compute_capability"]) == ("Pascal", "6.0")
    assert (device["mig_capable"], device["mig_mode_current"], device["mig_device_count"]) == (None, None, None)
    assert device["memory_total_mib"] == 16280


def test_driver_not_loaded_gives_a_reason_not_a_failure(empty_sysfs):
    facts = gather("driver_not_loaded", empty_sysfs)
    assert facts == {
        "present": False,
        "driver_loaded": False,
        "driver_state": "not_loaded",
        "driver_state_reason": "no nvidia kernel module is loaded and neither NVML nor nvidia-smi answers",
        "kernel_module_version": None,
        "source": "none",
        "reason": "nvml: NVML found no NVIDIA kernel driver (Driver Not Loaded): the nvidia kernel module is not loaded; "
        f"nvidia-smi: {MISSING_SMI} was not found; no NVIDIA GPU found",
        "count": 0,
        "driver_version": None,
        "cuda_driver_version": None,
        "nvml_version": None,
        "devices": [],
        "pci_devices": [],
        "pci_virtual_functions": [],
    }


# --- driver state: judged by what answers, not by what is loaded ---

# NVML's return code for a library that is not the loaded kernel module's version: NVML_ERROR_LIB_RM_VERSION_MISMATCH
# = 18 in nvml.h (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH), whose nvmlErrorString is "RM has detected an NVML/RM
# version mismatch."; nvidia-smi then prints "Failed to initialize NVML: Driver/library version mismatch" and
# "NVML library version: <major.minor>" on stdout and exits 18 (a real run's log in
# https://github.com/mozilla/translations/issues/1167). The loaded module's version is what the kernel shows in
# /sys/module/nvidia/version.
LOADED_MODULE = "535.161.08"


def _loaded_module_sysfs(tmp_path) -> str:
    """A T4 bound to the nvidia driver, the nvidia module of another version than the libraries loaded."""
    functions = [PciFunction("0000:00:1e.0", device=0x1EB8, driver="nvidia")]
    return str(build(tmp_path / "sys", functions, module_versions={"nvidia": LOADED_MODULE}))


def test_version_mismatch_under_a_loaded_module_is_broken_with_the_reason(tmp_path):
    """The libraries upgraded to 550.144.03 under a loaded 535 module (an unattended upgrade, no reboot yet): the
    real pynvml gets NVML_ERROR_LIB_RM_VERSION_MISMATCH from the fake library, the fake nvidia-smi fails as the
    real one does, and the node's driver is broken although the module is loaded."""
    facts = gather("driver_mismatch", _loaded_module_sysfs(tmp_path), nvidia_smi_path=FAKE_SMI)
    assert (facts["present"], facts["driver_loaded"], facts["source"]) == (True, True, "pci")
    assert (facts["driver_state"], facts["kernel_module_version"], facts["driver_version"]) == ("broken", LOADED_MODULE, None)
    reason = facts["driver_state_reason"]
    assert reason.startswith(
        f"reboot or reinstall needed: the nvidia kernel module {LOADED_MODULE} is loaded (0000:00:1e.0 bound to it) "
        "but neither NVML nor nvidia-smi answers (nvml: nvmlInit failed: RM has detected an NVML/RM version mismatch. "
        "(NVML error 18, Driver/library version mismatch)"
    ), reason
    assert (
        "nvidia-smi: `" + FAKE_SMI + " --query-gpu=" in reason
        and "exited with 18: Failed to initialize NVML: Driver/library version mismatch NVML library version: 550.144)" in reason
    ), reason
    assert gather("driver_mismatch", _loaded_module_sysfs(tmp_path / "again"), check=True, nvidia_smi_path=FAKE_SMI) == facts


def test_a_loaded_module_that_nvml_cannot_reach_is_broken_not_missing(tmp_path):
    """The nvidia module is loaded but NVML answers DRIVER_NOT_LOADED and nvidia-smi exits 9, as where the
    /dev/nvidia* device nodes are missing: broken (a reboot or reinstall), not a driver to install afresh."""
    facts = gather("driver_not_loaded", _loaded_module_sysfs(tmp_path), nvidia_smi_path=FAKE_SMI)
    assert (facts["driver_loaded"], facts["driver_state"]) == (True, "broken")
    assert "NVML found no NVIDIA kernel driver (Driver Not Loaded)" in facts["driver_state_reason"]
    assert "exited with 9: NVIDIA-SMI has failed" in facts["driver_state_reason"]


def test_a_gpu_without_any_nvidia_module_is_not_loaded(tmp_path):
    sysfs = build(tmp_path / "sys", [PciFunction("0000:3b:00.0", driver="nouveau")], modules=("nouveau",))
    facts = gather("driver_not_loaded", str(sysfs), nvidia_smi_path=FAKE_SMI)
    assert (facts["present"], facts["driver_loaded"], facts["driver_state"]) == (True, False, "not_loaded")
    assert facts["driver_state_reason"] == "no nvidia kernel module is loaded and neither NVML nor nvidia-smi answers"


def test_pci_only_gather_cannot_tell_whether_a_loaded_module_works(tmp_path):
    facts = gather("driver_mismatch", _loaded_module_sysfs(tmp_path), sources=["pci"])
    assert (facts["driver_loaded"], facts["driver_state"]) == (True, "unknown")
    assert "asks neither nvml nor nvidia-smi" in facts["driver_state_reason"]


def test_an_answering_driver_is_ready_whatever_else_is_loaded(tmp_path):
    """nvidia-smi answers although NVML (sources) is not asked: ready, with the module's version."""
    facts = gather("t4", _loaded_module_sysfs(tmp_path), sources=["nvidia-smi", "pci"], nvidia_smi_path=FAKE_SMI)
    assert (facts["source"], facts["driver_state"], facts["driver_state_reason"]) == ("nvidia-smi", "ready", None)
    assert facts["kernel_module_version"] == LOADED_MODULE


def test_zero_devices_reports_no_gpu_with_the_driver_loaded(empty_sysfs):
    facts = gather("no_devices", empty_sysfs)
    assert (facts["present"], facts["driver_loaded"], facts["source"], facts["count"]) == (False, True, "nvml", 0)
    assert facts["reason"] == "no NVIDIA GPU found"
    assert facts["driver_version"] == "535.161.08"


def test_check_mode_returns_the_same_facts_unchanged(empty_sysfs):
    assert gather("t4", empty_sysfs, check=True) == gather("t4", empty_sysfs)


def test_one_nvml_session_per_gather(empty_sysfs, tmp_path):
    """The fake library logs every call: one init, one device count, one shutdown."""
    log = tmp_path / "calls.log"
    status, _result, _stdout, _stderr = run_module(
        "kubegpu.core.gpu_facts",
        {"sysfs_root": empty_sysfs, "sources": ["nvml"]},
        env=fake_nvml.environment("h100x8", call_log=log),
    )
    assert status == "ok"
    calls = log.read_text().split()
    assert calls[0] == "nvmlInitWithFlags"
    assert calls[-1] == "nvmlShutdown"
    assert calls.count("nvmlInitWithFlags") == calls.count("nvmlShutdown") == calls.count("nvmlDeviceGetCount_v2") == 1
    assert calls.count("nvmlDeviceGetHandleByIndex_v2") == 8


@pytest.mark.matrix
def test_pci_scan_finds_gpus_without_a_driver(tmp_path):
    sysfs = build(
        tmp_path / "sys",
        [
            PciFunction("0000:3b:00.0", driver="nouveau"),
            PciFunction("0000:3b:00.1", pci_class=0x040300, device=0x10F7, driver="snd_hda_intel"),  # the GPU's audio
            PciFunction("0000:86:00.0", device=0x1EB8),
            PciFunction("0000:af:00.0", vendor=0x1002, device=0x740F, pci_class=0x030200, driver="amdgpu"),
            PciFunction("0000:00:02.0", vendor=0x8086, device=0x3E92, pci_class=0x030000, driver="i915"),
        ],
    )
    facts = gather("driver_not_loaded", str(sysfs))
    assert (facts["present"], facts["driver_loaded"], facts["source"], facts["count"]) == (True, False, "pci", 2)
    assert facts["pci_devices"] == [
        {"pci_bus_id": "0000:3b:00.0", "pci_device_id": "0x1db1", "pci_class": "0x030200", "driver": "nouveau"},
        {"pci_bus_id": "0000:86:00.0", "pci_device_id": "0x1eb8", "pci_class": "0x030200", "driver": None},
    ]
    assert [(d["index"], d["pci_bus_id"], d["pci_device_id"], d["pci_driver"], d["name"]) for d in facts["devices"]] == [
        (0, "0000:3b:00.0", "0x1db1", "nouveau", None),
        (1, "0000:86:00.0", "0x1eb8", None, None),
    ]
    assert facts["reason"] == (
        "nvml: NVML found no NVIDIA kernel driver (Driver Not Loaded): the nvidia kernel module is not loaded; "
        f"nvidia-smi: {MISSING_SMI} was not found; "
        "pci: 2 NVIDIA GPU(s) on the PCI bus (0000:3b:00.0, 0000:86:00.0; kernel driver: none, nouveau)"
    )


def test_pci_only_source_loads_no_nvidia_library(tmp_path):
    log = tmp_path / "calls.log"
    sysfs = build(tmp_path / "sys", [PciFunction("0000:3b:00.0", driver="nvidia")], modules=("nvidia",))
    status, result, _stdout, _stderr = run_module(
        "kubegpu.core.gpu_facts",
        {"sysfs_root": str(sysfs), "sources": ["pci"]},
        env=fake_nvml.environment("v100x2", call_log=log),
    )
    facts = result["ansible_facts"]["gpu"]
    assert status == "ok"
    assert (facts["present"], facts["driver_loaded"], facts["source"], facts["count"]) == (True, True, "pci", 1)
    assert not log.exists()


def test_nvml_devices_carry_the_bound_kernel_driver_and_unlisted_gpus_are_named(tmp_path):
    sysfs = build(
        tmp_path / "sys",
        [
            PciFunction("0000:18:00.0", driver="nvidia"),
            PciFunction("0000:2a:00.0", driver="nvidia"),
            PciFunction("0000:3a:00.0", driver="vfio-pci"),  # passed through to a VM: NVML does not list it
        ],
        modules=("nvidia",),
    )
    facts = gather("v100x2", str(sysfs))
    assert [device["pci_driver"] for device in facts["devices"]] == ["nvidia", "nvidia"]
    assert (facts["count"], len(facts["pci_devices"]), facts["source"]) == (2, 3, "nvml")
    assert facts["reason"] == "pci: 1 NVIDIA GPU(s) on the PCI bus (0000:3a:00.0; kernel driver: vfio-pci) not listed by nvml"


SYSTEM_PYTHON = "/usr/bin/python3"


def _system_python_has_pynvml() -> bool:
    return subprocess.run([SYSTEM_PYTHON, "-c", "import pynvml"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(_system_python_has_pynvml(), reason=f"{SYSTEM_PYTHON} has pynvml, so it cannot stand for a node without it")
def test_without_pynvml_the_nvidia_smi_fallback_answers(empty_sysfs):
    """The interpreter is the system python3, which has no nvidia-ml-py; nvidia-smi is the fake script."""
    status, result, _stdout, _stderr = run_module(
        "kubegpu.core.gpu_facts",
        {"sysfs_root": empty_sysfs, "nvidia_smi_path": FAKE_SMI},
        env=fake_nvml.environment("a100_mig"),
        interpreter=SYSTEM_PYTHON,
    )
    assert status == "ok", result
    facts = result["ansible_facts"]["gpu"]
    assert (facts["present"], facts["driver_loaded"], facts["source"], facts["count"]) == (True, True, "nvidia-smi", 1)
    assert facts["reason"].startswith("nvml: Failed to import the required Python library (nvidia-ml-py)")
    assert (facts["driver_version"], facts["cuda_driver_version"], facts["nvml_version"]) == ("535.161.08", None, None)
    (device,) = facts["devices"]
    assert device == {
        "index": 0,
        "uuid": "GPU-4a1da682-59ed-5e44-a17f-49ae13e31a36",
        "name": "NVIDIA A100-SXM4-40GB",
        "brand": None,
        "architecture": "Ampere",
        "compute_capability": "8.0",
        "compute_major": 8,
        "compute_minor": 0,
        "memory_total_mib": 40960,
        "memory_free_mib": 40960,
        "memory_used_mib": 0,
        "mig_capable": True,
        "mig_mode_current": True,
        "mig_mode_pending": True,
        "mig_device_count": None,
        "mig_devices": [],
        "compute_mode": "Default",
        "persistence_mode": True,
        "pci_bus_id": "0000:07:00.0",
        "pci_device_id": "0x20b0",
        "pci_driver": None,
        "power_limit_watts": 400.0,
        "temperature_c": 34,
        "utilization_gpu_percent": None,
        "utilization_memory_percent": None,
        # the nvidia-smi fallback does not judge health (unknown)
        "health": None,
        "health_reasons": None,
    }


def test_nvidia_smi_source_reports_the_driver_not_loaded(empty_sysfs):
    facts = gather("driver_not_loaded", empty_sysfs, sources=["nvidia-smi"], nvidia_smi_path=FAKE_SMI)
    assert (facts["present"], facts["driver_loaded"], facts["source"]) == (False, False, "none")
    assert "exited with 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver" in facts["reason"]


def test_unknown_source_is_refused_naming_the_choices(empty_sysfs):
    status, result, _stdout, _stderr = run_module(
        "kubegpu.core.gpu_facts", {"sysfs_root": empty_sysfs, "sources": ["dcgm"]}, env=fake_nvml.environment("t4")
    )
    assert status == "failed"
    assert "dcgm" in result["msg"] and "nvml" in result["msg"] and "nvidia-smi" in result["msg"]


def test_empty_sources_is_refused(empty_sysfs):
    status, result, _stdout, _stderr = run_module(
        "kubegpu.core.gpu_facts", {"sysfs_root": empty_sysfs, "sources": []}, env=fake_nvml.environment("t4")
    )
    assert status == "failed"
    assert result["msg"] == "sources=[] is not valid; give at least one of: nvml, nvidia-smi, pci"


def _facts_playbook(scenario: str) -> str:
    """``ansible-playbook playbooks/facts.yml`` on the implicit localhost, its GPUs the fake NVML ``scenario``; the
    default output with -v (facts.yml prints the GPUs, the driver and the labels only then), results as JSON."""
    env = {
        **fake_nvml.environment(scenario),
        "ANSIBLE_VERBOSITY": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
    }
    run = run_playbook(["facts.yml"], env=env, cwd=REPO_ROOT)
    assert run.rc == 0, run.explain()
    return run.stdout


def test_facts_playbook_prints_the_gpus_and_their_labels():
    out = _facts_playbook("h100x8")
    assert "GPU 7: NVIDIA H100 80GB HBM3 Hopper 81559 MiB at 0000:db:00.0" in out
    assert "8 GPU(s) from nvml; driver 535.161.08 (CUDA 12.2)" in out
    # the labels as JSON inside the one message string (escaped quotes in the JSON result format)
    assert '\\"accelerator\\": \\"nvidia-h100-80gb\\"' in out
    assert '\\"nvidia.com/gpu.family\\": \\"hopper\\"' in out


def test_facts_playbook_prints_the_reason_when_there_is_no_gpu():
    out = _facts_playbook("driver_not_loaded")
    assert "NVML found no NVIDIA kernel driver (Driver Not Loaded)" in out
    assert "GPU 0:" not in out


def test_old_drivers_nvidia_smi_without_compute_cap_still_gives_the_other_facts(empty_sysfs):
    """Issue 15 item 9: the fake nvidia-smi of the old_driver scenario refuses compute_cap and the MIG fields
    as nvidia-smi before R510/R450 does ('Field "compute_cap" is not a valid field to query.', exit 2)."""
    facts = gather("old_driver", empty_sysfs, sources=["nvidia-smi"], nvidia_smi_path=FAKE_SMI)
    assert (facts["present"], facts["driver_loaded"], facts["source"], facts["count"]) == (True, True, "nvidia-smi", 1)
    assert facts["driver_version"] == "418.226.00"
    assert (
        facts["reason"]
        == "nvidia-smi: this driver's nvidia-smi cannot query compute_cap, mig.mode.current, mig.mode.pending (left null)"
    )
    (device,) = facts["devices"]
    assert (device["name"], device["uuid"], device["pci_bus_id"]) == (
        "Tesla P100-PCIE-16GB",
        "GPU-adf56fc8-5019-54ce-9f8c-1793461c3a39",
        "0000:04:00.0",
    )
    assert (device["memory_total_mib"], device["power_limit_watts"], device["temperature_c"]) == (16280, 250.0, 34)
    assert (device["compute_capability"], device["compute_major"], device["architecture"]) == (None, None, None)
    assert (device["mig_capable"], device["mig_mode_current"], device["mig_mode_pending"]) == (None, None, None)


def test_a_current_drivers_nvidia_smi_gives_the_compute_capability_and_no_reason(empty_sysfs):
    """A Pascal GPU whose nvidia-smi knows every field: compute_cap gives the architecture, nothing is missing."""
    facts = gather("gtx1080ti", empty_sysfs, sources=["nvidia-smi"], nvidia_smi_path=FAKE_SMI)
    (device,) = facts["devices"]
    assert (facts["source"], facts["reason"]) == ("nvidia-smi", None)
    assert (device["compute_capability"], device["architecture"], device["mig_capable"]) == ("6.1", "Pascal", False)


def test_sriov_virtual_functions_are_not_counted_as_gpus(tmp_path):
    """Issue 15 item 10: an A100 host serving vGPU shows each GPU's SR-IOV virtual functions on the bus
    (physfn links); they are reported apart, and only the two physical GPUs are counted."""
    functions = [PciFunction("0000:3b:00.0", device=0x20B0, driver="nvidia"), PciFunction("0000:86:00.0", device=0x20B0)]
    for parent in ("0000:3b", "0000:86"):
        for slot in range(4, 8):
            driver = "nvidia" if parent == "0000:3b" else None
            functions.append(PciFunction(f"{parent}:00.{slot}", device=0x20B0, driver=driver, physfn=f"{parent}:00.0"))
    sysfs = build(tmp_path / "sys", functions, modules=("nvidia",))
    facts = gather("driver_not_loaded", str(sysfs))
    assert (facts["present"], facts["source"], facts["count"]) == (True, "pci", 2)
    assert [device["pci_bus_id"] for device in facts["devices"]] == ["0000:3b:00.0", "0000:86:00.0"]
    assert [device["pci_bus_id"] for device in facts["pci_devices"]] == ["0000:3b:00.0", "0000:86:00.0"]
    assert len(facts["pci_virtual_functions"]) == 8
    assert facts["pci_virtual_functions"][0] == {
        "pci_bus_id": "0000:3b:00.4",
        "pci_device_id": "0x20b0",
        "pci_class": "0x030200",
        "driver": "nvidia",
        "physical_function": "0000:3b:00.0",
    }
    assert {vf["physical_function"] for vf in facts["pci_virtual_functions"]} == {"0000:3b:00.0", "0000:86:00.0"}
    assert "0000:3b:00.4" not in facts["reason"]


def test_nvml_gpus_with_virtual_functions_report_nothing_unlisted(tmp_path):
    """NVML lists the physical GPUs only; their virtual functions must not show up as GPUs NVML missed."""
    functions = [PciFunction("0000:18:00.0", driver="nvidia"), PciFunction("0000:2a:00.0", driver="nvidia")]
    functions += [PciFunction(f"0000:18:00.{slot}", driver="nvidia", physfn="0000:18:00.0") for slot in (4, 5)]
    facts = gather("v100x2", str(build(tmp_path / "sys", functions, modules=("nvidia",))))
    assert (facts["count"], facts["reason"], len(facts["pci_devices"]), len(facts["pci_virtual_functions"])) == (2, None, 2, 2)


# --- hangs: a wedged driver (simulated by the fake library's and fake nvidia-smi's `hang` keys) ---

# a module run that the timeout does not stop fails the test instead of hanging it
RUN_LIMIT_SECONDS = 90


def _scenario_with(tmp_path, base: str, **keys) -> str:
    data = {**fake_nvml.load(base), **keys}
    path = tmp_path / f"{base}-{'-'.join(keys)}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _gather_bounded(scenario_path: str, sysfs: str, *, check: bool = False, **args) -> tuple[dict, float]:
    env = {**fake_nvml.environment("t4"), "FAKE_NVML_SCENARIO": scenario_path}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = pool.submit(run_module, "kubegpu.core.gpu_facts", {"sysfs_root": sysfs, **args}, env=env, check=check)
        status, result, _stdout, _stderr = run.result(timeout=RUN_LIMIT_SECONDS)
    assert status == "ok", result
    return result["ansible_facts"]["gpu"], time.monotonic() - started


def _processes_of(scenario_path: str) -> list[int]:
    """Processes still running with this scenario in their environment (a hung child left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"FAKE_NVML_SCENARIO={scenario_path}".encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("call", ["nvmlInitWithFlags", "nvmlDeviceGetMemoryInfo"])
def test_a_hung_nvml_pass_is_stopped_and_nvidia_smi_still_answers(empty_sysfs, tmp_path, call):
    scenario = _scenario_with(tmp_path, "t4", hang=[call])
    # timeout=3: the fake nvidia-smi is a Python script that alone takes up to a second to start on a loaded
    # CI machine, and it must answer within the same timeout after the NVML pass is stopped
    facts, elapsed = _gather_bounded(scenario, empty_sysfs, timeout=3, nvidia_smi_path=FAKE_SMI)
    assert facts["source"] == "nvidia-smi" and facts["count"] == 1 and facts["devices"][0]["name"] == "Tesla T4"
    assert facts["reason"].startswith("nvml: the NVML pass did not finish within timeout=3 seconds and was stopped")
    assert elapsed < RUN_LIMIT_SECONDS
    assert _processes_of(scenario) == [], "the hung NVML child was left running"


def test_a_wedged_gpu_where_nvml_and_nvidia_smi_both_hang_is_still_found_on_the_bus(tmp_path):
    """wedged_t4: NVML hangs on the device, nvidia-smi hangs; both are stopped, the PCI scan
    still finds the GPU, and check mode reports the same facts."""
    sysfs = str(build(tmp_path / "sys", [PciFunction("0000:00:1e.0", device=0x1EB8, driver="nvidia")]))
    scenario = str(fake_nvml.scenario("wedged_t4"))
    facts, _elapsed = _gather_bounded(scenario, sysfs, timeout=1, nvidia_smi_path=FAKE_SMI)
    assert (facts["present"], facts["driver_loaded"], facts["source"], facts["count"]) == (True, True, "pci", 1)
    nvml, smi, pci = facts["reason"].split("; ", 2)
    assert nvml.startswith("nvml: the NVML pass did not finish within timeout=1 seconds and was stopped")
    assert smi.startswith(f"nvidia-smi: `{FAKE_SMI} --query-gpu=")
    assert smi.endswith(
        "did not finish within timeout=1 seconds and was killed "
        "(a wedged driver or a GPU fallen off the bus makes nvidia-smi hang)"
    )
    assert pci.startswith("pci: 1 NVIDIA GPU(s) on the PCI bus (0000:00:1e.0")
    assert _processes_of(scenario) == [], "a hung nvidia-smi or NVML child was left running"
    checked, _elapsed = _gather_bounded(scenario, sysfs, check=True, timeout=1, nvidia_smi_path=FAKE_SMI)
    assert checked == facts


def test_timeout_zero_reads_nvml_in_process_with_the_same_facts(empty_sysfs):
    assert gather("t4", empty_sysfs, timeout=0) == gather("t4", empty_sysfs)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda path: path.write_text("#!/bin/sh\n") or path.chmod(0o644), "exists but is not executable (mode -rw-r--r--)"),
        (lambda path: path.mkdir(), "is a directory, not the nvidia-smi program"),
        (lambda path: path.symlink_to(path.parent / "gone"), "is a symbolic link to"),
    ],
    ids=["not-executable", "directory", "dangling-link"],
)
def test_an_nvidia_smi_path_that_cannot_run_is_reported_as_such(empty_sysfs, tmp_path, make, expected):
    smi = tmp_path / "nvidia-smi"
    make(smi)
    facts = gather("driver_not_loaded", empty_sysfs, sources=["nvidia-smi"], nvidia_smi_path=str(smi))
    assert facts["reason"].startswith(f"nvidia-smi: {smi} {expected}") and "not found" not in facts["reason"]


# Each defect of tests/support/fake_nvml's health scenarios, as NVML reports it, and the health gpu_facts gives that GPU:
# unhealthy for what NVIDIA takes a GPU out of service for (k8s-device-plugin internal/rm/health.go marks a device
# unhealthy on double-bit ECC events and critical Xids 48, 63, 64, 79; a pending page retirement or row remap takes
# effect only at the next reset, docs.nvidia.com/deploy/dynamic-page-retirement and
# docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt), degraded for a GPU that works below par.
HEALTH_CASES = {
    "ecc_uncorrectable_h100x2": (1, "unhealthy", "1 uncorrectable ECC error(s) since the driver loaded (volatile)"),
    "ecc_uncorrectable_past_h100x2": (0, "degraded", "3 uncorrectable ECC error(s) in the GPU's lifetime (aggregate)"),
    "retired_pages_pending_v100x2": (0, "unhealthy", "page retirement pending"),
    "row_remap_pending_h100x2": (0, "unhealthy", "row remapping pending"),
    "row_remap_failure_h100x2": (1, "unhealthy", "row remapping failed"),
    "gpu_lost_h100x2": (1, "unhealthy", "GPU is lost (NVML_ERROR_GPU_IS_LOST"),
    # nvmlClocksEventReasonHwSlowdown 0x8 | HwThermalSlowdown 0x40 (nvml.h)
    "hw_slowdown_t4": (0, "degraded", "clocks held down: hardware slowdown"),
}


@pytest.mark.parametrize("scenario", sorted(HEALTH_CASES))
def test_each_gpu_defect_gives_its_health_and_reason_and_leaves_the_other_gpus_ok(empty_sysfs, scenario):
    index, health, reason = HEALTH_CASES[scenario]
    facts = gather(scenario, empty_sysfs)
    assert facts["count"] == len(fake_nvml.load(scenario)["devices"])
    for device in facts["devices"]:
        if device["index"] == index:
            assert device["health"] == health, device
            assert any(text.startswith(reason) for text in device["health_reasons"]), device["health_reasons"]
        else:
            assert (device["health"], device["health_reasons"]) == ("ok", []), device


def test_a_lost_gpu_is_listed_with_its_index_and_health_only(empty_sysfs):
    lost = gather("gpu_lost_h100x2", empty_sysfs)["devices"][1]
    assert {key for key, value in lost.items() if value not in (None, [])} == {"index", "health", "health_reasons"}


def test_clean_counters_are_ok(empty_sysfs):
    facts = gather("healthy_h100x2", empty_sysfs)
    assert [(device["health"], device["health_reasons"]) for device in facts["devices"]] == [("ok", []), ("ok", [])]


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("retired_pages_pending_v100x2", [("unhealthy", ["page retirement pending"]), ("ok", [])]),
        ("hw_slowdown_t4", [("degraded", ["clocks held down: hardware slowdown", "clocks held down: hardware thermal"])]),
        # nvidia-smi prints [N/A] for every health field of this scenario: unknown, not ok
        ("a100_mig", [(None, None)]),
    ],
)
def test_the_nvidia_smi_fallback_judges_health_from_its_ecc_retirement_and_clock_fields(empty_sysfs, scenario, expected):
    facts = gather(scenario, empty_sysfs, sources=["nvidia-smi"], nvidia_smi_path=FAKE_SMI)
    assert facts["source"] == "nvidia-smi"
    found = [(device["health"], device["health_reasons"]) for device in facts["devices"]]
    assert [health for health, _reasons in found] == [health for health, _reasons in expected]
    for (_health, reasons), (_expected, beginnings) in zip(found, expected):
        assert (reasons is None) == (beginnings is None)
        assert all(any(reason.startswith(start) for reason in reasons) for start in beginnings or []), reasons
