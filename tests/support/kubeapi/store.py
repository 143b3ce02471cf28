"""Object storage with the API server's bookkeeping: uid, creationTimestamp, generation,
a cluster-wide monotonically increasing resourceVersion, finalizers, managedFields and a
bounded event history for watches. Thread-safe (one lock); HTTP lives in server.py.
"""

from __future__ import annotations

import base64
import bisect
import collections
import dataclasses
import datetime
import json
import random
import string
import threading
import uuid
from typing import Any, Callable, Optional

from . import apply as ssa
from . import device_plugins, dra, dra_plugin, kubelet, typed
from .catalogue import CRD_TYPE, Catalogue, ResourceType
from .controllers import FOREGROUND, ORPHAN_BY_DEFAULT, Controllers
from .crd_schema import Pruner, prune_and_validate
from .errors import ApiError, FieldError, already_exists, bad_request, conflict, invalid_fields, not_found
from .patch import PatchError, clone, json_patch, merge_patch_into, strategic_merge_patch
from .rules import builtin_errors
from .selectors import FieldRequirement, Requirement, fields_match, labels_match
from .validation import metadata_errors

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CONTROLLER_MANAGER = "kube-controller-manager"
# fieldValidation directives; a request without one gets Warn, as from a real API server.
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")


_QUANTITY_MAPS = {"limits", "requests", "capacity", "allocatable", "hard", "default", "defaultRequest", "max", "min"}


def _quantity(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def normalize_quantities(value: Any, parent: str = "") -> Any:
    """Numbers in resource maps become strings, as built-in kinds serialize ``resource.Quantity`` (1 -> "1", 0.5 -> "500m")."""
    if isinstance(value, dict):
        if parent in _QUANTITY_MAPS:
            return {k: _quantity(v) for k, v in value.items()}
        return {k: normalize_quantities(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_quantities(v, parent) for v in value]
    return value


def _normalize_in_place(value: Any, parent: str = "") -> Any:
    """``normalize_quantities`` made in ``value`` itself (the same values, for a caller with its own copy)."""
    if isinstance(value, dict):
        if parent in _QUANTITY_MAPS:
            for key, item in value.items():
                value[key] = _quantity(item)
        else:
            for key, item in value.items():
                _normalize_in_place(item, key)
    elif isinstance(value, list):
        for item in value:
            _normalize_in_place(item, parent)
    return value


def now(later: float = 0) -> str:
    """The time (``later`` seconds from now) as the API server writes timestamps."""
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=later)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Event:
    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    storage_key: tuple[str, str]
    namespace: str
    obj: dict
    old: Optional[dict]


_BOOKKEEPING = ("resourceVersion", "managedFields")


def _equal_but_bookkeeping(one: dict, other: dict) -> bool:
    """Whether two objects are equal but for ``metadata.resourceVersion`` and ``metadata.managedFields``
    (compared in place, without copies)."""
    if one.keys() != other.keys():
        return False
    for key, value in one.items():
        if key != "metadata":
            if value != other[key]:
                return False
            continue
        theirs = other[key]
        if isinstance(value, dict) and isinstance(theirs, dict):
            if {k: v for k, v in value.items() if k not in _BOOKKEEPING} != {
                k: v for k, v in theirs.items() if k not in _BOOKKEEPING
            }:
                return False
        elif value != theirs:
            return False
    return True


def _is_key(value: Any) -> bool:
    """A continue token's start as this server writes it: [namespace, name]."""
    return isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    def __init__(self, ready_controller: bool = False, history: int = 20000, kube_version: str = "") -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.catalogue = Catalogue()
        self.kube_version = kube_version
        self.objects: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        self.resource_version = 1000
        self.events: collections.deque[Event] = collections.deque(maxlen=history)
        self.oldest_watchable = self.resource_version
        self.ready_controller = ready_controller
        self._snapshot: Optional[dict] = None
        # Pods in their grace period: (storage key, object key) -> the token of the timer that ends it
        self._terminations: dict[tuple, object] = {}
        self.controllers = Controllers(self)
        for name in DEFAULT_NAMESPACES:
            self.load({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    @property
    def kube_version(self) -> str:
        """The Kubernetes version whose schemas type built-in kinds and whose group-versions are
        served ("" for the newest)."""
        return self.catalogue.kube_version

    @kube_version.setter
    def kube_version(self, value: str) -> None:
        with self.lock:
            self.catalogue.kube_version = value

    # --- helpers ----------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self.resource_version += 1
        return self.resource_version

    def _bucket(self, rtype: ResourceType) -> dict[tuple[str, str], dict]:
        return self.objects.setdefault(rtype.storage_key, {})

    @staticmethod
    def _key(rtype: ResourceType, namespace: Optional[str], name: str) -> tuple[str, str]:
        return ((namespace or "") if rtype.namespaced else "", name)

    def _present(self, rtype: ResourceType, obj: dict, copy: bool = True) -> dict:
        """An object as read through ``rtype``'s version (objects are not converted between versions).

        ``copy=False``: a new top level over the stored object's own values, for a caller that only serializes
        the answer while it holds the lock (the HTTP handler: ``Handler._resource_request``): no deep copy."""
        if not copy:
            return {**obj, "apiVersion": rtype.group_version, "kind": rtype.kind}
        out = clone(obj)
        out["apiVersion"] = rtype.group_version
        out["kind"] = rtype.kind
        return out

    def _emit(self, event_type: str, rtype: ResourceType, obj: dict, old: Optional[dict]) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        self.events.append(
            Event(int(obj["metadata"]["resourceVersion"]), event_type, rtype.storage_key, namespace, clone(obj), old)
        )
        if len(self.events) == self.events.maxlen:
            self.oldest_watchable = self.events[0].resource_version
        self.changed.notify_all()

    def _require_namespace(self, rtype: ResourceType, namespace: Optional[str]) -> None:
        if not rtype.namespaced:
            return
        if not namespace:
            raise bad_request(f"the server could not find the requested resource: {rtype.plural} requires a namespace")
        if ("", namespace) not in self.objects.get(("", "namespaces"), {}):
            raise not_found("namespaces", "", namespace)

    def _validate(
        self,
        rtype: ResourceType,
        obj: dict,
        *,
        field_validation: str = "Ignore",
        warnings: Optional[list[str]] = None,
        patched: bool = False,
    ) -> None:
        """Decode ``obj`` as the real server would (types, unknown fields, pruning, in place), then validate it.

        Type errors answer 400 (422 for custom resources, whose schema validation reports them);
        unknown fields follow ``field_validation``; field rules and metadata answer 422.
        """
        name = (obj.get("metadata") or {}).get("name", "")
        errors: list[FieldError] = []
        if rtype.custom:
            unknown, schema_errors = prune_and_validate(obj, rtype.schema)
            self._unknown_fields(rtype, unknown, field_validation, warnings)
            errors.extend(schema_errors)
        else:
            root = typed.schemas_for(self.kube_version).kind(rtype.group, rtype.version, rtype.kind)
            if root is not None:
                result = typed.check(obj, root, prune=True, required=True)
                if result.type_problems:
                    message = result.type_problems[0].decoder_message()
                    raise bad_request(message if patched else f"{self._cannot_handle(rtype)}{message}")
                self._unknown_fields(rtype, [typed.field_path(p) for p in result.unknown], field_validation, warnings)
                errors.extend(FieldError(typed.field_path(p), "Required") for p in result.missing)
            rule_errors = builtin_errors(rtype.group, rtype.kind, obj)
            # A field a rule reports (a taint's empty key or effect) gets the rule's error only, as from a real server.
            ruled = {error.field for error in rule_errors}
            errors = [error for error in errors if error.field not in ruled]
            errors.extend(rule_errors)
        errors[:0] = [
            FieldError(field, "Invalid", value, message) for field, value, message in metadata_errors(rtype.plural, obj)
        ]
        if rtype.storage_key == CRD_TYPE.storage_key and not errors:
            spec = obj.get("spec") or {}
            expected = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
            if name != expected:
                errors.append(
                    FieldError("metadata.name", "Invalid", name, f'must be spec.names.plural+"."+spec.group: {expected!r}')
                )
            if not spec.get("versions"):
                errors.append(
                    FieldError("spec.versions", "Invalid", [], "must have exactly one version marked as storage version")
                )
        if errors:
            raise invalid_fields(rtype.kind, rtype.group, name, errors)

    @staticmethod
    def _cannot_handle(rtype: ResourceType) -> str:
        return f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '

    def _unknown_fields(
        self, rtype: ResourceType, unknown: list[str], field_validation: str, warnings: Optional[list[str]]
    ) -> None:
        if not unknown or field_validation == "Ignore":
            return
        if field_validation == "Strict":
            fields = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise bad_request(f"{self._cannot_handle(rtype)}strict decoding error: {fields}")
        if warnings is not None:
            warnings.extend(f'unknown field "{path}"' for path in unknown)

    def check_apply_body(self, rtype: ResourceType, body: dict) -> None:
        """An apply configuration of a built-in kind must convert to its type: 400 for wrong types and unknown fields."""
        if rtype.custom:
            return
        root = typed.schemas_for(self.kube_version).kind(rtype.group, rtype.version, rtype.kind)
        if root is None:
            return
        result = typed.check(body, root, prune=False, required=False)
        messages = [problem.apply_message() for problem in result.type_problems]
        messages.extend(f"{typed.smd_path(path)}: field not declared in schema" for path in result.unknown)
        if messages:
            detail = messages[0] if len(messages) == 1 else "errors:\n  " + "\n  ".join(messages)
            gvk = f"{rtype.group}/{rtype.version}, Kind={rtype.kind}"
            raise bad_request(f"failed to create typed patch object ({gvk}): {detail}")

    def _check_kind(self, rtype: ResourceType, body: dict) -> None:
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != rtype.group_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({rtype.group_version})"
            )
        if kind and kind != rtype.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")

    # --- reads ------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: Optional[str], name: str, *, copy: bool = True) -> dict:
        """The object; ``copy=False`` as for ``_present``."""
        with self.lock:
            obj = self._bucket(rtype).get(self._key(rtype, namespace, name))
            if obj is None:
                raise not_found(rtype.plural, rtype.group, name)
            return self._present(rtype, obj, copy)

    def list(
        self,
        rtype: ResourceType,
        namespace: Optional[str],
        label_selector: list[Requirement],
        field_selector: list[FieldRequirement],
        *,
        limit: int = 0,
        continue_token: str = "",
        metadata_only: bool = False,
        copy: bool = True,
    ) -> dict:
        """A page of the collection; ``metadata_only`` copies each item's metadata alone (for a metadata-only list,
        whose conversion drops the rest anyway: the test server's own cost, not a behaviour); ``copy=False``
        copies nothing deep, as for ``_present``."""
        with self.lock:
            start_after: Optional[list] = None
            if continue_token:
                try:
                    start_after = json.loads(base64.urlsafe_b64decode(continue_token.encode()))["start"]
                except (ValueError, KeyError, TypeError) as error:
                    raise bad_request(f"continue key is not valid: {error}") from error
            items = []
            bucket = self._bucket(rtype)
            keys = sorted(bucket)
            if _is_key(start_after):
                # the keys after the token's, found by bisection (the comparison below, for a well-formed token)
                keys = keys[bisect.bisect_right(keys, tuple(start_after)) :]
                start_after = None
            selecting = bool(label_selector or field_selector)  # no requirements: every object matches
            for key in keys:
                if rtype.namespaced and namespace and key[0] != namespace:
                    continue
                if start_after is not None and list(key) <= start_after:
                    continue
                obj = bucket[key]
                if not selecting or (
                    labels_match(label_selector, (obj.get("metadata") or {}).get("labels")) and fields_match(field_selector, obj)
                ):
                    items.append((key, obj))
            metadata: dict[str, Any] = {"resourceVersion": str(self.resource_version)}
            if limit and len(items) > limit:
                metadata["continue"] = base64.urlsafe_b64encode(
                    json.dumps({"start": list(items[limit - 1][0])}).encode()
                ).decode()
                metadata["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            presented = []
            for _key, obj in items:
                if metadata_only:
                    own = obj.get("metadata") or {}
                    presented.append({"metadata": clone(own) if copy else own})
                    continue
                item = self._present(rtype, obj, copy)
                if not rtype.custom:  # built-in lists carry kind and apiVersion once, on the list
                    item.pop("apiVersion")
                    item.pop("kind")
                presented.append(item)
            return {"kind": f"{rtype.kind}List", "apiVersion": rtype.group_version, "metadata": metadata, "items": presented}

    # --- writes -----------------------------------------------------------------------------

    def load(self, obj: dict) -> dict:
        """Store an object as a fixture: as given (status included), with bookkeeping added."""
        api_version = obj.get("apiVersion", "")
        group, _slash, version = api_version.rpartition("/")
        with self.lock:
            rtype = self.catalogue.find_kind(group, version, obj.get("kind", ""))
            if rtype is None:
                raise bad_request(f"no resource type for apiVersion {api_version!r} kind {obj.get('kind')!r}")
            namespace = (obj.get("metadata") or {}).get("namespace") or ("default" if rtype.namespaced else None)
            return self.create(rtype, namespace, obj, manager="fixture", keep_status=True, field_validation="Strict")

    def create(
        self,
        rtype: ResourceType,
        namespace: Optional[str],
        body: dict,
        *,
        manager: str = "",
        dry_run: bool = False,
        keep_status: bool = False,
        managed_by_apply: Optional[Callable[[dict], dict]] = None,
        field_validation: str = "Ignore",
        warnings: Optional[list[str]] = None,
    ) -> dict:
        """Store a new object. ``field_validation`` (Strict, Warn, Ignore) says what unknown fields do;
        Warn appends its messages to ``warnings``."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        self._check_kind(rtype, body)
        obj = clone(body) if rtype.custom else normalize_quantities(body)
        obj["apiVersion"], obj["kind"] = rtype.group_version, rtype.kind
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise bad_request("metadata must be an object")
        with self.lock:
            if rtype.namespaced:
                body_namespace = metadata.get("namespace")
                if body_namespace and namespace and body_namespace != namespace:
                    raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
                namespace = namespace or body_namespace
                self._require_namespace(rtype, namespace)
                metadata["namespace"] = namespace
            else:
                metadata.pop("namespace", None)
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            self._validate(rtype, obj, field_validation=field_validation, warnings=warnings)
            key = self._key(rtype, namespace, metadata["name"])
            if key in self._bucket(rtype):
                raise already_exists(rtype.plural, rtype.group, metadata["name"])
            for server_field in (
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "selfLink",
            ):
                metadata.pop(server_field, None)
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = now()
            metadata["generation"] = 1
            self._defaults_on_create(rtype, obj, keep_status)
            if managed_by_apply is not None:
                obj = managed_by_apply(obj)
            else:
                metadata.pop("managedFields", None)
                ssa.record_update(
                    None,
                    obj,
                    manager,
                    api_version=rtype.group_version,
                    custom=rtype.custom,
                    has_status="status" in rtype.subresources,
                )
            if dry_run:
                return self._present(rtype, obj)
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._bucket(rtype)[key] = obj
            if rtype.storage_key == CRD_TYPE.storage_key:
                self.catalogue.set_crd(obj["metadata"]["name"], obj)
            self._emit("ADDED", rtype, obj, None)
            created = self._present(rtype, obj)
            self._controller(rtype, key)
            return created

    def _defaults_on_create(self, rtype: ResourceType, obj: dict, keep_status: bool) -> None:
        if rtype.plural == "namespaces" and not rtype.group:
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            return
        if rtype.storage_key == CRD_TYPE.storage_key:
            names = (obj.get("spec") or {}).get("names") or {}
            obj["status"] = {
                "acceptedNames": {
                    k: v for k, v in names.items() if k in ("kind", "listKind", "plural", "singular", "shortNames", "categories")
                },
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                        "lastTransitionTime": now(),
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                        "lastTransitionTime": now(),
                    },
                ],
                "storedVersions": [v["name"] for v in (obj.get("spec") or {}).get("versions") or [] if v.get("storage")],
            }
            obj["status"]["acceptedNames"].setdefault("listKind", f"{names.get('kind', '')}List")
            obj["status"]["acceptedNames"].setdefault("singular", str(names.get("kind", "")).lower())
            return
        if keep_status or rtype.plural == "nodes":
            return
        if "status" in rtype.subresources:
            obj["status"] = {"phase": "Pending"} if (rtype.group, rtype.plural) == ("", "pods") else {}
            if not obj["status"]:
                obj.pop("status")

    def _write(
        self,
        rtype: ResourceType,
        current: dict,
        new: dict,
        *,
        manager: str,
        dry_run: bool,
        subresource: str = "",
        record: bool = True,
        field_validation: str = "Ignore",
        warnings: Optional[list[str]] = None,
        patched: bool = False,
        copy: bool = True,
        private: bool = False,
    ) -> dict:
        """Store ``new`` in place of ``current`` (lock held). A write that changes nothing is a no-op.
        ``copy=False`` answers as ``_present`` does with it; ``private``: ``new`` is the caller's own copy (but for
        managedFields, which hold no quantities), normalized in place."""
        if not rtype.custom:
            new = _normalize_in_place(new) if private else normalize_quantities(new)
        metadata = new.setdefault("metadata", {})
        old_metadata = current["metadata"]
        for server_field in (
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
        ):
            if server_field in old_metadata:
                metadata[server_field] = old_metadata[server_field]
            else:
                metadata.pop(server_field, None)
        new["apiVersion"], new["kind"] = rtype.group_version, rtype.kind
        if subresource != "status" and "status" in rtype.subresources:
            if "status" in current:
                new["status"] = clone(current["status"])
            else:
                new.pop("status", None)
        if rtype.plural == "namespaces" and not rtype.group:
            metadata.setdefault("labels", {})["kubernetes.io/metadata.name"] = metadata["name"]
        self._validate(rtype, new, field_validation=field_validation, warnings=warnings, patched=patched)
        if _spec_part(new) != _spec_part(current):
            metadata["generation"] = int(old_metadata.get("generation", 1)) + 1
        if record:
            ssa.record_update(
                current,
                new,
                manager,
                api_version=rtype.group_version,
                custom=rtype.custom,
                has_status="status" in rtype.subresources,
                subresource=subresource,
            )
        metadata["resourceVersion"] = old_metadata["resourceVersion"]
        if _equal_but_bookkeeping(new, current) and _untimed(metadata) == _untimed(old_metadata):
            # Nothing changed, not even ownership: like the API server, no write and no new resourceVersion.
            return self._present(rtype, current, copy)
        if dry_run:
            return self._present(rtype, new, copy)
        key = self._key(rtype, metadata.get("namespace"), metadata["name"])
        grace_running = metadata.get("deletionGracePeriodSeconds")
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers") and not grace_running:
            # the last finalizer removed: gone, unless a Pod's grace period still runs (its kubelet removes it then)
            metadata["resourceVersion"] = str(self._next_rv())
            del self._bucket(rtype)[key]
            self._after_delete(rtype, new)
            self._emit("DELETED", rtype, new, current)
            return self._present(rtype, new, copy)
        metadata["resourceVersion"] = str(self._next_rv())
        self._bucket(rtype)[key] = new
        if rtype.storage_key == CRD_TYPE.storage_key:
            self.catalogue.set_crd(metadata["name"], new)
        self._emit("MODIFIED", rtype, new, current)
        # copied when the controllers run next (they write before the answer is serialized)
        written = self._present(rtype, new, copy or self.ready_controller)
        self._controller(rtype, key, spec_changed=subresource != "status")
        return written

    def _current(self, rtype: ResourceType, namespace: Optional[str], name: str) -> dict:
        obj = self._bucket(rtype).get(self._key(rtype, namespace, name))
        if obj is None:
            raise not_found(rtype.plural, rtype.group, name)
        return obj

    @staticmethod
    def _precondition(rtype: ResourceType, current: dict, body: dict) -> None:
        wanted = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        if wanted and str(wanted) != current["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, rtype.group, current["metadata"]["name"])

    def update(
        self,
        rtype: ResourceType,
        namespace: Optional[str],
        name: str,
        body: dict,
        *,
        manager: str,
        dry_run: bool = False,
        subresource: str = "",
        field_validation: str = "Ignore",
        warnings: Optional[list[str]] = None,
    ) -> dict:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        self._check_kind(rtype, body)
        body_name = (body.get("metadata") or {}).get("name")
        if body_name != name:
            raise bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        with self.lock:
            current = self._current(rtype, namespace, name)
            self._precondition(rtype, current, body)
            if subresource == "status":
                new = clone(current)
                new["status"] = clone(body.get("status"))
                if new["status"] is None:
                    new.pop("status")
            else:
                new = clone(body)
                new.setdefault("metadata", {})["managedFields"] = current["metadata"].get("managedFields")
            return self._write(
                rtype,
                current,
                new,
                manager=manager,
                dry_run=dry_run,
                subresource=subresource,
                field_validation=field_validation,
                warnings=warnings,
                private=True,
            )

    def patch(
        self,
        rtype: ResourceType,
        namespace: Optional[str],
        name: str,
        patch_type: str,
        body: Any,
        *,
        manager: str,
        dry_run: bool = False,
        subresource: str = "",
        force: bool = False,
        field_validation: str = "Ignore",
        warnings: Optional[list[str]] = None,
        copy: bool = True,
    ) -> tuple[dict, bool]:
        """(object, created): apply patches create a missing object, other patch types answer 404.
        ``copy=False``: a merge, strategic or JSON patch answers as ``_present`` does with it."""
        with self.lock:
            key = self._key(rtype, namespace, name)
            current = self._bucket(rtype).get(key)
            if patch_type == "apply":
                return self._apply(
                    rtype,
                    namespace,
                    name,
                    current,
                    body,
                    manager=manager,
                    dry_run=dry_run,
                    subresource=subresource,
                    force=force,
                    field_validation=field_validation,
                    warnings=warnings,
                )
            if current is None:
                raise not_found(rtype.plural, rtype.group, name)
            if patch_type == "merge" and not subresource and "status" in rtype.subresources and "status" in current:
                # _write puts the stored status back (a merge patch cannot fail on it): not copied, a private
                # placeholder keeps its place among the keys
                document = _without_managed(current, placeholder="status")
            else:
                document = _without_managed(current)
            try:
                if patch_type == "merge":
                    if not isinstance(body, dict):
                        raise bad_request("merge patch must be a JSON object")
                    self._precondition(rtype, current, body)
                    new = merge_patch_into(document, body)  # document: a copy of its own
                elif patch_type == "strategic":
                    if rtype.custom:
                        raise ApiError(
                            415,
                            "the body of the request was in an unknown format - accepted media types include: "
                            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                        )
                    self._precondition(rtype, current, body if isinstance(body, dict) else {})
                    new = strategic_merge_patch(document, body)
                elif patch_type == "json":
                    new = json_patch(document, body)
                    self._precondition(rtype, current, {"metadata": {"resourceVersion": _rv_if_changed(document, new)}})
                else:
                    raise ApiError(415, f"unsupported patch type {patch_type}")
            except PatchError as error:
                raise ApiError(error.code, str(error)) from error
            if not isinstance(new, dict):
                raise bad_request("the patched object is not a JSON object")
            if (new.get("metadata") or {}).get("name") != name:
                raise bad_request("metadata.name cannot be changed by a patch")
            if subresource == "status":
                status_only = clone(current)
                status_only["status"] = new.get("status")
                if status_only["status"] is None:
                    status_only.pop("status")
                new = status_only
            new.setdefault("metadata", {})["managedFields"] = current["metadata"].get("managedFields")
            written = self._write(
                rtype,
                current,
                new,
                manager=manager,
                dry_run=dry_run,
                subresource=subresource,
                field_validation=field_validation,
                warnings=warnings,
                patched=True,
                copy=copy,
                private=True,
            )
            return written, False

    def _apply(
        self,
        rtype: ResourceType,
        namespace: Optional[str],
        name: str,
        current: Optional[dict],
        body: Any,
        *,
        manager: str,
        dry_run: bool,
        subresource: str,
        force: bool,
        field_validation: str = "Ignore",
        warnings: Optional[list[str]] = None,
    ) -> tuple[dict, bool]:
        if not isinstance(body, dict):
            raise bad_request("apply patch must be a YAML or JSON object")
        if not manager:
            raise bad_request("PATCH requests of type application/apply-patch+yaml must set fieldManager")
        if not body.get("apiVersion") or not body.get("kind"):
            raise bad_request("invalid object type: apiVersion and kind must be set in an apply patch")
        self._check_kind(rtype, body)
        body_name = (body.get("metadata") or {}).get("name")
        if body_name != name:
            raise bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        has_status = "status" in rtype.subresources
        if not rtype.custom:
            body = normalize_quantities(body)
            self.check_apply_body(rtype, body)
        elif rtype.schema:
            # Pruned before the merge, so a manager never owns a field the schema drops.
            body = clone(body)
            pruner = Pruner()
            pruner.prune(body, rtype.schema, "", root=True)
            self._unknown_fields(rtype, pruner.unknown, field_validation, warnings)
        try:
            if current is None:
                if subresource:
                    raise not_found(rtype.plural, rtype.group, name)

                def managed(obj: dict) -> dict:
                    applied = ssa.server_side_apply(
                        None,
                        body,
                        manager,
                        api_version=rtype.group_version,
                        force=force,
                        custom=rtype.custom,
                        has_status=has_status,
                    )
                    obj["metadata"]["managedFields"] = applied["metadata"]["managedFields"]
                    return obj

                created = self.create(
                    rtype,
                    namespace,
                    body,
                    manager=manager,
                    dry_run=dry_run,
                    managed_by_apply=managed,
                    field_validation=field_validation,
                    warnings=warnings,
                )
                return created, True
            self._precondition(rtype, current, body)
            new = ssa.server_side_apply(
                current,
                body,
                manager,
                api_version=rtype.group_version,
                force=force,
                custom=rtype.custom,
                has_status=has_status,
                subresource=subresource,
            )
        except ssa.ApplyConflict as error:
            causes = [
                {"type": "FieldManagerConflict", "message": f'conflict with "{m}" using {v}', "field": f}
                for m, v, f in error.conflicts
            ]
            raise ApiError(409, str(error), "Conflict", {"causes": causes}) from error
        written = self._write(
            rtype,
            current,
            new,
            manager=manager,
            dry_run=dry_run,
            subresource=subresource,
            record=False,
            field_validation=field_validation,
            warnings=warnings,
        )
        return written, False

    def delete(
        self,
        rtype: ResourceType,
        namespace: Optional[str],
        name: str,
        dry_run: bool = False,
        preconditions: Optional[dict] = None,
        *,
        grace_period: Optional[int] = None,
        propagation: Optional[str] = None,
    ) -> dict:
        """Delete an object. Finalizers keep it (with ``deletionTimestamp``) until they are removed; a Pod
        is deleted gracefully (``grace_period``: the DeleteOptions' ``gracePeriodSeconds``, see
        ``kubelet.deletion_grace_period``): it stays ``Terminating`` until its kubelet removes it.

        With the ready controller on, ``propagation`` (the DeleteOptions' ``propagationPolicy``; None: the kind's
        default) says what the garbage collector does with the dependents (controllers.py)."""
        with self.lock:
            current = self._current(rtype, namespace, name)
            preconditions = preconditions or {}
            if (
                preconditions.get("resourceVersion")
                and preconditions["resourceVersion"] != current["metadata"]["resourceVersion"]
            ):
                raise conflict(rtype.plural, rtype.group, name)
            if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
                raise conflict(rtype.plural, rtype.group, name)
            if dry_run:
                return self._present(rtype, current)
            period = 0
            if (rtype.group, rtype.plural) == ("", "pods"):
                period = kubelet.deletion_grace_period(current, grace_period)
            metadata = current["metadata"]
            # already terminating: a shorter grace period brings the end forward (the registry's
            # BeforeDelete), anything else leaves the object as it is
            if metadata.get("deletionTimestamp") and period >= int(metadata.get("deletionGracePeriodSeconds") or 0):
                return self._present(rtype, current)
            key = self._key(rtype, namespace, name)
            self._terminations.pop((rtype.storage_key, key), None)
            policy = ""
            if self.ready_controller:
                policy = propagation or ("Orphan" if rtype.storage_key in ORPHAN_BY_DEFAULT else "Background")
                if policy == "Orphan":
                    for group, plural, dependent in self.controllers.dependents(namespace or "", metadata["uid"]):
                        self.controllers.orphan(group, plural, dependent, metadata["uid"])
                    current = self._current(rtype, namespace, name)
                    metadata = current["metadata"]
            foreground = policy == "Foreground" and not metadata.get("deletionTimestamp")
            if period > 0 or metadata.get("finalizers") or foreground:
                new = clone(current)
                if foreground:
                    new["metadata"]["finalizers"] = [*(metadata.get("finalizers") or []), FOREGROUND]
                new["metadata"]["deletionTimestamp"] = now(period)
                new["metadata"]["deletionGracePeriodSeconds"] = period
                new["metadata"]["resourceVersion"] = str(self._next_rv())
                self._bucket(rtype)[key] = new
                self._emit("MODIFIED", rtype, new, current)
                if period > 0:
                    token = object()
                    self._terminations[(rtype.storage_key, key)] = token
                    timer = threading.Timer(period, self._kubelet_removes, (rtype, key, token))
                    timer.daemon = True
                    timer.start()
                presented = self._present(rtype, new)
                if self.ready_controller and (rtype.group, rtype.kind) == ("", "Pod") and dra_plugin.is_kubelet_plugin(new):
                    self._dra_plugin_on((new.get("spec") or {}).get("nodeName") or "")  # SIGTERM: the plugin stops
                if foreground:
                    self.controllers.start_foreground(rtype, new)
                elif self.ready_controller and not rtype.custom:
                    self.controllers.notify(rtype, new, spec_changed=False)
                return presented
            gone = clone(current)
            gone["metadata"]["resourceVersion"] = str(self._next_rv())
            del self._bucket(rtype)[key]
            self._emit("DELETED", rtype, gone, current)
            self._after_delete(rtype, gone)
            return self._present(rtype, gone)

    def _kubelet_removes(self, rtype: ResourceType, key: tuple[str, str], token: object) -> None:
        """The end of a Pod's grace period: its kubelet has stopped the containers and deletes the Pod with
        a grace period of 0 (pkg/kubelet/status/status_manager.go); finalizers still keep it."""
        with self.lock:
            if self._terminations.get((rtype.storage_key, key)) is not token:
                return  # a shorter grace period replaced this one, or the store was reset
            del self._terminations[(rtype.storage_key, key)]
            current = self._bucket(rtype).get(key)
            if current is None:
                return
            new = clone(current)
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            if new["metadata"].get("finalizers"):
                self._bucket(rtype)[key] = new
                self._emit("MODIFIED", rtype, new, current)
                return
            del self._bucket(rtype)[key]
            self._emit("DELETED", rtype, new, current)
            self._after_delete(rtype, new)

    def _after_delete(self, rtype: ResourceType, obj: dict) -> None:
        name = obj["metadata"]["name"]
        if self.ready_controller and (rtype.group, rtype.kind) == ("", "Pod") and device_plugins.involved(obj):
            self._device_plugins_on((obj.get("spec") or {}).get("nodeName") or "", departed=device_plugins.is_plugin(obj))
        if self.ready_controller and (rtype.group, rtype.kind) == ("", "Pod") and dra_plugin.is_kubelet_plugin(obj):
            self._dra_plugin_on((obj.get("spec") or {}).get("nodeName") or "")
        if self.ready_controller:
            self.controllers.notify(rtype, obj, deleted=True)
        if rtype.storage_key == CRD_TYPE.storage_key:
            served = self.catalogue.all()
            self.catalogue.set_crd(name, None)
            group = (obj.get("spec") or {}).get("group", "")
            plural = ((obj.get("spec") or {}).get("names") or {}).get("plural", "")
            custom = next((r for r in served if r.custom and r.storage_key == (group, plural)), None)
            if custom is not None:
                for key in list(self._bucket(custom)):
                    self.delete(custom, key[0] or None, key[1])
                self.objects.pop(custom.storage_key, None)
        elif rtype.plural == "namespaces" and not rtype.group:
            for candidate in self.catalogue.all():
                if candidate.namespaced and candidate.storage_key in self.objects:
                    for key in [k for k in self._bucket(candidate) if k[0] == name]:
                        self.delete(candidate, key[0], key[1])

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: Optional[str],
        label_selector: list[Requirement],
        field_selector: list[FieldRequirement],
        dry_run: bool = False,
    ) -> dict:
        with self.lock:
            listed = self.list(rtype, namespace, label_selector, field_selector)
            items = []
            for item in listed["items"]:
                metadata = item["metadata"]
                items.append(self.delete(rtype, metadata.get("namespace"), metadata["name"], dry_run))
            listed["items"] = items
            listed["metadata"] = {"resourceVersion": str(self.resource_version)}
            return listed

    # --- the optional "controller" ----------------------------------------------------------

    def _controller(self, rtype: ResourceType, key: tuple[str, str], *, spec_changed: bool = True) -> None:
        """With the ready controller on, the controllers react to the write (controllers.py, kubelet.py)."""
        if not self.ready_controller:
            return
        obj = self._bucket(rtype).get(key)
        if obj is not None:
            self.controllers.notify(rtype, obj, spec_changed=spec_changed)

    def _pod_controller(self, rtype: ResourceType, obj: dict) -> None:
        """kube-scheduler and the kubelet for a Pod still Pending (tests/support/kubeapi/kubelet.py)."""
        if ((obj.get("status") or {}).get("phase") or "Pending") != "Pending":
            return
        nodes = list(self.objects.get(("", "nodes"), {}).values())
        pods = list(self._bucket(rtype).values())
        spec = obj.get("spec") or {}
        node_name = spec.get("nodeName")
        if not node_name:
            claims_fit = None
            if dra.pod_claims(obj) and self.catalogue.find("resource.k8s.io", "v1", "resourceclaims") is not None:
                obj, claims_fit, problem = self._dra_prefilter(rtype, obj)
                if problem:
                    self._unschedulable(rtype, obj, problem, event=True)
                    return
            node_name, message = kubelet.schedule(obj, nodes, pods, claims_fit)
            if node_name is None:
                self._unschedulable(rtype, obj, message, event=claims_fit is not None)
                return
            if claims_fit is not None:
                self._dra_reserve(obj, node_name)
            bound = clone(obj)
            bound["spec"]["nodeName"] = node_name  # the binding; writing it runs this controller again
            self._write(rtype, obj, bound, manager="kube-scheduler", dry_run=False)
            return
        node = self.objects.get(("", "nodes"), {}).get(("", node_name))
        status = kubelet.pod_status(obj, node, pods, now())
        if device_plugins.is_plugin(obj):
            ads = device_plugins.advertisements(obj, node, self._config_map, pods)
            status = device_plugins.plugin_status(status, ads, now())
        outcome = dra_plugin.publication(obj, node)[0]
        if outcome is not None:
            status = device_plugins.plugin_status(status, [outcome], now())
        self._set_status(rtype, obj, self._with_claim_statuses(obj, status))
        if device_plugins.involved(obj):
            self._device_plugins_on(node_name)
        if dra_plugin.is_kubelet_plugin(obj):
            self._dra_plugin_on(node_name)

    @staticmethod
    def _with_claim_statuses(pod: dict, status: dict) -> dict:
        """The resourceclaim controller's ``resourceClaimStatuses`` stay in a status the scheduler or kubelet writes."""
        claim_statuses = (pod.get("status") or {}).get("resourceClaimStatuses")
        return {**status, "resourceClaimStatuses": claim_statuses} if claim_statuses else status

    def _unschedulable(self, rtype: ResourceType, pod: dict, message: str, *, event: bool) -> None:
        """Pending with kube-scheduler's message; with ``event``, a FailedScheduling Event when the message is new."""
        status = self._with_claim_statuses(pod, kubelet.unschedulable_status(message, now()))
        old = [c.get("message") for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"]
        self._set_status(rtype, pod, status)
        events_type = self.catalogue.find("", "v1", "events")
        if not event or old == [message] or events_type is None:
            return
        metadata = pod["metadata"]
        stamp = now()
        self.create(
            events_type,
            metadata["namespace"],
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": metadata["name"],
                    "namespace": metadata["namespace"],
                    "uid": metadata.get("uid", ""),
                },
                "reason": "FailedScheduling",
                "message": message,
                "type": "Warning",
                "source": {"component": "default-scheduler"},
                "reportingComponent": "default-scheduler",
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            },
            manager="kube-scheduler",
        )

    def _dra_objects(self, plural: str) -> dict:
        return self.objects.get(("resource.k8s.io", plural), {})

    def _dra_prefilter(self, rtype: ResourceType, pod: dict) -> tuple[dict, Optional[Callable[[dict], str]], str]:
        """The resourceclaim controller (claims from templates) and the DynamicResources plugin's PreFilter (dra.py):
        (the Pod as now stored, the Filter for kubelet.schedule, a PreFilter refusal or "")."""
        namespace = pod["metadata"]["namespace"]
        claims_type = self.catalogue.find("resource.k8s.io", "v1", "resourceclaims")
        assert claims_type is not None
        statuses = list((pod.get("status") or {}).get("resourceClaimStatuses") or [])
        for pod_claim in dra.pod_claims(pod):
            template_name = pod_claim.get("resourceClaimTemplateName")
            if not template_name or dra.claim_name(pod, pod_claim):
                continue
            template = self._dra_objects("resourceclaimtemplates").get((namespace, template_name))
            if template is None:
                return pod, None, f'resourceclaimtemplate.resource.k8s.io "{template_name}" not found'
            claim = self.create(
                claims_type, namespace, dra.claim_from_template(pod, pod_claim, template), manager=CONTROLLER_MANAGER
            )
            statuses.append({"name": pod_claim["name"], "resourceClaimName": claim["metadata"]["name"]})
        if statuses != ((pod.get("status") or {}).get("resourceClaimStatuses") or []):
            self._set_status(rtype, pod, {**(pod.get("status") or {}), "resourceClaimStatuses": statuses})
            pod = self._bucket(rtype)[(namespace, pod["metadata"]["name"])]
        claims = []
        for pod_claim in dra.pod_claims(pod):
            name = dra.claim_name(pod, pod_claim) or ""
            claim = self._dra_objects("resourceclaims").get((namespace, name))
            if claim is None:
                return pod, None, f'resourceclaim "{name}" not found'
            claims.append(claim)
        classes = {key[1]: value for key, value in self._dra_objects("deviceclasses").items()}
        for claim in claims:
            problem = dra.class_problems(claim, classes)
            if problem:
                return pod, None, problem
        slices = list(self._dra_objects("resourceslices").values())

        def claims_fit(node: dict) -> str:
            node_name = node["metadata"]["name"]
            taken = dra.allocated_devices(list(self._dra_objects("resourceclaims").values()))
            devices = dra.node_devices(node_name, slices)
            for claim in claims:
                if (claim.get("status") or {}).get("allocation"):
                    if dra.allocated_node(claim) not in (None, node_name):
                        return "resourceclaim not available on the node"
                    continue
                results = dra.allocate(claim, node_name, devices, classes, taken)
                if results is None:
                    return dra.CANNOT_ALLOCATE
                taken.update((r["driver"], r["pool"], r["device"]) for r in results)
            return ""

        return pod, claims_fit, ""

    def _dra_reserve(self, pod: dict, node_name: str) -> None:
        """Reserve and PreBind of the DynamicResources plugin: each claim's allocation and ``reservedFor``."""
        claims_type = self.catalogue.find("resource.k8s.io", "v1", "resourceclaims")
        assert claims_type is not None
        classes = {key[1]: value for key, value in self._dra_objects("deviceclasses").items()}
        devices = dra.node_devices(node_name, list(self._dra_objects("resourceslices").values()))
        metadata = pod["metadata"]
        consumer = {"resource": "pods", "name": metadata["name"], "uid": metadata.get("uid", "")}
        for pod_claim in dra.pod_claims(pod):
            claim = self._dra_objects("resourceclaims")[(metadata["namespace"], dra.claim_name(pod, pod_claim) or "")]
            status = clone(claim.get("status") or {})
            if not status.get("allocation"):
                taken = dra.allocated_devices(list(self._dra_objects("resourceclaims").values()))
                results = dra.allocate(claim, node_name, devices, classes, taken) or []
                status["allocation"] = {"devices": {"results": results}, "nodeSelector": dra.node_selector(node_name)}
            reserved = status.setdefault("reservedFor", [])
            if consumer not in reserved:
                reserved.append(consumer)
            self._set_status(claims_type, claim, status)

    def _config_map(self, namespace: str, name: str) -> Optional[dict]:
        return self.objects.get(("", "configmaps"), {}).get((namespace, name))

    def _device_plugins_on(self, node_name: str, departed: bool = False) -> None:
        """The device plugin doubles on one node (device_plugins.py), after one of its plugin Pods (or the MPS
        daemon) started or went away: each plugin Pod's containers running or restarting, then the Node's
        capacity and allocatable as its kubelet's device manager writes them, and the annotations plugins write."""
        pods_type = self.catalogue.find("", "v1", "pods")
        nodes_type = self.catalogue.find("", "v1", "nodes")
        node = self.objects.get(("", "nodes"), {}).get(("", node_name))
        if pods_type is None or nodes_type is None or node is None:
            return
        for pod in list(self._bucket(pods_type).values()):
            if (pod.get("spec") or {}).get("nodeName") == node_name and device_plugins.is_plugin(pod):
                ads = device_plugins.advertisements(pod, node, self._config_map, list(self._bucket(pods_type).values()))
                self._set_status(pods_type, pod, device_plugins.plugin_status(pod.get("status") or {}, ads, now()))
        result = device_plugins.registered(node, list(self._bucket(pods_type).values()), self._config_map, departed)
        if result is None:
            return
        capacity, allocatable, annotations = result
        new = clone(node)
        new["status"] = {**(node.get("status") or {}), "capacity": capacity, "allocatable": allocatable}
        self._write(nodes_type, node, new, manager="kubelet", dry_run=False, subresource="status")
        node = self.objects[("", "nodes")][("", node_name)]
        if annotations:
            new = clone(node)
            new["metadata"].setdefault("annotations", {}).update(annotations)
            self._write(nodes_type, node, new, manager="device-plugin", dry_run=False)

    def _dra_plugin_on(self, node_name: str) -> None:
        """The NVIDIA DRA driver's kubelet plugin double on one node (dra_plugin.py), after its Pod started or stopped:
        the node's ResourceSlice of the driver created or updated from what a running, ready plugin publishes, else
        deleted (the kubelet wipes the slices of a driver whose plugin went away)."""
        pods_type = self.catalogue.find("", "v1", "pods")
        slices_type = self.catalogue.find("resource.k8s.io", "v1", "resourceslices")
        if pods_type is None or slices_type is None or not node_name:
            return
        node = self.objects.get(("", "nodes"), {}).get(("", node_name))
        devices: Optional[list[dict]] = None
        for pod in sorted(self._bucket(pods_type).values(), key=lambda p: int(p["metadata"].get("resourceVersion") or 0)):
            spec, status = pod.get("spec") or {}, pod.get("status") or {}
            if spec.get("nodeName") != node_name or status.get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
                continue
            outcome, published = dra_plugin.publication(pod, node)
            if outcome is not None and not outcome.error and device_plugins._container_ready(pod, outcome.container):
                devices = published
        current = [
            s
            for s in self._dra_objects("resourceslices").values()
            if (s.get("spec") or {}).get("nodeName") == node_name and (s.get("spec") or {}).get("driver") == dra_plugin.DRIVER
        ]
        if devices is None or node is None:
            for item in current:
                self.delete(slices_type, None, item["metadata"]["name"])
            return
        if not current:
            self.create(slices_type, None, dra_plugin.resource_slice(node, devices), manager=dra_plugin.PLUGIN_NAME)
        elif current[0]["spec"].get("devices") != devices:
            new = clone(current[0])
            new["spec"]["devices"] = devices
            self._write(slices_type, current[0], new, manager=dra_plugin.PLUGIN_NAME, dry_run=False)

    def _set_status(self, rtype: ResourceType, obj: dict, status: dict) -> None:
        new = clone(obj)
        new["status"] = status
        if new["status"] != obj.get("status"):
            self._write(rtype, obj, new, manager=CONTROLLER_MANAGER, dry_run=False, subresource="status")

    # --- fixtures and reset -----------------------------------------------------------------

    def snapshot(self) -> None:
        """Remember the current objects as the state ``reset()`` returns to."""
        with self.lock:
            self._snapshot = clone(self.objects)

    def reset(self) -> None:
        """Back to the snapshot (or the empty cluster); resourceVersions keep increasing, watches must relist."""
        with self.lock:
            self.objects = clone(self._snapshot) if self._snapshot is not None else {}
            self._terminations.clear()
            self.controllers.clear()
            if self._snapshot is None:
                self.objects = {}
            self.catalogue.clear_crds()
            for name, crd in self.objects.get(CRD_TYPE.storage_key, {}).items():
                self.catalogue.set_crd(name[1], crd)
            self.events.clear()
            self.oldest_watchable = self._next_rv()
            if self._snapshot is None:
                for name in DEFAULT_NAMESPACES:
                    self.load({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            self.changed.notify_all()


def _without_managed(obj: dict, placeholder: str = "") -> dict:
    """A copy without managedFields; the value of a top-level key ``placeholder`` is not copied but an empty map."""
    out = {}
    for key, value in obj.items():
        if key == placeholder:
            out[key] = {}
        elif key == "metadata" and isinstance(value, dict):
            out[key] = {k: clone(v) for k, v in value.items() if k != "managedFields"}
        else:
            out[key] = clone(value)
    return out


def _untimed(metadata: dict) -> list:
    return [{k: v for k, v in entry.items() if k != "time"} for entry in metadata.get("managedFields") or []]


def _rv_if_changed(before: dict, after: dict) -> str:
    """A JSON patch that sets metadata.resourceVersion acts as a precondition, like the API server's."""
    old = (before.get("metadata") or {}).get("resourceVersion")
    new = (after.get("metadata") or {}).get("resourceVersion")
    return new if new != old else ""
