from __future__ import annotations

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils._diff import DiffTracker, text_diff


def test_empty_tracker_is_unchanged_with_empty_diff():
    tracker = DiffTracker()
    assert tracker.changed is False
    assert tracker.diff() == {"before": {}, "after": {}}


def test_equal_values_do_not_count_as_a_change():
    tracker = DiffTracker()
    assert tracker.record("labels", {"gpu": "on"}, {"gpu": "on"}) is False
    assert tracker.changed is False
    assert tracker.changed_names() == []


def test_diff_holds_only_the_values_that_differ():
    tracker = DiffTracker()
    tracker.record("node-a", {"gpu": "on"}, {"gpu": "on"})
    assert tracker.record("node-b", {}, {"gpu": "on"}) is True
    assert tracker.changed is True
    assert tracker.changed_names() == ["node-b"]
    assert tracker.diff() == {"before": {"node-b": {}}, "after": {"node-b": {"gpu": "on"}}}


def test_second_record_keeps_first_before_and_latest_after():
    tracker = DiffTracker()
    tracker.record("default_runtime", "runc", "nvidia")
    tracker.record("default_runtime", "nvidia", "runc")
    assert tracker.changed is False


@pytest.mark.parametrize(("before", "after"), [(None, "x"), ("x", None), (1, 2), ([], [1])])
def test_any_difference_is_a_change(before, after):
    tracker = DiffTracker()
    tracker.record("value", before, after)
    assert tracker.changed is True


def test_text_diff_names_the_path():
    diff = text_diff("a\n", "b\n", "/etc/containerd/config.toml")
    assert diff == {
        "before": "a\n",
        "after": "b\n",
        "before_header": "/etc/containerd/config.toml (before)",
        "after_header": "/etc/containerd/config.toml (after)",
    }
