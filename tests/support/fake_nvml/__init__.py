"""The fake NVML library for tests: build it, name its scenarios.

``library_dir()`` runs ``make`` in this folder (gcc; a no-op when the library is
up to date) and returns the directory holding ``libnvidia-ml.so.1``; point
``LD_LIBRARY_PATH`` there and ``FAKE_NVML_SCENARIO`` at ``scenario(name)``.
See README.md for what the library simulates.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from tests.support.fake_sysfs import PciFunction

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
BUILD_DIR = Path(os.environ.get("KUBEGPU_FAKE_NVML_BUILD", REPO_ROOT / ".cache" / "fake_nvml"))
SCENARIOS = sorted(path.stem for path in HERE.glob("*.json"))


def library_dir() -> Path:
    """Build (when needed) and return the directory of the fake libnvidia-ml.so.1."""
    subprocess.run(["make", "-s", "-C", str(HERE), f"BUILD_DIR={BUILD_DIR}"], check=True, capture_output=True, text=True)
    return BUILD_DIR


def scenario(name: str) -> Path:
    path = HERE / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no fake NVML scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return path


def load(name: str) -> dict:
    return json.loads(scenario(name).read_text())


def environment(name: str, call_log: Path | None = None, state: Path | None = None) -> dict[str, str]:
    """Environment variables that make pynvml load the fake library answering ``name``; ``state``: the file where
    the GPUs' MIG mode and instances persist between processes (without it they live in one process only)."""
    env = {"LD_LIBRARY_PATH": str(library_dir()), "FAKE_NVML_SCENARIO": str(scenario(name))}
    if call_log is not None:
        env["FAKE_NVML_CALL_LOG"] = str(call_log)
    if state is not None:
        env["FAKE_NVML_STATE"] = str(state)
    return env


def read_state(state: Path) -> dict:
    """The MIG state file the library wrote (``{"serial", "gpus": [{"uuid", "current", "pending",
    "gpu_instances": [{"id", "profile", "name", "start", "compute_instances": [...]}]}]}``); {} before any change."""
    path = Path(state)
    return json.loads(path.read_text()) if path.is_file() else {}


def reset_gpus(state: Path) -> None:
    """Simulate a GPU reset or a reboot of the node: every pending MIG mode becomes the current one (a mode change
    that answered RESET_REQUIRED takes effect). Nothing to do before any change."""
    data = read_state(state)
    for gpu in data.get("gpus", []):
        gpu["current"] = gpu["pending"]
        if not gpu["current"]:
            gpu["gpu_instances"] = []
    if data:
        Path(state).write_text(json.dumps(data))


DRIVER_DOUBLE = HERE / "fake_driver.py"
# where the lab installs fake_driver.py on a node (beside the fake nvidia-smi)
NODE_DRIVER_DOUBLE = "/usr/local/lib/fake-nvml/fake_driver.py"
# the tools it stands in for, each a wrapper script on PATH (tool_wrapper)
DRIVER_TOOLS = ("modprobe", "modinfo", "dkms")


def tool_wrapper(tool: str, double: str = NODE_DRIVER_DOUBLE) -> str:
    """The script that stands where ``tool`` (modprobe, modinfo, dkms) is found on PATH and runs the driver double as it
    (``double``: fake_driver.py's path where the script will run)."""
    return (
        f"#!/bin/sh\n# A double of {tool}: see tests/support/fake_nvml/fake_driver.py\n"
        f'exec /usr/bin/env python3 {double} {tool} "$@"\n'
    )


def runfile(version: str, directory: Path, double: str = NODE_DRIVER_DOUBLE) -> tuple[Path, str]:
    """Write a double of NVIDIA's runfile ``NVIDIA-Linux-x86_64-<version>.run`` into ``directory``: a shell script that
    runs ``fake_driver.py installer <version>`` (``double``: its path where the script will run). Returns the file and
    its sha256, as nvidia_driver_runfile_src / nvidia_driver_runfile_sha256 want them."""
    path = Path(directory) / f"NVIDIA-Linux-x86_64-{version}.run"
    path.write_text(
        "#!/bin/sh\n"
        f"# A double of NVIDIA's driver installer {path.name}: see tests/support/fake_nvml/fake_driver.py\n"
        f'exec /usr/bin/env python3 {double} installer {version} "$@"\n'
    )
    path.chmod(0o755)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def pci_functions(name: str) -> list[PciFunction]:
    """The scenario's GPUs as the PCI functions sysfs lists (``fake_sysfs.PciFunction``, no driver bound): NVML's bus id
    ``00000000:18:00.0`` is sysfs' ``0000:18:00.0``; NVML's pci_device_id holds the device id in its upper 16 bits and
    the vendor (0x10DE) in the lower (nvml.h, nvmlPciInfo_t)."""
    functions = []
    for device in load(name).get("devices") or []:
        domain, rest = device["pci_bus_id"].split(":", 1)
        combined = int(device["pci_device_id"], 16)
        functions.append(PciFunction(f"{domain[-4:]}:{rest}".lower(), vendor=combined & 0xFFFF, device=combined >> 16))
    return functions
