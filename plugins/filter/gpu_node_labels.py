# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import re
import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._labels import kube_string, to_label_value, validate_label

DOCUMENTATION = r"""
name: gpu_node_labels
short_description: Kubernetes node labels from kubegpu.core.gpu_facts facts
version_added: 0.1.0
author:
  - kubegpu.core maintainers (@kubegpu)
description:
  - Turns C(ansible_facts.gpu) of one node (from M(kubegpu.core.gpu_facts)) into a dict of node labels, for
    M(kubegpu.core.node_labels). Role C(kubegpu.core.gpu_labels) applies it to every GPU node at once.
  - C(nvidia.com/gpu.present=true) on every node with an NVIDIA GPU (the NVIDIA device plugin chart selects by it).
  - C(gpu=on) (the vGPU scheduler manages only nodes carrying it) only when the facts show a working driver
    (C(driver_state) V(ready) - NVML or nvidia-smi answered; a loaded module they cannot talk to is V(broken) and held
    back with the reason), no GPU's C(health) is V(unhealthy) (lost from the bus, uncorrectable ECC errors since the
    driver loaded, a page retirement or row remapping pending or failed) and O(default_runtime) is C(nvidia);
    otherwise C(gpu) is V(null), which
    M(kubegpu.core.node_labels) reads as "remove"; filter P(kubegpu.core.gpu_labels_plan#filter) lists the nodes held
    back and why.
  - C(accelerator) follows the accelerator names of Google Kubernetes Engine where one exists
    (C(nvidia-tesla-t4), C(nvidia-tesla-v100), C(nvidia-tesla-a100), C(nvidia-a100-80gb), C(nvidia-h100-80gb),
    C(nvidia-l4), ...); a model that comes in several memory sizes keeps its size when it is not the size GKE
    names (C(nvidia-tesla-v100-32gb)); other GPUs get C(nvidia-) and the model from the product name, with the
    memory size when the product name states one (C(nvidia-geforce-gtx-1080-ti), C(nvidia-h100-nvl)).
  - The labels GPU Feature Discovery writes today, from the first GPU - C(nvidia.com/gpu.product),
    C(gpu.memory), C(gpu.count), C(gpu.family), C(gpu.compute.major|minor),
    C(cuda.driver-version.major|minor|revision|full) (the driver version),
    C(cuda.runtime-version.major|minor|full) (the CUDA version the driver supports) and C(mig.capable);
    the deprecated C(cuda.driver.major|minor|rev) and C(cuda.runtime.major|minor) only with
    O(deprecated_cuda_labels).
  - Every value is a valid label value (at most 63 characters of letters, digits, C(-), C(_) and C(.), starting
    and ending with a letter or digit); characters a label cannot hold become C(-).
  - A node whose facts show no GPU gets an empty dict; a label whose value the facts do not give is left out.
options:
  _input:
    description: The C(gpu) facts of one node, C(ansible_facts.gpu) (C(hostvars[node].ansible_facts.gpu)).
    type: dict
    required: true
  default_runtime:
    description:
      - The node's container engine default runtime (C(kubegpu_default_runtime), set by role
        C(kubegpu.core.container_toolkit)). C(gpu=on) needs V(nvidia).
    type: str
  accelerator:
    description:
      - The C(accelerator) label's value, instead of the one derived from the product name; a YAML bool or integer
        becomes a string and a float fails (docs/values.md).
    type: raw
  deprecated_cuda_labels:
    description: Also write the deprecated C(nvidia.com/cuda.driver.*) and C(nvidia.com/cuda.runtime.*) keys.
    type: bool
    default: false
seealso:
  - module: kubegpu.core.gpu_facts
  - module: kubegpu.core.node_labels
"""

EXAMPLES = r"""
- name: Labels for this node
  ansible.builtin.debug:
    msg: "{{ ansible_facts.gpu | kubegpu.core.gpu_node_labels(default_runtime=kubegpu_default_runtime | default(None)) }}"
  # {"nvidia.com/gpu.present": "true", "gpu": "on", "accelerator": "nvidia-tesla-v100",
  #  "nvidia.com/gpu.product": "Tesla-V100-SXM2-16GB", "nvidia.com/gpu.count": "2", ...}
"""

RETURN = r"""
_value:
  description: Label keys and values, all strings except C(gpu), which is V(null) on a node held back; empty
    when the node has no NVIDIA GPU.
  type: dict
  sample:
    nvidia.com/gpu.present: "true"
    gpu: "on"
    accelerator: nvidia-h100-80gb
    nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
    nvidia.com/gpu.count: "8"
    nvidia.com/gpu.memory: "81559"
    nvidia.com/gpu.family: hopper
    nvidia.com/gpu.compute.major: "9"
    nvidia.com/gpu.compute.minor: "0"
    nvidia.com/cuda.driver-version.major: "535"
    nvidia.com/cuda.driver-version.minor: "161"
    nvidia.com/cuda.driver-version.revision: "08"
    nvidia.com/cuda.driver-version.full: "535.161.08"
    nvidia.com/cuda.runtime-version.major: "12"
    nvidia.com/cuda.runtime-version.minor: "2"
    nvidia.com/cuda.runtime-version.full: "12.2"
    nvidia.com/mig.capable: "true"
"""

# A form factor or memory token ends the model part of a product name: "V100-SXM2-16GB" -> "v100".
_FORM_FACTOR = re.compile(r"sxm\d*|pcie|pci|hbm\d*e?|\d+gb")
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
_MEMORY_TOKEN = re.compile(r"(\d+)gb")

# GKE's accelerator names: model tokens -> {memory in GB (None: the only or the first size): name}.
# A size GKE does not name gets "-<size>gb" after the name of the model's first size.
_GKE = {
    ("k80",): {None: "nvidia-tesla-k80", 12: "nvidia-tesla-k80"},
    ("p4",): {None: "nvidia-tesla-p4", 8: "nvidia-tesla-p4"},
    ("p100",): {None: "nvidia-tesla-p100", 16: "nvidia-tesla-p100"},
    ("v100",): {None: "nvidia-tesla-v100", 16: "nvidia-tesla-v100"},
    ("t4",): {None: "nvidia-tesla-t4", 16: "nvidia-tesla-t4"},
    ("a100",): {None: "nvidia-tesla-a100", 40: "nvidia-tesla-a100", 80: "nvidia-a100-80gb"},
    ("l4",): {None: "nvidia-l4", 24: "nvidia-l4"},
    ("h100",): {None: "nvidia-h100-80gb", 80: "nvidia-h100-80gb"},
    ("h200",): {None: "nvidia-h200-141gb", 141: "nvidia-h200-141gb"},
    ("b200",): {None: "nvidia-b200", 180: "nvidia-b200"},
    ("gb200",): {None: "nvidia-gb200", 186: "nvidia-gb200"},
    ("rtx", "pro", "6000"): {None: "nvidia-rtx-pro-6000", 96: "nvidia-rtx-pro-6000"},
}
# Variants whose product name carries a token that makes them another product than GKE's.
_NOT_GKE = {"nvl", "grid"}


def _memory_gb(tokens: list[str], memory_mib: t.Any, sizes: t.Iterable[int]) -> int | None:
    """The memory size class in GB: stated in the product name, else the nearest known size within 10 %."""
    for token in tokens:
        match = _MEMORY_TOKEN.fullmatch(token)
        if match:
            return int(match.group(1))
    if not isinstance(memory_mib, int) or isinstance(memory_mib, bool) or memory_mib <= 0:
        return None
    gib = memory_mib / 1024
    near = [size for size in sizes if abs(gib - size) <= 0.1 * size]
    return min(near, key=lambda size: abs(gib - size)) if near else round(gib)


def _gke_name(tokens: list[str], memory_mib: t.Any) -> str | None:
    if _NOT_GKE & set(tokens):
        return None
    for model, names in _GKE.items():
        width = len(model)
        if any(tuple(tokens[index : index + width]) == model for index in range(len(tokens) - width + 1)):
            sizes = [size for size in names if size is not None]
            size = _memory_gb(tokens, memory_mib, sizes)
            if size is None:
                return names[None]
            if size in names:
                return names[size]
            return f"{names[min(sizes)]}-{size}gb"
    return None


def accelerator_name(product: str, memory_mib: t.Any = None) -> str:
    """The ``accelerator`` label: GKE's name where one exists (``Tesla V100-SXM2-16GB`` -> ``nvidia-tesla-v100``,
    ``NVIDIA A100-SXM4-80GB`` -> ``nvidia-a100-80gb``), else ``nvidia-<model>[-<size>gb]``."""
    tokens = [token for token in _TOKEN_SPLIT.split(product.lower()) if token]
    gke = _gke_name(tokens, memory_mib)
    if gke:
        return gke
    if tokens and tokens[0] == "nvidia":
        tokens = tokens[1:]
    model = []
    for token in tokens:
        if _FORM_FACTOR.fullmatch(token):
            break
        model.append(token)
    size = next((token for token in tokens if _MEMORY_TOKEN.fullmatch(token)), None)
    return to_label_value("-".join(["nvidia", *model, *([size] if size else [])]))


def gpu_family(major: int | None, minor: int | None, architecture: str | None = None) -> str | None:
    """GPU Feature Discovery's family name for a compute capability (e.g. 8.9 -> ``ada-lovelace``)."""
    if major is not None:
        minor = minor or 0
        if major == 7:
            return "volta" if minor < 5 else "turing"
        if major == 8:
            return "ampere" if minor < 9 else "ada-lovelace"
        family = {1: "tesla", 2: "fermi", 3: "kepler", 5: "maxwell", 6: "pascal", 9: "hopper", 10: "blackwell", 12: "blackwell"}
        if major in family:
            return family[major]
    if architecture:
        return to_label_value(architecture.lower()) or None
    return None


def _version_parts(version: t.Any, count: int) -> list[str]:
    if not isinstance(version, str) or not version:
        return []
    parts = version.split(".")[:count]
    return [part for part in parts if part.isdigit()] if all(part.isdigit() for part in parts) else []


def _check_facts(facts: t.Any, name: str) -> Mapping[str, t.Any]:
    if not isinstance(facts, Mapping) or "present" not in facts:
        raise AnsibleFilterError(
            f"{name} expects the gpu facts of one node (ansible_facts.gpu from kubegpu.core.gpu_facts), "
            f"got {type(facts).__name__}{' without the key present' if isinstance(facts, Mapping) else ''}"
        )
    return facts


def driver_state(facts: Mapping[str, t.Any]) -> str:
    """``driver_state`` of gpu_facts (ready, not_loaded, broken, unknown). Facts gathered before it existed (a fact
    cache) only say ``driver_loaded``, which was true when something answered or a module was loaded."""
    if "driver_state" in facts:
        return str(facts["driver_state"])
    return "ready" if facts.get("driver_loaded") else "not_loaded"


def unhealthy_gpus(facts: Mapping[str, t.Any]) -> list[str]:
    """``GPU <index>: <reasons>`` of each GPU whose gpu_facts ``health`` is ``unhealthy`` (facts gathered before
    health existed have none)."""
    return [
        f"GPU {device.get('index')}: {', '.join(device.get('health_reasons') or []) or 'unhealthy'}"
        for device in facts.get("devices") or []
        if isinstance(device, Mapping) and device.get("health") == "unhealthy"
    ]


def gpu_node_hold_reason(facts: t.Any, default_runtime: t.Any = None) -> str | None:
    """Why the node may not carry ``gpu=on`` yet, or None when it may."""
    facts = _check_facts(facts, "gpu_node_hold_reason")
    if not facts["present"]:
        return "no NVIDIA GPU in its facts"
    state = driver_state(facts)
    if state == "broken":
        return f"the NVIDIA driver is broken ({facts.get('driver_state_reason') or 'reboot or reinstall needed'})"
    if state == "unknown":
        return (
            f"the NVIDIA driver's state is unknown ({facts.get('driver_state_reason') or 'gpu_facts asked nothing that answers'})"
        )
    if state != "ready":
        why = facts.get("reason")
        return f"the NVIDIA driver is not loaded{f' ({why})' if why else ''}"
    unhealthy = unhealthy_gpus(facts)
    if unhealthy:
        return f"unhealthy GPU ({'; '.join(unhealthy)})"
    if default_runtime is None or default_runtime == "":
        return (
            "kubegpu_default_runtime is not set (role container_toolkit sets it; "
            "set it in host or group vars for a node whose runtime is managed otherwise)"
        )
    if default_runtime != "nvidia":
        return f"its default runtime is {default_runtime!r}, not 'nvidia' (kubegpu_default_runtime)"
    return None


def gpu_node_labels(
    facts: t.Any, default_runtime: t.Any = None, accelerator: str | None = None, deprecated_cuda_labels: bool = False
) -> dict[str, str | None]:
    facts = _check_facts(facts, "gpu_node_labels")
    if not facts["present"]:
        return {}
    devices = [device for device in facts.get("devices") or [] if isinstance(device, Mapping)]
    first: Mapping[str, t.Any] = devices[0] if devices else {}
    name = first.get("name")
    labels: dict[str, str | None] = {
        "nvidia.com/gpu.present": "true",
        "gpu": None if gpu_node_hold_reason(facts, default_runtime) else "on",
    }

    if accelerator is not None:
        try:
            labels["accelerator"] = kube_string(accelerator, "gpu_node_labels' accelerator")
        except KubeGPUError as exc:
            raise AnsibleFilterError(exc.msg) from exc
    elif name:
        labels["accelerator"] = accelerator_name(name, first.get("memory_total_mib"))
    if name:
        labels["nvidia.com/gpu.product"] = to_label_value(name)
    labels["nvidia.com/gpu.count"] = str(facts.get("count") or len(devices) or len(facts.get("pci_devices") or []))
    if first.get("memory_total_mib") is not None:
        labels["nvidia.com/gpu.memory"] = str(int(first["memory_total_mib"]))
    major, minor = first.get("compute_major"), first.get("compute_minor")
    family = gpu_family(major, minor, first.get("architecture"))
    if family:
        labels["nvidia.com/gpu.family"] = family
    if major is not None:
        labels["nvidia.com/gpu.compute.major"] = str(major)
        labels["nvidia.com/gpu.compute.minor"] = str(minor or 0)
    driver = _version_parts(facts.get("driver_version"), 3)
    for key, value in zip(("major", "minor", "revision"), driver):
        labels[f"nvidia.com/cuda.driver-version.{key}"] = value
    if driver:
        labels["nvidia.com/cuda.driver-version.full"] = ".".join(driver)
    cuda = _version_parts(facts.get("cuda_driver_version"), 2)
    for key, value in zip(("major", "minor"), cuda):
        labels[f"nvidia.com/cuda.runtime-version.{key}"] = value
    if cuda:
        labels["nvidia.com/cuda.runtime-version.full"] = ".".join(cuda)
    if deprecated_cuda_labels:
        for key, value in zip(("major", "minor", "rev"), driver):
            labels[f"nvidia.com/cuda.driver.{key}"] = value
        for key, value in zip(("major", "minor"), cuda):
            labels[f"nvidia.com/cuda.runtime.{key}"] = value
    mig_known = [device.get("mig_capable") for device in devices if device.get("mig_capable") is not None]
    if mig_known:
        labels["nvidia.com/mig.capable"] = "true" if any(mig_known) else "false"

    for key, value in labels.items():
        try:
            validate_label(key, "" if value is None else value, "from gpu_node_labels")
        except KubeGPUError as exc:
            raise AnsibleFilterError(exc.msg) from exc
    return labels


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"gpu_node_labels": gpu_node_labels}
