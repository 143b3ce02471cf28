# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU facts from NVML through pynvml (package nvidia-ml-py). Private to the collection.

One ``nvmlInit``, one pass over the devices, ``nvmlShutdown`` always. A call
that a GPU or an old driver does not support (``NOT_SUPPORTED``,
``FUNCTION_NOT_FOUND``, ...) leaves that one field None; only a failed
``nvmlInit`` makes the whole source unavailable.

``gather_bounded`` runs that pass in a forked child process with a time limit.
NVML is C code called through ctypes: a call into a wedged driver (a GPU fallen
off the bus) never returns, and a thread stuck in it cannot be stopped, so a
thread with ``join(timeout)`` would only hide the hang until the module tries to
exit.  A child can be killed; the facts come back to the parent as JSON on a pipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
import traceback
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils._pci import normalize_bus_id

try:
    import pynvml
except ImportError:
    pynvml = None
    PYNVML_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    PYNVML_IMPORT_ERROR = None

HAS_PYNVML = pynvml is not None
MIB = 1024 * 1024

# NVML's enumerations, by value, as NVML names them (nvml.h).
BRANDS = {
    0: "Unknown",
    1: "Quadro",
    2: "Tesla",
    3: "NVS",
    4: "GRID",
    5: "GeForce",
    6: "Titan",
    7: "NVIDIA Virtual Applications",
    8: "NVIDIA Virtual PC",
    9: "NVIDIA Virtual Compute Server",
    10: "NVIDIA RTX Virtual Workstation",
    11: "NVIDIA Cloud Gaming",
    12: "Quadro RTX",
    13: "NVIDIA RTX",
    14: "NVIDIA",
    15: "GeForce RTX",
    16: "Titan RTX",
}
ARCHITECTURES = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada",
    9: "Hopper",
    10: "Blackwell",
}
# The spelling nvidia-smi prints, so both sources agree.
COMPUTE_MODES = {0: "Default", 1: "Exclusive_Thread", 2: "Prohibited", 3: "Exclusive_Process"}

# NVML return codes gpu_facts tells apart (nvml.h).
ERROR_DRIVER_NOT_LOADED = 9
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_NOT_SUPPORTED = 3
# the library lacks the call (an older driver's library)
ERROR_FUNCTION_NOT_FOUND = 13
# a setting (MIG mode) waits for a GPU reset or a reboot
ERROR_RESET_REQUIRED = 16
# the library is not the version of the loaded kernel module (RM): the driver was upgraded without a reboot
ERROR_LIB_RM_VERSION_MISMATCH = 18
# the GPU has fallen off the bus or otherwise become inaccessible (Xid 79)
ERROR_GPU_IS_LOST = 15

# GPU health. nvml.h: nvmlMemoryErrorType_t UNCORRECTED 1; nvmlEccCounterType_t VOLATILE 0 (since the driver
# loaded), AGGREGATE 1 (the GPU's lifetime); nvmlClocksEventReason* bits of the hardware holding the clocks down.
MEMORY_ERROR_UNCORRECTED = 1
ECC_VOLATILE = 0
ECC_AGGREGATE = 1
HW_SLOWDOWNS = {0x8: "hardware slowdown", 0x40: "hardware thermal slowdown", 0x80: "hardware power brake slowdown"}
HEALTH_READINGS = (
    "gpu_is_lost",
    "ecc_uncorrected_volatile",
    "ecc_uncorrected_aggregate",
    "retired_pages_pending",
    "remapped_rows_pending",
    "remapped_rows_failure",
    "clocks_event_reasons",
)


def health_from_readings(readings: t.Mapping[str, t.Any]) -> tuple[str, list[str]]:
    """``(health, reasons)`` of one GPU from what NVML or nvidia-smi read (``HEALTH_READINGS``; None: not read).

    ``unhealthy`` is what NVIDIA's own stack takes a GPU out of service for: the k8s-device-plugin marks a device
    unhealthy on a double-bit ECC event and on critical Xids such as 48 (DBE), 63/64 (page retirement / row remap
    event), 79 (fallen off the bus) (github.com/NVIDIA/k8s-device-plugin, internal/rm/health.go); NVIDIA's memory
    error docs say a pending page retirement or row remap takes effect only at the next GPU reset or driver reload,
    and a row remapping failure needs the GPU serviced (docs.nvidia.com/deploy/dynamic-page-retirement,
    docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt). ``degraded`` works but is not right: uncorrectable errors in the
    GPU's past only (aggregate count, none since the driver loaded), clocks held down by the hardware (slowdown,
    thermal, power brake). Unreadable counters (GeForce has no ECC, row remapping came with Ampere) say nothing."""
    unhealthy, degraded = [], []
    if readings.get("gpu_is_lost"):
        unhealthy.append("GPU is lost (NVML_ERROR_GPU_IS_LOST: fallen off the bus, Xid 79): reboot needed")
    volatile = readings.get("ecc_uncorrected_volatile")
    aggregate = readings.get("ecc_uncorrected_aggregate")
    if volatile:
        unhealthy.append(f"{volatile} uncorrectable ECC error(s) since the driver loaded (volatile)")
    elif aggregate:
        degraded.append(f"{aggregate} uncorrectable ECC error(s) in the GPU's lifetime (aggregate), none since the driver loaded")
    if readings.get("retired_pages_pending"):
        unhealthy.append("page retirement pending: takes effect at the next driver reload or reboot")
    if readings.get("remapped_rows_failure"):
        unhealthy.append("row remapping failed: the GPU needs service")
    if readings.get("remapped_rows_pending"):
        unhealthy.append("row remapping pending: takes effect at the next GPU reset")
    reasons = int(readings.get("clocks_event_reasons") or 0)
    degraded += [f"clocks held down: {name}" for bit, name in HW_SLOWDOWNS.items() if reasons & bit]
    if unhealthy:
        return "unhealthy", unhealthy + degraded
    return ("degraded" if degraded else "ok"), degraded


def architecture_from_compute_capability(major: int | None, minor: int | None) -> str | None:
    """The architecture NVML would name for a CUDA compute capability (None when unknown)."""
    if major is None:
        return None
    minor = minor or 0
    by_major = {3: "Kepler", 5: "Maxwell", 6: "Pascal", 9: "Hopper", 10: "Blackwell", 11: "Blackwell", 12: "Blackwell"}
    if major == 7:
        return "Volta" if minor < 5 else "Turing"
    if major == 8:
        return "Ampere" if minor < 9 else "Ada"
    return by_major.get(major)


def cuda_version_text(version: int | None) -> str | None:
    """NVML's CUDA driver version integer (12020) as ``major.minor`` ("12.2")."""
    if version is None or version <= 0:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


class NvmlUnavailable(Exception):
    """NVML cannot answer at all on this host (no library, no driver, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _text(value: t.Any) -> t.Any:
    # pynvml returns bytes in older releases and str in newer ones.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class _Session:
    """Calls pynvml functions by name; a failing or missing call gives None."""

    def __init__(self, nvml: t.Any) -> None:
        self.nvml = nvml

    def call(self, name: str, *args: t.Any) -> t.Any:
        value, _error = self.call_with_error(name, *args)
        return value

    def call_with_error(self, name: str, *args: t.Any) -> tuple[t.Any, int | None]:
        """``(value, None)`` or ``(None, NVML error code)``; an absent wrapper counts as FUNCTION_NOT_FOUND."""
        function = getattr(self.nvml, name, None)
        if function is None:
            return None, ERROR_FUNCTION_NOT_FOUND
        try:
            return _text(function(*args)), None
        except self.nvml.NVMLError as exc:
            return None, getattr(exc, "value", None)


def _mib(memory: t.Any, field: str) -> int | None:
    return None if memory is None else int(getattr(memory, field)) // MIB


def _device(session: _Session, index: int, handle: t.Any) -> dict[str, t.Any]:
    call = session.call
    compute = call("nvmlDeviceGetCudaComputeCapability", handle)
    major, minor = (int(compute[0]), int(compute[1])) if compute else (None, None)
    arch_code = call("nvmlDeviceGetArchitecture", handle)
    architecture = ARCHITECTURES.get(arch_code) if arch_code is not None else None
    memory = call("nvmlDeviceGetMemoryInfo", handle)
    pci = call("nvmlDeviceGetPciInfo", handle)
    brand = call("nvmlDeviceGetBrand", handle)
    compute_mode = call("nvmlDeviceGetComputeMode", handle)
    persistence = call("nvmlDeviceGetPersistenceMode", handle)
    power_mw = call("nvmlDeviceGetPowerManagementLimit", handle)
    utilization = call("nvmlDeviceGetUtilizationRates", handle)
    temperature = call("nvmlDeviceGetTemperature", handle, 0)  # NVML_TEMPERATURE_GPU

    mig_mode, mig_error = session.call_with_error("nvmlDeviceGetMigMode", handle)
    mig_capable = True if mig_mode is not None else (False if mig_error == ERROR_NOT_SUPPORTED else None)
    mig_devices = _mig_devices(session, handle) if mig_mode is not None and mig_mode[0] == 1 else []
    mig_device_count = len(mig_devices) if mig_capable else None
    health, health_reasons = health_from_readings(_health_readings(session, handle))

    return {
        "index": index,
        "uuid": call("nvmlDeviceGetUUID", handle),
        "name": call("nvmlDeviceGetName", handle),
        "brand": None if brand is None else BRANDS.get(brand, f"Unknown ({brand})"),
        "architecture": architecture or architecture_from_compute_capability(major, minor),
        "compute_capability": None if major is None else f"{major}.{minor}",
        "compute_major": major,
        "compute_minor": minor,
        "memory_total_mib": _mib(memory, "total"),
        "memory_free_mib": _mib(memory, "free"),
        "memory_used_mib": _mib(memory, "used"),
        "mig_capable": mig_capable,
        "mig_mode_current": None if mig_mode is None else mig_mode[0] == 1,
        "mig_mode_pending": None if mig_mode is None else mig_mode[1] == 1,
        "mig_device_count": mig_device_count,
        "mig_devices": mig_devices,
        "compute_mode": None if compute_mode is None else COMPUTE_MODES.get(compute_mode, str(compute_mode)),
        "persistence_mode": None if persistence is None else persistence == 1,
        "pci_bus_id": None if pci is None else normalize_bus_id(_text(pci.busId)),
        "pci_device_id": None if pci is None else f"0x{int(pci.pciDeviceId) >> 16:04x}",
        "power_limit_watts": None if power_mw is None else power_mw / 1000,
        "temperature_c": temperature,
        "utilization_gpu_percent": None if utilization is None else int(utilization.gpu),
        "utilization_memory_percent": None if utilization is None else int(utilization.memory),
        "health": health,
        "health_reasons": health_reasons,
    }


def _health_readings(session: _Session, handle: t.Any) -> dict[str, t.Any]:
    errors = []

    def read(name: str, *args: t.Any) -> t.Any:
        value, error = session.call_with_error(name, *args)
        errors.append(error)
        return value

    ecc = MEMORY_ERROR_UNCORRECTED
    rows = read("nvmlDeviceGetRemappedRows", handle)  # (correctable, uncorrectable, pending, failure)
    reasons = read("nvmlDeviceGetCurrentClocksEventReasons", handle)
    if reasons is None:  # drivers before R535 know only the older name
        reasons = read("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
    return {
        "ecc_uncorrected_volatile": read("nvmlDeviceGetTotalEccErrors", handle, ecc, ECC_VOLATILE),
        "ecc_uncorrected_aggregate": read("nvmlDeviceGetTotalEccErrors", handle, ecc, ECC_AGGREGATE),
        "retired_pages_pending": read("nvmlDeviceGetRetiredPagesPendingStatus", handle),
        "remapped_rows_pending": None if rows is None else rows[2],
        "remapped_rows_failure": None if rows is None else rows[3],
        "clocks_event_reasons": reasons,
        # the GPU fell off the bus during the pass
        "gpu_is_lost": ERROR_GPU_IS_LOST in errors,
    }


def _lost_device(index: int) -> dict[str, t.Any]:
    """A GPU whose handle NVML cannot give (GPU_IS_LOST): only its index and its health are known (gpu_facts
    fills the other keys with None)."""
    health, health_reasons = health_from_readings({"gpu_is_lost": True})
    return {"index": index, "mig_devices": [], "health": health, "health_reasons": health_reasons}


def _mig_devices(session: _Session, handle: t.Any) -> list[dict[str, t.Any]]:
    call = session.call
    found = []
    for slot in range(call("nvmlDeviceGetMaxMigDeviceCount", handle) or 0):
        mig = call("nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
        if mig is None:  # NOT_FOUND: an empty slot
            continue
        memory = call("nvmlDeviceGetMemoryInfo", mig)
        found.append(
            {
                "index": slot,
                "uuid": call("nvmlDeviceGetUUID", mig),
                "name": call("nvmlDeviceGetName", mig),
                "gpu_instance_id": call("nvmlDeviceGetGpuInstanceId", mig),
                "compute_instance_id": call("nvmlDeviceGetComputeInstanceId", mig),
                "memory_total_mib": _mib(memory, "total"),
                "memory_free_mib": _mib(memory, "free"),
                "memory_used_mib": _mib(memory, "used"),
            }
        )
    return found


def _init_failure(exc: t.Any) -> NvmlUnavailable:
    code = getattr(exc, "value", None)
    if code == ERROR_LIBRARY_NOT_FOUND:
        return NvmlUnavailable(
            "the NVML library libnvidia-ml.so.1 was not found (it comes with the NVIDIA driver, e.g. Debian's libnvidia-ml1)"
        )
    if code == ERROR_DRIVER_NOT_LOADED:
        return NvmlUnavailable("NVML found no NVIDIA kernel driver (Driver Not Loaded): the nvidia kernel module is not loaded")
    if code == ERROR_LIB_RM_VERSION_MISMATCH:
        return NvmlUnavailable(
            f"nvmlInit failed: {exc} (NVML error {code}, Driver/library version mismatch): the loaded nvidia kernel module "
            "is not the version of the installed NVML library, as after a driver upgrade without a reboot"
        )
    return NvmlUnavailable(f"nvmlInit failed: {exc} (NVML error {code})")


def gather(nvml: t.Any = None) -> dict[str, t.Any]:
    """Driver versions and every device, from one NVML session.

    Raises NvmlUnavailable when NVML cannot be initialised.
    """
    nvml = nvml or pynvml
    if nvml is None:
        raise NvmlUnavailable("the Python library nvidia-ml-py (pynvml) is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise _init_failure(exc) from exc
    try:
        session = _Session(nvml)
        count = session.call("nvmlDeviceGetCount") or 0
        devices = []
        for index in range(count):
            handle, error = session.call_with_error("nvmlDeviceGetHandleByIndex", index)
            if handle is not None:
                devices.append(_device(session, index, handle))
            elif error == ERROR_GPU_IS_LOST:
                devices.append(_lost_device(index))
        return {
            "driver_version": session.call("nvmlSystemGetDriverVersion"),
            "cuda_driver_version": cuda_version_text(session.call("nvmlSystemGetCudaDriverVersion")),
            "nvml_version": session.call("nvmlSystemGetNVMLVersion"),
            "devices": devices,
        }
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


# how long a killed NVML child may take to be reaped; one stuck in the kernel is left behind
REAP_SECONDS = 1.0


def gather_bounded(timeout: float, nvml: t.Any = None) -> dict[str, t.Any]:
    """``gather()`` in a child process that is killed after ``timeout`` seconds.

    Raises NvmlUnavailable, as ``gather`` does, and also when the pass did not finish
    in time or the child died (NVML crashing the process no longer takes the module
    with it).  A Python error of the pass itself is raised again here as RuntimeError
    with the child's traceback."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its work is seen through the pipe
        _child(read_fd, write_fd, nvml)
    os.close(write_fd)
    try:
        data = _read_until(read_fd, time.monotonic() + timeout)
    finally:
        os.close(read_fd)
    if data is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
        raise NvmlUnavailable(
            f"the NVML pass did not finish within timeout={timeout:g} seconds and was stopped (a wedged driver or a GPU "
            "fallen off the bus makes NVML calls hang)"
        )
    _pid, status = os.waitpid(pid, 0)
    if not data:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
        raise NvmlUnavailable(f"the NVML pass died ({how}) before it answered")
    payload = json.loads(data.decode("utf-8"))
    if "unavailable" in payload:
        raise NvmlUnavailable(payload["unavailable"])
    if "error" in payload:
        raise RuntimeError(f"the NVML pass failed:\n{payload['error']}")
    return payload["facts"]


def _child(read_fd: int, write_fd: int, nvml: t.Any) -> t.NoReturn:  # pragma: no cover - runs in the child
    status = 0
    try:
        os.close(read_fd)
        try:
            payload: dict[str, t.Any] = {"facts": gather(nvml)}
        except NvmlUnavailable as exc:
            payload = {"unavailable": exc.reason}
        except Exception:  # handed to the parent, which raises it
            payload = {"error": traceback.format_exc()}
        view = memoryview(json.dumps(payload).encode("utf-8"))
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:  # nothing of the child may run on in the parent's code
        status = 1
    finally:
        # no atexit handlers, no flushing of the parent's buffered output
        os._exit(status)


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything written to ``fd`` until its writer closes it; None when the deadline passes first."""
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _w, _x = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int) -> None:
    deadline = time.monotonic() + REAP_SECONDS
    while time.monotonic() < deadline:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.01)
