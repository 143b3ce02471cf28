"""tests/support/upstream.py, the render harness the chart tests judge the roles with, held to the real chart
(nvidia-device-plugin 0.20.0 from ../shared/upstream) and to the Kubernetes schemas: each rule must catch what it
is for, or the render tests built on it prove nothing."""

from __future__ import annotations

import copy

import pytest

from tests.support import upstream

NVDP = "nvidia-device-plugin-0.20.0.tgz"


def render(values=None, kube_version="v1.35.0"):
    return upstream.helm_template(
        upstream.chart(NVDP), values or {}, release="nvdp", namespace="kube-system", kube_version=kube_version
    )


def plugin_pod(docs):
    return dict(upstream.pod_templates(docs))["DaemonSet/nvdp-nvidia-device-plugin"]


def test_placement_names_the_untolerated_taint_and_the_unmet_selector():
    docs = render()
    gpu_node = upstream.node("n1", {"nvidia.com/gpu.present": "true"})
    assert upstream.placement_problem(plugin_pod(docs), gpu_node) is None, "the chart's own affinity label is enough"
    tainted = upstream.node("n1", {"nvidia.com/gpu.present": "true"}, [{"key": "gpu", "value": "on", "effect": "NoSchedule"}])
    assert '"key": "gpu"' in upstream.placement_problem(plugin_pod(docs), tainted)
    assert "required node affinity" in upstream.placement_problem(plugin_pod(docs), upstream.node("n1", {}))
    mps = dict(upstream.pod_templates(docs))["DaemonSet/nvdp-nvidia-device-plugin-mps-control-daemon"]
    assert "nvidia.com/mps.capable=true" in upstream.placement_problem(mps, gpu_node)


def test_tolerations_given_to_the_chart_reach_its_pods():
    docs = render({"tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]})
    tainted = upstream.node("n1", {"nvidia.com/gpu.present": "true"}, [{"key": "gpu", "value": "on", "effect": "NoSchedule"}])
    assert upstream.placement_problem(plugin_pod(docs), tainted) is None


@pytest.mark.parametrize("kube_version", upstream.KUBE_VERSIONS)
def test_schema_check_passes_the_real_render_and_refuses_an_unknown_field(kube_version):
    docs = render(kube_version=kube_version)
    assert upstream.schema_errors(docs, kube_version) == []
    broken = copy.deepcopy(docs)
    for doc in broken:
        if doc["kind"] == "DaemonSet":
            doc["spec"]["template"]["spec"]["hostIPCs"] = True
    errors = upstream.schema_errors(broken, kube_version)
    assert errors and all("hostIPCs" in error for error in errors), errors


def test_schema_check_refuses_a_kind_the_version_no_longer_serves():
    docs = [{"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "x"}, "spec": {}}]
    assert "not served by Kubernetes v1.35.0" in upstream.schema_errors(docs, "v1.35.0")[0]


def test_images_lists_every_container_including_init_containers():
    docs = render({"image": {"repository": "mirror.test:5000/nvidia/k8s-device-plugin"}})
    found = {image for _where, image in upstream.images(docs)}
    assert found == {"mirror.test:5000/nvidia/k8s-device-plugin:v0.20.0"}


def test_silent_keys_finds_a_key_the_chart_never_reads_and_only_that():
    values = {
        "nodeSelector": {"kubegpu.io/device-stack": "nvidia_device_plugin"},
        "defaultRuntime": "nvidia",
        "priorityClassName": "x",
    }
    assert upstream.silent_keys(render, values) == ["defaultRuntime"]


def test_nodes_after_gpu_labels_are_the_nodes_as_the_real_role_labels_and_taints_them(kubeapi):
    from tests.support.role_runs import GpuHost  # noqa: PLC0415

    hosts = {
        "node1": GpuHost("v100x2", "gpu-node-1", {"kubegpu_default_runtime": "nvidia"}),
        "node3": GpuHost("h100x8", "gpu-node-3", {"kubegpu_default_runtime": "runc"}),
    }
    variables = {"kubegpu_device_plugin": "nvidia_device_plugin", "kubegpu_gpu_taint_enabled": True}
    nodes = upstream.nodes_after_gpu_labels(kubeapi, hosts, variables)
    v100, h100 = nodes["gpu-node-1"], nodes["gpu-node-3"]
    assert v100["metadata"]["labels"]["gpu"] == "on" and "gpu" not in h100["metadata"]["labels"]
    assert h100["metadata"]["labels"]["kubegpu.io/device-stack"] == "nvidia_device_plugin"
    assert {"key": "gpu", "effect": "NoSchedule"}.items() <= v100["spec"]["taints"][0].items()
    plugin = plugin_pod(render())
    assert '"key": "gpu"' in upstream.placement_problem(plugin, v100), "the chart alone does not tolerate our taint"
