# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-node readiness checks of gpu_validate, pure functions over API objects. Private to the collection.

Each check reads only what a real API server returns (Nodes, DaemonSets, Pods, the OpenFaaS Profile) and the
host's GPU facts, so it means the same on the test bench and on a real cluster. Node affinity and tolerations are
matched as Kubernetes defines them (k8s.io/component-helpers scheduling/corev1: NodeSelectorRequirement operators
In, NotIn, Exists, DoesNotExist, Gt, Lt; matchFields on metadata.name; Toleration.ToleratesTaint: an empty effect
matches every effect, an empty key with Exists matches every taint, an empty operator means Equal). A DaemonSet's
pods get the controller's automatic tolerations (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations).
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping

# A check's outcome
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
CHECKS = ("daemonsets", "allocatable", "profile", "smoke", "gpu_label")
# a node of the DRA driver's stack has two more: the devices its ResourceSlices publish, and a claim with a CEL
# selector on its GPU model; every check in the report's order
DRA_CHECKS = ("resourceslices", "selector")
ALL_CHECKS = ("daemonsets", "allocatable", "resourceslices", "profile", "smoke", "selector", "gpu_label")
# the DRA driver (dra-driver-nvidia-gpu 0.4.1): its driver name, and the DeviceClasses its chart renders for GPUs and
# MIG devices (templates/deviceclass-gpu.yaml: ``device.attributes['gpu.nvidia.com'].type == 'gpu'``; -mig.yaml: 'mig')
DRA_DRIVER = "gpu.nvidia.com"
DRA_CLASSES = {"gpu": "gpu.nvidia.com", "mig": "mig.nvidia.com"}

# The tolerations the DaemonSet controller adds to every daemon pod (NoExecute for not-ready/unreachable,
# NoSchedule for the node-pressure and unschedulable taints), so a cordoned or pressured node still gets its daemons.
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


def check(name: str, result: str, message: str) -> dict[str, str]:
    return {"check": name, "result": result, "message": message}


def _meta(obj: Mapping | None) -> Mapping:
    return (obj or {}).get("metadata") or {}


def _spec(obj: Mapping | None) -> Mapping:
    return (obj or {}).get("spec") or {}


def _labels(node: Mapping) -> Mapping:
    return _meta(node).get("labels") or {}


def _int(value: t.Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


# ---- node affinity and tolerations, as Kubernetes matches them


def requirement_problem(requirement: Mapping, values_of: Mapping, what: str = "label") -> str | None:
    """Why the NodeSelectorRequirement is not met by the labels (or fields) ``values_of``; None when it is."""
    key = requirement.get("key")
    operator = requirement.get("operator")
    wanted = [str(value) for value in requirement.get("values") or []]
    present = key in values_of
    have = values_of.get(key)
    shown = f"{key}={have!r}" if present else f"no {what} {key}"
    if operator == "In":
        if present and str(have) in wanted:
            return None
        return f"{what} {key} in {wanted} is needed, the node has {shown}"
    if operator == "NotIn":
        if not present or str(have) not in wanted:
            return None
        return f"{what} {key} not in {wanted} is needed, the node has {shown}"
    if operator == "Exists":
        return None if present else f"{what} {key} is needed, the node has none"
    if operator == "DoesNotExist":
        return None if not present else f"{what} {key} must be absent, the node has {shown}"
    if operator in ("Gt", "Lt"):
        bound = _int(wanted[0]) if len(wanted) == 1 else None
        number = _int(have) if present else None
        if bound is not None and number is not None and (number > bound if operator == "Gt" else number < bound):
            return None
        return f"{what} {key} {'>' if operator == 'Gt' else '<'} {wanted[0] if wanted else '?'} is needed, the node has {shown}"
    return f"operator {operator!r} of {what} {key} is not a node selector operator (In, NotIn, Exists, DoesNotExist, Gt, Lt)"


def term_problem(term: Mapping, node: Mapping) -> str | None:
    """Why the NodeSelectorTerm does not select ``node`` (all its requirements must hold); None when it does. An
    empty term selects nothing, as in Kubernetes."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return "an empty node selector term selects no node"
    problems = [requirement_problem(item, _labels(node)) for item in expressions]
    problems += [requirement_problem(item, {"metadata.name": _meta(node).get("name")}, "field") for item in fields]
    problems = [problem for problem in problems if problem]
    return "; ".join(problems) or None


def affinity_problem(affinity: Mapping | None, node: Mapping) -> str | None:
    """Why the required node affinity of ``affinity`` does not select ``node`` (no term does); None when it does."""
    required = ((affinity or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return None
    terms = required.get("nodeSelectorTerms") or []
    problems = [term_problem(term, node) for term in terms]
    if any(problem is None for problem in problems):
        return None
    if len(problems) == 1:
        return f"its required node affinity is not met: {problems[0]}"
    listed = "; ".join(f"term {index + 1}: {problem}" for index, problem in enumerate(problems))
    return f"no term of its required node affinity is met ({listed})"


def tolerates(toleration: Mapping, taint: Mapping) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    if operator == "Equal":
        if not key:  # an empty key needs Exists
            return False
        return str(toleration.get("value") or "") == str(taint.get("value") or "")
    return False


def _taint_text(taint: Mapping) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value not in (None, '') else ''}:{taint.get('effect')}"


def untolerated_taints(tolerations: t.Iterable[Mapping], node: Mapping) -> list[Mapping]:
    """The node's NoSchedule and NoExecute taints that no toleration tolerates (PreferNoSchedule blocks nothing)."""
    tolerations = list(tolerations)
    return [
        taint
        for taint in _spec(node).get("taints") or []
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(tolerates(item, taint) for item in tolerations)
    ]


def placement_problem(pod_spec: Mapping, node: Mapping, daemon: bool = False) -> str | None:
    """Why a pod of ``pod_spec`` is not placed on ``node`` (nodeSelector, required node affinity, taints), as
    kube-scheduler and the DaemonSet controller decide; None when it would be. ``daemon`` adds the DaemonSet
    controller's automatic tolerations."""
    labels = _labels(node)
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != str(value):
            has = f"has {key}={labels[key]!r}" if key in labels else "lacks it"
            return f"its nodeSelector needs the label {key}={value}, the node {has}"
    problem = affinity_problem(pod_spec.get("affinity"), node)
    if problem:
        return problem
    tolerations = [*(pod_spec.get("tolerations") or []), *(DAEMON_TOLERATIONS if daemon else ())]
    blocking = untolerated_taints(tolerations, node)
    if blocking:
        shown = ", ".join(_taint_text(taint) for taint in blocking)
        return f"it does not tolerate the node's taint {shown}"
    return None


# ---- daemonsets


def pod_ready(pod: Mapping) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(item.get("type") == "Ready" and item.get("status") == "True" for item in conditions)


def _pod_state(pod: Mapping) -> str:
    status = pod.get("status") or {}
    parts = [f"phase {status.get('phase') or 'Pending'}"]
    for item in status.get("conditions") or []:
        if item.get("type") == "Ready" and item.get("status") != "True":
            parts.append(f"Ready={item.get('status')}" + (f" ({item.get('reason')})" if item.get("reason") else ""))
    for item in status.get("containerStatuses") or []:
        waiting = (item.get("state") or {}).get("waiting")
        if waiting:
            parts.append(f"container {item.get('name')} waiting ({waiting.get('reason')})")
        elif not item.get("ready"):
            parts.append(f"container {item.get('name')} not ready (restarts {item.get('restartCount', 0)})")
    return ", ".join(parts)


def _owned_by(pod: Mapping, daemonset: Mapping) -> bool:
    meta = _meta(daemonset)
    for owner in _meta(pod).get("ownerReferences") or []:
        if owner.get("kind") != "DaemonSet":
            continue
        if meta.get("uid") and owner.get("uid"):
            if owner["uid"] == meta["uid"]:
                return True
        elif owner.get("name") == meta.get("name"):
            return True
    return False


def daemonset_problem(daemonset: Mapping, node: Mapping, pods: t.Iterable[Mapping]) -> str | None:
    """Why ``daemonset`` has no Ready pod on ``node``; None when it has one."""
    name = _meta(node).get("name")
    mine = [pod for pod in pods if _spec(pod).get("nodeName") == name and _owned_by(pod, daemonset)]
    if any(pod_ready(pod) for pod in mine):
        return None
    where = f"DaemonSet {_meta(daemonset).get('namespace')}/{_meta(daemonset).get('name')}"
    if mine:
        pod = mine[0]
        return f"{where}: its pod {_meta(pod).get('name')} is not Ready ({_pod_state(pod)})"
    template = _spec(_spec(daemonset).get("template"))
    problem = placement_problem(template, node, daemon=True)
    if problem:
        return f"{where} places no pod on the node: {problem}"
    return f"{where} has no pod on the node, though its pod template fits the node (the DaemonSet controller has not placed one)"


def check_daemonsets(
    node: Mapping, required: t.Sequence[Mapping], daemonsets: t.Iterable[Mapping], pods: t.Iterable[Mapping]
) -> dict:
    """``required``: ``{"namespace", "name", "what"}`` of each DaemonSet that must have a Ready pod on ``node``."""
    if not required:
        return check("daemonsets", SKIPPED, "no DaemonSet must serve this node (no device stack)")
    by_name = {(_meta(item).get("namespace"), _meta(item).get("name")): item for item in daemonsets}
    pods = list(pods)
    problems, served = [], []
    for want in required:
        key = (want["namespace"], want["name"])
        daemonset = by_name.get(key)
        if daemonset is None:
            problems.append(f"DaemonSet {key[0]}/{key[1]} ({want['what']}) is missing")
            continue
        problem = daemonset_problem(daemonset, node, pods)
        if problem:
            problems.append(f"{problem} ({want['what']})")
        else:
            served.append(key[1])
    if problems:
        return check("daemonsets", FAILED, "; ".join(problems))
    return check("daemonsets", PASSED, f"a Ready pod on the node from each of {', '.join(served)}")


# ---- allocatable


def check_allocatable(node: Mapping, expected: Mapping[str, int] | None, skip_reason: str = "") -> dict:
    """``expected``: resource name -> the count the stack's configuration implies on this node."""
    if skip_reason:
        return check("allocatable", SKIPPED, skip_reason)
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    problems, good = [], []
    for resource, count in (expected or {}).items():
        have = allocatable.get(resource)
        if have is None:
            problems.append(f"{resource} is not allocatable (expected {count})")
        elif _int(have) != count:
            problems.append(f"{resource} is {have}, expected {count}")
        else:
            good.append(f"{resource}={count}")
    if problems:
        return check("allocatable", FAILED, "; ".join(problems))
    return check("allocatable", PASSED, ", ".join(good) or "nothing expected")


# ---- the OpenFaaS Profile


def profile_problem(profile: Mapping, node: Mapping) -> str | None:
    """Why the Profile's pods would not run on ``node`` (its required node affinity, its tolerations against the
    node's NoSchedule/NoExecute taints); None when they would."""
    spec = _spec(profile)
    problem = affinity_problem(spec.get("affinity"), node)
    if problem:
        return problem
    blocking = untolerated_taints(spec.get("tolerations") or [], node)
    if blocking:
        return f"its tolerations do not tolerate the node's taint {', '.join(_taint_text(taint) for taint in blocking)}"
    return None


def check_profile(profile: Mapping | None, where: str, node: Mapping, selected: bool, others: t.Sequence[str] = ()) -> dict:
    """``selected``: whether the Profile must select the node; ``others``: the nodes that are not GPU nodes but
    the Profile selects (a defect reported on every GPU node)."""
    if profile is None:
        return check("profile", FAILED, f"the OpenFaaS Profile {where} does not exist")
    problem = profile_problem(profile, node)
    also = f"also selects nodes that are not GPU nodes: {', '.join(others)}" if others else ""
    extra = f"; it {also}" if also else ""
    if selected and problem:
        return check("profile", FAILED, f"the Profile {where} does not select this GPU node: {problem}{extra}")
    if not selected and not problem:
        return check("profile", FAILED, f"the Profile {where} selects this node, which gpu_labels held back{extra}")
    if extra:
        return check("profile", FAILED, f"the Profile {where} {also}")
    if selected:
        return check("profile", PASSED, f"the Profile {where} selects and tolerates this node")
    return check("profile", PASSED, f"the Profile {where} does not select this held-back node: {problem}")


# ---- gpu=on


def check_gpu_label(node: Mapping, label: tuple[str, str], hold_reason: str | None) -> dict:
    key, value = label
    have = _labels(node).get(key)
    if hold_reason is None:
        if have == value:
            return check("gpu_label", PASSED, f"{key}={value}")
        shown = f"{key}={have!r}" if have is not None else f"no label {key}"
        why = f"{key}={value} is missing (the node has {shown}), though gpu_labels did not hold it back"
        return check("gpu_label", FAILED, why)
    if have == value:
        return check("gpu_label", FAILED, f"{key}={value} is set, but gpu_labels held this node back: {hold_reason}")
    return check("gpu_label", PASSED, f"no {key}={value}: held back ({hold_reason})")


# ---- what each device stack must have on a GPU node, from the stack roles' settings and the real charts


def helm_fullname(release: str, chart: str) -> str:
    """The charts' ``fullname`` helper: the release name when it contains the chart's name, else both joined."""
    name = release if chart in release else f"{release}-{chart}"
    return name[:63].rstrip("-")


def _mig_in_use(facts: Mapping) -> bool:
    return any(device.get("mig_mode_current") for device in facts.get("devices") or [] if isinstance(device, Mapping))


def mig_profile(mig_device: Mapping) -> str:
    """The MIG profile of one of gpu_facts' ``mig_devices`` (NVML names a MIG device ``<GPU name> MIG <profile>``,
    e.g. ``NVIDIA A100-SXM4-40GB MIG 3g.20gb``; a ``profile`` key, where present, wins)."""
    if mig_device.get("profile"):
        return str(mig_device["profile"])
    name = str(mig_device.get("name") or "")
    return name.rsplit(" MIG ", 1)[1].strip() if " MIG " in name else ""


def mig_resource_name(profile: str) -> str:
    """The NVIDIA device plugin's resource of a profile with migStrategy mixed (k8s-device-plugin v0.20.0
    internal/rm/rm.go: ``strings.ReplaceAll("mig-"+p.String(), "+", ".")`` under ``nvidia.com/``)."""
    return "nvidia.com/" + ("mig-" + profile).replace("+", ".")


def mig_expectations(
    facts: Mapping, strategy: str, resource: str = "nvidia.com/gpu", replicas: int = 1
) -> tuple[dict[str, int], str]:
    """(allocatable, skip reason) of a node whose GPUs have MIG on, for the NVIDIA device plugin's ``strategy``
    (k8s-device-plugin v0.20.0 internal/rm/device_map.go ``buildDeviceMapFromConfigResources``): ``mixed``:
    ``nvidia.com/gpu`` = the GPUs with MIG off (when there are any), ``nvidia.com/mig-<profile>`` = the MIG devices of
    each profile; ``single``: ``resource`` = all MIG devices x ``replicas``, where every GPU has MIG on with at least one
    MIG device, all of one profile (else the plugin refuses to start: nothing to count)."""
    devices = [device for device in facts.get("devices") or [] if isinstance(device, Mapping)]
    whole = [device for device in devices if not device.get("mig_mode_current")]
    migs = [mig for device in devices if device.get("mig_mode_current") for mig in device.get("mig_devices") or []]
    profiles = [mig_profile(mig) for mig in migs]
    if strategy == "single":
        empty = [
            str(device.get("index")) for device in devices if device.get("mig_mode_current") and not device.get("mig_devices")
        ]
        if whole or empty or len(set(profiles)) > 1:
            why = (
                "GPUs with MIG on and off"
                if whole
                else f"GPU {', '.join(empty)} has MIG on without MIG devices"
                if empty
                else f"more than one MIG profile ({', '.join(sorted(set(profiles)))})"
            )
            return {}, f"migStrategy single needs every GPU in one MIG profile, this node has {why}: the plugin does not start"
        return {resource: len(migs) * replicas}, ""
    allocatable: dict[str, int] = {}
    if whole:
        allocatable[resource] = len(whole) * replicas
    for profile in profiles:
        name = mig_resource_name(profile)
        allocatable[name] = allocatable.get(name, 0) + 1
    return allocatable, ""


def stack_expectations(stack: str, settings: Mapping, facts: Mapping) -> dict[str, t.Any]:
    """For a GPU node of ``stack``: ``required`` (the DaemonSets that must have a Ready pod on it), ``allocatable``
    (resource -> count) and ``allocatable_skip`` (why the count cannot be known, or "").

    The DaemonSets are those the real charts render for the stack roles' values (hami-2.10.0 and the legacy vgpu
    chart: ``<fullname>-device-plugin``; nvidia-device-plugin 0.20.0: the plugin, ``-gpu-feature-discovery`` with
    GFD, ``-mps-control-daemon`` (rendered always, needed with MPS), the NFD subchart's ``-worker`` with GFD and
    NFD; gpu-operator v26.7.0: the NFD subchart's worker and the operator's device plugin operand
    ``nvidia-device-plugin-daemonset``); the AWS manifest's DaemonSet under the role's name.
    """
    conf = settings.get(stack) or {}
    gpus = len([device for device in facts.get("devices") or [] if isinstance(device, Mapping)])
    required: list[dict[str, str]] = []
    allocatable: dict[str, int] = {}
    skip = ""
    if stack == "vgpu_scheduler":
        flavor = str(conf.get("chart_flavor") or "hami")
        fullname = helm_fullname(str(conf["release"]), "vgpu" if flavor == "vgpu" else "hami")
        required.append({"namespace": conf["namespace"], "name": f"{fullname}-device-plugin", "what": "HAMi's device plugin"})
        # HAMi's device plugin registers deviceSplitCount devices per GPU under its resource name; gpumem and
        # gpucores are its scheduler's bookkeeping (node annotations), not node allocatable
        allocatable[str(conf.get("resource_name") or "nvidia.com/gpu")] = gpus * int(conf.get("device_split_count") or 1)
    elif stack == "nvidia_device_plugin":
        fullname = helm_fullname(str(conf["release"]), "nvidia-device-plugin")
        namespace = conf["namespace"]
        sharing = str(conf.get("sharing") or "none")
        gfd = conf.get("gfd_enabled")
        gfd = sharing == "mps" if gfd is None or gfd == "" else bool(gfd)
        required.append({"namespace": namespace, "name": fullname, "what": "the NVIDIA device plugin"})
        if gfd:
            gfd_name = f"{fullname}-gpu-feature-discovery"
            required.append({"namespace": namespace, "name": gfd_name, "what": "GPU Feature Discovery"})
            if conf.get("nfd_enabled", True):
                nfd = helm_fullname(str(conf["release"]), "node-feature-discovery")
                required.append({"namespace": namespace, "name": f"{nfd}-worker", "what": "the NFD worker"})
        if sharing == "mps":
            required.append({"namespace": namespace, "name": f"{fullname}-mps-control-daemon", "what": "the MPS control daemon"})
        replicas = int(conf.get("replicas") or 1) if sharing in ("time-slicing", "mps") else 1
        resource = "nvidia.com/gpu.shared" if sharing != "none" and conf.get("rename_by_default") else "nvidia.com/gpu"
        allocatable[resource] = gpus * replicas
        if str(conf.get("mig_strategy") or "none") != "none" and _mig_in_use(facts):
            allocatable, skip = mig_expectations(facts, str(conf["mig_strategy"]), resource, replicas)
    elif stack == "gpu_operator":
        namespace = conf["namespace"]
        if conf.get("nfd_enabled", True):
            nfd = helm_fullname(str(conf["release"]), "node-feature-discovery")
            required.append({"namespace": namespace, "name": f"{nfd}-worker", "what": "the NFD worker"})
        if conf.get("device_plugin_enabled", True):
            operand = "nvidia-device-plugin-daemonset"
            required.append({"namespace": namespace, "name": operand, "what": "the operator's device plugin"})
            allocatable["nvidia.com/gpu"] = gpus
            if str(conf.get("mig_strategy") or "none") != "none" and _mig_in_use(facts):
                allocatable, skip = mig_expectations(facts, str(conf["mig_strategy"]))
        else:
            skip = "the operator's device plugin is off (gpu_operator_device_plugin_enabled)"
    elif stack == "dra_driver":
        # dra-driver-nvidia-gpu 0.4.1 templates/kubeletplugin.yaml: ``<name>-kubelet-plugin``, name = the chart's
        # name (or nameOverride), in the release's namespace
        name = f"{conf.get('name') or 'dra-driver-nvidia-gpu'}-kubelet-plugin"
        required.append({"namespace": conf["namespace"], "name": name, "what": "the DRA driver's kubelet plugin"})
        skip = "the DRA driver publishes devices in ResourceSlices, not as node allocatable (see resourceslices)"
    elif stack == "aws_vgpu_plugin":
        required.append({"namespace": conf["namespace"], "name": conf["name"], "what": "the AWS virtual GPU plugin"})
        allocatable["k8s.amazonaws.com/vgpu"] = gpus * int(conf.get("vgpus_per_gpu") or 1)
    else:
        skip = "no device stack on this node (kubegpu_device_plugin=none)"
    return {"required": required, "allocatable": allocatable, "allocatable_skip": skip}


# ---- the DRA driver's ResourceSlices


def _attribute(device: Mapping, name: str) -> t.Any:
    """A device attribute's value (``{"string": ...}``, ``int``, ``bool``, ``version``) by its name in the driver's
    domain (unqualified, or qualified with ``gpu.nvidia.com/``)."""
    attributes = device.get("attributes") or {}
    value = attributes.get(name, attributes.get(f"{DRA_DRIVER}/{name}"))
    if not isinstance(value, Mapping):
        return None
    for key in ("string", "int", "bool", "version"):
        if key in value:
            return value[key]
    return None


def published_devices(node_name: str, slices: t.Iterable[Mapping]) -> list[dict[str, t.Any]]:
    """The devices of driver gpu.nvidia.com the node's ResourceSlices (``spec.nodeName``) publish, by name:
    ``name``, ``pool``, ``type``, ``productName``, ``uuid`` and ``memory`` (capacity)."""
    found = []
    for item in slices:
        spec = _spec(item)
        if spec.get("driver") != DRA_DRIVER or spec.get("nodeName") != node_name:
            continue
        for device in spec.get("devices") or []:
            capacity = device.get("capacity") or {}
            memory = capacity.get("memory", capacity.get(f"{DRA_DRIVER}/memory")) or {}
            found.append(
                {
                    "name": device.get("name"),
                    "pool": (spec.get("pool") or {}).get("name"),
                    "type": _attribute(device, "type"),
                    "productName": _attribute(device, "productName"),
                    "uuid": _attribute(device, "uuid"),
                    "memory": memory.get("value") if isinstance(memory, Mapping) else None,
                }
            )
    return sorted(found, key=lambda device: str(device["name"]))


def dra_expected(facts: Mapping) -> dict[str, int]:
    """What the DRA driver publishes for the GPUs gpu_facts found: a ``gpu`` device per GPU with MIG off, a ``mig``
    device per MIG device of a GPU with MIG on (the driver publishes a MIG-enabled GPU only through its MIG devices)."""
    devices = [device for device in facts.get("devices") or [] if isinstance(device, Mapping)]
    return {
        "gpu": len([device for device in devices if not device.get("mig_mode_current")]),
        "mig": sum(len(device.get("mig_devices") or []) for device in devices if device.get("mig_mode_current")),
    }


def dra_class(facts: Mapping) -> str:
    """The DeviceClass a smoke claim asks on a node: ``gpu.nvidia.com``, or ``mig.nvidia.com`` where every GPU has
    MIG on (no whole GPU is published there)."""
    expected = dra_expected(facts)
    return DRA_CLASSES["mig"] if expected["gpu"] == 0 and expected["mig"] > 0 else DRA_CLASSES["gpu"]


def check_resourceslices(node_name: str, facts: Mapping, slices: t.Iterable[Mapping]) -> dict:
    """The node's ResourceSlices of gpu.nvidia.com publish as many GPUs (and MIG devices) as gpu_facts found."""
    published = published_devices(node_name, slices)
    expected = dra_expected(facts)
    have = {kind: [device["name"] for device in published if device["type"] == kind] for kind in ("gpu", "mig")}
    if not published:
        want = ", ".join(f"{count} {kind}" for kind, count in expected.items() if count) or "no device"
        why = f"no ResourceSlice of driver {DRA_DRIVER} publishes a device of node {node_name} (the facts found {want})"
        return check("resourceslices", FAILED, why)
    problems = [
        f"{len(have[kind])} {kind} device(s) published ({', '.join(have[kind]) or 'none'}), the facts found {count}"
        for kind, count in expected.items()
        if len(have[kind]) != count
    ]
    if problems:
        return check("resourceslices", FAILED, f"node {node_name}: " + "; ".join(problems))
    shown = ", ".join(f"{device['name']} ({device['productName']})" for device in published)
    return check("resourceslices", PASSED, f"{len(published)} device(s) published as the facts found: {shown}")
