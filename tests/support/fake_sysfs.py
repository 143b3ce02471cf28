"""A fake sysfs tree for the PCI scan of gpu_facts.

Simulates what the kernel shows under ``/sys``: ``bus/pci/devices/<bus id>`` as
links into ``devices/pci<domain>:<bus>/``, each device directory holding the
``vendor``, ``device`` and ``class`` files (hex, newline-terminated) and, when a
driver is bound, a ``driver`` link to ``bus/pci/drivers/<name>``; an SR-IOV
virtual function has a ``physfn`` link to its physical function's directory,
which has a ``virtfn<N>`` link back to each of its virtual functions; loaded kernel
modules as ``module/<name>`` directories, with the ``version`` file the kernel writes
for a module that declares its version (``/sys/module/nvidia/version`` holds the
loaded nvidia.ko's version, e.g. ``535.161.08``). Nothing else of sysfs is simulated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class PciFunction(NamedTuple):
    bus_id: str  # "0000:3b:00.0"
    vendor: int = 0x10DE
    device: int = 0x1DB1
    pci_class: int = 0x030200  # 3D controller
    driver: str | None = None
    physfn: str | None = None  # bus id of the physical function, for an SR-IOV virtual function


def build(
    root: Path, functions: list[PciFunction], modules: tuple[str, ...] = (), module_versions: dict[str, str] | None = None
) -> Path:
    """Lay out ``functions`` and ``modules`` under ``root``; ``module_versions`` are loaded modules too, each with
    its ``version`` file (the nvidia module loaded: ``module_versions={"nvidia": "535.161.08"}``); returns ``root``."""
    devices = root / "bus" / "pci" / "devices"
    devices.mkdir(parents=True, exist_ok=True)
    for function in functions:
        domain, bus, _rest = function.bus_id.split(":", 2)
        real = root / "devices" / f"pci{domain}:{bus}" / function.bus_id
        real.mkdir(parents=True)
        (real / "vendor").write_text(f"0x{function.vendor:04x}\n")
        (real / "device").write_text(f"0x{function.device:04x}\n")
        (real / "class").write_text(f"0x{function.pci_class:06x}\n")
        if function.driver:
            driver_dir = root / "bus" / "pci" / "drivers" / function.driver
            driver_dir.mkdir(parents=True, exist_ok=True)
            (real / "driver").symlink_to(os.path.relpath(driver_dir, real))
        (devices / function.bus_id).symlink_to(os.path.relpath(real, devices))
    for function in functions:
        if function.physfn:
            real = (devices / function.bus_id).resolve()
            parent = (devices / function.physfn).resolve()
            (real / "physfn").symlink_to(os.path.relpath(parent, real))
            number = len(list(parent.glob("virtfn*")))
            (parent / f"virtfn{number}").symlink_to(os.path.relpath(real, parent))
    for module in modules:
        (root / "module" / module).mkdir(parents=True)
    for module, version in (module_versions or {}).items():
        (root / "module" / module).mkdir(parents=True, exist_ok=True)
        (root / "module" / module / "version").write_text(f"{version}\n")
    return root
