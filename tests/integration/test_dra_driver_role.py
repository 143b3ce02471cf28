"""The kubegpu.core.dra_driver role installing the real NVIDIA DRA driver chart (dra-driver-nvidia-gpu 0.4.1, from
../shared/upstream/charts) with the real helm on the test API server (Kubernetes 1.35, resource.k8s.io/v1 served;
1.33 and 1.31 for the refusals), through the real ``ansible-playbook``, in a mixed cluster: gpu-node-1 of the
dra_driver stack, gpu-node-2 of nvidia_device_plugin (the real nvidia-device-plugin 0.20.0 chart), both labelled and
tainted by the real gpu_labels role.

Simulated: the cluster (tests/support/kubeapi: its DaemonSet controller places the charts' pods by their selectors,
affinity and tolerations, as kube-scheduler would; the DRA kubelet plugin's double publishes the ResourceSlice of the
node its pod runs on, from the node's fake NVML annotation) and the GPUs (facts gathered by the real gpu_facts from the fake
NVML scenarios v100x2_r570 (driver 570) and t4 (driver 535), tests/support/role_runs.py). ``kubegpu_cdi_enabled`` is
given as a host variable, as container_toolkit records it. Every assertion on the outcome reads the objects the
server stored or helm's own record of the release.
"""

from __future__ import annotations

import pytest

from tests.support import upstream
from tests.support.kube_modules import get_object, writes
from tests.support.role_runs import GpuHost, run_role
from tests.support.site_bench import SiteBench

pytestmark = pytest.mark.skipif(not upstream.CHARTS.is_dir(), reason=upstream.MISSING)

NAMESPACE = "dra-driver-nvidia-gpu"
PLUGIN = f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/dra-driver-nvidia-gpu-kubelet-plugin"
NVDP = "/apis/apps/v1/namespaces/nvidia-device-plugin/daemonsets/nvidia-device-plugin"
SELECTOR = {"nvidia.com/gpu.present": "true", "kubegpu.io/device-stack": "dra_driver"}
TASK = "Install or upgrade the NVIDIA DRA driver release"
RUNTIME = {"kubegpu_default_runtime": "nvidia"}
DRA = {**RUNTIME, "kubegpu_device_plugin": "dra_driver", "kubegpu_cdi_enabled": True}
VARIABLES = {
    "kubegpu_gpu_taint_enabled": True,
    "dra_driver_chart_ref": str(upstream.CHARTS / "dra-driver-nvidia-gpu-0.4.1.tgz"),
    "nvidia_device_plugin_chart_ref": str(upstream.CHARTS / "nvidia-device-plugin-0.20.0.tgz"),
    "nvidia_device_plugin_chart_repo_url": "",
}


def mixed_hosts(**dra_vars):
    return {
        "node1": GpuHost("v100x2_r570", "gpu-node-1", {**DRA, **dra_vars}),
        "node2": GpuHost("t4", "gpu-node-2", {**RUNTIME, "kubegpu_device_plugin": "nvidia_device_plugin"}),
    }


@pytest.fixture(scope="module")
def installed(kubeapi_server):
    """Check mode on a clean 1.35 server, then gpu_labels, dra_driver and nvidia_device_plugin for real, then the
    same again: the three runs and the writes of the check and second runs."""
    kubeapi = kubeapi_server
    kubeapi.admin.reset()
    kubeapi.admin.set_version("v1.35.2")
    kubeapi.admin.set_ready_controller(True)
    check = run_role(kubeapi, "dra_driver", hosts=mixed_hosts(), variables=VARIABLES, check=True, diff=True)
    check_writes = writes(kubeapi)
    roles = ["gpu_labels", "dra_driver", "nvidia_device_plugin"]
    real = run_role(kubeapi, roles, hosts=mixed_hosts(), variables=VARIABLES)
    kubeapi.admin.reset_counters()
    again = run_role(kubeapi, roles, hosts=mixed_hosts(), variables=VARIABLES)
    return {
        "kubeapi": kubeapi,
        "check": check,
        "check_writes": check_writes,
        "real": real,
        "again": again,
        "again_writes": writes(kubeapi),
    }


def test_check_mode_plans_the_values_and_writes_nothing(installed):
    values = upstream.planned_values(installed["check"], TASK)
    assert installed["check_writes"] == []
    assert values["gpuResourcesEnabledOverride"] is True and values["nvidiaDriverRoot"] == "/"
    assert values["resources"] == {"gpus": {"enabled": True}, "computeDomains": {"enabled": False}}
    assert values["kubeletPlugin"]["nodeSelector"] == SELECTOR


def test_install_the_kubelet_plugin_lands_on_its_own_node_only_and_the_device_classes_are_the_charts(installed):
    kubeapi, real = installed["kubeapi"], installed["real"]
    assert real.rc == 0, real.explain()
    plugin = get_object(kubeapi, PLUGIN)
    pod = plugin["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == SELECTOR
    assert {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert plugin["status"]["desiredNumberScheduled"] == 1 and plugin["status"]["numberReady"] == 1
    pods = get_object(kubeapi, f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    assert {p["spec"]["nodeName"] for p in pods if p["metadata"]["name"].startswith("dra-driver-nvidia-gpu-kubelet-plugin")} == {
        "gpu-node-1"
    }
    nvdp_pods = get_object(kubeapi, "/api/v1/namespaces/nvidia-device-plugin/pods")["items"]
    nvdp_nodes = {p["spec"]["nodeName"] for p in nvdp_pods if p["metadata"]["name"].startswith("nvidia-device-plugin-")}
    assert nvdp_nodes == {"gpu-node-2"}
    assert get_object(kubeapi, NVDP)["status"]["desiredNumberScheduled"] == 1
    # the DeviceClasses as the real chart renders them on resource.k8s.io/v1
    rendered = {d["metadata"]["name"]: d for d in upstream.named(upstream_render(), "DeviceClass")}
    for name in ("gpu.nvidia.com", "mig.nvidia.com"):
        stored = get_object(kubeapi, f"/apis/resource.k8s.io/v1/deviceclasses/{name}")
        assert stored["spec"] == rendered[name]["spec"], name
    assert get_object(kubeapi, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/dra-driver-nvidia-gpu-controller") is None
    # the kubelet plugin (its double, tests/support/kubeapi/dra_plugin.py) publishes the GPUs of its node only
    slices = get_object(kubeapi, "/apis/resource.k8s.io/v1/resourceslices")["items"]
    assert [(s["spec"]["nodeName"], s["spec"]["driver"], len(s["spec"]["devices"])) for s in slices] == [
        ("gpu-node-1", "gpu.nvidia.com", 2)
    ]


def upstream_render():
    return upstream.helm_template(
        upstream.chart("dra-driver-nvidia-gpu-0.4.1.tgz"),
        {"gpuResourcesEnabledOverride": True, "resources": {"computeDomains": {"enabled": False}}},
        release="dra-driver-nvidia-gpu",
        namespace=NAMESPACE,
        kube_version="v1.35.2",
    )


def test_a_second_run_changes_nothing(installed):
    again = installed["again"]
    assert again.rc == 0 and again.changed == [], (again.changed, again.message)
    assert installed["again_writes"] == []


def test_absent_removes_the_release_and_its_kubelet_plugin(installed):
    kubeapi = installed["kubeapi"]
    run = run_role(kubeapi, "dra_driver", variables={**VARIABLES, "dra_driver_state": "absent"})
    assert run.rc == 0, run.explain()
    assert run.task("Uninstall the NVIDIA DRA driver release").result["changed"]
    assert get_object(kubeapi, PLUGIN) is None
    assert get_object(kubeapi, "/apis/resource.k8s.io/v1/deviceclasses/gpu.nvidia.com") is None
    assert get_object(kubeapi, "/apis/resource.k8s.io/v1/resourceslices")["items"] == []  # the plugin's pod is gone
    assert get_object(kubeapi, NVDP) is not None, "the other stack stays"


def refused(kubeapi, hosts, version="v1.35.2"):
    kubeapi.admin.reset()
    kubeapi.admin.set_version(version)
    run = run_role(kubeapi, "dra_driver", hosts=hosts, variables=VARIABLES)
    assert run.rc != 0, run.stdout
    assert "Nothing was changed" in run.message, run.message
    assert writes(kubeapi) == []
    return run.message


@pytest.mark.parametrize("version", ["v1.33.7", "v1.31.14"])
def test_refuses_a_cluster_without_resource_k8s_io_v1(kubeapi_server, version):
    message = refused(kubeapi_server, mixed_hosts(), version)
    assert f'"{version}" and does not serve resource.k8s.io/v1' in message


def test_refuses_nodes_with_an_old_driver_or_without_cdi_naming_them(kubeapi_server):
    hosts = {
        "node1": GpuHost("t4", "gpu-node-1", DRA),  # driver 535
        "node2": GpuHost("v100x2_r570", "gpu-node-2", {**DRA, "kubegpu_cdi_enabled": False}),
        "node3": GpuHost("v100x2_r570", "gpu-node-3", DRA),  # fine
    }
    message = refused(kubeapi_server, hosts)
    assert "older than the DRA driver needs (565 or later" in message and "gpu-node-1 (driver 535.161.08)" in message
    assert "no CDI enabled" in message and "container_toolkit" in message
    old, cdi = message.split("no CDI enabled")
    assert "gpu-node-2" not in old and "gpu-node-1" not in cdi and "gpu-node-3" not in message


def test_refuses_a_node_two_hosts_give_two_stacks(kubeapi_server):
    hosts = {
        "node1": GpuHost("v100x2_r570", "gpu-node-1", DRA),
        "node1-again": GpuHost("v100x2_r570", "gpu-node-1", {**RUNTIME, "kubegpu_device_plugin": "nvidia_device_plugin"}),
    }
    kubeapi_server.admin.reset()
    run = run_role(kubeapi_server, "dra_driver", hosts=hosts, variables=VARIABLES)
    assert run.rc != 0 and writes(kubeapi_server) == []
    assert "are both node gpu-node-1 but choose dra_driver and nvidia_device_plugin: one device stack per node" in run.message


def test_cluster_playbook_refuses_an_old_driver_in_its_preflight_play_before_any_write(kubeapi, tmp_path):
    """facts.yml and cluster.yml as an operator runs them: gpu-node-1 (driver 570) and gpu-node-2 (driver 535) of the
    dra_driver stack, gpu-node-3 of the device plugin's. cluster.yml's preflight play runs the role's checks before
    play 4 labels a node: it names gpu-node-2 only, and no write request reached the API server."""
    kubeapi.admin.set_version("v1.35.2")
    bench = SiteBench(kubeapi, tmp_path, {"gpu-node-1": "v100x2_r570", "gpu-node-2": "t4", "gpu-node-3": "h100x8"})
    plugin = {"kubegpu_device_plugin": "nvidia_device_plugin"}
    bench.host_vars.update({"gpu-node-1": DRA, "gpu-node-2": DRA, "gpu-node-3": plugin})
    kubeapi.admin.reset_counters()
    run = bench.run("facts.yml", "cluster.yml")
    assert run.rc != 0, run.explain()
    assert {record.get("play") for record in run.failed} == {"Preflight of every role of this playbook, before anything changes"}
    assert "gpu-node-2 (driver 535.161.08)" in run.message and "gpu-node-1" not in run.message, run.message
    assert writes(kubeapi) == []


def test_site_refuses_before_the_node_plays_only_the_nodes_that_would_keep_or_get_a_driver_below_565(kubeapi, tmp_path):
    """site.yml (check mode) with every GPU node of the dra_driver stack: its early check judges the driver each node
    will have after kubegpu.core.nvidia_driver (which changes a loaded driver only to a wanted version: the pin, or
    the runfile installer's): gpu-node-1 (535 loaded, nvidia_driver_version 570) and gpu-node-4 (535 loaded, a 570
    runfile) will get 570, gpu-node-2 has no driver loaded and no pin (judged after the driver play), gpu-node-3 keeps
    its 535 because kubegpu_manage_driver is off. Only gpu-node-3 is named, before any node task or write request."""
    kubeapi.admin.set_version("v1.35.2")
    scenarios = {"gpu-node-1": "t4", "gpu-node-2": "driver_not_loaded", "gpu-node-3": "t4", "gpu-node-4": "t4"}
    bench = SiteBench(kubeapi, tmp_path, scenarios)
    pin = {"nvidia_driver_version": "570.195.03"}
    runfile = {
        "nvidia_driver_method": "runfile",
        "nvidia_driver_runfile_url": "https://example.invalid/NVIDIA-Linux-x86_64-570.195.03.run",
    }
    bench.host_vars.update(
        {
            "gpu-node-1": {**DRA, **pin},
            "gpu-node-2": DRA,
            "gpu-node-3": {**DRA, **pin, "kubegpu_manage_driver": False},
            "gpu-node-4": {**DRA, **runfile},
        }
    )
    kubeapi.admin.reset_counters()
    run = bench.run("site.yml", check=True)
    assert run.rc != 0, run.explain()
    assert {record.get("play") for record in run.failed} == {"Device stack choice, checked before any node changes"}, run.message
    assert "gpu-node-3 (driver 535.161.08)" in run.message and "set nvidia_driver_version (565 or later" in run.message
    assert not [node for node in ("gpu-node-1", "gpu-node-2", "gpu-node-4") if node in run.message], run.message
    ran = {record["task"] for record in run.records}
    assert not [task for task in ran if "nvidia_driver" in task or "container_toolkit" in task], sorted(ran)
    assert writes(kubeapi) == []
