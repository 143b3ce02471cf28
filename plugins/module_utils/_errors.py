# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's error type. Private to the collection: not a public API."""

from __future__ import annotations

import typing as t


class KubeGPUError(Exception):
    """A failure a module reports to the user.

    Raise it anywhere below ``main()``; ``main()`` alone turns it into
    ``fail_json`` with ``fail_kwargs()``.  ``msg`` names the host or node, the bad
    value and what would be valid; ``details`` are extra result keys (for
    example ``stderr`` of a failed command or ``line`` of a broken file).
    """

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def fail_kwargs(self) -> dict[str, t.Any]:
        """Keyword arguments for ``AnsibleModule.fail_json``."""
        return {**self.details, "msg": self.msg}


def one_of(name: str, value: t.Any, valid: t.Iterable[t.Any]) -> str:
    """A uniform message for a value outside a fixed set of choices."""
    choices = ", ".join(repr(item) for item in valid)
    return f"{name}={value!r} is not valid; expected one of: {choices}"
