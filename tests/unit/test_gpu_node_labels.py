"""The gpu_node_labels filter: facts -> node labels, every value valid."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.filter.gpu_node_labels import (
    FilterModule,
    accelerator_name,
    gpu_family,
    gpu_node_labels,
)
from ansible_collections.kubegpu.core.plugins.module_utils._labels import label_key_problem, label_value_problem

LONG_NAME = "NVIDIA Some Future Accelerator With A Very Long Marketing Name (Engineering Sample) 192GB HBM3e"


def facts(name="Tesla V100-SXM2-16GB", count=2, **device) -> dict:
    base = {
        "name": name,
        "memory_total_mib": 16384,
        "compute_major": 7,
        "compute_minor": 0,
        "architecture": "Volta",
        "mig_capable": False,
    }
    base.update(device)
    return {
        "present": True,
        "driver_loaded": True,
        "source": "nvml",
        "count": count,
        "driver_version": "535.161.08",
        "cuda_driver_version": "12.2",
        "devices": [dict(base, index=index) for index in range(count)],
        "pci_devices": [],
    }


@pytest.mark.parametrize(
    ("name", "accelerator", "product"),
    [
        ("Tesla V100-SXM2-16GB", "nvidia-tesla-v100", "Tesla-V100-SXM2-16GB"),
        ("Tesla T4", "nvidia-tesla-t4", "Tesla-T4"),
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3", "NVIDIA-H100-80GB-HBM3"),
        ("NVIDIA A100-SXM4-40GB", "nvidia-a100", "NVIDIA-A100-SXM4-40GB"),
        ("Tesla P100-PCIE-16GB", "nvidia-tesla-p100", "Tesla-P100-PCIE-16GB"),
        ("NVIDIA H100 PCIe", "nvidia-h100", "NVIDIA-H100-PCIe"),
        ("NVIDIA GeForce GTX 1080 Ti", "nvidia-geforce-gtx-1080-ti", "NVIDIA-GeForce-GTX-1080-Ti"),
        ("NVIDIA L4", "nvidia-l4", "NVIDIA-L4"),
        ("Quadro RTX 6000 (rev a1)", "nvidia-quadro-rtx-6000-rev-a1", "Quadro-RTX-6000-rev-a1"),
        ("GRID A100X/8C", "nvidia-grid-a100x-8c", "GRID-A100X-8C"),
        ("NVIDIA", "nvidia", "NVIDIA"),
        (
            LONG_NAME,
            "nvidia-some-future-accelerator-with-a-very-long-marketing-name",
            "NVIDIA-Some-Future-Accelerator-With-A-Very-Long-Marketing-Name",
        ),
    ],
)
def test_product_names_become_valid_accelerator_and_product_labels(name, accelerator, product):
    labels = gpu_node_labels(facts(name))
    assert labels["accelerator"] == accelerator == accelerator_name(name)
    assert labels["nvidia.com/gpu.product"] == product
    for key, value in labels.items():
        assert label_key_problem(key) is None, key
        assert label_value_problem(value) is None, (key, value)


def test_v100_node_gets_the_gpu_feature_discovery_labels():
    assert gpu_node_labels(facts()) == {
        "gpu": "on",
        "accelerator": "nvidia-tesla-v100",
        "nvidia.com/gpu.product": "Tesla-V100-SXM2-16GB",
        "nvidia.com/gpu.count": "2",
        "nvidia.com/gpu.memory": "16384",
        "nvidia.com/gpu.family": "volta",
        "nvidia.com/gpu.compute.major": "7",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/cuda.driver.major": "535",
        "nvidia.com/cuda.driver.minor": "161",
        "nvidia.com/cuda.driver.rev": "08",
        "nvidia.com/cuda.runtime.major": "12",
        "nvidia.com/cuda.runtime.minor": "2",
        "nvidia.com/mig.capable": "false",
    }


def test_aws_vgpu_label_is_opt_in():
    assert "k8s.amazonaws.com/accelerator" not in gpu_node_labels(facts())
    assert gpu_node_labels(facts(), aws_vgpu=True)["k8s.amazonaws.com/accelerator"] == "vgpu"


def test_accelerator_override_is_used_and_validated():
    assert gpu_node_labels(facts(), accelerator="nvidia-tesla-v100-16gb")["accelerator"] == "nvidia-tesla-v100-16gb"
    with pytest.raises(AnsibleFilterError, match=r"invalid value 'V100 SXM2' for label 'accelerator'"):
        gpu_node_labels(facts(), accelerator="V100 SXM2")


def test_mig_capable_when_any_gpu_is():
    data = facts("NVIDIA A100-SXM4-40GB", count=2, compute_major=8)
    data["devices"][1]["mig_capable"] = True
    assert gpu_node_labels(data)["nvidia.com/mig.capable"] == "true"


def test_unknown_fields_leave_their_labels_out():
    """As from an old driver or the PCI scan: no name, memory, compute capability or versions."""
    data = facts(name=None, memory_total_mib=None, compute_major=None, compute_minor=None, architecture=None, mig_capable=None)
    data.update(driver_version=None, cuda_driver_version=None, count=1, devices=data["devices"][:1])
    assert gpu_node_labels(data) == {"gpu": "on", "nvidia.com/gpu.count": "1"}


def test_driver_version_without_revision_gives_major_and_minor():
    data = facts()
    data["driver_version"] = "550.54"
    labels = gpu_node_labels(data)
    assert (labels["nvidia.com/cuda.driver.major"], labels["nvidia.com/cuda.driver.minor"]) == ("550", "54")
    assert "nvidia.com/cuda.driver.rev" not in labels


def test_unparseable_driver_version_gives_no_driver_labels():
    data = facts()
    data["driver_version"] = "535.beta"
    assert not any(key.startswith("nvidia.com/cuda.driver.") for key in gpu_node_labels(data))


def test_node_without_gpu_gets_no_labels():
    assert gpu_node_labels({"present": False, "devices": [], "count": 0}) == {}


@pytest.mark.parametrize("bad", [None, "gpu", [], {"devices": []}])
def test_input_that_is_not_gpu_facts_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="expects the gpu facts of one node"):
        gpu_node_labels(bad)


@pytest.mark.parametrize(
    ("major", "minor", "architecture", "family"),
    [
        (3, 7, None, "kepler"),
        (5, 2, None, "maxwell"),
        (6, 1, None, "pascal"),
        (7, 0, None, "volta"),
        (7, 2, None, "volta"),
        (7, 5, None, "turing"),
        (8, 0, None, "ampere"),
        (8, 6, None, "ampere"),
        (8, 9, None, "ada-lovelace"),
        (9, 0, None, "hopper"),
        (10, 0, None, "blackwell"),
        (12, 0, None, "blackwell"),
        (None, None, "Hopper", "hopper"),
        (42, 0, "Future Arch", "future-arch"),
        (None, None, None, None),
    ],
)
def test_gpu_family_follows_gpu_feature_discovery(major, minor, architecture, family):
    assert gpu_family(major, minor, architecture) == family


def test_filter_module_exports_the_filter():
    assert FilterModule().filters() == {"gpu_node_labels": gpu_node_labels}
