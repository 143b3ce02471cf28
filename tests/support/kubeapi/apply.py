"""Server-side apply and managedFields, after the model of structured-merge-diff.

A field set is a Python set of paths; a path is a tuple of the element names used in
``managedFields[].fieldsV1`` (``f:<field>``, ``k:<json key>`` for an item of a keyed list,
``v:<json value>`` for an item of a set list), so encoding to and from fieldsV1 is direct.

Apply: the fields of the applied configuration are compared with those other managers own; a
field another manager owns whose value the apply would change is a conflict (HTTP 409), unless
``force`` takes it over. Fields the manager applied before and no longer applies are removed
when nobody else owns them. Non-apply writes (create, update, patch) give the writer ownership of
the fields it changed, under the operation ``Update``.
"""

from __future__ import annotations

import copy
import datetime
import json
import marshal
from typing import Any, Optional

from .patch import clone, item_key, list_strategy

Path = tuple[str, ...]
# Never owned: identity and server-set metadata.
_IGNORED: set[Path] = {
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
    ("f:metadata", "f:uid"),
    ("f:metadata", "f:resourceVersion"),
    ("f:metadata", "f:generation"),
    ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:selfLink"),
    ("f:metadata", "f:deletionTimestamp"),
    ("f:metadata", "f:deletionGracePeriodSeconds"),
}


def _encode(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def field_set(obj: Any, custom: bool = False, _path: Path = (), _fields: tuple[str, ...] = ()) -> set[Path]:
    """Every owned path of ``obj``: scalar leaves, atomic lists, empty maps, and keyed/set list items."""
    paths: set[Path] = set()
    if not isinstance(obj, dict):
        return paths
    for key, value in obj.items():
        if value is None:
            continue
        path = (*_path, f"f:{key}")
        fields = (*_fields, key)
        if path in _IGNORED:
            continue
        if isinstance(value, dict) and value:
            paths |= field_set(value, custom, path, fields)
        elif isinstance(value, list) and value:
            kind, keys = list_strategy(fields, custom)
            if kind == "atomic":
                paths.add(path)
            elif kind == "set":
                paths.update((*path, f"v:{_encode(item)}") for item in value)
            else:
                for item in value:
                    key_value = item_key(item, keys)
                    if key_value is None:  # an item without its key: the whole list is owned as one value
                        paths.add(path)
                        continue
                    item_path = (*path, f"k:{_encode(key_value)}")
                    paths.add(item_path)
                    paths |= field_set(item, custom, item_path, fields)
        else:
            paths.add(path)
    return paths


_LOOK_UP = object()  # in field_values: the value is lookup()'s to find


def field_values(obj: Any, custom: bool = False) -> dict[Path, Any]:
    """``field_set(obj, custom)`` as a dict: each path to ``lookup(obj, path)``, found in the same walk (no search
    from the root for each path). Where ``lookup`` would find another item than the walk's (an item of a keyed list
    that an earlier item's key also matches, or a set-list item), the value is ``_LOOK_UP``: ``_found`` asks
    ``lookup``."""
    values: dict[Path, Any] = {}
    if isinstance(obj, dict):
        _walk_values(obj, custom, ((), ()), False, values)
    return values


def _walk_values(obj: dict, custom: bool, where: tuple[Path, tuple[str, ...]], indirect: bool, values: dict) -> None:
    """field_set's walk; ``where``: (path, fields) of ``obj``; ``indirect``: ``lookup`` reaches ``obj`` through another
    item than the walk's."""
    path, fields = where
    for key, value in obj.items():
        if value is None:
            continue
        here = (*path, f"f:{key}")
        if here in _IGNORED:
            continue
        names = (*fields, key)
        if isinstance(value, dict) and value:
            _walk_values(value, custom, (here, names), indirect, values)
        elif isinstance(value, list) and value:
            kind, keys = list_strategy(names, custom)
            if kind == "atomic":
                values.setdefault(here, _LOOK_UP if indirect else value)
            elif kind == "set":
                for item in value:
                    values.setdefault((*here, f"v:{_encode(item)}"), _LOOK_UP)
            else:
                for position, item in enumerate(value):
                    key_value = item_key(item, keys)
                    if key_value is None:  # an item without its key: the whole list is owned as one value
                        values.setdefault(here, _LOOK_UP if indirect else value)
                        continue
                    element = f"k:{_encode(key_value)}"
                    item_path = (*here, element)
                    # lookup() takes the first item its key matches: this one, unless an earlier one
                    wanted = json.loads(element[2:])
                    first = next(
                        (
                            index
                            for index, other in enumerate(value[: position + 1])
                            if isinstance(other, dict) and item_key(other, tuple(wanted)) == wanted
                        ),
                        None,
                    )
                    item_indirect = indirect or first != position
                    values.setdefault(item_path, _LOOK_UP if item_indirect else item)
                    _walk_values(item, custom, (item_path, names), item_indirect, values)
        else:
            values.setdefault(here, _LOOK_UP if indirect else value)


def _identical(one: Any, other: Any) -> bool:
    """Whether two JSON-like values are the same in every type, order and item (so the same fields, each with the
    same value); False where that cannot be told cheaply."""
    if one is None or other is None:
        return False
    try:
        return marshal.dumps(one, 2) == marshal.dumps(other, 2)
    except ValueError:
        return False


def _without_status(obj: dict) -> dict:
    return {key: value for key, value in obj.items() if key != "status"}


def _found(values: dict[Path, Any], obj: Any, path: Path) -> tuple[bool, Any]:
    """``lookup(obj, path)`` for a path of ``field_values(obj)``."""
    value = values[path]
    return lookup(obj, path) if value is _LOOK_UP else (True, value)


def lookup(obj: Any, path: Path) -> tuple[bool, Any]:
    """(found, value) of a path in an object."""
    current = obj
    for element in path:
        kind, _sep, name = element.partition(":")
        if kind == "f":
            if not isinstance(current, dict) or name not in current:
                return False, None
            current = current[name]
        elif kind == "k":
            key = json.loads(name)
            if not isinstance(current, list):
                return False, None
            current = next((item for item in current if isinstance(item, dict) and item_key(item, tuple(key)) == key), None)
            if current is None:
                return False, None
        elif kind == "v":
            value = json.loads(name)
            if not isinstance(current, list) or value not in current:
                return False, None
            current = value
        else:
            return False, None
    return True, current


def remove_path(obj: dict, path: Path) -> None:
    parent_found, parent = lookup(obj, path[:-1])
    if not parent_found:
        return
    kind, _sep, name = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind == "k" and isinstance(parent, list):
        key = json.loads(name)
        parent[:] = [item for item in parent if not (isinstance(item, dict) and item_key(item, tuple(key)) == key)]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(name)
        parent[:] = [item for item in parent if item != value]


def path_string(path: Path) -> str:
    """``.spec.containers[name="cuda"].image`` as Kubernetes prints paths in conflict messages."""
    text = ""
    for element in path:
        kind, _sep, name = element.partition(":")
        if kind == "f":
            text += f".{name}"
        elif kind == "k":
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(name).items()) + "]"
        else:
            text += f"[={name}]"
    return text


def to_fields_v1(paths: set[Path]) -> dict:
    tree: dict = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}

    def finish(node: dict) -> dict:
        children = {k: finish(v) for k, v in node.items() if k != "."}
        if not children:
            return {}
        if "." in node:
            return {".": {}, **children}
        return children

    return finish(tree)


def from_fields_v1(tree: dict, _path: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for element, child in (tree or {}).items():
        if element == ".":
            paths.add(_path)
            continue
        path = (*_path, element)
        if not child:
            paths.add(path)
        else:
            paths |= from_fields_v1(child, path)
    return paths


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[tuple[str, str, str]]) -> None:
        """``conflicts``: (manager, apiVersion, path string) for each conflicting field."""
        self.conflicts = conflicts
        count = len(conflicts)
        lines = [f'conflict with "{manager}" using {api_version}: {field}' for manager, api_version, field in conflicts]
        if count == 1:
            message = f"Apply failed with 1 conflict: {lines[0]}"
        else:
            message = f"Apply failed with {count} conflicts: " + "\n".join(lines)
        super().__init__(message)


def _entries(obj: Optional[dict]) -> list[dict]:
    return clone(((obj or {}).get("metadata") or {}).get("managedFields") or [])


def _identity(entry: dict) -> tuple[str, str, str]:
    return (entry.get("manager", ""), entry.get("operation", ""), entry.get("subresource", ""))


def _strip_status(paths: set[Path], subresource: str, has_status: bool) -> set[Path]:
    """A write to the main resource does not own status; a write to /status owns only status."""
    if subresource == "status":
        return {p for p in paths if p[:1] == ("f:status",)}
    if has_status:
        return {p for p in paths if p[:1] != ("f:status",)}
    return paths


def _set_entry(
    entries: list[dict], manager: str, operation: str, *, api_version: str, subresource: str, paths: set[Path]
) -> list[dict]:
    identity = (manager, operation, subresource)
    kept = [entry for entry in entries if _identity(entry) != identity]
    if paths:
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": _now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(paths),
        }
        if subresource:
            entry["subresource"] = subresource
        kept.append(entry)
    return kept


def record_update(
    old: Optional[dict], new: dict, manager: str, *, api_version: str, custom: bool, has_status: bool, subresource: str = ""
) -> None:
    """Give ``manager`` (operation Update) the fields this non-apply write changed; sets ``new``'s managedFields."""
    if old and has_status and subresource != "status" and _identical(old.get("status"), new.get("status")):
        # a write that owns no status and leaves it as it was: its status fields are neither changed nor removed
        old, new_walked = _without_status(old), _without_status(new)
    else:
        new_walked = new
    old_values = field_values(old, custom) if old else {}
    new_values = field_values(new_walked, custom)
    changed = {
        p
        for p, value in new_values.items()
        if p not in old_values
        or (
            (value is _LOOK_UP or old_values[p] is _LOOK_UP or old_values[p] != value)
            and _found(old_values, old, p) != _found(new_values, new_walked, p)
        )
    }
    changed = _strip_status(changed, subresource, has_status)
    removed = old_values.keys() - new_values.keys()
    entries = []
    for entry in _entries(old):
        owned = from_fields_v1(entry.get("fieldsV1") or {}) - changed - removed
        if _identity(entry) == (manager, "Update", subresource):
            owned |= changed
            changed = set()
        if owned:
            entry["fieldsV1"] = to_fields_v1(owned)
            entries.append(entry)
    if changed:
        entries = _set_entry(entries, manager, "Update", api_version=api_version, subresource=subresource, paths=changed)
    new.setdefault("metadata", {})["managedFields"] = entries
    if not entries:
        new["metadata"].pop("managedFields")


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _merge(live: Any, applied: Any, fields: tuple[str, ...], custom: bool) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict):
        result = copy.deepcopy(live)
        for key, value in applied.items():
            result[key] = _merge(live.get(key), value, (*fields, key), custom)
        return result
    if isinstance(applied, list) and isinstance(live, list):
        kind, keys = list_strategy(fields, custom)
        if kind == "set":
            return copy.deepcopy(live) + [item for item in applied if item not in live]
        if kind == "map":
            result = copy.deepcopy(live)
            for item in applied:
                key = item_key(item, keys)
                index = next(
                    (i for i, existing in enumerate(result) if key is not None and item_key(existing, keys) == key), None
                )
                if index is None:
                    result.append(copy.deepcopy(item))
                else:
                    result[index] = _merge(result[index], item, fields, custom)
            return result
    return copy.deepcopy(applied)


def server_side_apply(
    live: Optional[dict],
    applied: dict,
    manager: str,
    *,
    api_version: str,
    force: bool,
    custom: bool,
    has_status: bool,
    subresource: str = "",
) -> dict:
    """The object after ``manager`` applies ``applied`` to ``live`` (None: it does not exist yet).

    Raises ApplyConflict when another manager owns a field whose value would change and ``force``
    is false. The result carries the updated managedFields.
    """
    applied = _drop_nulls(applied)
    if subresource == "status":
        applied = {k: v for k, v in applied.items() if k in ("apiVersion", "kind", "metadata", "status")}
        applied["metadata"] = {k: v for k, v in (applied.get("metadata") or {}).items() if k in ("name", "namespace")}
    elif has_status:
        applied = {k: v for k, v in applied.items() if k != "status"}
    applied_paths = field_set(applied, custom)
    entries = _entries(live)
    me = (manager, "Apply", subresource)
    previous: set[Path] = set()
    conflicts: list[tuple[str, str, str]] = []
    others: list[tuple[dict, set[Path]]] = []
    for entry in entries:
        owned = from_fields_v1(entry.get("fieldsV1") or {})
        if _identity(entry) == me:
            previous = owned
            continue
        contested = set()
        for path in owned & applied_paths:
            if path[-1].startswith("f:") and lookup(live, path) != lookup(applied, path):
                contested.add(path)
                conflicts.append((entry.get("manager", ""), entry.get("apiVersion", ""), path_string(path)))
        others.append((entry, owned - contested if force else owned))
    if conflicts and not force:
        raise ApplyConflict(sorted(conflicts))
    result = copy.deepcopy(live) if live else {}
    owned_by_others = set().union(*(owned for _entry, owned in others)) if others else set()
    for path in sorted(previous - applied_paths, key=len, reverse=True):
        still_used = any(other[: len(path)] == path for other in owned_by_others)
        if not still_used:
            remove_path(result, path)
    result = _merge(result, applied, (), custom)
    new_entries = []
    for entry, owned in others:
        if owned:
            entry["fieldsV1"] = to_fields_v1(owned)
            new_entries.append(entry)
    new_entries = _set_entry(new_entries, manager, "Apply", api_version=api_version, subresource=subresource, paths=applied_paths)
    result.setdefault("metadata", {})["managedFields"] = new_entries
    return result
