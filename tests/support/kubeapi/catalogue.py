"""The resource types the test API server serves: a built-in catalogue plus CustomResourceDefinitions.

Each entry says what discovery says about it (kind, plural, singular, short names, scope, verbs,
subresources). Entries for custom resources are derived from a stored CustomResourceDefinition.

Built-in group-versions are served as a kube-apiserver of the reported ``/version`` serves them with
its default ``--runtime-config``: GA versions and the betas that were on by default, each from the
minor that introduced it to the one before the minor that removed it (Kubernetes' deprecated API
migration guide, https://kubernetes.io/docs/reference/using-api/deprecation-guide/, and the release
notes; the kinds each version compiles in are in the ``kubernetes-validate`` schemas of that minor).
Alpha and default-off beta versions (``resource.k8s.io/v1beta*``, ...) are not served, as on a
cluster started without ``--runtime-config``.
"""

from __future__ import annotations

import dataclasses
import re
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
    # Kubernetes minors (1.x) serving a built-in type: from ``since`` (0: before any we emulate)
    # up to, not including, ``removed`` (0: still served).
    since: int = dataclasses.field(default=0, compare=False)
    removed: int = dataclasses.field(default=0, compare=False)
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

    def served_in(self, minor: Optional[int]) -> bool:
        """Whether a 1.``minor`` API server serves this type (``None``: the newest Kubernetes)."""
        if minor is None:
            return not self.removed
        return self.since <= minor and (not self.removed or minor < self.removed)


def _r(  # noqa: PLR0917 - rows of a table
    gv: str,
    kind: str,
    plural: str,
    namespaced: bool = True,
    short: str = "",
    sub: str = "",
    cat: str = "",
    *,
    since: int = 0,
    removed: int = 0,
) -> ResourceType:
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
        since=since,
        removed=removed,
    )


def kube_minor(git_version: str) -> Optional[int]:
    """The minor of a ``/version`` gitVersion (``v1.35.2`` -> 35); ``None`` when it does not say."""
    match = re.match(r"v?1\.(\d+)", git_version or "")
    return int(match.group(1)) if match else None


_ADMISSION = "admissionregistration.k8s.io/v1"

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
    _r("v1", "PodTemplate", "podtemplates"),
    _r("apps/v1", "Deployment", "deployments", True, "deploy", "status", "all"),
    _r("apps/v1", "DaemonSet", "daemonsets", True, "ds", "status", "all"),
    _r("apps/v1", "StatefulSet", "statefulsets", True, "sts", "status", "all"),
    _r("apps/v1", "ReplicaSet", "replicasets", True, "rs", "status", "all"),
    _r("apps/v1", "ControllerRevision", "controllerrevisions"),
    _r("batch/v1", "Job", "jobs", True, "", "status", "all"),
    _r("batch/v1", "CronJob", "cronjobs", True, "cj", "status", "all"),
    # a group's first served version here is its preferred version, as kube-apiserver orders them
    _r("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, "hpa", "status", "all"),
    _r("autoscaling/v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, "hpa", "status", "all"),
    _r("autoscaling/v2beta2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, "hpa", "status", "all", removed=26),
    _r("rbac.authorization.k8s.io/v1", "Role", "roles"),
    _r("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    _r("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _r("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False, "crd crds", "status"),
    _r("storage.k8s.io/v1", "StorageClass", "storageclasses", False, "sc"),
    _r("storage.k8s.io/v1", "CSIDriver", "csidrivers", False),
    _r("storage.k8s.io/v1", "CSINode", "csinodes", False),
    _r("storage.k8s.io/v1", "VolumeAttachment", "volumeattachments", False, "", "status"),
    _r("storage.k8s.io/v1", "CSIStorageCapacity", "csistoragecapacities"),
    _r("storage.k8s.io/v1", "VolumeAttributesClass", "volumeattributesclasses", False, "vac", since=34),
    _r("storage.k8s.io/v1beta1", "CSIStorageCapacity", "csistoragecapacities", removed=27),
    _r("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False, "pc"),
    _r("coordination.k8s.io/v1", "Lease", "leases"),
    _r("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True, "pdb", "status"),
    _r("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True, "netpol"),
    _r("networking.k8s.io/v1", "Ingress", "ingresses", True, "ing", "status"),
    _r("networking.k8s.io/v1", "IngressClass", "ingressclasses", False),
    _r("networking.k8s.io/v1", "IPAddress", "ipaddresses", False, "ip", since=33),
    _r("networking.k8s.io/v1", "ServiceCIDR", "servicecidrs", False, "", "status", since=33),
    _r("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    _r("node.k8s.io/v1", "RuntimeClass", "runtimeclasses", False),
    _r("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False),
    _r("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False),
    _r(_ADMISSION, "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False, "", "status", since=30),
    _r(_ADMISSION, "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", False, since=30),
    _r("apiregistration.k8s.io/v1", "APIService", "apiservices", False, "", "status"),
    _r("events.k8s.io/v1", "Event", "events", True, "ev"),
    _r("certificates.k8s.io/v1", "CertificateSigningRequest", "certificatesigningrequests", False, "csr", "status"),
    # API Priority and Fairness: v1 from 1.29, v1beta3 1.26 to 1.31, v1beta2 to 1.28, v1beta1 to 1.25
    *(
        _r(f"flowcontrol.apiserver.k8s.io/{version}", kind, plural, False, "", "status", since=since, removed=removed)
        for version, since, removed in (("v1", 29, 0), ("v1beta3", 26, 32), ("v1beta2", 0, 29), ("v1beta1", 0, 26))
        for kind, plural in (("FlowSchema", "flowschemas"), ("PriorityLevelConfiguration", "prioritylevelconfigurations"))
    ),
    # Dynamic Resource Allocation, GA in 1.34 (its betas are off by default)
    _r("resource.k8s.io/v1", "DeviceClass", "deviceclasses", False, since=34),
    _r("resource.k8s.io/v1", "ResourceClaim", "resourceclaims", True, "", "status", since=34),
    _r("resource.k8s.io/v1", "ResourceClaimTemplate", "resourceclaimtemplates", since=34),
    _r("resource.k8s.io/v1", "ResourceSlice", "resourceslices", False, since=34),
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

    def __init__(self, kube_version: str = "") -> None:
        self._crd_types: dict[str, list[ResourceType]] = {}
        self.kube_version = kube_version

    @property
    def kube_version(self) -> str:
        return self._kube_version

    @kube_version.setter
    def kube_version(self, value: str) -> None:
        """The reported ``gitVersion``: which built-in group-versions are served."""
        self._kube_version = value
        minor = kube_minor(value)
        self._builtin = [rtype for rtype in BUILTIN if rtype.served_in(minor)]

    def set_crd(self, name: str, crd: Optional[dict]) -> None:
        if crd is None:
            self._crd_types.pop(name, None)
        else:
            self._crd_types[name] = types_from_crd(crd)

    def clear_crds(self) -> None:
        self._crd_types.clear()

    def all(self) -> list[ResourceType]:
        types = list(self._builtin)
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
