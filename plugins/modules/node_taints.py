#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_taints
short_description: Add or remove taints on many Kubernetes nodes in one task
version_added: 0.1.0
description:
  - Adds taints to, or removes taints from, many nodes at once, named in O(nodes) or matched by O(selector).
  - Reads all nodes with one paged LIST, then writes only the nodes whose taints differ, O(parallel) at a time.
  - Taints have no merge key, so every write replaces the node's whole C(spec.taints) list. Each write therefore
    carries the C(resourceVersion) it was computed from; when another client changed the node in between, the API
    server answers 409, and the module reads the node again and recomputes, so taints written by others are never
    lost.
  - Every node name, taint key, value and effect is checked before the first request. With O(state=present), two
    taints of the same key and effect are refused, as C(kubectl taint) and the API server refuse them (a node holds
    one taint per key and effect).
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._kube
  - kubegpu.core._attributes
attributes:
  check_mode:
    support: full
    details: Check mode reads the nodes and reports what would change; it writes nothing.
  diff_mode:
    support: full
    details: The diff holds, per node that changes, its taints before and after.
  idempotent:
    support: full
options:
  nodes:
    description: Names of the nodes. Mutually exclusive with O(selector).
    type: list
    elements: str
  selector:
    description: A label selector (for example V(nvidia.com/gpu.present=true)); every node it matches is handled.
    type: str
  taints:
    description: The taints to add or remove.
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: The taint's key; the rules of a label key.
        type: str
        required: true
      value:
        description:
          - The taint's value; the rules of a label value. Omitted, V(null) or V("") means no value (Kubernetes'
            taint value is optional).
          - A YAML bool becomes C("true") or C("false") (as M(kubegpu.core.node_labels) and kubectl write it) and an
            integer its digits; a float (an unquoted V(12.10) is already 12.1) is refused before any request; quote
            it. The rule is the collection's one for every Kubernetes string, in docs/values.md.
          - With O(state=absent) the value is ignored; taints match by key and effect.
        type: raw
      effect:
        description:
          - The taint's effect. Required with O(state=present).
          - With O(state=absent), omitting it removes the key's taints of every effect.
        type: str
        choices: [NoSchedule, PreferNoSchedule, NoExecute]
  state:
    description:
      - V(present) adds each taint (or gives an existing taint of the same key and effect the new value).
      - V(absent) removes the taints of each key (and effect, when given).
    type: str
    choices: [present, absent]
    default: present
  missing:
    description: What to do when a node in O(nodes) does not exist; V(fail) fails before any change.
    type: str
    choices: [fail, ignore]
    default: fail
  parallel:
    description: How many writes are in flight at once.
    type: int
    default: 16
seealso:
  - module: kubegpu.core.node_labels
"""

EXAMPLES = r"""
- name: Keep non-GPU work off the GPU nodes
  kubegpu.core.node_taints:
    selector: nvidia.com/gpu.present=true
    taints:
      - key: nvidia.com/gpu
        value: present
        effect: NoSchedule

- name: Remove the taint of every effect from two nodes
  kubegpu.core.node_taints:
    nodes: [gpu-node-1, gpu-node-2]
    taints:
      - key: nvidia.com/gpu
    state: absent
"""

RETURN = r"""
nodes:
  description: One entry per node handled.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The node.
      type: str
    changed:
      description:
        - Whether the node's taints changed (or would change in check mode), judged against the taints read at the
          start of the task; a write whose answer was lost and that a retry finds applied counts as a change.
      type: bool
    taints:
      description: The node's taints after the task.
      type: list
      elements: dict
    conflicts:
      description: How many times the write met a newer version of the node (409) and was recomputed.
      type: int
  sample: [{"name": "gpu-node-1", "changed": true, "conflicts": 0,
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}]
missing:
  description: Nodes of O(nodes) that do not exist (with O(missing=ignore)).
  returned: always
  type: list
  elements: str
"""

import time
import typing as t
from copy import deepcopy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils import _kube as kube
from ansible_collections.kubegpu.core.plugins.module_utils._diff import DiffTracker
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._labels import (
    NULL_EMPTY,
    kube_string,
    label_key_problem,
    label_value_problem,
)

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
ARGUMENT_SPEC: dict[str, t.Any] = deepcopy(kube.KUBE_ARG_SPEC)
ARGUMENT_SPEC.update(
    nodes={"type": "list", "elements": "str"},
    selector={"type": "str"},
    taints={
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "key": {"type": "str", "required": True, "no_log": False},
            # raw: Ansible's str would turn true into "True" and 12.10 into "12.1" before we could tell (docs/values.md)
            "value": {"type": "raw"},
            "effect": {"type": "str", "choices": list(EFFECTS)},
        },
    },
    state={"type": "str", "choices": ["present", "absent"], "default": "present"},
    missing={"type": "str", "choices": ["fail", "ignore"], "default": "fail"},
    parallel={"type": "int", "default": 16},
)
# A node that keeps changing under us: give up after this many rereads.
MAX_CONFLICTS = 10


def check_taint(taint: dict[str, t.Any], state: str) -> dict[str, str]:
    key, effect = taint["key"], taint.get("effect")
    problem = label_key_problem(key)
    if problem:
        raise KubeGPUError(f"invalid taint key {key!r}: {problem}")
    value = kube_string(taint.get("value"), f"the value of taint {key!r}", NULL_EMPTY)
    if value is not None and state == "present":
        problem = label_value_problem(value)
        if problem:
            raise KubeGPUError(f"invalid value {value!r} of taint {key!r}: {problem}")
    if effect is not None and effect not in EFFECTS:
        raise KubeGPUError(f"invalid effect {effect!r} of taint {key!r}; expected one of {', '.join(EFFECTS)}")
    if state == "present" and effect is None:
        raise KubeGPUError(f"taint {key!r} has no effect; state=present needs one of {', '.join(EFFECTS)}")
    checked = {"key": key, "effect": effect}
    if value:
        checked["value"] = value
    return checked


def taint_text(taint: dict[str, t.Any]) -> str:
    """A taint as kubectl taint writes it: ``key=value:effect``."""
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint['key']}{value}:{taint.get('effect') or ''}"


def check_unique(taints: list[dict[str, t.Any]]) -> None:
    """A node holds one taint per key and effect (the API server's validateNodeTaints refuses duplicates, and
    kubectl taint refuses them before sending): two of them in one task cannot both be applied."""
    seen: dict[tuple[str, str | None], dict[str, t.Any]] = {}
    for taint in taints:
        first = seen.setdefault((taint["key"], taint["effect"]), taint)
        if first is not taint:
            raise KubeGPUError(
                f"taints {taint_text(first)!r} and {taint_text(taint)!r} have the same key and effect; a node holds one "
                "taint per key and effect (the API server refuses duplicates): give one of them"
            )


def wanted_taints(current: list[dict[str, t.Any]], taints: list[dict[str, str]], state: str) -> list[dict[str, t.Any]]:
    """The node's taint list after adding or removing ``taints``; others' taints kept in place and order."""
    result = [dict(item) for item in current]
    for taint in taints:
        same = [
            item
            for item in result
            if item.get("key") == taint["key"] and (taint["effect"] is None or item.get("effect") == taint["effect"])
        ]
        if state == "absent":
            result = [item for item in result if item not in same]
        elif not same:
            result.append(dict(taint))
        elif (same[0].get("value") or "") != taint.get("value", ""):
            same[0].pop("value", None)
            if taint.get("value"):
                same[0]["value"] = taint["value"]
            same[0].pop("timeAdded", None)
    return result


class NodeTaints:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        params = module.params
        self.state: str = params["state"]
        self.parallel: int = params["parallel"]
        if self.parallel < 1:
            raise KubeGPUError(f"parallel={self.parallel} is not valid; give 1 or more")
        self.taints = [check_taint(taint, self.state) for taint in params["taints"]]
        if self.state == "present":
            check_unique(self.taints)
        self.selector: str | None = params["selector"]
        self.names: list[str] = []
        for name in params["nodes"] or []:
            kube.check_node_name(name)
            if name in self.names:
                raise KubeGPUError(f"node {name!r} is listed twice in nodes; give each node once")
            self.names.append(name)
        self.diff = DiffTracker()
        self.client: kube.KubeClient

    def run(self) -> dict[str, t.Any]:
        self.client = kube.KubeClient.from_params(self.module.params, parallel=self.parallel)
        query = {"labelSelector": self.selector} if self.selector is not None else None
        items, _pages = self.client.list_all("/api/v1/nodes", what="listing nodes", query=query)
        live = {item["metadata"]["name"]: item for item in items}
        names = list(live) if self.selector is not None else self.names
        missing = [name for name in names if name not in live]
        if missing and self.module.params["missing"] == "fail":
            raise KubeGPUError(
                f"{len(missing)} node(s) not found on {self.client.host}: {', '.join(missing[:10])}; "
                "fix the names or set missing=ignore"
            )
        outcomes = self.client.map(lambda name: self._node(live[name]), [name for name in names if name in live])
        failures = [(name, error) for name, _outcome, error in outcomes if error]
        results = [outcome for _name, outcome, error in outcomes if not error]
        if failures:
            first = "; ".join(str(error) for _name, error in failures[:3])
            raise KubeGPUError(
                f"taints could not be written on {len(failures)} node(s): {first}",
                changed=any(entry["changed"] for entry in results),
                nodes=results,
                failed_nodes=sorted(name for name, _error in failures),
            )
        result: dict[str, t.Any] = {"changed": self.diff.changed, "nodes": results, "missing": missing}
        if self.module._diff:
            result["diff"] = self.diff.diff()
        return result

    def _node(self, node: dict[str, t.Any]) -> dict[str, t.Any]:
        """Read-modify-write of one node's taints, recomputed from a fresh read after each 409.

        Whether the node changed is judged against its taints as first read, not as reread after a conflict: a
        PATCH whose answer was lost (the connection reset after the server applied it) is sent again, meets 409
        (its own write changed the resourceVersion), and the reread shows the node as wanted; the task's write
        happened all the same."""
        name = node["metadata"]["name"]
        before = (node.get("spec") or {}).get("taints") or []
        conflicts = 0
        deadline = time.monotonic() + self.client.timeout
        while True:
            current = (node.get("spec") or {}).get("taints") or []
            after = wanted_taints(current, self.taints, self.state)
            if after == current or self.module.check_mode:
                break
            body = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}, "spec": {"taints": after or None}}
            try:
                self.client.request(
                    "PATCH",
                    kube.node_path(name),
                    what=f"PATCH taints of node {name}",
                    body=body,
                    content_type="application/merge-patch+json",
                    accept=kube.METADATA_ACCEPT,  # the answer is not read: no need to move the whole Node back
                )
                break
            except kube.KubeAPIError as exc:
                if exc.status != 409 or conflicts >= MAX_CONFLICTS or time.monotonic() > deadline:
                    raise
            conflicts += 1
            node = self.client.request("GET", kube.node_path(name), what=f"reading node {name} after a conflict")
        self.diff.record(name, before, after)
        return {"name": name, "changed": after != before, "taints": after, "conflicts": conflicts}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("nodes", "selector")],
        required_one_of=[("nodes", "selector")],
        supports_check_mode=True,
    )
    if not kube.HAS_URLLIB3:
        module.fail_json(msg=missing_required_lib("urllib3"), exception=kube.URLLIB3_IMPORT_ERROR)
    try:
        result = NodeTaints(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
