# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._labels import NULL_MEANINGS, kube_string_map
from ansible_collections.kubegpu.core.plugins.module_utils._labels import kube_string as _kube_string

DOCUMENTATION = r"""
name: kube_string
short_description: A variable as the string Kubernetes stores, by the collection's one rule for YAML-typed values
version_added: 0.1.0
author:
  - kubegpu.core maintainers (@kubegpu)
description:
  - The rule every module and role of the collection applies where an option or variable becomes a Kubernetes
    string (a label or taint value, a selector or affinity value, a Profile value, a value a chart reads as a
    string); see docs/values.md.
  - A string is kept; a bool becomes V(true) or V(false) (YAML 1.1 reads unquoted V(true), V(yes) and V(on) as
    true); an integer becomes its decimal digits.
  - A float fails, naming O(name) and the value and saying to quote it, because YAML has already turned an unquoted
    V(12.10) into 12.1 and the text meant is lost. V(null) fails unless O(on_null) says what it means. A list or a
    dict fails.
  - A mapping (labels, a node selector) is converted value by value; its keys must be strings.
  - A filter fails while its task is templated, so a role that applies it in its preflight refuses before its
    first write.
options:
  _input:
    description: The value, or a mapping of names to values.
    type: raw
    required: true
  name:
    description: The variable (and key) the value comes from, for the message; without it the message says
      V(the value).
    type: str
    default: the value
  on_null:
    description: What V(null) means here - V(refuse), V(empty) (an empty string, e.g. a taint's optional value)
      or V(keep) (stays V(null), e.g. a label that a null removes).
    type: str
    choices: [refuse, empty, keep]
    default: refuse
seealso:
  - module: kubegpu.core.node_labels
  - module: kubegpu.core.node_taints
"""

EXAMPLES = r"""
- name: Tolerate the GPU taint with its value as the nodes carry it
  ansible.builtin.set_fact:
    taint_value: >-
      {{ kubegpu_gpu_taint.value | default(none) | kubegpu.core.kube_string('kubegpu_gpu_taint.value', on_null='empty') }}
  # value: true -> "true"; value: 12.10 -> fails, "quote it"
"""

RETURN = r"""
_value:
  description: The string (V(null) with O(on_null=keep)), or the mapping of strings.
  type: raw
  sample: "true"
"""


def kube_string(value: t.Any, name: str = "the value", on_null: str = "refuse") -> t.Any:
    if on_null not in NULL_MEANINGS:
        raise AnsibleFilterError(f"kube_string: on_null={on_null!r}; expected one of {', '.join(NULL_MEANINGS)}")
    try:
        if isinstance(value, Mapping):
            return kube_string_map(value, name, on_null)
        return _kube_string(value, name, on_null)
    except KubeGPUError as exc:
        raise AnsibleFilterError(exc.msg) from exc


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"kube_string": kube_string}
