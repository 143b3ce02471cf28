"""Workload controllers and the garbage collector of kube-controller-manager, as doubles (a test-bench
simulation: no container runs, the Pods they create are placed and "run" by kubelet.py's doubles).

They run only with the ready controller on, synchronously inside the write that triggers them (under the
store's lock, through a de-duplicated work queue), so a client reads their result as soon as its write returns.
Each follows the real controller's source (kubernetes/kubernetes, read at v1.35):

- **DaemonSet** (pkg/controller/daemon/daemon_controller.go, util/daemonset_util.go): for each Node,
  ``NodeShouldRunDaemonPod`` decides (shouldRun, shouldContinueRunning) from the template's ``nodeName``,
  ``nodeSelector`` and required node affinity and the node's ``NoSchedule``/``NoExecute`` taints against the
  template's tolerations plus the ones the controller adds to every daemon pod (``DAEMON_TOLERATIONS``:
  not-ready and unreachable ``NoExecute``, disk/memory/pid-pressure and unschedulable ``NoSchedule``,
  network-unavailable for ``hostNetwork``). A node that should run the pod and has none gets one (generateName
  ``<ds>-``, controller ownerReference, labels ``controller-revision-hash`` and ``pod-template-generation``, the
  required node affinity replaced by a ``matchFields`` term on ``metadata.name``, as ``ReplaceDaemonSetPodNodeName
  NodeAffinity`` does since 1.12: the scheduler double binds it); a pod on a node that should not keep it
  (selector or affinity no longer match, an untolerated ``NoExecute`` taint) is deleted, a ``NoSchedule`` taint
  added later keeps it, a ``Failed`` pod is replaced. Status as ``updateDaemonSetStatus`` counts it. A changed
  template replaces every old pod at once (no ``maxUnavailable`` pacing); no ControllerRevision objects are
  written (the hash is the bench's own, of the template).
- **Deployment** (pkg/controller/deployment): one ReplicaSet per template, ``<name>-<pod-template-hash>`` with
  the ``pod-template-hash`` label and the ``deployment.kubernetes.io/revision`` annotation; the new one gets all
  replicas at once and the old ones are scaled to 0 once the new one is fully available (a "surge everything"
  rolling update; ``maxSurge`` pacing and ``Recreate`` ordering are not simulated). Status and the ``Available``
  (MinimumReplicasAvailable/MinimumReplicasUnavailable, from ``maxUnavailable``) and ``Progressing``
  (NewReplicaSetCreated, ReplicaSetUpdated, NewReplicaSetAvailable) conditions with the real reasons and messages;
  past ``progressDeadlineSeconds`` (600 by default) without progress, ``Progressing`` turns False with reason
  ProgressDeadlineExceeded (a timer re-syncs the Deployment then; timestamps have one-second resolution).
- **ReplicaSet** (pkg/controller/replicaset): pods ``<rs>-xxxxx`` up to ``replicas``, surplus deleted (newest
  first); status replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (``minReadySeconds`` ignored).
- **StatefulSet** (pkg/controller/statefulset): pods ``<name>-0`` .. ``<name>-N-1`` with
  ``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and ``controller-revision-hash``
  labels; ``OrderedReady`` creates pod i+1 once pod i is Running and Ready, ``Parallel`` all at once; a changed
  template deletes the old pods (highest ordinal first is not paced). No PersistentVolumeClaims are created.
- **Job** (pkg/controller/job/job_controller.go): ``parallelism`` pods (at most the completions left) with the
  ``batch.kubernetes.io/job-name`` and ``controller-uid`` labels; counts ``active``, ``ready``, ``succeeded``,
  ``failed``; ``startTime``; once ``completions`` pods succeeded, ``completionTime`` and the conditions
  ``SuccessCriteriaMet`` then ``Complete`` (reason CompletionsReached, from 1.31, where ``delayTerminalCondition``
  holds) or ``Complete`` alone before. No backoff limit, failure or success policies, indexes or suspension.
- **Garbage collector** (pkg/controller/garbagecollector, with the API server's part in
  staging/.../registry/generic/registry/store.go): a deleted owner's dependents (``ownerReferences`` by uid) are
  deleted (``Background``; the default for every kind here except ``batch/v1`` Jobs and core ReplicationControllers,
  whose default is ``Orphan``), orphaned (the reference removed) or, for ``Foreground``, deleted first while the
  owner waits with the ``foregroundDeletion`` finalizer until the ``blockOwnerDeletion`` dependents are gone. A
  dependent with another owner still present keeps living, the gone owner's reference removed. Pods are owners like
  any other kind (their generated ResourceClaims go once they are removed, not while they terminate).
- **ResourceClaims** (pkg/controller/resourceclaim/controller.go ``enqueuePod``, ``syncClaim``): the claims of a Pod
  that is done or removed lose it from ``status.reservedFor`` (and their allocation with the last reservation); a
  claim generated for a Pod that is done is deleted (dra.py ``released_status``, ``unneeded_generated_claim``).
- **Node events**: a Node created, changed or deleted re-syncs every DaemonSet, gives still-Pending pods another
  scheduling attempt, and (pod GC, without its 40 s quarantine) deletes pods bound to a deleted node.

Missing fields are read with the defaults the real API server would have written (the bench does no defaulting):
``replicas`` 1, ``strategy``/``updateStrategy`` RollingUpdate with 25 % ``maxUnavailable``, ``minReadySeconds`` 0,
``parallelism`` and ``completions`` 1, ``podManagementPolicy`` OrderedReady.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
import threading
from typing import TYPE_CHECKING, Any, Optional

from . import dra, kubelet
from .errors import ApiError

if TYPE_CHECKING:
    from .catalogue import ResourceType
    from .store import Store

CONTROLLER_MANAGER = "kube-controller-manager"
GARBAGE_COLLECTOR = "generic-garbage-collector"
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

# util/daemonset_util.go AddOrUpdateDaemonPodTolerations
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}

# kinds whose controllers run here: (group, plural) -> kind
WORKLOADS = {
    ("apps", "daemonsets"): "DaemonSet",
    ("apps", "deployments"): "Deployment",
    ("apps", "replicasets"): "ReplicaSet",
    ("apps", "statefulsets"): "StatefulSet",
    ("batch", "jobs"): "Job",
}
# rest.GarbageCollectionPolicy of each kind's strategy when DeleteOptions name none
RESOURCE_CLAIMS = ("resource.k8s.io", "resourceclaims")
ORPHAN_BY_DEFAULT = {("batch", "jobs"), ("", "replicationcontrollers")}
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand SafeEncodeString


# --- pure decisions -----------------------------------------------------------------------------


def template_hash(template: dict) -> str:
    """A stable short hash of a pod template, spelt with Kubernetes' safe alphabet (the value is the bench's)."""
    digest = int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:4], "big")
    out = []
    for _attempt in range(10):
        digest, rest = divmod(digest, len(SAFE_ALPHABET))
        out.append(SAFE_ALPHABET[rest])
        if not digest:
            break
    return "".join(out)


def daemon_pod_tolerations(spec: dict) -> list[dict]:
    """The template's tolerations plus those the daemon controller adds (replacing one of the same key and effect)."""
    added = list(DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        added.append(HOST_NETWORK_TOLERATION)
    tolerations = [
        t
        for t in spec.get("tolerations") or []
        if not any((t.get("key"), t.get("effect")) == (a["key"], a["effect"]) for a in added)
    ]
    return tolerations + [dict(item) for item in added]


def new_daemon_pod(ds: dict, node_name: str) -> dict:
    """``NewPod``: the template as a Pod for ``node_name``, with the controller's tolerations."""
    template = ds["spec"].get("template") or {}
    spec = json.loads(json.dumps(template.get("spec") or {}))
    spec["tolerations"] = daemon_pod_tolerations(spec)
    spec["nodeName"] = node_name
    return {"metadata": json.loads(json.dumps(template.get("metadata") or {})), "spec": spec}


def node_should_run_daemon_pod(ds: dict, node: dict) -> tuple[bool, bool]:
    """(shouldRun, shouldContinueRunning) as ``NodeShouldRunDaemonPod`` decides them."""
    name = node["metadata"]["name"]
    template_node = ((ds["spec"].get("template") or {}).get("spec") or {}).get("nodeName")
    if template_node and template_node != name:
        return False, False
    pod = new_daemon_pod(ds, name)
    if not kubelet.matches_affinity(pod, node):
        return False, False
    if kubelet.untolerated_taint(pod, node) is not None:
        no_execute = kubelet.untolerated_taint(pod, node, effects=("NoExecute",))
        return False, no_execute is None
    return True, True


def target_node(pod: dict) -> Optional[str]:
    """``GetTargetNodeName``: the bound node, else the node of the ``matchFields`` term the controller wrote."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(field.get("values") or []) == 1:
                return field["values"][0]
    return None


def with_node_affinity(spec: dict, node_name: str) -> dict:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: one required term, ``metadata.name In [node]``."""
    spec = dict(spec)
    spec.pop("nodeName", None)
    affinity = dict(spec.get("affinity") or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]
    }
    affinity["nodeAffinity"] = node_affinity
    spec["affinity"] = affinity
    return spec


def pod_ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_active(pod: dict) -> bool:
    """``FilterActivePods``: not finished and not being deleted."""
    return (pod.get("status") or {}).get("phase") not in kubelet.TERMINAL and not pod["metadata"].get("deletionTimestamp")


def controller_of(obj: dict) -> Optional[dict]:
    return next((ref for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("controller")), None)


def owner_reference(owner: dict, kind: str, api_version: str) -> dict:
    metadata = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def scaled(value: Any, total: int, *, round_up: bool) -> int:
    """An int-or-percent of ``total`` (``GetScaledValueFromIntOrPercent``)."""
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def max_unavailable(deployment: dict) -> int:
    """``MaxUnavailable``: 0 for Recreate; the rolling update's (25 % by default) resolved against replicas."""
    spec = deployment.get("spec") or {}
    replicas = spec.get("replicas", 1)
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # ResolveFenceposts
    return min(unavailable, replicas)


def _seconds_since(stamp: str) -> float:
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - moment).total_seconds()


def _minor(version: str) -> Optional[int]:
    match = re.match(r"v?1\.(\d+)", version or "")
    return int(match.group(1)) if match else None


def _nonzero(status: dict) -> dict:
    """Deployment, ReplicaSet, StatefulSet and Job counters are ``omitempty``."""
    return {key: value for key, value in status.items() if value not in (0, None)}


def _condition(kind: str, status: str, reason: str, message: str, *, stamp: str, old: Optional[dict]) -> dict:
    """A Deployment condition keeping lastTransitionTime while its status stays, lastUpdateTime while it all stays."""
    old = old or {}
    transition = old.get("lastTransitionTime") if old.get("status") == status else None
    same = (old.get("status"), old.get("reason"), old.get("message")) == (status, reason, message)
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": (old.get("lastUpdateTime") if same else None) or stamp,
        "lastTransitionTime": transition or stamp,
        "reason": reason,
        "message": message,
    }


# --- the controllers ----------------------------------------------------------------------------


class Controllers:
    """The controller doubles of one Store: ``notify`` enqueues, the outermost call drains."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queue: dict[tuple, None] = {}
        self.draining = False
        self._types: dict[tuple[str, str], ResourceType] = {}
        # (DaemonSet uid, node name) -> shouldRun at the DaemonSet's last sync, so that a Node change re-syncs
        # only the DaemonSets whose decision for that node changed (the real controller's updateNode)
        self.decisions: dict[tuple[str, str], bool] = {}
        self.errors: list[str] = []
        self.epoch = 0
        self.timers: dict[tuple, threading.Timer] = {}  # what the controllers' own writes were refused, for debugging

    def clear(self) -> None:
        self.epoch += 1  # timers of before a reset do nothing
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.queue.clear()
        self.decisions.clear()

    def rtype(self, group: str, plural: str) -> ResourceType:
        if (group, plural) not in self._types:
            if group not in ("", "apps", "batch"):
                return self.rtype_of(group, plural)  # served versions follow the reported minor (DRA, custom resources)
            found = self.store.catalogue.find(group, "v1", plural)
            assert found is not None, (group, plural)
            self._types[(group, plural)] = found
        return self._types[(group, plural)]

    def objects(self, group: str, plural: str) -> dict:
        return self.store.objects.get((group, plural), {})

    def now(self) -> str:
        from .store import now  # noqa: PLC0415 - store imports this module

        return now()

    # --- events -------------------------------------------------------------------------------

    def notify(self, rtype: ResourceType, obj: dict, *, deleted: bool = False, spec_changed: bool = True) -> None:
        """An object was written (``spec_changed`` False: only its status) or removed; queue what reacts."""
        key = rtype.storage_key
        metadata = obj.get("metadata") or {}
        namespace, name = metadata.get("namespace") or "", metadata.get("name", "")
        if key == ("", "pods"):
            if not deleted and spec_changed:
                self.queue[("pod", namespace, name)] = None
            self._owner(obj)
            self._pod_claims(obj, deleted)
        elif key == RESOURCE_CLAIMS:
            if not deleted:
                self.queue[("claim", namespace, name)] = None
        elif key == ("", "nodes"):
            self.queue[("node", "", name)] = None
            if deleted:
                self.queue[("node-gone", "", name)] = None
        elif key in WORKLOADS:
            if not deleted:
                self.queue[(key, namespace, name)] = None
            self._owner(obj)
        if deleted:
            self.queue[("gc", namespace, metadata.get("uid", ""))] = None
        if deleted:
            for ref in metadata.get("ownerReferences") or []:
                group = ref.get("apiVersion", "").rpartition("/")[0]
                self.queue[("foreground", namespace, (group, ref.get("kind", ""), ref.get("name", "")))] = None
        self.drain()

    def _owner(self, obj: dict) -> None:
        ref = controller_of(obj)
        if ref is None:
            return
        group = ref.get("apiVersion", "").rpartition("/")[0]
        for key, kind in WORKLOADS.items():
            if (group, kind) == (key[0], ref.get("kind")):
                self.queue[(key, obj["metadata"].get("namespace") or "", ref.get("name", ""))] = None

    def _pod_claims(self, pod: dict, deleted: bool) -> None:
        """The resourceclaim controller's ``enqueuePod``: the claims of a Pod that no longer needs them are synced."""
        if not dra.pod_claims(pod) or dra.pod_needs_claims(pod, deleted):
            return
        namespace = pod["metadata"].get("namespace") or ""
        for pod_claim in dra.pod_claims(pod):
            name = dra.claim_name(pod, pod_claim)
            if name:
                self.queue[("claim", namespace, name)] = None

    def drain(self) -> None:
        if self.draining:
            return
        self.draining = True
        try:
            while self.queue:
                item = next(iter(self.queue))
                del self.queue[item]
                try:
                    self._sync(item)
                except ApiError as error:
                    # a real controller records an Event and retries; the client's own write has succeeded
                    self.errors.append(f"{item}: {error}")
        finally:
            self.draining = False
            self.queue.clear()

    def _sync(self, item: tuple) -> None:
        what, namespace, name = item
        if what == "pod":
            pod = self.objects("", "pods").get((namespace, name))
            if pod is not None:
                self.store._pod_controller(self.rtype("", "pods"), pod)
        elif what == "node":
            self._node_changed(name)
        elif what == "node-gone":
            self._pod_gc(name)
        elif what == "gc":
            self._collect(namespace, name)
        elif what == "foreground":
            self._foreground_done(namespace, name)
        elif what == "claim":
            self._sync_claim(namespace, name)
        else:
            obj = self.objects(*what).get((namespace, name))
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return
            getattr(self, f"_sync_{WORKLOADS[what].lower()}")(obj)

    # --- shared writes ------------------------------------------------------------------------

    def _pods_of(self, owner: dict) -> list[dict]:
        uid = owner["metadata"]["uid"]
        namespace = owner["metadata"].get("namespace") or ""
        return [
            pod
            for key, pod in sorted(self.objects("", "pods").items())
            if key[0] == namespace and (controller_of(pod) or {}).get("uid") == uid
        ]

    def _create_pod(
        self,
        owner: dict,
        kind: str,
        api_version: str,
        template: dict,
        *,
        name: str = "",
        generate: str = "",
        labels: Optional[dict] = None,
        spec: Optional[dict] = None,
    ) -> None:
        metadata = json.loads(json.dumps(template.get("metadata") or {}))
        metadata.pop("name", None)
        metadata["labels"] = {**(metadata.get("labels") or {}), **(labels or {})}
        if name:
            metadata["name"] = name
        else:
            metadata["generateName"] = generate
        metadata["namespace"] = owner["metadata"]["namespace"]
        metadata["ownerReferences"] = [owner_reference(owner, kind, api_version)]
        body = {"metadata": metadata, "spec": spec if spec is not None else json.loads(json.dumps(template.get("spec") or {}))}
        self.store.create(self.rtype("", "pods"), owner["metadata"]["namespace"], body, manager=CONTROLLER_MANAGER)

    def _delete(self, group: str, plural: str, obj: dict, propagation: Optional[str] = None) -> None:
        if obj["metadata"].get("deletionTimestamp"):
            return
        metadata = obj["metadata"]
        self.store.delete(self.rtype(group, plural), metadata.get("namespace"), metadata["name"], propagation=propagation)

    def _status(self, group: str, plural: str, obj: dict, status: dict) -> None:
        if status != obj.get("status"):
            self.store._set_status(self.rtype(group, plural), obj, status)

    # --- DaemonSet ------------------------------------------------------------------------------

    def _sync_daemonset(self, ds: dict) -> None:
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        revision = template_hash(template)
        generation = ds["metadata"].get("generation", 1)
        nodes = sorted(self.objects("", "nodes").values(), key=lambda n: n["metadata"]["name"])
        by_node: dict[str, list[dict]] = {}
        for pod in self._pods_of(ds):
            by_node.setdefault(target_node(pod) or "", []).append(pod)
        for node in nodes:
            node_name = node["metadata"]["name"]
            should_run, should_continue = node_should_run_daemon_pod(ds, node)
            pods = by_node.get(node_name, [])
            running = []
            for pod in pods:
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                if not should_continue or (pod.get("status") or {}).get("phase") == "Failed":
                    self._delete("", "pods", pod)
                elif (pod["metadata"].get("labels") or {}).get("controller-revision-hash") != revision:
                    self._delete("", "pods", pod)  # the rolling update, unpaced
                else:
                    running.append(pod)
            for extra in running[1:]:
                self._delete("", "pods", extra)
            if should_run and not running:
                pod_spec = with_node_affinity(new_daemon_pod(ds, node_name)["spec"], node_name)
                labels = {"controller-revision-hash": revision, "pod-template-generation": str(generation)}
                self._create_pod(
                    ds, "DaemonSet", "apps/v1", template, generate=f"{ds['metadata']['name']}-", labels=labels, spec=pod_spec
                )
        ds = self.objects("apps", "daemonsets").get((ds["metadata"]["namespace"], ds["metadata"]["name"]))
        if ds is not None:
            self._status("apps", "daemonsets", ds, self._daemonset_status(ds, nodes, revision))

    def _daemonset_status(self, ds: dict, nodes: list[dict], revision: str) -> dict:
        """``updateDaemonSetStatus``."""
        by_node: dict[str, list[dict]] = {}
        for pod in self._pods_of(ds):
            by_node.setdefault(target_node(pod) or "", []).append(pod)
        desired = current = ready = available = updated = misscheduled = 0
        uid = ds["metadata"]["uid"]
        for node in nodes:
            should_run, _continue = node_should_run_daemon_pod(ds, node)
            self.decisions[(uid, node["metadata"]["name"])] = should_run
            pods = sorted(by_node.get(node["metadata"]["name"], []), key=lambda p: p["metadata"]["creationTimestamp"])
            if not should_run:
                misscheduled += 1 if pods else 0
                continue
            desired += 1
            if not pods:
                continue
            current += 1
            pod = pods[0]
            if pod_ready(pod):
                ready += 1
                available += 1  # minReadySeconds not simulated
            if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") == revision:
                updated += 1
        status: dict[str, Any] = {
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        status.update(
            _nonzero({"updatedNumberScheduled": updated, "numberAvailable": available, "numberUnavailable": desired - available})
        )
        return status

    # --- ReplicaSet -----------------------------------------------------------------------------

    def _sync_replicaset(self, rs: dict) -> None:
        spec = rs.get("spec") or {}
        replicas = spec.get("replicas", 1)
        pods = [pod for pod in self._pods_of(rs) if pod_active(pod)]
        name = rs["metadata"]["name"]
        for _index in range(replicas - len(pods)):
            self._create_pod(rs, "ReplicaSet", "apps/v1", spec.get("template") or {}, generate=f"{name}-")
        # getPodsToDelete: unscheduled, then pending, then not ready, then newest first
        surplus = sorted(
            pods,
            key=lambda p: (
                bool((p.get("spec") or {}).get("nodeName")),
                (p.get("status") or {}).get("phase") != "Pending",
                pod_ready(p),
                p["metadata"]["creationTimestamp"],
            ),
        )
        for pod in surplus[: max(0, len(pods) - replicas)]:
            self._delete("", "pods", pod)
        rs = self.objects("apps", "replicasets").get((rs["metadata"]["namespace"], name))
        if rs is None:
            return
        active = [pod for pod in self._pods_of(rs) if pod_active(pod)]
        ready = sum(1 for pod in active if pod_ready(pod))
        status = {"replicas": len(active)}  # the one counter that is not omitempty
        status.update(_nonzero({"fullyLabeledReplicas": len(active), "readyReplicas": ready, "availableReplicas": ready}))
        status["observedGeneration"] = rs["metadata"].get("generation", 1)
        self._status("apps", "replicasets", rs, status)

    # --- Deployment -----------------------------------------------------------------------------

    def _sync_deployment(self, deployment: dict) -> None:
        spec = deployment.get("spec") or {}
        replicas = spec.get("replicas", 1)
        template = spec.get("template") or {}
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        uid = deployment["metadata"]["uid"]
        owned = [
            rs
            for key, rs in sorted(self.objects("apps", "replicasets").items())
            if key[0] == namespace and (controller_of(rs) or {}).get("uid") == uid and not rs["metadata"].get("deletionTimestamp")
        ]
        revision = template_hash(template)
        new = next((rs for rs in owned if (rs["metadata"].get("labels") or {}).get("pod-template-hash") == revision), None)
        olds = [rs for rs in owned if rs is not new]
        number = max(
            [int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0")) for rs in owned] or [0]
        )
        rs_type = self.rtype("apps", "replicasets")
        created = False
        if new is None:
            metadata = json.loads(json.dumps(template.get("metadata") or {}))
            labels = {**(metadata.get("labels") or {}), "pod-template-hash": revision}
            selector = json.loads(json.dumps(spec.get("selector") or {}))
            selector.setdefault("matchLabels", {})["pod-template-hash"] = revision
            body = {
                "metadata": {
                    "name": f"{name}-{revision}",
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                        "deployment.kubernetes.io/revision": str(number + 1),
                    },
                    "ownerReferences": [owner_reference(deployment, "Deployment", "apps/v1")],
                },
                "spec": {
                    "replicas": replicas,
                    "selector": selector,
                    "template": {**template, "metadata": {**metadata, "labels": labels}},
                },
            }
            self.store.create(rs_type, namespace, body, manager=CONTROLLER_MANAGER)
            created = True
        else:
            self._scale(new, replicas)
        new = self.objects("apps", "replicasets").get((namespace, f"{name}-{revision}"))
        if new is None:
            return
        new_status = new.get("status") or {}
        if new_status.get("availableReplicas", 0) >= replicas and new_status.get("replicas", 0) == replicas:
            for old in olds:
                self._scale(old, 0)
        deployment = self.objects("apps", "deployments").get((namespace, name))
        if deployment is not None:
            self._status("apps", "deployments", deployment, self._deployment_status(deployment, new, created))

    def _scale(self, rs: dict, replicas: int) -> None:
        if (rs.get("spec") or {}).get("replicas", 1) == replicas:
            return
        scaled_rs = json.loads(json.dumps(rs))
        scaled_rs["spec"]["replicas"] = replicas
        scaled_rs["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(replicas)
        self.store._write(self.rtype("apps", "replicasets"), rs, scaled_rs, manager=CONTROLLER_MANAGER, dry_run=False)

    def _deployment_status(self, deployment: dict, new: dict, created: bool) -> dict:
        """``calculateStatus`` and the conditions of sync.go / progress.go."""
        spec = deployment.get("spec") or {}
        replicas = spec.get("replicas", 1)
        uid = deployment["metadata"]["uid"]
        namespace = deployment["metadata"]["namespace"]
        owned = [
            rs
            for key, rs in self.objects("apps", "replicasets").items()
            if key[0] == namespace and (controller_of(rs) or {}).get("uid") == uid
        ]
        total = sum((rs.get("status") or {}).get("replicas", 0) for rs in owned)
        ready = sum((rs.get("status") or {}).get("readyReplicas", 0) for rs in owned)
        available = sum((rs.get("status") or {}).get("availableReplicas", 0) for rs in owned)
        updated = (new.get("status") or {}).get("replicas", 0)
        generation = deployment["metadata"].get("generation", 1)
        status = _nonzero(
            {
                "observedGeneration": generation,
                "replicas": total,
                "updatedReplicas": updated,
                "readyReplicas": ready,
                "availableReplicas": available,
                "unavailableReplicas": max(0, total - available),
            }
        )
        old = {c.get("type"): c for c in (deployment.get("status") or {}).get("conditions") or []}
        stamp = self.now()
        if available >= replicas - max_unavailable(deployment):
            available_condition = _condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                stamp=stamp,
                old=old.get("Available"),
            )
        else:
            available_condition = _condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                stamp=stamp,
                old=old.get("Available"),
            )
        rs_name = new["metadata"]["name"]
        before = deployment.get("status") or {}
        moved = any(
            status.get(key, 0) != before.get(key, 0)
            for key in ("updatedReplicas", "replicas", "readyReplicas", "availableReplicas")
        )
        deadline = spec.get("progressDeadlineSeconds", 600)
        last = (old.get("Progressing") or {}).get("lastUpdateTime")
        if updated == replicas and total == replicas and available == replicas:
            progressing = _condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                stamp=stamp,
                old=old.get("Progressing"),
            )
        elif created or moved or not last:
            reason, message = (
                ("NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
                if created
                else ("ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
            )
            progressing = _condition("Progressing", "True", reason, message, stamp=stamp, old=None)
            progressing["lastTransitionTime"] = (old.get("Progressing") or {}).get("lastTransitionTime") or stamp
            self._wake_after(deployment, deadline + 1)
        elif _seconds_since(last) > deadline:  # DeploymentTimedOut
            progressing = _condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                stamp=stamp,
                old=old.get("Progressing"),
            )
        else:
            progressing = old["Progressing"]
            self._wake_after(deployment, deadline + 1 - _seconds_since(last))
        status["conditions"] = [available_condition, progressing]
        return status

    def _wake_after(self, deployment: dict, seconds: float) -> None:
        """Sync the Deployment again when its progress deadline may have passed (the real controller requeues it)."""
        key = (("apps", "deployments"), deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        epoch = self.epoch

        def wake() -> None:
            with self.store.lock:
                if self.epoch == epoch and self.store.ready_controller:
                    self.queue[key] = None
                    self.drain()

        previous = self.timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        timer = threading.Timer(max(0.0, seconds), wake)
        timer.daemon = True
        self.timers[key] = timer
        timer.start()

    # --- StatefulSet ----------------------------------------------------------------------------

    def _sync_statefulset(self, sts: dict) -> None:
        spec = sts.get("spec") or {}
        replicas = spec.get("replicas", 1)
        template = spec.get("template") or {}
        name, namespace = sts["metadata"]["name"], sts["metadata"]["namespace"]
        revision = f"{name}-{template_hash(template)}"
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        pods = {pod["metadata"]["name"]: pod for pod in self._pods_of(sts)}
        for pod in pods.values():
            labels = pod["metadata"].get("labels") or {}
            index = pod["metadata"]["name"].rpartition("-")[2]
            outdated = labels.get("controller-revision-hash") != revision
            if pod_active(pod) and (outdated or not index.isdigit() or int(index) >= replicas):
                self._delete("", "pods", pod)
        pods = {pod["metadata"]["name"]: pod for pod in self._pods_of(sts)}
        for index in range(replicas):
            pod_name = f"{name}-{index}"
            pod = pods.get(pod_name)
            if pod is None:
                labels = {
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(index),
                }
                pod_spec = json.loads(json.dumps(template.get("spec") or {}))
                pod_spec.setdefault("hostname", pod_name)
                if spec.get("serviceName"):
                    pod_spec.setdefault("subdomain", spec["serviceName"])
                self._create_pod(sts, "StatefulSet", "apps/v1", template, name=pod_name, labels=labels, spec=pod_spec)
                pod = self.objects("", "pods").get((namespace, pod_name))
            if ordered and (pod is None or not pod_ready(pod)):
                break
        sts = self.objects("apps", "statefulsets").get((namespace, name))
        if sts is None:
            return
        active = [pod for pod in self._pods_of(sts) if pod_active(pod)]
        ready = sum(1 for pod in active if pod_ready(pod))
        current = sum(1 for pod in active if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") == revision)
        status = _nonzero(
            {"readyReplicas": ready, "currentReplicas": current, "updatedReplicas": current, "availableReplicas": ready}
        )
        status.update(
            observedGeneration=sts["metadata"].get("generation", 1),
            replicas=len(active),
            currentRevision=revision,
            updateRevision=revision,
            collisionCount=0,
        )
        self._status("apps", "statefulsets", sts, status)

    # --- Job ------------------------------------------------------------------------------------

    def _sync_job(self, job: dict) -> None:
        spec = job.get("spec") or {}
        status = dict(job.get("status") or {})
        if any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in status.get("conditions") or []):
            return
        completions = spec.get("completions", 1)
        parallelism = spec.get("parallelism", 1)
        name, namespace, uid = job["metadata"]["name"], job["metadata"]["namespace"], job["metadata"]["uid"]
        pods = self._pods_of(job)
        succeeded = sum(1 for pod in pods if (pod.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for pod in pods if (pod.get("status") or {}).get("phase") == "Failed")
        active = [pod for pod in pods if pod_active(pod)]
        wanted = min(parallelism, max(0, (completions if completions is not None else 1) - succeeded)) - len(active)
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        for _index in range(max(0, wanted)):
            self._create_pod(job, "Job", "batch/v1", spec.get("template") or {}, generate=f"{name}-", labels=labels)
        job = self.objects("batch", "jobs").get((namespace, name))
        if job is None:
            return
        pods = self._pods_of(job)
        active = [pod for pod in pods if pod_active(pod)]
        succeeded = sum(1 for pod in pods if (pod.get("status") or {}).get("phase") == "Succeeded")
        stamp = self.now()
        new = dict(job.get("status") or {})
        new.update(_nonzero({"active": len(active), "succeeded": succeeded, "failed": failed}))
        for counter, value in (("active", len(active)), ("succeeded", succeeded), ("failed", failed)):
            if not value:
                new.pop(counter, None)
        new["ready"] = sum(1 for pod in active if pod_ready(pod))
        new["terminating"] = 0
        new.setdefault("startTime", stamp)
        new.setdefault("uncountedTerminatedPods", {})
        if succeeded >= (completions if completions is not None else 1) and not active:
            minor = _minor(self.store.kube_version)
            conditions = list(new.get("conditions") or [])
            if minor is None or minor >= 31:
                message = "Reached expected number of succeeded pods"
                for kind in ("SuccessCriteriaMet", "Complete"):
                    conditions.append(
                        {
                            "type": kind,
                            "status": "True",
                            "lastProbeTime": stamp,
                            "lastTransitionTime": stamp,
                            "reason": "CompletionsReached",
                            "message": message,
                        }
                    )
            else:
                conditions.append({"type": "Complete", "status": "True", "lastProbeTime": stamp, "lastTransitionTime": stamp})
            new["conditions"] = conditions
            new["completionTime"] = stamp
        self._status("batch", "jobs", job, new)

    # --- ResourceClaims (the resourceclaim controller's syncClaim) --------------------------------

    def _sync_claim(self, namespace: str, name: str) -> None:
        """Reservations of Pods that are gone or done released (the allocation cleared with the last one), then a
        claim generated for a Pod that is done deleted."""
        claim = self.objects(*RESOURCE_CLAIMS).get((namespace, name))
        if claim is None:
            return
        pods = self.objects("", "pods")
        status = dra.released_status(claim, pods)
        if status is not None:
            self._status(*RESOURCE_CLAIMS, claim, status)
            claim = self.objects(*RESOURCE_CLAIMS).get((namespace, name))
        if claim is not None and dra.unneeded_generated_claim(claim, pods):
            self._delete(*RESOURCE_CLAIMS, claim)

    # --- nodes ----------------------------------------------------------------------------------

    def _node_changed(self, name: str) -> None:
        """Re-sync the DaemonSets whose decision for this node changed or whose pods there no longer fit it,
        and give still-Pending pods another scheduling attempt."""
        node = self.objects("", "nodes").get(("", name))
        on_node: dict[str, int] = {}
        for pod in self.objects("", "pods").values():
            ref = controller_of(pod)
            if ref is not None and ref.get("kind") == "DaemonSet" and target_node(pod) == name and pod_active(pod):
                on_node[ref.get("uid", "")] = on_node.get(ref.get("uid", ""), 0) + 1
        for key, ds in sorted(self.objects("apps", "daemonsets").items()):
            uid = ds["metadata"]["uid"]
            if node is None:
                changed = (uid, name) in self.decisions or uid in on_node
                self.decisions.pop((uid, name), None)
            else:
                should_run, should_continue = node_should_run_daemon_pod(ds, node)
                running = on_node.get(uid, 0)
                changed = (
                    self.decisions.get((uid, name)) != should_run
                    or (should_run and running != 1)
                    or (not should_continue and running > 0)
                )
            if changed:
                self.queue[(("apps", "daemonsets"), key[0], key[1])] = None
        for key, pod in sorted(self.objects("", "pods").items()):
            status = pod.get("status") or {}
            if status.get("phase", "Pending") == "Pending" and not pod["metadata"].get("deletionTimestamp"):
                self.queue[("pod", key[0], key[1])] = None

    def _pod_gc(self, node_name: str) -> None:
        """PodGC's ``gcOrphaned``: pods bound to a node that no longer exists are deleted."""
        for pod in list(self.objects("", "pods").values()):
            if (pod.get("spec") or {}).get("nodeName") == node_name:
                self._delete("", "pods", pod)

    # --- garbage collection ---------------------------------------------------------------------

    def dependents(self, namespace: str, uid: str) -> list[tuple[str, str, dict]]:
        found = []
        for (group, plural), bucket in list(self.store.objects.items()):
            for key, obj in list(bucket.items()):
                if namespace and key[0] not in (namespace, ""):
                    continue
                if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []):
                    found.append((group, plural, obj))
        return found

    def _owner_exists(self, ref: dict, namespace: str) -> bool:
        group = ref.get("apiVersion", "").rpartition("/")[0]
        for (stored_group, _plural), bucket in self.store.objects.items():
            if stored_group != group:
                continue
            for key, obj in bucket.items():
                if obj["metadata"].get("uid") == ref.get("uid") and key[0] in (namespace, ""):
                    return not obj["metadata"].get("deletionTimestamp") or FOREGROUND in (obj["metadata"].get("finalizers") or [])
        return False

    def _collect(self, namespace: str, uid: str) -> None:
        """The owner with ``uid`` is gone: delete its dependents, or drop the reference where another owner lives."""
        for group, plural, obj in self.dependents(namespace, uid):
            others = [ref for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid") != uid]
            if any(self._owner_exists(ref, obj["metadata"].get("namespace") or "") for ref in others):
                self.orphan(group, plural, obj, uid)
            else:
                self._delete(group, plural, obj, propagation="Background")

    def orphan(self, group: str, plural: str, obj: dict, uid: str) -> None:
        """Remove the reference to ``uid`` from ``obj`` (the collector's orphaning, a strategic-merge PATCH)."""
        new = json.loads(json.dumps(obj))
        refs = [ref for ref in new["metadata"].get("ownerReferences") or [] if ref.get("uid") != uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        self.store._write(self.rtype_of(group, plural), obj, new, manager=GARBAGE_COLLECTOR, dry_run=False)

    def rtype_of(self, group: str, plural: str) -> ResourceType:
        for rtype in self.store.catalogue.all():
            if rtype.storage_key == (group, plural):
                return rtype
        raise KeyError((group, plural))

    def start_foreground(self, rtype: ResourceType, obj: dict) -> None:
        """The owner now waits with ``foregroundDeletion``: delete its dependents (in the foreground too)."""
        metadata = obj["metadata"]
        for group, plural, dependent in self.dependents(metadata.get("namespace") or "", metadata["uid"]):
            self._delete(group, plural, dependent, propagation="Foreground")
        self.queue[("foreground", metadata.get("namespace") or "", (rtype.group, rtype.kind, metadata["name"]))] = None
        self.drain()

    def _foreground_done(self, namespace: str, owner: tuple[str, str, str]) -> None:
        """A dependent went: its owner, when waiting in foreground deletion with no blocking dependent left, goes."""
        group, kind, name = owner
        rtype = next((r for r in self.store.catalogue.all() if (r.group, r.kind) == (group, kind)), None)
        if rtype is None:
            return
        obj = self.store.objects.get(rtype.storage_key, {}).get((namespace if rtype.namespaced else "", name))
        if obj is None:
            return
        metadata = obj["metadata"]
        if FOREGROUND not in (metadata.get("finalizers") or []) or not metadata.get("deletionTimestamp"):
            return
        uid = metadata["uid"]
        dependents = self.dependents(metadata.get("namespace") or "", uid)
        if any(
            ref.get("uid") == uid and ref.get("blockOwnerDeletion")
            for _group, _plural, dependent in dependents
            for ref in dependent["metadata"].get("ownerReferences") or []
        ):
            return
        for dep_group, dep_plural, dependent in dependents:
            self.orphan(dep_group, dep_plural, dependent, uid)
        new = json.loads(json.dumps(obj))
        new["metadata"]["finalizers"] = [f for f in metadata["finalizers"] if f != FOREGROUND]
        if not new["metadata"]["finalizers"]:
            new["metadata"].pop("finalizers")
        self.store._write(rtype, obj, new, manager=GARBAGE_COLLECTOR, dry_run=False)
