"""Scheduler and kubelet doubles of the ready controller, for Pods (a test-bench simulation: nothing runs).

With the ready controller on, a Pod the API server stores is decided here, the way kube-scheduler and the
kubelet would decide it on a healthy cluster, from the Node objects the test created:

- **Scheduling** (a Pod without ``spec.nodeName``): the nodes are filtered as kube-scheduler's default plugins
  filter them - ``nodeSelector``; required node affinity (``matchExpressions`` on labels with ``In``, ``NotIn``,
  ``Exists``, ``DoesNotExist``, ``Gt``, ``Lt``; ``matchFields`` on ``metadata.name``: a single such term, as the
  DaemonSet controller writes, narrows the nodes first, as NodeAffinity's PreFilter does); ``spec.unschedulable``
  unless the Pod tolerates ``node.kubernetes.io/unschedulable:NoSchedule`` (the NodeUnschedulable plugin);
  ``NoSchedule``/``NoExecute`` taints the Pod does not tolerate; extended resources (names with a ``/`` outside
  ``kubernetes.io/``: ``nvidia.com/gpu`` ...) requested (requests, else limits) above the node's ``allocatable``
  less what the node's other non-terminated Pods request. CPU, memory and ports are not checked. The first feasible
  node by name is bound (``spec.nodeName``, written by ``kube-scheduler``); none leaves the Pod ``Pending`` with
  ``PodScheduled=False``, reason ``Unschedulable`` and kube-scheduler's message (``0/3 nodes are available:
  1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node affinity/selector.``).
- **Dynamic Resource Allocation** (a Pod with ``spec.resourceClaims``): only nodes whose ResourceSlices can serve
  every claim of the Pod, as the DynamicResources plugin filters them (``claims_fit``, from dra.py via store.py).
- **A scheduler extender's resources**: a Pod naming ``schedulerName: hami-scheduler`` (HAMi's scheduler) is not
  refused for ``nvidia.com/gpumem``, ``nvidia.com/gpumem-percentage``, ``nvidia.com/gpucores`` and
  ``nvidia.com/priority``, which HAMi's scheduler configuration marks ``ignoredByScheduler`` and which no node
  advertises; ``nvidia.com/gpu`` is still checked against ``allocatable`` (HAMi's device plugin advertises it).
  Other scheduler names are treated as the default scheduler.
- **The kubelet** of the bound node: a node that does not exist leaves the Pod ``Pending`` (no kubelet picks it
  up); a node that is not Ready too. A Pod bound by ``spec.nodeName`` whose extended resources exceed what the node
  has left fails admission (``Failed``, reason ``OutOf<resource>``), as the kubelet's admission does; requested
  extended resources the node does not advertise at all are dropped, as the kubelet drops them. An admitted Pod is
  ``Running`` and Ready, or, with ``restartPolicy`` ``Never``/``OnFailure``, ``Succeeded`` with every container
  terminated with exit code 0: the bench cannot run containers, so a run-to-completion Pod that got a node with the
  resources it asked for is taken to have completed. What that proves is placement (selectors, affinity,
  tolerations, resource names and amounts), never what the container would do on a GPU. Init containers
  (``spec.initContainers``) are reported as the kubelet reports them once they ran, each in order terminated with
  exit code 0 (reason ``Completed``) in ``status.initContainerStatuses``, before the main containers start. One
  exception to completion, as narrow as the bench needs: a run-to-completion Pod with a main container that only
  waits (its command, else its args, is ``sleep``, as gpu_validate's DRA smoke pods hold their claim while the
  role reads it) stays ``Running``, that container running - the bench has no clock, so it sleeps until the Pod is
  deleted. A container never fails here: a non-zero exit is not simulated.

A Pod is decided when it is written (created or updated); with the workload controllers (controllers.py) a
Node change gives every still-Pending Pod another scheduling attempt, as kube-scheduler's queue does. A bound Pod
is not re-decided (no taint eviction of Pods other than a DaemonSet's, whose controller deletes them).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

NATIVE_PREFIX = "kubernetes.io/"
# resources a scheduler extender handles itself (its configuration marks them ignoredByScheduler)
EXTENDER_RESOURCES = {
    "hami-scheduler": frozenset(
        ("nvidia.com/gpumem", "nvidia.com/gpumem-percentage", "nvidia.com/gpucores", "nvidia.com/priority")
    ),
}
TERMINAL = ("Succeeded", "Failed")


def is_extended(name: str) -> bool:
    return "/" in name and not name.startswith(NATIVE_PREFIX) and not name.startswith("requests.")


def quantity(value: Any) -> int:
    """Extended resources are integers (the API server refuses other quantities for them)."""
    try:
        return int(str(value))
    except ValueError:
        return 0


def pod_requests(pod: dict) -> dict[str, int]:
    """Extended resources a Pod requests: each container's requests, else its limits (they default to them)."""
    total: dict[str, int] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in merged.items():
            if is_extended(name):
                total[name] = total.get(name, 0) + quantity(value)
    return total


def _requirement(requirement: dict, value: Optional[str]) -> bool:
    operator = requirement.get("operator")
    values = requirement.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def matches_affinity(pod: dict, node: dict) -> bool:
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if not required:
        return True
    fields = {"metadata.name": (node.get("metadata") or {}).get("name")}
    for term in terms or []:
        expressions = term.get("matchExpressions") or []
        field_expressions = term.get("matchFields") or []
        if not expressions and not field_expressions:
            continue  # an empty term matches no node
        if all(_requirement(req, labels.get(req.get("key"))) for req in expressions) and all(
            _requirement(req, fields.get(req.get("key"))) for req in field_expressions
        ):
            return True
    return False


def tolerates(tolerations: list, taint: dict) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists":
            if not toleration.get("key") or toleration.get("key") == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taint(pod: dict, node: dict, effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> Optional[dict]:
    """The first of the node's taints with one of ``effects`` that the Pod does not tolerate
    (``FindMatchingUntoleratedTaint``), or None."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in effects and not tolerates(tolerations, taint):
            return taint
    return None


def used_on(node_name: str, pods: list[dict], skip: tuple[str, str]) -> dict[str, int]:
    used: dict[str, int] = {}
    for other in pods:
        metadata = other.get("metadata") or {}
        if (metadata.get("namespace"), metadata.get("name")) == skip:
            continue
        if (other.get("spec") or {}).get("nodeName") != node_name or (other.get("status") or {}).get("phase") in TERMINAL:
            continue
        for name, amount in pod_requests(other).items():
            used[name] = used.get(name, 0) + amount
    return used


def short_of(pod: dict, node: dict, pods: list[dict], *, drop_missing: bool) -> list[str]:
    """Extended resources the node cannot give the Pod; ``drop_missing`` ignores those it does not advertise."""
    metadata = pod.get("metadata") or {}
    ignored = EXTENDER_RESOURCES.get((pod.get("spec") or {}).get("schedulerName") or "", frozenset())
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    used = used_on(node["metadata"]["name"], pods, (metadata.get("namespace"), metadata.get("name")))
    missing = []
    for name, amount in sorted(pod_requests(pod).items()):
        if name in ignored or (drop_missing and name not in allocatable):
            continue
        if amount + used.get(name, 0) > quantity(allocatable.get(name, 0)):
            missing.append(name)
    return missing


def node_ready(node: dict) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(item.get("type") == "Ready" and item.get("status") == "True" for item in conditions)


UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def tolerates_unschedulable(pod: dict) -> bool:
    """The NodeUnschedulable plugin lets a Pod onto a cordoned node when it tolerates this taint (DaemonSet pods do)."""
    return tolerates((pod.get("spec") or {}).get("tolerations") or [], UNSCHEDULABLE_TAINT)


def named_nodes(pod: dict) -> Optional[set[str]]:
    """NodeAffinity's PreFilter: the node names a single required term's ``matchFields`` allows, or None for any."""
    required = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    names = [f for f in terms[0].get("matchFields") or [] if f.get("key") == "metadata.name" and f.get("operator") == "In"]
    return set(names[0].get("values") or []) if len(names) == 1 else None


def schedule(
    pod: dict, nodes: list[dict], pods: list[dict], claims_fit: Optional[Callable[[dict], str]] = None
) -> tuple[Optional[str], str]:
    """(the node kube-scheduler would bind the Pod to, or None; kube-scheduler's message when none).

    ``claims_fit``: the DynamicResources plugin's Filter (dra.py), the reason a node cannot serve the Pod's
    ResourceClaims or "" when it can."""
    reasons: dict[str, int] = {}
    allowed = named_nodes(pod)
    candidates = nodes if allowed is None else [node for node in nodes if node["metadata"]["name"] in allowed]
    if len(candidates) < len(nodes):
        reasons["node(s) didn't match Pod's node affinity/selector"] = len(nodes) - len(candidates)
    for node in sorted(candidates, key=lambda item: item["metadata"]["name"]):
        if not matches_affinity(pod, node):
            reason = "node(s) didn't match Pod's node affinity/selector"
        elif (node.get("spec") or {}).get("unschedulable") and not tolerates_unschedulable(pod):
            reason = "node(s) were unschedulable"
        elif untolerated_taint(pod, node) is not None:
            taint = untolerated_taint(pod, node) or {}
            reason = f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
        else:
            short = short_of(pod, node, pods, drop_missing=False)
            reason = ", ".join(f"Insufficient {name}" for name in short)
            if not short:
                reason = claims_fit(node) if claims_fit is not None else ""
                if not reason:
                    return node["metadata"]["name"], ""
        reasons[reason] = reasons.get(reason, 0) + 1
    details = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return None, f"0/{len(nodes)} nodes are available: {details}." if details else f"0/{len(nodes)} nodes are available."


def condition(kind: str, status: str, stamp: str, reason: str = "", message: str = "") -> dict:
    item = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": stamp}
    if reason:
        item["reason"] = reason
    if message:
        item["message"] = message
    return item


def only_waits(container: dict) -> bool:
    """A container whose command (else its args) is ``sleep``: it does nothing but wait."""
    words = list(container.get("command") or container.get("args") or [])
    return bool(words) and str(words[0]).rsplit("/", 1)[-1] == "sleep"


def pod_status(pod: dict, node: Optional[dict], pods: list[dict], stamp: str) -> dict:
    """The status the kubelet of ``node`` would report for the bound Pod (``node`` None: no such node)."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if node is None or not node_ready(node):
        return {"phase": "Pending", "conditions": [condition("PodScheduled", "True", stamp)]}
    short = short_of(pod, node, pods, drop_missing=True)
    if short:
        name = short[0]
        requested = pod_requests(pod)[name]
        capacity = quantity(((node.get("status") or {}).get("allocatable") or {}).get(name, 0))
        return {
            "phase": "Failed",
            "reason": f"OutOf{name}",
            "message": f"Pod was rejected: Node didn't have enough resource: {name}, requested: {requested}, "
            f"capacity: {capacity}",
            "startTime": stamp,
        }
    completes = spec.get("restartPolicy") in ("Never", "OnFailure") and not any(only_waits(c) for c in containers)
    ready = "False" if completes else "True"
    why = "PodCompleted" if completes else ""
    init = [
        {
            "name": c.get("name", ""),
            "image": c.get("image", ""),
            "imageID": "",
            "ready": True,
            "started": False,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp, "finishedAt": stamp}},
        }
        for c in spec.get("initContainers") or []
    ]
    return {
        "phase": "Succeeded" if completes else "Running",
        "conditions": [
            condition("PodScheduled", "True", stamp),
            condition("Initialized", "True", stamp, why),
            condition("ContainersReady", ready, stamp, why),
            condition("Ready", ready, stamp, why),
        ],
        **({"initContainerStatuses": init} if init else {}),
        "containerStatuses": [
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": not completes,
                "started": not completes,
                "restartCount": 0,
                "state": (
                    {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp, "finishedAt": stamp}}
                    if completes
                    else {"running": {"startedAt": stamp}}
                ),
            }
            for c in containers
        ],
        "hostIP": next(
            (a.get("address") for a in (node.get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"),
            "",
        ),
        "podIP": "10.0.0.10",
        "startTime": stamp,
    }


def unschedulable_status(message: str, stamp: str) -> dict:
    return {"phase": "Pending", "conditions": [condition("PodScheduled", "False", stamp, "Unschedulable", message)]}


def deletion_grace_period(pod: dict, requested: Optional[int]) -> int:
    """Seconds a deleted Pod stays ``Terminating`` before its kubelet removes it, as kube-apiserver's pod
    strategy decides them (``CheckGracefulDelete`` in pkg/registry/core/pod/strategy.go): the DeleteOptions'
    ``gracePeriodSeconds``, else the Pod's ``terminationGracePeriodSeconds``; 0 for a Pod never bound to a node
    or already finished; a negative value becomes 1.

    The bench does no defaulting, so a Pod stored without ``terminationGracePeriodSeconds`` (30 on a real
    cluster) goes at once, as a container that exits on SIGTERM would; a test that needs a Pod to take its
    time sets it. The kubelet double then takes the whole grace period, as a container ignoring SIGTERM does.
    """
    spec = pod.get("spec") or {}
    period = requested if requested is not None else spec.get("terminationGracePeriodSeconds") or 0
    if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in TERMINAL:
        period = 0
    return 1 if period < 0 else int(period)
