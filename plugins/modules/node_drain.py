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
  - A drain follows C(kubectl drain --ignore-daemonsets). Every node of the task is cordoned first; then, one node
    after another, the node's pods are listed and all of them evicted at once, and the drain waits for every evicted
    pod to be gone (pods already terminating included) up to O(timeout).
  - Pods of a DaemonSet that exists and mirror (static) pods are skipped; finished pods are deleted without an
    eviction. A pod whose DaemonSet no longer exists or that no controller manages needs O(force); a pod with
    C(emptyDir) volumes needs O(delete_emptydir_data). These checks run over every node before anything is written
    (the task then fails naming the pods, without cordoning), and again for each node at its turn.
  - An eviction refused by a disruption budget (HTTP 429) is retried until O(timeout); then the task fails naming the
    pod and the budget. A pod that more than one budget selects cannot be evicted (the API server answers 500), so
    the task fails at once naming it.
  - A node whose drain fails stays cordoned; the other nodes are still drained and the task fails in the end, naming
    the failed nodes and those drained.
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
    description:
      - Also evict pods that no controller manages, and pods of a DaemonSet that no longer exists (they are not
        recreated anywhere).
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
    description:
      - Seconds a drain of one node may take, waiting for disruption budgets and for evicted (or already terminating)
        pods to go.
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
      description: Pods evicted (or deleted, when finished), as C(namespace/name); pods already terminating too.
      type: list
      elements: str
    skipped:
      description: Pods left on the node (pods of existing DaemonSets, mirror pods), as C(namespace/name).
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
FINISHED = ("Succeeded", "Failed")
# seconds between evictions refused by a disruption budget
EVICTION_RETRY = 2.0
# seconds between looks at the pods still on a node (kubectl drain's waitForDelete polls every second)
WAIT_INTERVAL = 1.0
# concurrent requests (evictions and reads); evicting never waits for a pod to go
PARALLEL = 8


def pod_id(pod: dict[str, t.Any]) -> str:
    return f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"


def pod_path(pod: dict[str, t.Any]) -> str:
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    return f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/pods/{urllib.parse.quote(name, safe='')}"


def controller_of(pod: dict[str, t.Any]) -> dict[str, t.Any] | None:
    for owner in pod["metadata"].get("ownerReferences") or []:
        if owner.get("controller"):
            return owner
    return None


def finished(pod: dict[str, t.Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in FINISHED


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

    # -- which pods go: kubectl's filters (k8s.io/kubectl/pkg/drain/filters.go) --------------------------------

    def classify(self, node: str, pods: list[dict[str, t.Any]]) -> tuple[list[dict], list[str], list[str]]:
        """(pods to evict, pods skipped, problems) of one node, through kubectl drain's filters in its order:
        daemonSetFilter (with --ignore-daemonsets), mirrorPodFilter, localStorageFilter, unreplicatedFilter; the
        first filter that keeps a pod decides. Terminating pods pass (skipDeletedFilter with its default
        timeout of 0): they are evicted again and waited for."""
        evict, skipped, problems = [], [], []
        daemonsets: dict[tuple[str, str], bool] = {}
        for pod in pods:
            metadata = pod["metadata"]
            owner = controller_of(pod)
            if owner and owner.get("kind") == "DaemonSet" and not finished(pod):
                if self._daemonset_exists(metadata.get("namespace"), owner.get("name"), daemonsets):
                    skipped.append(pod_id(pod))
                    continue
                if not self.params["force"]:
                    problems.append(
                        f"{pod_id(pod)} belongs to DaemonSet {metadata.get('namespace')}/{owner.get('name')}, "
                        "which does not exist (set force=true to evict it)"
                    )
                    continue
            if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
                skipped.append(pod_id(pod))
                continue
            if (
                not finished(pod)
                and not self.params["delete_emptydir_data"]
                and any("emptyDir" in volume for volume in (pod.get("spec") or {}).get("volumes") or [])
            ):
                problems.append(f"{pod_id(pod)} has emptyDir data (set delete_emptydir_data=true to evict it)")
                continue
            if not finished(pod) and owner is None and not self.params["force"]:
                problems.append(f"{pod_id(pod)} is managed by no controller (set force=true to evict it)")
                continue
            evict.append(pod)
        return evict, skipped, [f"node {node}: {problem}" for problem in problems]

    def _daemonset_exists(self, namespace: str, name: str, seen: dict[tuple[str, str], bool]) -> bool:
        if (namespace, name) not in seen:
            path = (
                f"/apis/apps/v1/namespaces/{urllib.parse.quote(namespace, safe='')}"
                f"/daemonsets/{urllib.parse.quote(name, safe='')}"
            )
            found = self.client.request("GET", path, what=f"reading DaemonSet {namespace}/{name}", not_found_ok=True)
            seen[(namespace, name)] = found is not None
        return seen[(namespace, name)]

    def _pods(self, node: str) -> list[dict[str, t.Any]]:
        items, _pages = self.client.list_all(
            "/api/v1/pods", what=f"listing the pods of node {node}", query={"fieldSelector": f"spec.nodeName={node}"}
        )
        return items

    def _plan(self, node: str) -> tuple[list[dict], list[str]]:
        """The pods of ``node`` now, sorted; fails naming every pod a drain would lose."""
        evict, skipped, problems = self.classify(node, self._pods(node))
        if problems:
            raise KubeGPUError(f"cannot drain without losing pods: {'; '.join(problems)}")
        return evict, skipped

    # -- writes ---------------------------------------------------------------------------------------------------

    def _set_unschedulable(self, node: str, value: bool) -> None:
        self.client.request(
            "PATCH",
            kube.node_path(node),
            what=f"{'cordoning' if value else 'uncordoning'} node {node}",
            body={"spec": {"unschedulable": True if value else None}},
            content_type="application/merge-patch+json",
            retry_conflict=True,
        )

    def _evict(self, pod: dict[str, t.Any]) -> str | None:
        """One eviction (a delete for a finished pod); the budget's refusal when it answers 429, else None."""
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        options: dict[str, t.Any] = {}
        if self.params["grace_period"] is not None:
            options["gracePeriodSeconds"] = self.params["grace_period"]
        if finished(pod):
            what = f"deleting finished pod {namespace}/{name}"
            self.client.request("DELETE", pod_path(pod), what=what, body=options or None, not_found_ok=True)
            return None
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        if options:
            body["deleteOptions"] = options
        try:
            self.client.request(
                "POST",
                f"{pod_path(pod)}/eviction",
                what=f"evicting pod {namespace}/{name}",
                body=body,
                not_found_ok=True,
                no_retry=(429,),
            )
        except kube.KubeAPIError as exc:
            if exc.status != 429:
                raise
            return exc.msg
        return None

    def _drain(self, node: str, pods: list[dict[str, t.Any]]) -> None:
        """kubectl drain's evictPods: every pod is evicted at once (a budget's 429 is retried until the timeout,
        any other refusal fails), then the drain waits for every evicted pod to be gone, terminating ones included."""
        deadline = time.monotonic() + self.params["timeout"]
        pending = list(pods)
        while pending:
            refused: list[tuple[dict, str]] = []
            failures: list[str] = []
            for pod, refusal, error in self.client.map(self._evict, pending):
                if error is not None:
                    failures.append(str(error))
                elif refusal is not None:
                    refused.append((pod, refusal))
            if failures:
                raise KubeGPUError(f"draining node {node} failed (it stays cordoned): {'; '.join(failures)}", changed=True)
            pending = [pod for pod, _refusal in refused]
            if pending and time.monotonic() + EVICTION_RETRY > deadline:
                raise KubeGPUError(
                    f"draining node {node} failed (it stays cordoned): "
                    + "; ".join(
                        f"pod {pod_id(pod)} could not be evicted within timeout={self.params['timeout']}s: {refusal}"
                        for pod, refusal in refused
                    ),
                    changed=True,
                )
            if pending:
                # a budget frees up when a replacement pod elsewhere becomes ready: ask again soon
                time.sleep(EVICTION_RETRY)
        uids = {pod["metadata"].get("uid"): pod_id(pod) for pod in pods}
        while True:
            left = [uids[item["metadata"].get("uid")] for item in self._pods(node) if item["metadata"].get("uid") in uids]
            if not left:
                return
            if time.monotonic() + WAIT_INTERVAL > deadline:
                raise KubeGPUError(
                    f"draining node {node} failed (it stays cordoned): pods evicted but still terminating after "
                    f"timeout={self.params['timeout']}s: {', '.join(sorted(left))}",
                    changed=True,
                )
            time.sleep(WAIT_INTERVAL)

    # -- the task -------------------------------------------------------------------------------------------------

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
            # refuse before any write: every node's pods as they are now (each node is listed again at its turn)
            problems: list[str] = []
            for name in nodes:
                evict, skipped, found = self.classify(name, self._pods(name))
                plans[name] = (evict, skipped)
                problems += found
            if problems:
                raise KubeGPUError(f"cannot drain without losing pods: {'; '.join(problems)}")
        after = self.state != "uncordon"
        before = {name: bool((node.get("spec") or {}).get("unschedulable")) for name, node in nodes.items()}
        if not self.module.check_mode:
            # kubectl drain cordons every node before it drains the first: no evicted pod lands on a node
            # that is about to be drained
            for name in nodes:
                if before[name] != after:
                    self._set_unschedulable(name, after)
        # kubectl drain goes on with the other nodes when one fails, and fails in the end naming it
        results, failures, changed = [], [], False
        for name in nodes:
            try:
                results.append(self._node(name, before[name], after, plans.get(name, ([], []))))
            except KubeGPUError as exc:
                failures.append(exc.msg)
                changed = changed or bool(exc.details.get("changed"))
        if failures:
            drained = [entry["name"] for entry in results]
            raise KubeGPUError(
                "; ".join(failures) + (f"; drained: {', '.join(drained)}" if drained else ""),
                changed=changed or self.diff.changed or any(before[name] != after for name in nodes),
                nodes=results,
                missing=missing,
            )
        result: dict[str, t.Any] = {"changed": self.diff.changed, "nodes": results, "missing": missing}
        if self.module._diff:
            result["diff"] = self.diff.diff()
        return result

    def _node(self, name: str, before: bool, after: bool, plan: tuple[list[dict], list[str]]) -> dict[str, t.Any]:
        evict, skipped = plan
        if self.state == "drain" and not self.module.check_mode:
            # kubectl's getPodsForDeletion: the node's pods when its turn comes, not those seen at the start
            try:
                evict, skipped = self._plan(name)
            except kube.KubeAPIError:
                raise
            except KubeGPUError as exc:
                raise KubeGPUError(f"{exc.msg} (node {name} stays cordoned)") from exc
        evicted = [pod_id(pod) for pod in evict]
        self.diff.record(f"{name}.unschedulable", before, after)
        if evicted:
            self.diff.record(f"{name}.pods", evicted, [])
        if evict and not self.module.check_mode:
            self._drain(name, evict)
        return {
            "name": name,
            "changed": before != after or bool(evicted),
            "unschedulable": after,
            "evicted": evicted,
            "skipped": skipped,
        }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not kube.HAS_URLLIB3:
        module.fail_json(msg=missing_required_lib("urllib3"), exception=kube.URLLIB3_IMPORT_ERROR)
    try:
        result = NodeDrain(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
