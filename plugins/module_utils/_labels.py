# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes label keys and values: validation and normalisation. Private to the collection.

Rules (Kubernetes "Labels and Selectors"): a value is empty or at most 63
characters of ``[A-Za-z0-9._-]`` beginning and ending with a letter or digit; a
key is an optional DNS-subdomain prefix (at most 253 characters of lowercase
RFC 1123 labels) and ``/``, then a name that follows the value rules but may not
be empty.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

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
