"""Dynamic Resource Allocation (``resource.k8s.io/v1``): the scheduler double's device allocation and the API
server's CEL checks (a test-bench simulation of kube-scheduler's DynamicResources plugin).

Read from kubernetes v1.34/1.35: pkg/scheduler/framework/plugins/dynamicresources/dynamicresources.go (PreFilter,
Filter, Reserve, PreBind) and staging/src/k8s.io/dynamic-resource-allocation/structured (the allocator), and
pkg/controller/resourceclaim (claims from templates; claims of Pods that ended: controller.go read at the newest
version stored for the search tool, resource.k8s.io v1alpha3, as the whole v1.35 tree was too large to fetch).

What is simulated:

- **Claims from templates**: a Pod's ``spec.resourceClaims[].resourceClaimTemplateName`` makes a ResourceClaim
  ``<pod>-<claim>-<5 random>`` (``generateName``) with the template's ``spec``, a controller ownerReference to the
  Pod and the ``resource.kubernetes.io/pod-claim-name`` annotation, and the Pod's ``status.resourceClaimStatuses``,
  as the resourceclaim controller of kube-controller-manager does; ``resourceClaimName`` uses an existing claim.
- **Allocation** of every unallocated claim of the Pod, per node: the devices are those of the ResourceSlices whose
  ``spec.nodeName`` is the node (``spec.driver``, ``spec.pool.name``, ``spec.devices[].attributes/capacity``);
  each request's ``exactly.deviceClassName`` must name a DeviceClass, and a device matches when every CEL selector
  of the class and of the request evaluates to true; ``allocationMode: ExactCount`` (default) takes ``count``
  (default 1) devices, ``All`` takes every matching device (and needs at least one); a device already in another
  claim's ``status.allocation`` is not given again. The result is written as the plugin's PreBind writes it:
  ``status.allocation.devices.results[] {request, driver, pool, device}``, ``status.allocation.nodeSelector``
  (``matchFields`` ``metadata.name In [node]``) and ``status.reservedFor [{resource: pods, name, uid}]``. A Pod
  whose claim is already allocated goes only to the node of its ``nodeSelector``.
- **Claims of Pods that ended or went away** (the resourceclaim controller's ``enqueuePod``/``podNeedsClaims``
  and ``syncClaim``, run in controllers.py): when a Pod is done (``Succeeded``/``Failed``, or deleted before it was
  scheduled: ``isPodDone``) or removed, its claims are synced. A claim drops from ``status.reservedFor`` each Pod
  that is gone, has another uid or is done - a bound Pod that is terminating keeps its reservation until its
  kubelet removes it - and loses ``status.allocation`` with the last reservation (the real controller clears the
  allocations that carry the scheduler's ``resource.kubernetes.io/delete-protection`` finalizer, which every
  scheduler allocation does; the bench does not write that finalizer). A claim left unreserved whose controller
  owner is a Pod that still exists and is done is deleted; one whose Pod is gone is deleted by the garbage
  collector (Pods are owners like any other kind there). A shared claim (``resourceClaimName``) stays.
- **Refusals**: a Pod no node can serve stays ``Pending`` (``Unschedulable``) with kube-scheduler's message
  (``0/3 nodes are available: 3 cannot allocate all claims.``) and a ``FailedScheduling`` Warning Event; a claim
  that does not exist: ``resourceclaim "x" not found``; a DeviceClass that does not exist:
  ``request r: device class c does not exist`` (the plugin's PreFilter words).
- **CEL**: expressions are compiled and evaluated by ``cel-python`` (celpy, a real CEL implementation). A selector
  that does not compile is refused when the DeviceClass, ResourceClaim or ResourceClaimTemplate is written (422,
  ``compilation failed: ...``), as kube-apiserver compiles them. ``device.driver`` is a string,
  ``device.attributes[domain].name`` are int, bool, string or version (a version is a string here: the
  ``semver()`` library is not modelled), ``device.capacity[domain].name`` are quantities with Kubernetes' quantity
  library (``quantity("40Gi")``, ``compareTo``, ``isGreaterThan``, ``isLessThan``, ``asInteger``); the string
  extension's ``lowerAscii``/``upperAscii`` exist. An unqualified attribute or capacity name is in the driver's
  domain, as the API defines it. A selector that fails at run time (a missing attribute) does not match the device
(kube-scheduler fails the allocation with a ``CEL runtime error`` instead). Compilation only parses: celpy does not
type-check against the DRA environment, so an unknown field or a non-bool result is accepted on write (and then
matches no device), and CEL cost limits are not applied.

Not simulated: ``firstAvailable`` subrequests, ``constraints`` (``matchAttribute``), ``adminAccess``, device
taints and tolerations, partitionable devices and counters, the extended-resource mapping of DeviceClasses, pools
spread over several slices or nodes (``nodeSelector``/``allNodes`` slices), scoring between feasible nodes (the
first feasible node by name is taken, as elsewhere in the bench), the ``delete-protection`` finalizer (a claim
deleted while reserved goes at once instead of waiting for its Pods), ``reservedFor`` entries of other resources
than Pods (the real controller fails on them; the bench keeps them), the controller's asynchrony (it acts inside
the write that ends the Pod: a run-to-completion Pod's generated claim is gone when the create that placed it
returns). The NVIDIA DRA
driver's ResourceSlices come from its kubelet plugin double (dra_plugin.py) or from the test.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any, Callable, Optional

try:
    import celpy
    from celpy import celtypes
except ImportError:  # pragma: no cover - requirements-test.txt installs cel-python
    celpy = None
    celtypes = None

from .errors import FieldError
from .kubelet import TERMINAL
from .rules import quantity_value

POD_CLAIM_ANNOTATION = "resource.kubernetes.io/pod-claim-name"
CANNOT_ALLOCATE = "cannot allocate all claims"


def parse_quantity(text: str) -> Fraction:
    """A Kubernetes quantity (``80Gi``, ``1.5``, ``500m``, ``1e3``) as an exact number; ValueError otherwise
    (the bench's one quantity parser, rules.quantity_value)."""
    value = quantity_value(str(text))
    if value is None:
        raise ValueError(f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
    return Fraction(value)


class Quantity:
    """A ``resource.Quantity`` inside CEL, with the methods of Kubernetes' quantity library."""

    def __init__(self, text: str) -> None:
        self.text = str(text)
        self.value = parse_quantity(self.text)

    def __repr__(self) -> str:
        return f"quantity({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def _compare(left: Quantity, right: Quantity) -> Any:
    return celtypes.IntType((left.value > right.value) - (left.value < right.value))


def _functions() -> dict[str, Callable]:
    return {
        "quantity": lambda text: Quantity(str(text)),
        "compareTo": _compare,
        "isGreaterThan": lambda left, right: celtypes.BoolType(left.value > right.value),
        "isLessThan": lambda left, right: celtypes.BoolType(left.value < right.value),
        "asInteger": lambda quantity: celtypes.IntType(int(quantity.value)),
        "asApproximateFloat": lambda quantity: celtypes.DoubleType(float(quantity.value)),
        "lowerAscii": lambda text: celtypes.StringType(str(text).lower()),
        "upperAscii": lambda text: celtypes.StringType(str(text).upper()),
    }


def _require_cel() -> None:
    if celpy is None:
        raise RuntimeError("the test API server's DRA allocation needs cel-python (requirements-test.txt)")


def compile_error(expression: str) -> Optional[str]:
    """None when the CEL expression compiles, else the compiler's message."""
    _require_cel()
    try:
        celpy.Environment().compile(expression)
    except celpy.CELParseError as error:
        return str(error).strip()
    return None


def _selector_paths(kind: str, obj: dict) -> list[tuple[str, list]]:
    """(field path, selectors) of a DRA object: the class's, or each request's ``exactly`` selectors."""
    spec = obj.get("spec") or {}
    if kind == "DeviceClass":
        return [("spec.selectors", spec.get("selectors") or [])]
    if kind == "ResourceClaimTemplate":
        spec, prefix = (spec.get("spec") or {}), "spec.spec"
    else:
        prefix = "spec"
    paths = []
    for index, request in enumerate((spec.get("devices") or {}).get("requests") or []):
        exactly = request.get("exactly") or {}
        paths.append((f"{prefix}.devices.requests[{index}].exactly.selectors", exactly.get("selectors") or []))
        for sub_index, sub in enumerate(request.get("firstAvailable") or []):
            paths.append(
                (f"{prefix}.devices.requests[{index}].firstAvailable[{sub_index}].selectors", sub.get("selectors") or [])
            )
    return paths


def cel_errors(group: str, kind: str, obj: dict) -> list[FieldError]:
    """422 causes for CEL selectors that do not compile (kube-apiserver compiles them on every write)."""
    if group != "resource.k8s.io" or kind not in ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate"):
        return []
    if celpy is None:
        return []  # without cel-python, writes are not held back; allocation then says what is missing
    errors = []
    for path, selectors in _selector_paths(kind, obj):
        for index, selector in enumerate(selectors):
            expression = (selector.get("cel") or {}).get("expression")
            if not isinstance(expression, str):
                continue
            message = compile_error(expression)
            if message:
                errors.append(
                    FieldError(f"{path}[{index}].cel.expression", "Invalid", expression, f"compilation failed: {message}")
                )
    return errors


# --- devices ------------------------------------------------------------------------------------


def _attribute_value(attribute: dict) -> Any:
    for key, cel_type in (("bool", "BoolType"), ("int", "IntType"), ("string", "StringType"), ("version", "StringType")):
        if key in attribute:
            return getattr(celtypes, cel_type)(attribute[key])
    return None


def _by_domain(entries: dict, driver: str, convert: Callable[[dict], Any]) -> dict:
    domains: dict[str, dict] = {}
    for name, value in (entries or {}).items():
        domain, slash, short = name.rpartition("/")
        domains.setdefault(domain if slash else driver, {})[short] = convert(value or {})
    return {celtypes.StringType(domain): celtypes.MapType(values) for domain, values in domains.items()}


def node_devices(node_name: str, slices: list[dict]) -> list[dict]:
    """The devices the node's ResourceSlices publish: {driver, pool, name, device (the slice's entry)}."""
    devices = []
    for item in sorted(slices, key=lambda s: s["metadata"]["name"]):
        spec = item.get("spec") or {}
        if spec.get("nodeName") != node_name:
            continue
        for device in spec.get("devices") or []:
            devices.append(
                {
                    "driver": spec.get("driver", ""),
                    "pool": (spec.get("pool") or {}).get("name", ""),
                    "name": device.get("name", ""),
                    "device": device,
                }
            )
    return devices


def _cel_device(entry: dict) -> Any:
    device = entry["device"]
    return celtypes.MapType(
        {
            celtypes.StringType("driver"): celtypes.StringType(entry["driver"]),
            celtypes.StringType("attributes"): celtypes.MapType(
                _by_domain(device.get("attributes"), entry["driver"], _attribute_value)
            ),
            celtypes.StringType("capacity"): celtypes.MapType(
                _by_domain(device.get("capacity"), entry["driver"], lambda c: Quantity(c.get("value", "0")))
            ),
        }
    )


@functools.lru_cache(maxsize=256)
def _program(expression: str) -> Any:
    """The compiled CEL program of a selector (compiled once: building celpy's parser takes seconds)."""
    environment = celpy.Environment()
    return environment.program(environment.compile(expression), functions=_functions())


def selects(expressions: list[str], entry: dict) -> bool:
    """Whether every CEL selector is true for the device (a run-time error: false)."""
    _require_cel()
    activation = {"device": _cel_device(entry)}
    for expression in expressions:
        try:
            result = _program(expression).evaluate(activation)
        except (celpy.CELParseError, celpy.CELEvalError, TypeError, ValueError):
            return False
        if result is not True and result != celtypes.BoolType(True):
            return False
    return True


def allocated_devices(claims: list[dict], skip: tuple[str, str] = ("", "")) -> set[tuple[str, str, str]]:
    """(driver, pool, device) of every device in a claim's allocation."""
    taken = set()
    for claim in claims:
        metadata = claim.get("metadata") or {}
        if (metadata.get("namespace"), metadata.get("name")) == skip:
            continue
        allocation = (claim.get("status") or {}).get("allocation") or {}
        for result in (allocation.get("devices") or {}).get("results") or []:
            taken.add((result.get("driver"), result.get("pool"), result.get("device")))
    return taken


def _selectors(selectors: list) -> list[str]:
    return [(s.get("cel") or {}).get("expression", "") for s in selectors or [] if (s.get("cel") or {}).get("expression")]


def class_problems(claim: dict, classes: dict[str, dict]) -> Optional[str]:
    """The PreFilter's refusal of a claim whose request names no request or a DeviceClass that does not exist."""
    for request in ((claim.get("spec") or {}).get("devices") or {}).get("requests") or []:
        class_name = (request.get("exactly") or {}).get("deviceClassName", "")
        if request.get("exactly") is None:
            return f"request {request.get('name')}: firstAvailable requests are not simulated by the test API server"
        if class_name not in classes:
            return f"request {request.get('name')}: device class {class_name} does not exist"
    return None


def allocate(claim: dict, node_name: str, devices: list[dict], classes: dict[str, dict], taken: set) -> Optional[list[dict]]:
    """The allocation results of one claim on one node, or None when its requests cannot all be met there."""
    results: list[dict] = []
    used = set(taken)
    for request in ((claim.get("spec") or {}).get("devices") or {}).get("requests") or []:
        exactly = request.get("exactly") or {}
        device_class = classes.get(exactly.get("deviceClassName", "")) or {}
        expressions = _selectors((device_class.get("spec") or {}).get("selectors")) + _selectors(exactly.get("selectors"))
        matching = [
            entry
            for entry in devices
            if (entry["driver"], entry["pool"], entry["name"]) not in used and selects(expressions, entry)
        ]
        if exactly.get("allocationMode", "ExactCount") == "All":
            # All: every matching device of the node, none of which may be taken by another claim
            every = [entry for entry in devices if selects(expressions, entry)]
            if not every or len(every) != len(matching):
                return None
            chosen = matching
        else:
            count = int(exactly.get("count") or 1)
            if len(matching) < count:
                return None
            chosen = matching[:count]
        for entry in chosen:
            used.add((entry["driver"], entry["pool"], entry["name"]))
            results.append(
                {"request": request.get("name", ""), "driver": entry["driver"], "pool": entry["pool"], "device": entry["name"]}
            )
    return results


def node_selector(node_name: str) -> dict:
    """The allocation's node selector for node-local devices, as the structured allocator writes it."""
    return {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}


def allocated_node(claim: dict) -> Optional[str]:
    """The node an allocated claim's nodeSelector names (node-local devices), or None."""
    terms = (((claim.get("status") or {}).get("allocation") or {}).get("nodeSelector") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return field["values"][0]
    return None


def pod_claims(pod: dict) -> list[dict]:
    return (pod.get("spec") or {}).get("resourceClaims") or []


def claim_name(pod: dict, pod_claim: dict) -> Optional[str]:
    """The ResourceClaim a Pod's claim entry refers to (a template's: from ``status.resourceClaimStatuses``)."""
    if pod_claim.get("resourceClaimName"):
        return pod_claim["resourceClaimName"]
    for entry in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
        if entry.get("name") == pod_claim.get("name"):
            return entry.get("resourceClaimName")
    return None


def claim_from_template(pod: dict, pod_claim: dict, template: dict) -> dict:
    """The ResourceClaim the resourceclaim controller creates for a Pod's template claim."""
    metadata = pod["metadata"]
    template_meta = (template.get("spec") or {}).get("metadata") or {}
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {
            "generateName": f"{metadata['name']}-{pod_claim['name']}-",
            "namespace": metadata.get("namespace", "default"),
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": {**(template_meta.get("annotations") or {}), POD_CLAIM_ANNOTATION: pod_claim["name"]},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": metadata["name"],
                    "uid": metadata.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": (template.get("spec") or {}).get("spec") or {},
    }


# --- the resourceclaim controller: claims of pods that ended or went away --------------------------


def pod_done(pod: dict) -> bool:
    """``isPodDone``: finished (Succeeded, Failed), or deleted before it was scheduled; a bound Pod that is
    terminating may still run until its kubelet removes it."""
    if (pod.get("status") or {}).get("phase") in TERMINAL:
        return True
    return bool(pod["metadata"].get("deletionTimestamp")) and not (pod.get("spec") or {}).get("nodeName")


def pod_needs_claims(pod: dict, deleted: bool) -> bool:
    """``podNeedsClaims``: False once the Pod is removed or done, when its claims are looked at again."""
    return not deleted and not pod_done(pod)


def owning_pod(claim: dict) -> Optional[dict]:
    """``owningPod``: the controller ownerReference of a claim generated for a Pod (``v1``, ``Pod``), or None."""
    for ref in (claim.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("apiVersion") == "v1" and ref.get("kind") == "Pod":
            return ref
    return None


def released_status(claim: dict, pods: dict) -> Optional[dict]:
    """``syncClaim``'s new status: the ``reservedFor`` Pods that are gone, replaced (another uid) or done taken out,
    and the allocation cleared when the last one goes; None when every reservation stands. ``pods``: (namespace,
    name) -> Pod. Every allocation here is the scheduler's, which carries the ``resource.kubernetes.io/delete-protection``
    finalizer on a real cluster (the bench does not write it): the real controller clears exactly those."""
    status = claim.get("status") or {}
    reserved = status.get("reservedFor") or []
    namespace = claim["metadata"].get("namespace") or ""
    valid = []
    for ref in reserved:
        if not ref.get("apiGroup") and ref.get("resource") == "pods":
            pod = pods.get((namespace, ref.get("name", "")))
            if pod is None or pod["metadata"].get("uid") != ref.get("uid") or pod_done(pod):
                continue
        valid.append(ref)
    if len(valid) == len(reserved):
        return None
    new = {key: value for key, value in status.items() if key != "reservedFor"}
    if valid:
        new["reservedFor"] = valid
    else:
        new.pop("allocation", None)
    return new


def unneeded_generated_claim(claim: dict, pods: dict) -> bool:
    """Whether ``syncClaim`` deletes a claim with no reservation left: it was generated for a Pod that still exists
    and is done or was replaced (a Pod that is gone is left to the garbage collector)."""
    if ((claim.get("status") or {}).get("reservedFor")) or claim["metadata"].get("deletionTimestamp"):
        return False
    owner = owning_pod(claim)
    if owner is None:
        return False
    pod = pods.get((claim["metadata"].get("namespace") or "", owner.get("name", "")))
    return pod is not None and (pod["metadata"].get("uid") != owner.get("uid") or pod_done(pod))
