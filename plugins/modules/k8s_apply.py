#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_apply
short_description: Server-side apply of Kubernetes manifests, or their removal
version_added: 0.1.0
description:
  - Applies one or more objects with Kubernetes server-side apply under the field manager O(field_manager)
    (C(kubegpu)); with O(state=absent) deletes them.
  - "Objects are applied in helm's install order (C(InstallOrder) of helm's C(kind_sorter.go)): C(Namespace),
    C(ServiceAccount), C(Secret), C(ConfigMap), C(CustomResourceDefinition), RBAC, C(Service), workloads, and kinds
    helm does not list (custom resources) last, sorted by kind; objects of one kind keep the order given. So a
    custom resource given before its CRD is applied after it. O(state=absent) deletes in the reverse of that order."
  - "Every document is checked (a mapping with C(apiVersion), C(kind) and C(metadata.name)) and every kind is looked up
    in the cluster's discovery before the first write; a kind the cluster does not serve fails with a message naming
    it, for example 'Profile (openfaas.com/v1) is not served by this cluster: install OpenFaaS first'."
  - Then, when there are several objects, each is sent once with C(dryRun=All), so the API server validates all of
    them (schemas, names, conflicts with other field managers) before the first is stored; an object that it refuses
    fails the task with nothing written. Custom resources whose CRD the same task applies, and objects in a Namespace
    it creates, are checked when written (the CRD they must match, the Namespace, do not exist before).
  - A write that still fails after others were stored (the cluster changed meanwhile, permissions) fails the task
    with C(changed=true), the objects written in RV(objects) and the rest in RV(not_applied).
  - Check mode sends the same requests with C(dryRun=All), so the API server validates and defaults the objects
    without storing them.
  - "Optionally waits for a condition or a rollout after applying. Deployments, DaemonSets and StatefulSets are judged
    as C(kubectl rollout status) judges them: the controller has observed the latest generation, every replica is
    updated, no old replica remains and the updated ones are available; a Deployment whose C(Progressing) condition
    has the reason C(ProgressDeadlineExceeded) fails at once."
  - With O(state=absent), a kind the cluster does not serve (its CRD is not installed) has nothing to delete; the
    object is reported C(absent) with C(served=false) at once.
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._kube
  - kubegpu.core._attributes
attributes:
  check_mode:
    support: full
    details: Writes are sent with C(dryRun=All); nothing is stored. Objects of a CustomResourceDefinition created by
      the same task, and objects in a Namespace created by the same task, are reported as to be created without a
      request, since their kind is not served or their namespace does not exist yet.
  diff_mode:
    support: full
    details: The live object before and after, without C(managedFields), C(resourceVersion), C(uid),
      C(creationTimestamp), C(generation) and C(status).
  idempotent:
    support: full
options:
  definition:
    description:
      - The objects, as a dictionary (one object, or a C(List) with C(items)), a list of dictionaries, or a string of
        YAML documents (for example from a C(template) lookup).
      - Mutually exclusive with O(src).
    type: raw
  src:
    description:
      - A YAML file of one or more documents (separated by C(---)); empty documents are skipped.
      - Mutually exclusive with O(definition).
    type: path
  namespace:
    description: Namespace of namespaced objects that name none.
    type: str
    default: default
  state:
    description: V(present) applies the objects; V(absent) deletes them.
    type: str
    choices: [present, absent]
    default: present
  force_conflicts:
    description:
      - Take ownership of fields another field manager owns, instead of failing with the conflict.
    type: bool
    default: false
  field_manager:
    description: The field manager name of the apply.
    type: str
    default: kubegpu
  wait:
    description:
      - After applying, wait until each object is ready (O(wait_condition), or for Deployments, DaemonSets,
        StatefulSets, Pods and Jobs their rollout); after deleting, wait until each object is gone.
      - "Deployment: C(status.observedGeneration) at least C(metadata.generation), C(updatedReplicas) equal to
        C(spec.replicas), C(status.replicas) not above C(updatedReplicas) (no old replica pending termination),
        C(availableReplicas) equal to C(updatedReplicas); the C(Progressing) condition with reason
        C(ProgressDeadlineExceeded) fails at once, naming it."
      - "DaemonSet: observed generation, C(updatedNumberScheduled) and C(numberAvailable) equal to
        C(desiredNumberScheduled) (with the C(OnDelete) update strategy, which replaces no pod by itself, only
        C(numberAvailable))."
      - "StatefulSet: observed generation, C(readyReplicas) equal to C(spec.replicas), and with C(RollingUpdate)
        C(updatedReplicas) at least C(spec.replicas) minus the C(partition). Pod: C(Ready); Job: C(Complete),
        C(Failed) fails at once."
    type: bool
    default: false
  wait_condition:
    description: A condition in C(status.conditions) every object must reach, instead of the rollout rules.
    type: dict
    suboptions:
      type:
        description: The condition's type, for example V(Established) or V(Available).
        type: str
        required: true
      status:
        description: The status it must have.
        type: str
        choices: ["True", "False", "Unknown"]
        default: "True"
  wait_timeout:
    description: Seconds to wait for all objects together.
    type: int
    default: 120
seealso:
  - module: kubegpu.core.helm_release
"""

EXAMPLES = r"""
- name: The OpenFaaS Profile that places functions on GPU nodes
  kubegpu.core.k8s_apply:
    definition:
      apiVersion: openfaas.com/v1
      kind: Profile
      metadata:
        name: gpu
        namespace: openfaas
      spec:
        runtimeClassName: nvidia
        tolerations:
          - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}

- name: A DaemonSet from a file, waiting for its rollout
  kubegpu.core.k8s_apply:
    src: files/aws-vgpu-plugin.yaml
    wait: true
    wait_timeout: 300

- name: Remove the smoke-test pods
  kubegpu.core.k8s_apply:
    src: files/smoke-pods.yaml
    state: absent
"""

RETURN = r"""
objects:
  description: One entry per object, in the order applied (or deleted).
  returned: always
  type: list
  elements: dict
  contains:
    apiVersion:
      description: The object's API version.
      type: str
    kind:
      description: The object's kind.
      type: str
    name:
      description: The object's name.
      type: str
    namespace:
      description: The object's namespace; C(null) for cluster-scoped kinds.
      type: str
    action:
      description: V(created), V(updated), V(unchanged), V(deleted) or V(absent) (nothing to delete).
      type: str
    changed:
      description: Whether the object changed (or would change in check mode).
      type: bool
    served:
      description: Whether the cluster serves the object's kind; V(false) only with O(state=absent) for a kind
        whose CRD is not installed (nothing of it can exist).
      type: bool
    object:
      description: The object as the API server returned it, without C(managedFields); C(null) when deleted.
      type: dict
  sample: [{"apiVersion": "openfaas.com/v1", "kind": "Profile", "name": "gpu", "namespace": "openfaas",
            "action": "created", "changed": true, "served": true, "object": {}}]
not_applied:
  description: When a write fails after earlier ones were stored, the objects not written (the failed one first),
    in the order they would have been; RV(objects) then holds those written, and C(changed) says whether any changed.
  returned: failure
  type: list
  elements: dict
  contains:
    apiVersion:
      description: The object's API version.
      type: str
    kind:
      description: The object's kind.
      type: str
    name:
      description: The object's name.
      type: str
    namespace:
      description: The object's namespace as the document gives it (C(null) when it names none).
      type: str
  sample: [{"apiVersion": "openfaas.com/v1", "kind": "Profile", "name": "gpu", "namespace": "openfaas"}]
"""

import time
import typing as t
import urllib.parse
from copy import deepcopy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils import _kube as kube
from ansible_collections.kubegpu.core.plugins.module_utils._diff import DiffTracker
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

try:
    import yaml
except ImportError:  # yaml comes with ansible-core
    yaml = None

ARGUMENT_SPEC: dict[str, t.Any] = deepcopy(kube.KUBE_ARG_SPEC)
ARGUMENT_SPEC.update(
    definition={"type": "raw"},
    src={"type": "path"},
    namespace={"type": "str", "default": "default"},
    state={"type": "str", "choices": ["present", "absent"], "default": "present"},
    force_conflicts={"type": "bool", "default": False},
    field_manager={"type": "str", "default": "kubegpu"},
    wait={"type": "bool", "default": False},
    wait_condition={
        "type": "dict",
        "options": {
            "type": {"type": "str", "required": True},
            "status": {"type": "str", "choices": ["True", "False", "Unknown"], "default": "True"},
        },
    },
    wait_timeout={"type": "int", "default": 120},
)

SERVER_SET_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")

# helm's install order (InstallOrder of helm/helm pkg/release/util/kind_sorter.go): Namespaces and
# CustomResourceDefinitions before what lives in them; kinds not listed come last, sorted by kind
INSTALL_ORDER = (
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)
_INSTALL_RANK = {kind: rank for rank, kind in enumerate(INSTALL_ORDER)}


def install_order(documents: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The documents in the order helm installs them (a stable sort: one kind keeps the order given)."""
    return sorted(
        documents,
        key=lambda doc: (_INSTALL_RANK.get(doc["kind"], len(INSTALL_ORDER)), "" if doc["kind"] in _INSTALL_RANK else doc["kind"]),
    )


def load_documents(definition: t.Any, src: str | None) -> list[dict[str, t.Any]]:
    """The objects to handle, each checked for apiVersion, kind and metadata.name."""
    if src is not None:
        try:
            with open(src, encoding="utf-8") as handle:
                raw = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
        except OSError as exc:
            raise KubeGPUError(f"cannot read src {src}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise KubeGPUError(f"src {src} is not valid YAML: {exc}") from exc
        where = f"src {src}"
    elif isinstance(definition, str):
        try:
            raw = [doc for doc in yaml.safe_load_all(definition) if doc is not None]
        except yaml.YAMLError as exc:
            raise KubeGPUError(f"definition is a string but not valid YAML: {exc}") from exc
        where = "definition"
    else:
        raw = definition if isinstance(definition, list) else [definition]
        where = "definition"
    documents: list[dict[str, t.Any]] = []
    for index, doc in enumerate(raw):
        name = f"{where} document {index + 1}" if len(raw) > 1 or src else where
        if not isinstance(doc, dict):
            raise KubeGPUError(f"{name} is not a mapping (an object with apiVersion, kind, metadata), but {type(doc).__name__}")
        if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List") and "items" in doc):
            documents.extend(load_documents(doc.get("items") or [], None) if doc.get("items") else [])
            continue
        for field in ("apiVersion", "kind"):
            if not isinstance(doc.get(field), str) or not doc.get(field):
                raise KubeGPUError(f"{name} has no {field}; every object needs apiVersion, kind and metadata.name")
        metadata = doc.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata.get("name"):
            raise KubeGPUError(f"{name} ({doc['kind']}) has no metadata.name; server-side apply needs a name")
        documents.append(doc)
    return documents


def comparable(obj: dict[str, t.Any] | None) -> dict[str, t.Any] | None:
    """The object without what the server sets on every write (for diffs and change detection)."""
    if obj is None:
        return None
    result = {key: value for key, value in obj.items() if key != "status"}
    metadata = {key: value for key, value in (obj.get("metadata") or {}).items() if key not in SERVER_SET_METADATA}
    result["metadata"] = metadata
    return result


def entry_label(item: dict[str, t.Any]) -> str:
    """``Kind namespace/name (apiVersion)`` of a result entry."""
    where = f"{item['namespace']}/" if item.get("namespace") else ""
    return f"{item['kind']} {where}{item['name']} ({item['apiVersion']})"


class K8sApply:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.check = module.check_mode
        if self.params["wait_timeout"] < 0:
            raise KubeGPUError(f"wait_timeout={self.params['wait_timeout']} is not valid; give 0 or more seconds")
        self.documents = load_documents(self.params["definition"], self.params["src"])
        self.diff = DiffTracker()
        self.client: kube.KubeClient
        self.discovery: kube.Discovery
        # dry runs: namespaces this task would create, whose objects cannot be dry-run yet
        self.new_namespaces: set[str] = set()

    # -- one object -------------------------------------------------------------------------------

    def _target(self, doc: dict[str, t.Any], resource: dict[str, t.Any]) -> tuple[str, str | None]:
        api_version = doc["apiVersion"]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        name = urllib.parse.quote(doc["metadata"]["name"], safe="")
        namespace = None
        if resource.get("namespaced"):
            namespace = doc["metadata"].get("namespace") or self.params["namespace"]
            base += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
        return f"{base}/{resource['name']}/{name}", namespace

    @staticmethod
    def _label(doc: dict[str, t.Any], namespace: str | None) -> str:
        where = f"{namespace}/" if namespace else ""
        return f"{doc['kind']} {where}{doc['metadata']['name']} ({doc['apiVersion']})"

    @staticmethod
    def _entry(doc: dict[str, t.Any], namespace: str | None, action: str, changed: bool, obj: t.Any = None) -> dict[str, t.Any]:
        return {
            "apiVersion": doc["apiVersion"],
            "kind": doc["kind"],
            "name": doc["metadata"]["name"],
            "namespace": namespace,
            "action": action,
            "changed": changed,
            "served": True,
            "object": obj,
        }

    def _crd_in_task(self, doc: dict[str, t.Any]) -> bool:
        group = doc["apiVersion"].rpartition("/")[0]
        return any(
            other["kind"] == "CustomResourceDefinition"
            and (other.get("spec") or {}).get("group") == group
            and ((other.get("spec") or {}).get("names") or {}).get("kind") == doc["kind"]
            for other in self.documents
        )

    def _resolve(self, doc: dict[str, t.Any], *, wait_for_crd: bool = False) -> dict[str, t.Any] | None:
        resource = self.discovery.resource(doc["apiVersion"], doc["kind"])
        if resource is None and wait_for_crd and self._crd_in_task(doc):
            # a CRD applied earlier in this task is served once it is established: give it a few seconds
            deadline = time.monotonic() + 10
            while resource is None and time.monotonic() < deadline:
                resource = self.discovery.resource(doc["apiVersion"], doc["kind"], fresh=True)
                if resource is None:
                    time.sleep(0.2)
        return resource

    def _apply(self, doc: dict[str, t.Any], diff: DiffTracker, *, dry_run: bool) -> dict[str, t.Any]:
        """Applies ``doc`` (with ``dryRun=All`` when ``dry_run``) and records its change in ``diff``."""
        resource = self._resolve(doc, wait_for_crd=not dry_run)
        if resource is None:
            if dry_run and self._crd_in_task(doc):
                # its CRD is created by this task: the API server cannot dry-run it yet
                namespace = doc["metadata"].get("namespace") or self.params["namespace"]
                diff.record(self._label(doc, namespace), None, doc)
                return self._entry(doc, namespace, "created", True)
            raise KubeGPUError(kube.not_served(doc["apiVersion"], doc["kind"]))
        path, namespace = self._target(doc, resource)
        label = self._label(doc, namespace)
        body = deepcopy(doc)
        if namespace:
            body["metadata"]["namespace"] = namespace
        if dry_run and namespace in self.new_namespaces:
            # the API server answers 404 for a dry run into a namespace that does not exist yet
            diff.record(label, None, body)
            return self._entry(doc, namespace, "created", True)
        before = self.client.request("GET", path, what=f"reading {label}", not_found_ok=True)
        query = {"fieldManager": self.params["field_manager"], "force": "true" if self.params["force_conflicts"] else None}
        if dry_run:
            query["dryRun"] = "All"
        try:
            after = self.client.request(
                "PATCH", path, what=f"applying {label}", query=query, body=body, content_type="application/apply-patch+yaml"
            )
        except kube.KubeAPIError as exc:
            if exc.status == 409 and exc.reason == "Conflict":
                raise KubeGPUError(f"{exc.msg}; set force_conflicts=true to take these fields over", **exc.details) from exc
            raise
        changed = diff.record(label, comparable(before), comparable(after))
        action = "created" if before is None else ("updated" if changed else "unchanged")
        if dry_run and before is None and doc["apiVersion"] == "v1" and doc["kind"] == "Namespace":
            self.new_namespaces.add(doc["metadata"]["name"])
        return self._entry(doc, namespace, action, changed, kube.without_managed_fields(after))

    def _delete(self, doc: dict[str, t.Any]) -> dict[str, t.Any]:
        resource = self._resolve(doc)
        if resource is None:
            # a kind the cluster does not serve has no objects: nothing to delete, nothing to wait for
            entry = self._entry(doc, doc["metadata"].get("namespace"), "absent", False)
            entry["served"] = False
            return entry
        path, namespace = self._target(doc, resource)
        label = self._label(doc, namespace)
        before = self.client.request("GET", path, what=f"reading {label}", not_found_ok=True)
        if before is None:
            return self._entry(doc, namespace, "absent", False)
        query = {"dryRun": "All"} if self.check else None
        self.client.request(
            "DELETE",
            path,
            what=f"deleting {label}",
            query=query,
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            not_found_ok=True,
        )
        self.diff.record(label, comparable(before), None)
        return self._entry(doc, namespace, "deleted", True)

    # -- waiting ----------------------------------------------------------------------------------

    def _ready(self, obj: dict[str, t.Any], label: str) -> str | None:
        """None when ready, else what is still missing; raises when it cannot become ready.

        Deployments, DaemonSets and StatefulSets follow ``kubectl rollout status``
        (k8s.io/kubectl pkg/polymorphichelpers/rollout_status.go)."""
        status = obj.get("status") or {}
        spec = obj.get("spec") or {}
        conditions = {item.get("type"): item for item in status.get("conditions") or []}
        wanted = self.params["wait_condition"]
        if wanted:
            have = (conditions.get(wanted["type"]) or {}).get("status")
            return None if have == wanted["status"] else f"condition {wanted['type']} is {have or 'not reported'}"
        kind = obj.get("kind")
        generation = (obj.get("metadata") or {}).get("generation") or 0
        observed = status.get("observedGeneration") or 0
        if kind in ("Deployment", "DaemonSet", "StatefulSet") and (
            generation > observed or (kind == "StatefulSet" and observed == 0)
        ):
            return f"waiting for the spec update to be observed (generation {generation}, observed {observed})"
        if kind == "Deployment":
            progressing = conditions.get("Progressing") or {}
            if progressing.get("reason") == "ProgressDeadlineExceeded":
                raise KubeGPUError(
                    f"{label} exceeded its progress deadline (condition Progressing, reason ProgressDeadlineExceeded: "
                    f"{progressing.get('message') or 'no message'}); it will not become ready without a change"
                )
            replicas = spec.get("replicas", 1)
            updated = status.get("updatedReplicas") or 0
            available = status.get("availableReplicas") or 0
            if updated < replicas:
                return f"{updated} out of {replicas} new replicas have been updated"
            if (status.get("replicas") or 0) > updated:
                return f"{status['replicas'] - updated} old replicas are pending termination"
            if available < updated:
                return f"{available} of {updated} updated replicas are available"
            return None
        if kind == "DaemonSet":
            desired = status.get("desiredNumberScheduled") or 0
            updated = status.get("updatedNumberScheduled") or 0
            available = status.get("numberAvailable") or 0
            # OnDelete replaces no pod by itself: its rollout is not waited for, only its pods' availability
            if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate" and updated < desired:
                return f"{updated} out of {desired} new pods have been updated"
            if available < desired:
                return f"{available} of {desired} updated pods are available"
            return None
        if kind == "StatefulSet":
            replicas = spec.get("replicas", 1)
            ready = status.get("readyReplicas") or 0
            if ready < replicas:
                return f"waiting for {replicas - ready} pods to be ready"
            strategy = spec.get("updateStrategy") or {}
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                # the API server defaults rollingUpdate.partition to 0
                wanted_updated = replicas - ((strategy.get("rollingUpdate") or {}).get("partition") or 0)
                updated = status.get("updatedReplicas") or 0
                if updated < wanted_updated:
                    return f"{updated} out of {wanted_updated} new pods have been updated"
            return None
        if kind == "Pod":
            ready = (conditions.get("Ready") or {}).get("status")
            return None if ready == "True" else f"pod phase {status.get('phase', 'unknown')}"
        if kind == "Job":
            if (conditions.get("Failed") or {}).get("status") == "True":
                raise KubeGPUError(f"{label} failed: {(conditions['Failed'].get('message') or 'no message')}")
            return None if (conditions.get("Complete") or {}).get("status") == "True" else "not complete"
        return None

    def _wait(self, entries: list[dict[str, t.Any]], documents: list[dict[str, t.Any]]) -> None:
        deadline = time.monotonic() + self.params["wait_timeout"]
        for entry, doc in zip(entries, documents):
            resource = self._resolve(doc)
            if resource is None:
                continue
            path, namespace = self._target(doc, resource)
            label = self._label(doc, namespace)
            while True:
                obj = self.client.request("GET", path, what=f"waiting for {label}", not_found_ok=True)
                if self.params["state"] == "absent":
                    problem = None if obj is None else "still present"
                elif obj is None:
                    problem = "not found"
                else:
                    try:
                        problem = self._ready(obj, label)
                    except KubeGPUError as exc:
                        entry["object"] = kube.without_managed_fields(obj)
                        raise KubeGPUError(exc.msg, objects=entries, changed=self._changed(entries)) from exc
                if problem is None:
                    if obj is not None:
                        entry["object"] = kube.without_managed_fields(obj)
                    break
                if time.monotonic() >= deadline:
                    raise KubeGPUError(
                        f"{label} was not ready within wait_timeout={self.params['wait_timeout']}s: {problem}",
                        objects=entries,
                        changed=self._changed(entries),
                    )
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    # -- the task ---------------------------------------------------------------------------------

    @staticmethod
    def _changed(entries: list[dict[str, t.Any]]) -> bool:
        return any(item["changed"] for item in entries)

    def _halted(self, exc: KubeGPUError, done: list[dict[str, t.Any]], rest: list[dict[str, t.Any]]) -> KubeGPUError:
        """The failure of a write after ``done`` were written: it says what was and what was not."""
        not_done = [
            {
                "apiVersion": doc["apiVersion"],
                "kind": doc["kind"],
                "name": doc["metadata"]["name"],
                "namespace": doc["metadata"].get("namespace"),
            }
            for doc in rest
        ]
        msg = exc.msg
        if done:
            verb = "applied" if self.params["state"] == "present" else "deleted"
            written = ", ".join(f"{entry_label(item)} {item['action']}" for item in done)
            missing = ", ".join(entry_label(item) for item in not_done)
            msg = f"{exc.msg}. Written before this failure: {written}; not {verb}: {missing}"
        details = {**exc.details, "objects": done, "not_applied": not_done, "changed": self._changed(done)}
        if self.module._diff:
            details["diff"] = self.diff.diff()
        return KubeGPUError(msg, **details)

    def run(self) -> dict[str, t.Any]:
        self.client = kube.KubeClient.from_params(self.params)
        self.discovery = kube.Discovery(self.client)
        present = self.params["state"] == "present"
        ordered = install_order(self.documents)
        documents = ordered if present else list(reversed(ordered))
        if present:
            # every kind is looked up before the first write; one not served stops the task here
            for doc in documents:
                if not self._crd_in_task(doc) and self._resolve(doc) is None:
                    raise KubeGPUError(kube.not_served(doc["apiVersion"], doc["kind"]))
            if not self.check and len(documents) > 1:
                # the API server validates every object (dryRun=All) before the first is written, so that a bad
                # document later in the list does not leave the ones before it applied (one alone needs no rehearsal)
                for doc in documents:
                    # a custom resource is checked when written, against the CRD this task applies, not an older one
                    if not self._crd_in_task(doc):
                        self._apply(doc, DiffTracker(), dry_run=True)
                self.new_namespaces.clear()
        entries: list[dict[str, t.Any]] = []
        for index, doc in enumerate(documents):
            try:
                entries.append(self._apply(doc, self.diff, dry_run=self.check) if present else self._delete(doc))
            except KubeGPUError as exc:
                raise self._halted(exc, entries, documents[index:]) from exc
        if self.params["wait"] and not self.check:
            self._wait(entries, documents)
        result: dict[str, t.Any] = {"changed": self.diff.changed, "objects": entries}
        if self.module._diff:
            result["diff"] = self.diff.diff()
        return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("definition", "src")],
        required_one_of=[("definition", "src")],
        supports_check_mode=True,
    )
    if not kube.HAS_URLLIB3:
        module.fail_json(msg=missing_required_lib("urllib3"), exception=kube.URLLIB3_IMPORT_ERROR)
    try:
        result = K8sApply(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
