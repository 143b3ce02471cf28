"""Values that YAML types (docs/values.md), through real ansible-playbook runs against the test API server.

Every input here is YAML text as an operator writes it in an inventory or a playbook (unquoted ``true``, ``yes``,
``017``, ``12.10``), read by Ansible's own loader, so the modules and roles get the types Ansible gives them. What
they write is read back with real kubectl and compared with what real kubectl writes for the same text (``kubectl
label``, ``kubectl taint``): the oracle is kubectl, not our code. A refusal must come before any write (the server's
request log)."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.kube_modules import get_object, writes
from tests.support.role_runs import GpuHost, RoleVariant, run_playbook, run_role, run_role_variants

SUPPORT = Path(__file__).resolve().parents[1] / "support"
PROFILE_CRD = SUPPORT / "manifests" / "openfaas-profile-crd.yaml"
PROFILE = "/apis/openfaas.com/v1/namespaces/openfaas/profiles/withgpu"
REPO_ROOT = Path(__file__).resolve().parents[2]
NVIDIA = {"kubegpu_default_runtime": "nvidia"}


def _play(kubeapi, tasks_yaml: str) -> str:
    """A playbook on localhost against the test API server, its tasks given as YAML text (indented 4)."""
    return (
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  module_defaults:\n"
        "    group/kubegpu.core.k8s:\n"
        f"      kubeconfig: {kubeapi.kubeconfig}\n"
        "  tasks:\n" + tasks_yaml
    )


def _run_yaml_playbook(tmp_path: Path, text: str):
    path = tmp_path / "playbook.yml"
    path.write_text(text)
    return run_playbook([path])


def _node(kubectl, name: str) -> dict:
    return kubectl("get", "node", name, "-o", "json", json_output=True)


def test_bools_and_integers_are_written_as_kubectl_writes_them(kubeapi, kubectl, tmp_path):
    run = _run_yaml_playbook(
        tmp_path,
        _play(
            kubeapi,
            """
    - name: Label as an operator types it
      kubegpu.core.node_labels:
        nodes:
          - name: gpu-node-1
            labels:
              example.com/flag: true
              example.com/off: false
              example.com/answer: yes
              example.com/count: 2
              example.com/octal: 017
              example.com/big: 123456789012345678901234567890
              example.com/text: 1e3
    - name: Taint as an operator types it
      kubegpu.core.node_taints:
        nodes: [gpu-node-1]
        taints:
          - {key: example.com/dedicated, value: true, effect: NoSchedule}
          - {key: example.com/slots, value: 4, effect: PreferNoSchedule}
          - {key: example.com/bare, value: null, effect: NoExecute}
""",
        ),
    )
    assert run.rc == 0, run.explain()
    # kubectl writes the same values, given as text, on another node
    kubectl(
        "label",
        "node",
        "gpu-node-2",
        "example.com/flag=true",
        "example.com/off=false",
        "example.com/answer=true",
        "example.com/count=2",
        "example.com/octal=15",
        "example.com/big=123456789012345678901234567890",
        "example.com/text=1e3",
    )
    kubectl(
        "taint",
        "node",
        "gpu-node-2",
        "example.com/dedicated=true:NoSchedule",
        "example.com/slots=4:PreferNoSchedule",
        "example.com/bare:NoExecute",
    )
    ours, theirs = _node(kubectl, "gpu-node-1"), _node(kubectl, "gpu-node-2")
    mine = {key: value for key, value in ours["metadata"]["labels"].items() if key.startswith("example.com/")}
    assert mine == {key: value for key, value in theirs["metadata"]["labels"].items() if key.startswith("example.com/")}
    assert mine["example.com/flag"] == "true" and mine["example.com/octal"] == "15"
    strip = [{key: value for key, value in taint.items() if key != "timeAdded"} for taint in ours["spec"]["taints"]]
    assert strip == [{key: value for key, value in taint.items() if key != "timeAdded"} for taint in theirs["spec"]["taints"]]
    assert strip[0] == {"key": "example.com/dedicated", "value": "true", "effect": "NoSchedule"}


def test_floats_are_refused_naming_the_option_before_any_write(kubeapi, tmp_path):
    kubeapi.admin.reset_counters()
    run = _run_yaml_playbook(
        tmp_path,
        _play(
            kubeapi,
            """
    - name: A driver branch typed unquoted
      kubegpu.core.node_labels:
        nodes:
          - name: gpu-node-1
            labels: {example.com/driver: 550.90, example.com/ok: "yes"}
      ignore_errors: true
    - name: A label for every node of a selector, typed unquoted
      kubegpu.core.node_labels:
        selector: nvidia.com/gpu.present=true
        labels: {example.com/cuda: 12.10}
      ignore_errors: true
    - name: A taint value typed unquoted
      kubegpu.core.node_taints:
        nodes: [gpu-node-1]
        taints: [{key: example.com/cuda, value: 12.10, effect: NoSchedule}]
      ignore_errors: true
""",
        ),
    )
    labels = run.task("A driver branch typed unquoted")
    assert labels.failed, labels.result
    assert "label 'example.com/driver' on node 'gpu-node-1' is the number 550.9" in labels.result["msg"]
    assert "Quote it" in labels.result["msg"]
    selected = run.task("A label for every node of a selector, typed unquoted")
    assert selected.failed and "label 'example.com/cuda'" in selected.result["msg"] and "12.1" in selected.result["msg"]
    taint = run.task("A taint value typed unquoted")
    assert taint.failed, taint.result
    assert "the value of taint 'example.com/cuda' is the number 12.1" in taint.result["msg"]
    assert writes(kubeapi) == []


def test_the_gpu_taint_value_true_is_the_same_string_on_the_node_and_in_every_toleration(kubeapi, kubectl):
    """kubegpu_gpu_taint {value: true} (a YAML bool): gpu_labels taints the node "true", and the tolerations the
    OpenFaaS Profile and gpu_validate's smoke pods carry say "true", so they match the node; a node selector value
    typed as an integer is the label's string."""
    kubeapi.admin.load(PROFILE_CRD.read_text() + "\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: openfaas\n")
    typed = """
kubegpu_gpu_taint: {key: example.com/gpu, value: true, effect: NoSchedule}
kubegpu_gpu_taint_enabled: yes
gpu_labels_extra_labels: {example.com/pool: 7}
openfaas_profile_node_selector_key: example.com/pool
openfaas_profile_node_selector_value: 7
"""
    run = run_role(
        kubeapi,
        ["gpu_labels", "openfaas_profile"],
        hosts={"gpu-node-1": GpuHost("v100x2", vars=NVIDIA)},
        yaml_vars=typed,
    )
    assert run.rc == 0, run.explain()
    node = _node(kubectl, "gpu-node-1")
    assert [taint.get("value") for taint in node["spec"]["taints"] if taint["key"] == "example.com/gpu"] == ["true"]
    assert node["metadata"]["labels"]["example.com/pool"] == "7"
    spec = get_object(kubeapi, PROFILE)["spec"]
    assert spec["tolerations"] == [{"key": "example.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"] == [{"key": "example.com/pool", "operator": "In", "values": ["7"]}]
    # real kubectl selects the node by the Profile's expression
    selected = kubectl("get", "nodes", "-l", "example.com/pool in (7)", "-o", "name").stdout.split()
    assert selected == ["node/gpu-node-1"]

    # gpu_validate's smoke pods: the role's own variables, evaluated by Ansible with the same typed taint
    tolerations = run_playbook(
        [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "vars_files": [str(REPO_ROOT / "roles/gpu_validate" / part / "main.yml") for part in ("defaults", "vars")],
                "tasks": [{"name": "Tolerations", "ansible.builtin.debug": {"var": "_gpu_validate_tolerations"}}],
            }
        ],
        yaml_vars=typed,
    )
    assert tolerations.rc == 0, tolerations.explain()
    assert tolerations.task("Tolerations").result["_gpu_validate_tolerations"][0] == {
        "key": "example.com/gpu",
        "operator": "Equal",
        "value": "true",
        "effect": "NoSchedule",
    }


BAD = """
bad_taint: {key: gpu, value: 12.10, effect: NoSchedule}
bad_labels: {example.com/driver: 550.90}
bad_selector_value: 12.10
bad_selector: {gpu: 12.10}
"""


def test_roles_refuse_a_float_naming_the_variable_before_any_write(kubeapi):
    kubeapi.admin.load(PROFILE_CRD.read_text() + "\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: openfaas\n")
    kubeapi.admin.reset_counters()
    hosts = {"gpu-node-1": GpuHost("v100x2", vars=NVIDIA)}
    labels = run_role_variants(
        kubeapi,
        "gpu_labels",
        {
            "taint": RoleVariant({"kubegpu_gpu_taint": "{{ bad_taint }}", "kubegpu_gpu_taint_enabled": True}),
            "extra labels": RoleVariant({"gpu_labels_extra_labels": "{{ bad_labels }}"}),
        },
        hosts=hosts,
        yaml_vars=BAD,
    )
    assert "gpu_labels_taint.value (kubegpu_gpu_taint.value) is the number 12.1" in labels.in_play("taint").message
    assert "gpu_labels_extra_labels['example.com/driver'] is the number 550.9" in labels.in_play("extra labels").message
    profile = run_role_variants(
        kubeapi,
        "openfaas_profile",
        {
            "selector": RoleVariant({"openfaas_profile_node_selector_value": "{{ bad_selector_value }}"}),
            "taint": RoleVariant({"kubegpu_gpu_taint": "{{ bad_taint }}"}),
        },
        yaml_vars=BAD,
    )
    assert "openfaas_profile_node_selector_value is the number 12.1" in profile.in_play("selector").message
    assert "openfaas_profile_gpu_taint.value (kubegpu_gpu_taint.value) is the number 12.1" in profile.in_play("taint").message
    # gpu_validate refuses it in its preflight, before its first read (smoke pods off: no template needs it)
    kubeapi.admin.reset_counters()
    validate = run_role_variants(
        kubeapi,
        "gpu_validate",
        {"taint": RoleVariant({"kubegpu_gpu_taint": "{{ bad_taint }}", "gpu_validate_smoke": False})},
        hosts=hosts,
        yaml_vars=BAD,
    )
    (refused,) = validate.in_play("taint").failed
    assert refused["task"].endswith("Check the GPU taint's value as YAML typed it"), refused
    assert "gpu_validate_gpu_taint.value (kubegpu_gpu_taint.value) is the number 12.1" in validate.in_play("taint").message
    assert kubeapi.admin.requests() == []
    stacks = run_playbook(
        [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "module_defaults": {"group/kubegpu.core.k8s": {"kubeconfig": str(kubeapi.kubeconfig)}},
                "tasks": [
                    {
                        "name": f"{role} preflight",
                        "block": [
                            {
                                "ansible.builtin.include_role": {"name": f"kubegpu.core.{role}", "tasks_from": "preflight.yml"},
                                "vars": {f"{role}_nodes": [], f"{role}_node_selector": "{{ bad_selector }}"},
                            }
                        ],
                        "rescue": [{"name": f"{role} refused", "ansible.builtin.debug": {"msg": "next"}}],
                    }
                    for role in ("vgpu_scheduler", "nvidia_device_plugin")
                ],
            }
        ],
        yaml_vars=BAD,
    )
    for role in ("vgpu_scheduler", "nvidia_device_plugin"):
        assert f"{role}_node_selector['gpu'] is the number 12.1" in stacks.message, stacks.explain()
    assert len(stacks.failed) == 2
    assert writes(kubeapi) == []


# YAML scalars as yaml.safe_dump writes them: true/false and decimal integers, the text an operator types
SCALARS = st.one_of(st.booleans(), st.integers(min_value=0, max_value=10**40))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(SCALARS, min_size=1, max_size=5),
    bad=st.floats(allow_nan=True, allow_infinity=True),
)
def test_property_any_bool_or_int_is_written_as_kubectl_writes_its_text_and_any_float_is_refused(
    kubeapi, kubectl, tmp_path_factory, values, bad
):
    kubeapi.admin.reset()
    texts = [yaml.safe_dump(value).splitlines()[0] for value in values]  # "true", "17": unquoted YAML
    labels = "".join(f"              example.com/v{index}: {text}\n" for index, text in enumerate(texts))
    taints = "".join(
        f"          - {{key: example.com/v{index}, value: {text}, effect: NoSchedule}}\n" for index, text in enumerate(texts)
    )
    tmp_path = tmp_path_factory.mktemp("typed")
    run = _run_yaml_playbook(
        tmp_path,
        _play(
            kubeapi,
            "    - name: Labels\n      kubegpu.core.node_labels:\n        nodes:\n          - name: gpu-node-1\n"
            f"            labels:\n{labels}"
            "    - name: Taints\n      kubegpu.core.node_taints:\n        nodes: [gpu-node-1]\n"
            f"        taints:\n{taints}"
            "    - name: A float\n      kubegpu.core.node_labels:\n        nodes:\n          - name: gpu-node-3\n"
            f"            labels: {{example.com/f: {yaml.safe_dump(bad).splitlines()[0]}}}\n"
            "      ignore_errors: true\n",
        ),
    )
    assert run.rc == 0, run.explain()
    kubectl("label", "node", "gpu-node-2", *[f"example.com/v{index}={text}" for index, text in enumerate(texts)])
    kubectl("taint", "node", "gpu-node-2", *[f"example.com/v{index}={text}:NoSchedule" for index, text in enumerate(texts)])
    ours, theirs = _node(kubectl, "gpu-node-1"), _node(kubectl, "gpu-node-2")
    assert {k: v for k, v in ours["metadata"]["labels"].items() if k.startswith("example.com/")} == {
        k: v for k, v in theirs["metadata"]["labels"].items() if k.startswith("example.com/")
    }
    assert sorted((taint["key"], taint.get("value")) for taint in ours["spec"]["taints"]) == sorted(
        (taint["key"], taint.get("value")) for taint in theirs["spec"]["taints"]
    )
    refused = run.task("A float")
    assert refused.failed and "Quote it" in refused.result["msg"], refused.result
    assert "example.com/f" not in (_node(kubectl, "gpu-node-3")["metadata"].get("labels") or {})
