#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_info
short_description: Read Kubernetes objects, whether their kind is served, and the API server's version
version_added: 0.1.0
description:
  - Reads one object (O(name)) or lists the objects of a kind (optionally by label and field selector) and returns
    them without C(managedFields). Changes nothing.
  - Looks the kind up in the cluster's discovery first; a kind the cluster does not serve (for example an OpenFaaS
    C(Profile) before OpenFaaS is installed) is not an error, it returns RV(served=false) and no resources, so a
    role can refuse with its own message.
  - Also returns the API server's C(/version) document and the release it names (RV(server_version), for example
    to derive the tag of an upstream Kubernetes component image from the cluster's version).
  - The roles use it in their preflight (for example, the vGPU scheduler's nodes must exist and carry C(gpu=on),
    which the role checks against one paged LIST of the Nodes) and for the readiness report.
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._kube
  - kubegpu.core._attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode reads the same.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  api_version:
    description: The kind's API version, for example V(v1), V(apps/v1) or V(openfaas.com/v1).
    type: str
    default: v1
  kind:
    description:
      - The kind, for example V(Node), V(Pod) or V(Profile), or any name C(kubectl get) takes for it in O(api_version),
        read from the cluster's discovery; the plural or singular resource name in any case (V(nodes), V(node),
        V(NODE)) or a short name as written (V(no)). RV(resources) carry the kind itself (V(Node)).
    type: str
    required: true
  name:
    description: Read only the object of this name; RV(resources) is empty when it does not exist.
    type: str
  namespace:
    description:
      - Namespace of a namespaced kind. Omitted, a list covers every namespace; with O(name) it is required for a
        namespaced kind.
    type: str
  label_selector:
    description: A label selector, for example V(gpu=on) or V(app.kubernetes.io/name=kubegpu-smoke).
    type: str
  field_selector:
    description: A field selector, for example V(status.phase=Running) or V(spec.nodeName=gpu-node-1).
    type: str
  metadata_only:
    description:
      - Read only the objects' C(metadata) (name, labels, annotations, ...), negotiated as a C(PartialObjectMetadataList)
        (or C(PartialObjectMetadata) with O(name)) as client-go's metadata client asks for it; each of RV(resources)
        then holds C(apiVersion), C(kind) and C(metadata) only. On a fleet of Nodes a fraction of the bytes of whole
        objects, for tasks that read names or labels.
    type: bool
    default: false
    version_added: 0.1.0
seealso:
  - module: kubegpu.core.k8s_apply
"""

EXAMPLES = r"""
- name: Is the OpenFaaS Profile kind served?
  kubegpu.core.k8s_info:
    api_version: openfaas.com/v1
    kind: Profile
    namespace: openfaas
  register: profiles

- name: The GPU nodes and their allocatable resources
  kubegpu.core.k8s_info:
    kind: Node
    label_selector: gpu=on
  register: gpu_nodes

- name: The smoke pods
  kubegpu.core.k8s_info:
    kind: Pod
    namespace: default
    label_selector: app.kubernetes.io/name=kubegpu-smoke
  register: smoke

- name: The nodes of a list that the cluster does not have, and the kube-scheduler tag of the cluster's release
  kubegpu.core.k8s_info:
    kind: Node
  register: cluster

- name: Show them
  ansible.builtin.debug:
    msg: >-
      missing: {{ ['gpu-node-1', 'gpu-node-2'] | difference(cluster.resources | map(attribute='metadata.name')) }};
      tag: {{ cluster.server_version }}
"""

RETURN = r"""
served:
  description: Whether the cluster serves O(kind) in O(api_version).
  returned: always
  type: bool
  sample: true
resources:
  description: The objects found (at most one with O(name)), as the API server returned them, without C(managedFields).
  returned: always
  type: list
  elements: dict
  sample: [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-node-1"}, "spec": {}, "status": {}}]
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
"""

import re
import typing as t
import urllib.parse
from copy import deepcopy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils import _kube as kube
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

ARGUMENT_SPEC: dict[str, t.Any] = deepcopy(kube.KUBE_ARG_SPEC)
ARGUMENT_SPEC.update(
    api_version={"type": "str", "default": "v1"},
    kind={"type": "str", "required": True},
    name={"type": "str"},
    namespace={"type": "str"},
    label_selector={"type": "str"},
    metadata_only={"type": "bool", "default": False},
    field_selector={"type": "str"},
)

_RELEASE = re.compile(r"v\d+\.\d+\.\d+")


def server_version(git_version: t.Any) -> str | None:
    """``vMAJOR.MINOR.PATCH`` at the start of a ``gitVersion`` (the upstream release a distribution's build is
    of), or None."""
    match = _RELEASE.match(git_version) if isinstance(git_version, str) else None
    return match.group(0) if match else None


class K8sInfo:
    def __init__(self, module: AnsibleModule) -> None:
        self.params = module.params
        if not self.params["kind"] or "/" in self.params["kind"]:
            raise KubeGPUError(f"kind={self.params['kind']!r} is not valid; give a kind such as Node, Pod or Profile")
        if not self.params["api_version"] or self.params["api_version"].count("/") > 1:
            raise KubeGPUError(
                f"api_version={self.params['api_version']!r} is not valid; give v1 or group/version, such as apps/v1"
            )
        if self.params["name"] is not None and not self.params["name"]:
            raise KubeGPUError("name='' is not valid; give an object's name or leave name out to list")

    def run(self) -> dict[str, t.Any]:
        client = kube.KubeClient.from_params(self.params)
        answer = client.request("GET", "/version", what="reading the API server's version")
        version = answer if isinstance(answer, dict) else {}
        versions = {"version": version, "server_version": server_version(version.get("gitVersion"))}
        api_version = self.params["api_version"]
        resource = kube.Discovery(client).find(api_version, self.params["kind"])
        if resource is None:
            return {"changed": False, "served": False, "resources": [], **versions}
        kind = resource["kind"]
        namespace = self.params["namespace"]
        name = self.params["name"]
        if name and resource.get("namespaced") and not namespace:
            raise KubeGPUError(f"{kind} ({api_version}) is namespaced: give namespace with name={name!r}")
        path = kube.Discovery.collection_path(api_version, resource, namespace)
        label = f"{kind} ({api_version})"
        metadata_only = self.params["metadata_only"]
        if name:
            obj = client.request(
                "GET",
                f"{path}/{urllib.parse.quote(name, safe='')}",
                what=f"reading {label} {name}",
                not_found_ok=True,
                accept=kube.METADATA_ACCEPT if metadata_only else None,
            )
            items = [] if obj is None else [obj]
        else:
            query = {"labelSelector": self.params["label_selector"], "fieldSelector": self.params["field_selector"]}
            read = client.list_metadata if metadata_only else client.list_all
            items, _pages = read(path, what=f"listing {label}", query=query)
        for item in items:
            if metadata_only:  # the object's own kind, not PartialObjectMetadata; nothing but its metadata
                for key in [key for key in item if key != "metadata"]:
                    del item[key]
            # list items carry no apiVersion/kind; give them back as a get would
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return {
            "changed": False,
            "served": True,
            "resources": [kube.without_managed_fields(item) for item in items],
            **versions,
        }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not kube.HAS_URLLIB3:
        module.fail_json(msg=missing_required_lib("urllib3"), exception=kube.URLLIB3_IMPORT_ERROR)
    try:
        result = K8sInfo(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
