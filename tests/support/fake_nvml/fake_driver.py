"""Doubles of the NVIDIA driver's life cycle on a lab node: ``modprobe``, ``modinfo``, ``dkms`` and the runfile installer.

One script, picked by the name it is called under (the lab links ``/usr/local/sbin/{modprobe,modinfo,dkms}`` to it,
ahead of ``/usr/sbin`` on PATH), or ``fake_driver.py installer <version> [options]`` (what a generated
``NVIDIA-Linux-x86_64-<version>.run``, see ``runfile()`` in ``tests/support/fake_nvml/__init__.py``, runs).
They share one state with the fake NVML library: the node's scenario (``FAKE_NVML_SCENARIO``, default
``/etc/fake-nvml/scenario.json``) answers for the *loaded* driver, and ``<state dir>/driver.json``
(``FAKE_DRIVER_STATE``, default ``/var/lib/fake-nvidia``) holds what is installed and what is loaded:
``{"installed": "<version>", "loaded": ["nvidia", "nvidia_modeset", "nvidia_drm", "nvidia_uvm"]}``.
The C library is unchanged: unloading writes ``init_error: DRIVER_NOT_LOADED`` into the scenario (its documented key),
loading removes it and sets ``driver_version`` / ``nvml_version`` to the installed version.

modprobe (kmod's, read in kmod's ``tools/modprobe.c`` and modprobe(8)):
  ``modprobe nvidia`` loads the installed module (its dependency-free stand-in: ``nvidia`` alone; ``nvidia_uvm``,
  ``nvidia_drm``, ``nvidia_modeset`` load ``nvidia`` too, as their ``depends=nvidia``). With nothing installed it
  fails as kmod does: ``modprobe: FATAL: Module nvidia not found in directory /lib/modules/<kernel>``, rc 1.
  ``modprobe -r nvidia_uvm nvidia_drm nvidia_modeset nvidia`` unloads them, unless a GPU client holds the device:
  the ``nvidia-persistenced`` unit active (``systemctl is-active``; ``FAKE_DRIVER_SYSTEMCTL`` names the command)
  makes it refuse with kmod's ``modprobe: FATAL: Module nvidia is in use.``, rc 1, nothing unloaded. Removing a
  module that is not loaded is no error (modprobe -r's documented behaviour). Other modules go to the real
  ``/usr/sbin/modprobe`` (``FAKE_DRIVER_REAL_MODPROBE``) when there is one; else kmod's "not found".
modinfo (kmod's): ``modinfo [-k kernel] -F version nvidia`` (or ``nvidia_uvm`` ...) prints the installed version;
  not installed: ``modinfo: ERROR: Module nvidia not found.``, rc 1. Other fields than ``version`` print nothing.
dkms status (dkms(8)): ``nvidia/<version>, <kernel>, x86_64: installed`` when a runfile installed with ``--dkms``.
Installer (nvidia-installer, its ``--help`` and the driver README's "Installing the NVIDIA Driver"): refuses while
  the nvidia module is loaded, with nvidia-installer's message ("An NVIDIA kernel module 'nvidia' appears to already
  be loaded in your kernel ..."), rc 1; with ``<state dir>/fail-build`` present (the failure marker a test places)
  it fails building the module as it does when the kernel build fails ("An error occurred while performing the
  step: "Building kernel modules"" ... then "Installation has failed"), rc 1, the installed driver unchanged;
  otherwise it "installs" the version, appends to ``/var/log/nvidia-installer.log``-like ``<state dir>/installer.log``
  and leaves the module unloaded (the installer's own test load is not simulated).

Not simulated: real kernel modules, module reference counts other than through nvidia-persistenced, the
installer's other checks (nouveau, X server, compiler), its uninstall of a previous driver, signing, a reboot.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

MODULES = ("nvidia", "nvidia_modeset", "nvidia_drm", "nvidia_uvm")
STATE_DIR = Path(os.environ.get("FAKE_DRIVER_STATE", "/var/lib/fake-nvidia"))
SCENARIO = Path(os.environ.get("FAKE_NVML_SCENARIO", "/etc/fake-nvml/scenario.json"))
REAL_MODPROBE = os.environ.get("FAKE_DRIVER_REAL_MODPROBE", "/usr/sbin/modprobe")
REAL_MODINFO = os.environ.get("FAKE_DRIVER_REAL_MODINFO", "/usr/sbin/modinfo")
SYSTEMCTL = os.environ.get("FAKE_DRIVER_SYSTEMCTL", "systemctl")
# The node's PCI view (tests/support/fake_sysfs.py's layout; the lab points nvidia_driver_sysfs_root at it): the GPUs
# stay on the bus whatever the driver does, bound to nvidia (bus/pci/devices/*/driver) and module/<name> while loaded.
SYSFS = Path(os.environ.get("FAKE_DRIVER_SYSFS", "/var/lib/fake-nvidia/sys"))
CLIENT_UNITS = ("nvidia-persistenced",)
ALREADY_LOADED = (
    "ERROR: An NVIDIA kernel module 'nvidia' appears to already be loaded in your kernel.  This may be because it is in use "
    "(for example, by an X server, a CUDA program, or the NVIDIA Persistence Daemon), but this may also happen if your "
    "kernel was configured without support for module unloading.  Please be sure to exit any programs that may be using "
    "the GPU(s) before attempting to upgrade your driver."
)
BUILD_FAILED = (
    'ERROR: An error occurred while performing the step: "Building kernel modules". '
    "See /var/log/nvidia-installer.log for details."
)
INSTALL_FAILED = (
    "ERROR: Installation has failed.  Please see the file '/var/log/nvidia-installer.log' for details.  You may find "
    "suggestions on fixing installation problems in the README available on the Linux driver download page at www.nvidia.com."
)


def state() -> dict:
    try:
        return json.loads((STATE_DIR / "driver.json").read_text())
    except FileNotFoundError:
        return {"installed": None, "loaded": []}


def save(current: dict) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / "driver.json").write_text(json.dumps(current, indent=2) + "\n")
    scenario = json.loads(SCENARIO.read_text())
    if "nvidia" in current["loaded"]:
        scenario.pop("init_error", None)
        scenario["driver_version"] = current["installed"]
        scenario["nvml_version"] = f"12.{current['installed']}"
    else:
        scenario["init_error"] = "DRIVER_NOT_LOADED"
    SCENARIO.write_text(json.dumps(scenario, indent=2) + "\n")
    _sysfs(current["loaded"])


def _sysfs(loaded: list[str]) -> None:
    """What the kernel shows in sysfs: module/<name> for each loaded module, the GPUs bound to nvidia while it is."""
    if not (SYSFS / "bus" / "pci" / "devices").is_dir():
        return
    for module in MODULES:
        directory = SYSFS / "module" / module
        if module in loaded:
            directory.mkdir(parents=True, exist_ok=True)
        elif directory.is_dir():
            directory.rmdir()
    driver = SYSFS / "bus" / "pci" / "drivers" / "nvidia"
    for device in (SYSFS / "bus" / "pci" / "devices").iterdir():
        real = device.resolve()
        if (real / "vendor").read_text().strip().lower() != "0x10de":
            continue
        link = real / "driver"
        if "nvidia" in loaded and not link.is_symlink():
            driver.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(driver, real))
        elif "nvidia" not in loaded and link.is_symlink():
            link.unlink()


def initialise(version: str) -> None:
    """The node as the lab starts it: ``version`` installed and loaded (what the scenario answers)."""
    save({"installed": version, "loaded": list(MODULES)})


def _kernel(argv: list[str]) -> str:
    for index, arg in enumerate(argv):
        if arg in ("-k", "--set-version", "-S") and index + 1 < len(argv):
            return argv[index + 1]
    return platform.release()


def _in_use() -> list[str]:
    active = [subprocess.run([SYSTEMCTL, "is-active", "--quiet", unit], check=False).returncode == 0 for unit in CLIENT_UNITS]
    return [unit for unit, is_active in zip(CLIENT_UNITS, active) if is_active]


def _real(binary: str, argv: list[str], not_found: str) -> int:
    """The real tool for what is not the driver's, else kmod's answer for a module the node does not have."""
    if os.path.exists(binary):
        os.execv(binary, [binary, *argv])
    print(not_found, file=sys.stderr)
    return 1


def modprobe(argv: list[str]) -> int:
    remove = any(arg in ("-r", "--remove") for arg in argv)
    names = [arg for arg in argv if not arg.startswith("-")]
    kernel = _kernel(argv)
    ours = [name.replace("-", "_") for name in names if name.replace("-", "_") in MODULES]
    if not ours:
        return _real(
            REAL_MODPROBE,
            argv,
            f"modprobe: FATAL: Module {names[-1] if names else ''} not found in directory /lib/modules/{kernel}",
        )
    current = state()
    if remove:
        # kmod refuses a module a process holds, or one another loaded module depends on (nvidia_uvm on nvidia)
        dependents = [module for module in current["loaded"] if module != "nvidia" and module not in ours]
        if "nvidia" in current["loaded"] and "nvidia" in ours and (_in_use() or dependents):
            print("modprobe: FATAL: Module nvidia is in use.", file=sys.stderr)
            return 1
        current["loaded"] = [module for module in current["loaded"] if module not in ours]
        save(current)
        return 0
    if not current["installed"]:
        print(f"modprobe: FATAL: Module {names[0]} not found in directory /lib/modules/{kernel}", file=sys.stderr)
        return 1
    current["loaded"] = sorted({*current["loaded"], "nvidia", *ours}, key=MODULES.index)
    save(current)
    return 0


def modinfo(argv: list[str]) -> int:
    names = [arg for index, arg in enumerate(argv) if not arg.startswith("-") and argv[index - 1] not in ("-k", "-F", "--field")]
    if not names or names[-1].replace("-", "_") not in MODULES:
        return _real(REAL_MODINFO, argv, f"modinfo: ERROR: Module {names[-1] if names else ''} not found.")
    installed = state()["installed"]
    if not installed:
        print(f"modinfo: ERROR: Module {names[-1]} not found.", file=sys.stderr)
        return 1
    field = next((argv[index + 1] for index, arg in enumerate(argv[:-1]) if arg in ("-F", "--field")), None)
    if field in (None, "version"):
        print(installed if field else f"version:        {installed}")
    return 0


def dkms(argv: list[str]) -> int:
    if argv[:1] != ["status"]:
        print(f"fake dkms: only 'dkms status' is simulated, not {' '.join(argv)}", file=sys.stderr)
        return 2
    current = state()
    if current.get("dkms") and current["installed"]:
        print(f"nvidia/{current['installed']}, {platform.release()}, {platform.machine()}: installed")
    return 0


def installer(version: str, argv: list[str]) -> int:
    log = STATE_DIR / "installer.log"
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"nvidia-installer command line: {' '.join(argv)}\n-> Installing NVIDIA driver version {version}\n")
    current = state()
    if "nvidia" in current["loaded"]:
        print(ALREADY_LOADED, file=sys.stderr)
        print(INSTALL_FAILED, file=sys.stderr)
        return 1
    if (STATE_DIR / "fail-build").exists():
        with log.open("a") as out:
            out.write(f"-> Kernel module compilation failed (simulated: {STATE_DIR / 'fail-build'})\n")
        print(BUILD_FAILED, file=sys.stderr)
        print(INSTALL_FAILED, file=sys.stderr)
        return 1
    current.update(installed=version, dkms="--dkms" in argv)
    save(current)
    print(f"Installation of the NVIDIA Accelerated Graphics Driver for Linux-x86_64 (version: {version}) is now complete.")
    return 0


TOOLS = ("modprobe", "modinfo", "dkms")


def main(argv: list[str]) -> int:
    name = Path(argv[0]).name
    # run by a tool's wrapper (fake_nvml.tool_wrapper): ``fake_driver.py modprobe|modinfo|dkms ...``
    if name not in TOOLS and argv[1:2] and argv[1] in TOOLS:
        name, argv = argv[1], argv[1:]
    if name == "modprobe":
        return modprobe(argv[1:])
    if name == "modinfo":
        return modinfo(argv[1:])
    if name == "dkms":
        return dkms(argv[1:])
    if argv[1:2] == ["installer"] and len(argv) > 2:
        return installer(argv[2], argv[3:])
    if argv[1:2] == ["initialise"] and len(argv) > 2:
        initialise(argv[2])
        return 0
    print("usage: modprobe|modinfo|dkms ... | fake_driver.py installer|initialise <version> [options]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
