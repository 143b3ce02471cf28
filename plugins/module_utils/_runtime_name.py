# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The name rule of a container runtime, shared by the containerd and docker edits.
Private to the collection.

A runtime name is a key in containerd's ``runtimes`` table or docker's
``runtimes`` object and the ``handler`` of a Kubernetes RuntimeClass:
DNS-label-like, with dots and underscores allowed.
"""

from __future__ import annotations

import re

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

RUNTIME_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")


def validate_name(name: str) -> str:
    """``name`` when it is a valid runtime name; else KubeGPUError naming it and the rule."""
    if not isinstance(name, str) or not RUNTIME_NAME_RE.fullmatch(name):
        raise KubeGPUError(
            f"name={name!r} is not a valid runtime name; use 1 to 63 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit (for example 'nvidia')"
        )
    return name
