"""The vgpu_scheduler role through the real ``ansible-playbook``, the real helm (v4, .cache/bin) and the real
kubegpu.core modules, installing the real charts of ../shared/upstream/charts (HAMi 2.10.0; the legacy 4paradigm
``vgpu`` 2.0.0 on a cluster older than 1.28, the only one it works on) into the test API server (three GPU nodes,
ready controller on): check mode, install, re-run without change, and the preflight refusals. Every assertion on the
outcome reads the objects the server stored or helm's own record of the release; what the charts render for each
option and Kubernetes version is tests/integration/test_render_vgpu_scheduler.py's.
"""

from __future__ import annotations

import pytest
import yaml

from tests.support import upstream
from tests.support.kube_modules import get_object, label_nodes, writes
from tests.support.role_runs import run_role

NODES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
VGPU_SELECTOR = {"gpu": "on", "kubegpu.io/device-stack": "vgpu_scheduler"}
GPU_TAINT_TOLERATION = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
NVIDIA_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
HAMI_KUBE = "v1.31.4"
LEGACY_KUBE = "v1.25.4"


@pytest.fixture
def cluster(kubeapi):
    """The reset test server as a kubeadm v1.31.4 cluster with a working controller."""
    for chart in ("hami-2.10.0.tgz", "vgpu-2.0.0.tgz"):
        upstream.chart(chart)  # or skip, saying the upstream artifacts are absent
    kubeapi.admin.set_version(HAMI_KUBE)
    kubeapi.admin.set_ready_controller(True)
    return kubeapi


def hosts(runtime="nvidia", **overrides):
    """Inventory hosts of the GPU group: every node's default runtime (overrides: host -> variables)."""
    return {name: {"kubegpu_default_runtime": runtime, **overrides.get(name.replace("-", "_"), {})} for name in NODES}


def pod_spec(kubeapi, path):
    stored = get_object(kubeapi, path)
    assert stored is not None, f"{path} was not stored"
    return stored["spec"]["template"]["spec"]


def vgpu_variables(chart, **more):
    """The real chart ``chart`` (a package of ../shared/upstream/charts; a path needs no repository URL)."""
    return {
        "vgpu_scheduler_chart_ref": str(upstream.CHARTS / chart),
        "vgpu_scheduler_chart_version": chart.rsplit("-", 1)[1].removesuffix(".tgz"),
        "vgpu_scheduler_nodes": ["gpu-node-1", "gpu-node-2"],
        "vgpu_scheduler_node_selector": VGPU_SELECTOR,
        **more,
    }


def test_vgpu_scheduler_hami_tag_from_version_selector_and_tolerations_three_ways(cluster, helm):
    label_nodes(cluster, ["gpu-node-1", "gpu-node-2"], {"gpu": "on", "kubegpu.io/device-stack": "vgpu_scheduler"})
    kwargs = {"hosts": hosts(), "variables": vgpu_variables("hami-2.10.0.tgz")}
    check = run_role(cluster, "vgpu_scheduler", check=True, diff=True, **kwargs)
    assert check.rc == 0, check.message or check.stdout
    planned = check.task("Install or upgrade the vGPU scheduler release").result
    assert planned["changed"] and planned["action"] == "installed"
    kube_scheduler = {"image": {"registry": "registry.k8s.io", "repository": "kube-scheduler", "tag": HAMI_KUBE}}
    assert planned["diff"]["after"]["values"]["scheduler"]["kubeScheduler"] == kube_scheduler
    assert writes(cluster) == [] and helm("list", "-A", "-o", "json", json_output=True) == []

    real = run_role(cluster, "vgpu_scheduler", **kwargs)
    assert real.rc == 0, real.message or real.stdout
    stored = helm("get", "values", "hami", "-n", "kube-system", "-o", "json", json_output=True)
    assert stored["scheduler"] == {
        "kubeScheduler": kube_scheduler,
        "service": {"type": "NodePort", "schedulerPort": 31998},
    }
    assert stored["devicePlugin"]["deviceSplitCount"] == 10
    scheduler = pod_spec(cluster, "/apis/apps/v1/namespaces/kube-system/deployments/hami-scheduler")
    assert scheduler["containers"][0]["image"] == f"registry.k8s.io/kube-scheduler:{HAMI_KUBE}"
    assert scheduler["containers"][1]["image"] == "docker.io/projecthami/hami:v2.10.0", "HAMi's own image keeps its registry"
    plugin = pod_spec(cluster, "/apis/apps/v1/namespaces/kube-system/daemonsets/hami-device-plugin")
    assert plugin["nodeSelector"] == VGPU_SELECTOR
    assert plugin["tolerations"] == [GPU_TAINT_TOLERATION, NVIDIA_TOLERATION]
    device_config = get_object(cluster, "/api/v1/namespaces/kube-system/configmaps/hami-scheduler-device")
    assert yaml.safe_load(device_config["data"]["device-config.yaml"])["nvidia"]["deviceSplitCount"] == 10
    service = get_object(cluster, "/api/v1/namespaces/kube-system/services/hami-scheduler")
    assert service["spec"]["type"] == "NodePort" and service["spec"]["ports"][0]["nodePort"] == 31998
    daemonset = get_object(cluster, "/apis/apps/v1/namespaces/kube-system/daemonsets/hami-device-plugin")
    assert daemonset["status"]["desiredNumberScheduled"] == 2, "the ready controller places it on the two gpu=on nodes"

    cluster.admin.reset_counters()
    again = run_role(cluster, "vgpu_scheduler", **kwargs)
    assert again.rc == 0 and again.changed == [], (again.changed, again.message)
    assert writes(cluster) == []


def test_vgpu_scheduler_legacy_chart_image_tag_key_registry_and_defaults(cluster, helm):
    cluster.admin.set_version(LEGACY_KUBE)
    label_nodes(cluster, ["gpu-node-1", "gpu-node-2"], {"gpu": "on"})
    variables = vgpu_variables(
        "vgpu-2.0.0.tgz",
        vgpu_scheduler_chart_flavor="vgpu",
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
    assert stored["scheduler"]["kubeScheduler"]["imageTag"] == LEGACY_KUBE
    assert "image" not in stored["scheduler"]["kubeScheduler"] or isinstance(stored["scheduler"]["kubeScheduler"]["image"], str)
    scheduler = pod_spec(cluster, "/apis/apps/v1/namespaces/kube-system/deployments/vgpu-scheduler")
    kube_scheduler, extender = scheduler["containers"]
    assert kube_scheduler["image"] == f"mirror.test:5000/kube-scheduler:{LEGACY_KUBE}"
    assert kube_scheduler["command"][:2] == ["kube-scheduler", "--config=/config/config.yaml"], "a 1.25 tag: the new arguments"
    assert extender["image"] == "mirror.test:5000/4pdosc/k8s-vdevice:v2.3.8"
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
            {"variables": vgpu_variables("hami-2.10.0.tgz", vgpu_scheduler_nodes=["gpu-node-1", "gpu-node-9"])},
            ["no Node object for gpu-node-9"],
        ),
        id="unknown-node",
    ),
    pytest.param(
        (
            {"gpu-node-1": {"gpu": "on"}, "gpu-node-2": {"gpu": "on"}},
            {"variables": vgpu_variables("hami-2.10.0.tgz", vgpu_scheduler_default_memory=1024)},
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
    kwargs = {"hosts": hosts(), "variables": vgpu_variables("hami-2.10.0.tgz"), **overrides}
    run = run_role(cluster, "vgpu_scheduler", **kwargs)
    assert run.rc != 0 and run.failed, run.stdout
    for word in words:
        assert word in run.message, (word, run.message)
    assert writes(cluster) == []
    assert helm("list", "-A", "-o", "json", json_output=True) == []
