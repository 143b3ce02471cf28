"""The nvidia_driver role names a GPU's architecture from its PCI device id when no driver
describes it yet (``_nvidia_driver_pci_architectures`` in its vars). These tests hold that
table to the architectures NVML reports for the GPUs of the fake NVML scenarios (device ids
and architecture codes as real boards report them) and to a few well-known boards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.kubegpu.core.plugins.module_utils._nvml import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[2]
ROLE_VARS = yaml.safe_load((ROOT / "roles" / "nvidia_driver" / "vars" / "main.yml").read_text())
TABLE = ROLE_VARS["_nvidia_driver_pci_architectures"]
SCENARIOS = sorted((ROOT / "tests" / "support" / "fake_nvml").glob("*.json"))


def architecture_of(device_id: int) -> str | None:
    """What the role's Jinja does: the first range holding the id."""
    return next((row["architecture"] for row in TABLE if row["first"] <= device_id <= row["last"]), None)


def scenario_devices():
    for path in SCENARIOS:
        for device in json.loads(path.read_text()).get("devices", []):
            if "pci_device_id" in device and "architecture" in device:
                yield pytest.param(device, id=f"{path.stem}-{device['name']}")


@pytest.mark.parametrize("device", list(scenario_devices()))
def test_table_agrees_with_nvml_for_the_fake_scenarios(device):
    # NVML's pciDeviceId is the device id in the high 16 bits, the vendor in the low ones
    device_id = int(device["pci_device_id"], 16) >> 16
    assert architecture_of(device_id) == ARCHITECTURES[device["architecture"]]


@pytest.mark.parametrize(
    ("device_id", "architecture"),
    [
        (0x1B06, "Pascal"),  # GTX 1080 Ti
        (0x1DB4, "Volta"),  # V100 PCIe 16GB
        (0x1EB8, "Turing"),  # T4
        (0x2182, "Turing"),  # GTX 1660 Ti (TU116)
        (0x20B2, "Ampere"),  # A100 SXM4 80GB
        (0x2236, "Ampere"),  # A10
        (0x2330, "Hopper"),  # H100 SXM5
        (0x26B5, "Ada"),  # L40
        (0x27B8, "Ada"),  # L4
        (0x2901, "Blackwell"),  # B200
        (0x2B85, "Blackwell"),  # RTX 5090
        (0x1234, None),  # older than the table
    ],
)
def test_known_boards(device_id, architecture):
    assert architecture_of(device_id) == architecture


def test_ranges_are_sorted_and_disjoint():
    """First match is then the only match: the table's order cannot hide a range."""
    bounds = [(row["first"], row["last"]) for row in TABLE]
    assert all(first <= last for first, last in bounds)
    assert all(previous[1] < current[0] for previous, current in zip(bounds, bounds[1:]))


def test_every_architecture_is_one_nvml_names():
    assert {row["architecture"] for row in TABLE} <= set(ARCHITECTURES.values())
    assert set(ROLE_VARS["_nvidia_driver_open_capable"]) <= set(ARCHITECTURES.values())
