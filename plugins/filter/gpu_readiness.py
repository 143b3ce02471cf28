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
# the DRA selector check's pod (no node pinned where the node's GPU model is unique): the node it must land on
SELECTOR_NODE_ANNOTATION = "kubegpu.io/selector-node"
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


def _terminated(container_status: Mapping) -> Mapping:
    return (container_status.get("state") or {}).get("terminated") or {}


def _init_exits(status: Mapping) -> list[Mapping]:
    """The init containers' statuses, in order, of those that have terminated."""
    return [item for item in status.get("initContainerStatuses") or [] if _terminated(item)]


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
    # a DRA smoke pod: the smoke command is its init container, then a container only waits (holding the claim)
    init = [item.get("name") for item in (pod.get("spec") or {}).get("initContainers") or []]
    if phase == "Running" and init:
        finished = _init_exits(status)
        if [item.get("name") for item in finished] == init and all(_terminated(item).get("exitCode") == 0 for item in finished):
            return {
                "result": "passed",
                "message": f"pod {name}: init container {', '.join(init)} exited 0 on {node}",
                "pod": name,
            }
    if phase == "Failed":
        exits = [
            f"{kind} {item.get('name')} exited {_terminated(item).get('exitCode')}"
            f" ({_terminated(item).get('reason') or 'no reason'})"
            for kind, items in (("init container", _init_exits(status)), ("container", status.get("containerStatuses") or []))
            for item in items
            if _terminated(item)
        ]
        why = ": ".join(part for part in (status.get("reason"), status.get("message")) if part)
        detail = "; ".join([why, *exits] if why else exits) or "no reason given"
        return {"result": "failed", "message": f"pod {name} failed: {detail}", "pod": name}
    waiting = ""
    for item in status.get("conditions") or []:
        if item.get("status") == "False" and item.get("type") == "PodScheduled":
            waiting = f": not scheduled ({item.get('reason')}): {item.get('message')}"
    if not waiting:
        for item in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
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
    dra: Mapping | None = None,
) -> list[dict[str, str]]:
    """The checks of one GPU node, in the report's order: daemonsets, allocatable, profile, smoke, gpu_label, and on
    a node of the DRA driver resourceslices (after allocatable) and selector (after smoke)."""
    name = target.get("node")
    smoke_check = checks.check("smoke", smoke["result"], smoke["message"])
    names = checks.ALL_CHECKS if dra is not None else checks.CHECKS
    if node is None:
        gone = f"node {name} is not registered with the API server"
        return [checks.check(item, checks.FAILED, gone) if item != "smoke" else smoke_check for item in names]
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
    if dra is not None:
        if hold:
            why = f"gpu_labels held this node back ({hold}): no device stack is expected on it yet"
            found.append(checks.check("resourceslices", checks.SKIPPED, why))
        else:
            found.append(checks.check_resourceslices(str(name), gpu, dra["slices"]))
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
    if dra is not None:
        found.append(dra["selector"])
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


def _claims_of(pod: Mapping, claims: list) -> list[Mapping]:
    """The ResourceClaims the pod's claims name (``status.resourceClaimStatuses``, or ``resourceClaimName``)."""
    names = {entry.get("resourceClaimName") for entry in (pod.get("status") or {}).get("resourceClaimStatuses") or []}
    names |= {entry.get("resourceClaimName") for entry in (pod.get("spec") or {}).get("resourceClaims") or []}
    namespace = (pod.get("metadata") or {}).get("namespace")
    return [
        claim
        for claim in claims
        if (claim.get("metadata") or {}).get("name") in names and (claim.get("metadata") or {}).get("namespace") == namespace
    ]


def allocated(pods: list, claims: list, check: str) -> list[dict[str, t.Any]]:
    """Each device the claims of ``pods`` were allocated: ``check`` (smoke or selector), ``pod``, ``driver``,
    ``pool``, ``device`` (not the claim's generated name: a re-run that changes nothing writes the same report)."""
    found = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        for claim in _claims_of(pod, claims):
            allocation = (claim.get("status") or {}).get("allocation") or {}
            for result in (allocation.get("devices") or {}).get("results") or []:
                found.append(
                    {
                        "check": check,
                        "pod": f"{meta.get('namespace')}/{meta.get('name')}",
                        "driver": result.get("driver"),
                        "pool": result.get("pool"),
                        "device": result.get("device"),
                    }
                )
    return found


def selector_check(target: Mapping, pod: Mapping | None, devices: list, slices: list, timeout: int) -> dict[str, str]:
    """The DRA selector check of one node: its claim, selecting by CEL the node's GPU model, was allocated a device of
    that model on this node and its pod succeeded there. Where another DRA node has the same model, the pod is pinned
    to the node by a required node affinity (so the claim cannot tell the nodes apart) and only the device's model is
    judged."""
    name = str(target.get("node"))
    selector = target.get("dra") or {}
    product = selector.get("product")
    outcome = smoke_result(pod, timeout)
    if pod is None or outcome["result"] != "passed":
        return checks.check("selector", checks.FAILED, f"the claim selecting productName {product!r}: {outcome['message']}")
    placed = (pod.get("spec") or {}).get("nodeName")
    if placed != name:
        return checks.check(
            "selector", checks.FAILED, f"the claim selecting productName {product!r} landed on {placed}, not on {name}"
        )
    if not devices:
        return checks.check("selector", checks.FAILED, f"the claim selecting productName {product!r} shows no allocated device")
    published = {}
    for item in slices:
        spec = item.get("spec") or {}
        for device in checks.published_devices(str(spec.get("nodeName")), [item]):
            published[(device["pool"], device["name"])] = device
    problems = []
    for result in devices:
        device = published.get((result["pool"], result["device"]))
        if result["driver"] != checks.DRA_DRIVER or device is None or result["pool"] != name:
            problems.append(f"{result['driver']}/{result['pool']}/{result['device']} is not a device of this node")
        elif device["productName"] != product:
            problems.append(f"{result['device']} is a {device['productName']!r}")
    if problems:
        return checks.check("selector", checks.FAILED, f"the claim selecting productName {product!r}: {'; '.join(problems)}")
    how = (
        f"pinned to the node, as {', '.join(selector.get('same_model') or [])} has the same model"
        if selector.get("same_model")
        else "placed by the scheduler alone"
    )
    shown = ", ".join(result["device"] for result in devices)
    return checks.check("selector", checks.PASSED, f"a claim selecting productName {product!r} got {shown} on {name} ({how})")


def _dra(target: Mapping, pods: tuple[list, Mapping | None], slices: list, claims: list, *, skipped: str, timeout: int) -> dict:
    """What the DRA checks of one node of the DRA driver judge, and the report's ``dra`` entry."""
    name = str(target.get("node"))
    smoke_pods, selector_pod = pods
    selector_devices = allocated([selector_pod] if selector_pod else [], claims, "selector")
    if not (target.get("dra") or {}).get("product"):
        selector = checks.check("selector", checks.SKIPPED, "no GPU in the facts to select by model")
    elif not target.get("smoke"):
        selector = checks.check("selector", checks.SKIPPED, str(target.get("skip_reason") or "no selector claim for this node"))
    elif skipped:
        selector = checks.check("selector", checks.SKIPPED, skipped)
    else:
        selector = selector_check(target, selector_pod, selector_devices, slices, timeout)
    return {
        "slices": slices,
        "selector": selector,
        "entry": {
            "published": checks.published_devices(name, slices),
            "allocated": allocated(smoke_pods, claims, "smoke") + selector_devices,
        },
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
    slices: t.Any = None,
    claims: t.Any = None,
) -> list[dict[str, t.Any]]:
    if not isinstance(targets, list):
        raise AnsibleFilterError(f"gpu_readiness: the input must be a list of nodes, not {type(targets).__name__}")
    slices = [item for item in slices or [] if isinstance(item, Mapping)]
    claims = [item for item in claims or [] if isinstance(item, Mapping)]
    node_list = [node for node in nodes or [] if isinstance(node, Mapping)]
    by_name = {(node.get("metadata") or {}).get("name"): node for node in node_list}
    stacks = None if stacks is None else _mapping(stacks, "stacks")
    profile = _mapping(profile, "profile")
    daemonsets = [item for item in daemonsets or [] if isinstance(item, Mapping)]
    stack_pods = [item for item in stack_pods or [] if isinstance(item, Mapping)]
    pods_by_node: dict[str, list] = {}
    selector_pods: dict[str, Mapping] = {}
    for pod in pods or []:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if annotations.get(SMOKE_NODE_ANNOTATION):
            pods_by_node.setdefault(annotations[SMOKE_NODE_ANNOTATION], []).append(pod)
        elif annotations.get(SELECTOR_NODE_ANNOTATION):
            selector_pods[annotations[SELECTOR_NODE_ANNOTATION]] = pod
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
        dra = None
        if target.get("device_plugin") == "dra_driver":
            pair = (pods_by_node.get(name) or [], selector_pods.get(name))
            dra = _dra(target, pair, slices, claims, skipped=skipped, timeout=timeout)
        found = _node_checks(
            target,
            node,
            smoke,
            stacks=stacks,
            daemonsets=daemonsets,
            stack_pods=stack_pods,
            profile=profile,
            cluster_nodes=node_list,
            dra=dra,
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
                "dra": dra["entry"] if dra is not None else None,
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


def _row(entry: Mapping, columns: t.Sequence[str] = checks.CHECKS) -> list[str]:
    gpus = entry.get("gpus") or {}
    models = ", ".join(gpus.get("models") or []) or "-"
    return [
        str(entry.get("node")),
        f"{gpus.get('count', 0)}x {models}" if gpus.get("count") else "none in facts",
        _driver(entry),
        str(entry.get("default_runtime") or "-"),
        ", ".join(f"{key}={value}" for key, value in (entry.get("allocatable") or {}).items()) or "-",
        ", ".join(_taint(taint) for taint in entry.get("taints") or []) or "-",
        *[_check_result(entry, name) for name in columns],
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


def _columns(entries: list) -> list[str]:
    """The checks shown as columns: the five of every node, and the DRA checks where a node of the DRA driver has them."""
    present = {item.get("check") for entry in entries for item in entry.get("checks") or []}
    return [name for name in checks.ALL_CHECKS if name in checks.CHECKS or name in present]


def _header(columns: t.Sequence[str]) -> list[str]:
    return [*HEADER[:6], *columns, "result"]


def gpu_readiness_table(entries: t.Any) -> list[str]:
    """The lines of a plain-text table (for the play's output), then one line per check of every node."""
    entries = [_mapping(entry, "each entry") for entry in entries or []]
    columns = _columns(entries)
    header = _header(columns)
    rows = [header] + [_row(entry, columns) for entry in entries]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
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
        "| " + " | ".join(_header(_columns(entries))) + " |",
        "|" + "---|" * len(_header(_columns(entries))),
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in _row(entry, _columns(entries))) + " |" for entry in entries]
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
        if entry.get("dra") is not None:
            published = ", ".join(
                f"`{item['name']}` ({item.get('type')}, {item.get('productName')})"
                for item in entry["dra"].get("published") or []
            )
            lines.append(f"- DRA devices published: {_cell(published or '-')}")
            taken = ", ".join(
                f"`{item['device']}` to {item['pod']} ({item['check']})" for item in entry["dra"].get("allocated") or []
            )
            lines.append(f"- DRA devices allocated: {_cell(taken or '-')}")
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
