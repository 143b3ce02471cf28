"""The nvidia_driver role's pending kernel: a kernel installed but not booted yet (unattended-upgrades, dnf
update) is the one the next boot runs, so the headers, the DKMS build check and the reboot decision cover it
as well as the running kernel.

Simulated: the node's OS facts (cacheable facts of localhost, as test_nvidia_driver_other_distributions.py
sets them); its /boot (a scratch directory, ``nvidia_driver_boot_dir``); grubby (an ``echo`` of what
``grubby --default-kernel`` prints, ``/boot/vmlinuz-<release>``); ``apt-cache policy``, ``modinfo`` and
``dkms`` (scripts first on PATH answering as the real tools do: apt-cache's ``Candidate:`` line, modinfo's
``-F version`` field or its error, a DKMS that builds a module for a kernel whose headers exist); the package
installer (a module that records the names it was asked for, set with ``ansible_package_use``).
Real: the role's tasks kernels.yml, headers.yml, built.yml and load.yml, its vars files and defaults, and
the kubegpu.core.kernel_version_sort filter.

Vendor facts the expected values come from: Debian and Ubuntu name a kernel's image ``/boot/vmlinuz-<uname
-r>`` and its headers ``linux-headers-<uname -r>``; Debian's ``linux-version sort`` (linux-base) orders
releases, GRUB's default entry on Debian boots the newest; RHEL's ``grubby --default-kernel`` prints the
default entry's image path and its development files are ``kernel-devel-<uname -r>``
(docs.nvidia.com/datacenter/tesla/driver-installation-guide: "sudo dnf install kernel-devel-$(uname -r)").
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.adhoc import REPO_ROOT
from tests.support.role_runs import GpuHost, gpu_host_vars, run_playbook

ROLE = REPO_ROOT / "roles" / "nvidia_driver"
RUNNING = "6.1.0-28-amd64"
# a Debian 12 node with backports' kernel installed by an upgrade, and older images left behind
IMAGES = ["6.1.0-9-amd64", RUNNING, "6.12.12+bpo-amd64"]
NEXT = "6.12.12+bpo-amd64"
DEBIAN = {"distribution": "Debian", "os_family": "Debian", "distribution_release": "bookworm", "distribution_major_version": "12"}
REDHAT = {"distribution": "RedHat", "os_family": "RedHat", "distribution_release": "Plow", "distribution_major_version": "9"}

RECORDER = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
module = AnsibleModule(argument_spec={"name": {"type": "list", "elements": "str"}}, supports_check_mode=True)
module.exit_json(changed=True, packages=module.params["name"])
"""

# apt-cache policy as apt prints it; a package the sources lack has "Candidate: (none)" (or no section at all)
APT_CACHE = """#!/bin/sh
[ "$1" = policy ] || exit 100
for package in "$@"; do
  [ "$package" = policy ] && continue
  if grep -qx "$package" "$FAKE_STATE/sources"; then
    printf '%s:\\n  Installed: (none)\\n  Candidate: 1.0\\n  Version table:\\n' "$package"
  else
    printf '%s:\\n  Installed: (none)\\n  Candidate: (none)\\n  Version table:\\n' "$package"
  fi
done
"""

# modinfo -k KERNEL -F version MODULE: the field, or "modinfo: ERROR: Module MODULE not found." and rc 1
MODINFO = """#!/bin/sh
kernel=$2 module=$5
if [ "$module" = nvidia ] && [ -f "$FAKE_STATE/modules/$kernel" ]; then cat "$FAKE_STATE/modules/$kernel"; exit 0; fi
echo "modinfo: ERROR: Module $module not found." >&2
exit 1
"""

# dkms autoinstall -k KERNEL: builds the registered version where the kernel's headers are there
DKMS = """#!/bin/sh
case "$1" in
  autoinstall)
    kernel=$3
    echo "autoinstall -k $kernel" >> "$FAKE_STATE/dkms.log"
    if [ -f "$FAKE_STATE/headers/$kernel" ]; then cp "$FAKE_STATE/registered" "$FAKE_STATE/modules/$kernel"; fi ;;
  status)
    for built in "$FAKE_STATE"/modules/*; do echo "nvidia/$(cat "$built"), $(basename "$built"), x86_64: installed"; done ;;
esac
"""


class Node:
    """The scratch node: its /boot, the fake tools' state, PATH and the recorder module."""

    def __init__(self, root: Path, images: list[str], sources: list[str], modules: dict[str, str], headers: list[str]):
        self.boot = root / "boot"
        self.state = root / "state"
        self.bin = root / "bin"
        self.library = root / "library"
        for directory in (self.boot, self.state / "modules", self.state / "headers", self.bin, self.library):
            directory.mkdir(parents=True)
        for release in images:
            for stem in ("vmlinuz", "config", "System.map", "initrd.img"):
                (self.boot / f"{stem}-{release}").write_text("")
        # a detached signature is not an image (DebianLinux::image_list skips *.sig)
        (self.boot / "vmlinuz-9.9.9-1-amd64.sig").write_text("")
        (self.state / "sources").write_text("".join(f"{package}\n" for package in sources))
        (self.state / "registered").write_text("535.216.01\n")
        for release, version in modules.items():
            (self.state / "modules" / release).write_text(f"{version}\n")
        for release in headers:
            (self.state / "headers" / release).write_text("")
        for name, text in (("apt-cache", APT_CACHE), ("modinfo", MODINFO), ("dkms", DKMS)):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        (self.library / "record_packages.py").write_text(RECORDER)

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_STATE": str(self.state),
            "ANSIBLE_LIBRARY": str(self.library),
        }

    def dkms_log(self) -> list[str]:
        log = self.state / "dkms.log"
        return log.read_text().splitlines() if log.exists() else []


def run_tasks(node: Node, facts: dict[str, str], files: list[str], extra: dict | None = None, check: bool = False):
    """The role's defaults and vars for ``facts``, then its task ``files``; returns the run."""
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "node facts",
                "ansible.builtin.set_fact": {**facts, "architecture": "x86_64", "kernel": RUNNING, "cacheable": True},
            },
            {"name": "role defaults", "ansible.builtin.include_vars": str(ROLE / "defaults" / "main.yml")},
            {"name": "role vars", "ansible.builtin.include_vars": str(ROLE / "vars" / "main.yml")},
            {"name": "distribution vars", "ansible.builtin.include_vars": str(ROLE / "vars" / f"{facts['distribution']}.yml")},
            *({"name": file, "ansible.builtin.include_tasks": str(ROLE / "tasks" / file)} for file in files),
            {"name": "kernels", "ansible.builtin.debug": {"msg": "{{ __nvidia_driver_kernels | default(none) }}"}},
        ],
    }
    variables = {
        "ansible_become": False,
        "ansible_package_use": "record_packages",
        "nvidia_driver_boot_dir": str(node.boot),
        "__nvidia_driver_nouveau_loaded": False,
        **(extra or {}),
    }
    return run_playbook([play], extra_vars=variables, env=node.env, check=check, cwd=REPO_ROOT)


def kernels_of(run) -> list[str]:
    assert run.rc == 0, run.explain()
    return run.task("kernels").result["msg"]


def test_the_newest_installed_image_is_the_next_boots_kernel_and_joins_the_running_one(tmp_path):
    node = Node(tmp_path, IMAGES, [], {}, [])
    assert kernels_of(run_tasks(node, DEBIAN, ["kernels.yml"])) == [RUNNING, NEXT]
    if shutil.which("linux-version"):  # the newest as Debian's own tool says
        newest = subprocess.run(["linux-version", "sort", *IMAGES], capture_output=True, text=True, check=True).stdout.split()[-1]
        assert newest == NEXT


def test_a_node_without_kernel_images_has_its_running_kernel_only(tmp_path):
    node = Node(tmp_path, [], [], {}, [])
    assert kernels_of(run_tasks(node, DEBIAN, ["kernels.yml"])) == [RUNNING]


def test_a_node_that_runs_its_newest_kernel_has_nothing_pending(tmp_path):
    node = Node(tmp_path, ["6.1.0-9-amd64", RUNNING], [], {}, [])
    assert kernels_of(run_tasks(node, DEBIAN, ["kernels.yml"])) == [RUNNING]


@pytest.mark.parametrize(
    ("major", "running_headers"),
    [
        # NVIDIA's Driver Installation Guide, Red Hat preparation: "dnf install kernel-devel-matched kernel-headers"
        # on RHEL 9/10, "dnf install kernel-devel-$(uname -r) kernel-headers" on RHEL 8; another kernel's own
        # kernel-devel-<release> for the kernel the next boot runs
        ("9", "kernel-devel-matched"),
        ("8", f"kernel-devel-{RUNNING}"),
    ],
)
def test_rhel_takes_grubbys_default_kernel(tmp_path, major, running_headers):
    node = Node(tmp_path, [], [], {}, [])
    grubby = ["echo", "/boot/vmlinuz-5.14.0-503.15.1.el9_5.x86_64"]
    facts = dict(REDHAT, distribution_major_version=major)
    run = run_tasks(node, facts, ["kernels.yml", "headers.yml"], {"_nvidia_driver_default_kernel_command": grubby})
    assert kernels_of(run) == [RUNNING, "5.14.0-503.15.1.el9_5.x86_64"]
    assert run.task("Install the kernels' headers").result["packages"] == [
        running_headers,
        "kernel-devel-5.14.0-503.15.1.el9_5.x86_64",
    ]


def test_headers_are_installed_for_the_running_and_the_next_kernel(tmp_path):
    node = Node(tmp_path, IMAGES, [f"linux-headers-{RUNNING}", f"linux-headers-{NEXT}"], {}, [])
    run = run_tasks(node, DEBIAN, ["kernels.yml", "headers.yml"])
    assert run.rc == 0, run.explain()
    assert run.task("Install the kernels' headers").result["packages"] == [f"linux-headers-{RUNNING}", f"linux-headers-{NEXT}"]


def test_headers_the_sources_lack_are_left_to_the_build_check(tmp_path):
    node = Node(tmp_path, IMAGES, [f"linux-headers-{RUNNING}"], {}, [])
    run = run_tasks(node, DEBIAN, ["kernels.yml", "headers.yml"])
    assert run.rc == 0, run.explain()
    assert run.task("Install the kernels' headers").result["packages"] == [f"linux-headers-{RUNNING}"]


def test_the_build_check_fails_naming_the_next_kernel_that_lacks_the_module(tmp_path):
    # the module was built for the running kernel only; the next kernel's headers are not in the sources
    node = Node(tmp_path, IMAGES, [f"linux-headers-{RUNNING}"], {RUNNING: "535.216.01"}, [RUNNING])
    run = run_tasks(node, DEBIAN, ["kernels.yml", "headers.yml", "built.yml"])
    assert run.rc != 0
    message = " ".join(run.task("Fail with what DKMS could not do").result["msg"].split())
    assert f"for the kernel its next boot runs, {NEXT}: the headers of that kernel are not installed" in message
    assert f"linux-headers-{NEXT} is not in the node's package sources" in message
    assert f"for its running kernel {RUNNING}" not in message
    assert f"nvidia/535.216.01, {RUNNING}, x86_64: installed" in message  # dkms status
    assert node.dkms_log() == [f"autoinstall -k {NEXT}"]


def test_dkms_builds_the_module_for_the_next_kernel_whose_headers_are_there(tmp_path):
    node = Node(tmp_path, IMAGES, [f"linux-headers-{RUNNING}", f"linux-headers-{NEXT}"], {RUNNING: "535.216.01"}, [RUNNING, NEXT])
    run = run_tasks(node, DEBIAN, ["kernels.yml", "built.yml"], {"nvidia_driver_version": "535.216.01"})
    assert run.rc == 0, run.explain()
    assert node.dkms_log() == [f"autoinstall -k {NEXT}"]
    assert run.task("Build the module with DKMS for each kernel that lacks it").result["changed"]
    assert (node.state / "modules" / NEXT).read_text().strip() == "535.216.01"


def test_a_module_of_another_version_on_the_next_kernel_does_not_count(tmp_path):
    node = Node(tmp_path, IMAGES, [], {RUNNING: "550.163.01", NEXT: "535.216.01"}, [])
    run = run_tasks(node, DEBIAN, ["kernels.yml", "built.yml"], {"nvidia_driver_version": "550.163.01"})
    assert run.rc != 0
    message = " ".join(run.task("Fail with what DKMS could not do").result["msg"].split())
    assert f"for the kernel its next boot runs, {NEXT}: its module is version 535.216.01, not the wanted 550.163.01" in message


@pytest.mark.parametrize(("images", "reboot"), [(IMAGES, True), (["6.1.0-9-amd64", RUNNING], False)])
def test_a_pending_kernel_makes_the_driver_change_reboot(tmp_path, images, reboot):
    """Nothing holds the GPUs (no nouveau, no nvidia module): only the pending kernel asks for the reboot.
    Check mode: load.yml would otherwise run modprobe on this machine."""
    node = Node(tmp_path, images, [], {}, [])
    extra = {"__nvidia_driver_gpu": {"present": True, "driver_loaded": False}}
    run = run_tasks(node, DEBIAN, ["kernels.yml", "load.yml"], extra, check=True)
    assert run.rc == 0, run.explain()
    assert (
        run.task("Decide whether loading the driver needs a reboot").result["ansible_facts"]["__nvidia_driver_reboot_needed"]
        is reboot
    )


# newer than any kernel this machine runs (the role gathers the real running kernel on the GPU host)
UPGRADE = "99.1.0-1-amd64"


@pytest.mark.parametrize(("pending", "reboot_required"), [(True, True), (False, False)])
def test_a_current_driver_with_a_pending_kernel_reports_the_reboot_and_names_both_kernels(tmp_path, pending, reboot_required):
    """The whole role, in check mode, on this machine as a GPU host (the fake NVML answering a T4 with driver
    535.161.08 loaded: the driver is current, nothing to install). A kernel installed but not booted yet is
    reported: the node needs a reboot into it, and the module is checked for both kernels."""
    node = Node(tmp_path, [UPGRADE] if pending else [], [], {}, [])
    host = gpu_host_vars("gpu-node", GpuHost("t4"), tmp_path / "hosts")
    play = {
        "hosts": "gpu-node",
        "gather_facts": False,
        "vars": {
            "nvidia_driver_python_interpreter": host["ansible_python_interpreter"],
            "nvidia_driver_sysfs_root": host["kubegpu_test_sysfs"],
            "nvidia_driver_boot_dir": str(node.boot),
        },
        "roles": [{"role": "kubegpu.core.nvidia_driver"}],
        "tasks": [{"name": "status", "ansible.builtin.debug": {"msg": "{{ nvidia_driver_status }}"}}],
    }
    inventory = {"all": {"hosts": {"gpu-node": host}}}
    variables = {"ansible_become": False, "ansible_package_use": "record_packages"}
    run = run_playbook([play], inventory, extra_vars=variables, env=node.env, check=True, cwd=REPO_ROOT)
    assert run.rc == 0, run.explain()
    status = run.task("status").result["msg"]
    assert status["driver_was_current"]
    assert status["reboot_required"] is reboot_required
    running = status["kernels"][0]
    assert status["kernels"] == ([running, UPGRADE] if pending else [running])
