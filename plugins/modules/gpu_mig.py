#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_mig
short_description: Partition NVIDIA GPUs into MIG instances from a named layout (mig-parted's format)
version_added: 0.1.0
description:
  - Brings every NVIDIA GPU of the host to the MIG layout named by O(config) - MIG mode on or off, then GPU instances
    by profile name (C(1g.10gb), C(3g.40gb), C(1g.10gb+me) ...), each with one compute instance that spans it (as
    C(nvidia-smi mig -cgi PROFILE -C) and NVIDIA's mig-parted do). NVML is used through C(pynvml).
  - "The layouts are in NVIDIA mig-parted's file format, so that existing files work:
    C(version: v1) and C(mig-configs), a mapping of layout names to lists of entries. An entry has C(devices)
    (C(all) or a list of GPU indices), an optional C(device-filter) (a PCI device id such as C(0x20B010DE), or a list,
    as NVML's C(pciDeviceId) prints it), C(mig-enabled) (bool) and C(mig-devices) (profile name: count).
    The first entry that matches a GPU gives its layout; a GPU no entry matches is left as it is."
  - Without O(configs) and O(config_file), NVIDIA's named layouts as mig-parted's default configuration and the GPU
    Operator ship them are known - C(all-disabled), C(all-enabled), C(all-1g.5gb), C(all-1g.5gb.me), C(all-2g.10gb),
    C(all-3g.20gb), C(all-4g.20gb), C(all-7g.40gb) (A100 40GB); C(all-1g.10gb), C(all-1g.10gb.me), C(all-1g.20gb),
    C(all-2g.20gb), C(all-3g.40gb), C(all-4g.40gb), C(all-7g.80gb) (A100 80GB, H100 80GB); C(all-balanced) with its
    per-product device filters (see EXAMPLES for its text).
  - Idempotent - GPU instances that already hold a wanted profile are kept; a change of layout destroys only the
    instances that are not wanted and creates only the missing ones (all are placed anew only when the missing ones
    do not fit beside the kept ones).
  - Everything is checked before the first change, on every GPU - an unknown layout name, a profile the GPU does not
    offer, more instances than fit, a GPU that is not MIG-capable asked for MIG, compute processes on a GPU that
    must change (unless O(allow_running_processes)); the message names the GPU index and the value.
  - A MIG mode change takes effect at once on a GPU that can be reset now (bare metal, idle). Where it needs a GPU
    reset or a reboot (a GPU passed through to a virtual machine) the mode stays pending, RV(reset_required) is
    true and the instances are created by the next run after the reboot; a run before the reboot changes nothing
    and reports RV(reset_required) again. Drain the node and stop GPU clients first (the role
    C(kubegpu.core.gpu_mig) does).
author:
  - kubegpu.core maintainers (@kubegpu)
requirements:
  - nvidia-ml-py (C(pynvml)) on the managed node
  - PyYAML on the managed node, only for O(config_file)
extends_documentation_fragment:
  - kubegpu.core._attributes
attributes:
  check_mode:
    support: full
    details: Check mode reads the GPUs and returns the same plan and predicted layout, changing nothing.
  diff_mode:
    support: full
    details: The MIG mode and the instances of each GPU that changes, before and after.
  idempotent:
    support: full
options:
  config:
    description:
      - The name of the layout, a key of C(mig-configs) (e.g. V(all-1g.10gb), V(all-balanced), V(all-disabled)).
    type: str
    required: true
  configs:
    description:
      - A whole mig-parted file's content (C(version) and C(mig-configs)) instead of NVIDIA's named layouts.
      - Mutually exclusive with O(config_file).
    type: dict
  config_file:
    description:
      - A mig-parted YAML file on the managed node instead of NVIDIA's named layouts.
      - Mutually exclusive with O(configs).
    type: path
  allow_running_processes:
    description:
      - Change GPUs that have compute processes. By default such a GPU is refused (nothing changes on any GPU).
    type: bool
    default: false
notes:
  - Compute-instance profiles smaller than their GPU instance (C(1c.3g.20gb)) are not supported in C(mig-devices).
seealso:
  - name: NVIDIA mig-parted
    description: The tool whose layout file format this module reads.
    link: https://github.com/NVIDIA/mig-parted
  - name: NVIDIA MIG user guide, supported profiles
    description: Profiles, instance counts and placements per GPU.
    link: https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html
  - module: kubegpu.core.gpu_facts
"""

EXAMPLES = r"""
- name: Partition every A100/H100 into seven 1g.10gb instances (four on an A100 40GB), NVIDIA's named layout
  kubegpu.core.gpu_mig:
    config: all-1g.10gb

- name: One of NVIDIA's named layouts written out in mig-parted's format (all-balanced, as it ships)
  kubegpu.core.gpu_mig:
    config: all-balanced
    configs:
      version: v1
      mig-configs:
        all-balanced:
          - device-filter:
              ["0x233010DE", "0x233110DE", "0x232210DE", "0x20B210DE", "0x20B510DE", "0x20F310DE", "0x20F510DE", "0x232410DE"]
            devices: all
            mig-enabled: true
            mig-devices:
              "1g.10gb": 2
              "2g.20gb": 1
              "3g.40gb": 1
          - device-filter: ["0x20B010DE", "0x20B110DE", "0x20F110DE", "0x20F610DE"]
            devices: all
            mig-enabled: true
            mig-devices:
              "1g.5gb": 2
              "2g.10gb": 1
              "3g.20gb": 1

- name: GPU 0 split in two, the other GPUs whole (MIG off)
  kubegpu.core.gpu_mig:
    config: half-and-whole
    configs:
      version: v1
      mig-configs:
        half-and-whole:
          - devices: [0]
            mig-enabled: true
            mig-devices: {"3g.40gb": 2}
          - devices: all
            mig-enabled: false
  register: mig

- name: The operator's own file on the node
  kubegpu.core.gpu_mig:
    config: custom-layout
    config_file: /etc/nvidia-mig-manager/config.yaml

- name: Reboot when a MIG mode change waits for a GPU reset
  ansible.builtin.reboot:
  when: mig.reset_required
"""

RETURN = r"""
plan:
  description: One line per action, in the order taken (or that would be taken in check mode).
  returned: always
  type: list
  elements: str
  sample: ["GPU 0: enable MIG mode", "GPU 0: destroy 3g.20gb (GPU instance 1)", "GPU 0: create 1g.5gb x2"]
reset_required:
  description: A MIG mode change is pending until a GPU reset or a reboot (pending mode is not the current one), made
    by this run or an earlier one; the layout's instances are created by a run after the reset.
  returned: always
  type: bool
gpus:
  description: Per GPU, by index, its MIG state before and after (predicted in check mode; a new instance's C(uuid),
    C(gpu_instance_id) and C(compute_instance_id) are then null, its C(placement_start) is the one chosen).
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: NVML's GPU index.
      type: int
    name:
      description: The GPU's name.
      type: str
    uuid:
      description: The GPU's UUID.
      type: str
    mig_capable:
      description: Whether the GPU offers MIG.
      type: bool
    layout_applies:
      description: Whether an entry of the layout matched this GPU (a GPU no entry matches is left alone).
      type: bool
    before:
      description: C(mig_enabled) (current mode), C(mig_pending) and C(instances) before.
      type: dict
    after:
      description: The same after; C(instances) is a list of C({profile, gpu_instance_id, compute_instance_id,
        placement_start, uuid}).
      type: dict
"""

import contextlib
import itertools
import re
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils._diff import DiffTracker
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._mig import (
    NVIDIA_CONFIGS,
    Desired,
    Profile,
    desired_for,
    pack,
    validate,
)
from ansible_collections.kubegpu.core.plugins.module_utils._nvml import (
    ERROR_FUNCTION_NOT_FOUND,
    ERROR_NOT_SUPPORTED,
    ERROR_RESET_REQUIRED,
    PYNVML_IMPORT_ERROR,
    NvmlUnavailable,
    _init_failure,
    _text,
    pynvml,
)

try:
    import yaml
except ImportError:
    yaml = None

PROFILE_INDEX_COUNT = 0x12  # NVML_GPU_INSTANCE_PROFILE_COUNT in nvml.h (profile indices 0..17)
CI_PROFILE_INDEX_COUNT = 0x9  # NVML_COMPUTE_INSTANCE_PROFILE_COUNT


class Instance(t.NamedTuple):
    profile: str
    gpu_instance_id: int | None
    compute_instance_id: int | None
    placement_start: int
    uuid: str | None
    whole: bool  # exactly one compute instance that spans the GPU instance

    def public(self) -> dict[str, t.Any]:
        return {
            key: getattr(self, key) for key in ("profile", "gpu_instance_id", "compute_instance_id", "placement_start", "uuid")
        }


class Gpu:
    """One GPU as NVML shows it: MIG mode, profiles, instances, compute processes."""

    def __init__(self, nvml: t.Any, index: int) -> None:
        self.nvml = nvml
        self.index = index
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.name = _text(nvml.nvmlDeviceGetName(self.handle))
        self.uuid = _text(nvml.nvmlDeviceGetUUID(self.handle))
        pci = nvml.nvmlDeviceGetPciInfo(self.handle)
        self.pci_device_id = f"0x{int(pci.pciDeviceId):08X}"
        try:
            self.current, self.pending = (int(mode) for mode in nvml.nvmlDeviceGetMigMode(self.handle))
            self.capable = True
        except nvml.NVMLError as exc:
            # a GPU without MIG, or a driver older than MIG (R450) whose library lacks the call
            if getattr(exc, "value", None) not in (ERROR_NOT_SUPPORTED, ERROR_FUNCTION_NOT_FOUND):
                raise
            self.current = self.pending = 0
            self.capable = False
        self.handles: dict[int, tuple[t.Any, list[t.Any]]] = {}  # GPU instance id: its handle, its compute instances
        self.profiles = self._profiles() if self.capable else {}
        self.capable = self.capable and bool(self.profiles)
        self.instances = self._instances() if self.capable and self.current == 1 else []
        self.processes = [int(process.pid) for process in self._processes()]

    def _profiles(self) -> dict[str, Profile]:
        nvml = self.nvml
        found = {}
        for index in range(PROFILE_INDEX_COUNT):
            try:
                info = nvml.nvmlDeviceGetGpuInstanceProfileInfo(self.handle, index)
            except nvml.NVMLError:
                continue
            count = nvml.c_uint(0)
            nvml.nvmlDeviceGetGpuInstancePossiblePlacements(self.handle, info.id, None, nvml.byref(count))
            placements = (nvml.c_nvmlGpuInstancePlacement_t * count.value)()
            nvml.nvmlDeviceGetGpuInstancePossiblePlacements(self.handle, info.id, placements, nvml.byref(count))
            name = _text(info.name).removeprefix("MIG ")
            starts = tuple(int(placement.start) for placement in placements[: count.value])
            size = int(placements[0].size) if count.value else 8
            found[name] = Profile(name, int(info.id), int(info.sliceCount), int(info.instanceCount), starts, size)
        return found

    def _instances(self) -> list[Instance]:
        nvml = self.nvml
        uuids = self._mig_uuids()
        found = []
        for profile in self.profiles.values():
            array = (nvml.c_nvmlGpuInstance_t * max(profile.instances, 1))()
            count = nvml.c_uint(0)
            nvml.nvmlDeviceGetGpuInstances(self.handle, profile.id, array, nvml.byref(count))
            for gpu_instance in array[: count.value]:
                info = nvml.nvmlGpuInstanceGetInfo(gpu_instance)
                computes = self._compute_instances(gpu_instance)
                self.handles[int(info.id)] = (gpu_instance, [handle for handle, _id, _slices in computes])
                whole = len(computes) == 1 and computes[0][2] == profile.slices
                ci_id = computes[0][1] if computes else None
                found.append(
                    Instance(
                        profile.name, int(info.id), ci_id, int(info.placement.start), uuids.get((int(info.id), ci_id)), whole
                    )
                )
        return sorted(found, key=lambda instance: instance.placement_start)

    def _compute_instances(self, gpu_instance: t.Any) -> list[tuple[t.Any, int, int]]:
        nvml = self.nvml
        found = []
        for index in range(CI_PROFILE_INDEX_COUNT):
            try:
                info = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gpu_instance, index, 0)
            except nvml.NVMLError:
                continue
            array = (nvml.c_nvmlComputeInstance_t * max(int(info.instanceCount), 1))()
            count = nvml.c_uint(0)
            nvml.nvmlGpuInstanceGetComputeInstances(gpu_instance, info.id, array, nvml.byref(count))
            for compute in array[: count.value]:
                found.append((compute, int(nvml.nvmlComputeInstanceGetInfo(compute).id), int(info.sliceCount)))
        return found

    def _mig_uuids(self) -> dict[tuple[int, int], str]:
        nvml = self.nvml
        found = {}
        for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(self.handle)):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(self.handle, slot)
            except nvml.NVMLError:
                continue
            key = (int(nvml.nvmlDeviceGetGpuInstanceId(mig)), int(nvml.nvmlDeviceGetComputeInstanceId(mig)))
            found[key] = _text(nvml.nvmlDeviceGetUUID(mig))
        return found

    def _processes(self) -> list[t.Any]:
        try:
            return self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except self.nvml.NVMLError:
            return []

    def state(self, instances: list[Instance] | None = None) -> dict[str, t.Any]:
        return {
            "mig_enabled": self.current == 1,
            "mig_pending": self.pending == 1,
            "instances": [instance.public() for instance in (self.instances if instances is None else instances)],
        }


class GpuPlan:
    """What one GPU needs to reach its layout; refusals raise before anything changes."""

    def __init__(self, gpu: Gpu, desired: Desired | None, config: str, allow_running_processes: bool) -> None:
        self.gpu = gpu
        self.desired = desired
        self.set_mode: int | None = None
        self.destroy: list[Instance] = []
        self.create: list[tuple[str, int]] = []
        self.after = list(gpu.instances)
        # the GPU's MIG mode is already pending the wanted mode and waits for a GPU reset or a reboot: nothing can be
        # done before it (NVML creates no instance while MIG is not current), so a run changes nothing and says so
        self.waiting_for_reset = False
        if desired is None:
            return
        where = f"GPU {gpu.index} ({gpu.name})"
        if not desired.mig_enabled:
            if gpu.capable:
                self.destroy = list(gpu.instances)
                self.after = []
                if gpu.pending != 0:
                    self.set_mode = 0
                self.waiting_for_reset = gpu.pending == 0 and gpu.current != 0
        else:
            if not gpu.capable:
                raise KubeGPUError(f"{where} is not MIG-capable; config {config!r} asks for MIG (mig-enabled: true)")
            smaller = sorted(name for name in desired.devices if re.match(r"[0-9]+c\.", name))
            if smaller:
                raise KubeGPUError(
                    f"{where}: config {config!r} asks for compute-instance profile(s) {', '.join(smaller)}, smaller "
                    "than their GPU instance; gpu_mig creates one compute instance spanning each GPU instance and does "
                    "not support these (use the GPU instance profile, e.g. 3g.40gb)"
                )
            unknown = sorted(set(desired.devices) - set(gpu.profiles))
            if unknown:
                raise KubeGPUError(
                    f"{where} does not offer the MIG profile(s) {', '.join(unknown)} that config {config!r} asks for; "
                    f"it offers: {', '.join(gpu.profiles)}"
                )
            self._plan_instances(where, config)
            if gpu.pending != 1:
                self.set_mode = 1
            elif gpu.current != 1:
                # the layout is checked (the refusals above) but its instances wait for the reset
                self.waiting_for_reset = True
                self.destroy, self.create, self.after = [], [], []
        if self.changes and gpu.processes and not allow_running_processes:
            raise KubeGPUError(
                f"{where} must change for config {config!r} but has compute processes "
                f"(pid {', '.join(map(str, gpu.processes))}); "
                "stop them first or set allow_running_processes=true"
            )

    def _plan_instances(self, where: str, config: str) -> None:
        gpu, profiles = self.gpu, self.gpu.profiles
        wanted = [name for name, count in self.desired.devices.items() for _n in range(count)]
        keep, placed = _keep_most(profiles, [instance for instance in gpu.instances if instance.whole], wanted)
        if placed is None:
            asked = ", ".join(f"{name} x{count}" for name, count in self.desired.devices.items())
            raise KubeGPUError(
                f"{where}: the instances config {config!r} asks for ({asked}) do not fit: more instances than the GPU's "
                "7 compute and 8 memory slices and the profiles' placements and instance counts allow"
            )
        self.destroy = [instance for instance in gpu.instances if instance not in keep]
        self.create = placed
        self.after = keep + [Instance(name, None, None, start, None, True) for name, start in placed]
        self.after.sort(key=lambda instance: instance.placement_start)

    @property
    def changes(self) -> bool:
        return bool(self.set_mode is not None or self.destroy or self.create)

    def lines(self) -> list[str]:
        prefix = f"GPU {self.gpu.index}"
        lines = [f"{prefix}: destroy {instance.profile} (GPU instance {instance.gpu_instance_id})" for instance in self.destroy]
        if self.set_mode is not None:
            lines.insert(0 if self.set_mode else len(lines), f"{prefix}: {'enable' if self.set_mode else 'disable'} MIG mode")
        counts: dict[str, int] = {}
        for name, _start in self.create:
            counts[name] = counts.get(name, 0) + 1
        lines += [f"{prefix}: create {name} x{count}" for name, count in counts.items()]
        return lines


def _keep_most(
    profiles: dict[str, Profile], existing: list[Instance], wanted: list[str]
) -> tuple[list[Instance], list[tuple[str, int]] | None]:
    """The most existing instances that can stay (each one a wanted profile) and the placements of the rest of
    ``wanted`` beside them; ``([], None)`` when ``wanted`` does not fit at all. Tries the subsets of the (at most
    seven) existing instances, largest first."""
    candidates = [instance for instance in existing if instance.profile in wanted]
    for size in range(len(candidates), -1, -1):
        for keep in itertools.combinations(candidates, size):
            missing = list(wanted)
            try:
                for instance in keep:
                    missing.remove(instance.profile)
            except ValueError:  # more kept of a profile than wanted
                continue
            placed = pack(profiles, missing, [(instance.profile, instance.placement_start) for instance in keep])
            if placed is not None:
                return list(keep), placed
    return [], None


class GpuMig:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params

    def layout(self) -> list[dict[str, t.Any]]:
        if self.params["configs"] is not None:
            named = validate(self.params["configs"], "configs")
        elif self.params["config_file"]:
            named = validate(self._read_file(self.params["config_file"]), self.params["config_file"])
        else:
            named = NVIDIA_CONFIGS
        config = self.params["config"]
        if config not in named:
            raise KubeGPUError(f"config={config!r} is not a known MIG layout; known: {', '.join(sorted(named))}")
        return named[config]

    def _read_file(self, path: str) -> t.Any:
        if yaml is None:
            self.module.fail_json(msg=missing_required_lib("PyYAML"))
        try:
            with open(path, encoding="utf-8") as handle:
                return yaml.safe_load(handle)
        except OSError as exc:
            raise KubeGPUError(f"config_file={path!r} cannot be read: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise KubeGPUError(f"config_file={path!r} is not valid YAML: {exc}") from exc

    def run(self) -> dict[str, t.Any]:
        entries = self.layout()  # an unknown name is refused before NVML is touched
        if pynvml is None:
            self.module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=PYNVML_IMPORT_ERROR)
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise KubeGPUError(f"NVML cannot be used: {_init_failure(exc).reason}") from exc
        try:
            gpus = [Gpu(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount())]
            plans = [
                GpuPlan(
                    gpu,
                    desired_for(entries, gpu.index, gpu.pci_device_id),
                    self.params["config"],
                    self.params["allow_running_processes"],
                )
                for gpu in gpus
            ]
            if gpus and all(plan.desired is None for plan in plans):
                self.module.warn(
                    f"config {self.params['config']!r} matches no GPU of this node (its entries' devices and "
                    f"device-filter; PCI device ids here: {', '.join(sorted({str(gpu.pci_device_id) for gpu in gpus}))}): "
                    "nothing to do"
                )
            reset_required = False
            if not self.module.check_mode:
                for plan in plans:
                    reset_required |= self._apply(plan)
                after = [Gpu(pynvml, gpu.index) for gpu in gpus]
            else:
                after = []
            return self._result(plans, after, reset_required)
        except pynvml.NVMLError as exc:
            raise KubeGPUError(
                f"NVML failed while reading or changing MIG: {exc} (NVML error {getattr(exc, 'value', None)})"
            ) from exc
        finally:
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlShutdown()

    def _apply(self, plan: GpuPlan) -> bool:
        """Makes the plan's changes; True when a MIG mode change waits for a reset."""
        nvml, gpu = pynvml, plan.gpu
        if not plan.changes:
            return False
        for instance in plan.destroy:
            gpu_instance, computes = gpu.handles[instance.gpu_instance_id]
            for compute in computes:
                nvml.nvmlComputeInstanceDestroy(compute)
            nvml.nvmlGpuInstanceDestroy(gpu_instance)
        if plan.set_mode is not None:
            status = nvml.nvmlDeviceSetMigMode(gpu.handle, plan.set_mode)
            if status == ERROR_RESET_REQUIRED:
                return True
            if status != 0:
                raise KubeGPUError(
                    f"GPU {gpu.index} ({gpu.name}): setting MIG mode {plan.set_mode} failed: {nvml.nvmlErrorString(status)} "
                    f"(NVML error {status}); stop the GPU's clients and retry"
                )
        current, pending = nvml.nvmlDeviceGetMigMode(gpu.handle)
        if plan.create and current != 1:
            return True  # the instances are created by a run after the reset
        for name, start in plan.create:
            profile = gpu.profiles[name]
            placement = nvml.c_nvmlGpuInstancePlacement_t(start, profile.size)
            # nvml.h takes the placement by pointer; pynvml passes the argument as given
            gpu_instance = nvml.nvmlDeviceCreateGpuInstanceWithPlacement(gpu.handle, profile.id, nvml.byref(placement))
            nvml.nvmlGpuInstanceCreateComputeInstance(gpu_instance, self._whole_compute_profile(gpu_instance, profile))
        return current != pending

    @staticmethod
    def _whole_compute_profile(gpu_instance: t.Any, profile: Profile) -> int:
        for index in range(CI_PROFILE_INDEX_COUNT):
            try:
                info = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gpu_instance, index, 0)
            except pynvml.NVMLError:
                continue
            if int(info.sliceCount) == profile.slices:
                return int(info.id)
        raise KubeGPUError(f"no compute instance profile spans a {profile.name} GPU instance")

    def _result(self, plans: list[GpuPlan], after: list[Gpu], reset_required: bool) -> dict[str, t.Any]:
        tracker = DiffTracker()
        gpus = []
        for number, plan in enumerate(plans):
            gpu = plan.gpu
            before_state = gpu.state()
            if after:
                after_state = after[number].state()
                reset_required |= after[number].current != after[number].pending
            else:
                reset_required |= plan.waiting_for_reset
                after_state = gpu.state(plan.after)
                if plan.set_mode is not None:
                    after_state["mig_pending"] = plan.set_mode == 1
                    after_state["mig_enabled"] = plan.set_mode == 1
            tracker.record(f"GPU {gpu.index}", _diff_view(before_state), _diff_view(after_state))
            gpus.append(
                {
                    "index": gpu.index,
                    "name": gpu.name,
                    "uuid": gpu.uuid,
                    "mig_capable": gpu.capable,
                    "layout_applies": plan.desired is not None,
                    "before": before_state,
                    "after": after_state,
                }
            )
        plan_lines = [line for plan in plans for line in plan.lines()]
        result: dict[str, t.Any] = {
            "changed": bool(plan_lines),
            "plan": plan_lines,
            "gpus": gpus,
            "reset_required": reset_required,
        }
        if self.module._diff:
            result["diff"] = tracker.diff()
        return result


def _diff_view(state: dict[str, t.Any]) -> dict[str, t.Any]:
    return {
        "mig_enabled": state["mig_enabled"],
        "mig_pending": state["mig_pending"],
        "instances": [f"{i['profile']} at slice {i['placement_start']}" for i in state["instances"]],
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "str", "required": True},
            "configs": {"type": "dict"},
            "config_file": {"type": "path"},
            "allow_running_processes": {"type": "bool", "default": False},
        },
        mutually_exclusive=[("configs", "config_file")],
        supports_check_mode=True,
    )
    try:
        result = GpuMig(module).run()
    except (KubeGPUError, NvmlUnavailable) as exc:
        if isinstance(exc, NvmlUnavailable):
            module.fail_json(msg=exc.reason)
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
