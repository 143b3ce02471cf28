"""Typed decoding of built-in kinds against the Kubernetes JSON schemas of the server's version.

A real API server decodes a request body into Go structs: a value of the wrong JSON type fails the
decode (400 ``BadRequest``), and a field the struct does not have is dropped, reported by field
validation (``fieldValidation=Strict|Warn|Ignore``). Server-side apply converts the applied
configuration into a typed value and answers 400 for both.

The schemas come from the ``kubernetes-validate`` package, which ships the OpenAPI schemas of
every Kubernetes minor version as JSON Schema (its ``-strict`` variants close every object with
``additionalProperties: false``). They are compiled once per version into small type nodes and
walked without a generic JSON Schema engine, so checking a 1,000-node fixture stays cheap.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, Optional

_SCHEMA_ROOT = "kubernetes-json-schema"
_REF_PREFIX = "#/$defs/"


# What resource.Quantity's parser accepts: a signed decimal number and an optional suffix
# (binary Ki..Ei, decimal n u m k M G T P E, or an exponent e/E with an integer).
QUANTITY_PATTERN = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?")


class MapKey(str):
    """A map key in a path (printed ``[key]``), as opposed to a struct field name."""


# -- compiled types ---------------------------------------------------------------------------------


class Type:
    __slots__ = ()
    go = "interface {}"


class AnyType(Type):
    __slots__ = ()


class Scalar(Type):
    __slots__ = ("go", "json")

    def __init__(self, json_type: str, go: str) -> None:
        self.json = json_type  # "string", "integer", "number", "boolean"
        self.go = go


class Quantity(Type):
    __slots__ = ()
    go = "resource.Quantity"


class IntOrString(Type):
    __slots__ = ()
    go = "intstr.IntOrString"


class ArrayType(Type):
    __slots__ = ("item", "map_keys")

    def __init__(self, item: Type, map_keys: tuple[str, ...]) -> None:
        self.item = item
        self.map_keys = map_keys

    @property
    def go(self) -> str:
        return f"[]{self.item.go}"


class MapType(Type):
    __slots__ = ("value",)

    def __init__(self, value: Type) -> None:
        self.value = value

    @property
    def go(self) -> str:
        return f"map[string]{self.value.go}"


class Struct(Type):
    """An object with declared fields; ``closed`` when fields it does not declare are unknown."""

    __slots__ = ("_props", "_raw", "_schemas", "closed", "go", "name", "required")

    def __init__(self, schemas: Schemas, name: str, raw: dict) -> None:
        self._schemas = schemas
        self._raw = raw
        self._props: Optional[dict[str, Type]] = None
        self.name = name.rsplit(".", 1)[-1]
        package = name.rsplit(".", 2)[-2] if name.count(".") >= 2 else ""
        self.go = f"{package}.{self.name}" if package else self.name
        self.required = tuple(raw.get("required") or ())
        self.closed = raw.get("additionalProperties") is False

    @property
    def props(self) -> dict[str, Type]:
        if self._props is None:
            self._props = {key: self._schemas.compile(value) for key, value in (self._raw.get("properties") or {}).items()}
        return self._props


ANY = AnyType()
QUANTITY = Quantity()
INT_OR_STRING = IntOrString()
_SCALARS = {
    ("string", None): Scalar("string", "string"),
    ("boolean", None): Scalar("boolean", "bool"),
    ("integer", "int32"): Scalar("integer", "int32"),
    ("integer", "int64"): Scalar("integer", "int64"),
    ("integer", None): Scalar("integer", "int64"),
    ("number", "double"): Scalar("number", "float64"),
    ("number", None): Scalar("number", "float64"),
}


def _json_type(schema: dict) -> Optional[str]:
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    return declared


class Schemas:
    """The compiled schemas of one Kubernetes version."""

    def __init__(self, version_dir: str) -> None:
        path = resources.files("kubernetes_validate").joinpath(_SCHEMA_ROOT, version_dir, "_definitions.json")
        self.version_dir = version_dir
        self.definitions: dict[str, dict] = json.loads(path.read_text())["$defs"]
        self._compiled: dict[str, Type] = {}
        self.kinds: dict[tuple[str, str, str], str] = {}
        for name, definition in self.definitions.items():
            for gvk in definition.get("x-kubernetes-group-version-kind") or ():
                self.kinds.setdefault((gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")), name)

    def definition(self, name: str) -> Type:
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = self._compile_definition(name, self.definitions[name])
            self._compiled[name] = compiled
        return compiled

    def _compile_definition(self, name: str, raw: dict) -> Type:
        if name.endswith("api.resource.Quantity"):
            return QUANTITY
        if name.endswith("util.intstr.IntOrString"):
            return INT_OR_STRING
        if _json_type(raw) == "object" and raw.get("properties"):
            return Struct(self, name, raw)
        return self.compile(raw)

    def compile(self, schema: dict) -> Type:
        ref = schema.get("$ref")
        if ref:
            return self.definition(ref[len(_REF_PREFIX) :] if ref.startswith(_REF_PREFIX) else ref.rsplit("/", 1)[-1])
        json_type = _json_type(schema)
        if json_type == "array":
            return ArrayType(self.compile(schema.get("items") or {}), tuple(schema.get("x-kubernetes-list-map-keys") or ()))
        if json_type == "object":
            additional = schema.get("additionalProperties")
            if isinstance(additional, dict):
                return MapType(self.compile(additional))
            return ANY  # RawExtension, FieldsV1, JSON: any content
        if json_type in ("string", "boolean", "integer", "number"):
            return _SCALARS.get((json_type, schema.get("format")), _SCALARS[(json_type, None)])
        return ANY

    def kind(self, group: str, version: str, kind: str) -> Optional[Type]:
        name = self.kinds.get((group, version, kind))
        return self.definition(name) if name else None


def _shipped_versions() -> list[tuple[int, int]]:
    root = resources.files("kubernetes_validate").joinpath(_SCHEMA_ROOT)
    versions = []
    for entry in root.iterdir():
        match = re.fullmatch(r"v(\d+)\.(\d+)\.0-local-strict", entry.name)
        if match:
            versions.append((int(match.group(1)), int(match.group(2))))
    return sorted(versions)


@functools.cache
def shipped_versions() -> tuple[tuple[int, int], ...]:
    return tuple(_shipped_versions())


def schema_version(server_version: str) -> tuple[int, int]:
    """The shipped schema version for a server version: the same minor, else the nearest one."""
    shipped = shipped_versions()
    match = re.match(r"v?(\d+)\.(\d+)", server_version or "")
    if not match:
        return shipped[-1]
    wanted = (int(match.group(1)), int(match.group(2)))
    return min(shipped, key=lambda v: (abs((v[0] - wanted[0]) * 1000 + v[1] - wanted[1]), -v[1]))


@functools.lru_cache(maxsize=4)
def _schemas(major: int, minor: int) -> Schemas:
    return Schemas(f"v{major}.{minor}.0-local-strict")


def schemas_for(server_version: str) -> Schemas:
    """Compiled schemas for a server's ``gitVersion`` (cached: each version is read once)."""
    return _schemas(*schema_version(server_version))


# -- checking ---------------------------------------------------------------------------------------

Path = tuple  # of str (field), MapKey (map key) and (index, item, map_keys) tuples


class TypeProblem:
    """A value of the wrong JSON type, with what a Go decoder and structured-merge-diff would say."""

    __slots__ = ("expected", "path", "struct", "value")

    def __init__(self, path: Path, struct: str, value: Any, expected: Type) -> None:
        self.path = path
        self.struct = struct
        self.value = value
        self.expected = expected

    def decoder_message(self) -> str:
        if isinstance(self.expected, Quantity):
            return "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        got = _json_kind(self.value)
        if got == "number" and isinstance(self.expected, Scalar) and self.expected.json == "integer":
            got = f"number {self.value}"
        fields = ".".join(p for p in self.path if isinstance(p, str) and not isinstance(p, MapKey))
        return f"json: cannot unmarshal {got} into Go struct field {self.struct}.{fields} of type {self.expected.go}"

    def apply_message(self) -> str:
        return f"{smd_path(self.path)}: expected {_smd_kind(self.expected)}, got {_go_literal(self.value)}"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _smd_kind(expected: Type) -> str:
    if isinstance(expected, (Struct, MapType)):
        return "map"
    if isinstance(expected, ArrayType):
        return "list"
    if isinstance(expected, Scalar):
        return {"integer": "numeric (int or float)", "number": "numeric (int or float)", "boolean": "boolean"}.get(
            expected.json, expected.json
        )
    if isinstance(expected, IntOrString):
        return "string or int"
    return "string or number"


def _go_literal(value: Any) -> str:
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        shown = json.dumps(value, separators=(",", ":"))
    else:
        shown = json.dumps(value, ensure_ascii=False)
    return f"&value.valueUnstructured{{Value:{shown}}}"


def smd_path(path: Path) -> str:
    """A path as structured-merge-diff prints it: ``.spec.containers[name="c"].image``."""
    out = []
    for part in path:
        if isinstance(part, tuple):
            index, item, keys = part
            if keys and isinstance(item, dict) and all(k in item for k in keys):
                out.append("[" + ",".join(f"{k}={json.dumps(item[k])}" for k in keys) + "]")
            else:
                out.append(f"[{index}]")
        else:
            out.append(f".{part}")
    return "".join(out)


def field_path(path: Path) -> str:
    """A path as field validation prints it: ``spec.containers[0].foo``."""
    out = []
    for part in path:
        if isinstance(part, tuple):
            out.append(f"[{part[0]}]")
        elif isinstance(part, MapKey):
            out.append(f"[{part}]")
        else:
            out.append(f".{part}" if out else part)
    return "".join(out)


class Result:
    __slots__ = ("missing", "type_problems", "unknown")

    def __init__(self) -> None:
        self.type_problems: list[TypeProblem] = []
        self.unknown: list[Path] = []
        self.missing: list[Path] = []


def check(obj: dict, root: Type, *, prune: bool, required: bool) -> Result:
    """Type-check ``obj`` against ``root``; with ``prune``, unknown fields are removed from ``obj`` in place.

    ``required`` reports absent required fields outside ``status`` (a status is written by
    controllers and kubelets, whose fields the API server does not require).
    """
    result = Result()
    _walk(obj, root, (), root.name if isinstance(root, Struct) else "", result, prune, required)
    return result


def _walk(value: Any, expected: Type, path: Path, struct: str, result: Result, prune: bool, required: bool) -> None:  # noqa: PLR0917 - one dispatch over the kinds of type
    if value is None or expected is ANY:
        return
    if isinstance(expected, Scalar):
        kind = expected.json
        if kind == "string":
            ok = isinstance(value, str)
        elif kind == "boolean":
            ok = isinstance(value, bool)
        elif kind == "integer":
            ok = not isinstance(value, bool) and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
        else:
            ok = not isinstance(value, bool) and isinstance(value, (int, float))
        if not ok:
            result.type_problems.append(TypeProblem(path, struct, value, expected))
        return
    if isinstance(expected, Struct):
        if not isinstance(value, dict):
            result.type_problems.append(TypeProblem(path, struct, value, expected))
            return
        props = expected.props
        name = expected.name
        unknown = None
        for key, child in value.items():
            child_type = props.get(key)
            if child_type is None:
                if expected.closed:
                    result.unknown.append((*path, key))
                    if unknown is None:
                        unknown = []
                    unknown.append(key)
                continue
            if child is not None:
                _walk(child, child_type, (*path, key), name, result, prune, required)
        if required and expected.required and not (path and path[0] == "status"):
            result.missing.extend((*path, key) for key in expected.required if value.get(key) is None)
        if prune and unknown:
            for key in unknown:
                del value[key]
        return
    if isinstance(expected, ArrayType):
        if not isinstance(value, list):
            result.type_problems.append(TypeProblem(path, struct, value, expected))
            return
        item_type = expected.item
        if item_type is ANY:
            return
        keys = expected.map_keys
        for index, item in enumerate(value):
            if item is not None:
                _walk(item, item_type, (*path, (index, item, keys)), struct, result, prune, required)
        return
    if isinstance(expected, MapType):
        if not isinstance(value, dict):
            result.type_problems.append(TypeProblem(path, struct, value, expected))
            return
        value_type = expected.value
        if isinstance(value_type, Scalar) and value_type.json == "string":
            for key, item in value.items():
                if item is not None and not isinstance(item, str):
                    result.type_problems.append(TypeProblem((*path, MapKey(key)), struct, item, value_type))
            return
        for key, item in value.items():
            if item is not None:
                _walk(item, value_type, (*path, MapKey(key)), struct, result, prune, required)
        return
    if isinstance(expected, Quantity):
        if (
            isinstance(value, bool)
            or not isinstance(value, (str, int, float))
            or (isinstance(value, str) and not QUANTITY_PATTERN.fullmatch(value.strip()))
        ):
            result.type_problems.append(TypeProblem(path, struct, value, expected))
        return
    if isinstance(expected, IntOrString) and (isinstance(value, bool) or not isinstance(value, (str, int))):
        result.type_problems.append(TypeProblem(path, struct, value, expected))
