"""inventory/sample: kubespray's groups as ansible-inventory reads them, and every global variable of the
cluster contract documented in group_vars/all/kubegpu.yml with its default."""

from __future__ import annotations

import json
import subprocess

import yaml

from tests.support.adhoc import BIN, REPO_ROOT, ansible_env

SAMPLE = REPO_ROOT / "inventory" / "sample"
# the contract's globals and their defaults (kubegpu_node_name, kubegpu_kubeconfig, kubegpu_kube_context and
# kubegpu_default_runtime have none: they are documented commented out)
DEFAULTS = {
    "kubegpu_device_plugin": "vgpu_scheduler",
    "kubegpu_gpu_group": "gpu_nodes",
    "kubegpu_gpu_taint": {"key": "gpu", "value": "", "effect": "NoSchedule"},
    "kubegpu_unhealthy_taint": False,
    "kubegpu_openfaas_enabled": False,
    "kubegpu_openfaas_edition": "standard",
    "kubegpu_manage_driver": True,
    "kubegpu_manage_toolkit": True,
}
DOCUMENTED_ONLY = ["kubegpu_node_name", "kubegpu_kubeconfig", "kubegpu_kube_context", "kubegpu_default_runtime"]


def test_sample_inventory_has_kubesprays_groups_and_the_gpu_group():
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(SAMPLE / "hosts.yml"), "--list"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        check=True,
    )
    inventory = json.loads(proc.stdout)
    assert set(inventory["k8s_cluster"]["children"]) == {"kube_control_plane", "kube_node"}
    assert inventory["gpu_nodes"]["hosts"] and set(inventory["gpu_nodes"]["hosts"]) <= set(inventory["kube_node"]["hosts"])
    # group_vars/all reaches every host
    assert inventory["_meta"]["hostvars"]["gpu1"]["kubegpu_device_plugin"] == "vgpu_scheduler"


def test_sample_group_vars_document_every_global_with_its_default():
    text = (SAMPLE / "group_vars" / "all" / "kubegpu.yml").read_text()
    data = yaml.safe_load(text)
    assert {key: data[key] for key in DEFAULTS} == DEFAULTS
    assert data["kubegpu_gpu_taint_enabled"] == "{{ kubegpu_openfaas_enabled and kubegpu_openfaas_edition != 'community' }}"
    for name in DOCUMENTED_ONLY:
        assert f"# {name}:" in text, name
