"""Pure parts of the shared Kubernetes connection (module_utils/_kube.py): the ExecCredential expiration time as
client-go reads it (RFC 3339) and api_timeout's rule."""

from __future__ import annotations

import calendar

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._kube import _rfc3339, check_api_timeout

NOON = calendar.timegm((2026, 1, 2, 12, 0, 0))


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-01-02T12:00:00Z", NOON),
        ("2026-01-02T12:00:00.5Z", NOON + 0.5),  # one fraction digit: Python 3.9's fromisoformat refuses it as is
        ("2026-01-02T12:00:00.123456789Z", NOON + 0.123456),  # Go writes nanoseconds
        ("2026-01-02T14:00:00+02:00", NOON),
        ("2026-01-02t12:00:00z", NOON),
        ("", None),
        ("tomorrow", None),
        (None, None),
    ],
)
def test_expiration_timestamp_is_read_as_rfc3339(text, epoch):
    assert _rfc3339(text) == (None if epoch is None else pytest.approx(epoch))


@pytest.mark.parametrize("value", [0, -1, 0.0, float("nan"), float("inf"), "soon"])
def test_api_timeout_must_be_a_positive_number(value):
    with pytest.raises(KubeGPUError, match=r"api_timeout=.* is not valid: give a positive number of seconds"):
        check_api_timeout(value)


@pytest.mark.parametrize(("value", "seconds"), [(None, 60.0), (0.5, 0.5), (60, 60.0), ("30", 30.0)])
def test_api_timeout_given_or_sixty(value, seconds):
    assert check_api_timeout(value) == seconds
