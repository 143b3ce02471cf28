"""The kubegpu.core.nvidia_device_plugin role installing the real nvidia-device-plugin chart (0.20.0, from
../shared/upstream/charts) with the real helm (v4, .cache/bin) on the test API server (three GPU nodes, ``/version``
v1.28.15, ready controller on), through the real ``ansible-playbook``.

Simulated: the cluster (tests/support/kubeapi: its DaemonSet controller places the chart's pods by their selectors,
affinity and tolerations, as kube-scheduler would) and, for the MIG refusal, the GPU (facts gathered in a first play
by the real gpu_facts from the fake NVML library's a100_mig and t4 scenarios, tests/support/role_runs.py). Every
assertion on the outcome reads the objects the server stored or helm's own record of the release. The renders of
every option on each Kubernetes version are in test_render_nvidia_device_plugin.py.
"""

from __future__ import annotations

import yaml

from tests.support import upstream
from tests.support.kube_modules import get_object, label_nodes, writes
from tests.support.role_runs import GpuHost, run_role

NODES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
SELECTOR = {"nvidia.com/gpu.present": "true", "kubegpu.io/device-stack": "nvidia_device_plugin"}
GPU_TAINT_TOLERATION = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
NVIDIA_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
DAEMONSETS = "/apis/apps/v1/namespaces/nvidia-device-plugin/daemonsets"
TASK = "Install or upgrade the NVIDIA device plugin release"


def cluster(kubeapi):
    kubeapi.admin.set_version("v1.28.15")
    kubeapi.admin.set_ready_controller(True)
    return kubeapi


def hosts():
    return {name: {"kubegpu_default_runtime": "nvidia"} for name in NODES}


def variables(**more):
    return {
        "nvidia_device_plugin_chart_ref": str(upstream.chart("nvidia-device-plugin-0.20.0.tgz")),
        "nvidia_device_plugin_chart_repo_url": "",
        "nvidia_device_plugin_nodes": ["gpu-node-3"],
        "nvidia_device_plugin_node_selector": SELECTOR,
        **more,
    }


def test_time_slicing_config_selector_and_tolerations_three_ways(kubeapi, helm):
    cluster(kubeapi)
    label_nodes(kubeapi, ["gpu-node-3"], {"kubegpu.io/device-stack": "nvidia_device_plugin"})
    kwargs = {
        "hosts": hosts(),
        "variables": variables(nvidia_device_plugin_sharing="time-slicing", nvidia_device_plugin_replicas=4),
    }
    check = run_role(kubeapi, "nvidia_device_plugin", check=True, **kwargs)
    assert check.rc == 0, check.explain()
    assert check.task(TASK).result["changed"]
    assert writes(kubeapi) == [] and helm("list", "-A", "-o", "json", json_output=True) == []

    real = run_role(kubeapi, "nvidia_device_plugin", **kwargs)
    assert real.rc == 0, real.explain()
    (release,) = helm("list", "-A", "-o", "json", json_output=True)
    assert (release["chart"], release["status"]) == ("nvidia-device-plugin-0.20.0", "deployed")
    configmap = get_object(kubeapi, "/api/v1/namespaces/nvidia-device-plugin/configmaps/nvidia-device-plugin-configs")
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
    plugin = get_object(kubeapi, f"{DAEMONSETS}/nvidia-device-plugin")
    pod = plugin["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == SELECTOR
    assert GPU_TAINT_TOLERATION in pod["tolerations"] and NVIDIA_TOLERATION in pod["tolerations"]
    managers = [c for c in pod["initContainers"] + pod["containers"] if c.get("command") == ["config-manager"]]
    assert managers and all({"name": "DEFAULT_CONFIG", "value": "kubegpu"} in c["env"] for c in managers)
    assert plugin["status"]["desiredNumberScheduled"] == 1, "only gpu-node-3 carries this stack's label"
    # the chart always renders the MPS control daemon; without MPS sharing no node has nvidia.com/mps.capable=true
    mps = get_object(kubeapi, f"{DAEMONSETS}/nvidia-device-plugin-mps-control-daemon")
    assert mps["status"]["desiredNumberScheduled"] == 0
    assert get_object(kubeapi, f"{DAEMONSETS}/nvidia-device-plugin-gpu-feature-discovery") is None

    kubeapi.admin.reset_counters()
    again = run_role(kubeapi, "nvidia_device_plugin", **kwargs)
    assert again.rc == 0 and again.changed == [], (again.changed, again.message)
    assert writes(kubeapi) == []


def test_refuses_mps_on_mig_nodes_naming_them(kubeapi, helm):
    cluster(kubeapi)
    inventory = {
        **hosts(),
        "gpu-node-2": GpuHost("t4", vars={"kubegpu_default_runtime": "nvidia"}),
        "gpu-node-3": GpuHost("a100_mig", vars={"kubegpu_default_runtime": "nvidia"}),
    }
    mps = variables(nvidia_device_plugin_sharing="mps", nvidia_device_plugin_nodes=["gpu-node-2", "gpu-node-3"])
    run = run_role(kubeapi, "nvidia_device_plugin", hosts=inventory, variables=mps)
    assert run.rc != 0, run.stdout
    a100 = run.task("Gather GPU facts", host="gpu-node-3").result["ansible_facts"]["gpu"]["devices"]
    t4 = run.task("Gather GPU facts", host="gpu-node-2").result["ansible_facts"]["gpu"]["devices"]
    assert a100[0]["mig_mode_current"] is True and not any(device["mig_mode_current"] for device in t4)
    assert "MPS sharing is not supported on MIG-enabled GPUs" in run.message and "gpu-node-3" in run.message
    assert "gpu-node-2" not in run.message.split("enabled GPUs")[1]
    assert writes(kubeapi) == [] and helm("list", "-A", "-o", "json", json_output=True) == []

    # MPS is fine on the T4 node, which has no MIG
    fine = run_role(
        kubeapi,
        "nvidia_device_plugin",
        hosts=inventory,
        variables={**mps, "nvidia_device_plugin_nodes": ["gpu-node-2"]},
        check=True,
        diff=True,
    )
    values = upstream.planned_values(fine, TASK)
    assert "mps:" in values["config"]["map"]["kubegpu"] and "timeSlicing" not in values["config"]["map"]["kubegpu"]
    assert values["gfd"] == {"enabled": True}
    assert writes(kubeapi) == []
