"""The ``pods/eviction`` subresource (policy/v1 Eviction) with PodDisruptionBudget checks.

What a real API server does, for what drains need:

- a pod covered by no budget is deleted;
- a pod covered by one budget is deleted only while the budget allows a disruption: with
  ``expected`` the pods the budget's selector matches in the namespace and ``healthy`` those of
  them that are Ready and not terminating, the budget needs ``minAvailable`` (a number or a
  percentage of ``expected``, rounded up) or ``expected - maxUnavailable`` (percentage rounded up)
  healthy pods, and allows ``healthy - needed`` disruptions. Otherwise the answer is 429
  TooManyRequests with a ``DisruptionBudget`` cause, as kube-apiserver gives it;
- an unhealthy pod (not Ready) may be evicted while the budget is met (``IfHealthyBudget``, the
  default ``unhealthyPodEvictionPolicy``), or always with ``AlwaysAllow``;
- a pod covered by more than one budget: 500 ``InternalError``, worded as ``errors.NewInternalError``
  words it ("Internal error occurred: This pod has more than one PodDisruptionBudget, ...");
- a pod that is ``Pending``, finished (``Succeeded``, ``Failed``) or already terminating is deleted without
  looking at budgets (``canIgnorePDB``);
- the deletion is the pod's graceful deletion, with the Eviction's ``deleteOptions.gracePeriodSeconds``
  (``Store.delete``, ``kubelet.deletion_grace_period``): the pod stays ``Terminating`` for its grace period,
  and as long as it has finalizers;
- ``dryRun=All`` checks and deletes nothing; a success is ``201`` with a ``Status`` of Success.

Read in pkg/registry/core/pod/storage/eviction.go (kube-apiserver 1.35). Not emulated: the disruption
controller's ``status`` of the budget (it is computed at each eviction instead), the ``DisruptionTarget``
condition, and evictions in a terminating namespace.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .errors import ApiError, bad_request, not_found

SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def selector_matches(selector: Optional[dict], labels: Optional[dict]) -> bool:
    """A LabelSelector object (``matchLabels``, ``matchExpressions``) against labels; an empty
    selector matches everything, as policy/v1 budgets do."""
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _healthy(pod: dict) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(item.get("type") == "Ready" and item.get("status") == "True" for item in conditions)


def _count(value: Any, expected: int, name: str) -> int:
    if isinstance(value, str) and value.endswith("%"):
        try:
            return math.ceil(expected * int(value[:-1]) / 100)
        except ValueError as error:
            raise bad_request(f"PodDisruptionBudget {name}: invalid percentage {value!r}") from error
    return int(value)


def grace_period(options: Any, query: Optional[dict] = None) -> Optional[int]:
    """The ``gracePeriodSeconds`` of DeleteOptions (a request body) or of the query string, or None."""
    value = (options or {}).get("gracePeriodSeconds") if isinstance(options, dict) else None
    if value is None and query:
        value = query.get("gracePeriodSeconds")
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise bad_request(f"gracePeriodSeconds must be an integer, not {value!r}") from error


def propagation_policy(options: Any, query: Optional[dict] = None) -> Optional[str]:
    """The ``propagationPolicy`` of DeleteOptions or the query string (``orphanDependents``, deprecated, as
    ``Orphan``/``Background``), or None; an unknown policy answers 400 with kube-apiserver's wording."""
    options = options if isinstance(options, dict) else {}
    value = options.get("propagationPolicy") or (query or {}).get("propagationPolicy")
    orphan = options.get("orphanDependents", (query or {}).get("orphanDependents"))
    if value is None and orphan is not None:
        value = "Orphan" if str(orphan).lower() == "true" else "Background"
    if value is not None and value not in ("Orphan", "Background", "Foreground"):
        raise bad_request(
            f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{value}": '
            'supported values: "Foreground", "Background", "Orphan"'
        )
    return value


def _can_ignore_budgets(pod: dict) -> bool:
    """``canIgnorePDB``: a pod that is not running, or already going, costs no availability."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Pending", "Succeeded", "Failed") or bool(pod["metadata"].get("deletionTimestamp"))


def evict(store: Any, namespace: str, name: str, body: Any, dry_run: bool) -> dict:
    """Check the budgets of pod ``namespace/name`` and delete it; returns the success Status."""
    catalogue = store.catalogue
    pods = catalogue.find("", "v1", "pods")
    budgets = catalogue.find("policy", "v1", "poddisruptionbudgets")
    if body is not None and not isinstance(body, dict):
        raise bad_request("the body of an eviction is an Eviction object")
    if isinstance(body, dict) and body.get("kind") not in (None, "Eviction"):
        raise bad_request(f"expected an Eviction, got {body.get('kind')}")
    metadata = (body or {}).get("metadata") or {}
    if metadata.get("name") not in (None, name):
        raise bad_request(f"name in URL does not match name in Eviction object: {name} != {metadata.get('name')}")
    with store.lock:
        try:
            pod = store.get(pods, namespace, name)
        except ApiError as error:
            if error.code == 404:
                raise not_found("pods", "", name) from error
            raise
        options = (body or {}).get("deleteOptions")
        if _can_ignore_budgets(pod):
            if not dry_run:
                store.delete(pods, namespace, name, grace_period=grace_period(options))
            return dict(SUCCESS)
        everyone = store.list(pods, namespace, [], [], limit=0, continue_token="")["items"]
        matching = [
            budget
            for budget in store.list(budgets, namespace, [], [], limit=0, continue_token="")["items"]
            if selector_matches((budget.get("spec") or {}).get("selector"), pod["metadata"].get("labels"))
        ]
        if len(matching) > 1:
            cause = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
            raise ApiError(500, f"Internal error occurred: {cause}", "InternalError", {"causes": [{"message": cause}]})
        if matching:
            budget = matching[0]
            spec = budget.get("spec") or {}
            covered = [other for other in everyone if selector_matches(spec.get("selector"), other["metadata"].get("labels"))]
            expected = len(covered)
            healthy = sum(1 for other in covered if _healthy(other))
            budget_name = budget["metadata"]["name"]
            if spec.get("minAvailable") is not None:
                needed = _count(spec["minAvailable"], expected, budget_name)
            elif spec.get("maxUnavailable") is not None:
                needed = expected - _count(spec["maxUnavailable"], expected, budget_name)
            else:
                needed = expected
            pod_healthy = _healthy(pod)
            always = spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
            allowed = healthy - needed > 0 if pod_healthy else (always or healthy >= needed)
            if not allowed:
                raise ApiError(
                    429,
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    "TooManyRequests",
                    {
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {budget_name} needs {needed} healthy pods "
                                f"and has {healthy} currently",
                            }
                        ]
                    },
                )
        if not dry_run:
            store.delete(pods, namespace, name, grace_period=grace_period(options))
    return dict(SUCCESS)
