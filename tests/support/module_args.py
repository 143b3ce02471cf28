"""``patch_module_args`` on every supported ansible-core.

ansible-core 2.19 and later ship ``ansible.module_utils.testing.patch_module_args``;
2.17 and 2.18 read a module's arguments from ``basic._ANSIBLE_ARGS``, which this
stand-in sets the way their own unit tests did.
"""

from __future__ import annotations

import contextlib
import json
import typing as t

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19

    @contextlib.contextmanager
    def patch_module_args(args: dict[str, t.Any] | None = None) -> t.Iterator[None]:
        payload = {"_ansible_remote_tmp": "/tmp", "_ansible_keep_remote_files": False, **(args or {})}
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


__all__ = ["patch_module_args"]
