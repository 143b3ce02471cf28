"""The real NVIDIA DRA driver chart (../shared/upstream/charts/dra-driver-nvidia-gpu-0.4.1.tgz) rendered by real helm
against the GPU nodes as kubegpu.core.gpu_labels leaves them, judged by kube-scheduler's predicates and the strict
Kubernetes schemas (tests/support/upstream.py): what the kubegpu.core.dra_driver role must respect of the chart
itself (the Kubernetes versions it renders for, that every object it renders is valid there, what its kubelet plugin
needs of a GPU node), and the values the role computes (its check-mode diff): the kubelet plugin placed on a node of
the dra_driver stack as gpu_labels leaves it, with and without the GPU taint, and no values key the chart ignores.

Simulated: the GPUs (fake NVML, for gpu_labels' facts) and the cluster (the test API server).
"""

from __future__ import annotations

import pytest

from tests.support import upstream
from tests.support.role_runs import GpuHost, run_role

CHART = "dra-driver-nvidia-gpu-0.4.1.tgz"
PLUGIN = "DaemonSet/dra-driver-nvidia-gpu-kubelet-plugin"
# The chart refuses to render GPU allocation without it (its own template says so).
VALUES = {"gpuResourcesEnabledOverride": True}
GPU_TAINT = {"key": "gpu", "value": "", "effect": "NoSchedule"}


def render(values=None, kube_version="v1.35.0"):
    return upstream.helm_template(
        upstream.chart(CHART),
        {**VALUES, **(values or {})},
        release="dra",
        namespace="nvidia-dra-driver-gpu",
        kube_version=kube_version,
    )


@pytest.fixture(scope="module")
def gpu_node(kubeapi_server):
    """gpu-node-1 (2x V100) as gpu_labels leaves it, with the GPU taint (the default when OpenFaaS is on)."""
    upstream.chart(CHART)
    kubeapi_server.admin.reset()
    hosts = {"node1": GpuHost("v100x2", "gpu-node-1", {"kubegpu_default_runtime": "nvidia"})}
    return upstream.nodes_after_gpu_labels(kubeapi_server, hosts, {"kubegpu_gpu_taint_enabled": True})["gpu-node-1"]


@pytest.mark.parametrize("kube_version", [v for v in upstream.KUBE_VERSIONS if v < "v1.32"])
def test_the_chart_refuses_kubernetes_below_1_32(kube_version):
    with pytest.raises(upstream.RenderError, match=r"chart requires kubeVersion: >=1\.32"):
        render(kube_version=kube_version)


@pytest.mark.parametrize("kube_version", ["v1.34.3", "v1.35.0"])
def test_every_object_is_valid_where_resource_k8s_io_v1_is_served(kube_version):
    docs = render(kube_version=kube_version)
    assert {doc["apiVersion"] for doc in upstream.named(docs, "DeviceClass")} == {"resource.k8s.io/v1"}
    assert upstream.schema_errors(docs, kube_version) == []


def test_the_kubelet_plugin_selects_our_gpu_nodes_but_needs_our_taint_tolerated(gpu_node):
    """Its required node affinity accepts nvidia.com/gpu.present=true, which gpu_labels writes; it tolerates only
    nvidia.com/gpu, so our GPU taint keeps it off until ``kubeletPlugin.tolerations`` names it."""
    untainted = upstream.node("gpu-node-1", gpu_node["metadata"]["labels"])
    assert upstream.placement_problem(dict(upstream.pod_templates(render()))[PLUGIN], untainted) is None
    problem = upstream.placement_problem(dict(upstream.pod_templates(render()))[PLUGIN], gpu_node)
    assert problem is not None and '"key": "gpu"' in problem
    tolerated = render({"kubeletPlugin": {"tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]}})
    assert upstream.placement_problem(dict(upstream.pod_templates(tolerated))[PLUGIN], gpu_node) is None


@pytest.fixture(scope="module")
def role_plan(kubeapi_server):
    """gpu-node-1 of the dra_driver stack (2x V100 on driver 570, CDI on) as gpu_labels leaves it with the GPU taint,
    and the values the dra_driver role plans for it (check mode, diff)."""
    upstream.chart(CHART)
    kubeapi_server.admin.reset()
    host = {"kubegpu_default_runtime": "nvidia", "kubegpu_device_plugin": "dra_driver", "kubegpu_cdi_enabled": True}
    hosts = {"node1": GpuHost("v100x2_r570", "gpu-node-1", host)}
    node = upstream.nodes_after_gpu_labels(kubeapi_server, hosts, {"kubegpu_gpu_taint_enabled": True})["gpu-node-1"]
    run = run_role(
        kubeapi_server,
        "dra_driver",
        hosts=hosts,
        variables={"dra_driver_chart_ref": str(upstream.chart(CHART))},
        check=True,
        diff=True,
    )
    return node, upstream.planned_values(run, "Install or upgrade the NVIDIA DRA driver release")


def role_render(values):
    return upstream.helm_template(
        upstream.chart(CHART), values, release="dra-driver-nvidia-gpu", namespace="dra-driver-nvidia-gpu", kube_version="v1.35.0"
    )


def test_the_roles_kubelet_plugin_runs_on_its_gpu_node_tainted_or_not(role_plan):
    node, values = role_plan
    assert {"key": "gpu", "effect": "NoSchedule"} in node["spec"]["taints"]
    plugin = dict(upstream.pod_templates(role_render(values)))[PLUGIN]
    assert upstream.placement_problem(plugin, node) is None
    assert upstream.placement_problem(plugin, upstream.node("gpu-node-1", node["metadata"]["labels"])) is None
    # a node of another stack (same nvidia.com/gpu.present=true) is not selected
    other = {**node["metadata"]["labels"], "kubegpu.io/device-stack": "nvidia_device_plugin"}
    assert upstream.placement_problem(plugin, upstream.node("gpu-node-2", other)) is not None
    assert upstream.schema_errors(role_render(values), "v1.35.0") == []


def test_every_value_the_role_sets_is_read_by_the_chart(role_plan):
    values = role_plan[1]
    assert upstream.silent_keys(role_render, values) == []
