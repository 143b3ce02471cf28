"""Node fixtures: GPU nodes as a kubelet with the NVIDIA device plugin would register them.

A node's GPU hardware, for the device plugin doubles (device_plugins.py), is the fake NVML scenario named by its
annotation ``kubeapi.kubegpu.test/nvml-scenario`` (``scenario=``); a node without it is never changed by them.
"""

from __future__ import annotations

from typing import Any, Optional

import yaml

from .device_plugins import SCENARIO_ANNOTATION


def gpu_node(
    name: str,
    gpus: int = 1,
    product: Optional[str] = "Tesla-T4",
    labels: Optional[dict[str, str]] = None,
    ready: bool = True,
    *,
    scenario: Optional[str] = None,
) -> dict:
    """A Node object; ``gpus`` > 0 adds ``nvidia.com/gpu`` capacity (0 makes a CPU-only node); ``scenario`` names
    the fake NVML scenario of its GPUs (the annotation the device plugin doubles read)."""
    capacity: dict[str, Any] = {"cpu": "16", "memory": "65838180Ki", "pods": "110", "ephemeral-storage": "102626232Ki"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    }
    if gpus and product:
        node_labels["nvidia.com/gpu.present"] = "true"
    node_labels.update(labels or {})
    metadata: dict[str, Any] = {"name": name, "labels": node_labels}
    if scenario:
        metadata["annotations"] = {SCENARIO_ANNOTATION: scenario}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": "2024-01-01T00:00:00Z",
                    "lastTransitionTime": "2024-01-01T00:00:00Z",
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kernelVersion": "6.1.0-28-amd64",
                "kubeProxyVersion": "v1.35.2",
                "kubeletVersion": "v1.35.2",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
            },
        },
    }


def generate_nodes(count: int, gpus_per_node: int = 8, prefix: str = "gpu-node-") -> list[dict]:
    """``count`` GPU nodes named ``<prefix>0000`` ... (for benchmarks: e.g. 1,000 nodes)."""
    width = max(4, len(str(count - 1)))
    return [gpu_node(f"{prefix}{index:0{width}d}", gpus=gpus_per_node, product="NVIDIA-H100-80GB-HBM3") for index in range(count)]


def nodes_yaml(nodes: list[dict]) -> str:
    return yaml.safe_dump_all(nodes, sort_keys=False)
