"""Custom resources against their CRD's structural ``openAPIV3Schema``: pruning, then validation.

As a real API server does (apiextensions-apiserver): fields the schema does not declare are pruned
unless ``x-kubernetes-preserve-unknown-fields`` (or ``additionalProperties``) keeps them, an object
schema without properties keeps nothing, ``null`` is dropped where the schema is not ``nullable``,
and ``apiVersion``/``kind``/``metadata`` survive at the root and in ``x-kubernetes-embedded-resource``
objects. What was pruned is reported so the caller can apply ``fieldValidation``. Validation covers
``type``, ``nullable``, ``enum``, ``required``, ``x-kubernetes-int-or-string``, ``minimum``/``maximum``,
``minLength``/``maxLength``, ``minItems``/``maxItems`` and ``pattern``, worded like the real server.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from .errors import FieldError

_ROOT_KEPT = ("apiVersion", "kind", "metadata")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_matches(declared: str, actual: str) -> bool:
    return declared == actual or (declared == "number" and actual == "integer")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Pruner:
    """Prunes and validates one object; ``unknown`` and ``errors`` hold what it found."""

    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.errors: list[FieldError] = []

    # -- pruning ----------------------------------------------------------------------------------

    def prune(self, value: Any, schema: Optional[dict], path: str, root: bool = False) -> None:
        if schema is None:
            return
        if isinstance(value, dict):
            self._prune_object(value, schema, path, root)
        elif isinstance(value, list):
            items = schema.get("items")
            if isinstance(items, dict):
                for index, item in enumerate(value):
                    self.prune(item, items, f"{path}[{index}]")

    def _prune_object(self, value: dict, schema: dict, path: str, root: bool) -> None:
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        kept = _ROOT_KEPT if root or schema.get("x-kubernetes-embedded-resource") else ()
        for key in list(value):
            if key in kept:  # ObjectMeta is the server's, whatever the schema says of it
                continue
            child = value[key]
            child_schema = properties.get(key)
            if child_schema is None and isinstance(additional, dict):
                child_schema = additional
            if child is None and child_schema is not None and not child_schema.get("nullable"):
                del value[key]
                continue
            if child_schema is not None:
                self.prune(child, child_schema, _join(path, key))
            elif not preserve and additional is not True:
                self.unknown.append(_join(path, key))
                del value[key]

    # -- validation -------------------------------------------------------------------------------

    def validate(self, value: Any, schema: Optional[dict], path: str, root: bool = False) -> None:
        if schema is None:
            return
        if value is None:
            if not schema.get("nullable") and path:
                self._type_error(path, schema.get("type") or "object", "null")
            return
        actual = _json_type(value)
        if schema.get("x-kubernetes-int-or-string"):
            if actual not in ("integer", "string"):
                self._type_error(path, "integer,string", actual)
            return
        declared = schema.get("type")
        if declared and not _type_matches(declared, actual):
            self._type_error(path, declared, actual)
            return
        if "enum" in schema and value not in schema["enum"]:
            self.errors.append(FieldError(path, "NotSupported", value, supported=tuple(_shown(v) for v in schema["enum"])))
        self._bounds(value, schema, path, actual)
        if actual == "object":
            properties = schema.get("properties") or {}
            additional = schema.get("additionalProperties")
            for key in schema.get("required") or ():
                if key not in value:
                    self.errors.append(FieldError(_join(path, key), "Required"))
            for key, child in value.items():
                if root and key in _ROOT_KEPT:
                    continue
                child_schema = properties.get(key)
                if child_schema is None and isinstance(additional, dict):
                    child_schema = additional
                self.validate(child, child_schema, _join(path, key))
        elif actual == "array":
            items = schema.get("items")
            if isinstance(items, dict):
                for index, item in enumerate(value):
                    self.validate(item, items, f"{path}[{index}]")

    def _bounds(self, value: Any, schema: dict, path: str, actual: str) -> None:
        if actual in ("integer", "number"):
            if "minimum" in schema and value < schema["minimum"]:
                self._invalid(path, value, f"should be greater than or equal to {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                self._invalid(path, value, f"should be less than or equal to {schema['maximum']}")
        elif actual == "string":
            if "minLength" in schema and len(value) < schema["minLength"]:
                self._invalid(path, value, f"should be at least {schema['minLength']} chars long")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.errors.append(FieldError(path, "TooLong", value, detail=f"may not be more than {schema['maxLength']} bytes"))
            if "pattern" in schema and re.search(schema["pattern"], value) is None:
                self._invalid(path, value, f"should match '{schema['pattern']}'")
        elif actual == "array":
            if "minItems" in schema and len(value) < schema["minItems"]:
                self._invalid(path, value, f"should have at least {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                self.errors.append(FieldError(path, "TooMany", value, detail=f"must have at most {schema['maxItems']} items"))

    def _invalid(self, path: str, value: Any, message: str) -> None:
        self.errors.append(FieldError(path, "Invalid", value, f"{path} in body {message}"))

    def _type_error(self, path: str, declared: str, actual: str) -> None:
        self.errors.append(FieldError(path, "Invalid", actual, f'{path} in body must be of type {declared}: "{actual}"'))


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def prune_and_validate(obj: dict, schema: Optional[dict]) -> tuple[list[str], list[FieldError]]:
    """Prune ``obj`` in place against ``schema``; (pruned field paths, validation errors)."""
    if not schema:
        return [], []
    pruner = Pruner()
    pruner.prune(obj, schema, "", root=True)
    pruner.validate(obj, schema, "", root=True)
    return pruner.unknown, pruner.errors
