"""The values the gpu_operator role computes, rendered into the real GPU Operator chart v26.7.0 (with its Node Feature
Discovery subchart 0.19.0) from ../shared/upstream by the real helm, for Kubernetes 1.28, 1.31 and 1.35.

The role's own tasks compute the values (check mode with diff against the test API server, one play per option set
in one ansible-playbook run: ``role_runs.run_role_variants``); the GPU nodes are as the real gpu_labels role leaves
them (``upstream.nodes_after_gpu_labels``: gpu-node-1 and gpu-node-3 chose the operator, gpu-node-2 NVIDIA's device
plugin), with the GPU taint on and off.

The operands (device plugin, GPU Feature Discovery, DCGM exporter, MIG manager, validator, driver and toolkit when
enabled) are not in the chart: the operator creates them from its ClusterPolicy. Their placement is modelled here
from the rendered ClusterPolicy and the operator's source at tag v26.7.0 (github.com/NVIDIA/gpu-operator), each rule
with where upstream has it:

- NFD's worker (a DaemonSet of the chart) labels a node with an NVIDIA PCI device of a class in its
  ``sources.pci.deviceClassWhitelist`` ``feature.node.kubernetes.io/pci-<deviceLabelFields>.present=true``
  (NFD's pci source, docs "Feature labels"; the config is the rendered worker ConfigMap), only where it runs;
- the operator sets ``nvidia.com/gpu.present=true`` on nodes with one of its ``gpuNodeLabels`` and back to ``false``
  on nodes without (controllers/nodelabeling_controller.go ``reconcileCommonGPULabel``, state_manager.go
  ``gpuNodeLabels``);
- on ``gpu.present=true`` nodes it adds ``gpuStateLabels["container"]`` (``nvidia.com/gpu.deploy.<operand>=true``)
  plus ``gpu.deploy.mig-manager`` on MIG-capable GPUs, and removes them all where
  ``nvidia.com/gpu.deploy.operands=false`` (state_manager.go ``updateGPUStateLabels``, ``addGPUStateLabels``,
  ``hasMIGCapableGPU``);
- each operand DaemonSet selects its ``gpu.deploy.<operand>=true`` label (assets/state-*/…daemonset.yaml) and gets
  the ClusterPolicy's ``daemonsets.tolerations`` in place of its own ``nvidia.com/gpu`` one when that list is not
  empty (controllers/object_controls.go ``applyCommonDaemonsetConfig``); which operands exist follows the
  ClusterPolicy's ``enabled`` flags (state_manager.go ``isStateEnabled``).
"""

from __future__ import annotations

import copy
import functools

import pytest
import yaml

from tests.support import upstream
from tests.support.kube_modules import writes
from tests.support.role_runs import GpuHost, RoleVariant, run_role, run_role_variants

CHART = "gpu-operator-v26.7.0.tgz"
RELEASE, NAMESPACE = "gpu-operator", "gpu-operator"
TASK = "Install or upgrade the GPU Operator release"
MIRROR = "mirror.example.test:5000/gpu"

# The role's options, one play each. "ours": driver and toolkit managed by this collection (the default);
# "operator": the operator's own driver and toolkit, MIG strategy mixed, a mirror registry; "no_nfd": the cluster
# runs its own NFD.
VARIANTS = {
    "ours": {},
    "operator": {
        "kubegpu_manage_driver": False,
        "kubegpu_manage_toolkit": False,
        "gpu_operator_mig_strategy": "mixed",
        "gpu_operator_image_registry": MIRROR,
    },
    "no_nfd": {"gpu_operator_nfd_enabled": False},
}
# gpu-node-1 (2x V100) and gpu-node-3 (8x H100) chose the operator, gpu-node-2 (T4) NVIDIA's device plugin.
STACK_NODES, OTHER_NODES = ("gpu-node-1", "gpu-node-3"), ("gpu-node-2",)
HOSTS = {
    "node1": GpuHost("v100x2", "gpu-node-1", {"kubegpu_default_runtime": "nvidia", "kubegpu_device_plugin": "gpu_operator"}),
    "node2": GpuHost("t4", "gpu-node-2", {"kubegpu_default_runtime": "nvidia", "kubegpu_device_plugin": "nvidia_device_plugin"}),
    "node3": GpuHost("h100x8", "gpu-node-3", {"kubegpu_default_runtime": "nvidia", "kubegpu_device_plugin": "gpu_operator"}),
}
# The node states: the GPU taint (gpu:NoSchedule, the default) off and on.
NODE_STATES = {"taint_off": {"kubegpu_gpu_taint_enabled": False}, "taint_on": {"kubegpu_gpu_taint_enabled": True}}
# Which role option set meets which node state in the placement tests.
PLACEMENTS = [("ours", "taint_off"), ("ours", "taint_on"), ("operator", "taint_on")]

# The operator's side (controllers/state_manager.go at v26.7.0).
GPU_PRESENT = "nvidia.com/gpu.present"
OPERANDS_SWITCH = "nvidia.com/gpu.deploy.operands"
GPU_NODE_LABELS = {  # gpuNodeLabels
    "feature.node.kubernetes.io/pci-10de.present": "true",
    "feature.node.kubernetes.io/pci-0302_10de.present": "true",
    "feature.node.kubernetes.io/pci-0300_10de.present": "true",
}
CONTAINER_STATE_LABELS = {  # gpuStateLabels[gpuWorkloadConfigContainer]
    f"nvidia.com/gpu.deploy.{name}": "true"
    for name in (
        "driver",
        "gpu-feature-discovery",
        "container-toolkit",
        "device-plugin",
        "dcgm",
        "dcgm-exporter",
        "node-status-exporter",
        "operator-validator",
        "client",
    )
}
MIG_MANAGER_LABEL = "nvidia.com/gpu.deploy.mig-manager"
# The operand DaemonSets: state, the ClusterPolicy component that enables it (None: always, isStateEnabled), and the
# nodeSelector of its asset (assets/<state>/*daemonset*.yaml and state-dcgm/0400_dcgm.yml).
OPERANDS = {
    "state-driver": ("driver", {"nvidia.com/gpu.deploy.driver": "true"}),
    "state-container-toolkit": ("toolkit", {"nvidia.com/gpu.deploy.container-toolkit": "true"}),
    "state-operator-validation": (None, {"nvidia.com/gpu.deploy.operator-validator": "true"}),
    "state-device-plugin": ("devicePlugin", {"nvidia.com/gpu.deploy.device-plugin": "true"}),
    "state-mps-control-daemon": (
        "devicePlugin",
        {"nvidia.com/gpu.deploy.device-plugin": "true", "nvidia.com/mps.capable": "true"},
    ),
    "state-dcgm": ("dcgm", {"nvidia.com/gpu.deploy.dcgm": "true"}),
    "state-dcgm-exporter": ("dcgmExporter", {"nvidia.com/gpu.deploy.dcgm-exporter": "true"}),
    "gpu-feature-discovery": ("gfd", {"nvidia.com/gpu.deploy.gpu-feature-discovery": "true"}),
    "state-mig-manager": ("migManager", {MIG_MANAGER_LABEL: "true"}),
    "state-node-status-exporter": ("nodeStatusExporter", {"nvidia.com/gpu.deploy.node-status-exporter": "true"}),
}
ASSET_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
# The MPS control daemon also needs nvidia.com/mps.capable=true, which only GPU Feature Discovery writes when the
# device plugin shares GPUs with MPS (not configured by this role): not expected anywhere.
NOT_EXPECTED = {"state-mps-control-daemon"}
# MIG: A100, A30, H100 and later (NVIDIA's MIG user guide); of our nodes only gpu-node-3's H100s.
MIG_CAPABLE_NODES = {"gpu-node-3"}
# The PCI class of the GPUs of our scenarios (V100, T4, H100: "3D controller", 0302, as lspci -n shows them).
GPU_PCI_CLASS, NVIDIA_VENDOR = "0302", "10de"
# A kubeadm control-plane node: kubeadm labels it node-role.kubernetes.io/control-plane="" and taints it
# node-role.kubernetes.io/control-plane:NoSchedule; the kubelet labels kubernetes.io/os.
CONTROL_PLANE = upstream.node(
    "control-plane-1",
    {"kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": ""},
    [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
)


@pytest.fixture(scope="module")
def planned(kubeapi_server):
    """The values the role plans for each option set (one ansible-playbook run, check mode with diff)."""
    upstream.chart(CHART)
    kubeapi_server.admin.reset()
    variants = {name: RoleVariant(each, check=True, diff=True) for name, each in VARIANTS.items()}
    run = run_role_variants(kubeapi_server, "gpu_operator", variants, variables=chart_variables())
    return dict(zip(VARIANTS, upstream.planned_values_each(run, TASK)))


@pytest.fixture(scope="module")
def nodes(kubeapi_server):
    """The GPU nodes as gpu_labels leaves them, per node state."""
    upstream.chart(CHART)
    found = {}
    for state, variables in NODE_STATES.items():
        kubeapi_server.admin.reset()
        found[state] = upstream.nodes_after_gpu_labels(kubeapi_server, HOSTS, variables)
    return found


def chart_variables():
    """The role pointed at the real chart (no chart repository can be reached here)."""
    return {
        "gpu_operator_chart_ref": str(upstream.chart(CHART)),
        "gpu_operator_chart_repo_url": "",
        "gpu_operator_chart_version": "",
    }


def render(values, kube_version="v1.35.0"):
    return _render(yaml.safe_dump(values, sort_keys=True), kube_version)


@functools.cache
def _render(values_text, kube_version):
    return upstream.helm_template(
        upstream.chart(CHART), yaml.safe_load(values_text), release=RELEASE, namespace=NAMESPACE, kube_version=kube_version
    )


def rendered(values, kube_version="v1.35.0"):
    return copy.deepcopy(render(values, kube_version))


def cluster_policy(docs):
    (policy,) = upstream.named(docs, "ClusterPolicy", "cluster-policy")
    return policy


def nfd_labels(docs, node):
    """The labels NFD's pci source gives ``node`` (one GPU of GPU_PCI_CLASS): none where its worker cannot run."""
    workers = [pod for where, pod in upstream.pod_templates(docs) if where.endswith("node-feature-discovery-worker")]
    if not workers or upstream.placement_problem(workers[0], node) is not None:
        return {}
    (conf,) = [doc for doc in upstream.named(docs, "ConfigMap") if doc["metadata"]["name"].endswith("worker-conf")]
    pci = yaml.safe_load(conf["data"]["nfd-worker.conf"])["sources"]["pci"]
    if GPU_PCI_CLASS not in pci["deviceClassWhitelist"] and GPU_PCI_CLASS[:2] not in pci["deviceClassWhitelist"]:
        return {}
    fields = {"class": GPU_PCI_CLASS, "vendor": NVIDIA_VENDOR}
    return {f"feature.node.kubernetes.io/pci-{'_'.join(fields[f] for f in pci['deviceLabelFields'])}.present": "true"}


def labels_after_the_stack(docs, node):
    """``node`` as NFD and the operator leave it (module docstring: the rules and where upstream has them)."""
    labels = {**node["metadata"]["labels"], **nfd_labels(docs, node)}
    has_gpu = any(labels.get(key) == value for key, value in GPU_NODE_LABELS.items())
    if labels.get(GPU_PRESENT) != "true" and has_gpu:
        labels[GPU_PRESENT] = "true"
    elif labels.get(GPU_PRESENT) == "true" and not has_gpu:
        labels[GPU_PRESENT] = "false"
    state_keys = {*CONTAINER_STATE_LABELS, MIG_MANAGER_LABEL}
    if labels.get(GPU_PRESENT) != "true" or labels.get(OPERANDS_SWITCH) == "false":
        labels = {key: value for key, value in labels.items() if key not in state_keys}
    else:
        labels.update({key: value for key, value in CONTAINER_STATE_LABELS.items() if not labels.get(key)})
        product = labels.get("nvidia.com/gpu.product", "").lower()
        mig_capable = labels.get("nvidia.com/mig.capable", "") == "true" or (
            "nvidia.com/mig.capable" not in labels and any(model in product for model in ("h100", "a100", "a30"))
        )
        if mig_capable and MIG_MANAGER_LABEL not in labels:
            labels[MIG_MANAGER_LABEL] = "true"
    return upstream.node(node["metadata"]["name"], labels, node["spec"].get("taints") or [])


def operand_pods(policy):
    """``state -> pod`` for each operand DaemonSet the operator creates from ``policy``."""
    spec = policy["spec"]
    tolerations = spec.get("daemonsets", {}).get("tolerations") or ASSET_TOLERATIONS
    return {
        state: {"spec": {"nodeSelector": selector, "tolerations": tolerations}}
        for state, (component, selector) in OPERANDS.items()
        if component is None or spec[component]["enabled"]
    }


@pytest.mark.parametrize("kube_version", upstream.KUBE_VERSIONS)
@pytest.mark.parametrize(("variant", "state"), PLACEMENTS)
def test_nfd_worker_and_every_operand_land_on_this_stacks_gpu_nodes_and_on_no_other(planned, nodes, variant, state, kube_version):
    docs = rendered(planned[variant], kube_version)
    operands = operand_pods(cluster_policy(docs))
    problems = []
    for name in STACK_NODES:
        node = nodes[state][name]
        for where, pod in upstream.pod_templates(docs):
            if where.startswith("DaemonSet/") and (problem := upstream.placement_problem(pod, node)):
                problems.append(f"{where} on {name}: {problem}")
        after = labels_after_the_stack(docs, node)
        for operand, pod in operands.items():
            expected = operand not in NOT_EXPECTED and (operand != "state-mig-manager" or name in MIG_CAPABLE_NODES)
            problem = upstream.placement_problem(pod, after)
            if expected and problem:
                problems.append(
                    f"operand {operand} on {name}: {problem} (labels after NFD and the operator: {after['metadata']['labels']})"
                )
            if not expected and not problem:
                problems.append(f"operand {operand} on {name}, which it should not reach")
    for name in OTHER_NODES:
        after = labels_after_the_stack(docs, nodes[state][name])
        problems += [
            f"operand {operand} would run on {name}, a node of another device stack"
            for operand, pod in operands.items()
            if upstream.placement_problem(pod, after) is None
        ]
    assert problems == []
    assert {"state-device-plugin", "state-operator-validation"} <= operands.keys()
    assert ("state-driver" in operands) == ("state-container-toolkit" in operands) == (variant == "operator")


@pytest.mark.parametrize("variant", ["ours", "operator"])
def test_the_operator_and_nfd_deployments_can_run_on_a_kubeadm_control_plane(planned, variant):
    docs = rendered(planned[variant])
    deployments = [(where, pod) for where, pod in upstream.pod_templates(docs) if where.startswith("Deployment/")]
    assert len(deployments) == 3, deployments  # the operator, NFD's master and NFD's garbage collector
    assert [
        f"{where}: {problem}" for where, pod in deployments if (problem := upstream.placement_problem(pod, CONTROL_PLANE))
    ] == []


@pytest.mark.parametrize("kube_version", upstream.KUBE_VERSIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_object_passes_its_schema_the_cluster_policy_its_crd(planned, variant, kube_version):
    docs = rendered(planned[variant], kube_version)
    assert cluster_policy(docs)
    assert upstream.schema_errors(docs, kube_version) == []


def test_with_a_mirror_every_image_of_the_chart_and_of_the_operands_comes_from_it(planned):
    docs = rendered(planned["operator"])
    found = [f"{where}: {image}" for where, image in upstream.images(docs)]
    # images the operator deploys: those its Deployment names in its environment and each ClusterPolicy component's
    for where, pod in upstream.pod_templates(docs):
        for container in pod["spec"]["containers"]:
            found += [
                f"{where} env {env['name']}: {env['value']}"
                for env in container.get("env") or []
                if env["name"].endswith("_IMAGE")
            ]
    spec = cluster_policy(docs)["spec"]
    for component, settings in spec.items():
        # vgpuManager: the vGPU manager image is built by the user from NVIDIA's vGPU driver (the chart has no repository)
        for name, entry in [
            (component, settings),
            *((f"{component}.{k}", v) for k, v in settings.items() if isinstance(v, dict)),
        ]:
            if isinstance(entry, dict) and "image" in entry and component != "vgpuManager":
                found.append(f"ClusterPolicy {name}: {entry.get('repository')}/{entry['image']}:{entry.get('version')}")
    assert len(found) > 20, found
    assert [image for image in found if f": {MIRROR}/" not in image] == []


@pytest.mark.parametrize("variant", ["operator", "no_nfd"])
def test_every_values_key_the_role_sets_changes_the_render(planned, variant):
    """Option set "operator" carries every key the role sets (mirror, NFD tolerations); "no_nfd" the set without NFD."""
    assert upstream.silent_keys(render, planned[variant]) == []


def test_values_read_by_nothing_are_refused_before_any_change(kubeapi):
    """GPU Operator v25.3 removed operator.defaultRuntime; the role refuses it (and a registry with a scheme)."""
    kubeapi.admin.reset_counters()
    removed = {
        "gpu_operator_default_runtime": "containerd",
        "gpu_operator_extra_values": {"operator": {"defaultRuntime": "crio"}},
    }
    old = run_role(kubeapi, "gpu_operator", variables={**chart_variables(), **removed})
    assert old.rc != 0
    assert 'gpu_operator_default_runtime="containerd"' in old.message and 'operator.defaultRuntime="crio"' in old.message
    assert "v25.3" in old.message and "Delete the setting" in old.message, old.message
    registry = run_role(
        kubeapi, "gpu_operator", variables={**chart_variables(), "gpu_operator_image_registry": "https://mirror.example.test"}
    )
    assert registry.rc != 0 and 'image_registry="https://mirror.example.test"' in registry.message, registry.message
    assert "without a scheme" in registry.message
    assert writes(kubeapi) == []
