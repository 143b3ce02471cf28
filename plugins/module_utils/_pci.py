# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVIDIA GPUs on the PCI bus, read from sysfs. Private to the collection.

Works without any NVIDIA software: a node whose driver is missing, or bound to
nouveau or vfio-pci, still shows its GPUs here.
"""

from __future__ import annotations

import os
import typing as t

NVIDIA_VENDOR_ID = 0x10DE
# PCI base class 0x03 (display controller), subclasses 0x00 (VGA compatible) and 0x02 (3D controller).
GPU_CLASSES = (0x0300, 0x0302)


def _read_hex(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip(), 16)
    except (OSError, ValueError):
        return None


def normalize_bus_id(bus_id: str) -> str:
    """``00000000:3B:00.0`` (NVML, nvidia-smi) or ``0000:3b:00.0`` (sysfs) -> ``0000:3b:00.0``."""
    text = bus_id.strip().lower()
    domain, sep, rest = text.partition(":")
    if not sep or rest.count(":") != 1:
        return text
    try:
        return f"{int(domain, 16):04x}:{rest}"
    except ValueError:
        return text


def scan(sysfs_root: str = "/sys") -> list[dict[str, t.Any]] | None:
    """NVIDIA display controllers under ``<sysfs_root>/bus/pci/devices``, sorted by bus id;
    ``physical_function`` is the bus id of the GPU an SR-IOV virtual function belongs to
    (None for a GPU itself).

    Returns None when that directory does not exist (no sysfs, a container
    without /sys), so callers can tell "no GPU" from "cannot look".
    """
    devices_dir = os.path.join(sysfs_root, "bus", "pci", "devices")
    try:
        entries = sorted(os.listdir(devices_dir))
    except OSError:
        return None
    found = []
    for entry in entries:
        path = os.path.join(devices_dir, entry)
        if _read_hex(os.path.join(path, "vendor")) != NVIDIA_VENDOR_ID:
            continue
        pci_class = _read_hex(os.path.join(path, "class"))
        if pci_class is None or pci_class >> 8 not in GPU_CLASSES:
            continue
        device_id = _read_hex(os.path.join(path, "device"))
        driver_link = os.path.join(path, "driver")
        driver = os.path.basename(os.readlink(driver_link)) if os.path.islink(driver_link) else None
        physfn_link = os.path.join(path, "physfn")
        physical_function = normalize_bus_id(os.path.basename(os.readlink(physfn_link))) if os.path.islink(physfn_link) else None
        found.append(
            {
                "pci_bus_id": normalize_bus_id(entry),
                "pci_device_id": None if device_id is None else f"0x{device_id:04x}",
                "pci_class": f"0x{pci_class:06x}",
                "driver": driver,
                "physical_function": physical_function,
            }
        )
    return found


def split_functions(functions: list[dict[str, t.Any]]) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    """``(physical, virtual)``: the GPUs themselves (without the ``physical_function`` key) and
    their SR-IOV virtual functions (a ``physfn`` link in sysfs), which are slices of a GPU
    handed to VMs (vGPU on A100/H100 hosts), not GPUs of their own."""
    physical = [
        {key: value for key, value in f.items() if key != "physical_function"} for f in functions if not f["physical_function"]
    ]
    virtual = [f for f in functions if f["physical_function"]]
    return physical, virtual


def kernel_module_loaded(sysfs_root: str = "/sys", name: str = "nvidia") -> bool:
    """Whether the kernel module ``name`` is loaded (``<sysfs_root>/module/<name>`` exists)."""
    return os.path.isdir(os.path.join(sysfs_root, "module", name))


def kernel_module_version(sysfs_root: str = "/sys", name: str = "nvidia") -> str | None:
    """The version of the loaded kernel module ``name`` (``<sysfs_root>/module/<name>/version``, which the kernel
    writes for a module that declares one, as nvidia.ko does), or None."""
    try:
        with open(os.path.join(sysfs_root, "module", name, "version"), encoding="utf-8") as handle:
            return handle.read().strip() or None
    except (OSError, UnicodeDecodeError):
        return None
