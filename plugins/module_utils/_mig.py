# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MIG layouts in mig-parted's file format: NVIDIA's named layouts, validation, per-GPU matching and the packing of
GPU instances into placements. Private to the collection.

The format (``version: v1``, ``mig-configs: {name: [{devices, device-filter, mig-enabled, mig-devices}]}``) is
NVIDIA mig-parted's; the named layouts below are our own table of the ones mig-parted's default configuration and the
GPU Operator ship for A100 40GB/80GB and H100 80GB (same names, same counts, same device filters).
"""

from __future__ import annotations

import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

# PCI device ids as NVML's pciDeviceId prints them (device << 16 | 0x10DE)
A100_40GB_IDS = ["0x20B010DE", "0x20B110DE", "0x20F110DE", "0x20F610DE"]
GPUS_80GB_IDS = ["0x233010DE", "0x233110DE", "0x232210DE", "0x20B210DE", "0x20B510DE", "0x20F310DE", "0x20F510DE", "0x232410DE"]


def _all(profile: str, count: int) -> list[dict[str, t.Any]]:
    return [{"devices": "all", "mig-enabled": True, "mig-devices": {profile: count}}]


def _filtered(*entries: tuple[list[str], dict[str, int]]) -> list[dict[str, t.Any]]:
    return [
        {"device-filter": ids, "devices": "all", "mig-enabled": True, "mig-devices": dict(devices)} for ids, devices in entries
    ]


NVIDIA_CONFIGS: dict[str, list[dict[str, t.Any]]] = {
    "all-disabled": [{"devices": "all", "mig-enabled": False}],
    "all-enabled": [{"devices": "all", "mig-enabled": True, "mig-devices": {}}],
    # A100 40GB
    "all-1g.5gb": _all("1g.5gb", 7),
    "all-1g.5gb.me": _all("1g.5gb+me", 1),
    "all-2g.10gb": _all("2g.10gb", 3),
    "all-3g.20gb": _all("3g.20gb", 2),
    "all-4g.20gb": _all("4g.20gb", 1),
    "all-7g.40gb": _all("7g.40gb", 1),
    # A100 80GB, H100 80GB (1g.10gb also on A100 40GB, with two memory slices each)
    "all-1g.10gb": _filtered((GPUS_80GB_IDS, {"1g.10gb": 7}), (A100_40GB_IDS, {"1g.10gb": 4})),
    "all-1g.10gb.me": _all("1g.10gb+me", 1),
    "all-1g.20gb": _all("1g.20gb", 4),
    "all-2g.20gb": _all("2g.20gb", 3),
    "all-3g.40gb": _all("3g.40gb", 2),
    "all-4g.40gb": _all("4g.40gb", 1),
    "all-7g.80gb": _all("7g.80gb", 1),
    "all-balanced": _filtered(
        (GPUS_80GB_IDS, {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}),
        (A100_40GB_IDS, {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}),
    ),
}

ENTRY_KEYS = {"devices", "device-filter", "mig-enabled", "mig-devices"}


class Desired(t.NamedTuple):
    mig_enabled: bool
    devices: dict[str, int]  # profile name: count


def validate(configs: t.Any, source: str) -> dict[str, list[dict[str, t.Any]]]:
    """The ``mig-configs`` of a mig-parted file's content, checked; ``source`` names it in messages."""
    if not isinstance(configs, dict):
        raise KubeGPUError(
            f"{source}: a mig-parted config must be a mapping with version and mig-configs, got {type(configs).__name__}"
        )
    if configs.get("version") != "v1":
        raise KubeGPUError(f"{source}: version={configs.get('version')!r} is not valid; mig-parted's format is version: v1")
    named = configs.get("mig-configs")
    if not isinstance(named, dict) or not named:
        raise KubeGPUError(f"{source}: mig-configs must be a non-empty mapping of config names to lists of entries")
    for name, entries in named.items():
        if not isinstance(entries, list) or not entries:
            raise KubeGPUError(f"{source}: mig-configs.{name} must be a non-empty list of entries")
        for number, entry in enumerate(entries):
            _validate_entry(entry, f"{source}: mig-configs.{name}[{number}]")
    return named


def _validate_entry(entry: t.Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise KubeGPUError(f"{where} must be a mapping, got {entry!r}")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise KubeGPUError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(ENTRY_KEYS))}")
    devices = entry.get("devices")
    if devices != "all" and not (
        isinstance(devices, list) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in devices)
    ):
        raise KubeGPUError(f"{where}: devices={devices!r} is not valid; expected 'all' or a list of GPU indices")
    device_filter = entry.get("device-filter")
    filter_ok = isinstance(device_filter, str) or (
        isinstance(device_filter, list) and all(isinstance(i, str) for i in device_filter)
    )
    if device_filter is not None and not filter_ok:
        raise KubeGPUError(
            f"{where}: device-filter={device_filter!r} is not valid; expected a PCI device id such as 0x20B010DE or a list"
        )
    if not isinstance(entry.get("mig-enabled"), bool):
        raise KubeGPUError(f"{where}: mig-enabled={entry.get('mig-enabled')!r} is not valid; expected true or false")
    mig_devices = entry.get("mig-devices") or {}
    if not isinstance(mig_devices, dict):
        raise KubeGPUError(f"{where}: mig-devices={mig_devices!r} is not valid; expected a mapping of profile: count")
    for profile, count in mig_devices.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise KubeGPUError(f"{where}: mig-devices.{profile}={count!r} is not valid; expected a count >= 0")
    if mig_devices and not entry["mig-enabled"]:
        raise KubeGPUError(f"{where}: mig-devices given with mig-enabled: false")


def desired_for(entries: list[dict[str, t.Any]], index: int, pci_device_id: str | None) -> Desired | None:
    """The layout the first entry that matches the GPU (its index in ``devices``, its PCI device id in
    ``device-filter``) asks for; None when no entry matches (the GPU is left as it is)."""
    for entry in entries:
        devices = entry.get("devices")
        if devices != "all" and index not in devices:
            continue
        device_filter = entry.get("device-filter")
        if device_filter is not None:
            wanted = [device_filter] if isinstance(device_filter, str) else device_filter
            if not pci_device_id or pci_device_id.lower() not in [item.lower() for item in wanted]:
                continue
        counts = {profile: count for profile, count in (entry.get("mig-devices") or {}).items() if count}
        return Desired(bool(entry["mig-enabled"]), counts)
    return None


class Profile(t.NamedTuple):
    name: str  # 3g.20gb
    id: int  # NVML's profile id (what create takes)
    slices: int  # compute slices
    instances: int  # at most at once
    starts: tuple[int, ...]  # possible placements' starts
    size: int  # memory slices a placement occupies


def pack(
    profiles: dict[str, Profile], wanted: list[str], occupied: list[tuple[str, int]], compute_slices: int = 7
) -> list[tuple[str, int]] | None:
    """Placements ``(profile, start)`` for the GPU instances ``wanted`` (profile names) beside the ``occupied``
    ones, or None when they do not fit: memory slices must not overlap, compute slices are ``compute_slices`` in
    all, each profile has an instance count. A depth-first search, largest first; a few dozen steps for 7 slices."""
    used_mask = 0
    used_compute = 0
    counts: dict[str, int] = {}
    for name, start in occupied:
        used_mask |= ((1 << profiles[name].size) - 1) << start
        used_compute += profiles[name].slices
        counts[name] = counts.get(name, 0) + 1
    order = sorted(wanted, key=lambda name: (-profiles[name].size, -profiles[name].slices, name))

    def place(position: int, mask: int, compute: int, lowest: int) -> list[tuple[str, int]] | None:
        if position == len(order):
            return []
        profile = profiles[order[position]]
        if compute + profile.slices > compute_slices:
            return None
        for start in profile.starts:
            if start < lowest:
                continue
            bits = ((1 << profile.size) - 1) << start
            if mask & bits:
                continue
            same_next = position + 1 < len(order) and order[position + 1] == profile.name
            rest = place(position + 1, mask | bits, compute + profile.slices, start + 1 if same_next else 0)
            if rest is not None:
                return [(profile.name, start), *rest]
        return None

    for name in set(wanted):
        if counts.get(name, 0) + wanted.count(name) > profiles[name].instances:
            return None
    return place(0, used_mask, used_compute, 0)
