# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The name rules of a container runtime, shared by the containerd and docker edits.
Private to the collection.

Two rules:

* ``validate_handler``: a name containerd_runtime writes.  A containerd runtime's
  name is what a Kubernetes RuntimeClass names in ``handler``, and the API server
  accepts only a lowercase RFC 1123 DNS label there (``[a-z0-9]([-a-z0-9]*[a-z0-9])?``,
  at most 63 characters); a runtime called ``Nvidia`` or ``my_rt`` could never be
  selected by a pod.
* ``validate_name``: the wider rule (letters of either case, digits, ``.``, ``_``,
  ``-``).  docker_runtime writes with it: dockerd takes such names and a docker
  runtime is never a RuntimeClass handler (cri-dockerd accepts only the handler
  ``docker`` or none).  containerd_runtime uses it for a name it only removes, so a
  runtime someone else wrote under another name can still be taken out.
"""

from __future__ import annotations

import re

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

RUNTIME_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
HANDLER_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def validate_name(name: str) -> str:
    """``name`` when it is a valid runtime name (the wider rule); else KubeGPUError naming it and the rule."""
    if not isinstance(name, str) or not RUNTIME_NAME_RE.fullmatch(name):
        raise KubeGPUError(
            f"name={name!r} is not a valid runtime name; use 1 to 63 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit (for example 'nvidia')"
        )
    return name


def validate_handler(name: str) -> str:
    """``name`` when it can be a RuntimeClass ``handler``; else KubeGPUError naming it and the rule."""
    if not isinstance(name, str) or not HANDLER_RE.fullmatch(name):
        raise KubeGPUError(
            f"name={name!r} is not a valid RuntimeClass handler, which a containerd runtime's name is; use a lowercase "
            "RFC 1123 DNS label: 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit "
            "(for example 'nvidia' or 'kata-qemu')"
        )
    return name
