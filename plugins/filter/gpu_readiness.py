# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# The filters' documentation: gpu_readiness.yml, gpu_readiness_table.yml, gpu_readiness_markdown.yml next to this file.


SMOKE_NODE_ANNOTATION = "kubegpu.io/smoke-node"
LABEL_PREFIXES = ("nvidia.com/", "k8s.amazonaws.com/", "feature.node.kubernetes.io/pci-10de")
LABEL_KEYS = ("gpu", "accelerator")
RESOURCE_PREFIXES = ("nvidia.com/", "k8s.amazonaws.com/")


def _mapping(value: t.Any, what: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"gpu_readiness: {what} must be a mapping, not {type(value).__name__}")
    return value


def gpu_summary(gpu: Mapping) -> dict[str, t.Any]:
    devices = [device for device in gpu.get("devices") or [] if isinstance(device, Mapping)]
    return {
        "count": len(devices),
        "models": sorted({str(device.get("name")) for device in devices if device.get("name")}),
        "memory_mib": [device.get("memory_total_mib") for device in devices],
    }


def smoke_result(pod: Mapping | None, timeout: int) -> dict[str, t.Any]:
    if pod is None:
        return {"result": "failed", "message": "the smoke pod was not found after the wait", "pod": None}
    metadata = pod.get("metadata") or {}
    name = f"{metadata.get('namespace')}/{metadata.get('name')}"
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    node = (pod.get("spec") or {}).get("nodeName")
    if phase == "Succeeded":
        return {"result": "passed", "message": f"pod {name} succeeded on {node}", "pod": name}
    if phase == "Failed":
        exits = [
            f"container {item.get('name')} exited {item['state']['terminated'].get('exitCode')}"
            f" ({item['state']['terminated'].get('reason') or 'no reason'})"
            for item in status.get("containerStatuses") or []
            if (item.get("state") or {}).get("terminated")
        ]
        why = ": ".join(part for part in (status.get("reason"), status.get("message")) if part)
        detail = "; ".join([why, *exits] if why else exits) or "no reason given"
        return {"result": "failed", "message": f"pod {name} failed: {detail}", "pod": name}
    waiting = ""
    for item in status.get("conditions") or []:
        if item.get("status") == "False" and item.get("type") == "PodScheduled":
            waiting = f": not scheduled ({item.get('reason')}): {item.get('message')}"
    if not waiting:
        for item in status.get("containerStatuses") or []:
            state = (item.get("state") or {}).get("waiting")
            if state:
                waiting = f": container {item.get('name')} waiting ({state.get('reason')}): {state.get('message') or ''}"
    where = f" on {node}" if node else ""
    return {
        "result": "failed",
        "message": f"pod {name} did not finish within {timeout}s, still {phase}{where}{waiting}",
        "pod": name,
    }


def gpu_readiness(
    targets: t.Any, nodes: t.Any, pods: t.Any = None, skipped: str = "", timeout: int = 0
) -> list[dict[str, t.Any]]:
    if not isinstance(targets, list):
        raise AnsibleFilterError(f"gpu_readiness: the input must be a list of nodes, not {type(targets).__name__}")
    by_name = {(node.get("metadata") or {}).get("name"): node for node in nodes or [] if isinstance(node, Mapping)}
    pod_by_node = {}
    for pod in pods or []:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if annotations.get(SMOKE_NODE_ANNOTATION):
            pod_by_node[annotations[SMOKE_NODE_ANNOTATION]] = pod
    entries = []
    for item in targets:
        target = _mapping(item, "each node")
        name = target.get("node")
        gpu = _mapping(target.get("gpu"), f"the gpu facts of {name}")
        node = by_name.get(name)
        metadata = (node or {}).get("metadata") or {}
        labels = {
            key: value
            for key, value in sorted((metadata.get("labels") or {}).items())
            if key in LABEL_KEYS or key.startswith(LABEL_PREFIXES)
        }
        allocatable = {
            key: value
            for key, value in sorted((((node or {}).get("status") or {}).get("allocatable") or {}).items())
            if key.startswith(RESOURCE_PREFIXES)
        }
        if node is None:
            smoke = {"result": "failed", "message": f"node {name} is not registered with the API server", "pod": None}
        elif not target.get("smoke"):
            reason = target.get("skip_reason") or "no smoke pod for this node"
            smoke = {"result": "skipped", "message": reason, "pod": None}
        elif skipped:
            smoke = {"result": "skipped", "message": skipped, "pod": None}
        else:
            smoke = smoke_result(pod_by_node.get(name), timeout)
        entries.append(
            {
                "node": name,
                "host": target.get("host"),
                "device_plugin": target.get("device_plugin"),
                "registered": node is not None,
                "gpus": gpu_summary(gpu),
                "driver_version": gpu.get("driver_version"),
                "cuda_driver_version": gpu.get("cuda_driver_version"),
                "default_runtime": target.get("default_runtime"),
                "labels": labels,
                "taints": list(((node or {}).get("spec") or {}).get("taints") or []),
                "allocatable": allocatable,
                "smoke": smoke,
            }
        )
    # by node name: the targets come in the order the play's hosts finished, which varies, and a re-run that
    # changes nothing must write the same report
    return sorted(entries, key=lambda entry: str(entry["node"]))


def _taint(taint: Mapping) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


def _row(entry: Mapping) -> list[str]:
    gpus = entry.get("gpus") or {}
    models = ", ".join(gpus.get("models") or []) or "-"
    return [
        str(entry.get("node")),
        f"{gpus.get('count', 0)}x {models}" if gpus.get("count") else "none in facts",
        str(entry.get("driver_version") or "-"),
        str(entry.get("default_runtime") or "-"),
        ", ".join(f"{key}={value}" for key, value in (entry.get("allocatable") or {}).items()) or "-",
        ", ".join(_taint(taint) for taint in entry.get("taints") or []) or "-",
        str((entry.get("smoke") or {}).get("result")),
    ]


HEADER = ["node", "GPUs", "driver", "runtime", "allocatable", "taints", "smoke"]


def gpu_readiness_table(entries: t.Any) -> list[str]:
    """The lines of a plain-text table (for the play's output), then one line per smoke message."""
    rows = [HEADER] + [_row(_mapping(entry, "each entry")) for entry in entries or []]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += [f"{entry['node']}: {entry['smoke']['result']} - {entry['smoke']['message']}" for entry in entries or []]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def gpu_readiness_markdown(entries: t.Any) -> str:
    """The report as a Markdown document: a summary table, then each node's labels and smoke message."""
    entries = [_mapping(entry, "each entry") for entry in entries or []]
    passed = sum(1 for entry in entries if entry["smoke"]["result"] == "passed")
    failed = sum(1 for entry in entries if entry["smoke"]["result"] == "failed")
    lines = [
        "# GPU readiness",
        "",
        f"{len(entries)} GPU node(s): {passed} smoke test(s) passed, {failed} failed, {len(entries) - passed - failed} skipped.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in _row(entry)) + " |" for entry in entries]
    for entry in entries:
        lines += ["", f"## {entry['node']}", ""]
        lines.append(f"- smoke: **{entry['smoke']['result']}** - {entry['smoke']['message']}")
        lines.append(f"- device stack: {entry.get('device_plugin') or '-'}")
        memory = ", ".join(f"{mib} MiB" for mib in entry["gpus"]["memory_mib"] if mib is not None) or "-"
        lines.append(f"- GPU memory: {memory}")
        labels = ", ".join(f"`{key}={value}`" for key, value in entry["labels"].items()) or "-"
        lines.append(f"- labels: {labels}")
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self) -> dict[str, t.Callable]:
        return {
            "gpu_readiness": gpu_readiness,
            "gpu_readiness_table": gpu_readiness_table,
            "gpu_readiness_markdown": gpu_readiness_markdown,
        }
