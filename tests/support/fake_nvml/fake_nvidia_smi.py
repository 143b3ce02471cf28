"""A fake ``nvidia-smi`` for the nvidia-smi fallback of gpu_facts.

Simulates only ``nvidia-smi --query-gpu=FIELD,... --format=csv,noheader,nounits``
on the GPUs of the fake NVML scenario named by ``FAKE_NVML_SCENARIO``, else the
one installed at ``/etc/fake-nvml/scenario.json`` (the same JSON files, and the
same default, as the fake libnvidia-ml.so.1): one CSV line per GPU, fields in
the order asked, ``[N/A]`` for what the scenario leaves out, ``[Not Supported]``
for utilisation while MIG is on. The health fields (uncorrected ECC counts,
``retired_pages.pending`` Yes/No, ``clocks_throttle_reasons.active`` as a hex mask) come from a device's
``health`` object; a lost GPU and ``--query-remapped-rows`` are not simulated. A scenario with ``init_error``
``DRIVER_NOT_LOADED`` prints the real tool's message and exits 9, as the real
binary does. A scenario with ``init_error`` ``LIB_RM_VERSION_MISMATCH`` (the libraries
upgraded under a loaded kernel module of another version) prints, on stdout,
``Failed to initialize NVML: Driver/library version mismatch`` and
``NVML library version: <major.minor of the scenario's driver_version>`` and exits 18, as
the real binary does (read in a real run's log: "nvidia-smi failed with return code 18",
https://github.com/mozilla/translations/issues/1167; the same two lines in
https://github.com/intel/llvm/issues/17614). A field it does not know, or one the scenario lists in
``nvidia_smi_unknown_fields`` (an older driver's nvidia-smi, e.g. ``compute_cap``
before R510), refuses the whole query before any output, as the real binary
does: ``Field "NAME" is not a valid field to query.`` and a blank line on
stdout, exit 2, naming the first such field.
A scenario with ``"nvidia_smi_hang": true`` never answers, as nvidia-smi on a
wedged driver (a GPU fallen off the bus) does; simulated by sleeping, so unlike a
process stuck in the kernel it dies of SIGKILL.
Anything else (the default report, -L, -q) is not simulated: exit 2.
"""

import json
import os
import sys
import time

DEFAULT_SCENARIO = "/etc/fake-nvml/scenario.json"
KNOWN_FIELDS = (
    "index",
    "uuid",
    "name",
    "pci.bus_id",
    "pci.device_id",
    "driver_version",
    "compute_cap",
    "memory.total",
    "memory.used",
    "memory.free",
    "mig.mode.current",
    "mig.mode.pending",
    "compute_mode",
    "persistence_mode",
    "power.limit",
    "temperature.gpu",
    "utilization.gpu",
    "utilization.memory",
    "ecc.errors.uncorrected.volatile.total",
    "ecc.errors.uncorrected.aggregate.total",
    "retired_pages.pending",
    "clocks_throttle_reasons.active",
)
COMPUTE_MODES = {0: "Default", 1: "Exclusive_Thread", 2: "Prohibited", 3: "Exclusive_Process"}


def enabled(value):
    return "[N/A]" if value is None else ("Enabled" if value else "Disabled")


def field(name, index, gpu, scenario):
    mig = gpu.get("mig")
    utilization = gpu.get("utilization")
    cc = gpu.get("compute_capability")
    total, used = gpu.get("memory_total_mib"), gpu.get("memory_used_mib", 0)
    values = {
        "index": index,
        "uuid": gpu.get("uuid"),
        "name": gpu.get("name"),
        "pci.bus_id": gpu.get("pci_bus_id"),
        "pci.device_id": None if gpu.get("pci_device_id") is None else "0x" + gpu["pci_device_id"][2:].upper(),
        "driver_version": scenario.get("driver_version"),
        "compute_cap": None if cc is None else f"{cc[0]}.{cc[1]}",
        "memory.total": total,
        "memory.used": None if total is None else used,
        "memory.free": None if total is None else total - used,
        "mig.mode.current": enabled(None if mig is None else mig.get("current")),
        "mig.mode.pending": enabled(None if mig is None else mig.get("pending")),
        "compute_mode": COMPUTE_MODES.get(gpu.get("compute_mode")),
        "persistence_mode": enabled(gpu.get("persistence_mode")),
        "power.limit": None if gpu.get("power_limit_mw") is None else f"{gpu['power_limit_mw'] / 1000:.2f}",
        "temperature.gpu": gpu.get("temperature_c"),
        "utilization.gpu": "[Not Supported]" if utilization is None else utilization["gpu"],
        "utilization.memory": "[Not Supported]" if utilization is None else utilization["memory"],
    }
    # the device's health object, as the fake NVML reads it: the counters, "Yes"/"No", the bit mask in hex
    health = gpu.get("health") or {}
    uncorrected = (health.get("ecc_errors") or {}).get("uncorrected") or {}
    pending = (health.get("retired_pages") or {}).get("pending")
    reasons = health.get("clocks_event_reasons")
    values["ecc.errors.uncorrected.volatile.total"] = uncorrected.get("volatile")
    values["ecc.errors.uncorrected.aggregate.total"] = uncorrected.get("aggregate")
    values["retired_pages.pending"] = None if pending is None else ("Yes" if pending else "No")
    values["clocks_throttle_reasons.active"] = None if reasons is None else f"0x{reasons:016X}"
    value = values[name]
    return "[N/A]" if value is None else str(value)


def main(argv):
    query = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--query-gpu=")]
    if not query or "--format=csv,noheader,nounits" not in argv:
        print("fake nvidia-smi: only --query-gpu=... --format=csv,noheader,nounits is simulated", file=sys.stderr)
        return 2
    with open(os.environ.get("FAKE_NVML_SCENARIO") or DEFAULT_SCENARIO, encoding="utf-8") as handle:
        scenario = json.load(handle)
    while scenario.get("nvidia_smi_hang"):
        time.sleep(3600)
    if scenario.get("init_error") == "DRIVER_NOT_LOADED":
        print(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            "Make sure that the latest NVIDIA driver is installed and running.\n"
        )
        return 9
    if scenario.get("init_error") == "LIB_RM_VERSION_MISMATCH":
        library = ".".join(str(scenario.get("driver_version", "")).split(".")[:2])
        print(f"Failed to initialize NVML: Driver/library version mismatch\nNVML library version: {library}")
        return 18
    fields = query[0].split(",")
    unknown = set(scenario.get("nvidia_smi_unknown_fields", []))
    for name in fields:
        if name not in KNOWN_FIELDS or name in unknown:
            print(f'Field "{name}" is not a valid field to query.\n')
            return 2
    for index, gpu in enumerate(scenario.get("devices", [])):
        print(", ".join(field(name, index, gpu, scenario) for name in fields))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
