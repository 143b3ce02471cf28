"""The gpu_operator role installs the real GPU Operator chart v26.7.0 (../shared/upstream/charts, with its NFD
subchart) through the real ``ansible-playbook``, the real helm (v4, .cache/bin) and kubegpu.core.helm_release,
against the test API server (three GPU nodes, ready controller on, so helm's ``--wait`` sees the operator's and
NFD's Deployments and NFD's worker DaemonSet placed and ready, and the chart's pre-upgrade CRD Job complete).

Simulated: the cluster (tests/support/kubeapi). No operator runs, so the operands it would create from its
ClusterPolicy are not here: tests/integration/test_render_gpu_operator.py judges their placement from the rendered
ClusterPolicy. Every assertion reads the objects the server stored or helm's own record of the release.
"""

from __future__ import annotations

import pytest

from tests.support import upstream
from tests.support.kube_modules import get_object, writes
from tests.support.role_runs import run_role

CHART = "gpu-operator-v26.7.0.tgz"
NODES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
GPU_TAINT_TOLERATION = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
NVIDIA_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
# The chart's own NFD worker tolerations (values.yaml of chart v26.7.0), which the role keeps.
CONTROL_PLANE_TOLERATION = {
    "key": "node-role.kubernetes.io/control-plane",
    "operator": "Equal",
    "value": "",
    "effect": "NoSchedule",
}


@pytest.fixture
def cluster(kubeapi):
    """The reset test server as a v1.31 cluster with a working controller."""
    kubeapi.admin.set_version("v1.31.14")
    kubeapi.admin.set_ready_controller(True)
    return kubeapi


def hosts():
    return {name: {"kubegpu_default_runtime": "nvidia", "kubegpu_device_plugin": "gpu_operator"} for name in NODES}


def test_gpu_operator_disables_driver_and_toolkit_when_the_collection_manages_them_three_ways(cluster, helm):
    variables = {
        "gpu_operator_chart_ref": str(upstream.chart(CHART)),
        "gpu_operator_chart_repo_url": "",
        "gpu_operator_chart_version": "",
    }
    kwargs = {"hosts": hosts(), "variables": variables}
    check = run_role(cluster, "gpu_operator", check=True, **kwargs)
    assert check.rc == 0, check.explain()
    assert check.task("Install or upgrade the GPU Operator release").result["changed"]
    assert writes(cluster) == [] and helm("list", "-A", "-o", "json", json_output=True) == []

    real = run_role(cluster, "gpu_operator", **kwargs)
    assert real.rc == 0, real.explain()
    (release,) = helm("list", "-A", "-o", "json", json_output=True)
    assert (release["chart"], release["status"]) == ("gpu-operator-v26.7.0", "deployed")
    policy = get_object(cluster, "/apis/nvidia.com/v1/clusterpolicies/cluster-policy")
    assert policy["spec"]["driver"]["enabled"] is False and policy["spec"]["toolkit"]["enabled"] is False
    assert policy["spec"]["daemonsets"]["tolerations"] == [NVIDIA_TOLERATION, GPU_TAINT_TOLERATION]
    assert "defaultRuntime" not in policy["spec"]["operator"]
    worker = get_object(cluster, "/apis/apps/v1/namespaces/gpu-operator/daemonsets/gpu-operator-node-feature-discovery-worker")
    worker_tolerations = worker["spec"]["template"]["spec"]["tolerations"]
    assert worker_tolerations == [CONTROL_PLANE_TOLERATION, NVIDIA_TOLERATION, GPU_TAINT_TOLERATION]
    assert worker["status"]["numberReady"] == len(NODES), worker["status"]
    cluster.admin.reset_counters()
    again = run_role(cluster, "gpu_operator", **kwargs)
    assert again.rc == 0 and again.changed == [], (again.changed, again.message)
    assert writes(cluster) == []

    # nodes whose driver and toolkit this collection does not manage: the operator installs them (an upgrade, which
    # runs the chart's pre-upgrade CRD Job)
    unmanaged = {**variables, "kubegpu_manage_driver": False, "kubegpu_manage_toolkit": False}
    upgrade = run_role(cluster, "gpu_operator", hosts=hosts(), variables=unmanaged)
    assert upgrade.rc == 0 and upgrade.changed, upgrade.explain()
    policy = get_object(cluster, "/apis/nvidia.com/v1/clusterpolicies/cluster-policy")
    assert policy["spec"]["driver"]["enabled"] is True and policy["spec"]["toolkit"]["enabled"] is True
    (release,) = helm("list", "-A", "-o", "json", json_output=True)
    assert (release["revision"], release["status"]) == ("2", "deployed")
