"""The test API server refuses what a real API server refuses, judged by real kubectl and the Python client.

Three layers, as in kube-apiserver: typed decoding of built-in kinds against the Kubernetes schemas
of the reported version (400 BadRequest; unknown fields by ``fieldValidation``), field rules
enforced in code (422 Invalid with the real field paths), and CRD ``openAPIV3Schema`` pruning
and validation for custom resources. Every refusal is also checked to have stored nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException

MANIFESTS = Path(__file__).resolve().parents[1] / "support" / "manifests"
PROFILE_CRD = yaml.safe_load((MANIFESTS / "openfaas-profile-crd.yaml").read_text())
GPUMEM_WITH_UNICODE_MINUS = "nvidia.com/gpumem\u2212percentage"


def pod(name: str = "cuda", **spec) -> dict:
    container = {"name": "main", "image": "nvidia/cuda:12.4.1-base-ubuntu22.04", **spec.pop("container", {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [container], **spec},
    }


def node_with_taints(*taints: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-node-1"}, "spec": {"taints": list(taints)}}


def write(tmp_path: Path, obj: dict) -> str:
    path = tmp_path / f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(obj, allow_unicode=True))
    return str(path)


def refused(kubectl, *args: str) -> str:
    result = kubectl(*args, check=False)
    assert result.returncode != 0, f"kubectl {' '.join(args)} was accepted:\n{result.stdout}"
    return result.stderr


def pods(kubectl) -> list[str]:
    return kubectl("get", "pods", "-o", "name").stdout.split()


def taints(kubectl) -> list:
    return kubectl("get", "node", "gpu-node-1", "-o", "json", json_output=True)["spec"].get("taints", [])


@pytest.fixture
def api_client(kubeapi):
    api = config.new_client_from_config(config_file=str(kubeapi.kubeconfig))
    yield api
    api.close()


# -- a Pod whose nodeSelector value is a boolean: 400 from the decoder ------------------------------


def test_kubectl_create_and_server_side_apply_refuse_a_boolean_node_selector_value(kubectl, tmp_path):
    manifest = write(tmp_path, pod(nodeSelector={"gpu": True}))
    created = refused(kubectl, "create", "-f", manifest)
    assert "Error from server (BadRequest)" in created
    assert (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal bool into Go struct field '
        "PodSpec.spec.nodeSelector of type string" in created
    )
    applied = refused(kubectl, "apply", "--server-side", "-f", manifest)
    assert "Error from server (BadRequest)" in applied
    assert "failed to create typed patch object (/v1, Kind=Pod): .spec.nodeSelector.gpu: expected string" in applied
    assert pods(kubectl) == []


def test_python_client_create_refuses_a_boolean_node_selector_value(api_client):
    """The typed CoreV1Api refuses a boolean itself (pydantic), so the dynamic client sends it, as untyped callers do."""
    pods_api = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="Pod")
    with pytest.raises(ApiException) as error:
        pods_api.create(body=pod(nodeSelector={"gpu": True}), namespace="default")
    assert error.value.status == 400
    status = json.loads(error.value.body)
    assert status["reason"] == "BadRequest"
    assert "spec.nodeSelector" in status["message"]
    assert pods_api.get(namespace="default").items == []


def test_quoted_node_selector_value_is_accepted(kubectl, tmp_path):
    kubectl("apply", "--server-side", "-f", write(tmp_path, pod(nodeSelector={"gpu": "true"})))
    assert kubectl("get", "pod", "cuda", "-o", "json", json_output=True)["spec"]["nodeSelector"] == {"gpu": "true"}


# -- node taints: 422 with the real field paths and wording -----------------------------------------


@pytest.mark.parametrize(
    ("taint_list", "expected"),
    [
        ([{"key": "bad key", "effect": "NoSchedule"}], 'spec.taints[0].key: Invalid value: "bad key": name part must consist of'),
        (
            [{"key": "nvidia.com/gpu", "effect": "Bogus"}],
            'spec.taints[0].effect: Unsupported value: "Bogus": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
        ),
        (
            [{"key": "nvidia.com/gpu", "value": "a", "effect": "NoSchedule"}, {"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
            'spec.taints[1]: Duplicate value: core.Taint{Key:"nvidia.com/gpu", Value:"", Effect:"NoSchedule", TimeAdded:<nil>}: '
            "taints must be unique by key and effect pair",
        ),
    ],
    ids=["key-with-space", "bogus-effect", "duplicate-key-and-effect"],
)
def test_kubectl_patch_and_apply_refuse_invalid_node_taints(kubectl, tmp_path, taint_list, expected):
    patched = refused(
        kubectl, "patch", "node", "gpu-node-1", "--type", "merge", "-p", json.dumps({"spec": {"taints": taint_list}})
    )
    assert (
        'Error from server (Invalid): nodes "gpu-node-1" is invalid: ' in patched or 'The Node "gpu-node-1" is invalid' in patched
    )
    assert expected in patched
    applied = refused(
        kubectl, "apply", "--server-side", "--force-conflicts", "-f", write(tmp_path, node_with_taints(*taint_list))
    )
    assert expected in applied
    assert taints(kubectl) == []


def test_python_client_patch_node_refuses_duplicate_taints_with_causes(api_client):
    core = client.CoreV1Api(api_client)
    duplicate = [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}, {"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    with pytest.raises(ApiException) as error:
        core.patch_node("gpu-node-1", {"spec": {"taints": duplicate}})
    assert error.value.status == 422
    status = json.loads(error.value.body)
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueDuplicate",
            "message": 'Duplicate value: core.Taint{Key:"nvidia.com/gpu", Value:"", Effect:"NoSchedule", TimeAdded:<nil>}: '
            "taints must be unique by key and effect pair",
            "field": "spec.taints[1]",
        }
    ]
    assert core.read_node("gpu-node-1").spec.taints is None


def test_same_taint_key_with_two_effects_is_accepted(kubectl):
    both = [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}, {"key": "nvidia.com/gpu", "effect": "NoExecute"}]
    kubectl("patch", "node", "gpu-node-1", "--type", "merge", "-p", json.dumps({"spec": {"taints": both}}))
    assert [t["effect"] for t in taints(kubectl)] == ["NoSchedule", "NoExecute"]


# -- container resource names and quantities -----------------------------------------------------


def test_kubectl_create_refuses_a_resource_name_with_a_unicode_minus(kubectl, tmp_path):
    manifest = write(tmp_path, pod(container={"resources": {"limits": {GPUMEM_WITH_UNICODE_MINUS: 50}}}))
    created = refused(kubectl, "create", "-f", manifest)
    assert 'Error from server (Invalid): error when creating "' in created or 'The Pod "cuda" is invalid' in created
    assert (
        f'spec.containers[0].resources.limits[{GPUMEM_WITH_UNICODE_MINUS}]: Invalid value: "{GPUMEM_WITH_UNICODE_MINUS}"'
        in created
    )
    assert "name part must consist of alphanumeric characters" in created
    applied = refused(kubectl, "apply", "--server-side", "-f", manifest)
    assert f"spec.containers[0].resources.limits[{GPUMEM_WITH_UNICODE_MINUS}]" in applied
    assert pods(kubectl) == []


def test_python_client_refuses_a_resource_name_with_a_unicode_minus(api_client):
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as error:
        core.create_namespaced_pod("default", pod(container={"resources": {"limits": {GPUMEM_WITH_UNICODE_MINUS: "50"}}}))
    assert error.value.status == 422
    causes = json.loads(error.value.body)["details"]["causes"]
    assert [c["field"] for c in causes] == [f"spec.containers[0].resources.limits[{GPUMEM_WITH_UNICODE_MINUS}]"]


@pytest.mark.parametrize(
    ("resources", "field", "message"),
    [
        ({"limits": {"nvidia.com/gpu": "1.5"}}, "spec.containers[0].resources.limits[nvidia.com/gpu]", "must be an integer"),
        ({"limits": {"cpu": "-1"}}, "spec.containers[0].resources.limits[cpu]", "must be greater than or equal to 0"),
        ({"limits": {"gpu": "1"}}, "spec.containers[0].resources.limits[gpu]", "must be a standard resource for containers"),
        (
            {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
            "spec.containers[0].resources.requests",
            "must be less than or equal to cpu limit",
        ),
        (
            {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}},
            "spec.containers[0].resources.requests",
            "must be equal to nvidia.com/gpu limit",
        ),
    ],
    ids=["fractional-gpu", "negative-cpu", "unqualified-name", "request-over-limit", "gpu-request-not-limit"],
)
def test_invalid_container_resources_are_refused_with_the_field(api_client, resources, field, message):
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as error:
        core.create_namespaced_pod("default", pod(container={"resources": resources}))
    assert error.value.status == 422
    causes = json.loads(error.value.body)["details"]["causes"]
    assert any(c["field"] == field and message in c["message"] for c in causes), causes


def test_hami_and_standard_resources_are_accepted(kubectl, tmp_path):
    resources = {
        "limits": {"nvidia.com/gpu": 1, "nvidia.com/gpumem-percentage": 50, "nvidia.com/gpucores": 30, "cpu": "500m"},
        "requests": {"cpu": "250m", "memory": "1Gi"},
    }
    kubectl("create", "-f", write(tmp_path, pod(container={"resources": resources})))
    stored = kubectl("get", "pod", "cuda", "-o", "json", json_output=True)["spec"]["containers"][0]["resources"]
    assert stored["limits"] == {
        "nvidia.com/gpu": "1",
        "nvidia.com/gpumem-percentage": "50",
        "nvidia.com/gpucores": "30",
        "cpu": "500m",
    }


def test_unparsable_quantity_is_a_decode_error(api_client):
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(api_client).create_namespaced_pod("default", pod(container={"resources": {"limits": {"cpu": "lots"}}}))
    assert error.value.status == 400
    assert "quantities must match the regular expression" in json.loads(error.value.body)["message"]


# -- tolerations and node affinity ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Equals"}]},
            "spec.tolerations[0].operator",
            'Unsupported value: "Equals"',
        ),
        (
            {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoRun"}]},
            "spec.tolerations[0].effect",
            'Unsupported value: "NoRun"',
        ),
        (
            {"tolerations": [{"operator": "Equal", "value": "x"}]},
            "spec.tolerations[0].operator",
            "operator must be Exists when `key` is empty",
        ),
        (
            {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "value": "x"}]},
            "spec.tolerations[0].operator",
            "value must be empty when `operator` is 'Exists'",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Equals", "values": ["on"]}]}]
                        }
                    }
                }
            },
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator",
            "not a valid selector operator",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In"}]}]
                        }
                    }
                }
            },
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values",
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        ),
    ],
    ids=[
        "toleration-operator",
        "toleration-effect",
        "empty-key-equal",
        "exists-with-value",
        "affinity-operator",
        "in-without-values",
    ],
)
def test_invalid_tolerations_and_node_affinity_are_refused(api_client, spec, field, message):
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(api_client).create_namespaced_pod("default", pod(**spec))
    assert error.value.status == 422
    causes = json.loads(error.value.body)["details"]["causes"]
    assert any(c["field"] == field and message in c["message"] for c in causes), causes


def test_workload_pod_templates_are_checked_too(api_client):
    template = {
        "metadata": {"labels": {"app": "p"}},
        "spec": pod(nodeSelector={"gpu": "on"}, tolerations=[{"key": "k", "operator": "Bad"}])["spec"],
    }
    body = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "plugin"},
        "spec": {"selector": {"matchLabels": {"app": "p"}}, "template": template},
    }
    with pytest.raises(ApiException) as error:
        client.AppsV1Api(api_client).create_namespaced_daemon_set("kube-system", body)
    assert error.value.status == 422
    assert json.loads(error.value.body)["details"]["causes"][0]["field"] == "spec.template.spec.tolerations[0].operator"


# -- fieldValidation: Strict, Warn, Ignore ------------------------------------------------------------


def test_kubectl_strict_refuses_an_unknown_field_and_warn_stores_without_it(kubectl, tmp_path):
    manifest = write(tmp_path, pod(container={"gpus": 1}))
    created = refused(kubectl, "create", "-f", manifest)
    assert "Error from server (BadRequest)" in created
    assert 'strict decoding error: unknown field "spec.containers[0].gpus"' in created
    applied = refused(kubectl, "apply", "--server-side", "-f", manifest)
    assert '.spec.containers[name="main"].gpus: field not declared in schema' in applied
    assert pods(kubectl) == []

    warned = kubectl("create", "--validate=warn", "-f", manifest)
    assert 'unknown field "spec.containers[0].gpus"' in warned.stderr
    assert "gpus" not in kubectl("get", "pod", "cuda", "-o", "json", json_output=True)["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("directive", "code", "warning"), [("Strict", 400, None), ("Warn", 201, True), ("Ignore", 201, False), ("", 201, True)]
)
def test_field_validation_directives_over_http(kubeapi, directive, code, warning):
    query = f"?fieldValidation={directive}" if directive else ""
    body = pod(container={"gpus": 1})
    answer = requests.post(f"{kubeapi.url}/api/v1/namespaces/default/pods{query}", json=body, timeout=5)
    assert answer.status_code == code, answer.text
    if code == 400:
        assert answer.json()["message"].endswith('strict decoding error: unknown field "spec.containers[0].gpus"')
        return
    assert ("Warning" in answer.headers) is warning
    if warning:
        assert answer.headers["Warning"] == '299 - "unknown field \\"spec.containers[0].gpus\\""'
    assert "gpus" not in answer.json()["spec"]["containers"][0]


def test_unsupported_field_validation_value_is_a_bad_request(kubeapi):
    answer = requests.post(f"{kubeapi.url}/api/v1/namespaces/default/pods?fieldValidation=Loose", json=pod(), timeout=5)
    assert answer.status_code == 400
    assert 'Unsupported value: "Loose"' in answer.json()["message"]


def test_schema_follows_the_reported_version(kubeapi):
    """resourceClaims in a container's resources exist from Kubernetes 1.26: a 1.25 server does not know them."""
    body = pod(container={"resources": {"claims": [{"name": "gpu"}]}})
    kubeapi.admin.set_version("v1.25.4")
    old = requests.post(f"{kubeapi.url}/api/v1/namespaces/default/pods?fieldValidation=Strict", json=body, timeout=5)
    assert old.status_code == 400
    assert 'unknown field "spec.containers[0].resources.claims"' in old.json()["message"]
    kubeapi.admin.set_version("v1.31.2")
    assert (
        requests.post(f"{kubeapi.url}/api/v1/namespaces/default/pods?fieldValidation=Strict", json=body, timeout=5).status_code
        == 201
    )


# -- the Profile CRD: schema validation and pruning ---------------------------------------------------


def profile(name: str, **spec) -> dict:
    return {"apiVersion": "openfaas.com/v1", "kind": "Profile", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def node_affinity(values: list) -> dict:
    term = {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": values}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


VALUES_FIELD = (
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values[0]"
)


def test_profile_with_a_boolean_node_affinity_value_is_refused(kubectl, tmp_path, api_client):
    kubectl("apply", "--server-side", "-f", str(MANIFESTS / "openfaas-profile-crd.yaml"))
    manifest = write(tmp_path, profile("gpu", affinity=node_affinity([True])))
    applied = refused(kubectl, "apply", "--server-side", "-f", manifest)
    assert f'{VALUES_FIELD}: Invalid value: "boolean": {VALUES_FIELD} in body must be of type string: "boolean"' in applied
    custom = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as error:
        custom.create_namespaced_custom_object(
            "openfaas.com", "v1", "default", "profiles", profile("gpu", affinity=node_affinity([True]))
        )
    assert error.value.status == 422
    assert json.loads(error.value.body)["details"]["causes"][0]["field"] == VALUES_FIELD
    assert custom.list_namespaced_custom_object("openfaas.com", "v1", "default", "profiles")["items"] == []

    kubectl("apply", "--server-side", "-f", write(tmp_path, profile("gpu", affinity=node_affinity(["true"]))))
    stored = kubectl("get", "profile", "gpu", "-o", "json", json_output=True)
    assert stored["spec"]["affinity"] == node_affinity(["true"])


def test_profile_unknown_spec_field_is_pruned_or_refused_by_field_validation(kubectl, tmp_path, api_client):
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(PROFILE_CRD)
    typo = profile("gpu", runtimeClassName="nvidia", tolerationz=[{"key": "nvidia.com/gpu", "operator": "Exists"}])
    strict = refused(kubectl, "apply", "--server-side", "-f", write(tmp_path, typo))
    assert 'strict decoding error: unknown field "spec.tolerationz"' in strict

    custom = client.CustomObjectsApi(api_client)
    created, code, headers = custom.create_namespaced_custom_object_with_http_info(
        "openfaas.com", "v1", "default", "profiles", typo
    )
    assert code == 201
    assert headers["Warning"] == '299 - "unknown field \\"spec.tolerationz\\""'
    assert created["spec"] == {"runtimeClassName": "nvidia"}
    assert kubectl("get", "profile", "gpu", "-o", "json", json_output=True)["spec"] == {"runtimeClassName": "nvidia"}


def test_profile_missing_spec_is_required(api_client):
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(PROFILE_CRD)
    body = profile("gpu")
    del body["spec"]
    with pytest.raises(ApiException) as error:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object("openfaas.com", "v1", "default", "profiles", body)
    assert error.value.status == 422
    assert json.loads(error.value.body)["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec"}
    ]


def test_profile_apply_with_an_unknown_field_under_ignore_owns_only_what_is_stored(kubeapi, api_client):
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(PROFILE_CRD)
    typo = profile("gpu", runtimeClassName="nvidia", tolerationz=[])
    answer = requests.patch(
        f"{kubeapi.url}/apis/openfaas.com/v1/namespaces/default/profiles/gpu?fieldManager=kubegpu&fieldValidation=Ignore",
        data=json.dumps(typo),
        headers={"Content-Type": "application/apply-patch+yaml"},
        timeout=5,
    )
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored["spec"] == {"runtimeClassName": "nvidia"}
    assert "Warning" not in answer.headers
    assert stored["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"] == {"f:runtimeClassName": {}}
