#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_facts
short_description: Gather NVIDIA GPU facts from NVML, nvidia-smi and the PCI bus
version_added: 0.1.0
description:
  - Returns C(ansible_facts.gpu) describing the NVIDIA GPUs of the host, its driver and, per GPU, the
    model, architecture, compute capability, memory, MIG mode and devices, compute and persistence mode,
    PCI bus id, power limit, temperature and utilisation.
  - NVML is read through the Python binding C(pynvml) (package C(nvidia-ml-py)) with one C(nvmlInit), one pass
    over the devices and C(nvmlShutdown). A call the GPU or an old driver does not support leaves that field
    C(null); it never fails the gather.
  - When NVML cannot be used, C(nvidia-smi --query-gpu) gives the core fields. A field an older driver's nvidia-smi
    does not know (C(compute_cap) before R510, the MIG fields before R450) is left C(null), named in C(reason), and the
    other fields are still returned.
  - The PCI scan of sysfs needs no NVIDIA software, so a GPU whose driver is missing, or bound to
    C(nouveau) or C(vfio-pci), is still found (C(present=true), C(driver_loaded=false), C(source=pci)).
    SR-IOV virtual functions (vGPU hosts) are reported apart, in C(pci_virtual_functions), and not counted as GPUs.
  - The module never fails because GPUs, libraries or the driver are missing; C(reason) says what is missing.
  - Whether the driver works is judged by what answers, not by what is loaded - RV(ansible_facts.gpu.driver_state)
    is V(ready) only when NVML or nvidia-smi answers. An nvidia kernel module that neither can talk to (a
    C(Driver/library version mismatch) after an unattended upgrade of the driver's libraries, missing C(/dev/nvidia*)
    device nodes) is V(broken), with RV(ansible_facts.gpu.driver_state_reason) saying why; RV(ansible_facts.gpu.driver_loaded)
    only says that a module is loaded, and is true for a broken driver too.
author:
  - kubegpu.core maintainers (@kubegpu)
requirements:
  - nvidia-ml-py (C(pynvml)) on the managed node, for the C(nvml) source
extends_documentation_fragment:
  - kubegpu.core._attributes
  - kubegpu.core._attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode returns the same facts.
  diff_mode:
    support: none
  idempotent:
    support: full
  facts:
    support: full
options:
  sources:
    description:
      - Where to look. C(nvml) is preferred to C(nvidia-smi), which is asked only when NVML cannot answer.
      - C(pci) scans sysfs for NVIDIA display controllers; it gives the kernel driver bound to each GPU
        and the devices when neither C(nvml) nor C(nvidia-smi) can answer.
    type: list
    elements: str
    choices: [nvml, nvidia-smi, pci]
    default: [nvml, nvidia-smi, pci]
  sysfs_root:
    description:
      - Where sysfs is mounted, for the PCI scan and the kernel module check. Another path serves chroots and tests.
      - An absolute path; a path that exists but is not a directory is refused. A missing directory is not an error
        (C(reason) says the PCI bus cannot be read), as in a container without C(/sys).
    type: path
    default: /sys
  nvidia_smi_path:
    description:
      - The nvidia-smi command, a name looked up on C(PATH) or an absolute path. A missing command is not an error
        (C(reason) says so); an empty value or a relative path with a C(/) is refused.
      - A path that exists but cannot be run (not executable, a directory, a dangling link) is reported as such in
        C(reason), not as missing.
    type: str
    default: nvidia-smi
  timeout:
    description:
      - Seconds each source that talks to the driver may take. A wedged driver or a GPU fallen off the bus makes
        NVML calls and C(nvidia-smi) hang; a source that has not answered in time is stopped, C(reason) says so, and
        the next source is tried (the PCI scan only reads sysfs and has no limit). With both C(nvml) and
        C(nvidia-smi) hanging, a gather takes about twice this long.
      - The NVML pass runs in a child process, which can be killed (a thread stuck in a C call cannot); that costs
        a few milliseconds (C(make bench)). V(0) runs NVML in the module's own process and C(nvidia-smi), both
        without a limit.
    type: float
    default: 30
notes:
  - "C(sources=[pci]) gathers without loading any NVIDIA library."
seealso:
  - plugin: kubegpu.core.gpu_node_labels
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Gather GPU facts
  kubegpu.core.gpu_facts:

- name: Show what was found
  ansible.builtin.debug:
    msg: >-
      {{ ansible_facts.gpu.count }} x {{ ansible_facts.gpu.devices[0].name | default('no GPU') }}
      ({{ ansible_facts.gpu.reason | default('nothing missing', true) }})

- name: Give up on a wedged driver after 10 seconds per source (reason says which one hung)
  kubegpu.core.gpu_facts:
    timeout: 10

- name: Only look at the PCI bus (no NVIDIA library is loaded)
  kubegpu.core.gpu_facts:
    sources: [pci]

- name: Group the nodes whose GPUs still need a working driver (none loaded, or a broken one)
  ansible.builtin.group_by:
    key: gpu_without_driver
  when: ansible_facts.gpu.present and ansible_facts.gpu.driver_state != 'ready'
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to C(ansible_facts).
  returned: always
  type: dict
  contains:
    gpu:
      description: The host's NVIDIA GPUs.
      returned: always
      type: dict
      contains:
        present:
          description: Whether any source saw an NVIDIA GPU (also when only the PCI bus shows it).
          type: bool
          sample: true
        driver_loaded:
          description:
            - Whether the NVIDIA kernel driver is loaded (NVML or nvidia-smi answered, or the C(nvidia) module is
              loaded, or a GPU is bound to it).
            - Also true for a driver that does not work (RV(ansible_facts.gpu.driver_state) V(broken)); whether the
              driver can be used is RV(ansible_facts.gpu.driver_state), which the collection's roles and filters read.
          type: bool
          sample: true
        driver_state:
          description:
            - V(ready) - NVML or nvidia-smi answered.
            - V(not_loaded) - no C(nvidia) kernel module is loaded, no GPU is bound to C(nvidia) in sysfs, and nothing
              answered.
            - V(broken) - the C(nvidia) module is loaded (C(<sysfs_root>/module/nvidia)) or a GPU is bound to it,
              but NVML and nvidia-smi both failed (for example NVML_ERROR_LIB_RM_VERSION_MISMATCH, C(Driver/library
              version mismatch), after the driver's libraries were upgraded under a loaded module; missing
              C(/dev/nvidia*) device nodes; a source that hung). A reboot or a reinstall is needed.
            - V(unknown) - the module is loaded but O(sources) asks neither C(nvml) nor C(nvidia-smi).
          type: str
          choices: [ready, not_loaded, broken, unknown]
          sample: broken
        driver_state_reason:
          description:
            - Why RV(ansible_facts.gpu.driver_state) is not V(ready), in words, with what each source said.
            - C(null) when ready.
          type: str
          sample: >-
            reboot or reinstall needed: the nvidia kernel module 535.161.08 is loaded but neither NVML nor nvidia-smi
            answers (nvml: nvmlInit failed: RM has detected an NVML/RM version mismatch. (NVML error 18, ...); ...)
        kernel_module_version:
          description:
            - Version of the loaded C(nvidia) kernel module (C(<sysfs_root>/module/nvidia/version)).
            - C(null) when none is loaded.
          type: str
          sample: "535.161.08"
        source:
          description: Where C(devices) come from. C(nvml) or C(nvidia-smi) when that tool answered (even with
            no device); C(pci) when only the PCI scan found GPUs; C(none) when nothing found any.
          type: str
          choices: [nvml, nvidia-smi, pci, none]
          sample: nvml
        reason:
          description:
            - What is missing, in words (no library, driver not loaded, no devices, GPUs the driver does not list,
              a source that hung past O(timeout)), one clause per source, separated by C(; ). C(null) when nothing
              is missing.
          type: str
          sample: "nvml: NVML found no NVIDIA kernel driver (Driver Not Loaded): the nvidia kernel module is not loaded"
        count:
          description: Number of GPUs in C(devices).
          type: int
          sample: 2
        driver_version:
          description: NVIDIA driver version.
          type: str
          sample: "535.161.08"
        cuda_driver_version:
          description: Highest CUDA version the driver supports (C(null) from nvidia-smi).
          type: str
          sample: "12.2"
        nvml_version:
          description: NVML library version (C(null) from nvidia-smi).
          type: str
          sample: "12.535.161.08"
        devices:
          description:
            - One entry per GPU, every key always present, C(null) where the source could not tell.
            - From C(pci) only C(index), C(pci_bus_id), C(pci_device_id) and C(pci_driver) are known.
          type: list
          elements: dict
          contains:
            index:
              description: NVML index (or the PCI order when only the PCI scan found the GPU).
              type: int
            uuid:
              description: GPU UUID.
              type: str
              sample: GPU-4a1da682-59ed-5e44-a17f-49ae13e31a36
            name:
              description: Product name.
              type: str
              sample: Tesla V100-SXM2-16GB
            brand:
              description: NVML brand, for example C(Tesla), C(GeForce) or C(NVIDIA).
              type: str
            architecture:
              description: Volta, Turing, Ampere, Ada, Hopper, Blackwell and so on; from NVML, else from the compute capability.
              type: str
              sample: Volta
            compute_capability:
              description: CUDA compute capability.
              type: str
              sample: "7.0"
            compute_major:
              description: Compute capability major.
              type: int
              sample: 7
            compute_minor:
              description: Compute capability minor.
              type: int
              sample: 0
            memory_total_mib:
              description: Memory in MiB.
              type: int
              sample: 16384
            memory_free_mib:
              description: Free memory in MiB.
              type: int
            memory_used_mib:
              description: Used memory in MiB.
              type: int
            mig_capable:
              description: Whether the GPU supports MIG (C(null) when the driver cannot tell).
              type: bool
            mig_mode_current:
              description: Whether MIG is enabled now.
              type: bool
            mig_mode_pending:
              description: Whether MIG will be enabled after the next GPU reset.
              type: bool
            mig_device_count:
              description: Number of MIG devices (C(null) when not MIG-capable or unknown).
              type: int
            mig_devices:
              description:
                - MIG devices, each with C(index), C(uuid), C(name), C(gpu_instance_id), C(compute_instance_id),
                  C(memory_total_mib), C(memory_free_mib) and C(memory_used_mib).
              type: list
              elements: dict
            compute_mode:
              description: C(Default), C(Exclusive_Thread), C(Prohibited) or C(Exclusive_Process).
              type: str
            persistence_mode:
              description: Whether persistence mode is on.
              type: bool
            pci_bus_id:
              description: PCI address, in the form sysfs writes it.
              type: str
              sample: "0000:3b:00.0"
            pci_device_id:
              description: PCI device id.
              type: str
              sample: "0x1db1"
            pci_driver:
              description: Kernel driver bound to the GPU according to sysfs (C(nvidia), C(nouveau), C(vfio-pci)), or C(null).
              type: str
            power_limit_watts:
              description: Power management limit in watts.
              type: float
              sample: 300.0
            temperature_c:
              description: GPU temperature in degrees Celsius.
              type: int
            utilization_gpu_percent:
              description: GPU utilisation in percent.
              type: int
            utilization_memory_percent:
              description: Memory utilisation in percent.
              type: int
            health:
              description:
                - V(unhealthy) - what NVIDIA's device plugin and memory error documentation take a GPU out of service
                  for; the node is held back from C(gpu=on) by role C(gpu_labels). NVML answers
                  C(NVML_ERROR_GPU_IS_LOST) (fallen off the bus, Xid 79; the device then has only C(index) and its
                  health); uncorrectable ECC errors since the driver loaded (volatile count); a page retirement pending
                  (pre-Ampere); a row remapping pending or failed (Ampere and later).
                - V(degraded) - works, but not right; not held back. Uncorrectable ECC errors in the GPU's lifetime only
                  (aggregate count, none volatile); clocks held down by the hardware (C(nvmlClocksEventReason)
                  C(HwSlowdown), C(HwThermalSlowdown), C(HwPowerBrakeSlowdown)).
                - V(ok) - none of these. A counter the GPU does not have (no ECC on GeForce, no row remapping before
                  Ampere) says nothing.
                - From C(nvidia-smi) (the fallback) by the same rules from C(ecc.errors.uncorrected.volatile.total),
                  C(ecc.errors.uncorrected.aggregate.total), C(retired_pages.pending) and
                  C(clocks_throttle_reasons.active); row remapping and a lost GPU are not read there.
                - C(null) - unknown - from C(pci), and from C(nvidia-smi) when none of those fields has a value.
              type: str
              choices: [ok, degraded, unhealthy]
              sample: unhealthy
            health_reasons:
              description: Why RV(ansible_facts.gpu.devices[].health) is not V(ok), the unhealthy reasons first;
                C([]) when ok, C(null) when unknown.
              type: list
              elements: str
              sample: ["row remapping pending: takes effect at the next GPU reset"]
        pci_devices:
          description:
            - NVIDIA GPUs on the PCI bus, one per physical function (C([]) when the C(pci) source is off or sysfs is absent).
            - SR-IOV virtual functions are not GPUs of their own and are listed in RV(ansible_facts.gpu.pci_virtual_functions).
          type: list
          elements: dict
          contains:
            pci_bus_id:
              description: PCI address.
              type: str
              sample: "0000:3b:00.0"
            pci_device_id:
              description: PCI device id.
              type: str
              sample: "0x1db1"
            pci_class:
              description: PCI class, C(0x0300xx) for a VGA controller, C(0x0302xx) for a 3D controller.
              type: str
              sample: "0x030200"
            driver:
              description: Kernel driver bound, or C(null).
              type: str
              sample: nvidia
        pci_virtual_functions:
          description:
            - SR-IOV virtual functions of NVIDIA GPUs (PCI functions with a C(physfn) link, as on A100 and H100 hosts
              that serve vGPU to virtual machines). They are counted neither in RV(ansible_facts.gpu.count) nor in
              RV(ansible_facts.gpu.pci_devices). C([]) when there are none or the C(pci) source is off.
          type: list
          elements: dict
          contains:
            pci_bus_id:
              description: PCI address of the virtual function.
              type: str
              sample: "0000:3b:00.4"
            pci_device_id:
              description: PCI device id.
              type: str
              sample: "0x20b0"
            pci_class:
              description: PCI class.
              type: str
              sample: "0x030200"
            driver:
              description: Kernel driver bound, or C(null).
              type: str
              sample: nvidia
            physical_function:
              description: PCI address of the GPU (physical function) it belongs to.
              type: str
              sample: "0000:3b:00.0"
"""

import math
import os
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils import _nvidia_smi, _nvml, _pci
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

SOURCES = ("nvml", "nvidia-smi", "pci")
DEVICE_KEYS = (
    "index",
    "uuid",
    "name",
    "brand",
    "architecture",
    "compute_capability",
    "compute_major",
    "compute_minor",
    "memory_total_mib",
    "memory_free_mib",
    "memory_used_mib",
    "mig_capable",
    "mig_mode_current",
    "mig_mode_pending",
    "mig_device_count",
    "mig_devices",
    "compute_mode",
    "persistence_mode",
    "pci_bus_id",
    "pci_device_id",
    "pci_driver",
    "power_limit_watts",
    "temperature_c",
    "utilization_gpu_percent",
    "utilization_memory_percent",
    "health",
    "health_reasons",
)


class GpuFacts:
    """Asks each source in turn and merges what they say into ``ansible_facts.gpu``."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.sources: list[str] = module.params["sources"]
        self.sysfs_root: str = module.params["sysfs_root"]
        self.nvidia_smi: str = module.params["nvidia_smi_path"]
        timeout = module.params["timeout"]
        if not math.isfinite(timeout) or timeout < 0:
            raise KubeGPUError(f"timeout={timeout!r} is not valid; give the seconds a source may take (0 for no limit)")
        self.timeout: float | None = timeout or None
        if not self.sources:
            raise KubeGPUError(f"sources=[] is not valid; give at least one of: {', '.join(SOURCES)}")
        if not self.nvidia_smi.strip() or ("/" in self.nvidia_smi and not os.path.isabs(self.nvidia_smi)):
            raise KubeGPUError(
                f"nvidia_smi_path={self.nvidia_smi!r} is not valid; give a command name looked up on PATH "
                "(nvidia-smi) or an absolute path (/usr/bin/nvidia-smi)"
            )
        if not os.path.isabs(self.sysfs_root) or (os.path.exists(self.sysfs_root) and not os.path.isdir(self.sysfs_root)):
            raise KubeGPUError(
                f"sysfs_root={self.sysfs_root!r} is not valid; give the absolute path of the directory where sysfs is "
                "mounted (/sys)"
            )

    def _nvml(self, reasons: list[str]) -> dict[str, t.Any] | None:
        if not _nvml.HAS_PYNVML:
            # The message Ansible gives for a missing library, as a reason rather than a failure;
            # the import's traceback goes to the debug log.
            self.module.debug(_nvml.PYNVML_IMPORT_ERROR or "")
            reasons.append(f"nvml: {missing_required_lib('nvidia-ml-py')}")
            return None
        try:
            return _nvml.gather() if self.timeout is None else _nvml.gather_bounded(self.timeout)
        except _nvml.NvmlUnavailable as exc:
            reasons.append(f"nvml: {exc.reason}")
            return None

    def _smi(self, reasons: list[str]) -> dict[str, t.Any] | None:
        try:
            answer = _nvidia_smi.gather(self.module, self.nvidia_smi, self.timeout)
        except _nvidia_smi.SmiUnavailable as exc:
            reasons.append(f"nvidia-smi: {exc.reason}")
            return None
        if answer["unknown_fields"]:
            reasons.append(f"nvidia-smi: this driver's nvidia-smi cannot query {', '.join(answer['unknown_fields'])} (left null)")
        return answer

    def gather(self) -> dict[str, t.Any]:
        reasons: list[str] = []
        pci = _pci.scan(self.sysfs_root) if "pci" in self.sources else None
        pci_devices, virtual_functions = _pci.split_functions(pci or [])
        if "pci" in self.sources and pci is None:
            reasons.append(f"pci: {self.sysfs_root}/bus/pci/devices cannot be read")
        answer, source = None, "none"
        if "nvml" in self.sources:
            answer = self._nvml(reasons)
            source = "nvml" if answer is not None else source
        if answer is None and "nvidia-smi" in self.sources:
            answer = self._smi(reasons)
            source = "nvidia-smi" if answer is not None else source

        driver_by_bus = {device["pci_bus_id"]: device["driver"] for device in pci_devices}
        if answer is not None:
            devices = [
                dict(dict.fromkeys(DEVICE_KEYS), **device, pci_driver=driver_by_bus.get(device.get("pci_bus_id")))
                for device in answer["devices"]
            ]
            seen = {device["pci_bus_id"] for device in devices}
            unseen = [device for device in pci_devices if device["pci_bus_id"] not in seen]
            if unseen:
                reasons.append(f"pci: {_on_bus(unseen)} not listed by {source}")
        else:
            answer = dict.fromkeys(("driver_version", "cuda_driver_version", "nvml_version"))
            devices = [
                dict(
                    dict.fromkeys(DEVICE_KEYS),
                    index=index,
                    mig_devices=[],
                    pci_bus_id=device["pci_bus_id"],
                    pci_device_id=device["pci_device_id"],
                    pci_driver=device["driver"],
                )
                for index, device in enumerate(pci_devices)
            ]
            if devices:
                source = "pci"
                reasons.append(f"pci: {_on_bus(pci_devices)}")
        if not devices and not pci_devices:
            reasons.append("no NVIDIA GPU found")

        module_version = _pci.kernel_module_version(self.sysfs_root)
        module_loaded = _pci.kernel_module_loaded(self.sysfs_root) or any(device["driver"] == "nvidia" for device in pci_devices)
        driver_state, driver_state_reason = self._driver_state(source, module_loaded, module_version, pci_devices, reasons)
        return {
            "present": bool(devices or pci_devices),
            "driver_loaded": source in ("nvml", "nvidia-smi") or module_loaded,
            "driver_state": driver_state,
            "driver_state_reason": driver_state_reason,
            "kernel_module_version": module_version,
            "source": source,
            "reason": "; ".join(reasons) or None,
            "count": len(devices),
            "driver_version": answer["driver_version"],
            "cuda_driver_version": answer["cuda_driver_version"],
            "nvml_version": answer["nvml_version"],
            "devices": devices,
            "pci_devices": pci_devices,
            "pci_virtual_functions": virtual_functions,
        }

    def _driver_state(
        self,
        source: str,
        module_loaded: bool,
        module_version: str | None,
        pci_devices: list[dict[str, t.Any]],
        reasons: list[str],
    ) -> tuple[str, str | None]:
        """``(driver_state, driver_state_reason)``: judged by what answers, not by what is loaded."""
        if source in ("nvml", "nvidia-smi"):
            return "ready", None
        asked = [name for name in ("nvml", "nvidia-smi") if name in self.sources]
        if not module_loaded:
            if not asked:
                return "not_loaded", "no nvidia kernel module is loaded and no GPU is bound to one"
            return "not_loaded", f"no nvidia kernel module is loaded and {_silent(asked)}"
        bound = [device["pci_bus_id"] for device in pci_devices if device["driver"] == "nvidia"]
        what = "the nvidia kernel module" + (f" {module_version}" if module_version else "")
        what += " is loaded" + (f" ({', '.join(bound)} bound to it)" if bound else "")
        if not asked:
            return "unknown", f"{what}; whether it answers is unknown: sources={self.sources} asks neither nvml nor nvidia-smi"
        why = "; ".join(reason for reason in reasons if reason.startswith(("nvml: ", "nvidia-smi: ")))
        return "broken", f"reboot or reinstall needed: {what} but {_silent(asked)} ({why})"


def _silent(asked: list[str]) -> str:
    names = {"nvml": "NVML", "nvidia-smi": "nvidia-smi"}
    if len(asked) == 1:
        return f"{names[asked[0]]} does not answer"
    return "neither NVML nor nvidia-smi answers"


def _on_bus(devices: list[dict[str, t.Any]]) -> str:
    drivers = ", ".join(sorted({device["driver"] or "none" for device in devices}))
    bus_ids = ", ".join(device["pci_bus_id"] for device in devices)
    return f"{len(devices)} NVIDIA GPU(s) on the PCI bus ({bus_ids}; kernel driver: {drivers})"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "sources": {"type": "list", "elements": "str", "choices": list(SOURCES), "default": list(SOURCES)},
            "sysfs_root": {"type": "path", "default": "/sys"},
            "nvidia_smi_path": {"type": "str", "default": "nvidia-smi"},
            "timeout": {"type": "float", "default": 30},
        },
        supports_check_mode=True,
    )
    try:
        facts = GpuFacts(module).gather()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(changed=False, ansible_facts={"gpu": facts})


if __name__ == "__main__":
    main()
