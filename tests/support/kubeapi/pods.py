"""Pod fixtures for drain tests: pods as controllers and the kubelet would leave them on a node."""

from __future__ import annotations

from typing import Optional

# the controller the DaemonSet-owned pods of the drain tests name ("gpu-plugin", app=ds)
DAEMONSET = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "gpu-plugin", "namespace": "default"},
    "spec": {
        "selector": {"matchLabels": {"app": "ds"}},
        "template": {"metadata": {"labels": {"app": "ds"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    },
}


def pod(
    name: str,
    node: str,
    *,
    namespace: str = "default",
    owner: Optional[tuple[str, str]] = ("ReplicaSet", "web-5d8f7c"),
    labels: Optional[dict[str, str]] = None,
    ready: bool = True,
    phase: str = "Running",
    empty_dir: bool = False,
    mirror: bool = False,
) -> dict:
    """A scheduled pod; ``owner`` is the controller (kind, name) or None for an unmanaged pod."""
    metadata: dict = {"name": name, "namespace": namespace, "labels": dict(labels or {"app": "web"})}
    if owner:
        api_version = "apps/v1" if owner[0] in ("ReplicaSet", "DaemonSet", "StatefulSet") else "batch/v1"
        metadata["ownerReferences"] = [
            {
                "apiVersion": api_version,
                "kind": owner[0],
                "name": owner[1],
                "uid": f"uid-{owner[1]}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    if mirror:
        metadata["annotations"] = {"kubernetes.io/config.mirror": "0123456789abcdef", "kubernetes.io/config.source": "file"}
    volumes = [{"name": "scratch", "emptyDir": {}}] if empty_dir else []
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "registry.invalid/app:1"}],
            "volumes": volumes,
        },
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def budget(
    name: str,
    *,
    min_available: Optional[object] = None,
    max_unavailable: Optional[object] = None,
    labels: Optional[dict] = None,
    namespace: str = "default",
) -> dict:
    """A policy/v1 PodDisruptionBudget selecting ``labels`` (``app=web`` by default)."""
    spec: dict = {"selector": {"matchLabels": dict(labels or {"app": "web"})}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata, "spec": spec}
