"""Moving GPU nodes from one device stack to another (issue 8): playbooks/facts.yml and cluster.yml in one
``ansible-playbook`` run on the site bench (tests/support/site_bench.py: three GPU nodes whose facts come from the
fake NVML scenarios, the test API server as their cluster with its ready controller, the real helm v4), with the
real charts of ``../shared/upstream/charts`` (HAMi 2.10.0, NVIDIA device plugin 0.20.0, GPU Operator v26.7.0)
instead of the bench's local stand-ins. What was installed or removed is read from helm's own record
(``helm list``) and the objects the server stored; the order of removal and install from the server's request log.
"""

from __future__ import annotations

import typing as t

import pytest

from tests.support.adhoc import REPO_ROOT
from tests.support.kube_modules import get_object, writes
from tests.support.site_bench import SiteBench

pytestmark = pytest.mark.slow

CHARTS = REPO_ROOT.parent / "shared" / "upstream" / "charts"
REAL_CHARTS = {
    "vgpu_scheduler": ("hami-2.10.0.tgz", "2.10.0"),
    "nvidia_device_plugin": ("nvidia-device-plugin-0.20.0.tgz", "0.20.0"),
    "gpu_operator": ("gpu-operator-v26.7.0.tgz", "v26.7.0"),
}
# objects of the real charts that show a release is there (or gone)
HAMI_WEBHOOK = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/hami-webhook"
HAMI_DEVICE_PLUGIN = "/apis/apps/v1/namespaces/kube-system/daemonsets/hami-device-plugin"
HAMI_SCHEDULER = "/apis/apps/v1/namespaces/kube-system/deployments/hami-scheduler"
NVDP_DAEMONSET = "/apis/apps/v1/namespaces/nvidia-device-plugin/daemonsets/nvidia-device-plugin"
OPERATOR_POLICY = "/apis/nvidia.com/v1/clusterpolicies/cluster-policy"


@pytest.fixture
def bench(kubeapi, tmp_path) -> SiteBench:
    missing = [name for name, _chart in REAL_CHARTS.values() if not (CHARTS / name).is_file()]
    if missing:
        pytest.skip(f"the real charts {', '.join(missing)} are not in {CHARTS} (../shared/upstream, not on a user's clone)")
    kubeapi.admin.set_version("v1.31.2")
    kubeapi.admin.set_ready_controller(True)
    return SiteBench(kubeapi, tmp_path)


def run(bench: SiteBench, stacks: dict[str, str] | None = None, check: bool = False, **extra: t.Any):
    """facts.yml and cluster.yml with the real charts; ``stacks``: a node's own kubegpu_device_plugin."""
    for node in bench.host_vars:
        bench.host_vars[node] = {"kubegpu_device_plugin": stacks[node]} if stacks and node in stacks else {}
    charts = {
        f"{role}_{key}": value
        for role, (archive, version) in REAL_CHARTS.items()
        for key, value in {"chart_ref": str(CHARTS / archive), "chart_version": version, "chart_repo_url": ""}.items()
    }
    return bench.run("facts.yml", "cluster.yml", extra_vars={**charts, **extra}, check=check)


def releases(helm) -> dict[str, str]:
    """``namespace/name`` to chart (``name-version``), as helm records them."""
    listed = helm("list", "-A", "-o", "json", json_output=True)
    return {f"{entry['namespace']}/{entry['name']}": entry["chart"] for entry in listed}


def real_writes(kubeapi) -> list[str]:
    return [f"{entry['method']} {entry['path']}" for entry in writes(kubeapi) if entry["query"].get("dryRun") != "All"]


def node_stacks(kubeapi) -> dict[str, str]:
    nodes = get_object(kubeapi, "/api/v1/nodes")["items"]
    return {node["metadata"]["name"]: node["metadata"]["labels"].get("kubegpu.io/device-stack") for node in nodes}


def test_a_moved_node_group_keeps_the_stack_others_use_then_stacks_no_node_uses_are_removed_before_the_new_one(
    bench, kubeapi, helm
):
    """One run per step: HAMi on all three nodes; gpu-node-3 moves to NVIDIA's device plugin (HAMi stays for the
    other two); every node moves to the GPU Operator, in check mode (reports both removals, writes nothing), for
    real (HAMi and the device plugin removed, each before the operator's first write), then again (no change)."""
    first = run(bench)  # the default stack: HAMi
    assert first.rc == 0, first.failures or first.explain()
    assert releases(helm) == {"kube-system/hami": "hami-2.10.0"}
    plugin = get_object(kubeapi, HAMI_DEVICE_PLUGIN)
    assert plugin is not None and get_object(kubeapi, HAMI_WEBHOOK) is not None

    moved = run(bench, {"gpu-node-3": "nvidia_device_plugin"})
    assert moved.rc == 0, moved.failures or moved.explain()
    assert releases(helm) == {
        "kube-system/hami": "hami-2.10.0",
        "nvidia-device-plugin/nvidia-device-plugin": "nvidia-device-plugin-0.20.0",
    }
    kept = get_object(kubeapi, HAMI_DEVICE_PLUGIN)
    assert kept["metadata"]["uid"] == plugin["metadata"]["uid"], "HAMi's device plugin was replaced"
    assert get_object(kubeapi, HAMI_WEBHOOK) is not None
    assert not [name for name in moved.changed if "Uninstall" in name or "Delete" in name], moved.changed
    assert node_stacks(kubeapi) == {
        "gpu-node-1": "vgpu_scheduler",
        "gpu-node-2": "vgpu_scheduler",
        "gpu-node-3": "nvidia_device_plugin",
    }
    nvdp = get_object(kubeapi, NVDP_DAEMONSET)["spec"]["template"]["spec"]
    assert nvdp["nodeSelector"]["kubegpu.io/device-stack"] == "nvidia_device_plugin"
    assert kept["spec"]["template"]["spec"]["nodeSelector"]["kubegpu.io/device-stack"] == "vgpu_scheduler"

    kubeapi.admin.reset_counters()
    check = run(bench, check=True, kubegpu_device_plugin="gpu_operator")
    assert check.rc == 0, check.failures or check.explain()
    for task, chart in (
        ("Uninstall the vGPU scheduler release", "hami-2.10.0"),
        ("Uninstall the NVIDIA device plugin release", "nvidia-device-plugin-0.20.0"),
    ):
        removal = check.task(task).result
        assert removal["changed"] and removal["action"] == "uninstalled", removal
        assert removal["diff"]["before"]["chart"] == chart, removal["diff"]
    assert check.task("Install or upgrade the GPU Operator release").result["action"] == "installed"
    assert real_writes(kubeapi) == [], "check mode wrote"
    assert len(releases(helm)) == 2 and get_object(kubeapi, HAMI_WEBHOOK) is not None

    kubeapi.admin.reset_counters()
    operator = run(bench, kubegpu_device_plugin="gpu_operator")
    assert operator.rc == 0, operator.failures or operator.explain()
    assert releases(helm) == {"gpu-operator/gpu-operator": "gpu-operator-v26.7.0"}
    for gone in (HAMI_WEBHOOK, HAMI_DEVICE_PLUGIN, HAMI_SCHEDULER, NVDP_DAEMONSET):
        assert get_object(kubeapi, gone) is None, f"{gone} is left after its release was removed"
    assert get_object(kubeapi, OPERATOR_POLICY) is not None
    assert set(node_stacks(kubeapi).values()) == {"gpu_operator"}
    # both device plugins were deleted before the operator's release wrote its first object in its namespace
    order = real_writes(kubeapi)
    operator_first = next(index for index, write in enumerate(order) if "/namespaces/gpu-operator/" in write)
    for plugin_path in (HAMI_DEVICE_PLUGIN, NVDP_DAEMONSET):
        assert order.index(f"DELETE {plugin_path}") < operator_first, order

    kubeapi.admin.reset_counters()
    again = run(bench, kubegpu_device_plugin="gpu_operator")
    assert again.rc == 0 and again.changed == [], (again.changed, again.failures)
    assert real_writes(kubeapi) == []


def test_a_same_named_release_of_another_chart_is_refused_naming_it_before_any_change(bench, kubeapi, helm):
    # a release called hami in kube-system that is not HAMi: NVIDIA's device plugin chart under that name
    helm("install", "hami", str(CHARTS / REAL_CHARTS["nvidia_device_plugin"][0]), "-n", "kube-system")
    before = node_stacks(kubeapi)
    kubeapi.admin.reset_counters()
    refused = run(bench, kubegpu_device_plugin="nvidia_device_plugin")
    assert refused.rc != 0
    assert "release hami in namespace kube-system is of chart nvidia-device-plugin-0.20.0, not hami or vgpu" in refused.message, (
        refused.failures
    )
    assert real_writes(kubeapi) == [], "something changed before the refusal"
    assert node_stacks(kubeapi) == before
    assert releases(helm) == {"kube-system/hami": "nvidia-device-plugin-0.20.0"}
