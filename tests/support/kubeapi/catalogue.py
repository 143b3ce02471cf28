"""The resource types the test API server serves: a built-in catalogue plus CustomResourceDefinitions.

Each entry says what discovery says about it (kind, plural, singular, short names, scope, verbs,
subresources). Entries for custom resources are derived from a stored CustomResourceDefinition.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    custom: bool = False
    # CRD schema of this version (custom resources only), served in OpenAPI v3.
    schema: Optional[dict] = dataclasses.field(default=None, compare=False, hash=False)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``nodes`` or ``deployments.apps``, as Kubernetes names resources in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def storage_key(self) -> tuple[str, str]:
        """Objects are stored once per group and plural, whatever version they are read with."""
        return (self.group, self.plural)


def _r(gv: str, kind: str, plural: str, namespaced: bool = True, short: str = "", sub: str = "", cat: str = "") -> ResourceType:  # noqa: PLR0917 - rows of a table
    group, _slash, version = gv.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        namespaced=namespaced,
        short_names=tuple(short.split()) if short else (),
        subresources=tuple(sub.split()) if sub else (),
        categories=tuple(cat.split()) if cat else (),
    )


BUILTIN: tuple[ResourceType, ...] = (
    _r("v1", "Namespace", "namespaces", False, "ns", "status"),
    _r("v1", "Node", "nodes", False, "no", "status"),
    _r("v1", "Pod", "pods", True, "po", "status eviction", "all"),
    _r("v1", "Service", "services", True, "svc", "status", "all"),
    _r("v1", "ConfigMap", "configmaps", True, "cm"),
    _r("v1", "Secret", "secrets"),
    _r("v1", "ServiceAccount", "serviceaccounts", True, "sa"),
    _r("v1", "Endpoints", "endpoints", True, "ep"),
    _r("v1", "Event", "events", True, "ev"),
    _r("v1", "PersistentVolume", "persistentvolumes", False, "pv", "status"),
    _r("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, "pvc", "status"),
    _r("v1", "ResourceQuota", "resourcequotas", True, "quota", "status"),
    _r("v1", "LimitRange", "limitranges", True, "limits"),
    _r("v1", "ReplicationController", "replicationcontrollers", True, "rc", "status", "all"),
    _r("apps/v1", "Deployment", "deployments", True, "deploy", "status", "all"),
    _r("apps/v1", "DaemonSet", "daemonsets", True, "ds", "status", "all"),
    _r("apps/v1", "StatefulSet", "statefulsets", True, "sts", "status", "all"),
    _r("apps/v1", "ReplicaSet", "replicasets", True, "rs", "status", "all"),
    _r("apps/v1", "ControllerRevision", "controllerrevisions"),
    _r("batch/v1", "Job", "jobs", True, "", "status", "all"),
    _r("batch/v1", "CronJob", "cronjobs", True, "cj", "status", "all"),
    _r("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, "hpa", "status", "all"),
    _r("rbac.authorization.k8s.io/v1", "Role", "roles"),
    _r("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    _r("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _r("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False, "crd crds", "status"),
    _r("storage.k8s.io/v1", "StorageClass", "storageclasses", False, "sc"),
    _r("storage.k8s.io/v1", "CSIDriver", "csidrivers", False),
    _r("storage.k8s.io/v1", "CSINode", "csinodes", False),
    _r("storage.k8s.io/v1", "VolumeAttachment", "volumeattachments", False, "", "status"),
    _r("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False, "pc"),
    _r("coordination.k8s.io/v1", "Lease", "leases"),
    _r("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True, "pdb", "status"),
    _r("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True, "netpol"),
    _r("networking.k8s.io/v1", "Ingress", "ingresses", True, "ing", "status"),
    _r("networking.k8s.io/v1", "IngressClass", "ingressclasses", False),
    _r("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    _r("node.k8s.io/v1", "RuntimeClass", "runtimeclasses", False),
    _r("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False),
    _r("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False),
    _r("apiregistration.k8s.io/v1", "APIService", "apiservices", False, "", "status"),
)

CRD_TYPE = next(r for r in BUILTIN if r.kind == "CustomResourceDefinition")


def types_from_crd(crd: dict) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    types = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        types.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version["name"],
                kind=names.get("kind", ""),
                plural=names.get("plural", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                subresources=tuple(sorted((version.get("subresources") or {}).keys())),
                categories=tuple(names.get("categories") or ()),
                custom=True,
                schema=schema,
            )
        )
    return types


class Catalogue:
    """Built-in types plus those of the stored CRDs; answers discovery questions."""

    def __init__(self) -> None:
        self._crd_types: dict[str, list[ResourceType]] = {}

    def set_crd(self, name: str, crd: Optional[dict]) -> None:
        if crd is None:
            self._crd_types.pop(name, None)
        else:
            self._crd_types[name] = types_from_crd(crd)

    def clear_crds(self) -> None:
        self._crd_types.clear()

    def all(self) -> list[ResourceType]:
        types = list(BUILTIN)
        for crd_types in self._crd_types.values():
            types.extend(crd_types)
        return types

    def find(self, group: str, version: str, plural: str) -> Optional[ResourceType]:
        for rtype in self.all():
            if (rtype.group, rtype.version, rtype.plural) == (group, version, plural):
                return rtype
        return None

    def find_kind(self, group: str, version: str, kind: str) -> Optional[ResourceType]:
        for rtype in self.all():
            if (rtype.group, rtype.version, rtype.kind) == (group, version, kind):
                return rtype
        return None

    def groups(self) -> dict[str, list[str]]:
        """Group name -> versions, in catalogue order (the first is the preferred version)."""
        groups: dict[str, list[str]] = {}
        for rtype in self.all():
            versions = groups.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        return groups

    def resources_of(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self.all() if (r.group, r.version) == (group, version)]


def discovery_resource_list(group_version: str, types: list[ResourceType]) -> dict:
    """An APIResourceList, as ``/api/v1`` or ``/apis/<group>/<version>`` answer."""
    resources = []
    for rtype in types:
        entry = {
            "name": rtype.plural,
            "singularName": rtype.singular,
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": list(ALL_VERBS),
        }
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        resources.append(entry)
        for sub in rtype.subresources:
            if (rtype.plural, sub) == ("pods", "eviction"):
                # as kube-apiserver lists it (kubectl drain looks for this entry to use the Eviction API)
                resources.append(
                    {
                        "name": "pods/eviction",
                        "singularName": "",
                        "namespaced": True,
                        "group": "policy",
                        "version": "v1",
                        "kind": "Eviction",
                        "verbs": ["create"],
                    }
                )
                continue
            resources.append(
                {
                    "name": f"{rtype.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
