# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.module_utils._device_stack import device_stack_plan
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

DOCUMENTATION = r"""
name: device_stack_nodes
short_description: Which GPU nodes each device stack (HAMi, NVIDIA device plugin, GPU Operator, AWS plugin, DRA driver) gets
version_added: 0.1.0
author:
  - kubegpu.core maintainers (@kubegpu)
description:
  - HAMi's device plugin, NVIDIA's device plugin (alone or in the GPU Operator), the AWS virtual GPU device
    plugin and NVIDIA's DRA driver each advertise a node's GPUs and cannot share a node. This filter reads each GPU host's choice,
    C(kubegpu_device_plugin) from its host or group variables (else O(default)), checks it, and returns the
    node names of each stack, the label that separates them and the node selector each stack's DaemonSets use.
  - Every GPU node gets the label C(kubegpu.io/device-stack=<stack>) (role C(kubegpu.core.gpu_labels) sets it);
    each stack selects on it beside the label the upstream chart selects on (HAMi C(gpu=on), NVIDIA
    C(nvidia.com/gpu.present=true), also the DRA driver's kubelet plugin, AWS C(k8s.amazonaws.com/accelerator=vgpu)),
    so two stacks never select the same node.
  - When some node chooses C(gpu_operator), the nodes of other stacks get C(nvidia.com/gpu.deploy.operands=false)
    (the operator's own switch to deploy nothing on a node) and the operator's nodes lose it.
  - Fails naming the host, the value and the valid stacks for an unknown stack, a list of stacks for one node, or
    two hosts that are the same node with different stacks; and naming the nodes and their GPUs when a node that
    chose C(aws_vgpu_plugin) has a GPU of compute capability below 7.0 (Volta) or unknown (its
    C(ansible_facts.gpu) from M(kubegpu.core.gpu_facts) is read). A filter fails before any task changes anything.
options:
  _input:
    description: The inventory hosts of the GPU nodes, usually C(groups[kubegpu_gpu_group | default('gpu_nodes')]).
    type: list
    elements: str
    required: true
  hostvars:
    description:
      - C(hostvars). Per host it reads C(kubegpu_device_plugin) (the stack) and C(kubegpu_node_name)
        (the Kubernetes node name, default the inventory hostname), and for the AWS stack C(ansible_facts.gpu).
    type: dict
    required: true
  default:
    description: The stack of a host that does not set C(kubegpu_device_plugin).
    type: str
    default: vgpu_scheduler
    choices: [vgpu_scheduler, nvidia_device_plugin, gpu_operator, aws_vgpu_plugin, dra_driver, none]
seealso:
  - module: kubegpu.core.node_labels
"""

EXAMPLES = r"""
- name: Work out which GPU nodes each device stack gets
  ansible.builtin.set_fact:
    device_stacks: >-
      {{ groups['gpu_nodes'] | kubegpu.core.device_stack_nodes(hostvars,
         default=kubegpu_device_plugin | default('vgpu_scheduler')) }}

- name: Deploy HAMi only onto its own nodes
  kubegpu.core.helm_release:
    name: hami
    chart_ref: hami-charts/hami
    namespace: kube-system
    values:
      devicePlugin:
        nvidiaNodeSelector: "{{ device_stacks.node_selector.vgpu_scheduler }}"
  when: "'vgpu_scheduler' in device_stacks.used"
"""

RETURN = r"""
_value:
  description: The plan; every key always present.
  type: dict
  contains:
    stacks:
      description: Every stack, with the sorted Kubernetes node names that chose it (V([]) for none).
      type: dict
      sample: {vgpu_scheduler: [gpu-node-1, gpu-node-2], nvidia_device_plugin: [], gpu_operator: [],
               aws_vgpu_plugin: [gpu-node-3], dra_driver: [gpu-node-4], none: []}
    used:
      description: The stacks other than V(none) that at least one node chose, sorted.
      type: list
      elements: str
      sample: [aws_vgpu_plugin, dra_driver, vgpu_scheduler]
    hosts:
      description: Every stack, with the sorted inventory hosts that chose it (to read their facts).
      type: dict
      sample: {vgpu_scheduler: [node1, node2], nvidia_device_plugin: [], gpu_operator: [], aws_vgpu_plugin: [node3],
               dra_driver: [node4], none: []}
    nodes:
      description: Node name to its stack.
      type: dict
      sample: {gpu-node-1: vgpu_scheduler, gpu-node-3: aws_vgpu_plugin, gpu-node-4: dra_driver}
    label:
      description: The label key that carries each node's stack.
      type: str
      sample: kubegpu.io/device-stack
    node_selector:
      description: Per stack (not V(none)), the labels its DaemonSets select nodes by.
      type: dict
      sample:
        vgpu_scheduler: {gpu: "on", kubegpu.io/device-stack: vgpu_scheduler}
        aws_vgpu_plugin: {k8s.amazonaws.com/accelerator: vgpu, kubegpu.io/device-stack: aws_vgpu_plugin}
        dra_driver: {nvidia.com/gpu.present: "true", kubegpu.io/device-stack: dra_driver}
    labels:
      description: Per node, the stack labels it must carry (value V(null) removes the label), for M(kubegpu.core.node_labels).
      type: dict
      sample: {gpu-node-3: {kubegpu.io/device-stack: aws_vgpu_plugin, k8s.amazonaws.com/accelerator: vgpu}}
"""


def device_stack_nodes(hosts: t.Any, hostvars: t.Any, default: t.Any = "vgpu_scheduler") -> dict[str, t.Any]:
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, t.Iterable):
        raise AnsibleFilterError(f"device_stack_nodes expects a list of inventory hosts, got {type(hosts).__name__}")
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(f"device_stack_nodes expects hostvars as its first argument, got {type(hostvars).__name__}")
    triples = []
    for host in hosts:
        variables = hostvars.get(host) or {}
        node = variables.get("kubegpu_node_name") or host
        facts = (variables.get("ansible_facts") or {}).get("gpu")
        triples.append((str(host), str(node), variables.get("kubegpu_device_plugin"), facts))
    try:
        return device_stack_plan(triples, default)
    except KubeGPUError as exc:
        raise AnsibleFilterError(exc.msg) from exc


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"device_stack_nodes": device_stack_nodes}
