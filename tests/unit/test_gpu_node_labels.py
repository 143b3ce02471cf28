"""The gpu_node_labels filter: facts -> node labels, every value valid."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.filter.gpu_node_labels import (
    FilterModule,
    accelerator_name,
    gpu_family,
    gpu_node_hold_reason,
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
    ("name", "memory_mib", "accelerator", "product"),
    [
        # GKE's accelerator names
        ("Tesla V100-SXM2-16GB", 16384, "nvidia-tesla-v100", "Tesla-V100-SXM2-16GB"),
        ("Tesla T4", 15360, "nvidia-tesla-t4", "Tesla-T4"),
        ("Tesla K80", 11441, "nvidia-tesla-k80", "Tesla-K80"),
        ("Tesla P4", 7611, "nvidia-tesla-p4", "Tesla-P4"),
        ("Tesla P100-PCIE-16GB", 16280, "nvidia-tesla-p100", "Tesla-P100-PCIE-16GB"),
        ("NVIDIA A100-SXM4-40GB", 40960, "nvidia-tesla-a100", "NVIDIA-A100-SXM4-40GB"),
        ("NVIDIA A100-PCIE-40GB", 40536, "nvidia-tesla-a100", "NVIDIA-A100-PCIE-40GB"),
        ("NVIDIA A100-SXM4-80GB", 81920, "nvidia-a100-80gb", "NVIDIA-A100-SXM4-80GB"),
        ("NVIDIA A100 80GB PCIe", 81920, "nvidia-a100-80gb", "NVIDIA-A100-80GB-PCIe"),
        ("NVIDIA H100 80GB HBM3", 81559, "nvidia-h100-80gb", "NVIDIA-H100-80GB-HBM3"),
        ("NVIDIA H100 PCIe", 81559, "nvidia-h100-80gb", "NVIDIA-H100-PCIe"),
        ("NVIDIA H200", 143771, "nvidia-h200-141gb", "NVIDIA-H200"),
        ("NVIDIA L4", 23034, "nvidia-l4", "NVIDIA-L4"),
        ("NVIDIA B200", 183359, "nvidia-b200", "NVIDIA-B200"),
        (
            "NVIDIA RTX PRO 6000 Blackwell Server Edition",
            97887,
            "nvidia-rtx-pro-6000",
            "NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition",
        ),
        # a size GKE does not name keeps its size; by the name, else by the memory nearest a known size
        ("Tesla V100-SXM2-32GB", 32510, "nvidia-tesla-v100-32gb", "Tesla-V100-SXM2-32GB"),
        ("Tesla V100-PCIE", 32510, "nvidia-tesla-v100-32gb", "Tesla-V100-PCIE"),
        ("Tesla P100-PCIE-12GB", 12193, "nvidia-tesla-p100-12gb", "Tesla-P100-PCIE-12GB"),
        ("NVIDIA A100-SXM4-80GB", None, "nvidia-a100-80gb", "NVIDIA-A100-SXM4-80GB"),
        ("NVIDIA A100-SXM4", None, "nvidia-tesla-a100", "NVIDIA-A100-SXM4"),
        # no GKE name: nvidia-<model>, with the size the product name states
        ("NVIDIA H100 NVL", 95830, "nvidia-h100-nvl", "NVIDIA-H100-NVL"),
        ("NVIDIA GH200 480GB", 97871, "nvidia-gh200-480gb", "NVIDIA-GH200-480GB"),
        ("NVIDIA L40S", 46068, "nvidia-l40s", "NVIDIA-L40S"),
        ("NVIDIA GeForce GTX 1080 Ti", 11264, "nvidia-geforce-gtx-1080-ti", "NVIDIA-GeForce-GTX-1080-Ti"),
        ("Quadro RTX 6000 (rev a1)", 24576, "nvidia-quadro-rtx-6000-rev-a1", "Quadro-RTX-6000-rev-a1"),
        ("GRID A100X/8C", 8192, "nvidia-grid-a100x-8c", "GRID-A100X-8C"),
        ("NVIDIA", None, "nvidia", "NVIDIA"),
        (
            LONG_NAME,
            196608,
            "nvidia-some-future-accelerator-with-a-very-long-marketing-name",
            "NVIDIA-Some-Future-Accelerator-With-A-Very-Long-Marketing-Name",
        ),
    ],
)
def test_product_names_become_gke_style_accelerator_and_product_labels(name, memory_mib, accelerator, product):
    labels = gpu_node_labels(facts(name, memory_total_mib=memory_mib), default_runtime="nvidia")
    assert labels["accelerator"] == accelerator == accelerator_name(name, memory_mib)
    assert labels["nvidia.com/gpu.product"] == product
    for key, value in labels.items():
        assert label_key_problem(key) is None, key
        assert label_value_problem(value) is None, (key, value)


V100_LABELS = {
    "nvidia.com/gpu.present": "true",
    "gpu": "on",
    "accelerator": "nvidia-tesla-v100",
    "nvidia.com/gpu.product": "Tesla-V100-SXM2-16GB",
    "nvidia.com/gpu.count": "2",
    "nvidia.com/gpu.memory": "16384",
    "nvidia.com/gpu.family": "volta",
    "nvidia.com/gpu.compute.major": "7",
    "nvidia.com/gpu.compute.minor": "0",
    "nvidia.com/cuda.driver-version.major": "535",
    "nvidia.com/cuda.driver-version.minor": "161",
    "nvidia.com/cuda.driver-version.revision": "08",
    "nvidia.com/cuda.driver-version.full": "535.161.08",
    "nvidia.com/cuda.runtime-version.major": "12",
    "nvidia.com/cuda.runtime-version.minor": "2",
    "nvidia.com/cuda.runtime-version.full": "12.2",
    "nvidia.com/mig.capable": "false",
}


def test_v100_node_gets_the_current_gpu_feature_discovery_labels():
    assert gpu_node_labels(facts(), default_runtime="nvidia") == V100_LABELS


def test_deprecated_cuda_keys_only_when_asked():
    labels = gpu_node_labels(facts(), default_runtime="nvidia", deprecated_cuda_labels=True)
    assert labels == {
        **V100_LABELS,
        "nvidia.com/cuda.driver.major": "535",
        "nvidia.com/cuda.driver.minor": "161",
        "nvidia.com/cuda.driver.rev": "08",
        "nvidia.com/cuda.runtime.major": "12",
        "nvidia.com/cuda.runtime.minor": "2",
    }


@pytest.mark.parametrize(
    ("driver_loaded", "runtime", "reason"),
    [
        (True, "nvidia", None),
        (False, "nvidia", "the NVIDIA driver is not loaded"),
        (True, "runc", "its default runtime is 'runc', not 'nvidia' (kubegpu_default_runtime)"),
        (True, None, "kubegpu_default_runtime is not set"),
        (True, "", "kubegpu_default_runtime is not set"),
    ],
)
def test_gpu_on_only_with_the_driver_loaded_and_nvidia_the_default_runtime(driver_loaded, runtime, reason):
    data = facts()
    data["driver_loaded"] = driver_loaded
    labels = gpu_node_labels(data, default_runtime=runtime)
    assert labels["gpu"] == (None if reason else "on")
    assert labels["nvidia.com/gpu.present"] == "true"
    held = gpu_node_hold_reason(data, runtime)
    assert (held is None) if reason is None else held.startswith(reason), held


BROKEN_REASON = (
    "reboot or reinstall needed: the nvidia kernel module 535.161.08 is loaded but neither NVML nor nvidia-smi answers "
    "(nvml: nvmlInit failed: RM has detected an NVML/RM version mismatch. (NVML error 18, Driver/library version mismatch))"
)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("ready", None),
        ("broken", f"the NVIDIA driver is broken ({BROKEN_REASON})"),
        ("not_loaded", "the NVIDIA driver is not loaded"),
        ("unknown", "the NVIDIA driver's state is unknown (the module is loaded; sources asks neither)"),
    ],
)
def test_gpu_on_only_with_a_driver_that_answers_a_loaded_but_broken_one_held_back_with_its_reason(state, reason):
    """driver_loaded stays true for a broken driver (the module is loaded); gpu=on follows driver_state."""
    data = dict(facts(), driver_loaded=True, driver_state=state)
    data["driver_state_reason"] = {"broken": BROKEN_REASON, "unknown": "the module is loaded; sources asks neither"}.get(state)
    assert gpu_node_labels(data, default_runtime="nvidia")["gpu"] == (None if reason else "on")
    held = gpu_node_hold_reason(data, "nvidia")
    assert (held is None) if reason is None else held.startswith(reason), held


def test_hold_reason_of_a_node_without_gpu():
    assert gpu_node_hold_reason({"present": False}, "nvidia") == "no NVIDIA GPU in its facts"


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
    assert gpu_node_labels(data, default_runtime="nvidia") == {
        "nvidia.com/gpu.present": "true",
        "gpu": "on",
        "nvidia.com/gpu.count": "1",
    }


def test_driver_version_without_revision_gives_major_and_minor():
    data = facts()
    data["driver_version"] = "550.54"
    labels = gpu_node_labels(data, deprecated_cuda_labels=True)
    assert (labels["nvidia.com/cuda.driver-version.major"], labels["nvidia.com/cuda.driver-version.minor"]) == ("550", "54")
    assert labels["nvidia.com/cuda.driver-version.full"] == "550.54"
    assert "nvidia.com/cuda.driver-version.revision" not in labels and "nvidia.com/cuda.driver.rev" not in labels


def test_unparseable_driver_version_gives_no_driver_labels():
    data = facts()
    data["driver_version"] = "535.beta"
    assert not any(key.startswith("nvidia.com/cuda.driver") for key in gpu_node_labels(data, deprecated_cuda_labels=True))


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
