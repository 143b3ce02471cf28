#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_drain
short_description: Cordon, drain or uncordon Kubernetes nodes
version_added: 0.1.0
description:
  - V(cordon) marks nodes unschedulable; V(drain) cordons them and evicts their pods through the Eviction API, so
    PodDisruptionBudgets are honoured; V(uncordon) makes them schedulable again.
  - A drain skips DaemonSet pods and mirror (static) pods, as C(kubectl drain --ignore-daemonsets) does; finished pods
    are deleted without an eviction.
  - Before anything is written, every pod of every node is checked; pods that a drain would lose for good (pods no
    controller recreates, pods with C(emptyDir) data) fail the task naming them unless O(force) or
    O(delete_emptydir_data) allows them.
  - An eviction refused by a disruption budget (HTTP 429) is retried until O(timeout); then the task fails naming the
    pod and the budget. Nodes are drained one after another; the pods of one node are evicted concurrently.
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._kube
  - kubegpu.core._attributes
attributes:
  check_mode:
    support: full
    details: Check mode reads the nodes and pods and reports what would be cordoned and evicted; it writes nothing.
  diff_mode:
    support: full
    details: Per node, whether it is schedulable and the pods on it that the task evicts.
  idempotent:
    support: full
options:
  nodes:
    description: The nodes.
    type: list
    elements: str
    required: true
  state:
    description: V(cordon), V(drain) or V(uncordon).
    type: str
    choices: [cordon, drain, uncordon]
    default: drain
  force:
    description: Also evict pods that no controller manages (they are not recreated anywhere).
    type: bool
    default: false
  delete_emptydir_data:
    description: Also evict pods with C(emptyDir) volumes (their data is lost).
    type: bool
    default: false
  grace_period:
    description: Seconds each pod gets to terminate; the pod's own C(terminationGracePeriodSeconds) when omitted.
    type: int
  timeout:
    description: Seconds a drain of one node may take, waiting for disruption budgets and for evicted pods to go.
    type: int
    default: 300
  missing:
    description: What to do when a node does not exist; V(fail) fails before any change.
    type: str
    choices: [fail, ignore]
    default: fail
seealso:
  - module: kubegpu.core.node_taints
"""

EXAMPLES = r"""
- name: Drain a GPU node before its driver upgrade
  kubegpu.core.node_drain:
    nodes: ["{{ inventory_hostname }}"]
    state: drain
    delete_emptydir_data: true
    timeout: 600
  delegate_to: localhost

- name: Back into service
  kubegpu.core.node_drain:
    nodes: ["{{ inventory_hostname }}"]
    state: uncordon
  delegate_to: localhost
"""

RETURN = r"""
nodes:
  description: One entry per node.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The node.
      type: str
    changed:
      description: Whether the node was (or would be, in check mode) cordoned, uncordoned or had pods evicted.
      type: bool
    unschedulable:
      description: Whether the node is cordoned after the task.
      type: bool
    evicted:
      description: Pods evicted (or deleted, when finished), as C(namespace/name).
      type: list
      elements: str
    skipped:
      description: Pods left on the node (DaemonSet and mirror pods), as C(namespace/name).
      type: list
      elements: str
  sample: [{"name": "gpu-node-1", "changed": true, "unschedulable": true, "evicted": ["default/web-5d8f7c-abcde"],
            "skipped": ["kube-system/nvidia-device-plugin-x2x9z"]}]
missing:
  description: Nodes that do not exist (with O(missing=ignore)).
  returned: always
  type: list
  elements: str
"""

import time
import typing as t
import urllib.parse
from copy import deepcopy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils import _kube as kube
from ansible_collections.kubegpu.core.plugins.module_utils._diff import DiffTracker
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

ARGUMENT_SPEC: dict[str, t.Any] = deepcopy(kube.KUBE_ARG_SPEC)
ARGUMENT_SPEC.update(
    nodes={"type": "list", "elements": "str", "required": True},
    state={"type": "str", "choices": ["cordon", "drain", "uncordon"], "default": "drain"},
    force={"type": "bool", "default": False},
    delete_emptydir_data={"type": "bool", "default": False},
    grace_period={"type": "int"},
    timeout={"type": "int", "default": 300},
    missing={"type": "str", "choices": ["fail", "ignore"], "default": "fail"},
)
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
# concurrent evictions of one node's pods
PARALLEL = 8
# seconds between evictions refused by a disruption budget
EVICTION_RETRY = 2.0


def pod_id(pod: dict[str, t.Any]) -> str:
    return f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"


def controller_of(pod: dict[str, t.Any]) -> dict[str, t.Any] | None:
    for owner in pod["metadata"].get("ownerReferences") or []:
        if owner.get("controller"):
            return owner
    return None


class NodeDrain:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.state: str = self.params["state"]
        self.names: list[str] = []
        for name in self.params["nodes"]:
            kube.check_node_name(name)
            if name not in self.names:
                self.names.append(name)
        if self.params["timeout"] <= 0:
            raise KubeGPUError(f"timeout={self.params['timeout']} is not valid; give a number of seconds above 0")
        if self.params["grace_period"] is not None and self.params["grace_period"] < 0:
            raise KubeGPUError(f"grace_period={self.params['grace_period']} is not valid; give 0 or more seconds")
        self.diff = DiffTracker()
        self.client: kube.KubeClient

    def classify(self, node: str, pods: list[dict[str, t.Any]]) -> tuple[list[dict], list[str], list[str]]:
        """(pods to evict, pods skipped, problems) of one node, as kubectl drain sorts them."""
        evict, skipped, problems = [], [], []
        for pod in pods:
            metadata = pod["metadata"]
            if metadata.get("deletionTimestamp"):
                continue
            if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
                skipped.append(pod_id(pod))
                continue
            owner = controller_of(pod)
            if owner and owner.get("kind") == "DaemonSet":
                skipped.append(pod_id(pod))
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                evict.append(pod)
                continue
            if owner is None and not self.params["force"]:
                problems.append(f"{pod_id(pod)} is managed by no controller (set force=true to evict it)")
                continue
            if not self.params["delete_emptydir_data"] and any(
                "emptyDir" in volume for volume in (pod.get("spec") or {}).get("volumes") or []
            ):
                problems.append(f"{pod_id(pod)} has emptyDir data (set delete_emptydir_data=true to evict it)")
                continue
            evict.append(pod)
        return evict, skipped, [f"node {node}: {problem}" for problem in problems]

    def _pods(self, node: str) -> list[dict[str, t.Any]]:
        items, _pages = self.client.list_all(
            "/api/v1/pods", what=f"listing the pods of node {node}", query={"fieldSelector": f"spec.nodeName={node}"}
        )
        return items

    def _set_unschedulable(self, node: str, value: bool) -> None:
        self.client.request(
            "PATCH",
            kube.node_path(node),
            what=f"{'cordoning' if value else 'uncordoning'} node {node}",
            body={"spec": {"unschedulable": True if value else None}},
            content_type="application/merge-patch+json",
            retry_conflict=True,
        )

    def _evict(self, pod: dict[str, t.Any], deadline: float) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        base = f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/pods/{urllib.parse.quote(name, safe='')}"
        options: dict[str, t.Any] = {}
        if self.params["grace_period"] is not None:
            options["gracePeriodSeconds"] = self.params["grace_period"]
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        if options:
            body["deleteOptions"] = options
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        while True:
            try:
                if finished:
                    self.client.request(
                        "DELETE", base, what=f"deleting finished pod {namespace}/{name}", body=options or None, not_found_ok=True
                    )
                else:
                    self.client.request(
                        "POST",
                        f"{base}/eviction",
                        what=f"evicting pod {namespace}/{name}",
                        body=body,
                        not_found_ok=True,
                        no_retry=(429,),
                    )
                break
            except kube.KubeAPIError as exc:
                if exc.status != 429:
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise KubeGPUError(
                        f"pod {namespace}/{name} could not be evicted within timeout={self.params['timeout']}s: {exc.msg}"
                    ) from exc
                # a budget frees up when a replacement pod elsewhere becomes ready: look again soon
                time.sleep(min(EVICTION_RETRY, remaining))
        uid = pod["metadata"].get("uid")
        while True:
            live = self.client.request("GET", base, what=f"waiting for pod {namespace}/{name} to go", not_found_ok=True)
            if live is None or live["metadata"].get("uid") != uid:
                return
            if time.monotonic() > deadline:
                raise KubeGPUError(f"pod {namespace}/{name} was evicted but still exists after timeout={self.params['timeout']}s")
            time.sleep(1.0)

    def run(self) -> dict[str, t.Any]:
        self.client = kube.KubeClient.from_params(self.params, parallel=PARALLEL)
        nodes: dict[str, dict[str, t.Any]] = {}
        missing = []
        for name in self.names:
            node = self.client.request("GET", kube.node_path(name), what=f"reading node {name}", not_found_ok=True)
            if node is None:
                missing.append(name)
            else:
                nodes[name] = node
        if missing and self.params["missing"] == "fail":
            raise KubeGPUError(
                f"node(s) not found on {self.client.host}: {', '.join(missing)}; fix the names or set missing=ignore"
            )
        plans: dict[str, tuple[list[dict], list[str]]] = {}
        if self.state == "drain":
            problems: list[str] = []
            for name in nodes:
                evict, skipped, found = self.classify(name, self._pods(name))
                plans[name] = (evict, skipped)
                problems += found
            if problems:
                raise KubeGPUError(f"cannot drain without losing pods: {'; '.join(problems)}")
        results = [self._node(name, node, plans.get(name, ([], []))) for name, node in nodes.items()]
        result: dict[str, t.Any] = {"changed": self.diff.changed, "nodes": results, "missing": missing}
        if self.module._diff:
            result["diff"] = self.diff.diff()
        return result

    def _node(self, name: str, node: dict[str, t.Any], plan: tuple[list[dict], list[str]]) -> dict[str, t.Any]:
        before = bool((node.get("spec") or {}).get("unschedulable"))
        after = self.state != "uncordon"
        evict, skipped = plan
        evicted = [pod_id(pod) for pod in evict]
        self.diff.record(f"{name}.unschedulable", before, after)
        if evicted:
            self.diff.record(f"{name}.pods", evicted, [])
        entry = {
            "name": name,
            "changed": before != after or bool(evicted),
            "unschedulable": after,
            "evicted": evicted,
            "skipped": skipped,
        }
        if self.module.check_mode:
            return entry
        if before != after:
            self._set_unschedulable(name, after)
        if evict:
            deadline = time.monotonic() + self.params["timeout"]
            outcomes = self.client.map(lambda pod: self._evict(pod, deadline), evict)
            failures = [error for _pod, _result, error in outcomes if error]
            if failures:
                raise KubeGPUError(
                    f"draining node {name} failed (it stays cordoned): {'; '.join(str(error) for error in failures)}",
                    changed=True,
                )
        return entry


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not kube.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=kube.KUBERNETES_IMPORT_ERROR)
    try:
        result = NodeDrain(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
