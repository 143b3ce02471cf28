# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import re
import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._labels import to_label_value, validate_label

DOCUMENTATION = r"""
name: gpu_node_labels
short_description: Kubernetes node labels from kubegpu.core.gpu_facts facts
version_added: 0.1.0
author:
  - kubegpu.core maintainers (@kubegpu)
description:
  - Turns C(ansible_facts.gpu) of one node (from M(kubegpu.core.gpu_facts)) into a dict of node labels.
  - C(gpu=on) and C(accelerator=nvidia-<model>) for schedulers and cloud-style selectors; the product name is
    lowercased, a leading C(NVIDIA) dropped, and a form factor (C(SXM2), C(SXM4), C(PCIe)) ends the model,
    so C(Tesla V100-SXM2-16GB) gives C(nvidia-tesla-v100) and C(NVIDIA H100 80GB HBM3) gives C(nvidia-h100-80gb-hbm3).
  - The labels GPU Feature Discovery writes, from the first GPU, so workloads written for it schedule the same
    way - C(nvidia.com/gpu.product), C(gpu.memory), C(gpu.count), C(gpu.family), C(gpu.compute.major|minor),
    C(cuda.driver.major|minor|rev) (the driver version), C(cuda.runtime.major|minor) (the CUDA version the
    driver supports) and C(mig.capable).
  - Every value is a valid label value (at most 63 characters of letters, digits, C(-), C(_) and C(.), starting
    and ending with a letter or digit); characters a label cannot hold become C(-).
  - A node whose facts show no GPU gets an empty dict; a label whose value the facts do not give is left out.
options:
  _input:
    description: The C(gpu) facts of one node, C(ansible_facts.gpu) (C(hostvars[node].ansible_facts.gpu)).
    type: dict
    required: true
  accelerator:
    description: The C(accelerator) label's value, instead of the one derived from the product name.
    type: str
  aws_vgpu:
    description: Add C(k8s.amazonaws.com/accelerator=vgpu), the label the AWS virtual GPU device plugin selects nodes by.
    type: bool
    default: false
seealso:
  - module: kubegpu.core.gpu_facts
"""

EXAMPLES = r"""
- name: Labels for this node
  ansible.builtin.debug:
    msg: "{{ ansible_facts.gpu | kubegpu.core.gpu_node_labels }}"
  # {"gpu": "on", "accelerator": "nvidia-tesla-v100", "nvidia.com/gpu.product": "Tesla-V100-SXM2-16GB",
  #  "nvidia.com/gpu.count": "2", "nvidia.com/gpu.memory": "16384", "nvidia.com/gpu.family": "volta", ...}

- name: Labels for every GPU node, one dict keyed by node name
  ansible.builtin.set_fact:
    gpu_labels: >-
      {{ gpu_labels | default({}) | combine({item: hostvars[item].ansible_facts.gpu
         | kubegpu.core.gpu_node_labels(aws_vgpu=true)}) }}
  loop: "{{ groups['gpu_nodes'] }}"
"""

RETURN = r"""
_value:
  description: Label keys and values, all strings; empty when the node has no NVIDIA GPU.
  type: dict
  sample:
    gpu: "on"
    accelerator: nvidia-h100-80gb-hbm3
    nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
    nvidia.com/gpu.count: "8"
    nvidia.com/gpu.memory: "81559"
    nvidia.com/gpu.family: hopper
    nvidia.com/gpu.compute.major: "9"
    nvidia.com/gpu.compute.minor: "0"
    nvidia.com/cuda.driver.major: "535"
    nvidia.com/cuda.driver.minor: "161"
    nvidia.com/cuda.driver.rev: "08"
    nvidia.com/cuda.runtime.major: "12"
    nvidia.com/cuda.runtime.minor: "2"
    nvidia.com/mig.capable: "true"
"""

# A form factor token ends the model part of a product name: "V100-SXM2-16GB" -> "v100".
_FORM_FACTOR = re.compile(r"sxm\d*|pcie|pci")
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")


def accelerator_name(product: str) -> str:
    """``nvidia-<model>`` for a product name: ``Tesla V100-SXM2-16GB`` -> ``nvidia-tesla-v100``."""
    tokens = [token for token in _TOKEN_SPLIT.split(product.lower()) if token]
    if tokens and tokens[0] == "nvidia":
        tokens = tokens[1:]
    model = []
    for token in tokens:
        if _FORM_FACTOR.fullmatch(token):
            break
        model.append(token)
    return to_label_value("-".join(["nvidia", *model]))


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


def gpu_node_labels(facts: t.Any, accelerator: str | None = None, aws_vgpu: bool = False) -> dict[str, str]:
    if not isinstance(facts, Mapping) or "present" not in facts:
        raise AnsibleFilterError(
            f"gpu_node_labels expects the gpu facts of one node (ansible_facts.gpu from kubegpu.core.gpu_facts), "
            f"got {type(facts).__name__}{' without the key present' if isinstance(facts, Mapping) else ''}"
        )
    if not facts["present"]:
        return {}
    devices = [device for device in facts.get("devices") or [] if isinstance(device, Mapping)]
    first: Mapping[str, t.Any] = devices[0] if devices else {}
    name = first.get("name")
    labels: dict[str, str] = {"gpu": "on"}

    if accelerator is not None:
        labels["accelerator"] = str(accelerator)
    elif name:
        labels["accelerator"] = accelerator_name(name)
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
    for key, value in zip(("major", "minor", "rev"), _version_parts(facts.get("driver_version"), 3)):
        labels[f"nvidia.com/cuda.driver.{key}"] = value
    for key, value in zip(("major", "minor"), _version_parts(facts.get("cuda_driver_version"), 2)):
        labels[f"nvidia.com/cuda.runtime.{key}"] = value
    mig_known = [device.get("mig_capable") for device in devices if device.get("mig_capable") is not None]
    if mig_known:
        labels["nvidia.com/mig.capable"] = "true" if any(mig_known) else "false"
    if aws_vgpu:
        labels["k8s.amazonaws.com/accelerator"] = "vgpu"

    for key, value in labels.items():
        try:
            validate_label(key, value, "from gpu_node_labels")
        except KubeGPUError as exc:
            raise AnsibleFilterError(exc.msg) from exc
    return labels


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"gpu_node_labels": gpu_node_labels}
