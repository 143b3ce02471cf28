# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attributes every kubegpu.core module declares. Private to the collection.

Each module extends a fragment and sets C(support) per attribute."""

from __future__ import annotations


class ModuleDocFragment:
    # For modules that change state.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: In check mode the module computes what it would change and reports it, changing nothing.
  diff_mode:
    description: In diff mode the module returns what it changes (or would change in check mode) as before and after.
  idempotent:
    description: A second run with the same arguments reports no change.
"""

    # For modules that only read and return facts.
    FACTS = r"""
options: {}
attributes:
  facts:
    description: Returns its findings under C(ansible_facts).
"""
