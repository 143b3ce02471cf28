"""MIG layouts (plugins/module_utils/_mig.py): NVIDIA's named layouts, validation, matching, packing.

Vendor facts used as expected values:
- the named layouts: NVIDIA mig-parted's default configuration (tests/support/mig_parted.py);
- what fits: the MIG user guide, "Supported MIG Profiles"
  (https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html): A100-SXM4-40GB's profiles,
  their instance counts and the placements `nvidia-smi mig -lgipp` lists; a GPU has 7 compute and 8 memory slices.
"""

from __future__ import annotations

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._mig import (
    NVIDIA_CONFIGS,
    Desired,
    Profile,
    desired_for,
    pack,
    validate,
)
from tests.support.mig_parted import MIG_PARTED_DEFAULT

# A100-SXM4-40GB: name -> (profile id, compute slices, instances, placement starts, memory slices)
A100_40GB = {
    name: Profile(name, *values)
    for name, values in {
        "1g.5gb": (19, 1, 7, (0, 1, 2, 3, 4, 5, 6), 1),
        "1g.5gb+me": (20, 1, 1, (0, 1, 2, 3, 4, 5, 6), 1),
        "1g.10gb": (15, 1, 4, (0, 2, 4, 6), 2),
        "2g.10gb": (14, 2, 3, (0, 2, 4), 2),
        "3g.20gb": (9, 3, 2, (0, 4), 4),
        "4g.20gb": (5, 4, 1, (0,), 4),
        "7g.40gb": (0, 7, 1, (0,), 8),
    }.items()
}


@pytest.mark.parametrize("name", sorted(MIG_PARTED_DEFAULT["mig-configs"]))
def test_named_layouts_are_mig_parteds(name):
    expected = validate(MIG_PARTED_DEFAULT, "mig-parted")[name]
    ours = [{**entry, "mig-devices": entry.get("mig-devices", {})} for entry in NVIDIA_CONFIGS[name]]
    assert ours == [{**entry, "mig-devices": entry.get("mig-devices", {})} for entry in expected]


def test_every_named_layout_is_valid():
    assert validate({"version": "v1", "mig-configs": NVIDIA_CONFIGS}, "NVIDIA_CONFIGS") == NVIDIA_CONFIGS


@pytest.mark.parametrize(
    ("wanted", "occupied", "fits"),
    [
        (["1g.5gb"] * 7, [], True),
        (["1g.5gb"] * 8, [], False),  # seven at most
        (["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"], [], True),  # all-balanced
        (["3g.20gb", "3g.20gb", "1g.5gb"], [], False),  # two 3g take all 8 memory slices
        (["4g.20gb", "3g.20gb"], [], True),
        (["2g.10gb"] * 3 + ["1g.5gb"], [], True),
        (["1g.10gb"] * 4 + ["1g.5gb"], [], False),  # four 1g.10gb take all 8 memory slices
        (["2g.10gb", "1g.5gb", "1g.5gb"], [("3g.20gb", 4)], True),  # beside a kept 3g at slice 4
        (["2g.10gb", "1g.5gb", "1g.5gb"], [("3g.20gb", 0)], False),  # not beside one at slice 0: 1g cannot start at 7
        (["1g.5gb+me", "1g.5gb+me"], [], False),  # one +me at most
        (["7g.40gb"], [("1g.5gb", 3)], False),
    ],
)
def test_pack_follows_the_placements_and_counts_of_the_guide(wanted, occupied, fits):
    placed = pack(A100_40GB, wanted, occupied)
    assert (placed is not None) == fits
    if placed:
        assert sorted(name for name, _start in placed) == sorted(wanted)
        mask = 0
        for name, start in [*occupied, *placed]:
            profile = A100_40GB[name]
            assert start in profile.starts
            bits = ((1 << profile.size) - 1) << start
            assert not mask & bits
            mask |= bits


def test_the_first_matching_entry_gives_a_gpus_layout():
    entries = NVIDIA_CONFIGS["all-balanced"]
    assert desired_for(entries, 0, "0x20b010de") == Desired(True, {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1})
    assert desired_for(entries, 3, "0x233010DE") == Desired(True, {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1})
    assert desired_for(entries, 0, "0x1EB810DE") is None  # a T4: no entry matches, left alone
    indexed = [{"devices": [1], "mig-enabled": True, "mig-devices": {"7g.80gb": 1}}, {"devices": "all", "mig-enabled": False}]
    assert desired_for(indexed, 1, None) == Desired(True, {"7g.80gb": 1})
    assert desired_for(indexed, 0, None) == Desired(False, {})


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        ([], "must be a mapping with version and mig-configs"),
        ({"version": "v2", "mig-configs": {"a": []}}, "version='v2' is not valid"),
        ({"version": "v1", "mig-configs": {}}, "mig-configs must be a non-empty mapping"),
        ({"version": "v1", "mig-configs": {"a": []}}, "mig-configs.a must be a non-empty list"),
        ({"version": "v1", "mig-configs": {"a": [{"devices": "some", "mig-enabled": True}]}}, "devices='some' is not valid"),
        ({"version": "v1", "mig-configs": {"a": [{"devices": "all", "mig-enabled": "yes"}]}}, "mig-enabled='yes' is not valid"),
        ({"version": "v1", "mig-configs": {"a": [{"devices": "all", "mig-enabled": True, "gpus": 1}]}}, "unknown key(s) gpus"),
        (
            {"version": "v1", "mig-configs": {"a": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": -1}}]}},
            "mig-devices.1g.5gb=-1 is not valid",
        ),
        (
            {"version": "v1", "mig-configs": {"a": [{"devices": "all", "mig-enabled": False, "mig-devices": {"1g.5gb": 1}}]}},
            "mig-devices given with mig-enabled: false",
        ),
        (
            {"version": "v1", "mig-configs": {"a": [{"devices": "all", "mig-enabled": True, "device-filter": 5}]}},
            "device-filter=5",
        ),
    ],
)
def test_invalid_layouts_are_refused_naming_the_value(configs, message):
    with pytest.raises(KubeGPUError) as error:
        validate(configs, "configs")
    assert message in error.value.msg
