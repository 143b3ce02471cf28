"""Pure helpers behind gpu_facts: PCI scan, nvidia-smi parsing, NVML value conversions."""

from __future__ import annotations

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils import _nvidia_smi, _nvml, _pci
from tests.support.fake_sysfs import PciFunction, build


@pytest.mark.parametrize(
    ("bus_id", "normal"),
    [
        ("00000000:3B:00.0", "0000:3b:00.0"),
        ("0000:3b:00.0", "0000:3b:00.0"),
        ("00000001:AF:00.1", "0001:af:00.1"),
        (" 00000000:07:00.0\n", "0000:07:00.0"),
        ("not-a-bus-id", "not-a-bus-id"),
        ("zz:00:00.0", "zz:00:00.0"),
    ],
)
def test_bus_ids_are_normalised_to_the_sysfs_form(bus_id, normal):
    assert _pci.normalize_bus_id(bus_id) == normal


def test_pci_scan_keeps_only_nvidia_display_controllers(tmp_path):
    """A fake sysfs tree: NVIDIA 3D and VGA controllers, the GPU's audio function, other vendors' GPUs."""
    root = build(
        tmp_path,
        [
            PciFunction("0000:86:00.0", device=0x2330, driver="nvidia"),
            PciFunction("0000:01:00.0", device=0x1B06, pci_class=0x030000, driver="vfio-pci"),
            PciFunction("0000:01:00.1", device=0x10EF, pci_class=0x040300, driver="snd_hda_intel"),
            PciFunction("0000:00:02.0", vendor=0x8086, pci_class=0x030000, driver="i915"),
        ],
    )
    assert _pci.scan(str(root)) == [
        {
            "pci_bus_id": "0000:01:00.0",
            "pci_device_id": "0x1b06",
            "pci_class": "0x030000",
            "driver": "vfio-pci",
            "physical_function": None,
        },
        {
            "pci_bus_id": "0000:86:00.0",
            "pci_device_id": "0x2330",
            "pci_class": "0x030200",
            "driver": "nvidia",
            "physical_function": None,
        },
    ]


def test_pci_scan_names_the_physical_function_of_a_virtual_function_and_split_separates_them(tmp_path):
    root = build(
        tmp_path,
        [
            PciFunction("0000:3b:00.0", device=0x20B0, driver="nvidia"),
            PciFunction("0000:3b:00.4", device=0x20B0, physfn="0000:3b:00.0"),
        ],
    )
    functions = _pci.scan(str(root))
    assert [f["physical_function"] for f in functions] == [None, "0000:3b:00.0"]
    physical, virtual = _pci.split_functions(functions)
    assert physical == [{"pci_bus_id": "0000:3b:00.0", "pci_device_id": "0x20b0", "pci_class": "0x030200", "driver": "nvidia"}]
    assert [f["pci_bus_id"] for f in virtual] == ["0000:3b:00.4"]


def test_pci_scan_tells_missing_sysfs_from_no_gpu(tmp_path):
    assert _pci.scan(str(tmp_path / "nothing")) is None
    assert _pci.scan(str(build(tmp_path / "sys", []))) == []


def test_pci_scan_skips_unreadable_entries(tmp_path):
    root = build(tmp_path, [PciFunction("0000:86:00.0")])
    (root / "bus/pci/devices/0000:99:00.0").mkdir()  # no vendor file
    (root / "bus/pci/devices/0000:9a:00.0").mkdir()
    (root / "bus/pci/devices/0000:9a:00.0/vendor").write_text("garbage\n")
    assert [device["pci_bus_id"] for device in _pci.scan(str(root))] == ["0000:86:00.0"]


def test_kernel_module_check(tmp_path):
    assert _pci.kernel_module_loaded(str(build(tmp_path / "a", [], modules=("nvidia",))))
    assert not _pci.kernel_module_loaded(str(build(tmp_path / "b", [], modules=("nouveau",))))


@pytest.mark.parametrize(
    ("major", "minor", "architecture"),
    [
        (3, 5, "Kepler"),
        (5, 0, "Maxwell"),
        (6, 1, "Pascal"),
        (7, 0, "Volta"),
        (7, 2, "Volta"),
        (7, 5, "Turing"),
        (8, 0, "Ampere"),
        (8, 7, "Ampere"),
        (8, 9, "Ada"),
        (9, 0, "Hopper"),
        (10, 0, "Blackwell"),
        (12, 0, "Blackwell"),
        (4, 0, None),
        (None, None, None),
    ],
)
def test_architecture_from_compute_capability(major, minor, architecture):
    assert _nvml.architecture_from_compute_capability(major, minor) == architecture


@pytest.mark.parametrize(
    ("version", "text"), [(12020, "12.2"), (10010, "10.1"), (11080, "11.8"), (12090, "12.9"), (0, None), (None, None)]
)
def test_cuda_version_text(version, text):
    assert _nvml.cuda_version_text(version) == text


SMI_LINE = (
    "0, GPU-1, Tesla V100-SXM2-16GB, 00000000:3B:00.0, 0x1DB110DE, 535.161.08, 7.0, 16384, 16000, 384, "
    "[N/A], [N/A], Default, Enabled, 300.00, 35, 7, 1, 0, 2, No, 0x0000000000000048"
)


def test_nvidia_smi_output_is_parsed_with_not_available_fields_null():
    driver, devices = _nvidia_smi.parse_query_output(SMI_LINE + "\n")
    assert driver == "535.161.08"
    assert devices == [
        {
            "index": 0,
            "uuid": "GPU-1",
            "name": "Tesla V100-SXM2-16GB",
            "brand": None,
            "architecture": "Volta",
            "compute_capability": "7.0",
            "compute_major": 7,
            "compute_minor": 0,
            "memory_total_mib": 16384,
            "memory_free_mib": 16000,
            "memory_used_mib": 384,
            "mig_capable": False,
            "mig_mode_current": None,
            "mig_mode_pending": None,
            "mig_device_count": None,
            "mig_devices": [],
            "compute_mode": "Default",
            "persistence_mode": True,
            "pci_bus_id": "0000:3b:00.0",
            "pci_device_id": "0x1db1",
            "power_limit_watts": 300.0,
            "temperature_c": 35,
            "utilization_gpu_percent": 7,
            "utilization_memory_percent": 1,
            # two past uncorrectable errors; nvmlClocksThrottleReasonHwSlowdown 0x8 | HwThermalSlowdown 0x40 (nvml.h)
            "health": "degraded",
            "health_reasons": [
                "2 uncorrectable ECC error(s) in the GPU's lifetime (aggregate), none since the driver loaded",
                "clocks held down: hardware slowdown",
                "clocks held down: hardware thermal slowdown",
            ],
        }
    ]


def test_nvidia_smi_not_supported_values_and_empty_output():
    line = SMI_LINE.replace(
        "300.00, 35, 7, 1, 0, 2, No, 0x0000000000000048",
        "[Not Supported], [N/A], [Not Supported], [Not Supported], [N/A], [N/A], [N/A], [Not Supported]",
    )
    _driver, (device,) = _nvidia_smi.parse_query_output(line)
    assert (device["power_limit_watts"], device["temperature_c"], device["utilization_gpu_percent"]) == (None, None, None)
    assert (device["health"], device["health_reasons"]) == (None, None)  # nothing to judge by: unknown
    assert _nvidia_smi.parse_query_output("\n") == (None, [])


def test_nvidia_smi_output_with_the_wrong_field_count_is_refused():
    with pytest.raises(ValueError, match=r"expected 22 comma-separated fields, got 2"):
        _nvidia_smi.parse_query_output("0, GPU-1\n")


def test_nvidia_smi_source_says_when_the_command_is_missing(ansible_module):
    with pytest.raises(_nvidia_smi.SmiUnavailable, match=r"^nvidia-smi-not-here was not found on PATH$"):
        _nvidia_smi.gather(ansible_module, "nvidia-smi-not-here")


def test_nvidia_smi_output_without_the_fields_an_old_driver_lacks_leaves_them_null():
    fields = [f for f in _nvidia_smi.QUERY_FIELDS if f not in ("compute_cap", "mig.mode.current", "mig.mode.pending")]
    line = (
        "0, GPU-1, Tesla P100, 00000000:04:00.0, 0x15F810DE, 418.226.00, 16280, 16280, 0, Default, Enabled, 250.00, 34, 0, 0, "
        "1, 1, Yes, 0x0000000000000000"
    )
    _driver, (device,) = _nvidia_smi.parse_query_output(line, fields)
    assert (device["compute_capability"], device["architecture"], device["mig_capable"]) == (None, None, None)
    assert (device["memory_total_mib"], device["power_limit_watts"], device["pci_bus_id"]) == (16280, 250.0, "0000:04:00.0")
    assert device["health"] == "unhealthy"  # an uncorrectable error since the driver loaded, its page pending retirement
