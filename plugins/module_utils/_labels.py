# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes label keys and values: validation and normalisation. Private to the collection.

Rules (Kubernetes "Labels and Selectors"): a value is empty or at most 63
characters of ``[A-Za-z0-9._-]`` beginning and ending with a letter or digit; a
key is an optional DNS-subdomain prefix (at most 253 characters of lowercase
RFC 1123 labels) and ``/``, then a name that follows the value rules but may not
be empty.

``kube_string`` is the collection's one rule for an option or variable that becomes a Kubernetes string (a label
or taint value, a selector or affinity value, a Profile value, a chart value Kubernetes reads as a string); it is
documented in docs/values.md and exposed to roles as the filter ``kubegpu.core.kube_string``.
"""

from __future__ import annotations

import datetime
import re
import typing as t
from collections.abc import Mapping, Sequence

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

# What None means where a Kubernetes string is wanted: refused, "" (a taint's optional value) or kept as None
# (a label set to null is removed).
NULL_REFUSED = "refuse"
NULL_EMPTY = "empty"
NULL_KEPT = "keep"
NULL_MEANINGS = (NULL_REFUSED, NULL_EMPTY, NULL_KEPT)

LABEL_VALUE_MAX = 63
LABEL_PREFIX_MAX = 253

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\Z")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_INVALID_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")


def label_value_problem(value: t.Any) -> str | None:
    """Why ``value`` is not a valid label value, or None when it is."""
    if not isinstance(value, str):
        return f"a label value must be a string, not {type(value).__name__}"
    if value == "":
        return None
    if len(value) > LABEL_VALUE_MAX:
        return f"a label value has at most {LABEL_VALUE_MAX} characters; this one has {len(value)}"
    if not _NAME.match(value):
        return "a label value holds only letters, digits, '-', '_' and '.', and begins and ends with a letter or digit"
    return None


def label_key_problem(key: t.Any) -> str | None:
    """Why ``key`` is not a valid label key, or None when it is."""
    if not isinstance(key, str):
        return f"a label key must be a string, not {type(key).__name__}"
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "the prefix before '/' is empty"
        if len(prefix) > LABEL_PREFIX_MAX:
            return f"the prefix has at most {LABEL_PREFIX_MAX} characters; this one has {len(prefix)}"
        if not all(_DNS_LABEL.match(part) for part in prefix.split(".")):
            return f"the prefix {prefix!r} is not a DNS subdomain (lowercase letters, digits, '-' and '.')"
    if name == "":
        return "the name part of a label key may not be empty"
    if len(name) > LABEL_VALUE_MAX:
        return f"the name part of a label key has at most {LABEL_VALUE_MAX} characters; {name!r} has {len(name)}"
    if not _NAME.match(name):
        return f"the name part {name!r} holds only letters, digits, '-', '_' and '.', and begins and ends with a letter or digit"
    return None


def validate_label(key: t.Any, value: t.Any, where: str = "") -> None:
    """Raise KubeGPUError naming the bad key or value and the rule it breaks."""
    at = f" {where}" if where else ""
    problem = label_key_problem(key)
    if problem:
        raise KubeGPUError(f"invalid label key {key!r}{at}: {problem}")
    problem = label_value_problem(value)
    if problem:
        raise KubeGPUError(f"invalid value {value!r} for label {key!r}{at}: {problem}")


def to_label_value(text: t.Any) -> str:
    """Turn free text (a GPU product name, a version) into a valid label value.

    Each run of characters a label value cannot hold (spaces, parentheses,
    slashes, ...) becomes one ``-``; the result is cut to 63 characters and never
    begins or ends with anything but a letter or digit.
    """
    value = _EDGE.sub("", _INVALID_RUN.sub("-", str(text)))
    return _EDGE.sub("", value[:LABEL_VALUE_MAX])


def kube_string(value: t.Any, name: str, null: str = NULL_REFUSED) -> str | None:
    """``value`` (an option or variable as YAML typed it) as the string Kubernetes stores, by the one rule of
    docs/values.md; ``name`` names the option or variable in the refusal.

    - a string is kept as it is;
    - a bool becomes ``"true"`` or ``"false"``, as kubectl and Kubernetes write them (YAML 1.1 reads an unquoted
      ``true``, ``yes`` and ``on`` as true);
    - an int becomes its decimal digits, however large;
    - a float is refused: an unquoted ``12.10`` is the float 12.1 once YAML has read it, so what was typed is lost;
    - None is refused, or is ``""`` (``null="empty"``, the filter's ``on_null``: a taint's value) or stays
      None (``null="keep"``: a label set to null is removed);
    - anything else (a list, a dict) is refused.
    """
    if null not in NULL_MEANINGS:
        raise ValueError(f"null={null!r}; expected one of {NULL_MEANINGS}")
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        raise KubeGPUError(
            f"{name} is the number {value!r}, but Kubernetes wants a string here, and YAML has already read the "
            f"unquoted number as a float, which drops what a float cannot hold (12.10 becomes 12.1, 550.90 becomes "
            f"550.9): the text that was meant cannot be told any more. Quote it in your inventory or vars "
            f'(for example "{value!r}", or the text as you meant it, such as "12.10")'
        )
    if value is None:
        if null == NULL_EMPTY:
            return ""
        if null == NULL_KEPT:
            return None
        raise KubeGPUError(f'{name} is null, but Kubernetes wants a string here; give a quoted string ("" for an empty value)')
    if isinstance(value, (datetime.date, datetime.datetime)):
        raise KubeGPUError(
            f"{name} is the date {value.isoformat()}, but Kubernetes wants a string here, and YAML has already read the "
            "unquoted date, which drops how it was written (2024-5-1 and 2024-05-01 read the same). Quote it in your "
            f'inventory or vars (for example "{value.isoformat()}")'
        )
    raise KubeGPUError(f"{name} must be a string, not {_kind(value)} ({_plain(value)!r}); give a quoted string")


def _kind(value: t.Any) -> str:
    """What a value is, in the words of YAML (Ansible's lazy and tagged containers included)."""
    if isinstance(value, Mapping):
        return "a dictionary"
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return "a list"
    return f"a {type(value).__name__}"


def _plain(value: t.Any) -> t.Any:
    """``value`` as plain Python containers, for a message."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(item) for item in value]
    return value


def kube_string_map(values: t.Any, name: str, null: str = NULL_REFUSED) -> dict[str, str | None]:
    """A mapping of names to Kubernetes strings (labels, a node selector), each value by ``kube_string``; a key
    must be a string already (an unquoted ``true:`` key is refused, naming it)."""
    if not isinstance(values, Mapping):
        raise KubeGPUError(f"{name} must be a dictionary, not {_kind(values)} ({_plain(values)!r})")
    result: dict[str, str | None] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise KubeGPUError(f"{name} has the key {key!r}, {_kind(key)} (YAML typed the unquoted key); quote it")
        result[str(key)] = kube_string(value, f"{name}[{key!r}]", null)
    return result
