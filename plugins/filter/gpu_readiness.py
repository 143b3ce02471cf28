# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.filter.gpu_node_labels import gpu_node_hold_reason
from ansible_collections.kubegpu.core.plugins.module_utils import _gpu_checks as checks

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


def gpu_health(gpu: Mapping) -> list[dict[str, t.Any]]:
    """Each GPU's ``index``, ``health`` (gpu_facts: ok, degraded, unhealthy; None when unknown) and ``reasons``."""
    return [
        {"index": device.get("index"), "health": device.get("health"), "reasons": list(device.get("health_reasons") or [])}
        for device in gpu.get("devices") or []
        if isinstance(device, Mapping)
    ]


def gpu_health_text(entry: Mapping) -> str:
    """``GPU 0 ok, GPU 1 unhealthy (why)`` for the report."""
    return ", ".join(
        f"GPU {item.get('index')} {item.get('health') or 'unknown'}"
        + (f" ({'; '.join(item['reasons'])})" if item.get("reasons") else "")
        for item in entry.get("gpu_health") or []
    )


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


def _node_checks(
    target: Mapping,
    node: Mapping | None,
    smoke: Mapping,
    *,
    stacks: Mapping | None,
    daemonsets: list,
    stack_pods: list,
    profile: Mapping | None,
    cluster_nodes: list,
) -> list[dict[str, str]]:
    """The checks of one GPU node, in the report's order: daemonsets, allocatable, profile, smoke, gpu_label."""
    name = target.get("node")
    smoke_check = checks.check("smoke", smoke["result"], smoke["message"])
    if node is None:
        gone = f"node {name} is not registered with the API server"
        return [checks.check(item, checks.FAILED, gone) if item != "smoke" else smoke_check for item in checks.CHECKS]
    gpu = _mapping(target.get("gpu"), f"the gpu facts of {name}")
    hold = gpu_node_hold_reason(gpu, target.get("default_runtime")) if "present" in gpu else "no ansible_facts.gpu"
    stack = str(target.get("device_plugin") or "none")
    found = []
    if stacks is None:
        found.append(checks.check("daemonsets", checks.SKIPPED, "not asked (no stack settings given)"))
        found.append(checks.check("allocatable", checks.SKIPPED, "not asked (no stack settings given)"))
    elif hold and stack != "none":
        held = f"gpu_labels held this node back ({hold}): no device stack is expected on it yet"
        found.append(checks.check("daemonsets", checks.SKIPPED, held))
        found.append(checks.check("allocatable", checks.SKIPPED, held))
    else:
        expected = checks.stack_expectations(stack, stacks, gpu)
        found.append(checks.check_daemonsets(node, expected["required"], daemonsets, stack_pods))
        found.append(checks.check_allocatable(node, expected["allocatable"], expected["allocatable_skip"]))
    wanted = profile or {}
    if not wanted.get("enabled"):
        found.append(checks.check("profile", checks.SKIPPED, wanted.get("reason") or "OpenFaaS is not enabled"))
    else:
        gpu_names = set(wanted.get("gpu_nodes") or [])
        others = []
        if wanted.get("object") is not None:
            others = [
                str(checks._meta(item).get("name"))
                for item in cluster_nodes
                if checks._meta(item).get("name") not in gpu_names and checks.profile_problem(wanted["object"], item) is None
            ]
        selected = hold is None and stack != "none"
        found.append(checks.check_profile(wanted.get("object"), str(wanted.get("where")), node, selected, sorted(others)))
    found.append(smoke_check)
    label = (stacks or {}).get("gpu_label") or ["gpu", "on"]
    found.append(checks.check_gpu_label(node, (str(label[0]), str(label[1])), hold))
    return found


def _overall(found: list[Mapping]) -> str:
    results = [item["result"] for item in found]
    if checks.FAILED in results:
        return checks.FAILED
    return checks.PASSED if checks.PASSED in results else checks.SKIPPED


def smoke_results(pods: list, expected: int, timeout: int) -> dict[str, t.Any]:
    """The smoke result of a node that got ``expected`` pods (more than its GPUs where the stack shares them by
    time-slicing or MPS): passed when all of them succeeded, else the first failure."""
    if expected <= 1:
        return smoke_result(pods[0] if pods else None, timeout)
    pods = sorted(pods, key=lambda pod: str((pod.get("metadata") or {}).get("name")))
    results = [smoke_result(pod, timeout) for pod in pods]
    for result in results:
        if result["result"] != "passed":
            return result
    if len(results) < expected:
        return {"result": "failed", "message": f"{len(results)} of {expected} smoke pods were found after the wait", "pod": None}
    node = ((pods[0].get("spec") or {}).get("nodeName")) if pods else None
    return {
        "result": "passed",
        "message": f"{expected} pods, each asking for one shared GPU, succeeded together on {node}",
        "pod": results[0]["pod"],
    }


def gpu_readiness(
    targets: t.Any,
    nodes: t.Any,
    pods: t.Any = None,
    *,
    skipped: str = "",
    timeout: int = 0,
    stacks: t.Any = None,
    daemonsets: t.Any = None,
    stack_pods: t.Any = None,
    profile: t.Any = None,
) -> list[dict[str, t.Any]]:
    if not isinstance(targets, list):
        raise AnsibleFilterError(f"gpu_readiness: the input must be a list of nodes, not {type(targets).__name__}")
    node_list = [node for node in nodes or [] if isinstance(node, Mapping)]
    by_name = {(node.get("metadata") or {}).get("name"): node for node in node_list}
    stacks = None if stacks is None else _mapping(stacks, "stacks")
    profile = _mapping(profile, "profile")
    daemonsets = [item for item in daemonsets or [] if isinstance(item, Mapping)]
    stack_pods = [item for item in stack_pods or [] if isinstance(item, Mapping)]
    pods_by_node: dict[str, list] = {}
    for pod in pods or []:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if annotations.get(SMOKE_NODE_ANNOTATION):
            pods_by_node.setdefault(annotations[SMOKE_NODE_ANNOTATION], []).append(pod)
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
            smoke = smoke_results(pods_by_node.get(name) or [], int(target.get("smoke_pods") or 1), timeout)
        found = _node_checks(
            target,
            node,
            smoke,
            stacks=stacks,
            daemonsets=daemonsets,
            stack_pods=stack_pods,
            profile=profile,
            cluster_nodes=node_list,
        )
        entries.append(
            {
                "node": name,
                "host": target.get("host"),
                "device_plugin": target.get("device_plugin"),
                "registered": node is not None,
                "gpus": gpu_summary(gpu),
                "gpu_health": gpu_health(gpu),
                "driver_version": gpu.get("driver_version"),
                "driver_state": gpu.get("driver_state"),
                "driver_state_reason": gpu.get("driver_state_reason"),
                "cuda_driver_version": gpu.get("cuda_driver_version"),
                "default_runtime": target.get("default_runtime"),
                "labels": labels,
                "taints": list(((node or {}).get("spec") or {}).get("taints") or []),
                "allocatable": allocatable,
                "smoke": smoke,
                "checks": found,
                "result": _overall(found),
            }
        )
    # by node name: the targets come in the order the play's hosts finished, which varies, and a re-run that
    # changes nothing must write the same report
    return sorted(entries, key=lambda entry: str(entry["node"]))


def gpu_readiness_daemonsets(targets: t.Any, stacks: t.Any) -> list[dict[str, str]]:
    """The DaemonSets (``namespace``, ``name``) that must serve some GPU node of ``targets``, each once: what the
    role reads (by name) before it reads their pods (by each DaemonSet's own selector)."""
    if not isinstance(targets, list):
        raise AnsibleFilterError(f"gpu_readiness_daemonsets: the input must be a list of nodes, not {type(targets).__name__}")
    stacks = _mapping(stacks, "stacks")
    found: dict[tuple[str, str], dict[str, str]] = {}
    for item in targets:
        target = _mapping(item, "each node")
        gpu = _mapping(target.get("gpu"), f"the gpu facts of {target.get('node')}")
        for want in checks.stack_expectations(str(target.get("device_plugin") or "none"), stacks, gpu)["required"]:
            found.setdefault(
                (str(want["namespace"]), str(want["name"])), {"namespace": str(want["namespace"]), "name": str(want["name"])}
            )
    return [found[key] for key in sorted(found)]


def gpu_readiness_failures(entries: t.Any) -> list[str]:
    """``node: check: message`` of every failed check, for the play's failure message."""
    return [
        f"{entry['node']}: {item['check']}: {item['message']}"
        for entry in entries or []
        for item in entry.get("checks") or []
        if item.get("result") == checks.FAILED
    ]


def _taint(taint: Mapping) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


def _row(entry: Mapping) -> list[str]:
    gpus = entry.get("gpus") or {}
    models = ", ".join(gpus.get("models") or []) or "-"
    return [
        str(entry.get("node")),
        f"{gpus.get('count', 0)}x {models}" if gpus.get("count") else "none in facts",
        _driver(entry),
        str(entry.get("default_runtime") or "-"),
        ", ".join(f"{key}={value}" for key, value in (entry.get("allocatable") or {}).items()) or "-",
        ", ".join(_taint(taint) for taint in entry.get("taints") or []) or "-",
        *[_check_result(entry, name) for name in checks.CHECKS],
        str(entry.get("result")),
    ]


def _driver(entry: Mapping) -> str:
    """The driver's version, or its state where gpu_facts found it not ready (``broken``, ``not_loaded``)."""
    state = entry.get("driver_state")
    if state and state != "ready":
        return str(state)
    return str(entry.get("driver_version") or "-")


def _check_result(entry: Mapping, name: str) -> str:
    for item in entry.get("checks") or []:
        if item.get("check") == name:
            return str(item.get("result"))
    return "-"


# the node's GPU resources as it advertises them ("advertised"), then each check's result
HEADER = ["node", "GPUs", "driver", "runtime", "advertised", "taints", *checks.CHECKS, "result"]


def gpu_readiness_table(entries: t.Any) -> list[str]:
    """The lines of a plain-text table (for the play's output), then one line per check of every node."""
    rows = [HEADER] + [_row(_mapping(entry, "each entry")) for entry in entries or []]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += [
        f"{entry['node']}: {item['check']}: {item['result']} - {item['message']}"
        for entry in entries or []
        for item in entry.get("checks") or []
    ]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def gpu_readiness_markdown(entries: t.Any) -> str:
    """The report as a Markdown document: a summary table, then each node's checks and labels."""
    entries = [_mapping(entry, "each entry") for entry in entries or []]
    passed = sum(1 for entry in entries if entry.get("result") == "passed")
    failed = sum(1 for entry in entries if entry.get("result") == "failed")
    lines = [
        "# GPU readiness",
        "",
        f"{len(entries)} GPU node(s): {passed} passed, {failed} failed, {len(entries) - passed - failed} skipped.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in _row(entry)) + " |" for entry in entries]
    for entry in entries:
        lines += ["", f"## {entry['node']}", ""]
        lines.append(f"- result: **{entry.get('result')}**")
        lines += [f"- {item['check']}: **{item['result']}** - {_cell(item['message'])}" for item in entry.get("checks") or []]
        lines.append(f"- device stack: {entry.get('device_plugin') or '-'}")
        if entry.get("driver_state") not in (None, "ready"):
            lines.append(f"- driver: **{entry['driver_state']}** - {_cell(str(entry.get('driver_state_reason') or '-'))}")
        memory = ", ".join(f"{mib} MiB" for mib in entry["gpus"]["memory_mib"] if mib is not None) or "-"
        lines.append(f"- GPU memory: {memory}")
        lines.append(f"- GPU health: {_cell(gpu_health_text(entry) or '-')}")
        labels = ", ".join(f"`{key}={value}`" for key, value in entry["labels"].items()) or "-"
        lines.append(f"- labels: {labels}")
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self) -> dict[str, t.Callable]:
        return {
            "gpu_readiness": gpu_readiness,
            "gpu_readiness_table": gpu_readiness_table,
            "gpu_readiness_markdown": gpu_readiness_markdown,
            "gpu_readiness_failures": gpu_readiness_failures,
            "gpu_readiness_daemonsets": gpu_readiness_daemonsets,
        }
