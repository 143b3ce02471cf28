# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Change and diff tracking shared by the modules. Private to the collection."""

from __future__ import annotations

import typing as t


class DiffTracker:
    """Records ``(name, before, after)`` for every value a module manages.

    One record per managed value; ``changed`` is true when any record differs,
    and ``diff()`` returns Ansible's ``{'before': ..., 'after': ...}`` holding
    only the values that differ, so check mode and a real run report the same.
    """

    def __init__(self) -> None:
        self._records: dict[str, tuple[t.Any, t.Any]] = {}

    def record(self, name: str, before: t.Any, after: t.Any) -> bool:
        """Record one value; a second record of the same name keeps the first
        ``before`` and the latest ``after``.  Returns whether this value changes."""
        if name in self._records:
            before = self._records[name][0]
        self._records[name] = (before, after)
        return before != after

    @property
    def changed(self) -> bool:
        return any(before != after for before, after in self._records.values())

    def changed_names(self) -> list[str]:
        return [name for name, (before, after) in self._records.items() if before != after]

    def diff(self) -> dict[str, dict[str, t.Any]]:
        before = {}
        after = {}
        for name, (old, new) in self._records.items():
            if old != new:
                before[name] = old
                after[name] = new
        return {"before": before, "after": after}


def text_diff(before: str, after: str, path: str) -> dict[str, str]:
    """Ansible's diff of a file's text, shown by ``--diff`` as a unified diff."""
    return {
        "before": before,
        "after": after,
        "before_header": f"{path} (before)",
        "after_header": f"{path} (after)",
    }
