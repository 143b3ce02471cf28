"""Two Helm device stacks side by side through the real ``ansible-playbook``, the real helm (v4, .cache/bin), the
real charts of ../shared/upstream/charts and the real kubegpu.core modules, against the test API server (three GPU
nodes, ready controller on): each stack's nodes and node selector come from the ``kubegpu.core.device_stack_nodes``
filter's plan by default. Each role's own tests: test_vgpu_scheduler_role.py, test_nvidia_device_plugin_role.py,
test_gpu_operator_role.py; their render tests against the real charts: test_render_<role>.py.

Simulated: the cluster (tests/support/kubeapi). Every assertion reads what the role planned or the server stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import upstream
from tests.support.kube_modules import label_nodes, writes
from tests.support.role_runs import run_role

NODES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
VGPU_SELECTOR = {"gpu": "on", "kubegpu.io/device-stack": "vgpu_scheduler"}
NVDP_SELECTOR = {"nvidia.com/gpu.present": "true", "kubegpu.io/device-stack": "nvidia_device_plugin"}


@pytest.fixture
def cluster(kubeapi):
    """The reset test server as a kubeadm v1.31.14 cluster with a working controller."""
    kubeapi.admin.set_version("v1.31.14")
    kubeapi.admin.set_ready_controller(True)
    return kubeapi


def hosts(runtime="nvidia", **overrides):
    """Inventory hosts of the GPU group: every node's default runtime (overrides: host -> variables)."""
    return {name: {"kubegpu_default_runtime": runtime, **overrides.get(name.replace("-", "_"), {})} for name in NODES}


# -- the device stack plan (defaults of <role>_nodes and <role>_node_selector) ------------------------------

HAS_PLAN_FILTER = (Path(__file__).resolve().parents[2] / "plugins" / "filter" / "device_stack_nodes.py").is_file()


@pytest.mark.skipif(not HAS_PLAN_FILTER, reason="needs the kubegpu.core.device_stack_nodes filter (branch d1-labels)")
def test_nodes_and_selectors_come_from_the_device_stack_plan_by_default(cluster, helm):
    """gpu-node-3 chose NVIDIA's plugin (a host variable), the others the default stack (the vGPU scheduler):
    HAMi's preflight looks only at its own two nodes (gpu-node-3 lacks gpu=on and is not refused), and each
    chart gets its stack's selector from the plan."""
    label_nodes(cluster, ["gpu-node-1", "gpu-node-2"], {"gpu": "on", "kubegpu.io/device-stack": "vgpu_scheduler"})
    inventory = hosts(gpu_node_3={"kubegpu_device_plugin": "nvidia_device_plugin"})
    vgpu = run_role(
        cluster,
        "vgpu_scheduler",
        hosts=inventory,
        variables={"vgpu_scheduler_chart_ref": str(upstream.chart("hami-2.10.0.tgz")), "vgpu_scheduler_chart_repo_url": ""},
        check=True,
        diff=True,
    )
    assert vgpu.rc == 0, vgpu.message or vgpu.stdout
    values = vgpu.task("Install or upgrade the vGPU scheduler release").result["diff"]["after"]["values"]
    assert values["devicePlugin"]["nvidiaNodeSelector"] == VGPU_SELECTOR
    planned = vgpu.task("Work out this stack's nodes and node selector").result["ansible_facts"]
    assert sorted(planned["__vgpu_scheduler_nodes"]) == ["gpu-node-1", "gpu-node-2"]
    found = vgpu.task("Find the nodes of this stack the cluster lacks, and those without gpu=on").result["ansible_facts"]
    assert found == {"__vgpu_scheduler_missing": [], "__vgpu_scheduler_lacking": []}
    nvdp = run_role(
        cluster,
        "nvidia_device_plugin",
        hosts=inventory,
        variables={
            "nvidia_device_plugin_chart_ref": str(upstream.chart("nvidia-device-plugin-0.20.0.tgz")),
            "nvidia_device_plugin_chart_repo_url": "",
        },
        check=True,
        diff=True,
    )
    assert nvdp.rc == 0, nvdp.message or nvdp.stdout
    values = nvdp.task("Install or upgrade the NVIDIA device plugin release").result["diff"]["after"]["values"]
    assert values["nodeSelector"] == NVDP_SELECTOR
    assert writes(cluster) == []
