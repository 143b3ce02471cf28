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
from typing import Any, Optional

from .patch import item_key, list_strategy

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
    return copy.deepcopy(((obj or {}).get("metadata") or {}).get("managedFields") or [])


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
    old_paths = field_set(old, custom) if old else set()
    new_paths = field_set(new, custom)
    changed = {p for p in new_paths if p not in old_paths or lookup(old, p) != lookup(new, p)}
    changed = _strip_status(changed, subresource, has_status)
    removed = old_paths - new_paths
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
