#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_info
short_description: Read the Kubernetes API server's version and the Node objects of named nodes
version_added: 0.1.0
description:
  - Reads the API server's C(/version) and, for the nodes named in O(nodes), their labels, taints, capacity and
    allocatable resources, with one paged LIST of the nodes.
  - The roles use it in their preflight (for example, the vGPU scheduler's nodes must carry C(gpu=on)) and to derive
    version-dependent values (the scheduler image tag the API server's version implies).
  - Reads only; it never writes to the cluster.
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._kube
attributes:
  check_mode:
    description: Runs in check mode as in a normal run, since it only reads.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  idempotent:
    description: Reports no change, ever.
    support: full
options:
  nodes:
    description:
      - Names of the nodes to read. Names that match no Node are listed in RV(missing_nodes), not an error.
      - Empty (the default) reads no node and sends only the C(/version) request.
    type: list
    elements: str
    default: []
seealso:
  - module: kubegpu.core.node_labels
"""

EXAMPLES = r"""
- name: The API server's version and the GPU nodes' labels
  kubegpu.core.cluster_info:
    nodes: [gpu-node-1, gpu-node-2]
  register: __cluster

- name: Show the version and the nodes lacking gpu=on
  ansible.builtin.debug:
    msg: >-
      {{ __cluster.version.gitVersion }};
      {{ __cluster.nodes | dict2items | rejectattr('value.labels.gpu', 'defined') | map(attribute='key') | list }}
"""

RETURN = r"""
version:
  description: The API server's C(/version) document as it answered it (C(gitVersion), C(major), C(minor), C(platform), ...).
  returned: always
  type: dict
  sample: {"major": "1", "minor": "25", "gitVersion": "v1.25.4", "platform": "linux/amd64"}
server_version:
  description:
    - C(gitVersion) cut to C(vMAJOR.MINOR.PATCH), without a distribution's suffix (V(v1.31.1+k3s1) and
      V(v1.30.8-eks-2d5f260) give V(v1.31.1) and V(v1.30.8)); the tag of the upstream Kubernetes component images of
      that release. C(null) when C(gitVersion) does not begin with such a version.
  returned: always
  type: str
  sample: v1.25.4
nodes:
  description: The nodes of O(nodes) that exist, by name.
  returned: always
  type: dict
  contains:
    labels:
      description: The node's labels.
      type: dict
    taints:
      description: The node's taints (C(spec.taints)), an empty list when none.
      type: list
      elements: dict
    capacity:
      description: The node's C(status.capacity).
      type: dict
    allocatable:
      description: The node's C(status.allocatable).
      type: dict
  sample: {"gpu-node-1": {"labels": {"gpu": "on"}, "taints": [], "capacity": {"nvidia.com/gpu": "2"},
           "allocatable": {"nvidia.com/gpu": "2"}}}
missing_nodes:
  description: The names of O(nodes) that match no Node, sorted.
  returned: always
  type: list
  elements: str
"""

import re
import typing as t
from copy import deepcopy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils import _kube as kube
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

ARGUMENT_SPEC: dict[str, t.Any] = deepcopy(kube.KUBE_ARG_SPEC)
ARGUMENT_SPEC.update(nodes={"type": "list", "elements": "str", "default": []})

_RELEASE = re.compile(r"v\d+\.\d+\.\d+")


def server_version(git_version: t.Any) -> str | None:
    """``vMAJOR.MINOR.PATCH`` at the start of a ``gitVersion``, or None."""
    match = _RELEASE.match(git_version) if isinstance(git_version, str) else None
    return match.group(0) if match else None


def node_summary(node: dict[str, t.Any]) -> dict[str, t.Any]:
    status = node.get("status") or {}
    return {
        "labels": (node.get("metadata") or {}).get("labels") or {},
        "taints": (node.get("spec") or {}).get("taints") or [],
        "capacity": status.get("capacity") or {},
        "allocatable": status.get("allocatable") or {},
    }


class ClusterInfo:
    def __init__(self, module: AnsibleModule) -> None:
        self.names: list[str] = [kube.check_node_name(name) for name in module.params["nodes"]]
        self.client = kube.KubeClient.from_params(module.params)

    def run(self) -> dict[str, t.Any]:
        version = self.client.request("GET", "/version", what="GET /version")
        if not isinstance(version, dict):
            raise KubeGPUError(f"GET /version: the API server {self.client.host} answered no version document")
        nodes: dict[str, t.Any] = {}
        if self.names:
            wanted = set(self.names)
            items, _pages = self.client.list_all("/api/v1/nodes", what="LIST nodes")
            for node in items:
                name = (node.get("metadata") or {}).get("name")
                if name in wanted:
                    nodes[name] = node_summary(node)
        return {
            "changed": False,
            "version": version,
            "server_version": server_version(version.get("gitVersion")),
            "nodes": nodes,
            "missing_nodes": sorted(set(self.names) - set(nodes)),
        }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not kube.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=kube.KUBERNETES_IMPORT_ERROR)
    try:
        result = ClusterInfo(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
