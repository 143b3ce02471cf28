"""The nvidia_driver role's Ubuntu and RHEL family paths, which no node image here can run, and
its choice of kernel module flavour for GPUs no fake PCI tree of the molecule scenario has.

Simulated: the node's OS facts (set as cacheable facts of localhost, so the role's vars see
an Ubuntu or a RHEL 9 node) and, for the flavour, the GPU facts gpu_facts would return.
Real: the role's own vars files and defaults, loaded as the role loads them, its flavour
tasks, and its RHEL repository task run with ``ansible.builtin.yum_repository`` against a
scratch directory (check mode, real run, re-run), whose file is read back.
"""

from __future__ import annotations

import configparser

import pytest

from tests.support.adhoc import REPO_ROOT
from tests.support.role_runs import run_playbook

ROLE = REPO_ROOT / "roles" / "nvidia_driver"
FACTS = {
    "Ubuntu": {
        "distribution": "Ubuntu",
        "os_family": "Debian",
        "distribution_release": "noble",
        "distribution_major_version": "24",
    },
    "RedHat": {
        "distribution": "RedHat",
        "os_family": "RedHat",
        "distribution_release": "Plow",
        "distribution_major_version": "9",
    },
}


def run_play(tasks: list[dict], facts: dict[str, str], extra_vars: dict | None = None, check: bool = False):
    """Runs ``tasks`` on localhost after the role's defaults and vars for ``facts``; returns {task name: record}."""
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "node facts",
                    "ansible.builtin.set_fact": {
                        **facts,
                        "architecture": "x86_64",
                        "kernel": "6.8.0-45-generic",
                        "cacheable": True,
                    },
                },
                {"name": "role defaults", "ansible.builtin.include_vars": str(ROLE / "defaults" / "main.yml")},
                {"name": "role vars", "ansible.builtin.include_vars": str(ROLE / "vars" / "main.yml")},
                {
                    "name": "distribution vars",
                    "ansible.builtin.include_vars": str(ROLE / "vars" / f"{facts['distribution']}.yml"),
                },
                *tasks,
            ],
        }
    ]
    run = run_playbook(play, extra_vars={"ansible_become": False, **(extra_vars or {})}, check=check, cwd=REPO_ROOT)
    assert run.rc == 0, run.explain()
    return {record["task"]: record for record in run.records}


def package_list(distribution: str, module_type: str, headless: bool) -> list[str]:
    task = {"name": "packages", "ansible.builtin.debug": {"msg": "{{ _nvidia_driver_package_list }}"}}
    # extra vars: the defaults are loaded with include_vars, above task vars
    choice = {"__nvidia_driver_module_type": module_type, "nvidia_driver_headless": headless}
    return run_play([task], FACTS[distribution], choice)["packages"]["result"]["msg"]


@pytest.mark.parametrize(
    ("distribution", "module_type", "headless", "expected"),
    [
        ("Ubuntu", "open", True, ["nvidia-headless-570-server-open", "nvidia-utils-570-server"]),
        ("Ubuntu", "proprietary", True, ["nvidia-headless-570-server", "nvidia-utils-570-server"]),
        ("Ubuntu", "open", False, ["nvidia-driver-570-server-open"]),
        ("RedHat", "open", True, ["@nvidia-driver:570-open"]),
        ("RedHat", "proprietary", True, ["@nvidia-driver:570-dkms"]),
    ],
)
def test_package_method_installs_the_distributions_driver_for_the_flavour(distribution, module_type, headless, expected):
    assert package_list(distribution, module_type, headless) == expected


def test_rhel_repository_is_nvidias_with_gpgcheck_in_check_mode_then_written_then_unchanged(tmp_path):
    repo_file = tmp_path / "yum.repos.d" / "kubegpu-nvidia-cuda.repo"
    repo_file.parent.mkdir()
    task = {"name": "repository", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "repository_redhat.yml")}
    extra = {"_nvidia_driver_rhel_repo_file": str(repo_file)}

    checked = run_play([task], FACTS["RedHat"], extra, check=True)
    assert checked["Add NVIDIA's CUDA repository, its packages checked against NVIDIA's key"]["result"]["changed"]
    assert not repo_file.exists()

    written = run_play([task], FACTS["RedHat"], extra)
    assert written["Add NVIDIA's CUDA repository, its packages checked against NVIDIA's key"]["result"]["changed"]
    parser = configparser.ConfigParser()
    parser.read(repo_file)
    section = parser["kubegpu-nvidia-cuda"]
    assert section["baseurl"].endswith("/compute/cuda/repos/rhel9/x86_64")
    assert section["gpgcheck"] == "1"
    assert section["gpgkey"] == section["baseurl"] + "/D42D0685.pub"

    again = run_play([task], FACTS["RedHat"], extra)
    assert not again["Add NVIDIA's CUDA repository, its packages checked against NVIDIA's key"]["result"]["changed"]


def test_rhel_repository_follows_a_mirror(tmp_path):
    repo_file = tmp_path / "kubegpu-nvidia-cuda.repo"
    task = {"name": "repository", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "repository_redhat.yml")}
    mirror = "https://mirror.example.internal/cuda/rhel9/x86_64"
    run_play(
        [task],
        FACTS["RedHat"],
        {"_nvidia_driver_rhel_repo_file": str(repo_file), "nvidia_driver_rhel_repo_url": mirror},
    )
    parser = configparser.ConfigParser()
    parser.read(repo_file)
    assert parser["kubegpu-nvidia-cuda"]["baseurl"] == mirror
    assert parser["kubegpu-nvidia-cuda"]["gpgkey"] == f"{mirror}/D42D0685.pub"


def _device(bus_id: str, pci_device_id: str, architecture: str | None = None, name: str | None = None) -> dict:
    return {"pci_bus_id": bus_id, "pci_device_id": pci_device_id, "architecture": architecture, "name": name}


# (GPUs, nvidia_driver_kernel_module_type, driver version (its branch), the flavour, or the refusal's words)
FLAVOUR_CASES = {
    "volta-auto-570": ([_device("0000:3b:00.0", "0x1db1")], "auto", "570.86.15", "proprietary"),
    "volta-open": (
        [_device("0000:3b:00.0", "0x1db1")],
        "open",
        "570.86.15",
        "support Turing and newer GPUs only, not 0000:3b:00.0",
    ),
    "ampere-auto-570": ([_device("0000:3b:00.0", "0x20b0")], "auto", "570.86.15", "open"),
    "ampere-auto-535": ([_device("0000:3b:00.0", "0x20b0")], "auto", "535.261.03", "proprietary"),
    "ampere-open-470": ([_device("0000:3b:00.0", "0x20b0")], "open", "470.256.02", "open kernel modules exist from branch 515"),
    "hopper-from-nvml-auto-570": (
        [_device("0000:18:00.0", "0x2330", "Hopper", "NVIDIA H100 80GB HBM3")],
        "auto",
        "570.86.15",
        "open",
    ),
    "unknown-auto-570": ([_device("0000:3b:00.0", "0x1234")], "auto", "570.86.15", "proprietary"),
    "blackwell-auto-570": ([_device("0000:3b:00.0", "0x2901")], "auto", "570.86.15", "open"),
    "blackwell-proprietary": (
        [_device("0000:3b:00.0", "0x2901")],
        "proprietary",
        "570.86.15",
        "work with the open kernel modules only",
    ),
    "blackwell-auto-550": ([_device("0000:3b:00.0", "0x2901")], "auto", "550.163.01", "need branch 570 or later"),
}


def test_kernel_module_flavour_choices_and_refusals():
    """Every case in one ansible-playbook run: set_fact (above the role's include_vars) sets the
    case, the role's flavour.yml decides, a rescue records a refusal."""
    tasks = []
    for name, (devices, module_type, version, _expected) in FLAVOUR_CASES.items():
        gpu = {"present": True, "driver_loaded": False, "devices": devices}
        tasks += [
            {
                "name": f"set {name}",
                "ansible.builtin.set_fact": {
                    "nvidia_driver_kernel_module_type": module_type,
                    "nvidia_driver_version": version,
                    "__nvidia_driver_gpu": gpu,
                },
            },
            {
                "name": f"run {name}",
                "block": [
                    {"name": "flavour", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "flavour.yml")},
                    {"name": name, "ansible.builtin.debug": {"msg": "{{ __nvidia_driver_module_type }}"}},
                ],
                "rescue": [{"name": name, "ansible.builtin.debug": {"msg": "{{ ansible_failed_result.msg }}"}}],
            },
        ]
    results = run_play(tasks, FACTS["Ubuntu"])
    for name, (_devices, _module_type, _version, expected) in FLAVOUR_CASES.items():
        message = results[name]["result"]["msg"]
        if expected in ("open", "proprietary"):
            assert message == expected, name
        else:
            assert expected in " ".join(message.split()), f"{name}: {message}"
