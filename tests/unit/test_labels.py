"""Label key/value validation and normalisation (module_utils/_labels.py)."""

from __future__ import annotations

import datetime
from collections import UserDict, UserList

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.filter.kube_string import FilterModule
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._labels import (
    kube_string,
    kube_string_map,
    label_key_problem,
    label_value_problem,
    to_label_value,
    validate_label,
)


@pytest.mark.parametrize("value", ["", "on", "a", "Tesla-V100-SXM2-16GB", "1.2_3-x", "a" * 63, "0"])
def test_valid_label_values(value):
    assert label_value_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a" * 64, "at most 63 characters; this one has 64"),
        ("-on", "begins and ends with a letter or digit"),
        ("on.", "begins and ends with a letter or digit"),
        ("has space", "holds only letters"),
        ("a/b", "holds only letters"),
        ("naïve", "holds only letters"),
        (3, "must be a string, not int"),
        (None, "must be a string, not NoneType"),
    ],
)
def test_invalid_label_values_say_why(value, problem):
    assert problem in label_value_problem(value)


@pytest.mark.parametrize(
    "key",
    ["gpu", "accelerator", "nvidia.com/gpu.product", "k8s.amazonaws.com/accelerator", "a-b.c/x_y", "x" * 63],
)
def test_valid_label_keys(key):
    assert label_key_problem(key) is None


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "may not be empty"),
        ("nvidia.com/", "may not be empty"),
        ("/gpu", "prefix before '/' is empty"),
        ("NVIDIA.com/gpu", "is not a DNS subdomain"),
        ("nvidia..com/gpu", "is not a DNS subdomain"),
        ("-nvidia.com/gpu", "is not a DNS subdomain"),
        (("a" * 60 + ".") * 5 + "com/gpu", "at most 253 characters"),
        ("x" * 64, "at most 63 characters"),
        ("nvidia.com/gpu product", "holds only letters"),
        ("nvidia.com/.gpu", "holds only letters"),
        (7, "must be a string"),
    ],
)
def test_invalid_label_keys_say_why(key, problem):
    assert problem in label_key_problem(key)


def test_validate_label_names_key_value_and_place():
    with pytest.raises(KubeGPUError, match=r"invalid value 'a b' for label 'gpu' on node1: a label value holds only"):
        validate_label("gpu", "a b", "on node1")
    with pytest.raises(KubeGPUError, match=r"invalid label key 'Bad Key'"):
        validate_label("Bad Key", "on")
    validate_label("nvidia.com/gpu.count", "8")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("NVIDIA GeForce GTX 1080 Ti", "NVIDIA-GeForce-GTX-1080-Ti"),
        ("Tesla V100-SXM2-16GB", "Tesla-V100-SXM2-16GB"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB"),
        ("Quadro RTX 6000 (rev a1)", "Quadro-RTX-6000-rev-a1"),
        ("GRID A100X/8C", "GRID-A100X-8C"),
        ("  (leading) and trailing!! ", "leading-and-trailing"),
        ("---", ""),
        ("", ""),
        (535, "535"),
        ("x" * 62 + " y", "x" * 62),
        ("A" * 70, "A" * 63),
    ],
)
def test_to_label_value_gives_a_valid_value(text, value):
    assert to_label_value(text) == value
    assert label_value_problem(value) is None


# kube_string: the one rule of docs/values.md. Expected strings: what kubectl and Kubernetes write for the text
# (`kubectl label node n k=true` stores "true"); YAML 1.1 types as Ansible's loader does (yes -> True, 017 -> 15).
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.10", "12.10"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (15, "15"),
        (2**70, "1180591620717411303424"),
        (-3, "-3"),
    ],
)
def test_kube_string_keeps_strings_and_writes_bools_and_ints_without_loss(value, expected):
    assert kube_string(value, "x") == expected
    assert type(kube_string(value, "x")) is str  # a str subclass would not do; pylint: disable=unidiomatic-typecheck


@pytest.mark.parametrize("value", [12.1, 550.9, 0.0, 1e3, float("nan"), float("inf")])
def test_kube_string_refuses_a_float_naming_the_variable_and_saying_to_quote_it(value):
    with pytest.raises(KubeGPUError) as raised:
        kube_string(value, "kubegpu_gpu_taint.value")
    assert raised.value.msg.startswith(f"kubegpu_gpu_taint.value is the number {value!r}")
    assert "Quote it" in raised.value.msg


def test_kube_string_null_is_refused_empty_or_kept_as_asked_and_containers_are_refused():
    with pytest.raises(KubeGPUError, match=r"^sel is null"):
        kube_string(None, "sel")
    assert kube_string(None, "taint", "empty") == ""
    assert kube_string(None, "label", "keep") is None
    with pytest.raises(KubeGPUError, match=r"^x must be a string, not a list"):
        kube_string(["a"], "x")
    assert kube_string_map({"a": True, "b": 7, "c": "on"}, "m") == {"a": "true", "b": "7", "c": "on"}
    with pytest.raises(KubeGPUError, match=r"m\['gpu'\] is the number 1.5"):
        kube_string_map({"gpu": 1.5}, "m")
    with pytest.raises(KubeGPUError, match=r"m has the key True, a bool \(YAML typed the unquoted key\); quote it"):
        kube_string_map({True: "x"}, "m")


def test_kube_string_filter_raises_the_filter_error_with_the_same_message():
    kube_string_filter = FilterModule().filters()["kube_string"]
    assert kube_string_filter(True, "v") == "true"
    assert kube_string_filter({"k": 1}, "v") == {"k": "1"}
    with pytest.raises(AnsibleFilterError, match=r"^v is the number 12.1"):
        kube_string_filter(12.1, "v")
    with pytest.raises(AnsibleFilterError, match="on_null='nothing'"):
        kube_string_filter("a", "v", on_null="nothing")


def test_kube_string_refuses_a_date_naming_it_and_says_what_a_container_is_in_yaml_words():
    """YAML 1.1 reads an unquoted 2024-5-1 as the date 2024-05-01: the text is gone, as with a float. Ansible's lazy
    containers are called a list or a dictionary, not by their class names."""
    with pytest.raises(KubeGPUError, match=r'^d is the date 2024-05-01, .* \(for example "2024-05-01"\)$'):
        kube_string(datetime.date(2024, 5, 1), "d")
    with pytest.raises(KubeGPUError, match=r"^l must be a string, not a list \(\[1\]\)"):
        kube_string(UserList([1]), "l")
    with pytest.raises(KubeGPUError, match=r"^m must be a string, not a dictionary \(\{'a': 1\}\)"):
        kube_string(UserDict({"a": 1}), "m")
