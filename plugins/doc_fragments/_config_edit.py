# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the modules that edit an engine's configuration file in place. Private to the collection.

Their spec is ``CONFIG_EDIT_ARG_SPEC`` in module_utils/_files.py."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  backup:
    description: Keep a timestamped copy of the old file next to it when the file changes.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for another run of C(kubegpu.core.containerd_runtime) or C(kubegpu.core.docker_runtime) that is
        editing a file in the same directory (two playbooks, overlapping AWX jobs). The read, the change and the write
        happen under an advisory lock (C(flock)) on the file's directory, so concurrent runs each keep their change.
        When the wait runs out the module fails naming the file, and changes nothing.
      - Check mode takes no lock and never waits.
    type: float
    default: 60
"""
