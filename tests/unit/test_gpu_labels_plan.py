"""The gpu_labels_plan filter: every GPU node's labels at once (what role gpu_labels applies)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.kubegpu.core.plugins.filter.gpu_labels_plan import FilterModule, gpu_labels_plan
from ansible_collections.kubegpu.core.plugins.filter.gpu_node_labels import accelerator_name
from ansible_collections.kubegpu.core.plugins.module_utils._labels import label_value_problem


def host(name="Tesla T4", node=None, runtime="nvidia", **variables) -> dict:
    """Host vars with the keys of ansible_facts.gpu the labels read (the integration tests use real facts)."""
    device = {"index": 0, "name": name, "memory_total_mib": 15360, "compute_major": 7, "compute_minor": 5, "mig_capable": False}
    facts = {
        "present": True,
        "driver_loaded": True,
        "count": 1,
        "driver_version": "550.54.15",
        "cuda_driver_version": "12.4",
        "devices": [device],
    }
    result = {"ansible_facts": {"gpu": facts}, "kubegpu_default_runtime": runtime, **variables}
    if node:
        result["kubegpu_node_name"] = node
    return result


def test_extra_and_host_labels_win_and_none_removes():
    hostvars = {
        "a": host(node="gpu-a", gpu_labels_host_labels={"accelerator": "nvidia-h100-mega-80gb", "team.io/x": None}),
        "b": host(runtime="runc"),
    }
    plan = gpu_labels_plan(["a", "b"], hostvars, extra_labels={"team.io/x": "1", "team.io/on": True})
    labels = {entry["name"]: entry["labels"] for entry in plan["nodes"]}
    assert labels["gpu-a"]["accelerator"] == "nvidia-h100-mega-80gb" and labels["gpu-a"]["team.io/x"] is None
    assert labels["b"]["accelerator"] == "nvidia-tesla-t4" and labels["b"]["team.io/x"] == "1"
    assert labels["b"]["team.io/on"] == "true" and labels["b"]["gpu"] is None
    assert plan["held_back"] == [
        {"node": "b", "host": "b", "reason": "its default runtime is 'runc', not 'nvidia' (kubegpu_default_runtime)"}
    ]
    assert plan["gpu_nodes"] == ["b", "gpu-a"]
    assert plan["device_stacks"]["stacks"]["vgpu_scheduler"] == ["b", "gpu-a"]


def test_host_without_gpu_only_loses_gpu_on():
    hostvars = {"cpu": {"ansible_facts": {"gpu": {"present": False, "devices": []}}}}
    plan = gpu_labels_plan(["cpu"], hostvars)
    assert plan["nodes"] == [{"name": "cpu", "labels": {"gpu": None}}]
    assert plan["gpu_nodes"] == [] and plan["held_back"][0]["reason"] == "no NVIDIA GPU in its facts"


@pytest.mark.parametrize(
    ("hostvars", "extra", "message"),
    [
        ({"a": {}}, {}, "no ansible_facts.gpu for a: run kubegpu.core.gpu_facts on them first"),
        ({"a": host(node="n"), "b": host(node="n")}, {}, "hosts a and b are both node n (kubegpu_node_name)"),
        ({"a": host()}, {"Bad Key": "1"}, "invalid label key 'Bad Key' in extra_labels"),
        ({"a": host()}, ["x"], "extra_labels (role gpu_labels: gpu_labels_extra_labels) must be a dict"),
        (
            {"a": host(gpu_labels_host_labels={"x": "a b"})},
            {},
            "invalid value 'a b' for label 'x' in gpu_labels_host_labels of host a",
        ),
        ({"a": host(kubegpu_device_plugin="hami")}, {}, "kubegpu_device_plugin of host a is 'hami'"),
        (
            {"a": host(gpu_labels_host_labels={"example.com/driver": 550.9})},
            {},
            "the value of label 'example.com/driver' in gpu_labels_host_labels of host a is the number 550.9",
        ),
    ],
)
def test_bad_input_is_refused_naming_it(hostvars, extra, message):
    with pytest.raises(AnsibleFilterError) as raised:
        gpu_labels_plan(list(hostvars), hostvars, extra_labels=extra)
    assert message in str(raised.value)


def test_filter_module_exports_the_filter():
    assert FilterModule().filters() == {"gpu_labels_plan": gpu_labels_plan}


@pytest.mark.property
@given(product=st.text(max_size=120), memory=st.one_of(st.none(), st.integers(min_value=-1, max_value=1 << 22)))
def test_any_product_name_gives_a_valid_accelerator_label(product, memory):
    assert label_value_problem(accelerator_name(product, memory)) is None
