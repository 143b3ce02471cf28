"""The Helm device stacks (roles vgpu_scheduler, nvidia_device_plugin, gpu_operator) through the real
``ansible-playbook``, the real helm (v4, .cache/bin) and the real kubegpu.core modules, against the test
API server (three GPU nodes, ``/version`` v1.25.4, ready controller on).

Simulated: the cluster (tests/support/kubeapi), the upstream charts (small local charts in
tests/support/charts/{hami,vgpu,nvidia-device-plugin,gpu-operator} with the upstream values keys the
roles set; each README says what it renders), and, for the MIG refusal, the GPU (facts gathered in a first play
by the real gpu_facts from the fake NVML library's a100_mig and t4 scenarios, tests/support/role_runs.py). Every
assertion on the outcome reads the objects the server stored or helm's own record of the release.

Most tests give the roles their node lists and selectors (``<role>_nodes``, ``<role>_node_selector``); the
last one takes them from their default, the ``kubegpu.core.device_stack_nodes`` filter's plan (skipped until that
filter is on the branch).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.kube_modules import get_object, writes
from tests.support.role_runs import GpuHost, run_role

CHARTS = Path(__file__).resolve().parents[1] / "support" / "charts"
NODES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
VGPU_SELECTOR = {"gpu": "on", "kubegpu.io/device-stack": "vgpu_scheduler"}
NVDP_SELECTOR = {"nvidia.com/gpu.present": "true", "kubegpu.io/device-stack": "nvidia_device_plugin"}
GPU_TAINT_TOLERATION = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
NVIDIA_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture
def cluster(kubeapi):
    """The reset test server as a kubeadm v1.25.4 cluster with a working controller."""
    kubeapi.admin.set_version("v1.25.4")
    kubeapi.admin.set_ready_controller(True)
    return kubeapi


def label_nodes(kubeapi, names, labels):
    for name in names:
        request = urllib.request.Request(
            f"{kubeapi.url}/api/v1/nodes/{name}",
            data=json.dumps({"metadata": {"labels": labels}}).encode(),
            method="PATCH",
            headers={"Content-Type": "application/merge-patch+json"},
        )
        urllib.request.urlopen(request, timeout=10).read()
    kubeapi.admin.reset_counters()  # the tests count only the roles' writes


def hosts(runtime="nvidia", **overrides):
    """Inventory hosts of the GPU group: every node's default runtime (overrides: host -> variables)."""
    return {name: {"kubegpu_default_runtime": runtime, **overrides.get(name.replace("-", "_"), {})} for name in NODES}


def pod_spec(kubeapi, path):
    stored = get_object(kubeapi, path)
    assert stored is not None, f"{path} was not stored"
    return stored["spec"]["template"]["spec"]


# -- nvidia_device_plugin --------------------------------------------------------------------------------


def nvdp_variables(**more):
    return {
        "nvidia_device_plugin_chart_ref": str(CHARTS / "nvidia-device-plugin"),
        "nvidia_device_plugin_nodes": ["gpu-node-3"],
        "nvidia_device_plugin_node_selector": NVDP_SELECTOR,
        **more,
    }


def test_nvidia_device_plugin_time_slicing_config_selector_and_tolerations_three_ways(cluster, helm):
    label_nodes(cluster, ["gpu-node-3"], {"kubegpu.io/device-stack": "nvidia_device_plugin"})
    variables = nvdp_variables(nvidia_device_plugin_sharing="time-slicing", nvidia_device_plugin_replicas=4)
    kwargs = {"hosts": hosts(), "variables": variables}
    check = run_role(cluster, "nvidia_device_plugin", check=True, **kwargs)
    assert check.rc == 0, check.message or check.stdout
    assert check.task("Install or upgrade the NVIDIA device plugin release").result["changed"]
    assert writes(cluster) == [] and helm("list", "-A", "-o", "json", json_output=True) == []

    real = run_role(cluster, "nvidia_device_plugin", **kwargs)
    assert real.rc == 0, real.message or real.stdout
    configmap = get_object(cluster, "/api/v1/namespaces/nvidia-device-plugin/configmaps/nvidia-device-plugin-configs")
    assert yaml.safe_load(configmap["data"]["kubegpu"]) == {
        "version": "v1",
        "flags": {"migStrategy": "none"},
        "sharing": {
            "timeSlicing": {
                "renameByDefault": False,
                "failRequestsGreaterThanOne": False,
                "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
            }
        },
    }
    plugin = pod_spec(cluster, "/apis/apps/v1/namespaces/nvidia-device-plugin/daemonsets/nvidia-device-plugin")
    assert plugin["nodeSelector"] == NVDP_SELECTOR
    assert GPU_TAINT_TOLERATION in plugin["tolerations"] and NVIDIA_TOLERATION in plugin["tolerations"]
    sidecar = {env["name"]: env.get("value") for env in plugin["containers"][0]["env"]}
    assert sidecar["DEFAULT_CONFIG"] == "kubegpu"
    assert (
        get_object(cluster, "/apis/apps/v1/namespaces/nvidia-device-plugin/daemonsets/nvidia-device-plugin-mps-control-daemon")
        is None
    )
    daemonset = get_object(cluster, "/apis/apps/v1/namespaces/nvidia-device-plugin/daemonsets/nvidia-device-plugin")
    assert daemonset["status"]["desiredNumberScheduled"] == 1, "only gpu-node-3 carries this stack's label"

    cluster.admin.reset_counters()
    again = run_role(cluster, "nvidia_device_plugin", **kwargs)
    assert again.rc == 0 and again.changed == [], (again.changed, again.message)
    assert writes(cluster) == []


def test_nvidia_device_plugin_refuses_mps_on_mig_nodes_naming_them(cluster, helm):
    inventory = {
        **hosts(),
        "gpu-node-2": GpuHost("t4", vars={"kubegpu_default_runtime": "nvidia"}),
        "gpu-node-3": GpuHost("a100_mig", vars={"kubegpu_default_runtime": "nvidia"}),
    }
    variables = nvdp_variables(nvidia_device_plugin_sharing="mps", nvidia_device_plugin_nodes=["gpu-node-2", "gpu-node-3"])
    run = run_role(cluster, "nvidia_device_plugin", hosts=inventory, variables=variables)
    assert run.rc != 0, run.stdout
    a100 = run.task("Gather GPU facts", host="gpu-node-3").result["ansible_facts"]["gpu"]["devices"]
    t4 = run.task("Gather GPU facts", host="gpu-node-2").result["ansible_facts"]["gpu"]["devices"]
    assert a100[0]["mig_mode_current"] is True and not any(device["mig_mode_current"] for device in t4)
    assert "MPS sharing is not supported on MIG-enabled GPUs" in run.message and "gpu-node-3" in run.message
    assert "gpu-node-2" not in run.message.split("enabled GPUs")[1]
    assert writes(cluster) == [] and helm("list", "-A", "-o", "json", json_output=True) == []

    # MPS is fine on the T4 node, which has no MIG
    mps = run_role(
        cluster,
        "nvidia_device_plugin",
        hosts=inventory,
        variables={**variables, "nvidia_device_plugin_nodes": ["gpu-node-2"]},
        check=True,
        diff=True,
    )
    assert mps.rc == 0, mps.message
    config = mps.task("Install or upgrade the NVIDIA device plugin release").result["diff"]["after"]["values"]["config"]["map"][
        "kubegpu"
    ]
    assert "mps:" in config and "timeSlicing" not in config
    assert writes(cluster) == []


# -- gpu_operator ---------------------------------------------------------------------------------------


def test_gpu_operator_disables_driver_and_toolkit_when_the_collection_manages_them_three_ways(cluster, helm):
    variables = {"gpu_operator_chart_ref": str(CHARTS / "gpu-operator")}
    kwargs = {"hosts": hosts(), "variables": variables}
    check = run_role(cluster, "gpu_operator", check=True, **kwargs)
    assert check.rc == 0, check.message or check.stdout
    assert check.task("Install or upgrade the GPU Operator release").result["changed"]
    assert writes(cluster) == [] and helm("list", "-A", "-o", "json", json_output=True) == []

    real = run_role(cluster, "gpu_operator", **kwargs)
    assert real.rc == 0, real.message or real.stdout
    policy = get_object(cluster, "/apis/nvidia.com/v1/clusterpolicies/cluster-policy")
    assert policy["spec"]["driver"] == {"enabled": False} and policy["spec"]["toolkit"] == {"enabled": False}
    assert policy["spec"]["daemonsets"]["tolerations"] == [NVIDIA_TOLERATION, GPU_TAINT_TOLERATION]
    cluster.admin.reset_counters()
    again = run_role(cluster, "gpu_operator", **kwargs)
    assert again.rc == 0 and again.changed == [], (again.changed, again.message)
    assert writes(cluster) == []

    # nodes whose driver and toolkit this collection does not manage: the operator installs them
    unmanaged = {**variables, "kubegpu_manage_driver": False, "kubegpu_manage_toolkit": False}
    upgrade = run_role(cluster, "gpu_operator", hosts=hosts(), variables=unmanaged)
    assert upgrade.rc == 0 and upgrade.changed, upgrade.message
    policy = get_object(cluster, "/apis/nvidia.com/v1/clusterpolicies/cluster-policy")
    assert policy["spec"]["driver"] == {"enabled": True} and policy["spec"]["toolkit"] == {"enabled": True}


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
        variables={"vgpu_scheduler_chart_ref": str(CHARTS / "hami")},
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
        variables=nvdp_variables(nvidia_device_plugin_nodes=None, nvidia_device_plugin_node_selector=None),
        check=True,
        diff=True,
    )
    assert nvdp.rc == 0, nvdp.message or nvdp.stdout
    values = nvdp.task("Install or upgrade the NVIDIA device plugin release").result["diff"]["after"]["values"]
    assert values["nodeSelector"] == NVDP_SELECTOR
    assert writes(cluster) == []
