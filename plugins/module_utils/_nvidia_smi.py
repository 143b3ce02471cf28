# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU facts from ``nvidia-smi --query-gpu`` when pynvml cannot be used. Private to the collection.

Gives the same device keys as ``_nvml``; fields nvidia-smi cannot query
(brand, MIG devices, CUDA driver version, NVML version) are None, and the
architecture is derived from the compute capability. Health is judged as
``_nvml`` judges it from the ECC, page retirement and clock reason fields;
row remapping and a lost GPU are not read here.

Older drivers' nvidia-smi does not know every field (``compute_cap`` came with
R510, the MIG fields with R450) and refuses the whole query, naming the first
field it does not know. The query is then asked again without that field, which
is reported as None, until the tool answers; only the fields every driver
knows (REQUIRED_FIELDS) cannot be dropped.
"""

from __future__ import annotations

import csv
import os
import re
import stat
import time
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils._command import CommandRunner, CommandTimeout
from ansible_collections.kubegpu.core.plugins.module_utils._nvml import architecture_from_compute_capability, health_from_readings
from ansible_collections.kubegpu.core.plugins.module_utils._pci import normalize_bus_id

QUERY_FIELDS = (
    "index",
    "uuid",
    "name",
    "pci.bus_id",
    "pci.device_id",
    "driver_version",
    "compute_cap",
    "memory.total",
    "memory.free",
    "memory.used",
    "mig.mode.current",
    "mig.mode.pending",
    "compute_mode",
    "persistence_mode",
    "power.limit",
    "temperature.gpu",
    "utilization.gpu",
    "utilization.memory",
    # health (nvidia-smi --help-query-gpu); row remapping is another query (--query-remapped-rows) and is not read
    "ecc.errors.uncorrected.volatile.total",
    "ecc.errors.uncorrected.aggregate.total",
    "retired_pages.pending",
    "clocks_throttle_reasons.active",
)
HEALTH_FIELDS = QUERY_FIELDS[-4:]

# known by every nvidia-smi that has --query-gpu; without them the answer means nothing
REQUIRED_FIELDS = ("index", "uuid", "name", "pci.bus_id", "driver_version")
# what nvidia-smi prints (on stdout, exit 2) for a field it does not know
UNKNOWN_FIELD_RE = re.compile(r'Field "([^"]+)" is not a valid field to query')


class SmiUnavailable(Exception):
    """nvidia-smi is missing or could not answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _value(text: str) -> str | None:
    text = text.strip()
    # "[N/A]", "[Not Supported]", "N/A", "[Unknown Error]" ...
    return None if not text or text.startswith("[") or text == "N/A" else text


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(float(text))
    except ValueError:
        return None


def _enabled(text: str | None) -> bool | None:
    return None if text is None else text.lower() == "enabled"


def parse_query_output(stdout: str, fields: t.Sequence[str] = QUERY_FIELDS) -> tuple[str | None, list[dict[str, t.Any]]]:
    """``(driver_version, devices)`` from ``--query-gpu=FIELDS --format=csv,noheader,nounits``;
    a field of QUERY_FIELDS not in ``fields`` is None."""
    driver_version = None
    devices = []
    for row in csv.reader(line for line in stdout.splitlines() if line.strip()):
        if len(row) != len(fields):
            raise ValueError(f"expected {len(fields)} comma-separated fields, got {len(row)}: {','.join(row)!r}")
        field = dict.fromkeys(QUERY_FIELDS)
        field.update(zip(fields, (_value(cell) for cell in row)))
        driver_version = driver_version or field["driver_version"]
        major, _dot, minor = (field["compute_cap"] or "").partition(".")
        compute_major, compute_minor = _int(major or None), _int(minor or None)
        mig_current = _enabled(field["mig.mode.current"])
        power = field["power.limit"]
        device_id = field["pci.device_id"]
        health, health_reasons = _health(field)
        devices.append(
            {
                "index": _int(field["index"]),
                "uuid": field["uuid"],
                "name": field["name"],
                "brand": None,
                "architecture": architecture_from_compute_capability(compute_major, compute_minor),
                "compute_capability": None if compute_major is None else f"{compute_major}.{compute_minor or 0}",
                "compute_major": compute_major,
                "compute_minor": compute_minor,
                "memory_total_mib": _int(field["memory.total"]),
                "memory_free_mib": _int(field["memory.free"]),
                "memory_used_mib": _int(field["memory.used"]),
                # unknown (None) when this nvidia-smi cannot query the MIG mode at all
                "mig_capable": (mig_current is not None) if "mig.mode.current" in fields else None,
                "mig_mode_current": mig_current,
                "mig_mode_pending": _enabled(field["mig.mode.pending"]),
                "mig_device_count": None,
                "mig_devices": [],
                "compute_mode": field["compute_mode"],
                "persistence_mode": _enabled(field["persistence_mode"]),
                "pci_bus_id": None if field["pci.bus_id"] is None else normalize_bus_id(field["pci.bus_id"]),
                # 0x1DB110DE: device id in the upper 16 bits, vendor in the lower
                "pci_device_id": None if device_id is None else f"0x{int(device_id, 16) >> 16:04x}",
                "power_limit_watts": None if power is None else float(power),
                "temperature_c": _int(field["temperature.gpu"]),
                "utilization_gpu_percent": _int(field["utilization.gpu"]),
                "utilization_memory_percent": _int(field["utilization.memory"]),
                "health": health,
                "health_reasons": health_reasons,
            }
        )
    return driver_version, devices


def _health(field: dict[str, str | None]) -> tuple[str | None, list[str] | None]:
    """gpu_facts' health from the health fields, ``(None, None)`` (unknown) when none of them has a value (an older
    nvidia-smi that does not know them, or a GPU without ECC and clock reasons)."""
    if all(field[name] is None for name in HEALTH_FIELDS):
        return None, None
    pending = field["retired_pages.pending"]
    clocks = field["clocks_throttle_reasons.active"]  # a bit mask in hex, 0x0000000000000001
    readings = {
        "ecc_uncorrected_volatile": _int(field["ecc.errors.uncorrected.volatile.total"]),
        "ecc_uncorrected_aggregate": _int(field["ecc.errors.uncorrected.aggregate.total"]),
        "retired_pages_pending": None if pending is None else pending.lower() == "yes",
        "clocks_event_reasons": None if clocks is None else int(clocks, 16),
    }
    return health_from_readings(readings)


def _not_runnable(binary: str) -> str | None:
    """Why a ``binary`` given as a path cannot be run (None when it can, or is missing)."""
    if "/" not in binary or not os.path.lexists(binary):
        return None
    if not os.path.exists(binary):
        return f"{binary} is a symbolic link to {os.readlink(binary)}, which does not exist"
    if os.path.isdir(binary):
        return f"{binary} is a directory, not the nvidia-smi program"
    if not os.access(binary, os.X_OK):
        mode = stat.filemode(os.stat(binary).st_mode)
        return f"{binary} exists but is not executable (mode {mode}); make it executable or give another nvidia_smi_path"
    return None


def gather(module: t.Any, binary: str = "nvidia-smi", timeout: float | None = None) -> dict[str, t.Any]:
    """Driver version and devices from nvidia-smi; raises SmiUnavailable.

    With ``timeout`` the whole source (the query, and the queries again without fields an
    older driver does not know) takes at most that many seconds; a hung nvidia-smi is
    killed and reported."""
    reason = _not_runnable(binary)
    if reason:
        raise SmiUnavailable(reason)
    runner = CommandRunner(module, binary, required=False)
    if not runner.available:
        raise SmiUnavailable(f"{binary} was not found" + ("" if "/" in binary else " on PATH"))
    deadline = None if timeout is None else time.monotonic() + timeout
    fields = list(QUERY_FIELDS)
    unknown: list[str] = []
    while True:
        argv = ["--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"]
        try:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            result = runner.run(argv, timeout=left)
        except CommandTimeout as exc:
            raise SmiUnavailable(
                f"`{exc.details['cmd']}` did not finish within timeout={timeout:g} seconds and was killed (a wedged "
                "driver or a GPU fallen off the bus makes nvidia-smi hang)"
            ) from exc
        if result.ok:
            break
        message = " ".join((result.stdout or result.stderr).split()) or "(no output)"
        match = UNKNOWN_FIELD_RE.search(message)
        if not match or match.group(1) not in fields or match.group(1) in REQUIRED_FIELDS:
            raise SmiUnavailable(f"`{result.cmdline}` exited with {result.rc}: {message}")
        # an older driver: ask again without the field it does not know
        fields.remove(match.group(1))
        unknown.append(match.group(1))
    try:
        driver_version, devices = parse_query_output(result.stdout, fields)
    except ValueError as exc:
        raise SmiUnavailable(f"`{result.cmdline}` printed output this module cannot read: {exc}") from exc
    return {
        "driver_version": driver_version,
        "cuda_driver_version": None,
        "nvml_version": None,
        "devices": devices,
        "unknown_fields": unknown,
    }
