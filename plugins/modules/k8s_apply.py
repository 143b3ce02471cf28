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
    (C(kubegpu)), in the order given; with O(state=absent) deletes them, in reverse order.
  - "Every document is checked (a mapping with C(apiVersion), C(kind) and C(metadata.name)) and every kind is looked up
    in the cluster's discovery before the first write; a kind the cluster does not serve fails with a message naming
    it, for example 'Profile (openfaas.com/v1) is not served by this cluster: install OpenFaaS first'."
  - Check mode sends the same requests with C(dryRun=All), so the API server validates and defaults the objects
    without storing them.
  - Optionally waits for a condition or a rollout (Deployment, DaemonSet, StatefulSet, Pod, Job) after applying.
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
    object:
      description: The object as the API server returned it, without C(managedFields); C(null) when deleted.
      type: dict
  sample: [{"apiVersion": "openfaas.com/v1", "kind": "Profile", "name": "gpu", "namespace": "openfaas",
            "action": "created", "changed": true, "object": {}}]
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
except ImportError:  # yaml comes with ansible-core; kube.HAS_KUBERNETES covers it too
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
        # check mode: namespaces this task would create (dry run), whose objects cannot be dry-run yet
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

    def _crd_in_task(self, doc: dict[str, t.Any]) -> bool:
        group = doc["apiVersion"].rpartition("/")[0]
        return any(
            other["kind"] == "CustomResourceDefinition"
            and (other.get("spec") or {}).get("group") == group
            and ((other.get("spec") or {}).get("names") or {}).get("kind") == doc["kind"]
            for other in self.documents
        )

    def _resolve(self, doc: dict[str, t.Any]) -> dict[str, t.Any] | None:
        resource = self.discovery.resource(doc["apiVersion"], doc["kind"])
        if resource is None and self._crd_in_task(doc) and not self.check:
            # a CRD applied earlier in this task is served once it is established: give it a few seconds
            deadline = time.monotonic() + 10
            while resource is None and time.monotonic() < deadline:
                resource = self.discovery.resource(doc["apiVersion"], doc["kind"], fresh=True)
                if resource is None:
                    time.sleep(0.2)
        return resource

    def _apply(self, doc: dict[str, t.Any]) -> dict[str, t.Any]:
        entry = {"apiVersion": doc["apiVersion"], "kind": doc["kind"], "name": doc["metadata"]["name"]}
        resource = self._resolve(doc)
        if resource is None:
            if self.check and self._crd_in_task(doc):
                namespace = doc["metadata"].get("namespace") or self.params["namespace"]
                self.diff.record(self._label(doc, namespace), None, doc)
                return {**entry, "namespace": namespace, "action": "created", "changed": True, "object": None}
            raise KubeGPUError(kube.not_served(doc["apiVersion"], doc["kind"]))
        path, namespace = self._target(doc, resource)
        label = self._label(doc, namespace)
        body = deepcopy(doc)
        if namespace:
            body["metadata"]["namespace"] = namespace
        if self.check and namespace in self.new_namespaces:
            # the API server answers 404 for a dry run into a namespace that does not exist yet
            self.diff.record(label, None, body)
            return {**entry, "namespace": namespace, "action": "created", "changed": True, "object": None}
        before = self.client.request("GET", path, what=f"reading {label}", not_found_ok=True)
        query = {"fieldManager": self.params["field_manager"], "force": "true" if self.params["force_conflicts"] else None}
        if self.check:
            query["dryRun"] = "All"
        try:
            after = self.client.request(
                "PATCH", path, what=f"applying {label}", query=query, body=body, content_type="application/apply-patch+yaml"
            )
        except kube.KubeAPIError as exc:
            if exc.status == 409 and exc.reason == "Conflict":
                raise KubeGPUError(f"{exc.msg}; set force_conflicts=true to take these fields over", **exc.details) from exc
            raise
        changed = self.diff.record(label, comparable(before), comparable(after))
        action = "created" if before is None else ("updated" if changed else "unchanged")
        if self.check and before is None and doc["apiVersion"] == "v1" and doc["kind"] == "Namespace":
            self.new_namespaces.add(doc["metadata"]["name"])
        return {
            **entry,
            "namespace": namespace,
            "action": action,
            "changed": changed,
            "object": kube.without_managed_fields(after),
        }

    def _delete(self, doc: dict[str, t.Any]) -> dict[str, t.Any]:
        entry = {"apiVersion": doc["apiVersion"], "kind": doc["kind"], "name": doc["metadata"]["name"]}
        resource = self._resolve(doc)
        if resource is None:  # nothing of this kind can exist
            namespace = doc["metadata"].get("namespace")
            return {**entry, "namespace": namespace, "action": "absent", "changed": False, "object": None}
        path, namespace = self._target(doc, resource)
        label = self._label(doc, namespace)
        before = self.client.request("GET", path, what=f"reading {label}", not_found_ok=True)
        if before is None:
            return {**entry, "namespace": namespace, "action": "absent", "changed": False, "object": None}
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
        return {**entry, "namespace": namespace, "action": "deleted", "changed": True, "object": None}

    # -- waiting ----------------------------------------------------------------------------------

    def _ready(self, obj: dict[str, t.Any]) -> str | None:
        """None when ready, else what is still missing."""
        status = obj.get("status") or {}
        conditions = {item.get("type"): item.get("status") for item in status.get("conditions") or []}
        wanted = self.params["wait_condition"]
        if wanted:
            have = conditions.get(wanted["type"])
            return None if have == wanted["status"] else f"condition {wanted['type']} is {have or 'not reported'}"
        kind = obj.get("kind")
        generation = (obj.get("metadata") or {}).get("generation")
        if kind in ("Deployment", "StatefulSet", "DaemonSet") and generation and status.get("observedGeneration", 0) < generation:
            return "the controller has not seen the latest generation"
        if kind in ("Deployment", "StatefulSet"):
            replicas = (obj.get("spec") or {}).get("replicas", 1)
            ready = status.get("availableReplicas" if kind == "Deployment" else "readyReplicas") or 0
            updated = status.get("updatedReplicas") or 0
            return None if ready >= replicas and updated >= replicas else f"{ready}/{replicas} replicas ready"
        if kind == "DaemonSet":
            desired = status.get("desiredNumberScheduled", 0)
            ready = status.get("numberReady", 0)
            updated = status.get("updatedNumberScheduled", 0)
            return None if ready >= desired and updated >= desired else f"{ready}/{desired} pods ready"
        if kind == "Pod":
            return None if conditions.get("Ready") == "True" else f"pod phase {status.get('phase', 'unknown')}"
        if kind == "Job":
            if conditions.get("Failed") == "True":
                raise KubeGPUError(f"Job {obj['metadata'].get('namespace')}/{obj['metadata']['name']} failed")
            return None if conditions.get("Complete") == "True" else "not complete"
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
                else:
                    problem = "not found" if obj is None else self._ready(obj)
                if problem is None:
                    if obj is not None:
                        entry["object"] = kube.without_managed_fields(obj)
                    break
                if time.monotonic() >= deadline:
                    raise KubeGPUError(
                        f"{label} was not ready within wait_timeout={self.params['wait_timeout']}s: {problem}",
                        objects=entries,
                        changed=any(item["changed"] for item in entries),
                    )
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    # -- the task ---------------------------------------------------------------------------------

    def run(self) -> dict[str, t.Any]:
        self.client = kube.KubeClient.from_params(self.params)
        self.discovery = kube.Discovery(self.client)
        present = self.params["state"] == "present"
        documents = self.documents if present else list(reversed(self.documents))
        if present:
            # every kind is looked up before the first write; one not served stops the task here
            for doc in documents:
                if not self._crd_in_task(doc) and self._resolve(doc) is None:
                    raise KubeGPUError(kube.not_served(doc["apiVersion"], doc["kind"]))
        entries = [self._apply(doc) if present else self._delete(doc) for doc in documents]
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
    if not kube.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=kube.KUBERNETES_IMPORT_ERROR)
    try:
        result = K8sApply(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
