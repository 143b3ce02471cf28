#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_labels
short_description: Set and remove labels on many Kubernetes nodes in one task
version_added: 0.1.0
description:
  - Sets and removes labels on many nodes at once, either per node (O(nodes)) or the same labels on every node a
    label selector matches (O(selector) and O(labels)).
  - Reads all nodes with one paged LIST, then sends one JSON merge patch to each node whose labels differ, O(parallel)
    at a time. Nodes that already carry the wanted labels get no request, so a re-run costs only the LIST.
  - The LIST asks for the Nodes' metadata only (a C(PartialObjectMetadataList), as client-go's metadata client does),
    not their spec and status, so a fleet's labels cost a fraction of the bytes of whole Nodes.
  - A merge patch touches only the labels it names, so labels written by others (kubelet, NFD, GPU Feature
    Discovery) are kept.
  - Every node name, label key and value is checked before the first request; a bad one fails the task naming the
    node, the key and the value, and nothing is changed.
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._kube
  - kubegpu.core._attributes
attributes:
  check_mode:
    support: full
    details: Check mode reads the nodes and reports what would change; it sends no PATCH.
  diff_mode:
    support: full
    details: The diff holds, per node, the labels that change (before and after).
  idempotent:
    support: full
options:
  nodes:
    description:
      - The nodes to label, each a dictionary with C(name) (the node's name) and C(labels) (the labels the node must
        carry; a value of V(null) removes the label).
      - A value is a string; a YAML bool becomes C("true") or C("false") and an integer its digits, and a float (an
        unquoted V(12.10) is already 12.1) is refused before any request, naming the node and label; quote it. The
        rule is the collection's one for every Kubernetes string, in docs/values.md.
      - Mutually exclusive with O(selector).
    type: list
    elements: dict
  selector:
    description:
      - A label selector (for example V(nvidia.com/gpu.present=true)); every node it matches gets O(labels).
      - A selector that matches no node is not an error; the task warns and changes nothing.
      - A task that would remove a label its selector requires (set to V(null) in O(labels), or stale under
        O(exclusive_prefixes)) is refused before any request, since its next run would match other nodes or none.
      - Mutually exclusive with O(nodes).
    type: str
  labels:
    description:
      - With O(selector), the labels every matched node must carry; V(null) removes a label.
      - Values as in O(nodes) - bools and integers become strings, floats are refused (docs/values.md).
    type: dict
  exclusive_prefixes:
    description:
      - Label key prefixes (for example V(nvidia.com/)) this task owns on the nodes it labels. A label under one of
        these prefixes that the task does not ask for is removed.
    type: list
    elements: str
    default: []
  missing:
    description:
      - What to do when a node in O(nodes) does not exist.
      - V(fail) fails before any change; V(ignore) labels the others and lists the missing ones in RV(missing).
    type: str
    choices: [fail, ignore]
    default: fail
  parallel:
    description: How many PATCH requests are in flight at once.
    type: int
    default: 16
seealso:
  - module: kubegpu.core.node_taints
notes:
  - Label rules (Kubernetes "Labels and Selectors"); a key is an optional DNS-subdomain prefix of at most 253
    characters and C(/), then a name of at most 63 characters; a value is empty or at most 63 characters; names and
    values hold letters, digits, C(-), C(_) and C(.) and begin and end with a letter or digit.
"""

EXAMPLES = r"""
- name: Label GPU nodes with what gpu_facts found, in one task
  kubegpu.core.node_labels:
    nodes:
      - name: gpu-node-1
        labels:
          nvidia.com/gpu.product: Tesla-V100-SXM2-16GB
          nvidia.com/gpu.count: 2
          gpu: "on"
      - name: gpu-node-2
        labels:
          nvidia.com/gpu.product: Tesla-T4
          gpu: null  # removes the label
    exclusive_prefixes:
      - kubegpu.io/
  run_once: true

- name: The same label on every node that has a GPU
  kubegpu.core.node_labels:
    selector: nvidia.com/gpu.present=true
    labels:
      kubegpu.io/managed: "true"
"""

RETURN = r"""
nodes:
  description: One entry per node the task considered, in the order given (or the API's order with O(selector)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The node.
      type: str
    changed:
      description: Whether the node's labels changed (or would change in check mode).
      type: bool
    set:
      description: Labels added or given a new value.
      type: dict
    removed:
      description: Labels removed.
      type: list
      elements: str
  sample: [{"name": "gpu-node-1", "changed": true, "set": {"gpu": "on"}, "removed": []}]
missing:
  description: Nodes of O(nodes) that do not exist (with O(missing=ignore)).
  returned: always
  type: list
  elements: str
  sample: []
"""

import re
import typing as t
from copy import deepcopy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils import _kube as kube
from ansible_collections.kubegpu.core.plugins.module_utils._diff import DiffTracker
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._labels import (
    NULL_KEPT,
    kube_string,
    label_key_problem,
    validate_label,
)

ARGUMENT_SPEC: dict[str, t.Any] = deepcopy(kube.KUBE_ARG_SPEC)
ARGUMENT_SPEC.update(
    # entries are checked by NodeLabels itself: Ansible's per-element suboption validation costs
    # seconds on thousands of nodes, and our messages name the node, key and value
    nodes={"type": "list", "elements": "dict"},
    selector={"type": "str"},
    labels={"type": "dict"},
    exclusive_prefixes={"type": "list", "elements": "str", "default": []},
    missing={"type": "str", "choices": ["fail", "ignore"], "default": "fail"},
    parallel={"type": "int", "default": 16},
)


# (key, type of the raw value, raw value) -> its label value, for pairs already checked: a fleet's nodes mostly carry
# the same labels, so 5,000 nodes x 10 labels are a few dozen distinct checks (failures are not kept: each names its node)
_CHECKED: dict[tuple[t.Any, type, t.Any], str | None] = {}
_SCALARS = (str, int, float, bool, type(None))


def desired_labels(labels: t.Any, where: str) -> dict[str, str | None]:
    if not isinstance(labels, dict):
        raise KubeGPUError(f"labels {where} must be a dictionary, not {type(labels).__name__}")
    wanted: dict[str, str | None] = {}
    for key, raw in labels.items():
        known = (key, type(raw), raw) if isinstance(key, str) and isinstance(raw, _SCALARS) else None
        if known is not None and known in _CHECKED:
            wanted[key] = _CHECKED[known]
            continue
        # YAML types values; one rule (docs/values.md) turns them into strings or refuses them
        value = kube_string(raw, f"the value of label {key!r} {where}", NULL_KEPT)
        if value is None:
            problem = label_key_problem(key)
            if problem:
                raise KubeGPUError(f"invalid label key {key!r} {where}: {problem}")
        else:
            validate_label(key, value, where)
        wanted[key] = value
        if known is not None:
            _CHECKED[known] = value
    return wanted


def prefixes(values: list[str]) -> list[str]:
    result = []
    for value in values:
        domain = value.rstrip("/")
        problem = label_key_problem(f"{domain}/x") if domain else "it is empty"
        if problem or "/" in domain:
            raise KubeGPUError(f"exclusive_prefixes: {value!r} is not a label key prefix such as 'nvidia.com/'")
        result.append(domain + "/")
    return result


def selector_keys(selector: str) -> list[str]:
    """The label keys a selector requires to be present: ``key``, ``key=v``, ``key==v``,
    ``key in (...)`` (not ``!key``, ``key!=v`` or ``key notin (...)``, which a node without the
    label also matches)."""
    keys = []
    for requirement in (part.strip() for part in re.split(r",(?![^()]*\))", selector)):
        match = re.fullmatch(r"([^\s!=(),]+)\s*(==?[^=].*|=|\s+in\s*\(.*\)|)", requirement)
        if match:
            keys.append(match.group(1))
    return keys


def label_changes(current: dict[str, str], wanted: dict[str, str | None], owned: list[str]) -> dict[str, str | None]:
    """The merge patch of ``metadata.labels`` that turns ``current`` into what is wanted (None removes)."""
    changes: dict[str, str | None] = {}
    for key, value in wanted.items():
        if value is None:
            if key in current:
                changes[key] = None
        elif current.get(key) != value:
            changes[key] = value
    if owned:
        owned_prefixes = tuple(owned)
        for key in current:
            if key not in wanted and key.startswith(owned_prefixes):
                changes[key] = None
    return changes


class NodeLabels:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        params = module.params
        self.parallel = params["parallel"]
        if self.parallel < 1:
            raise KubeGPUError(f"parallel={self.parallel} is not valid; give 1 or more")
        self.owned = prefixes(params["exclusive_prefixes"])
        self.selector: str | None = params["selector"]
        self.wanted: dict[str, dict[str, str | None]] = {}
        if self.selector is not None:
            self.common = desired_labels(params["labels"] or {}, f"(selector {self.selector!r})")
            self._check_selector_keys_kept()
        else:
            for index, entry in enumerate(params["nodes"]):
                unknown = sorted(set(entry) - {"name", "labels"})
                if unknown or "name" not in entry:
                    problem = f"unknown keys {', '.join(unknown)}" if unknown else "no name"
                    raise KubeGPUError(f"nodes[{index}] has {problem}; each entry is {{name, labels}}")
                name = kube.check_node_name(entry["name"])
                if name in self.wanted:
                    raise KubeGPUError(f"node {name!r} is listed twice in nodes; give each node once")
                self.wanted[name] = desired_labels(entry.get("labels") or {}, f"on node {name!r}")
        self.diff = DiffTracker()
        self.results: list[dict[str, t.Any]] = []

    def _check_selector_keys_kept(self) -> None:
        """A label the selector requires must not be one the task removes (set to null, or
        stale under an exclusive prefix): the task would undo its own selection, and the
        next run would match other nodes, or none."""
        for key in selector_keys(self.selector or ""):
            removed = key in self.common and self.common[key] is None
            stale = key not in self.common and any(key.startswith(prefix) for prefix in self.owned)
            if removed or stale:
                why = "labels sets it to null" if removed else "it falls under exclusive_prefixes and is not in labels"
                raise KubeGPUError(
                    f"selector {self.selector!r} requires the label {key!r}, which this task would remove ({why}); "
                    f"add {key!r} with its value to labels, or select the nodes by another label"
                )

    def run(self) -> dict[str, t.Any]:
        client = kube.KubeClient.from_params(self.module.params, parallel=self.parallel)
        query = {"labelSelector": self.selector} if self.selector is not None else None
        what = f"listing nodes{' matching ' + repr(self.selector) if self.selector else ''}"
        # labels are metadata: the Nodes' spec and status (images, conditions) are not read
        items, _pages = client.list_metadata("/api/v1/nodes", what=what, query=query)
        live = {item["metadata"]["name"]: item["metadata"].get("labels") or {} for item in items}
        if self.selector is not None:
            self.wanted = dict.fromkeys(live, self.common)
            if not live:
                self.module.warn(f"selector {self.selector!r} matched no node on {client.host}; no label was set")
        missing = [name for name in self.wanted if name not in live]
        if missing and self.module.params["missing"] == "fail":
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise KubeGPUError(f"{len(missing)} node(s) not found on {client.host}: {shown}; fix the names or set missing=ignore")
        patches: list[tuple[str, dict[str, str | None]]] = []
        for name, wanted in self.wanted.items():
            if name not in live:
                continue
            current = live[name]
            changes = label_changes(current, wanted, self.owned)
            self.results.append(
                {
                    "name": name,
                    "changed": bool(changes),
                    "set": {key: value for key, value in changes.items() if value is not None},
                    "removed": sorted(key for key, value in changes.items() if value is None),
                }
            )
            if changes:
                self.diff.record(
                    name,
                    {key: current[key] for key in changes if key in current},
                    {key: value for key, value in changes.items() if value is not None},
                )
                patches.append((name, changes))
        if patches and not self.module.check_mode:
            self._patch(client, patches)
        result: dict[str, t.Any] = {"changed": self.diff.changed, "nodes": self.results, "missing": missing}
        if self.module._diff:
            result["diff"] = self.diff.diff()
        return result

    def _patch(self, client: kube.KubeClient, patches: list[tuple[str, dict[str, str | None]]]) -> None:
        def send(item: tuple[str, dict[str, str | None]]) -> None:
            name, changes = item
            client.request(
                "PATCH",
                kube.node_path(name),
                what=f"PATCH labels of node {name}",
                body={"metadata": {"labels": changes}},
                content_type="application/merge-patch+json",
                accept=kube.METADATA_ACCEPT,  # the answer is not read: its metadata is enough
                # no resourceVersion in a merge patch of labels: a 409 cannot be a lost update
                retry_conflict=True,
            )

        failures = [(name, error) for (name, _changes), _result, error in client.map(send, patches) if error]
        if failures:
            failed = {name for name, _error in failures}
            for entry in self.results:
                if entry["name"] in failed:
                    entry["changed"] = False
            first = "; ".join(str(error) for _name, error in failures[:3])
            raise KubeGPUError(
                f"labels could not be written on {len(failures)} of {len(patches)} node(s): {first}",
                changed=len(failures) < len(patches),
                nodes=self.results,
                failed_nodes=sorted(failed),
            )


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("nodes", "selector")],
        required_one_of=[("nodes", "selector")],
        required_by={"selector": ("labels",)},
        supports_check_mode=True,
    )
    if not kube.HAS_URLLIB3:
        module.fail_json(msg=missing_required_lib("urllib3"), exception=kube.URLLIB3_IMPORT_ERROR)
    try:
        result = NodeLabels(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
