"""One device stack per node: the plan of filter device_stack_nodes (module_utils/_device_stack.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.kubegpu.core.plugins.filter.device_stack_nodes import FilterModule, device_stack_nodes
from ansible_collections.kubegpu.core.plugins.module_utils._device_stack import (
    OPERATOR_OPERANDS_LABEL,
    STACK_LABEL,
    STACKS,
    aws_problem,
)


def gpu(*compute: tuple[int | None, int | None], name: str = "Tesla V100-SXM2-16GB") -> dict:
    """The keys of ansible_facts.gpu the plan reads (the AWS check), one device per compute capability."""
    devices = [
        {"index": index, "name": name, "compute_major": major, "compute_minor": minor}
        for index, (major, minor) in enumerate(compute)
    ]
    return {"present": True, "driver_loaded": True, "devices": devices}


def test_per_node_choices_default_and_node_names():
    hostvars = {
        "node1": {"kubegpu_node_name": "gpu-node-1"},
        "node2": {"kubegpu_node_name": "gpu-node-2", "kubegpu_device_plugin": "nvidia_device_plugin"},
        "node3": {"kubegpu_device_plugin": "aws_vgpu_plugin", "ansible_facts": {"gpu": gpu((7, 0), (8, 0))}},
        "node4": {"kubegpu_device_plugin": "none"},
    }
    plan = device_stack_nodes(["node1", "node2", "node3", "node4"], hostvars)
    assert plan["stacks"] == {
        "vgpu_scheduler": ["gpu-node-1"],
        "nvidia_device_plugin": ["gpu-node-2"],
        "gpu_operator": [],
        "aws_vgpu_plugin": ["node3"],
        "dra_driver": [],
        "none": ["node4"],
    }
    assert plan["hosts"]["vgpu_scheduler"] == ["node1"]
    assert plan["used"] == ["aws_vgpu_plugin", "nvidia_device_plugin", "vgpu_scheduler"]
    assert plan["label"] == STACK_LABEL
    assert plan["node_selector"]["vgpu_scheduler"] == {"gpu": "on", STACK_LABEL: "vgpu_scheduler"}
    assert plan["node_selector"]["aws_vgpu_plugin"] == {"k8s.amazonaws.com/accelerator": "vgpu", STACK_LABEL: "aws_vgpu_plugin"}
    assert plan["labels"]["node3"] == {STACK_LABEL: "aws_vgpu_plugin", "k8s.amazonaws.com/accelerator": "vgpu"}
    assert plan["labels"]["gpu-node-1"] == {STACK_LABEL: "vgpu_scheduler"}  # no operator: its switch untouched


def test_operator_nodes_lose_the_operands_switch_and_the_others_get_it_off():
    hostvars = {"a": {"kubegpu_device_plugin": "gpu_operator"}, "b": {}}
    plan = device_stack_nodes(["a", "b"], hostvars, default="nvidia_device_plugin")
    assert plan["labels"]["a"] == {STACK_LABEL: "gpu_operator", OPERATOR_OPERANDS_LABEL: None}
    assert plan["labels"]["b"] == {STACK_LABEL: "nvidia_device_plugin", OPERATOR_OPERANDS_LABEL: "false"}


def test_dra_driver_nodes_select_on_the_label_its_kubelet_plugin_requires_and_the_stack():
    """The DRA driver chart's kubelet plugin requires one of NFD's PCI labels or nvidia.com/gpu.present=true
    (dra-driver-nvidia-gpu 0.4.1 values.yaml, kubeletPlugin.affinity); the stack label keeps it off the device
    plugin's nodes, which carry the same nvidia.com/gpu.present=true."""
    hostvars = {"a": {"kubegpu_device_plugin": "dra_driver"}, "b": {"kubegpu_device_plugin": "nvidia_device_plugin"}}
    plan = device_stack_nodes(["a", "b"], hostvars)
    assert plan["stacks"]["dra_driver"] == ["a"] and plan["hosts"]["dra_driver"] == ["a"]
    assert plan["used"] == ["dra_driver", "nvidia_device_plugin"]
    assert plan["node_selector"]["dra_driver"] == {"nvidia.com/gpu.present": "true", STACK_LABEL: "dra_driver"}
    assert plan["labels"] == {"a": {STACK_LABEL: "dra_driver"}, "b": {STACK_LABEL: "nvidia_device_plugin"}}


def test_no_hosts_give_an_empty_plan():
    plan = device_stack_nodes([], {})
    assert plan["used"] == [] and all(nodes == [] for nodes in plan["stacks"].values())


@pytest.mark.parametrize(
    ("hostvars", "default", "message"),
    [
        (
            {"a": {"kubegpu_device_plugin": "hami"}},
            "vgpu_scheduler",
            "kubegpu_device_plugin of host a is 'hami', which is not a device stack; "
            "valid: vgpu_scheduler, nvidia_device_plugin, gpu_operator, aws_vgpu_plugin, dra_driver, none",
        ),
        ({"a": {}}, "nvidia", "kubegpu_device_plugin (the cluster default) is 'nvidia', which is not a device stack"),
        ({"a": {"kubegpu_device_plugin": ["vgpu_scheduler", "aws_vgpu_plugin"]}}, "vgpu_scheduler", "one device stack per node"),
        (
            {
                "a": {"kubegpu_device_plugin": None, "kubegpu_node_name": "n"},
                "b": {"kubegpu_node_name": "n", "kubegpu_device_plugin": "none"},
            },
            "vgpu_scheduler",
            "hosts a and b are both node n but choose vgpu_scheduler and none",
        ),
        (
            {
                "a": {"kubegpu_device_plugin": "dra_driver", "kubegpu_node_name": "n"},
                "b": {"kubegpu_node_name": "n", "kubegpu_device_plugin": "nvidia_device_plugin"},
            },
            "none",
            "hosts a and b are both node n but choose dra_driver and nvidia_device_plugin: one device stack per node",
        ),
        (
            {
                "a": {
                    "kubegpu_device_plugin": "aws_vgpu_plugin",
                    "ansible_facts": {"gpu": gpu((6, 1), name="NVIDIA GeForce GTX 1080 Ti")},
                }
            },
            "none",
            "node a (host a): GPU 0 NVIDIA GeForce GTX 1080 Ti: compute capability 6.1",
        ),
        (
            {"a": {"kubegpu_device_plugin": "aws_vgpu_plugin"}},
            "none",
            "node a (host a): no ansible_facts.gpu (run kubegpu.core.gpu_facts on it first)",
        ),
    ],
)
def test_bad_choices_are_refused_naming_host_and_value(hostvars, default, message):
    with pytest.raises(AnsibleFilterError) as raised:
        device_stack_nodes(list(hostvars), hostvars, default=default)
    assert message in str(raised.value)


def test_every_bad_host_is_named_at_once():
    hostvars = {"a": {"kubegpu_device_plugin": "x"}, "b": {"kubegpu_device_plugin": "y"}}
    with pytest.raises(AnsibleFilterError, match=r"host a is 'x'.*host b is 'y'"):
        device_stack_nodes(["a", "b"], hostvars)


@pytest.mark.parametrize(
    ("facts", "problem"),
    [
        (gpu((7, 0)), None),
        (gpu((9, 0), (8, 9)), None),
        (gpu((7, 5), (6, 0), name="Tesla P100-PCIE-16GB"), "GPU 1 Tesla P100-PCIE-16GB: compute capability 6.0"),
        (gpu((None, None), name=None), "GPU 0 of unknown model: compute capability unknown (driver not loaded?)"),
        ({"present": True, "driver_loaded": False, "devices": []}, "no GPU listed by the driver (driver not loaded?)"),
        ({"present": False, "devices": []}, "no NVIDIA GPU in its facts"),
        (None, "no ansible_facts.gpu (run kubegpu.core.gpu_facts on it first)"),
    ],
)
def test_aws_plugin_needs_volta_or_newer(facts, problem):
    assert aws_problem(facts) == problem


def test_input_that_is_not_a_host_list_is_refused():
    with pytest.raises(AnsibleFilterError, match="expects a list of inventory hosts"):
        device_stack_nodes("node1", {})
    with pytest.raises(AnsibleFilterError, match="expects hostvars"):
        device_stack_nodes(["node1"], None)


def test_filter_module_exports_the_filter():
    assert FilterModule().filters() == {"device_stack_nodes": device_stack_nodes}


def _selects(stack: str, plan: dict, labels: dict[str, str]) -> bool:
    """Whether ``stack``'s DaemonSets would run on a node with ``labels``: the chart's node selector, and for the
    GPU Operator its own switch (it deploys wherever gpu.present is true unless operands=false)."""
    if stack == "gpu_operator":
        return labels.get("nvidia.com/gpu.present") == "true" and labels.get(OPERATOR_OPERANDS_LABEL) != "false"
    return all(labels.get(key) == value for key, value in plan["node_selector"][stack].items())


@pytest.mark.property
@given(
    choices=st.lists(st.sampled_from(STACKS), min_size=1, max_size=12),
    leftover_aws=st.lists(st.booleans(), min_size=12, max_size=12),
    default=st.sampled_from(STACKS),
)
def test_no_two_deployed_stacks_select_the_same_node(choices, leftover_aws, default):
    """Whatever each node chooses (or inherits), after gpu_labels applies the plan's labels on top of what the node
    carried (gpu=on, gpu.present=true, maybe a leftover AWS label from an earlier choice), each node is selected
    by at most one deployed stack, and that is its own."""
    hostvars = {f"n{index}": ({"kubegpu_device_plugin": choice} if index % 3 else {}) for index, choice in enumerate(choices)}
    for variables in hostvars.values():
        if variables.get("kubegpu_device_plugin") == "aws_vgpu_plugin" or (not variables and default == "aws_vgpu_plugin"):
            variables["ansible_facts"] = {"gpu": gpu((8, 0))}
    plan = device_stack_nodes(list(hostvars), hostvars, default=default)
    for index, node in enumerate(hostvars):
        labels = {"gpu": "on", "nvidia.com/gpu.present": "true"}
        if leftover_aws[index]:
            labels["k8s.amazonaws.com/accelerator"] = "vgpu"
        labels.update({key: value for key, value in plan["labels"][node].items() if value is not None})
        for key, value in plan["labels"][node].items():
            if value is None:
                labels.pop(key, None)
        selecting = [stack for stack in plan["used"] if _selects(stack, plan, labels)]
        assert selecting in ([], [plan["nodes"][node]]), (node, plan["nodes"][node], selecting)
        if plan["nodes"][node] != "none":
            assert selecting == [plan["nodes"][node]]
