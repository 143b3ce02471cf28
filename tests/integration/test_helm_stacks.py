"""The Helm device stacks (roles vgpu_scheduler, nvidia_device_plugin; gpu_operator: test_gpu_operator_role.py) through the real
``ansible-playbook``, the real helm (v4, .cache/bin) and the real kubegpu.core modules, against the test
API server (three GPU nodes, ``/version`` v1.25.4, ready controller on).

Simulated: the cluster (tests/support/kubeapi), the upstream charts (small local charts in
tests/support/charts/{hami,vgpu} with the upstream values keys the
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

from tests.support import upstream
from tests.support.kube_modules import get_object, writes
from tests.support.role_runs import run_role

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


# -- vgpu_scheduler ---------------------------------------------------------------------------------------


def vgpu_variables(chart, **more):
    """The local chart (its version is the role's default chart version; a path needs no repository URL)."""
    return {
        "vgpu_scheduler_chart_ref": str(CHARTS / chart),
        "vgpu_scheduler_nodes": ["gpu-node-1", "gpu-node-2"],
        "vgpu_scheduler_node_selector": VGPU_SELECTOR,
        **more,
    }


def test_vgpu_scheduler_hami_tag_from_version_selector_and_tolerations_three_ways(cluster, helm):
    label_nodes(cluster, ["gpu-node-1", "gpu-node-2"], {"gpu": "on", "kubegpu.io/device-stack": "vgpu_scheduler"})
    kwargs = {"hosts": hosts(), "variables": vgpu_variables("hami")}
    check = run_role(cluster, "vgpu_scheduler", check=True, diff=True, **kwargs)
    assert check.rc == 0, check.message or check.stdout
    planned = check.task("Install or upgrade the vGPU scheduler release").result
    assert planned["changed"] and planned["action"] == "installed"
    assert planned["diff"]["after"]["values"]["scheduler"]["kubeScheduler"] == {"image": {"tag": "v1.25.4"}}
    assert writes(cluster) == [] and helm("list", "-A", "-o", "json", json_output=True) == []

    real = run_role(cluster, "vgpu_scheduler", **kwargs)
    assert real.rc == 0, real.message or real.stdout
    stored = helm("get", "values", "hami", "-n", "kube-system", "-o", "json", json_output=True)
    assert stored["scheduler"] == {
        "kubeScheduler": {"image": {"tag": "v1.25.4"}},
        "service": {"type": "NodePort", "schedulerPort": 31998},
    }
    assert stored["devicePlugin"]["deviceSplitCount"] == 10
    scheduler = pod_spec(cluster, "/apis/apps/v1/namespaces/kube-system/deployments/hami-scheduler")
    assert scheduler["containers"][0]["image"] == "chart-default.invalid/google_containers/kube-scheduler:v1.25.4"
    plugin = pod_spec(cluster, "/apis/apps/v1/namespaces/kube-system/daemonsets/hami-device-plugin")
    assert plugin["nodeSelector"] == VGPU_SELECTOR
    assert plugin["tolerations"] == [GPU_TAINT_TOLERATION, NVIDIA_TOLERATION]
    assert "--device-split-count=10" in plugin["containers"][0]["command"]
    service = get_object(cluster, "/api/v1/namespaces/kube-system/services/hami-scheduler")
    assert service["spec"]["type"] == "NodePort" and service["spec"]["ports"][0]["nodePort"] == 31998
    daemonset = get_object(cluster, "/apis/apps/v1/namespaces/kube-system/daemonsets/hami-device-plugin")
    assert daemonset["status"]["desiredNumberScheduled"] == 2, "the ready controller places it on the two gpu=on nodes"

    cluster.admin.reset_counters()
    again = run_role(cluster, "vgpu_scheduler", **kwargs)
    assert again.rc == 0 and again.changed == [], (again.changed, again.message)
    assert writes(cluster) == []


def test_vgpu_scheduler_legacy_chart_image_tag_key_registry_and_defaults(cluster, helm):
    label_nodes(cluster, ["gpu-node-1", "gpu-node-2"], {"gpu": "on"})
    variables = vgpu_variables(
        "vgpu",
        vgpu_scheduler_chart_flavor="vgpu",
        vgpu_scheduler_chart_version="2.0.0",
        vgpu_scheduler_release_name="vgpu",
        vgpu_scheduler_image_registry="mirror.test:5000",
        vgpu_scheduler_default_memory=2048,
        vgpu_scheduler_default_cores=20,
        vgpu_scheduler_device_split_count=4,
        vgpu_scheduler_node_port=31000,
        vgpu_scheduler_node_selector={"gpu": "on"},
    )
    kwargs = {"hosts": hosts(), "variables": variables}
    real = run_role(cluster, "vgpu_scheduler", **kwargs)
    assert real.rc == 0, real.message or real.stdout
    stored = helm("get", "values", "vgpu", "-n", "kube-system", "-o", "json", json_output=True)
    assert stored["scheduler"]["kubeScheduler"]["imageTag"] == "v1.25.4"
    assert "image" not in stored["scheduler"]["kubeScheduler"] or isinstance(stored["scheduler"]["kubeScheduler"]["image"], str)
    scheduler = pod_spec(cluster, "/apis/apps/v1/namespaces/kube-system/deployments/vgpu-scheduler")
    kube_scheduler, extender = scheduler["containers"]
    assert kube_scheduler["image"] == "mirror.test:5000/google_containers/kube-scheduler:v1.25.4"
    assert kube_scheduler["command"] == ["kube-scheduler", "--config=/config/config.yaml"], "a 1.25 tag takes the new arguments"
    assert extender["image"].startswith("mirror.test:5000/4pdosc/k8s-vdevice:")
    assert {"--default-mem=2048", "--default-cores=20"} <= set(extender["command"])
    plugin = pod_spec(cluster, "/apis/apps/v1/namespaces/kube-system/daemonsets/vgpu-device-plugin")
    assert plugin["nodeSelector"] == {"gpu": "on"}
    assert plugin["tolerations"] == [GPU_TAINT_TOLERATION, NVIDIA_TOLERATION]
    assert "--device-split-count=4" in plugin["containers"][0]["command"]
    service = get_object(cluster, "/api/v1/namespaces/kube-system/services/vgpu-scheduler")
    assert service["spec"]["ports"][0]["nodePort"] == 31000

    cluster.admin.reset_counters()
    again = run_role(cluster, "vgpu_scheduler", **kwargs)
    assert again.rc == 0 and again.changed == [], (again.changed, again.message)
    assert writes(cluster) == []


VGPU_REFUSALS = [
    pytest.param(({}, {}, ["lack the label gpu=on", "gpu-node-1, gpu-node-2"]), id="no-gpu-on"),
    pytest.param(
        (
            {"gpu-node-1": {"gpu": "on"}, "gpu-node-2": {"gpu": "on"}},
            {"hosts": hosts(gpu_node_2={"kubegpu_default_runtime": "runc"})},
            ["default runtime", "gpu-node-2 (runc)"],
        ),
        id="runtime-runc",
    ),
    pytest.param(
        (
            {"gpu-node-1": {"gpu": "on"}, "gpu-node-2": {"gpu": "on"}},
            {"variables": vgpu_variables("hami", vgpu_scheduler_nodes=["gpu-node-1", "gpu-node-9"])},
            ["no Node object for gpu-node-9"],
        ),
        id="unknown-node",
    ),
    pytest.param(
        (
            {"gpu-node-1": {"gpu": "on"}, "gpu-node-2": {"gpu": "on"}},
            {"variables": vgpu_variables("hami", vgpu_scheduler_default_memory=1024)},
            ["default_memory=1024", "HAMi's chart"],
        ),
        id="hami-default-memory",
    ),
]


@pytest.mark.parametrize("case", VGPU_REFUSALS)
def test_vgpu_scheduler_preflight_refuses_naming_the_nodes_and_changes_nothing(cluster, helm, case):
    labels, overrides, words = case
    for name, node_labels in labels.items():
        label_nodes(cluster, [name], node_labels)
    kwargs = {"hosts": hosts(), "variables": vgpu_variables("hami"), **overrides}
    run = run_role(cluster, "vgpu_scheduler", **kwargs)
    assert run.rc != 0 and run.failed, run.stdout
    for word in words:
        assert word in run.message, (word, run.message)
    assert writes(cluster) == []
    assert helm("list", "-A", "-o", "json", json_output=True) == []


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
        variables={"nvidia_device_plugin_chart_ref": str(upstream.chart("nvidia-device-plugin-0.20.0.tgz"))},
        check=True,
        diff=True,
    )
    assert nvdp.rc == 0, nvdp.message or nvdp.stdout
    values = nvdp.task("Install or upgrade the NVIDIA device plugin release").result["diff"]["after"]["values"]
    assert values["nodeSelector"] == NVDP_SELECTOR
    assert writes(cluster) == []
