# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os.path
import re
import typing as t
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import yaml
from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: nvidia_driver_wanted
short_description: The NVIDIA driver version role kubegpu.core.nvidia_driver installs on a host, when one is pinned or derivable
version_added: 0.1.0
author:
  - kubegpu.core maintainers (@kubegpu)
description:
  - The one rule for the driver version a host wants from role C(kubegpu.core.nvidia_driver) - the version it installs
    and verifies, and the one a loaded driver must have to be left alone. The role takes it from this filter, and so do
    other roles that judge a host's driver before the driver play (C(kubegpu.core.dra_driver)'s early check).
  - C(nvidia_driver_version) when it is set (the pin). Else, with C(nvidia_driver_method=runfile), the version in the
    installer's file name, the basename of C(nvidia_driver_runfile_url) (else of C(nvidia_driver_runfile_src)), as
    NVIDIA names its installers, C(NVIDIA-Linux-<arch>-<version>.run) (for example
    C(NVIDIA-Linux-x86_64-570.195.03.run), C(NVIDIA-Linux-aarch64-570.195.03.run)). Else empty - the package
    method without a pin takes what the package source offers, so no version is known before the driver play.
  - A variable the input does not have takes its value from the role's defaults, read from the collection's
    C(roles/nvidia_driver/defaults/main.yml) (another host's C(hostvars) does not hold a role's defaults), so the
    defaults live in one place.
options:
  _input:
    description:
      - The host's variables, usually C(hostvars[host]) from another role, or a dict of the role's own
        C(nvidia_driver_method), C(nvidia_driver_version), C(nvidia_driver_runfile_url) and
        C(nvidia_driver_runfile_src) inside it.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The driver version each GPU node will have after kubegpu.core.nvidia_driver (empty where none is known)
  ansible.builtin.debug:
    msg: "{{ item }}: {{ hostvars[item] | kubegpu.core.nvidia_driver_wanted or 'what its package source offers' }}"
  loop: "{{ groups['gpu_nodes'] }}"

# Host variables nvidia_driver_method: runfile and
# nvidia_driver_runfile_url: https://us.download.nvidia.com/tesla/570.195.03/NVIDIA-Linux-x86_64-570.195.03.run
# -> 570.195.03
"""

RETURN = r"""
_value:
  description: The wanted driver version, or an empty string when none is pinned or derivable.
  type: str
  sample: 570.195.03
"""

# Where the role's defaults are: this file is plugins/filter/ of the collection.
ROLE_DEFAULTS = Path(__file__).resolve().parents[2] / "roles" / "nvidia_driver" / "defaults" / "main.yml"
ROLE_VARIABLES = ("nvidia_driver_method", "nvidia_driver_version", "nvidia_driver_runfile_url", "nvidia_driver_runfile_src")
# NVIDIA's installer name, NVIDIA-Linux-<arch>-<version>.run (x86_64, aarch64; ppc64le for the old branches).
RUNFILE_NAME = re.compile(r"^NVIDIA-Linux-[a-z0-9_]+-([0-9]+(\.[0-9]+)+)\.run$")


@lru_cache(maxsize=1)
def role_defaults() -> dict[str, t.Any]:
    """The defaults of kubegpu.core.nvidia_driver that the rule reads, from the role's defaults/main.yml."""
    try:
        defaults = yaml.safe_load(ROLE_DEFAULTS.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise AnsibleFilterError(
            f"nvidia_driver_wanted: cannot read the nvidia_driver role's defaults {ROLE_DEFAULTS}: {error}"
        ) from error
    if not isinstance(defaults, dict):
        raise AnsibleFilterError(f"nvidia_driver_wanted: the nvidia_driver role's defaults {ROLE_DEFAULTS} are not a mapping")
    chosen = {}
    for name in ROLE_VARIABLES:
        value = defaults.get(name)
        # a template there would need the role's own context to mean what the role reads; this reads the file as data
        if name not in defaults or (isinstance(value, str) and "{{" in value):
            raise AnsibleFilterError(
                f"nvidia_driver_wanted: {ROLE_DEFAULTS} must set {name} to a plain value (got {value!r});"
                " the filter reads it as data"
            )
        chosen[name] = value
    return chosen


def _text(value: t.Any) -> str:
    # as default('', true) | string: none, empty or false is no value
    return str(value) if value else ""


def nvidia_driver_wanted(host_vars: t.Any) -> str:
    if not isinstance(host_vars, Mapping):
        raise AnsibleFilterError(
            f"nvidia_driver_wanted: expected a host's variables (a dict such as hostvars[inventory_hostname]), got {host_vars!r}"
        )
    defaults = role_defaults()

    def variable(name: str) -> t.Any:
        return host_vars[name] if name in host_vars else defaults[name]

    pinned = _text(variable("nvidia_driver_version"))
    if pinned or variable("nvidia_driver_method") != "runfile":
        return pinned
    installer = os.path.basename(_text(variable("nvidia_driver_runfile_url")) or _text(variable("nvidia_driver_runfile_src")))
    match = RUNFILE_NAME.search(installer)
    return match.group(1) if match else ""


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"nvidia_driver_wanted": nvidia_driver_wanted}
