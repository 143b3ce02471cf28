from __future__ import annotations

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError, one_of


def test_fail_kwargs_carries_message_and_details():
    error = KubeGPUError("node gpu-1: label value 'a b' is invalid", node="gpu-1", rc=3)
    assert error.fail_kwargs() == {"msg": "node gpu-1: label value 'a b' is invalid", "node": "gpu-1", "rc": 3}
    assert str(error) == error.msg


def test_error_is_raisable_and_catchable_as_exception():
    with pytest.raises(KubeGPUError, match="bad value"):
        raise KubeGPUError("bad value")


@pytest.mark.parametrize(
    ("name", "value", "valid", "expected"),
    [
        ("state", "gone", ["present", "absent"], "state='gone' is not valid; expected one of: 'present', 'absent'"),
        ("config_version", 5, (2, 3), "config_version=5 is not valid; expected one of: 2, 3"),
    ],
)
def test_one_of_names_the_value_and_the_choices(name, value, valid, expected):
    assert one_of(name, value, valid) == expected
