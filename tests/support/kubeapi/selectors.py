"""Label and field selectors, parsed and matched the way the Kubernetes API server does.

Label selector grammar: requirements separated by commas; each is ``key``, ``!key``, ``key=value``,
``key==value``, ``key!=value``, ``key in (a,b)``, ``key notin (a,b)``, ``key>N`` or ``key<N``.
``!=`` and ``notin`` also match objects that lack the key. Field selectors support ``=``, ``==``
and ``!=`` on ``metadata.name``, ``metadata.namespace`` and a few per-resource fields.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Optional

from .validation import label_key_errors, label_value_errors


class SelectorError(ValueError):
    """A selector that does not parse; the server answers 400 BadRequest with the message."""


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # exists, !, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator in ("gt", "lt"):
            if not present:
                return False
            try:
                number = int(value)  # type: ignore[arg-type]
            except ValueError:
                return False
            limit = int(self.values[0])
            return number > limit if self.operator == "gt" else number < limit
        raise AssertionError(self.operator)


_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=,()<>]+)")


def _tokens(text: str) -> list[str]:
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match:
            raise SelectorError(f"unable to parse requirement: unexpected character at {position} in {text!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _check_key(key: str) -> None:
    errors = label_key_errors(key)
    if errors:
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r}: {'; '.join(errors)}")


def _check_value(value: str) -> None:
    errors = label_value_errors(value)
    if errors:
        raise SelectorError(f"unable to parse requirement: invalid label value: {value!r}: {'; '.join(errors)}")


def parse_label_selector(text: Optional[str]) -> list[Requirement]:
    """Parse a label selector string; an empty one selects everything."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise SelectorError(f"unable to parse requirement: unexpected end of {text!r}")
        token = tokens[i]
        i += 1
        return token

    while i < len(tokens):
        token = take()
        if token == "!":
            key = take()
            _check_key(key)
            requirements.append(Requirement(key, "!"))
        else:
            key = token
            _check_key(key)
            if i >= len(tokens) or tokens[i] == ",":
                requirements.append(Requirement(key, "exists"))
            else:
                operator = take()
                if operator in ("=", "=="):
                    value = "" if i >= len(tokens) or tokens[i] == "," else take()
                    _check_value(value)
                    requirements.append(Requirement(key, "=", (value,)))
                elif operator == "!=":
                    value = "" if i >= len(tokens) or tokens[i] == "," else take()
                    _check_value(value)
                    requirements.append(Requirement(key, "!=", (value,)))
                elif operator in ("in", "notin"):
                    if take() != "(":
                        raise SelectorError(f"unable to parse requirement: expected '(' after {operator} in {text!r}")
                    values: list[str] = []
                    while True:
                        item = take()
                        if item == ")":
                            break
                        if item == ",":
                            continue
                        _check_value(item)
                        values.append(item)
                    if not values:
                        raise SelectorError(
                            f"unable to parse requirement: for 'in', 'notin' operators, values set can't be empty in {text!r}"
                        )
                    requirements.append(Requirement(key, operator, tuple(values)))
                elif operator in (">", "<"):
                    value = take()
                    if not re.fullmatch(r"-?\d+", value):
                        raise SelectorError(
                            f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {value!r}"
                        )
                    requirements.append(Requirement(key, "gt" if operator == ">" else "lt", (value,)))
                else:
                    raise SelectorError(f"unable to parse requirement: unexpected {operator!r} after {key!r} in {text!r}")
        if i < len(tokens):
            if tokens[i] != ",":
                raise SelectorError(f"unable to parse requirement: expected ',' but found {tokens[i]!r} in {text!r}")
            i += 1
            if i >= len(tokens):
                raise SelectorError(f"unable to parse requirement: trailing ',' in {text!r}")
    return requirements


def labels_match(requirements: list[Requirement], labels: Optional[dict[str, str]]) -> bool:
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in requirements)


# Fields each resource can be selected by, besides metadata.name and metadata.namespace.
_EXTRA_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "pods": {"spec.nodeName": ("spec", "nodeName"), "status.phase": ("status", "phase")},
    "nodes": {"spec.unschedulable": ("spec", "unschedulable")},
    "secrets": {"type": ("type",)},
    "events": {"involvedObject.name": ("involvedObject", "name"), "involvedObject.kind": ("involvedObject", "kind")},
    "namespaces": {"status.phase": ("status", "phase")},
}


@dataclasses.dataclass(frozen=True)
class FieldRequirement:
    field: str
    path: tuple[str, ...]
    negate: bool
    value: str

    def matches(self, obj: dict) -> bool:
        current: Any = obj
        for part in self.path:
            current = current.get(part) if isinstance(current, dict) else None
        if current is None:
            actual = "false" if self.path == ("spec", "unschedulable") else ""
        elif isinstance(current, bool):
            actual = "true" if current else "false"
        else:
            actual = str(current)
        return (actual != self.value) if self.negate else (actual == self.value)


def parse_field_selector(text: Optional[str], plural: str) -> list[FieldRequirement]:
    if not text or not text.strip():
        return []
    allowed = {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")}
    allowed.update(_EXTRA_FIELDS.get(plural, {}))
    requirements = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(\S*)\s*", part)
        if not match:
            raise SelectorError(f"invalid selector: {text!r}; can't understand {part!r}")
        field, operator, value = match.groups()
        if field not in allowed:
            raise SelectorError(f'"{field}" is not a known field selector: only "{", ".join(sorted(allowed))}"')
        requirements.append(FieldRequirement(field, allowed[field], operator == "!=", value))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: dict) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)
