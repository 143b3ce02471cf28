"""docs/dra.md against the real artifacts it describes.

Real: the NVIDIA DRA driver chart 0.4.1 (../shared/upstream/charts, rendered by real helm for Kubernetes 1.35 serving
resource.k8s.io/v1, and for 1.31), the Kubernetes 1.35 OpenAPI schemas (``kubernetes-validate``, strict, as
``kubectl apply --validate=strict``), and a real CEL implementation (cel-python, through the test API server's DRA
selector evaluation, tests/support/kubeapi/dra.py) on devices published as the driver publishes them
(cmd/gpu-kubelet-plugin/deviceinfo.go: ``type``, ``productName``, ``memory`` capacity in bytes).
"""

from __future__ import annotations

import re
import typing as t

import pytest
import yaml

from tests.support import upstream
from tests.support.adhoc import REPO_ROOT
from tests.support.kubeapi import dra as dra_double

DOC = REPO_ROOT / "docs" / "dra.md"
CHART = "dra-driver-nvidia-gpu-0.4.1.tgz"


def yaml_blocks() -> list[dict[str, t.Any]]:
    text = DOC.read_text()
    return [doc for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) for doc in yaml.safe_load_all(block) if doc]


def kube_objects() -> list[dict[str, t.Any]]:
    return [doc for doc in yaml_blocks() if "apiVersion" in doc and "kind" in doc]


def walk(data: t.Any, key: str) -> list[t.Any]:
    """Every value of ``key`` anywhere in ``data``."""
    if isinstance(data, dict):
        return [*([data[key]] if key in data else []), *(found for value in data.values() for found in walk(value, key))]
    if isinstance(data, list):
        return [found for value in data for found in walk(value, key)]
    return []


@pytest.fixture(scope="module")
def device_classes() -> dict[str, dict[str, t.Any]]:
    docs = upstream.helm_template(
        upstream.chart(CHART),
        {"gpuResourcesEnabledOverride": True},
        release="dra-driver-nvidia-gpu",
        namespace="dra-driver-nvidia-gpu",
        kube_version="v1.35.0",
        api_versions=["resource.k8s.io/v1"],
    )
    return {doc["metadata"]["name"]: doc for doc in upstream.named(docs, "DeviceClass")}


def gpu(product: str, memory: str) -> dict[str, t.Any]:
    """A device as the DRA driver publishes a GPU, as dra_double.node_devices gives it."""
    attributes = {"type": {"string": "gpu"}, "productName": {"string": product}}
    return {
        "driver": "gpu.nvidia.com",
        "pool": "node",
        "name": "gpu-0",
        "device": {"name": "gpu-0", "attributes": attributes, "capacity": {"memory": {"value": memory}}},
    }


def test_the_examples_are_valid_kubernetes_1_35_objects_on_the_charts_device_classes(device_classes):
    """Every object in the page passes a strict validation at 1.35, and asks for DeviceClasses the chart installs;
    the chart's gpu.nvidia.com and mig.nvidia.com select what the page says, and gpu.nvidia.com declares
    extendedResourceName nvidia.com/gpu on resource.k8s.io/v1."""
    objects = kube_objects()
    kinds = sorted({doc["kind"] for doc in objects})
    assert kinds == ["Job", "Namespace", "Pod", "ResourceClaimTemplate"], kinds
    # a namespace an example uses is created on the page before it (openfaas-fn: OpenFaaS' own, created by its install)
    for index, doc in enumerate(objects):
        namespace = doc["metadata"].get("namespace")
        created = {earlier["metadata"]["name"] for earlier in objects[:index] if earlier["kind"] == "Namespace"}
        assert namespace in (None, "openfaas-fn") or namespace in created, (doc["kind"], doc["metadata"])
    assert upstream.schema_errors(objects, "v1.35.0") == []
    used = set(walk(objects, "deviceClassName"))
    assert used == {"gpu.nvidia.com"} and used <= set(device_classes)
    text = DOC.read_text()
    for name in ("gpu.nvidia.com", "mig.nvidia.com"):
        expression = device_classes[name]["spec"]["selectors"][0]["cel"]["expression"]
        assert f"`{expression}`" in text, (name, expression)
    assert device_classes["gpu.nvidia.com"]["spec"]["extendedResourceName"] == "nvidia.com/gpu"
    # each pod-level claim is used by a container, and each template it names is in the page
    templates = {doc["metadata"]["name"] for doc in objects if doc["kind"] == "ResourceClaimTemplate"}
    for doc in objects:
        pod_claims = walk(doc, "resourceClaims")
        for claims in pod_claims:
            assert {claim["resourceClaimTemplateName"] for claim in claims} <= templates
            assert {claim["name"] for claim in claims} == {c["name"] for used in walk(doc, "claims") for c in used}


def test_the_pages_cel_selectors_compile_and_choose_what_they_say(device_classes):
    """The memory selector of the Job's template takes an 80 GiB H100 and not a 16 GiB V100; the model selector of
    the text takes only its model; each alongside the chart's own gpu.nvidia.com selector."""
    objects = kube_objects()
    expressions = [selector["cel"]["expression"].strip() for selectors in walk(objects, "selectors") for selector in selectors]
    inline = re.findall(r"`(device\.attributes\[[^`]*)`", DOC.read_text())
    assert expressions and inline
    for expression in [*expressions, *inline]:
        assert dra_double.compile_error(expression) is None, expression
    gpu_class = device_classes["gpu.nvidia.com"]["spec"]["selectors"][0]["cel"]["expression"]
    h100, v100 = gpu("NVIDIA H100 80GB HBM3", "80Gi"), gpu("Tesla V100-SXM2-16GB", "16Gi")
    (memory,) = expressions
    assert dra_double.selects([gpu_class, memory], h100) and not dra_double.selects([gpu_class, memory], v100)
    (model,) = [expression for expression in inline if "productName" in expression]
    a100 = gpu("NVIDIA A100-SXM4-40GB", "40Gi")
    assert dra_double.selects([gpu_class, model], a100) and not dra_double.selects([gpu_class, model], h100)


def test_the_chart_refuses_kubernetes_below_1_32_as_the_page_says():
    with pytest.raises(upstream.RenderError, match="kubeVersion"):
        upstream.helm_template(
            upstream.chart(CHART),
            {"gpuResourcesEnabledOverride": True},
            release="dra-driver-nvidia-gpu",
            namespace="dra-driver-nvidia-gpu",
            kube_version="v1.31.14",
        )
    assert "refuses clusters below 1.32" in DOC.read_text()
