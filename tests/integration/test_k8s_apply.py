"""kubegpu.core.k8s_apply through Ansible against the test API server (server-side apply with
managedFields and conflicts, dryRun=All, discovery of CRDs, and its optional ready controller,
which gives workloads the status a healthy cluster would; see tests/support/kubeapi/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.kube_modules import get_object, run_kube_module, writes

MANIFESTS = Path(__file__).resolve().parents[1] / "support" / "manifests"
CRD = MANIFESTS / "openfaas-profile-crd.yaml"
PROFILE = MANIFESTS / "gpu-profile.yaml"
PROFILE_PATH = "/apis/openfaas.com/v1/namespaces/default/profiles/gpu"
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubegpu-test"}, "data": {"a": "1"}}
CM_PATH = "/api/v1/namespaces/default/configmaps/kubegpu-test"
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "smoke", "namespace": "default"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "smoke"}},
        "template": {
            "metadata": {"labels": {"app": "smoke"}},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/smoke:1"}]},
        },
    },
}


def _apply(kubeapi, args, **kwargs):
    return run_kube_module(kubeapi, "k8s_apply", args, **kwargs)


@pytest.mark.matrix
def test_configmap_check_mode_then_apply_then_no_change_then_update(kubeapi):
    args = {"definition": CONFIGMAP}
    check = _apply(kubeapi, args, check=True, diff=True)
    assert check.changed and check.result["objects"][0]["action"] == "created"
    assert [entry["query"].get("dryRun") for entry in writes(kubeapi)] == ["All"]
    assert get_object(kubeapi, CM_PATH) is None

    real = _apply(kubeapi, args, diff=True)
    assert real.changed and real.result["objects"][0]["action"] == "created"
    live = get_object(kubeapi, CM_PATH)
    assert live["data"] == {"a": "1"}
    assert [field["manager"] for field in live["metadata"]["managedFields"]] == ["kubegpu"]
    after = real.result["diff"]["after"]["ConfigMap default/kubegpu-test (v1)"]
    assert "managedFields" not in after["metadata"] and "resourceVersion" not in after["metadata"]

    again = _apply(kubeapi, args, diff=True)
    assert not again.changed and again.result["objects"][0]["action"] == "unchanged", again.result["diff"]

    update = {"definition": {**CONFIGMAP, "data": {"a": "2"}}}
    check = _apply(kubeapi, update, check=True, diff=True)
    assert check.changed and check.result["diff"]["before"]["ConfigMap default/kubegpu-test (v1)"]["data"] == {"a": "1"}
    assert get_object(kubeapi, CM_PATH)["data"] == {"a": "1"}
    assert _apply(kubeapi, update).result["objects"][0]["action"] == "updated"
    assert get_object(kubeapi, CM_PATH)["data"] == {"a": "2"}


def test_crd_then_profile_from_files_in_one_task_and_check_mode_before_the_crd_exists(kubeapi, tmp_path):
    both = tmp_path / "openfaas.yaml"
    both.write_text(CRD.read_text() + "\n---\n" + PROFILE.read_text())
    check = _apply(kubeapi, {"src": str(both)}, check=True)
    assert check.changed and [entry["action"] for entry in check.result["objects"]] == ["created", "created"]
    assert get_object(kubeapi, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/profiles.openfaas.com") is None

    real = _apply(kubeapi, {"src": str(both)})
    assert real.changed, real.result
    assert get_object(kubeapi, PROFILE_PATH)["spec"]["runtimeClassName"] == "nvidia"
    assert not _apply(kubeapi, {"src": str(both)}).changed


def test_check_mode_reports_objects_in_a_namespace_the_task_creates_without_a_404(kubeapi):
    """A real API server answers a dry run into a namespace that does not exist with 404; the objects of a
    Namespace created earlier in the same task are reported as to be created instead."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-ops"}}
    configmap = {**CONFIGMAP, "metadata": {"name": "settings", "namespace": "gpu-ops"}}
    args = {"definition": [namespace, configmap]}
    check = _apply(kubeapi, args, check=True, diff=True)
    assert not check.failed, check.result
    assert [entry["action"] for entry in check.result["objects"]] == ["created", "created"]
    assert "ConfigMap gpu-ops/settings (v1)" in check.result["diff"]["after"]
    assert all(entry["query"].get("dryRun") == "All" for entry in writes(kubeapi))
    assert get_object(kubeapi, "/api/v1/namespaces/gpu-ops") is None

    real = _apply(kubeapi, args)
    assert real.changed and get_object(kubeapi, "/api/v1/namespaces/gpu-ops/configmaps/settings")["data"] == {"a": "1"}
    again = _apply(kubeapi, args, check=True)
    assert not again.changed, again.result


def test_absent_check_mode_then_delete_then_no_change(kubeapi):
    _apply(kubeapi, {"definition": [CONFIGMAP]})
    kubeapi.admin.reset_counters()
    check = _apply(kubeapi, {"definition": CONFIGMAP, "state": "absent"}, check=True)
    assert check.changed and get_object(kubeapi, CM_PATH) is not None
    assert all(entry["query"].get("dryRun") == "All" for entry in writes(kubeapi))
    real = _apply(kubeapi, {"definition": CONFIGMAP, "state": "absent", "wait": True})
    assert real.changed and get_object(kubeapi, CM_PATH) is None
    again = _apply(kubeapi, {"definition": CONFIGMAP, "state": "absent"})
    assert not again.changed and again.result["objects"][0]["action"] == "absent"


def test_conflict_with_another_manager_fails_then_force_conflicts_takes_over(kubeapi, kubectl):
    kubectl("apply", "--server-side", "--field-manager", "someone-else", "-f", "-", input=yaml.safe_dump(CONFIGMAP))
    kubeapi.admin.reset_counters()
    changed = {"definition": {**CONFIGMAP, "data": {"a": "mine"}}}
    run = _apply(kubeapi, changed)
    assert run.failed and "force_conflicts=true" in run.result["msg"] and "someone-else" in run.result["msg"]
    assert get_object(kubeapi, CM_PATH)["data"] == {"a": "1"}
    forced = _apply(kubeapi, {**changed, "force_conflicts": True})
    assert forced.changed and get_object(kubeapi, CM_PATH)["data"] == {"a": "mine"}
    assert not _apply(kubeapi, {**changed, "force_conflicts": True}).changed


def test_wait_for_rollout_and_timeout_naming_the_object(kubeapi):
    slow = _apply(kubeapi, {"definition": DEPLOYMENT, "wait": True, "wait_timeout": 2})
    assert slow.failed and "Deployment default/smoke (apps/v1)" in slow.result["msg"] and "wait_timeout=2" in slow.result["msg"]
    kubeapi.admin.set_ready_controller(True)
    ready = _apply(kubeapi, {"definition": {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 3}}, "wait": True})
    assert ready.changed and not ready.failed, ready.result
    assert ready.result["objects"][0]["object"]["status"]["availableReplicas"] == 3


def test_wait_condition_of_a_crd(kubeapi):
    run = _apply(kubeapi, {"src": str(CRD), "wait": True, "wait_condition": {"type": "Established"}})
    assert run.changed and not run.failed, run.result


def test_retries_a_500_mid_run(kubeapi):
    kubeapi.admin.fail_next(count=2, code=500, method="PATCH", path="/configmaps/")
    run = _apply(kubeapi, {"definition": CONFIGMAP})
    assert run.changed and not run.failed, run.result
    assert get_object(kubeapi, CM_PATH)["data"] == {"a": "1"}


BAD_INPUTS = [
    ({"definition": {"apiVersion": "v1", "metadata": {"name": "x"}}}, ["definition has no kind"]),
    ({"definition": {"kind": "ConfigMap", "metadata": {"name": "x"}}}, ["has no apiVersion"]),
    ({"definition": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}}, ["ConfigMap", "no metadata.name"]),
    ({"definition": ["not an object"]}, ["is not a mapping"]),
    (
        {"definition": [CONFIGMAP, yaml.safe_load(PROFILE.read_text())]},
        ["Profile (openfaas.com/v1) is not served by this cluster: install OpenFaaS first"],
    ),
    ({"definition": {**CONFIGMAP, "apiVersion": "v2"}}, ["ConfigMap (v2) is not served by this cluster"]),
    ({"src": "/nonexistent/manifests.yaml"}, ["/nonexistent/manifests.yaml"]),
    ({"definition": {**CONFIGMAP, "metadata": {"name": "x", "namespace": "no-such-ns"}}}, ["no-such-ns", "HTTP 404"]),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_fails_with_a_message_and_writes_nothing(kubeapi, args, words):
    run = _apply(kubeapi, args)
    assert run.failed, run.result
    for word in words:
        assert word in run.result["msg"], (word, run.result["msg"])
    assert [entry for entry in writes(kubeapi) if entry["code"] < 400] == []


def test_malformed_yaml_file_is_named(kubeapi, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: ConfigMap\nmetadata: {name: [unclosed\n")
    run = _apply(kubeapi, {"src": str(bad)})
    assert run.failed and f"src {bad} is not valid YAML" in run.result["msg"]
    assert writes(kubeapi) == []
