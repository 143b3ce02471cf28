"""The real nvidia-device-plugin chart (0.20.0, ../shared/upstream/charts) rendered with the values the
kubegpu.core.nvidia_device_plugin role computes, for each option the role offers, on Kubernetes 1.28, 1.31 and 1.35.

The values come from the role itself: one check-mode, diff-mode run includes the role once per option set
(``role_runs.run_role_variants``) against the test API server and ``upstream.planned_values_each`` reads what its
helm_release task would install. The nodes are those the real gpu_labels role leaves (fake NVML scenarios: 2x V100,
1x T4, 8x H100, all of this stack), with the GPU taint on and off. The judges are upstream's: the real chart
rendered by the real helm, kube-scheduler's placement predicates, the Kubernetes schemas of each version.
"""

from __future__ import annotations

import functools

import pytest
import yaml

from tests.support import upstream
from tests.support.kube_modules import writes
from tests.support.role_runs import GpuHost, RoleVariant, run_role, run_role_variants

NVDP = "nvidia-device-plugin-0.20.0.tgz"
RELEASE = NAMESPACE = "nvidia-device-plugin"
TASK = "Install or upgrade the NVIDIA device plugin release"
MIRROR = "mirror.test:5000"
HOSTS = {
    "gpu-node-1": GpuHost("v100x2"),
    "gpu-node-2": GpuHost("t4"),
    "gpu-node-3": GpuHost("h100x8"),
}
STACK = {"kubegpu_device_plugin": "nvidia_device_plugin"}
DEDICATED = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}

# Every option the role offers, in five sets a role run plans together.
OPTION_SETS = {
    "defaults": {},
    "time-slicing": {
        "nvidia_device_plugin_sharing": "time-slicing",
        "nvidia_device_plugin_replicas": 4,
        "nvidia_device_plugin_rename_by_default": True,
        "nvidia_device_plugin_fail_requests_greater_than_one": True,
        "nvidia_device_plugin_extra_tolerations": [DEDICATED],
    },
    "mps": {
        "nvidia_device_plugin_sharing": "mps",
        "nvidia_device_plugin_replicas": 3,
        "nvidia_device_plugin_config_name": "shared.by-mps",
    },
    "mig-single-mirror-gfd": {
        "nvidia_device_plugin_mig_strategy": "single",
        "nvidia_device_plugin_gfd_enabled": True,
        "nvidia_device_plugin_image_repository": f"{MIRROR}/nvidia/k8s-device-plugin",
        "nvidia_device_plugin_nfd_image_repository": f"{MIRROR}/nfd/node-feature-discovery",
    },
    "mig-mixed-time-slicing-cluster-nfd": {
        "nvidia_device_plugin_mig_strategy": "mixed",
        "nvidia_device_plugin_sharing": "time-slicing",
        "nvidia_device_plugin_gfd_enabled": True,
        "nvidia_device_plugin_nfd_enabled": False,
    },
}


def role_variables(**more):
    return {
        **STACK,
        "nvidia_device_plugin_chart_ref": str(upstream.chart(NVDP)),
        "nvidia_device_plugin_chart_repo_url": "",
        **more,
    }


@pytest.fixture(scope="module")
def planned(kubeapi_server):
    """The values the role plans for each option set (one check-mode run; the values do not depend on the
    cluster's version, so one plan serves the three renders)."""
    kubeapi_server.admin.reset()
    kubeapi_server.admin.set_version(upstream.KUBE_VERSIONS[-1])
    sets = {name: RoleVariant(each, check=True, diff=True) for name, each in OPTION_SETS.items()}
    run = run_role_variants(kubeapi_server, "nvidia_device_plugin", sets, variables=role_variables(), hosts=HOSTS)
    values = upstream.planned_values_each(run, TASK)
    assert writes(kubeapi_server) == [], "check mode wrote to the cluster"
    assert len(values) == len(OPTION_SETS)
    return dict(zip(OPTION_SETS, values))


@pytest.fixture(scope="module")
def gpu_nodes(kubeapi_server):
    """The GPU nodes as gpu_labels leaves them, with the GPU taint (True) and without it (False)."""
    found = {}
    for taint in (True, False):
        kubeapi_server.admin.reset()
        found[taint] = upstream.nodes_after_gpu_labels(kubeapi_server, HOSTS, {**STACK, "kubegpu_gpu_taint_enabled": taint})
    assert all(node["spec"].get("taints") for node in found[True].values())
    assert not any(node["spec"].get("taints") for node in found[False].values())
    return found


@functools.cache
def _render(values_json: str, kube_version: str):
    return upstream.helm_template(
        upstream.chart(NVDP), yaml.safe_load(values_json), release=RELEASE, namespace=NAMESPACE, kube_version=kube_version
    )


def render(values, kube_version=upstream.KUBE_VERSIONS[-1]):
    return _render(yaml.safe_dump(values, sort_keys=True), kube_version)


def daemonsets(docs):
    return {doc["metadata"]["name"]: doc["spec"]["template"] for doc in upstream.named(docs, "DaemonSet")}


def env_of(container):
    return {env["name"]: env.get("value") for env in container.get("env") or []}


def config_read_by(docs, daemonset):
    """The plugin config a DaemonSet's config-manager init container copies (DEFAULT_CONFIG of the chart's
    ConfigMap ``<release>-configs``), parsed; None when it reads none."""
    pod = daemonsets(docs)[daemonset]
    init = [env_of(c) for c in pod["spec"].get("initContainers") or [] if c.get("command") == ["config-manager"]]
    if not init:
        return None
    (configmap,) = [doc for doc in upstream.named(docs, "ConfigMap") if doc["metadata"]["name"] == f"{RELEASE}-configs"]
    return yaml.safe_load(configmap["data"][init[0]["DEFAULT_CONFIG"]])


GFD = f"{RELEASE}-gpu-feature-discovery"
NFD_WORKER = f"{RELEASE}-node-feature-discovery-worker"
MPS_DAEMON = f"{RELEASE}-mps-control-daemon"


def labels_the_stack_writes(docs, node):
    """The labels this stack's own components put on ``node``, each from where upstream writes it.

    ``nvidia.com/mps.capable``: GPU Feature Discovery (k8s-device-plugin internal/lm/nvml.go, newSharingLabeler)
    writes "true" when the config it reads shares by MPS (and no GPU has MIG enabled; these scenarios have none),
    else "false". GFD writes it to the feature file in /etc/kubernetes/node-feature-discovery/features.d; NFD's
    worker reads that directory (its local source) and NFD's master publishes the nvidia.com labels (the chart sets
    ``nfd.master.config.extraLabelNs: [nvidia.com]``). So the label is there only where GFD runs and an NFD worker
    runs: the chart's (``nfd`` subchart) or, where the role was told the cluster has its own, that one.
    """
    found = daemonsets(docs)
    if GFD not in found or upstream.placement_problem(found[GFD], node) is not None:
        return {}
    if NFD_WORKER in found and upstream.placement_problem(found[NFD_WORKER], node) is not None:
        return {}
    config = config_read_by(docs, GFD) or {}
    return {"nvidia.com/mps.capable": "true" if "mps" in (config.get("sharing") or {}) else "false"}


def with_labels(node, labels):
    return upstream.node(node["metadata"]["name"], {**node["metadata"]["labels"], **labels}, node["spec"].get("taints") or [])


@pytest.mark.parametrize("taint", [True, False], ids=["tainted", "untainted"])
@pytest.mark.parametrize("kube_version", upstream.KUBE_VERSIONS)
@pytest.mark.parametrize("option_set", OPTION_SETS)
def test_every_gpu_daemonset_runs_on_every_node_of_the_stack(planned, gpu_nodes, option_set, kube_version, taint):
    """Each DaemonSet of the render (the chart's and its NFD subchart's) is placed on every GPU node of this
    stack as gpu_labels leaves it plus the labels the stack's components write; the one exception is the MPS
    control daemon where no config shares by MPS (it must run nowhere there)."""
    docs = render(planned[option_set], kube_version)
    problems = []
    for name, pod in daemonsets(docs).items():
        for node in gpu_nodes[taint].values():
            labelled = with_labels(node, labels_the_stack_writes(docs, node))
            problem = upstream.placement_problem(pod, labelled)
            if name == MPS_DAEMON and "mps" not in ((config_read_by(docs, f"{RELEASE}") or {}).get("sharing") or {}):
                assert problem is not None, f"{name} would run on {node['metadata']['name']} without MPS sharing"
                continue
            if problem is not None:
                problems.append(f"{name} on {node['metadata']['name']}: {problem}")
    assert problems == []


@pytest.mark.parametrize("option_set", OPTION_SETS)
def test_every_values_key_the_role_sets_changes_the_render(planned, option_set):
    assert upstream.silent_keys(render, planned[option_set]) == []


@pytest.mark.parametrize("option_set", OPTION_SETS)
def test_the_pods_read_the_config_the_role_renders(planned, option_set):
    """The plugin (and GFD, MPS daemon) copy the role's config (config.default) from the chart's ConfigMap, and it is
    what the role's options say (checked against the plugin's config format: version v1, flags.migStrategy,
    sharing.timeSlicing / sharing.mps resources)."""
    values, options = planned[option_set], OPTION_SETS[option_set]
    docs = render(values)
    for name in daemonsets(docs):
        if name == NFD_WORKER:
            continue
        config = config_read_by(docs, name)
        assert config is not None, f"{name} reads no config"
        assert config["version"] == "v1"
        assert config["flags"]["migStrategy"] == options.get("nvidia_device_plugin_mig_strategy", "none")
        sharing = options.get("nvidia_device_plugin_sharing", "none")
        key = {"none": None, "time-slicing": "timeSlicing", "mps": "mps"}[sharing]
        assert list(config.get("sharing") or {}) == ([key] if key else [])
        if key:
            replicas = options.get("nvidia_device_plugin_replicas", 2)
            assert config["sharing"][key]["resources"] == [{"name": "nvidia.com/gpu", "replicas": replicas}]


MIRRORED = [name for name, options in OPTION_SETS.items() if "nvidia_device_plugin_image_repository" in options]


@pytest.mark.parametrize("option_set", MIRRORED)
def test_with_a_mirror_every_image_comes_from_it(planned, option_set):
    found = upstream.images(render(planned[option_set]))
    assert found and [(where, image) for where, image in found if not image.startswith(f"{MIRROR}/")] == []


@pytest.mark.parametrize("kube_version", upstream.KUBE_VERSIONS)
@pytest.mark.parametrize("option_set", OPTION_SETS)
def test_every_object_passes_the_schemas_of_the_kubernetes_version(planned, option_set, kube_version):
    assert upstream.schema_errors(render(planned[option_set], kube_version), kube_version) == []


REFUSALS = {
    "mps without GFD": (
        {"nvidia_device_plugin_sharing": "mps", "nvidia_device_plugin_gfd_enabled": False},
        ["nvidia.com/mps.capable=true", "nvidia_device_plugin_gfd_enabled"],
    ),
    "mps on a chart before 0.15.0": (
        {"nvidia_device_plugin_sharing": "mps", "nvidia_device_plugin_chart_version": "0.14.5"},
        ['"0.14.5"', "0.15.0 or later", "use 0.20.0"],
    ),
    "the default namespace": (
        {"nvidia_device_plugin_namespace": "default"},
        ["nvidia_device_plugin_namespace", "namespace default"],
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_preflight_refuses_what_the_chart_cannot_do_before_any_change(kubeapi, case):
    variables, words = REFUSALS[case]
    hosts = {name: dict(STACK) for name in HOSTS}
    run = run_role(kubeapi, "nvidia_device_plugin", hosts=hosts, variables=role_variables(**variables))
    assert run.rc != 0, run.explain()
    assert all(word in run.message for word in words), run.message
    assert writes(kubeapi) == []
