"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes strategic merge patch.

The strategic merge patch knows the merge keys of the built-in Kubernetes types (the
``patchMergeKey`` / ``patchStrategy`` tags of k8s.io/api) through ``list_strategy``; a list without a
merge key is replaced, as Kubernetes does for ``tolerations``, ``taints``, ``args`` and the like.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Optional, Union

# List fields whose items are maps merged by a key (the patchMergeKey of k8s.io/api).
_MAP_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "resourceClaims": ("name",),
    "schedulingGates": ("name",),
    "addresses": ("type",),
}
# Lists of scalars merged as sets (patchStrategy merge on a primitive list).
_SET_LISTS = {"finalizers", "podCIDRs"}
_CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}

MapList = tuple  # ("map", keys)
ATOMIC = ("atomic", ())
SET = ("set", ())


def clone(value: Any) -> Any:
    """A deep copy of JSON-like data (several times faster than copy.deepcopy; JSON has no shared parts)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def list_strategy(fields: tuple[str, ...], custom: bool = False) -> tuple[str, tuple[str, ...]]:
    """How the list at this field path merges: ("map", keys), ("set", ()) or ("atomic", ()).

    ``fields`` is the chain of map keys from the object root (list positions are left out), e.g.
    ``("spec", "template", "spec", "containers", "env")``. Custom resources only know ObjectMeta's
    lists; everything else in them is atomic, like a CRD schema without ``x-kubernetes-list-type``.
    """
    if not fields:
        return ATOMIC
    name = fields[-1]
    in_metadata = len(fields) == 2 and fields[0] == "metadata"
    if custom and not in_metadata:
        return ATOMIC
    if in_metadata:
        if name == "finalizers":
            return SET
        if name == "ownerReferences":
            return ("map", ("uid",))
        return ATOMIC
    if name == "ports":
        if any(field in _CONTAINER_LISTS for field in fields[:-1]):
            return ("map", ("containerPort", "protocol"))
        if fields[:-1] == ("spec",):
            return ("map", ("port", "protocol"))
        return ATOMIC
    if name in _SET_LISTS:
        return SET
    if name in _MAP_LIST_KEYS:
        return ("map", _MAP_LIST_KEYS[name])
    return ATOMIC


def item_key(item: Any, keys: tuple[str, ...]) -> Optional[dict]:
    """The identity of a map-list item; a missing ``protocol`` defaults to TCP as Kubernetes defaults it."""
    if not isinstance(item, dict):
        return None
    key = {}
    for name in keys:
        if name in item:
            key[name] = item[name]
        elif name == "protocol":
            key[name] = "TCP"
        elif name == "whenUnsatisfiable":
            continue
        else:
            return None
    return key


class PatchError(ValueError):
    """A patch that cannot be applied; ``code`` is the HTTP status the API server answers with."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


# --- JSON merge patch ---------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge, ``null`` deletes, everything else (lists included) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_patch_into(target: dict, patch: dict) -> dict:
    """``merge_patch(target, patch)`` made in ``target`` itself, for a caller whose ``target`` is its own copy
    without shared parts (each of its maps merged once instead of copied again at every level)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch_into(target[key], value)
        else:
            target[key] = merge_patch(None, value)
    return target


# --- strategic merge patch ----------------------------------------------------------------------

_DELETE = object()


def _is_directive(key: str) -> bool:
    return key in ("$patch", "$retainKeys") or key.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/"))


def _clean(value: Any) -> Any:
    """A patch value as new content: directives and nulls removed."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not _is_directive(k) and v is not None}
    if isinstance(value, list):
        return [
            _clean(v) for v in value if not (isinstance(v, dict) and v.get("$patch") in ("delete", "replace") and len(v) == 1)
        ]
    return value


def strategic_merge_patch(original: dict, patch: dict) -> dict:
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", 400)
    result = _merge_map(original if isinstance(original, dict) else {}, patch, ())
    return {} if result is _DELETE else result


def _merge_map(original: dict, patch: dict, fields: tuple[str, ...]) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return _clean(patch)
    if directive == "delete":
        return _DELETE
    if directive is not None:
        raise PatchError(f"Unknown patch type: {directive!r}", 400)
    result = copy.deepcopy(original)
    for key, value in patch.items():
        if _is_directive(key):
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = (*fields, key)
        if isinstance(value, dict):
            current = result.get(key)
            merged = _merge_map(current if isinstance(current, dict) else {}, value, child)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, child)
        else:
            result[key] = value
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [item for item in result[field] if item not in (value or [])]
        elif key.startswith("$setElementOrder/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = _ordered(result[field], value, list_strategy((*fields, field)))
    if "$retainKeys" in patch:
        retain = set(patch["$retainKeys"] or [])
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _ordered(items: list, order: list, strategy: tuple[str, tuple[str, ...]]) -> list:
    kind, keys = strategy

    def identity(item: Any) -> str:
        return json.dumps(item_key(item, keys) if kind == "map" else item, sort_keys=True)

    rank = {identity(item): position for position, item in enumerate(order)}
    return sorted(items, key=lambda item: rank.get(identity(item), len(rank)))


def _merge_list(original: Any, patch: list, fields: tuple[str, ...]) -> list:
    kind, keys = list_strategy(fields)
    original = list(original) if isinstance(original, list) else []
    if kind == "atomic":
        return _clean(patch)
    if kind == "set":
        return original + [item for item in patch if item not in original]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return _clean([item for item in patch if not (isinstance(item, dict) and item.get("$patch") == "replace")])
    result = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"list {'.'.join(fields)} is merged by {keys}; item {item!r} is not a map", 400)
        key = item_key({k: v for k, v in item.items() if k != "$patch"}, keys)
        if key is None:
            raise PatchError(f"map: {item!r} does not contain declared merge key: {keys[0]}", 422)
        index = next((i for i, existing in enumerate(result) if item_key(existing, keys) == key), None)
        if item.get("$patch") == "delete":
            result = [existing for existing in result if item_key(existing, keys) != key]
        elif index is None:
            result.append(_clean(item))
        else:
            merged = _merge_map(result[index], item, fields)
            if merged is _DELETE:
                del result[index]
            else:
                result[index] = merged
    return result


# --- JSON patch ---------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'", 400)
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _container(document: Any, parts: list[str], path: str) -> Any:
    current = document
    for part in parts:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise PatchError(f"jsonpatch: path {path!r} not found in the document")
    return current


def _index(container: list, part: str, path: str, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(container)
    if not part.isdigit():
        raise PatchError(f"jsonpatch: invalid array index {part!r} in {path!r}")
    index = int(part)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"jsonpatch: array index {index} out of bounds in {path!r}")
    return index


def _get(document: Any, path: str) -> Any:
    return copy.deepcopy(_container(document, _pointer(path), path))


def _add(document: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _container(document, parts[:-1], path)
    if isinstance(parent, dict):
        parent[parts[-1]] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, parts[-1], path, True), copy.deepcopy(value))
    else:
        raise PatchError(f"jsonpatch: cannot add to a scalar at {path!r}")
    return document


def _remove(document: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("jsonpatch: cannot remove the whole document")
    parent = _container(document, parts[:-1], path)
    if isinstance(parent, dict) and parts[-1] in parent:
        del parent[parts[-1]]
    elif isinstance(parent, list):
        del parent[_index(parent, parts[-1], path, False)]
    else:
        raise PatchError(f"jsonpatch: remove operation does not apply: doc is missing path: {path!r}")
    return document


def json_patch(document: Any, operations: Union[list, Any]) -> Any:
    """RFC 6902 operations on a copy of ``document``; a failed ``test`` or a missing path raises (422)."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations", 400)
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid JSON patch operation {operation!r}", 400)
        op, path = operation["op"], operation["path"]
        if op == "add":
            result = _add(result, path, operation.get("value"))
        elif op == "remove":
            result = _remove(result, path)
        elif op == "replace":
            _container(result, _pointer(path), path)
            result = (
                _add(_remove(result, path), path, operation.get("value"))
                if _pointer(path)
                else copy.deepcopy(operation.get("value"))
            )
        elif op == "move":
            value = _get(result, operation["from"])
            result = _add(_remove(result, operation["from"]), path, value)
        elif op == "copy":
            result = _add(result, path, _get(result, operation["from"]))
        elif op == "test":
            if _get(result, path) != operation.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {op}", 400)
    return result
