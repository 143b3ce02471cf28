"""The openfaas_profile role through ansible-playbook against the test API server: the Profile as the server stores
it, the optional OpenFaaS install through real helm with the local stand-in chart (tests/support/charts/openfaas),
check mode, the second run, and the refusals (Profile kind not served, Community Edition with a GPU taint)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.kube_modules import get_object, writes
from tests.support.role_runs import run_role

SUPPORT = Path(__file__).resolve().parents[1] / "support"
CHART = str(SUPPORT / "charts" / "openfaas")
CRD = SUPPORT / "manifests" / "openfaas-profile-crd.yaml"
PROFILE = "/apis/openfaas.com/v1/namespaces/openfaas/profiles/withgpu"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/profiles.openfaas.com"
INSTALL = {"openfaas_profile_install": True, "openfaas_profile_chart_ref": CHART, "openfaas_profile_chart_repo_url": ""}


def _openfaas_installed_by_hand(kubeapi) -> None:
    """The Profile CRD and the openfaas namespace, as an OpenFaaS installed outside this role leaves them."""
    kubeapi.admin.load(CRD.read_text() + "\n---\n" + "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: openfaas\n")
    kubeapi.admin.reset_counters()


def test_install_and_profile_check_mode_then_apply_then_no_change(kubeapi):
    check = run_role(kubeapi, "openfaas_profile", variables=INSTALL, check=True)
    assert check.rc == 0, check.stdout
    assert "OpenFaaS with Helm" in check.changed
    assert [entry for entry in writes(kubeapi) if entry["query"].get("dryRun") != "All"] == []
    assert get_object(kubeapi, CRD_PATH) is None and get_object(kubeapi, PROFILE) is None

    real = run_role(kubeapi, "openfaas_profile", variables=INSTALL)
    assert real.rc == 0, real.stdout
    assert set(real.changed) == {"OpenFaaS with Helm", "Apply the Profile withgpu"}
    profile = get_object(kubeapi, PROFILE)
    assert profile["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubegpu"}
    assert profile["spec"] == {
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["on"]}]}]
                }
            }
        },
    }
    assert [field["manager"] for field in profile["metadata"]["managedFields"]] == ["kubegpu"]
    release = real.task("OpenFaaS with Helm").result
    assert release["user_values"] == {"functionNamespace": "openfaas-fn", "openfaasPro": True, "createCRDs": True}
    assert get_object(kubeapi, "/api/v1/namespaces/openfaas-fn") is not None
    gateway = get_object(kubeapi, "/apis/apps/v1/namespaces/openfaas/deployments/gateway")
    env = {item["name"]: item["value"] for item in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OPENFAAS_PRO"] == "true"

    again = run_role(kubeapi, "openfaas_profile", variables=INSTALL)
    assert again.rc == 0 and again.changed == [], again.stdout
    # the apply is sent again and changes nothing: same resourceVersion, no new helm revision
    assert get_object(kubeapi, PROFILE)["metadata"]["resourceVersion"] == profile["metadata"]["resourceVersion"]
    assert again.task("OpenFaaS with Helm").result["release"]["revision"] == "1"


def test_names_keys_taint_value_and_runtime_class_are_configurable(kubeapi):
    _openfaas_installed_by_hand(kubeapi)
    settings = {
        "openfaas_profile_name": "gpu-functions",
        "openfaas_profile_node_selector_key": "accelerator",
        "openfaas_profile_node_selector_value": "nvidia-tesla-t4",
        "openfaas_profile_runtime_class_name": "nvidia",
        "openfaas_profile_extra_tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    extra = {"kubegpu_gpu_taint": {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}}
    check = run_role(kubeapi, "openfaas_profile", variables={**settings, **extra}, check=True)
    assert check.rc == 0 and check.changed == ["Apply the Profile gpu-functions"], check.stdout
    assert all(entry["query"].get("dryRun") == "All" for entry in writes(kubeapi))
    path = PROFILE.replace("withgpu", "gpu-functions")
    assert get_object(kubeapi, path) is None

    real = run_role(kubeapi, "openfaas_profile", variables={**settings, **extra})
    assert real.rc == 0, real.stdout
    spec = get_object(kubeapi, path)["spec"]
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term == {"matchExpressions": [{"key": "accelerator", "operator": "In", "values": ["nvidia-tesla-t4"]}]}


def test_refuses_without_change_when_the_profile_kind_is_not_served(kubeapi):
    for check in (True, False):
        run = run_role(kubeapi, "openfaas_profile", check=check)
        assert run.rc != 0
        failed = run.failed
        assert [record["task"] for record in failed] == ["Refuse when the cluster does not serve Profiles"]
        message = failed[0]["result"]["msg"]
        assert "Profile kind (openfaas.com/v1) is not served by this cluster" in message
        assert "openfaas_profile_install: true" in message and "Nothing was changed" in message
        assert writes(kubeapi) == []


def test_community_edition_refuses_a_gpu_taint_and_applies_no_profile_without_one(kubeapi):
    tainted = run_role(
        kubeapi, "openfaas_profile", variables={"kubegpu_openfaas_edition": "community", "kubegpu_gpu_taint_enabled": True}
    )
    assert tainted.rc != 0
    message = tainted.failed[0]["result"]["msg"]
    assert "Community Edition ignores Profiles" in message and 'constraints ["gpu=on"]' in message
    assert writes(kubeapi) == []

    # the contract's default: no taint with the Community Edition; installed with openfaasPro=false, no Profile
    community = run_role(kubeapi, "openfaas_profile", variables={**INSTALL, "kubegpu_openfaas_edition": "community"})
    assert community.rc == 0, community.stdout
    assert community.changed == ["OpenFaaS with Helm"]
    assert community.task("OpenFaaS with Helm").result["user_values"]["openfaasPro"] is False
    advice = community.task("Community Edition - no Profile, functions placed with constraints").result["msg"]
    assert 'constraints: ["gpu=on"]' in advice
    assert get_object(kubeapi, PROFILE) is None


def test_bad_edition_and_name_are_refused_naming_them(kubeapi):
    bad = {"openfaas_profile_edition": "pro", "openfaas_profile_name": "With_GPU"}
    run = run_role(kubeapi, "openfaas_profile", variables=bad)
    assert run.rc != 0
    message = json.dumps(run.failed[0]["result"]["msg"])
    assert "edition=pro (valid: standard, enterprise, community)" in message and "name=With_GPU" in message
    assert writes(kubeapi) == []
