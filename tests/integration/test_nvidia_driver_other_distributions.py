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
import os

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
        # Ubuntu's default is Canonical's prebuilt modules: the headless set without DKMS (below for DKMS)
        ("Ubuntu", "open", True, ["nvidia-headless-no-dkms-570-server-open", "nvidia-utils-570-server"]),
        ("Ubuntu", "proprietary", True, ["nvidia-headless-no-dkms-570-server", "nvidia-utils-570-server"]),
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


# Ubuntu 22.04 and 24.04 as Canonical installs them. The names are Ubuntu's
# (https://documentation.ubuntu.com/server/how-to/graphics/install-nvidia-drivers/, "Installing the pre-compiled
# NVIDIA modules for your kernel": linux-modules-nvidia-${DRIVER_BRANCH}${SERVER}-${LINUX_FLAVOUR}, then
# linux-modules-nvidia-${DRIVER_BRANCH}${SERVER}-$(uname -r)), checked on packages.ubuntu.com for jammy and noble:
# linux-modules-nvidia-570-server-generic, linux-modules-nvidia-570-server-open-generic (source
# linux-restricted-modules), nvidia-headless-no-dkms-570-server[-open] ("NVIDIA headless metapackage - no DKMS"),
# nvidia-headless-570-server (depends on nvidia-dkms-570-server), nvidia-utils-570-server.
UBUNTU_RELEASES = {
    "22.04": {**FACTS["Ubuntu"], "distribution_release": "jammy", "distribution_major_version": "22"},
    "24.04": {**FACTS["Ubuntu"], "distribution_release": "noble", "distribution_major_version": "24"},
}
UBUNTU_KERNELS = {"22.04": "5.15.0-126-generic", "24.04": "6.8.0-45-generic"}


def ubuntu_choice(release: str, module_type: str, extra: dict | None = None) -> dict:
    """The role's package choice on an Ubuntu release: {"modules": [...], "packages": [...], "headers": bool}."""
    tasks = [
        {"name": "kernel", "ansible.builtin.set_fact": {"kernel": UBUNTU_KERNELS[release], "cacheable": True}},
        {
            "name": "choice",
            "ansible.builtin.debug": {
                "msg": {
                    "prebuilt": "{{ _nvidia_driver_prebuilt | bool }}",
                    "modules": "{{ _nvidia_driver_prebuilt_modules if _nvidia_driver_prebuilt | bool else [] }}",
                    "packages": "{{ _nvidia_driver_package_list }}",
                }
            },
        },
    ]
    choice = {"__nvidia_driver_module_type": module_type, **(extra or {})}
    return run_play(tasks, UBUNTU_RELEASES[release], choice)["choice"]["result"]["msg"]


@pytest.mark.parametrize("release", ["22.04", "24.04"])
@pytest.mark.parametrize("module_type", ["open", "proprietary"])
def test_ubuntu_installs_canonicals_signed_prebuilt_modules_by_default(release, module_type):
    kernel = UBUNTU_KERNELS[release]
    open_suffix = "-open" if module_type == "open" else ""
    choice = ubuntu_choice(release, module_type)
    assert choice["prebuilt"] is True
    assert choice["modules"] == [
        f"linux-modules-nvidia-570-server{open_suffix}-generic",
        f"linux-modules-nvidia-570-server{open_suffix}-{kernel}",
    ]
    assert choice["packages"] == [f"nvidia-headless-no-dkms-570-server{open_suffix}", "nvidia-utils-570-server"]


def test_ubuntu_prebuilt_modules_follow_a_named_kernel_flavour():
    choice = ubuntu_choice("22.04", "open", {"nvidia_driver_ubuntu_kernel_flavour": "generic-hwe-22.04"})
    assert choice["modules"][0] == "linux-modules-nvidia-570-server-open-generic-hwe-22.04"


@pytest.mark.parametrize("release", ["22.04", "24.04"])
def test_ubuntu_dkms_when_prebuilt_is_off(release):
    choice = ubuntu_choice(release, "proprietary", {"nvidia_driver_ubuntu_prebuilt": False})
    assert choice["prebuilt"] is False
    assert choice["packages"] == ["nvidia-headless-570-server", "nvidia-utils-570-server"]


def secure_boot_message(tmp_path, facts: dict, extra: dict) -> str | None:
    """Runs the role's secure_boot.yml with a mokutil on PATH that answers as on a node with Secure Boot on
    (mokutil --sb-state prints "SecureBoot enabled")."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    mokutil = bin_dir / "mokutil"
    mokutil.write_text('#!/bin/sh\n[ "$1" = --sb-state ] && echo "SecureBoot enabled"\n')
    mokutil.chmod(0o755)
    tasks = [
        {"name": "kernel", "ansible.builtin.set_fact": {"kernel": "6.8.0-45-generic", "cacheable": True}},
        {
            "name": "secure boot",
            "block": [{"name": "tasks", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "secure_boot.yml")}],
            "environment": {"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        },
    ]
    results = run_play(tasks, facts, {"__nvidia_driver_module_type": "open", **extra})
    record = results["Say what Secure Boot asks of the operator"]["result"]
    return None if record.get("skipped") else " ".join(record["msg"].split())


def test_ubuntu_dkms_under_secure_boot_names_the_shim_signed_mok(tmp_path):
    """Ubuntu's DKMS signs with the key update-secureboot-policy made under /var/lib/shim-signed/mok (MOK.priv,
    MOK.der; https://wiki.ubuntu.com/UEFI/SecureBoot/DKMS), not DKMS's own /var/lib/dkms/mok.pub."""
    message = secure_boot_message(tmp_path, UBUNTU_RELEASES["24.04"], {"nvidia_driver_ubuntu_prebuilt": False})
    assert "mokutil --import /var/lib/shim-signed/mok/MOK.der" in message
    assert "/var/lib/dkms" not in message


def test_ubuntu_prebuilt_under_secure_boot_asks_no_enrolment(tmp_path):
    message = secure_boot_message(tmp_path, UBUNTU_RELEASES["22.04"], {})
    assert "Canonical's prebuilt nvidia modules" in message
    assert "nothing to enroll" in message
    assert "linux-modules-nvidia-570-server-open-6.8.0-45-generic" in message
    assert "mokutil --import" not in message


def test_debian_dkms_under_secure_boot_names_dkms_own_key(tmp_path):
    """Debian's dkms signs with /var/lib/dkms/mok.key, certificate /var/lib/dkms/mok.pub
    (https://wiki.debian.org/SecureBoot#DKMS_and_secure_boot)."""
    debian = {"distribution": "Debian", "os_family": "Debian", "distribution_release": "bookworm"}
    debian["distribution_major_version"] = "12"
    message = secure_boot_message(tmp_path, debian, {})
    assert "mokutil --import /var/lib/dkms/mok.pub" in message


def run_nouveau(tmp_path, check: bool = False) -> dict:
    """The role's nouveau.yml and its handlers on this machine (Debian's tools), nouveau "loaded" in a scratch sysfs, the GRUB
    defaults file and modprobe.d file in tmp_path, the initramfs and GRUB tools replaced by `true`."""
    sysfs = tmp_path / "sys"
    (sysfs / "module" / "nouveau").mkdir(parents=True, exist_ok=True)
    extra = {
        "nvidia_driver_sysfs_root": str(sysfs),
        "nvidia_driver_grub_config": str(tmp_path / "grub"),
        "_nvidia_driver_modprobe_file": str(tmp_path / "modprobe.d" / "kubegpu-blacklist-nouveau.conf"),
        "_nvidia_driver_initramfs_command": ["true"],
        "_nvidia_driver_grub_command": ["true"],
        "__nvidia_driver_gpu": {"present": True, "pci_devices": [{"driver": "nouveau"}]},
    }
    # the role's own nouveau tasks, with its defaults, vars, templates and handlers
    nouveau = {"name": str(ROLE), "tasks_from": "nouveau.yml"}
    tasks = [{"name": "nouveau", "ansible.builtin.include_role": nouveau}]
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    run = run_playbook(play, extra_vars={"ansible_become": False, **extra}, check=check, cwd=REPO_ROOT)
    assert run.rc == 0, run.explain()
    return {record["task"]: record for record in run.records}


GRUB_TASK = "Keep nouveau out of early boot on the kernel command line"


def test_nouveau_kept_out_with_the_spellings_initramfs_tools_and_dracut_read_replacing_rdblacklist(tmp_path):
    """initramfs-tools and the kernel's modprobe read modprobe.blacklist= (kmod, man modprobe: "modprobe.blacklist=
    on the kernel command line"), dracut rd.driver.blacklist= (man dracut.cmdline); dracut-ng no longer reads the
    old rdblacklist=, so an existing one is replaced, never duplicated, and the other arguments stay."""
    grub = tmp_path / "grub"
    before = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyS0 rdblacklist=nouveau iommu=pt"\n'
    grub.write_text(before)

    checked = run_nouveau(tmp_path, check=True)
    assert checked[GRUB_TASK]["result"]["changed"]
    assert grub.read_text() == before

    written = run_nouveau(tmp_path)
    assert written[GRUB_TASK]["result"]["changed"]
    assert grub.read_text() == (
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
        'GRUB_CMDLINE_LINUX="console=ttyS0 iommu=pt modprobe.blacklist=nouveau rd.driver.blacklist=nouveau"\n'
    )

    again = run_nouveau(tmp_path)
    assert again[GRUB_TASK]["result"].get("skipped") or not again[GRUB_TASK]["result"]["changed"]
    assert grub.read_text().count("nouveau") == 2


def test_nouveau_argument_already_there_is_not_added_twice(tmp_path):
    grub = tmp_path / "grub"
    grub.write_text('GRUB_CMDLINE_LINUX="modprobe.blacklist=nouveau quiet"\n')
    run_nouveau(tmp_path)
    assert grub.read_text() == 'GRUB_CMDLINE_LINUX="modprobe.blacklist=nouveau quiet rd.driver.blacklist=nouveau"\n'


def run_prebuilt(tmp_path, candidate: str) -> dict:
    """The role's prebuilt_ubuntu.yml in check mode on Ubuntu 24.04 facts, with an apt-cache on PATH whose
    ``policy`` answers as apt-cache does for a package with that candidate ("(none)": none in the archive).
    The apt module itself runs (this machine has no such package, so it fails after receiving its arguments,
    which the rescue reports)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    apt_cache = bin_dir / "apt-cache"
    apt_cache.write_text(f'#!/bin/sh\necho "$3:"\necho "  Installed: (none)"\necho "  Candidate: {candidate}"\n')
    apt_cache.chmod(0o755)
    tasks = [
        {"name": "kernel", "ansible.builtin.set_fact": {"kernel": "6.8.0-45-generic", "cacheable": True}},
        {
            "name": "prebuilt",
            "block": [{"name": "tasks", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "prebuilt_ubuntu.yml")}],
            "rescue": [
                {
                    "name": "failed",
                    "ansible.builtin.debug": {
                        "msg": {
                            "msg": "{{ ansible_failed_result.msg }}",
                            "installing": "{{ ansible_failed_result.invocation.module_args.name | default(none) }}",
                        }
                    },
                }
            ],
            "environment": {"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        },
    ]
    return run_play(tasks, UBUNTU_RELEASES["24.04"], {"__nvidia_driver_module_type": "open"}, check=True)["failed"]


def test_ubuntu_kernel_without_prebuilt_modules_is_refused_naming_it(tmp_path):
    message = " ".join(run_prebuilt(tmp_path, "(none)")["result"]["msg"]["msg"].split())
    assert "has no linux-modules-nvidia-570-server-open-6.8.0-45-generic for the running kernel 6.8.0-45-generic" in message
    assert "nvidia_driver_ubuntu_prebuilt to false" in message


def test_ubuntu_prebuilt_modules_installed_flavour_and_running_kernel(tmp_path):
    installing = run_prebuilt(tmp_path, "6.8.0-45.45")["result"]["msg"]["installing"]
    assert installing == ["linux-modules-nvidia-570-server-open-generic", "linux-modules-nvidia-570-server-open-6.8.0-45-generic"]
