"""Issue 22, "a broken driver counts as current": the nvidia_driver role's preflight on a node whose nvidia kernel
module is loaded but that neither NVML nor nvidia-smi can talk to.

Simulated: the node's GPU and driver (the fake libnvidia-ml.so.1 of tests/support/fake_nvml, loaded by the real
pynvml binding, and the fake nvidia-smi on PATH, both answering from a scenario: ``driver_mismatch`` answers
NVML_ERROR_LIB_RM_VERSION_MISMATCH and exits 18 as the real ones do after the driver's libraries were upgraded
under a loaded module) and its sysfs (tests/support/fake_sysfs.py: the nvidia module loaded, a T4 bound to it).
Real: the role's own preflight tasks (its defaults, vars and the real kubegpu.core.gpu_facts), on this machine
(Debian, which the role supports) as localhost.
"""

from __future__ import annotations

import os
import sys

from tests.support import fake_nvml
from tests.support.adhoc import REPO_ROOT
from tests.support.fake_sysfs import PciFunction, build
from tests.support.role_runs import run_playbook

LOADED_MODULE = "535.161.08"


def _play(name: str, scenario: str, sysfs: str, pin: str = "", tasks_from: str = "preflight", **variables) -> dict:
    env = fake_nvml.environment(scenario)
    # the fake nvidia-smi is the one the role's gpu_facts finds on PATH
    env["PATH"] = f"{fake_nvml.HERE}{os.pathsep}{os.environ.get('PATH', '')}"
    return {
        "name": name,
        "hosts": "localhost",
        "gather_facts": False,
        "environment": env,
        "vars": {
            "node_python_interpreter": sys.executable,
            "nvidia_driver_python_interpreter": sys.executable,
            "nvidia_driver_sysfs_root": sysfs,
            "nvidia_driver_version": pin,
            **variables,
        },
        "tasks": [
            {
                "name": f"preflight ({name})",
                "ansible.builtin.include_role": {"name": "kubegpu.core.nvidia_driver", "tasks_from": tasks_from},
            },
            {"name": f"current ({name})", "ansible.builtin.debug": {"msg": "{{ __nvidia_driver_current }}"}},
        ],
    }


def test_a_loaded_driver_that_nvml_and_nvidia_smi_cannot_talk_to_is_not_current(tmp_path):
    """With no pin, a loaded module counted as current before (the role skipped install, reboot and verify); now a
    version mismatch makes it broken, so the role does not skip them, and its message says broken and why. A T4
    whose driver answers, on the same sysfs, stays current (the check can be true)."""
    sysfs = str(
        build(
            tmp_path / "sys",
            [PciFunction("0000:00:1e.0", device=0x1EB8, driver="nvidia")],
            module_versions={"nvidia": LOADED_MODULE},
        )
    )
    run = run_playbook(
        [_play("broken", "driver_mismatch", sysfs), _play("answering", "t4", sysfs)],
        extra_vars={"ansible_become": False},
        cwd=REPO_ROOT,
    )
    assert run.rc == 0, run.explain()
    assert run.task("current (broken)").result["msg"] is False
    assert run.task("current (answering)").result["msg"] is True

    message = " ".join(
        run.in_play("broken")
        .task("Report a broken driver, which the role changes as any other driver that is not current")
        .result["msg"]
        .split()
    )
    assert message.startswith(
        "The NVIDIA driver on localhost is broken: reboot or reinstall needed: the nvidia kernel module 535.161.08 is "
        "loaded (0000:00:1e.0 bound to it) but neither NVML nor nvidia-smi answers (nvml: nvmlInit failed: "
        "RM has detected an NVML/RM version mismatch. (NVML error 18, Driver/library version mismatch)"
    ), message
    # what the real nvidia-smi prints then (exit 18): see tests/support/fake_nvml/fake_nvidia_smi.py
    assert "exited with 18: Failed to initialize NVML: Driver/library version mismatch" in message, message
    assert message.endswith(
        "The role takes the node out of service, unloads the loaded modules, installs the driver, loads it or, where the "
        "modules would not unload, reboots the node, and verifies that NVML answers."
    ), message
    answering = run.in_play("answering").task(
        "Report a broken driver, which the role changes as any other driver that is not current"
    )
    assert answering.status == "skipped"


def test_the_whole_role_on_a_broken_driver_goes_on_to_unload_install_load_and_verify_in_check_mode(tmp_path):
    """The role in check mode (nothing installed, nothing unloaded): on a broken driver it does not stop at "current"
    but plans the change (a version mismatch after an unattended upgrade is mended by unloading the old module and
    loading the installed one; a reboot only where it will not unload, which check mode cannot try)."""
    sysfs = str(
        build(
            tmp_path / "sys",
            [PciFunction("0000:00:1e.0", device=0x1EB8, driver="nvidia")],
            module_versions={"nvidia": LOADED_MODULE},
        )
    )
    play = _play("role", "driver_mismatch", sysfs, tasks_from="main", nvidia_driver_install=False)
    play["tasks"][1] = {"name": "status (role)", "ansible.builtin.debug": {"var": "nvidia_driver_status"}}
    run = run_playbook([play], extra_vars={"ansible_become": False}, check=True, cwd=REPO_ROOT)
    assert run.rc == 0, run.explain()
    status = run.task("status (role)").result["nvidia_driver_status"]
    assert (status["gpu_present"], status["driver_was_current"]) == (True, False), status
    assert run.task("Decide whether loading the driver needs a reboot").status == "ok"
    plan = " ".join(run.task("Say the plan of the driver change").result["msg"].split())
    assert "unload the nvidia modules" in plan and "reboot where unloading fails" in plan, plan
