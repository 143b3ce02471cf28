# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which GPU nodes each device stack gets. Private to the collection.

HAMi's device plugin, NVIDIA's device plugin (alone or inside the GPU Operator), the AWS virtual GPU
plugin and NVIDIA's DRA driver each advertise a node's GPUs; two on one node fight over them. Every GPU node therefore carries one
label, ``kubegpu.io/device-stack=<stack>``, and every stack's DaemonSets select on it beside the fixed label
the upstream chart selects on, so no two stacks' node selections can overlap.
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

STACKS = ("vgpu_scheduler", "nvidia_device_plugin", "gpu_operator", "aws_vgpu_plugin", "dra_driver", "none")
STACK_LABEL = "kubegpu.io/device-stack"
AWS_LABEL = "k8s.amazonaws.com/accelerator"
OPERATOR_OPERANDS_LABEL = "nvidia.com/gpu.deploy.operands"

# The label each upstream chart selects its device plugin's nodes by.
CHART_SELECTOR = {
    "vgpu_scheduler": {"gpu": "on"},
    "nvidia_device_plugin": {"nvidia.com/gpu.present": "true"},
    "gpu_operator": {"nvidia.com/gpu.present": "true"},
    "aws_vgpu_plugin": {AWS_LABEL: "vgpu"},
    # The DRA driver chart's kubelet plugin requires one of several node labels, nvidia.com/gpu.present=true among
    # them (its values.yaml, kubeletPlugin.affinity); gpu_labels writes that one.
    "dra_driver": {"nvidia.com/gpu.present": "true"},
}


def check_stack(value: t.Any, where: str) -> str:
    """Return ``value`` when it names a stack; raise KubeGPUError naming it and the valid ones otherwise."""
    valid = ", ".join(STACKS)
    if isinstance(value, (list, tuple, set)):
        raise KubeGPUError(
            f"kubegpu_device_plugin {where} is {list(value)!r}: one device stack per node (their device plugins "
            f"cannot share a node's GPUs); choose one of {valid}, or put the nodes in separate groups"
        )
    if not isinstance(value, str) or value not in STACKS:
        raise KubeGPUError(f"kubegpu_device_plugin {where} is {value!r}, which is not a device stack; valid: {valid}")
    return value


# The AWS plugin's MPS sharing needs Volta or newer.
AWS_MIN_COMPUTE = (7, 0)


def aws_problem(facts: t.Any) -> str | None:
    """Why a node with these gpu facts cannot run the AWS virtual GPU device plugin, or None."""
    if not isinstance(facts, Mapping):
        return "no ansible_facts.gpu (run kubegpu.core.gpu_facts on it first)"
    if not facts.get("present"):
        return "no NVIDIA GPU in its facts"
    old = []
    for device in facts.get("devices") or []:
        major, minor = device.get("compute_major"), device.get("compute_minor")
        label = f"GPU {device.get('index')} {device.get('name') or 'of unknown model'}"
        if major is None:
            old.append(f"{label}: compute capability unknown (driver not loaded?)")
        elif (major, minor or 0) < AWS_MIN_COMPUTE:
            old.append(f"{label}: compute capability {major}.{minor or 0}")
    if not facts.get("devices"):
        old.append("no GPU listed by the driver (driver not loaded?)")
    return "; ".join(old) or None


def node_selector(stack: str) -> dict[str, str]:
    """The labels a DaemonSet of ``stack`` must select on: the chart's own label and the stack label."""
    return {**CHART_SELECTOR[stack], STACK_LABEL: stack}


def device_stack_plan(hosts: t.Iterable[tuple[str, str, t.Any, t.Any]], default: t.Any) -> dict[str, t.Any]:
    """The plan for ``(inventory host, node name, choice or None, gpu facts or None)``; ``default`` for a host
    without a choice.

    Raises KubeGPUError (before anything is changed anywhere) for an unknown stack, a list of stacks for one
    node, two inventory hosts naming the same node with different stacks, or the AWS stack on a node whose GPUs
    are older than Volta (compute capability 7.0) or unknown.
    """
    default = check_stack(default, "(the cluster default)")
    nodes: dict[str, str] = {}
    host_of: dict[str, str] = {}
    stack_hosts: dict[str, list[str]] = {stack: [] for stack in STACKS}
    problems: list[str] = []
    too_old: list[str] = []
    for host, node, choice, facts in hosts:
        try:
            stack = default if choice is None else check_stack(choice, f"of host {host}")
        except KubeGPUError as exc:
            problems.append(exc.msg)
            continue
        if stack == "aws_vgpu_plugin":
            problem = aws_problem(facts)
            if problem:
                too_old.append(f"node {node} (host {host}): {problem}")
        if node in nodes and nodes[node] != stack:
            problems.append(
                f"hosts {host_of[node]} and {host} are both node {node} but choose {nodes[node]} and {stack}: "
                f"one device stack per node"
            )
            continue
        nodes[node] = stack
        host_of[node] = host
        stack_hosts[stack].append(host)
    if too_old:
        problems.append(
            "kubegpu_device_plugin=aws_vgpu_plugin needs GPUs of compute capability 7.0 (Volta) or newer, which these "
            f"nodes lack: {', '.join(too_old)}; choose another device stack for them (nvidia_device_plugin with "
            "time-slicing shares older GPUs)"
        )
    if problems:
        raise KubeGPUError("; ".join(problems))

    stacks: dict[str, list[str]] = {stack: sorted(node for node, chosen in nodes.items() if chosen == stack) for stack in STACKS}
    operator_used = bool(stacks["gpu_operator"])
    labels: dict[str, dict[str, str | None]] = {}
    for node, stack in sorted(nodes.items()):
        node_labels: dict[str, str | None] = {STACK_LABEL: stack}
        if stack == "aws_vgpu_plugin":
            # Elsewhere the AWS label is left alone (EKS may set it to other values); the AWS DaemonSet also
            # selects on the stack label, so a leftover value on a node that left that stack attracts nothing.
            node_labels[AWS_LABEL] = "vgpu"
        if operator_used:
            node_labels[OPERATOR_OPERANDS_LABEL] = None if stack == "gpu_operator" else "false"
        labels[node] = node_labels
    return {
        "stacks": stacks,
        "used": sorted(stack for stack in STACKS if stack != "none" and stacks[stack]),
        "hosts": {stack: sorted(hosts) for stack, hosts in stack_hosts.items()},
        "nodes": dict(sorted(nodes.items())),
        "label": STACK_LABEL,
        "node_selector": {stack: node_selector(stack) for stack in CHART_SELECTOR},
        "labels": labels,
    }
