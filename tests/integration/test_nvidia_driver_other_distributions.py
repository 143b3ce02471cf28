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
import yaml

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
        ("RedHat", "open", True, ["nvidia-driver-cuda", "kmod-nvidia-open-dkms"]),
        ("RedHat", "proprietary", True, ["nvidia-driver-cuda", "kmod-nvidia-latest-dkms"]),
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


# --- The RHEL family held to NVIDIA's Driver Installation Guide -------------------------------------------
# (docs.nvidia.com/datacenter/tesla/driver-installation-guide/: "Kernel Modules", "Compute-only and Desktop
# Installation", "Advanced Options", "Version locking", the Red Hat and Oracle Linux "Preparation"); no RHEL
# node runs here, so these read what the role would run against what the guide says to run.
RHEL_FACTS = {
    major: {
        "distribution": "RedHat",
        "os_family": "RedHat",
        "distribution_release": release,
        "distribution_major_version": major,
    }
    for major, release in (("8", "Ootpa"), ("9", "Plow"), ("10", "Coughlan"))
}


def _rhel_case(name: str, major: str, architecture: str, variables: dict, expression: str) -> list[dict]:
    """Tasks that set one node's facts and variables (set_fact: above the role's include_vars) and show ``expression``."""
    facts = {**RHEL_FACTS[major], "architecture": architecture, "kernel": "5.14.0-503.11.1.el9_5.x86_64", "cacheable": True}
    return [
        {"name": f"facts {name}", "ansible.builtin.set_fact": facts},
        {"name": f"vars {name}", "ansible.builtin.set_fact": variables} if variables else None,
        {"name": name, "ansible.builtin.debug": {"msg": expression}},
    ]


def _rhel_answers(cases: dict[str, tuple[str, str, dict, str]]) -> dict[str, object]:
    """Every case in one ansible-playbook run: {case: the expression's value on that node}."""
    tasks = [task for name, case in cases.items() for task in _rhel_case(name, *case) if task]
    results = run_play(tasks, RHEL_FACTS["9"])
    return {name: results[name]["result"]["msg"] for name in cases}


# The guide's compute-only commands ("Compute-only and Desktop Installation"): "dnf install nvidia-driver-cuda
# kmod-nvidia-open-dkms" (open), "dnf install nvidia-driver-cuda kmod-nvidia-latest-dkms" (proprietary); the full
# driver ("Kernel Modules"): "dnf install nvidia-open", "dnf install cuda-drivers". A pinned version reaches dnf
# as name-version.
RHEL_PACKAGES = {
    "9-open-headless": ("9", "open", True, "", ["nvidia-driver-cuda", "kmod-nvidia-open-dkms"]),
    "9-proprietary-headless": ("9", "proprietary", True, "", ["nvidia-driver-cuda", "kmod-nvidia-latest-dkms"]),
    "8-open-full": ("8", "open", False, "", ["nvidia-open"]),
    "10-proprietary-full": ("10", "proprietary", False, "", ["cuda-drivers"]),
    "10-open-headless-pinned": (
        "10",
        "open",
        True,
        "580.105.08",
        ["nvidia-driver-cuda-580.105.08", "kmod-nvidia-open-dkms-580.105.08"],
    ),
    "9-proprietary-full-pinned": ("9", "proprietary", False, "570.195.03", ["cuda-drivers-570.195.03"]),
}


def test_rhel_packages_are_the_guides_for_release_flavour_headless_and_pin():
    cases = {
        name: (
            major,
            "x86_64",
            {"__nvidia_driver_module_type": flavour, "nvidia_driver_headless": headless, "nvidia_driver_version": version},
            "{{ _nvidia_driver_package_list }}",
        )
        for name, (major, flavour, headless, version, _expected) in RHEL_PACKAGES.items()
    }
    answers = _rhel_answers(cases)
    for name, (*_case, expected) in RHEL_PACKAGES.items():
        assert answers[name] == expected, name


# NVIDIA's repository: https://developer.download.nvidia.com/compute/cuda/repos/rhel<N>/<arch>, aarch64 as "sbsa"
# (the guide's network repository URLs; NVIDIA's ansible-role-nvidia-driver: replace('aarch64', 'sbsa')); the key
# each cuda-rhel<N>.repo names (D42D0685.pub for rhel8/rhel9, CDF6BA43.pub for rhel10). Headers, the guide's
# Red Hat preparation: "dnf install kernel-devel-matched kernel-headers" on 9/10, "kernel-devel-$(uname -r)" on 8.
# EPEL: "dnf install https://dl.fedoraproject.org/pub/epel/epel-release-latest-<N>.noarch.rpm".
NVIDIA_REPOS = "https://developer.download.nvidia.com/compute/cuda/repos"
RHEL_SOURCES = {
    "8-x86_64": ("8", "x86_64", f"{NVIDIA_REPOS}/rhel8/x86_64", "D42D0685.pub", "kernel-devel-5.14.0-503.11.1.el9_5.x86_64"),
    "9-aarch64": ("9", "aarch64", f"{NVIDIA_REPOS}/rhel9/sbsa", "D42D0685.pub", "kernel-devel-matched"),
    "10-x86_64": ("10", "x86_64", f"{NVIDIA_REPOS}/rhel10/x86_64", "CDF6BA43.pub", "kernel-devel-matched"),
    "10-aarch64": ("10", "aarch64", f"{NVIDIA_REPOS}/rhel10/sbsa", "CDF6BA43.pub", "kernel-devel-matched"),
}


def test_rhel_repository_headers_and_epel_per_release_and_architecture():
    expression = (
        "{{ [_nvidia_driver_rhel_repo_url, _nvidia_driver_rhel_gpg_key_url,"
        " _nvidia_driver_kernel_headers, _nvidia_driver_rhel_epel_release] }}"
    )
    answers = _rhel_answers({name: (major, arch, {}, expression) for name, (major, arch, *_rest) in RHEL_SOURCES.items()})
    for name, (major, _arch, url, key, headers) in RHEL_SOURCES.items():
        epel = f"https://dl.fedoraproject.org/pub/epel/epel-release-latest-{major}.noarch.rpm"
        assert answers[name] == [url, f"{url}/{key}", headers, epel], name


def test_rhel_aarch64_repository_file_names_sbsa(tmp_path):
    repo_file = tmp_path / "kubegpu-nvidia-cuda.repo"
    tasks = [
        {"name": "grace", "ansible.builtin.set_fact": {"architecture": "aarch64", "cacheable": True}},
        {"name": "repository", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "repository_redhat.yml")},
    ]
    run_play(tasks, FACTS["RedHat"], {"_nvidia_driver_rhel_repo_file": str(repo_file)})
    parser = configparser.ConfigParser()
    parser.read(repo_file)
    assert parser["kubegpu-nvidia-cuda"]["baseurl"] == f"{NVIDIA_REPOS}/rhel9/sbsa"


def _dnf_said(modules: str = "", locks: str = "") -> dict:
    return {
        "__nvidia_driver_rhel_modules": {"rc": 0, "stdout_lines": modules.splitlines()},
        "__nvidia_driver_rhel_locks": {"rc": 0, "stdout_lines": locks.splitlines()},
    }


MODULES_HEADER = "Name           Stream         Profiles                         Summary"
ENABLED_570_OPEN = f"{MODULES_HEADER}\nnvidia-driver  570-open [e]   default [d], fm, ks, src   Nvidia driver for 570-open branch"
ENABLED_550_DKMS = f"{MODULES_HEADER}\nnvidia-driver  550-dkms [d][e] default [d], fm, ks, src Nvidia driver for 550-dkms branch"
# The guide's "Version locking" example output, as `dnf versionlock list` shows the entries
LOCKS_575 = "kmod-nvidia-open-dkms-3:575.51-1.fc41.*\nnvidia-driver-cuda-3:575.51-1.fc41.*\nkernel-0:5.14.0-503.el9.*"
LOCKS_570 = "kmod-nvidia-open-dkms-3:570.195.03-1.el10.*\nnvidia-driver-cuda-3:570.195.03-1.el10.*"

# (release, flavour, pinned version, what dnf said, stream command, stale locks deleted, lock command)
RHEL_PLANS = {
    "9-fresh": ("9", "open", "", _dnf_said(), ["dnf", "-y", "module", "enable", "nvidia-driver:570-open"], [], []),
    "9-current": ("9", "open", "", _dnf_said(ENABLED_570_OPEN), [], [], []),
    "8-branch-and-flavour-change": (
        "8",
        "open",
        "",
        _dnf_said(ENABLED_550_DKMS),
        ["dnf", "-y", "module", "switch-to", "nvidia-driver:570-open", "--allowerasing"],
        [],
        [],
    ),
    "9-flavour-change": (
        "9",
        "proprietary",
        "",
        _dnf_said(ENABLED_570_OPEN),
        ["dnf", "-y", "module", "switch-to", "nvidia-driver:570-dkms", "--allowerasing"],
        [],
        [],
    ),
    "9-pinned": (
        "9",
        "open",
        "570.195.03",
        _dnf_said(ENABLED_570_OPEN, LOCKS_575),
        [],
        ["kmod-nvidia-open-dkms-3:575.51-1.fc41.*", "nvidia-driver-cuda-3:575.51-1.fc41.*"],
        ["dnf", "versionlock", "add", "*nvidia*570.195.03*"],
    ),
    "10-fresh": ("10", "open", "", _dnf_said(), [], [], ["dnf", "versionlock", "add", "*nvidia*570*"]),
    "10-locked-at-branch": ("10", "open", "", _dnf_said(locks=LOCKS_570), [], [], []),
    "10-branch-change": (
        "10",
        "open",
        "580.105.08",
        _dnf_said(locks=LOCKS_570),
        [],
        LOCKS_570.splitlines(),
        ["dnf", "versionlock", "add", "*nvidia*580.105.08*"],
    ),
}


def test_rhel_stream_switch_and_versionlock_plan_follow_the_guide():
    """RHEL 8/9: "dnf module enable nvidia-driver:<stream>", a branch or flavour change "dnf -y module switch-to
    nvidia-driver:<stream> --allowerasing" (Advanced Options); RHEL 10 has no streams: "dnf versionlock \\*nvidia\\*580\\*"
    (Kernel Modules) and a flavour change with "dnf install --allowerasing" (Advanced Options)."""
    expression = (
        "{{ [__nvidia_driver_rhel_stream_command, __nvidia_driver_rhel_stale_locks,"
        " __nvidia_driver_rhel_lock_command, __nvidia_driver_rhel_allowerasing] }}"
    )
    tasks = []
    for name, (major, flavour, version, said, *_expected) in RHEL_PLANS.items():
        variables = {"__nvidia_driver_module_type": flavour, "nvidia_driver_version": version, **said}
        tasks += [task for task in _rhel_case(f"set {name}", major, "x86_64", variables, "") if task][:2]
        tasks += [
            {"name": f"plan {name}", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "plan_redhat.yml")},
            {"name": name, "ansible.builtin.debug": {"msg": expression}},
        ]
    results = run_play(tasks, RHEL_FACTS["9"])
    for name, (major, _flavour, _version, _said, stream, stale, lock) in RHEL_PLANS.items():
        assert results[name]["result"]["msg"] == [stream, stale, lock, major == "10"], name


def test_rhel_epel_mirror_repository_in_check_mode_then_written_then_unchanged(tmp_path):
    """EPEL (where DKMS comes from) from a site's mirror: a repository file with gpgcheck against EPEL's key
    (https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-<N>) instead of Fedora's epel-release package."""
    repo_file = tmp_path / "kubegpu-epel.repo"
    mirror = "https://mirror.example.internal/epel/9/Everything/x86_64"
    task = {"name": "epel", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "epel_redhat.yml")}
    extra = {"_nvidia_driver_rhel_epel_file": str(repo_file), "nvidia_driver_rhel_epel_mirror": mirror}
    name = "Add EPEL from a mirror, its packages checked against EPEL's key"

    checked = run_play([task], FACTS["RedHat"], extra, check=True)
    assert checked[name]["result"]["changed"]
    assert checked["Add EPEL from Fedora's epel-release package"]["status"] == "skipped"
    assert not repo_file.exists()

    assert run_play([task], FACTS["RedHat"], extra)[name]["result"]["changed"]
    parser = configparser.ConfigParser()
    parser.read(repo_file)
    section = parser["kubegpu-epel"]
    assert section["baseurl"] == mirror
    assert section["gpgcheck"] == "1"
    assert section["gpgkey"] == "https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-9"

    assert not run_play([task], FACTS["RedHat"], extra)[name]["result"]["changed"]


def test_rhel_install_order_is_the_guides():
    """EPEL (DKMS) and the headers before the driver; python3-dnf-plugin-versionlock before any `dnf versionlock`
    ("Version locking": "Make sure the python3-dnf-plugin-versionlock package is installed"); the stream enabled and
    the lock added before "dnf install" ("Kernel Modules": "dnf module enable nvidia-driver:580-open" /
    "dnf versionlock \\*nvidia\\*580\\*", then "dnf install nvidia-open")."""
    tasks = yaml.safe_load((ROLE / "tasks" / "install_redhat.yml").read_text())
    names = [task["name"] for task in tasks]
    plugin = [
        i
        for i, task in enumerate(tasks)
        if task.get("ansible.builtin.dnf", {}).get("name") == "{{ _nvidia_driver_rhel_versionlock_plugin }}"
    ]
    versionlock = [i for i, task in enumerate(tasks) if "versionlock" in str(task.get("ansible.builtin.command", ""))]
    install = names.index("Install the driver's packages")
    assert plugin and versionlock and plugin[0] < min(versionlock)
    assert names.index("EPEL, where DKMS comes from") < install
    assert names.index("Install the running kernel's development files") < install
    assert names.index("Enable the driver's module stream, or switch to it") < install
    assert names.index("Hold the driver at the pinned version (or, on RHEL 10, the branch)") < install


def test_rhel_runfile_method_gets_epel_for_dkms_before_the_installer():
    """The runfile's build packages include dkms, which the RHEL family has from EPEL only."""
    tasks = yaml.safe_load((ROLE / "tasks" / "install.yml").read_text())
    includes = [task.get("ansible.builtin.include_tasks") for task in tasks]
    epel = includes.index("epel_redhat.yml")
    assert epel < includes.index("install_runfile.yml")
    assert "runfile" in tasks[epel]["when"] and "RedHat" in tasks[epel]["when"]


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
