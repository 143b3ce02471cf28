"""kubegpu.core.k8s_apply through Ansible against the test API server (server-side apply with
managedFields and conflicts, dryRun=All, discovery of CRDs, and its optional ready controller,
which gives workloads the status a healthy cluster would; see tests/support/kubeapi/README.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.kube_modules import get_object, run_kube_module, writes
from tests.support.role_runs import run_tasks

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
    # the second document is refused by the API server (422): its dry run, before the first write, stops the task
    (
        {"definition": [CONFIGMAP, {**CONFIGMAP, "metadata": {"name": "second", "labels": {"gpu": "not valid!"}}}]},
        ["ConfigMap default/second (v1)", "HTTP 422", "not valid!"],
    ),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_fails_with_a_message_and_writes_nothing(kubeapi, args, words):
    run = _apply(kubeapi, args)
    assert run.failed, run.result
    for word in words:
        assert word in run.result["msg"], (word, run.result["msg"])
    assert [entry for entry in writes(kubeapi) if entry["code"] < 400 and entry["query"].get("dryRun") != "All"] == []
    assert get_object(kubeapi, CM_PATH) is None


def test_malformed_yaml_file_is_named(kubeapi, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: ConfigMap\nmetadata: {name: [unclosed\n")
    run = _apply(kubeapi, {"src": str(bad)})
    assert run.failed and f"src {bad} is not valid YAML" in run.result["msg"]
    assert writes(kubeapi) == []


def _stored_writes(kubeapi):
    """(method, path) of every write the server stored (dry runs left out), in the order served."""
    return [(entry["method"], entry["path"]) for entry in writes(kubeapi) if entry["query"].get("dryRun") != "All"]


def test_a_write_that_fails_midway_reports_what_was_written_and_what_was_not(kubeapi):
    """The CRD is written, then the API server refuses the first Profile (403, as RBAC refuses a user who may
    create CRDs but not Profiles; no dry run can see it before the CRD exists): the task fails, changed, with the
    CRD listed as created and both Profiles as not applied."""
    crd = yaml.safe_load(CRD.read_text())
    profile = yaml.safe_load(PROFILE.read_text())
    second = {**profile, "metadata": {"name": "gpu-shared", "namespace": "default"}}
    kubeapi.admin.fail_next(count=1, code=403, method="PATCH", path="/profiles/gpu$")
    run = _apply(kubeapi, {"definition": [crd, profile, second]})
    assert run.failed and run.changed, run.result
    assert [(entry["kind"], entry["action"]) for entry in run.result["objects"]] == [("CustomResourceDefinition", "created")]
    assert [entry["name"] for entry in run.result["not_applied"]] == ["gpu", "gpu-shared"]
    assert "Profile default/gpu (openfaas.com/v1)" in run.result["msg"] and "HTTP 403" in run.result["msg"]
    assert "CustomResourceDefinition profiles.openfaas.com (apiextensions.k8s.io/v1) created" in run.result["msg"]
    assert get_object(kubeapi, PROFILE_PATH) is None


def test_documents_are_applied_in_helms_install_order_so_a_custom_resource_before_its_crd_works(kubeapi, helm, tmp_path):
    """The order is the one real helm gives the same documents (``helm template`` sorts a chart's manifests by
    kind, pkg/release/util/kind_sorter.go): Namespace, ServiceAccount, ConfigMap, CustomResourceDefinition, ...,
    Deployment, then kinds helm does not know (the Profile) last."""
    crd = yaml.safe_load(CRD.read_text())
    profile = yaml.safe_load(PROFILE.read_text())
    given = [
        profile,
        DEPLOYMENT,
        {**CONFIGMAP, "metadata": {"name": "settings", "namespace": "gpu-ops"}},
        crd,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "gpu-ops"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-ops"}},
    ]
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: order\nversion: 0.1.0\n")
    (chart / "templates" / "all.yaml").write_text(yaml.safe_dump_all(given))
    rendered = [doc for doc in yaml.safe_load_all(helm("template", "order", str(chart)).stdout) if doc]
    helm_order = [(doc["kind"], doc["metadata"]["name"]) for doc in rendered]
    assert helm_order[0] == ("Namespace", "gpu-ops") and helm_order[-1] == ("Profile", "gpu"), helm_order

    run = _apply(kubeapi, {"definition": given})
    assert run.changed and not run.failed, run.result
    assert [(entry["kind"], entry["name"]) for entry in run.result["objects"]] == helm_order
    stored = [path.rsplit("/", 1)[-1] for method, path in _stored_writes(kubeapi)]
    assert stored == [name for _kind, name in helm_order], stored
    assert get_object(kubeapi, PROFILE_PATH)["spec"]["runtimeClassName"] == "nvidia"


def test_absent_of_a_kind_the_cluster_does_not_serve_answers_at_once(kubeapi):
    """Neither the Profile CRD nor a Profile exists: nothing to delete, and nothing to wait for."""
    crd = yaml.safe_load(CRD.read_text())
    profile = yaml.safe_load(PROFILE.read_text())
    run = _apply(kubeapi, {"definition": [crd, profile], "state": "absent", "wait": True})
    assert not run.failed and not run.changed, run.result
    discovery = [entry for entry in kubeapi.admin.requests() if entry["path"] == "/apis/openfaas.com/v1"]
    assert len(discovery) <= 1, f"the module polled discovery {len(discovery)} times for a kind that cannot exist"
    by_kind = {entry["kind"]: entry for entry in run.result["objects"]}
    assert by_kind["Profile"]["action"] == "absent" and by_kind["Profile"]["served"] is False
    assert by_kind["CustomResourceDefinition"]["action"] == "absent" and by_kind["CustomResourceDefinition"]["served"]


def _workload(kind, name, spec, status):
    labels = {"app": name}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "registry.invalid/x:1"}]}}
    body = {"selector": {"matchLabels": labels}, "template": template, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": body,
        "status": status,
    }


ROLLING = {"updateStrategy": {"type": "RollingUpdate"}}
# statuses as the controllers write them at moments of a rollout; kubectl rollout status judges each
ROLLOUTS = [
    _workload(
        "Deployment",
        "dep-old-replicas",
        {"replicas": 3},
        {"observedGeneration": 1, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 4, "availableReplicas": 4},
    ),
    _workload(
        "Deployment",
        "dep-deadline",
        {"replicas": 3},
        {
            "observedGeneration": 1,
            "replicas": 3,
            "updatedReplicas": 1,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "dep-deadline-7f9c" has timed out progressing.',
                }
            ],
        },
    ),
    _workload(
        "Deployment",
        "dep-unavailable",
        {"replicas": 3},
        {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2},
    ),
    _workload("Deployment", "dep-not-observed", {"replicas": 1}, {}),
    _workload(
        "Deployment",
        "dep-done",
        {"replicas": 2},
        {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2},
    ),
    _workload(
        "DaemonSet",
        "ds-not-updated",
        ROLLING,
        {
            "observedGeneration": 1,
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "updatedNumberScheduled": 2,
            "numberReady": 3,
            "numberAvailable": 3,
            "numberMisscheduled": 0,
        },
    ),
    _workload(
        "DaemonSet",
        "ds-unavailable",
        ROLLING,
        {
            "observedGeneration": 1,
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "updatedNumberScheduled": 3,
            "numberReady": 3,
            "numberAvailable": 2,
            "numberMisscheduled": 0,
        },
    ),
    _workload(
        "DaemonSet",
        "ds-done",
        ROLLING,
        {
            "observedGeneration": 1,
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "updatedNumberScheduled": 3,
            "numberReady": 3,
            "numberAvailable": 3,
            "numberMisscheduled": 0,
        },
    ),
    _workload(
        "StatefulSet",
        "sts-not-ready",
        {"replicas": 2, "serviceName": "s", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}},
        {"observedGeneration": 1, "replicas": 2, "readyReplicas": 1, "updatedReplicas": 2, "currentReplicas": 2},
    ),
    _workload(
        "StatefulSet",
        "sts-partitioned",
        {"replicas": 3, "serviceName": "s", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
        {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1, "currentReplicas": 2},
    ),
    _workload(
        "StatefulSet",
        "sts-not-updated",
        {"replicas": 3, "serviceName": "s", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}},
        {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 2, "currentReplicas": 3},
    ),
]


def test_wait_judges_a_rollout_as_kubectl_rollout_status_does(kubeapi, kubectl):
    """Each workload is stored with the status of a moment in a rollout (the ready controller off, so nothing
    changes it); real ``kubectl rollout status --watch=false`` says done, waiting (and for what) or failed, and the
    module's wait must agree: done passes, waiting fails at wait_timeout naming what kubectl names, failed fails at
    once (a Deployment past its progress deadline does not wait out the timeout)."""
    kubeapi.admin.load(yaml.safe_dump_all(ROLLOUTS))
    verdicts = {}
    for obj in ROLLOUTS:
        name = obj["metadata"]["name"]
        said = kubectl("rollout", "status", f"{obj['kind'].lower()}/{name}", "--watch=false", check=False)
        if said.returncode != 0:
            verdicts[name] = ("failed", said.stderr.strip())
        else:
            waiting = re.search(r"to finish: (.*?)\.\.\.", said.stdout) or re.search(r"Waiting for (.*?)\.\.\.", said.stdout)
            verdicts[name] = ("waiting", waiting.group(1)) if waiting else ("done", said.stdout.strip())
    assert verdicts["dep-old-replicas"] == ("waiting", "1 old replicas are pending termination"), verdicts
    assert verdicts["dep-deadline"][0] == "failed" and verdicts["dep-done"][0] == "done", verdicts

    timeouts = {"dep-deadline": 60}
    tasks = {}
    for obj in ROLLOUTS:
        name = obj["metadata"]["name"]
        definition = {key: value for key, value in obj.items() if key != "status"}
        args = {
            "kubeconfig": str(kubeapi.kubeconfig),
            "definition": definition,
            "wait": True,
            "wait_timeout": timeouts.get(name, 1),
        }
        tasks[name] = ("kubegpu.core.k8s_apply", args, None)
    results = run_tasks(tasks)
    # failed at once: one read of the object after the apply, not a minute of polling
    reads = [entry for entry in kubeapi.admin.requests() if entry["method"] == "GET" and entry["path"].endswith("/dep-deadline")]
    assert len(reads) <= 4, f"a Deployment past its progress deadline was polled {len(reads)} times"
    for name, (verdict, words) in verdicts.items():
        run = results[name]
        assert not run.changed, (name, run.result)
        if verdict == "done":
            assert not run.failed, (name, words, run.result)
        elif verdict == "waiting":
            assert run.failed and "wait_timeout=1s" in run.result["msg"], (name, words, run.result)
            assert words.replace("deployment spec", "spec") in run.result["msg"], (name, words, run.result["msg"])
        else:
            assert run.failed and "wait_timeout" not in run.result["msg"], (name, words, run.result)
            assert "exceeded its progress deadline" in words and "ProgressDeadlineExceeded" in run.result["msg"], (
                name,
                words,
                run.result["msg"],
            )
