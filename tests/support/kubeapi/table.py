"""Server-side printing: ``meta.k8s.io`` ``Table`` answers, as kube-apiserver gives kubectl.

kubectl asks every ``get`` for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io, ...`` and
prints the columns the server chooses. The columns and cell values here follow kube-apiserver's
printers for the kinds a user of the lab looks at (Nodes, Pods, Namespaces, Deployments,
DaemonSets, ReplicaSets, StatefulSets, Jobs, Services, ConfigMaps, Secrets); custom resources get
their CRD's ``additionalPrinterColumns`` (simple ``.a.b`` paths); every other kind Name and Age.
Rows carry the object as ``PartialObjectMetadata`` unless ``includeObject=Object`` or ``None``.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Optional

from .catalogue import ResourceType

TABLE_GROUP = "meta.k8s.io"


def wanted_table_version(accept: str) -> Optional[str]:
    """``v1`` or ``v1beta1`` when the Accept header asks for a Table first, else None."""
    for media_range in accept.split(","):
        params = {}
        for part in media_range.split(";")[1:]:
            key, _sep, value = part.strip().partition("=")
            params[key.strip()] = value.strip()
        if params.get("as") == "Table" and params.get("g") == TABLE_GROUP and params.get("v") in ("v1", "v1beta1"):
            return params["v"]
        if media_range.split(";")[0].strip() in ("application/json", "*/*", "application/*"):
            return None
    return None


def human_duration(seconds: float) -> str:
    """A duration as kubectl and the API server print ages: ``45s``, ``3m20s``, ``5h10m``, ``3d4h``, ``2y``."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def age(obj: dict, now: Optional[datetime.datetime] = None) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return human_duration((now - created).total_seconds())


def _column(name: str, kind: str = "string", description: str = "", fmt: str = "", priority: int = 0) -> dict:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


NAME = _column("Name", fmt="name", description="Name must be unique within a namespace.")
AGE = _column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created.")


def _node_status(node: dict) -> str:
    conditions = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    status = {"True": "Ready", "False": "NotReady"}.get(conditions.get("Ready", ""), "Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def node_roles(node: dict) -> str:
    labels = (node.get("metadata") or {}).get("labels") or {}
    roles = {key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/") and key.split("/", 1)[1]}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return ",".join(sorted(roles)) or "<none>"


def _address(node: dict, kind: str) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


def _node_row(node: dict) -> list:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        _node_status(node),
        node_roles(node),
        age(node),
        info.get("kubeletVersion", ""),
        _address(node, "InternalIP"),
        _address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _pod_row(pod: dict) -> list:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in statuses:
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
        if waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated.get("reason"):
            reason = terminated["reason"]
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(containers)}",
        reason,
        restarts,
        age(pod),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"{len(gates)}/{len(gates)}" if gates else "<none>",
    ]


def _containers(obj: dict) -> tuple[str, str]:
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = template.get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector(obj: dict) -> str:
    selector = (obj.get("spec") or {}).get("selector") or {}
    labels = selector.get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def _deployment_row(obj: dict) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(obj)
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(obj),
        names,
        images,
        _selector(obj),
    ]


def _daemonset_row(obj: dict) -> list:
    status = obj.get("status") or {}
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    node_selector = ",".join(f"{k}={v}" for k, v in sorted((template.get("nodeSelector") or {}).items())) or "<none>"
    names, images = _containers(obj)
    return [
        obj["metadata"]["name"],
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        node_selector,
        age(obj),
        names,
        images,
        _selector(obj),
    ]


def _replicaset_row(obj: dict) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], spec.get("replicas", 1), status.get("replicas", 0), status.get("readyReplicas", 0), age(obj)]


def _job_row(obj: dict) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    complete = any(c.get("type") == "Complete" and c.get("status") == "True" for c in status.get("conditions") or [])
    failed = any(c.get("type") == "Failed" and c.get("status") == "True" for c in status.get("conditions") or [])
    state = "Complete" if complete else "Failed" if failed else "Running"
    return [obj["metadata"]["name"], state, f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}", "", age(obj)]


def _service_row(obj: dict) -> list:
    spec = obj.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []) or "<none>"
    return [obj["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", "<none>", ports, age(obj)]


def _namespace_row(obj: dict) -> list:
    return [obj["metadata"]["name"], (obj.get("status") or {}).get("phase", "Active"), age(obj)]


def _configmap_row(obj: dict) -> list:
    return [obj["metadata"]["name"], len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), age(obj)]


def _secret_row(obj: dict) -> list:
    return [obj["metadata"]["name"], obj.get("type", "Opaque"), len(obj.get("data") or {}), age(obj)]


def _resource_claim_state(obj: dict) -> str:
    """``resourceClaimState`` of kubernetes pkg/printers/internalversion/printers.go."""
    states = ["deleted"] if obj["metadata"].get("deletionTimestamp") else []
    status = obj.get("status") or {}
    if not status.get("allocation"):
        states += [] if states else ["pending"]
    else:
        states.append("allocated")
        if status.get("reservedFor"):
            states.append("reserved")
    return ",".join(states)


def _resource_slice_row(obj: dict) -> list:
    spec = obj.get("spec") or {}
    return [
        obj["metadata"]["name"],
        spec.get("nodeName", ""),
        spec.get("driver", ""),
        (spec.get("pool") or {}).get("name", ""),
        age(obj),
    ]


PRINTERS: dict[tuple[str, str], tuple[list[dict], Callable[[dict], list]]] = {
    ("", "nodes"): (
        [
            NAME,
            _column("Status", description="The status of the node"),
            _column("Roles", description="The roles of the node"),
            AGE,
            _column("Version", description="Kubelet Version reported by the node."),
            _column("Internal-IP", description="List of addresses reachable to the node.", priority=1),
            _column("External-IP", description="List of addresses reachable to the node.", priority=1),
            _column("OS-Image", description="OS Image reported by the node from /etc/os-release.", priority=1),
            _column("Kernel-Version", description="Kernel Version reported by the node.", priority=1),
            _column("Container-Runtime", description="Container Runtime Version reported by the node.", priority=1),
        ],
        _node_row,
    ),
    ("", "pods"): (
        [
            NAME,
            _column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
            _column("Status", description="The aggregate status of the containers in this pod."),
            _column("Restarts", "string", "The number of times the containers in this pod have been restarted."),
            AGE,
            _column("IP", description="IP address allocated to the pod.", priority=1),
            _column("Node", description="Name of the Node this pod is assigned to.", priority=1),
            _column("Nominated Node", description="Name of the node nominated by the scheduler.", priority=1),
            _column("Readiness Gates", description="Pod readiness gates.", priority=1),
        ],
        _pod_row,
    ),
    ("", "namespaces"): ([NAME, _column("Status", description="The status of the namespace"), AGE], _namespace_row),
    ("", "configmaps"): ([NAME, _column("Data", "string", "Number of data entries."), AGE], _configmap_row),
    ("", "secrets"): (
        [NAME, _column("Type", description="The type of the secret"), _column("Data", "string", "Number of data entries."), AGE],
        _secret_row,
    ),
    ("", "services"): (
        [
            NAME,
            _column("Type", description="The type of the service."),
            _column("Cluster-IP", description="The IP address of the service."),
            _column("External-IP", description="External IP addresses of the service."),
            _column("Port(s)", description="The ports of the service."),
            AGE,
        ],
        _service_row,
    ),
    ("apps", "deployments"): (
        [
            NAME,
            _column("Ready", description="Number of the pod with ready state"),
            _column("Up-to-date", "integer", "Total number of non-terminated pods with the desired template."),
            _column("Available", "integer", "Number of available replicas (ready for at least minReadySeconds)."),
            AGE,
            _column("Containers", description="Names of each container in the template.", priority=1),
            _column("Images", description="Images referenced by each container in the template.", priority=1),
            _column("Selector", description="Label selector for pods.", priority=1),
        ],
        _deployment_row,
    ),
    ("apps", "daemonsets"): (
        [
            NAME,
            _column("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
            _column("Current", "integer", "The number of nodes running at least one daemon pod."),
            _column("Ready", "integer", "The number of nodes running the daemon pod and ready."),
            _column("Up-to-date", "integer", "The number of nodes running the updated daemon pod."),
            _column("Available", "integer", "The number of nodes running the daemon pod and available."),
            _column("Node Selector", description="Nodes the daemon pod must be scheduled on."),
            AGE,
            _column("Containers", description="Names of each container in the template.", priority=1),
            _column("Images", description="Images referenced by each container in the template.", priority=1),
            _column("Selector", description="Label selector for pods.", priority=1),
        ],
        _daemonset_row,
    ),
    ("apps", "replicasets"): (
        [
            NAME,
            _column("Desired", "integer", "Number of desired pods."),
            _column("Current", "integer", "Number of actually running pods."),
            _column("Ready", "integer", "Number of ready pods."),
            AGE,
        ],
        _replicaset_row,
    ),
    ("batch", "jobs"): (
        [
            NAME,
            _column("Status", description="Status of the job."),
            _column("Completions", description="The desired number of successfully finished pods."),
            _column("Duration", description="Time required to complete the job."),
            AGE,
        ],
        _job_row,
    ),
    ("resource.k8s.io", "resourceclaims"): (
        [NAME, _column("State", description="A summary of the current state (allocated, pending, reserved, etc.)."), AGE],
        lambda obj: [obj["metadata"]["name"], _resource_claim_state(obj), age(obj)],
    ),
    ("resource.k8s.io", "resourceslices"): (
        [
            NAME,
            _column("Node", description="NodeName identifies the node which provides the resources in this pool."),
            _column("Driver", description="Driver identifies the DRA driver providing the capacity information."),
            _column("Pool", description="Name is used to identify the pool."),
            AGE,
        ],
        _resource_slice_row,
    ),
}


def _json_path(obj: Any, path: str) -> Any:
    """Values of a simple JSONPath (``.spec.a.b``); None where a step is missing."""
    for step in [s for s in path.strip().lstrip("$").split(".") if s]:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


def _custom_columns(rtype: ResourceType, crd: Optional[dict]) -> tuple[list[dict], Callable[[dict], list]]:
    printer_columns: list[dict] = []
    for version in ((crd or {}).get("spec") or {}).get("versions") or []:
        if version.get("name") == rtype.version:
            printer_columns = version.get("additionalPrinterColumns") or []
    if not printer_columns:
        return [NAME, AGE], lambda obj: [obj["metadata"]["name"], age(obj)]
    columns = [NAME]
    for column in printer_columns:
        columns.append(
            _column(
                column["name"], column.get("type", "string"), column.get("description", ""), priority=column.get("priority", 0)
            )
        )

    def row(obj: dict) -> list:
        cells: list = [obj["metadata"]["name"]]
        for column in printer_columns:
            value = _json_path(obj, column.get("jsonPath", ""))
            if column.get("type") == "date" and isinstance(value, str):
                value = age({"metadata": {"creationTimestamp": value}})
            cells.append(value)
        return cells

    return columns, row


def _row_object(obj: dict, include: str, rtype: ResourceType, table_version: str) -> Optional[dict]:
    if include == "None":
        return None
    if include == "Object":
        return {"apiVersion": rtype.group_version, "kind": rtype.kind, **obj}
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"{TABLE_GROUP}/{table_version}",
        "metadata": obj.get("metadata") or {},
    }


def to_table(rtype: ResourceType, answer: dict, table_version: str, include: str, crd: Optional[dict] = None) -> dict:
    """The Table for a get (one object) or list (``items``) answer of ``rtype``."""
    if include not in ("", "None", "Object", "Metadata"):
        raise ValueError(f'includeObject: Unsupported value: "{include}": supported values: "Metadata", "None", "Object"')
    if rtype.custom:
        columns, printer = _custom_columns(rtype, crd)
    else:
        columns, printer = PRINTERS.get(
            (rtype.group, rtype.plural), ([NAME, AGE], lambda obj: [obj["metadata"]["name"], age(obj)])
        )
    objects = answer.get("items") if "items" in answer else [answer]
    metadata = {
        k: v for k, v in (answer.get("metadata") or {}).items() if k in ("resourceVersion", "continue", "remainingItemCount")
    }
    if "items" not in answer:
        metadata = {"resourceVersion": (answer.get("metadata") or {}).get("resourceVersion", "")}
    rows = []
    for obj in objects or []:
        row: dict[str, Any] = {"cells": printer(obj)}
        row_object = _row_object(obj, include, rtype, table_version)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"{TABLE_GROUP}/{table_version}",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }
