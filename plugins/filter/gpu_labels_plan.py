# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.filter.device_stack_nodes import device_stack_nodes
from ansible_collections.kubegpu.core.plugins.filter.gpu_node_labels import gpu_node_hold_reason, gpu_node_labels, unhealthy_gpus
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._labels import NULL_KEPT, kube_string, validate_label

DOCUMENTATION = r"""
name: gpu_labels_plan
short_description: The labels of every GPU node at once, for one kubegpu.core.node_labels call
version_added: 0.1.0
author:
  - kubegpu.core maintainers (@kubegpu)
description:
  - For each inventory host of the GPU group, the labels of its Kubernetes node, from its C(ansible_facts.gpu)
    through filter P(kubegpu.core.gpu_node_labels#filter), its device stack's labels from filter
    P(kubegpu.core.device_stack_nodes#filter), O(extra_labels) and the host's own C(gpu_labels_host_labels) (a dict in
    host or group vars; these win over every computed label, C(accelerator) included; V(null) removes a label).
  - Values of O(extra_labels) and C(gpu_labels_host_labels) follow the collection's rule for YAML-typed values
    (docs/values.md) - a bool becomes V(true)/V(false), an integer its digits, a float fails naming the variable.
  - C(gpu=on) only where the driver works (C(driver_state) V(ready); a loaded driver that NVML and nvidia-smi cannot
    talk to is held back as broken, with the reason) and the host's C(kubegpu_default_runtime) is C(nvidia); the other
    nodes are listed in RV(_value.held_back) with the reason, and C(gpu) is removed from them.
  - A host whose facts show no NVIDIA GPU is listed in RV(_value.held_back) and only loses C(gpu=on).
  - Fails, naming the hosts, when a host has no C(ansible_facts.gpu) (run M(kubegpu.core.gpu_facts) first), when
    two hosts are the same node, or for a bad device stack or label; a filter fails before any task changes anything.
options:
  _input:
    description: The inventory hosts of the GPU nodes, usually C(groups[kubegpu_gpu_group | default('gpu_nodes')]).
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars).
    type: dict
    required: true
  default_stack:
    description: The device stack of a host that does not set C(kubegpu_device_plugin).
    type: str
    default: vgpu_scheduler
  deprecated_cuda_labels:
    description: Also write the deprecated C(nvidia.com/cuda.driver.*) and C(nvidia.com/cuda.runtime.*) keys.
    type: bool
    default: false
  extra_labels:
    description: Labels for every GPU node (V(null) removes one).
    type: dict
    default: {}
seealso:
  - module: kubegpu.core.node_labels
"""

EXAMPLES = r"""
- name: Label every GPU node in one request per node that differs
  kubegpu.core.node_labels:
    nodes: "{{ (groups['gpu_nodes'] | kubegpu.core.gpu_labels_plan(hostvars)).nodes }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    nodes:
      description: One entry per GPU node, C(name) and C(labels), in the shape O(kubegpu.core.node_labels#module:nodes) takes.
      type: list
      elements: dict
    gpu_nodes:
      description: The names of the nodes whose facts show an NVIDIA GPU (the nodes the GPU taint is for).
      type: list
      elements: str
    unhealthy_nodes:
      description:
        - The names of the GPU nodes with a GPU whose C(health) is V(unhealthy) (also in RV(_value.held_back), with the
          reason); role C(gpu_labels) taints them when C(kubegpu_unhealthy_taint) is on.
      type: list
      elements: str
    held_back:
      description: The nodes that do not get C(gpu=on), each C(node), C(host) and C(reason).
      type: list
      elements: dict
      sample: [{node: gpu-node-2, host: node2, reason: "the NVIDIA driver is not loaded"}]
    device_stacks:
      description: What filter P(kubegpu.core.device_stack_nodes#filter) returns for these hosts.
      type: dict
"""


def _check_labels(labels: t.Any, where: str) -> dict[str, str | None]:
    if not isinstance(labels, Mapping):
        raise AnsibleFilterError(f"{where} must be a dict of label keys to values, got {type(labels).__name__}")
    try:
        # YAML types values; one rule (docs/values.md) turns them into strings or refuses them
        checked = {
            str(key): kube_string(value, f"the value of label {key!r} in {where}", NULL_KEPT) for key, value in labels.items()
        }
        for key, value in checked.items():
            validate_label(key, value or "", f"in {where}")
    except KubeGPUError as exc:
        raise AnsibleFilterError(exc.msg) from exc
    return checked


def gpu_labels_plan(
    hosts: t.Any,
    hostvars: t.Any,
    default_stack: t.Any = "vgpu_scheduler",
    deprecated_cuda_labels: bool = False,
    extra_labels: t.Any = None,
) -> dict[str, t.Any]:
    stacks = device_stack_nodes(hosts, hostvars, default=default_stack)
    extra = _check_labels(extra_labels or {}, "extra_labels (role gpu_labels: gpu_labels_extra_labels)")
    without_facts = [host for host in hosts if not isinstance(((hostvars[host].get("ansible_facts") or {}).get("gpu")), Mapping)]
    if without_facts:
        raise AnsibleFilterError(
            f"no ansible_facts.gpu for {', '.join(without_facts)}: run kubegpu.core.gpu_facts on them first "
            f"(playbooks/facts.yml) in the same ansible-playbook run or with a fact cache"
        )
    nodes, gpu_nodes, held_back, unhealthy_nodes = [], [], [], []
    host_of: dict[str, str] = {}
    for host in hosts:
        variables = hostvars[host]
        node = str(variables.get("kubegpu_node_name") or host)
        if node in host_of:
            raise AnsibleFilterError(
                f"hosts {host_of[node]} and {host} are both node {node} (kubegpu_node_name): one host per node"
            )
        host_of[node] = str(host)
        facts = variables["ansible_facts"]["gpu"]
        runtime = variables.get("kubegpu_default_runtime")
        reason = gpu_node_hold_reason(facts, runtime)
        if reason:
            held_back.append({"node": node, "host": str(host), "reason": reason})
        if not facts["present"]:
            nodes.append({"name": node, "labels": {"gpu": None}})
            continue
        labels = gpu_node_labels(facts, default_runtime=runtime, deprecated_cuda_labels=deprecated_cuda_labels)
        labels.update(stacks["labels"][node])
        labels.update(extra)
        labels.update(_check_labels(variables.get("gpu_labels_host_labels") or {}, f"gpu_labels_host_labels of host {host}"))
        nodes.append({"name": node, "labels": labels})
        gpu_nodes.append(node)
        if unhealthy_gpus(facts):
            unhealthy_nodes.append(node)
    return {
        "nodes": nodes,
        "gpu_nodes": sorted(set(gpu_nodes)),
        "unhealthy_nodes": sorted(unhealthy_nodes),
        "held_back": held_back,
        "device_stacks": stacks,
    }


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"gpu_labels_plan": gpu_labels_plan}
