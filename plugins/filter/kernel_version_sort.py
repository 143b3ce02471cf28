# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import re
import typing as t
from functools import cmp_to_key

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: kernel_version_sort
short_description: Kernel releases (as C(uname -r) prints them) in the order Debian's C(linux-version sort) gives
version_added: 0.1.0
author:
  - kubegpu.core maintainers (@kubegpu)
description:
  - Sorts kernel release strings such as V(6.1.0-28-amd64), V(6.12.12+bpo-amd64), V(5.15.0-1071-aws) or
    V(6.8.0-49-generic) oldest first, by the rule of C(version_cmp) in Debian's C(linux-base) package
    (C(/usr/share/perl5/DebianLinux.pm)), which C(linux-version sort) and C(linux-update-symlinks) use to find the
    newest installed kernel, the one a Debian or Ubuntu node boots next.
  - The rule splits a release into runs of digits and runs of other characters, a hyphen starting a new run;
    digits compare as numbers, other runs as ASCII; the end of a release sorts before anything but a
    pre-release run (C(-rc), C(-trunk)), which sorts before everything. It is not dpkg's package version order
    (C(dpkg --compare-versions)), since a kernel release is not a package version.
options:
  _input:
    description: The kernel releases.
    type: list
    elements: str
    required: true
  reverse:
    description: Newest first.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The newest installed kernel, the one GRUB's default entry boots on Debian
  ansible.builtin.set_fact:
    next_kernel: "{{ ['6.1.0-28-amd64', '6.12.12+bpo-amd64', '6.1.0-9-amd64'] | kubegpu.core.kernel_version_sort | last }}"
  # -> 6.12.12+bpo-amd64
"""

RETURN = r"""
_value:
  description: The releases, oldest first (newest first with O(reverse)).
  type: list
  elements: str
  sample: [6.1.0-9-amd64, 6.1.0-28-amd64, 6.12.12+bpo-amd64]
"""

# DebianLinux.pm: version_split is /(?:\d+|-?[^-\d]*)/g (it also yields empty matches, which never decide a
# comparison: an empty string before a hyphen or a digit run compares as ASCII "" < anything).
_COMPONENT = re.compile(r"\d+|-?[^-\d]*")
_PRE_RELEASE = re.compile(r"-(?:rc|trunk)\Z")


def _split(release: str) -> list[str]:
    return [match.group(0) for match in _COMPONENT.finditer(release)]


def kernel_version_compare(left: str, right: str) -> int:
    """-1, 0 or 1 as DebianLinux::version_cmp returns for ``left`` against ``right``."""
    left_parts, right_parts = _split(left), _split(right)
    index = 0
    while True:
        left_part = left_parts[index] if index < len(left_parts) else None
        right_part = right_parts[index] if index < len(right_parts) else None
        left_pre = left_part is not None and _PRE_RELEASE.match(left_part) is not None
        right_pre = right_part is not None and _PRE_RELEASE.match(right_part) is not None
        if left_pre or right_pre:
            if not right_pre:
                return -1
            if not left_pre:
                return 1
        if left_part is None or right_part is None:
            if right_part is not None:
                return -1
            return 0 if left_part is None else 1
        if left_part[:1].isdigit() and right_part[:1].isdigit():
            if int(left_part) != int(right_part):
                return -1 if int(left_part) < int(right_part) else 1
        elif left_part != right_part:
            # Perl's lt/gt: by code point, as Python's str comparison
            return -1 if left_part < right_part else 1
        index += 1


def kernel_version_sort(releases: t.Any, reverse: bool = False) -> list[str]:
    if isinstance(releases, (str, bytes)) or not isinstance(releases, (list, tuple)):
        raise AnsibleFilterError(f"kernel_version_sort: expected a list of kernel releases, got {releases!r}")
    for release in releases:
        if not isinstance(release, str) or not release or any(character.isspace() for character in release):
            raise AnsibleFilterError(
                f"kernel_version_sort: {release!r} is not a kernel release"
                " (a non-empty string without spaces, such as 6.1.0-28-amd64)"
            )
    # Python's sort is stable, as Perl's sort is for equal keys (the same release twice stays twice)
    ordered = sorted(releases, key=cmp_to_key(kernel_version_compare))
    return ordered[::-1] if reverse else ordered


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"kernel_version_sort": kernel_version_sort}
