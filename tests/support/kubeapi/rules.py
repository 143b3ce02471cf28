"""Field rules the API server enforces in code (``pkg/apis/core/validation``), beyond the schema types.

Each rule answers a list of ``FieldError``: 422 ``Invalid`` with the real server's field paths and
reason wording. Covered: node taints, tolerations, node selectors and node affinity, container names,
images and resources (names, quantities, requests against limits), wherever a pod spec appears
(Pods, pod templates of workloads, CronJobs).
"""

from __future__ import annotations

import decimal
import re
from typing import Any, Optional

from . import dra
from .errors import FieldError
from .validation import dns_label_errors, label_key_errors, label_value_errors

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Equal", "Exists")
STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
# Where a pod spec sits in each workload kind.
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}

_QUANTITY_PARTS = re.compile(r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?")
_SUFFIXES = {
    "": 1,
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity_value(quantity: Any) -> Optional[decimal.Decimal]:
    """The value of a ``resource.Quantity`` (``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824), None if unparsable."""
    if isinstance(quantity, bool):
        return None
    if isinstance(quantity, (int, float)):
        return decimal.Decimal(str(quantity))
    match = _QUANTITY_PARTS.fullmatch(quantity.strip()) if isinstance(quantity, str) else None
    if match is None:
        return None
    number, suffix = match.group("number"), match.group("suffix") or ""
    if suffix[:1] in ("e", "E") and len(suffix) > 1 and not suffix.endswith("i"):
        return decimal.Decimal(number + suffix)
    return decimal.Decimal(number) * _SUFFIXES[suffix]


def _child(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _shown(value: Any) -> str:
    return "<nil>" if value is None else f'"{value}"'


# -- nodes ------------------------------------------------------------------------------------------


def taint_errors(taints: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for index, taint in enumerate(taints or []):
        if not isinstance(taint, dict):
            continue
        at = f"{path}[{index}]"
        key, value, effect = taint.get("key") or "", taint.get("value") or "", taint.get("effect") or ""
        errors.extend(FieldError(f"{at}.key", "Invalid", key, message) for message in label_key_errors(key))
        value_problems = label_value_errors(value)
        if value_problems:
            errors.append(FieldError(f"{at}.value", "Invalid", value, ";".join(value_problems)))
        if not effect:
            errors.append(FieldError(f"{at}.effect", "Required"))
        elif effect not in TAINT_EFFECTS:
            errors.append(FieldError(f"{at}.effect", "NotSupported", effect, supported=TAINT_EFFECTS))
        if (key, effect) in seen:
            added = taint.get("timeAdded")
            shown = (
                f'core.Taint{{Key:"{key}", Value:"{value}", Effect:"{effect}", TimeAdded:{"<nil>" if added is None else added}}}'
            )
            errors.append(FieldError(at, "Duplicate", shown=shown, detail="taints must be unique by key and effect pair"))
            continue
        seen.add((key, effect))
    return errors


def node_errors(node: dict) -> list[FieldError]:
    return taint_errors(_child(node, "spec", "taints"), "spec.taints")


# -- pod specs --------------------------------------------------------------------------------------


def toleration_errors(tolerations: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, toleration in enumerate(tolerations or []):
        if not isinstance(toleration, dict):
            continue
        at = f"{path}[{index}]"
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or ""
        value = toleration.get("value") or ""
        effect = toleration.get("effect") or ""
        if key:
            errors.extend(FieldError(f"{at}.key", "Invalid", key, message) for message in label_key_errors(key))
        if not key and operator != "Exists":
            errors.append(
                FieldError(
                    f"{at}.operator",
                    "Invalid",
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values and all keys"',
                )
            )
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            errors.append(
                FieldError(f"{at}.effect", "Invalid", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set")
            )
        if operator in ("Equal", ""):
            problems = label_value_errors(value)
            if problems:
                errors.append(FieldError(f"{at}.operator", "Invalid", value, ";".join(problems)))
        elif operator == "Exists":
            if value:
                errors.append(FieldError(f"{at}.operator", "Invalid", value, "value must be empty when `operator` is 'Exists'"))
        else:
            errors.append(FieldError(f"{at}.operator", "NotSupported", operator, supported=TOLERATION_OPERATORS))
        if effect and effect not in TAINT_EFFECTS:
            errors.append(FieldError(f"{at}.effect", "NotSupported", effect, supported=TAINT_EFFECTS))
    return errors


def node_selector_requirement_errors(requirement: Any, path: str, fields: bool = False) -> list[FieldError]:
    if not isinstance(requirement, dict):
        return []
    errors: list[FieldError] = []
    operator = requirement.get("operator") or ""
    values = requirement.get("values") or []
    if operator in ("In", "NotIn"):
        if not values:
            errors.append(FieldError(f"{path}.values", "Required", detail="must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            errors.append(
                FieldError(
                    f"{path}.values", "Forbidden", detail="may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )
            )
    elif operator in ("Gt", "Lt"):
        if len(values) != 1:
            errors.append(
                FieldError(f"{path}.values", "Required", detail="must be specified single value when `operator` is 'Lt' or 'Gt'")
            )
    else:
        errors.append(FieldError(f"{path}.operator", "Invalid", operator, "not a valid selector operator"))
    key = requirement.get("key") or ""
    if fields:
        if key != "metadata.name":
            errors.append(FieldError(f"{path}.key", "Invalid", key, "not a valid field selector key"))
    else:
        errors.extend(FieldError(f"{path}.key", "Invalid", key, message) for message in label_key_errors(key))
    return errors


def _selector_term_errors(term: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(term, dict):
        return errors
    for index, requirement in enumerate(term.get("matchExpressions") or []):
        errors.extend(node_selector_requirement_errors(requirement, f"{path}.matchExpressions[{index}]"))
    for index, requirement in enumerate(term.get("matchFields") or []):
        errors.extend(node_selector_requirement_errors(requirement, f"{path}.matchFields[{index}]", fields=True))
    return errors


def node_affinity_errors(node_affinity: Any, path: str) -> list[FieldError]:
    if not isinstance(node_affinity, dict):
        return []
    errors: list[FieldError] = []
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(required, dict):
        at = f"{path}.requiredDuringSchedulingIgnoredDuringExecution"
        terms = required.get("nodeSelectorTerms") or []
        if not terms:
            errors.append(FieldError(f"{at}.nodeSelectorTerms", "Required", detail="must have at least one node selector term"))
        for index, term in enumerate(terms):
            errors.extend(_selector_term_errors(term, f"{at}.nodeSelectorTerms[{index}]"))
    for index, preferred in enumerate(node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        if not isinstance(preferred, dict):
            continue
        at = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{index}]"
        weight = preferred.get("weight")
        if not isinstance(weight, int) or not 1 <= weight <= 100:
            errors.append(FieldError(f"{at}.weight", "Invalid", weight, "must be in the range 1-100"))
        errors.extend(_selector_term_errors(preferred.get("preference"), f"{at}.preference"))
    return errors


def _is_extended(name: str) -> bool:
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def resource_name_errors(name: str, path: str) -> list[FieldError]:
    """A container resource name: cpu, memory, ephemeral-storage, hugepages-<size>, or a qualified extended name."""
    messages = label_key_errors(name)
    errors = [FieldError(path, "Invalid", name, message) for message in messages]
    if errors:
        return errors
    if "/" not in name:
        if name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            return [FieldError(path, "Invalid", name, "must be a standard resource for containers")]
    elif "kubernetes.io/" not in name and label_key_errors(f"requests.{name}"):
        return [FieldError(path, "Invalid", name, "doesn't follow extended resource name standard")]
    return []


def resources_errors(resources: Any, path: str) -> list[FieldError]:
    if not isinstance(resources, dict):
        return []
    errors: list[FieldError] = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    for section, entries in (("limits", limits), ("requests", requests)):
        for name, quantity in entries.items():
            at = f"{path}.{section}[{name}]"
            errors.extend(resource_name_errors(name, at))
            value = quantity_value(quantity)
            if value is None:
                continue
            if value < 0:
                errors.append(FieldError(at, "Invalid", str(quantity), "must be greater than or equal to 0"))
            if _is_extended(name) and value != value.to_integral_value():
                errors.append(FieldError(at, "Invalid", str(quantity), "must be an integer"))
    for name, quantity in requests.items():
        request = quantity_value(quantity)
        if request is None:
            continue
        if name not in limits:
            if _is_extended(name):
                errors.append(
                    FieldError(f"{path}.limits", "Required", detail="Limit must be set for non overcommitable resources")
                )
            continue
        limit = quantity_value(limits[name])
        if limit is None:
            continue
        if _is_extended(name) and request != limit:
            errors.append(FieldError(f"{path}.requests", "Invalid", str(quantity), f"must be equal to {name} limit"))
        elif request > limit:
            errors.append(FieldError(f"{path}.requests", "Invalid", str(quantity), f"must be less than or equal to {name} limit"))
    return errors


def container_errors(containers: Any, path: str, names: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, container in enumerate(containers or []):
        if not isinstance(container, dict):
            continue
        at = f"{path}[{index}]"
        name = container.get("name") or ""
        if name:
            errors.extend(FieldError(f"{at}.name", "Invalid", name, message) for message in dns_label_errors(name))
            if name in names:
                errors.append(FieldError(f"{at}.name", "Duplicate", name))
            names.add(name)
        if not container.get("image"):
            errors.append(FieldError(f"{at}.image", "Required"))
        errors.extend(resources_errors(container.get("resources"), f"{at}.resources"))
    return errors


def pod_spec_errors(spec: Any, path: str) -> list[FieldError]:
    if not isinstance(spec, dict):
        return []
    errors: list[FieldError] = []
    selector = spec.get("nodeSelector") or {}
    if isinstance(selector, dict):
        for key, value in selector.items():
            errors.extend(FieldError(f"{path}.nodeSelector", "Invalid", key, message) for message in label_key_errors(key))
            errors.extend(FieldError(f"{path}.nodeSelector", "Invalid", value, message) for message in label_value_errors(value))
    errors.extend(node_affinity_errors(_child(spec, "affinity", "nodeAffinity"), f"{path}.affinity.nodeAffinity"))
    errors.extend(toleration_errors(spec.get("tolerations"), f"{path}.tolerations"))
    names: set[str] = set()
    for list_name in ("initContainers", "containers"):
        errors.extend(container_errors(spec.get(list_name), f"{path}.{list_name}", names))
    return errors


def builtin_errors(group: str, kind: str, obj: dict) -> list[FieldError]:
    """The field rules of a built-in object (empty when it follows them or its kind has none here)."""
    if (group, kind) == ("", "Node"):
        return node_errors(obj)
    if group == "resource.k8s.io":
        return dra.cel_errors(group, kind, obj)
    spec_path = POD_SPEC_PATHS.get((group, kind))
    if spec_path is None:
        return []
    return pod_spec_errors(_child(obj, *spec_path), ".".join(spec_path))
