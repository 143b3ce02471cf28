"""The role kubegpu.core.gpu_mig as site.yml runs it (playbooks/facts.yml, then playbooks/nodes.yml's "MIG layouts"
play), on the site bench (tests/support/site_bench.py): GPU hosts whose GPUs are the fake NVML library's (an A100
40GB and 8 x H100 80GB, their MIG state kept in a file per host, tests/support/fake_nvml/README.md) and the test API
server as their cluster.

The layouts expected are NVIDIA's, from mig-parted's deployments/systemd/config-default.yaml (the GPU Operator's
default mig-parted config): ``all-1g.5gb`` is seven 1g.5gb per GPU; ``all-balanced`` on an A100-40GB (device filter
0x20B010DE) two 1g.5gb, one 2g.10gb and one 3g.20gb; ``all-3g.40gb`` two 3g.40gb per GPU. The labels are the ones
NVIDIA's mig-manager reads (``nvidia.com/mig.config``) and writes (``nvidia.com/mig.config.state``: ``success``,
``failed``). The device plugin's resources (k8s-device-plugin v0.20.0, migStrategy mixed: one
``nvidia.com/mig-<profile>`` per MIG device) are judged by the device plugin double
(tests/support/kubeapi/device_plugins.py), which reads the same MIG state file as the node's modules.
"""

from __future__ import annotations

import collections
import json
import typing as t

import pytest
import yaml

from tests.support import fake_nvml
from tests.support.kube_modules import get_object, node_labels, patch_node
from tests.support.kubeapi.device_plugins import MIG_STATE_ANNOTATION, SCENARIO_ANNOTATION
from tests.support.kubeapi.nodes import gpu_node
from tests.support.site_bench import SiteBench

pytestmark = pytest.mark.slow

SCENARIOS = {"gpu-node-1": "a100_mig", "gpu-node-2": "t4", "gpu-node-3": "h100x8"}
STATE = "nvml-state.json"  # the fake NVML state file of each GpuHost (tests/support/role_runs.py gpu_host_vars)
CONFIG_LABEL, STATE_LABEL = "nvidia.com/mig.config", "nvidia.com/mig.config.state"
NODE_PLAYS = ("facts.yml", "nodes.yml")
# the bench sets no node up: the driver and toolkit plays skip, the MIG play runs
NO_SETUP = {"kubegpu_manage_driver": False, "kubegpu_manage_toolkit": False}


@pytest.fixture
def bench(kubeapi, tmp_path) -> SiteBench:
    kubeapi.admin.set_ready_controller(True)
    kubeapi.admin.load(yaml.safe_dump(gpu_node("cpu-node-1", gpus=0)))
    bench = SiteBench(kubeapi, tmp_path, scenarios=SCENARIOS)
    for node, scenario in SCENARIOS.items():
        # the Node's GPUs as the device plugin double sees them: the host's scenario and its MIG state file
        annotations = {SCENARIO_ANNOTATION: scenario, MIG_STATE_ANNOTATION: str(state_file(bench, node))}
        patch_node(kubeapi, node, {"metadata": {"annotations": annotations}})
    return bench


def state_file(bench: SiteBench, node: str):
    return bench.workdir / "hosts" / node / STATE


def layout(bench: SiteBench, node: str) -> list[collections.Counter]:
    """Per GPU of ``node``, the GPU instances' profiles as the fake NVML library holds them (its state file)."""
    state = fake_nvml.read_state(state_file(bench, node))
    return [collections.Counter(gi["name"] for gi in gpu["gpu_instances"]) for gpu in state.get("gpus", [])]


def instance_uuids(bench: SiteBench, node: str) -> dict[str, str]:
    """Compute instance UUID -> its GPU instance's profile, on every GPU of ``node``."""
    state = fake_nvml.read_state(state_file(bench, node))
    return {
        ci["uuid"]: gi["name"] for gpu in state.get("gpus", []) for gi in gpu["gpu_instances"] for ci in gi["compute_instances"]
    }


def run(bench: SiteBench, layouts: dict[str, str], check: bool = False, **extra: t.Any):
    for node in SCENARIOS:
        bench.host_vars[node] = {"kubegpu_mig_config": layouts[node]} if node in layouts else {}
    return bench.run(*NODE_PLAYS, extra_vars={**NO_SETUP, **extra}, check=check)


def test_two_nodes_get_two_layouts_the_rerun_changes_nothing_and_a_change_only_what_differs(bench, kubeapi):
    # gpu-node-3 asks through its Node's label, as for mig-manager; gpu-node-1's variable wins over its label
    patch_node(kubeapi, "gpu-node-3", {"metadata": {"labels": {CONFIG_LABEL: "all-3g.40gb"}}})
    patch_node(kubeapi, "gpu-node-1", {"metadata": {"labels": {CONFIG_LABEL: "all-7g.40gb"}}})
    wanted = {"gpu-node-1": "all-1g.5gb"}

    checked = run(bench, wanted, check=True)
    assert checked.rc == 0, checked.failures or checked.explain()
    assert not state_file(bench, "gpu-node-1").exists() and not state_file(bench, "gpu-node-3").exists(), "check mode wrote"
    assert STATE_LABEL not in node_labels(kubeapi, "gpu-node-1")
    assert "GPU 0" in checked.task("Say the plan", "gpu-node-1").result["msg"]

    first = run(bench, wanted)
    assert first.rc == 0, first.failures or first.explain()
    assert layout(bench, "gpu-node-1") == [collections.Counter({"1g.5gb": 7})]
    assert layout(bench, "gpu-node-3") == [collections.Counter({"3g.40gb": 2})] * 8
    for node in ("gpu-node-1", "gpu-node-3"):
        assert node_labels(kubeapi, node)[STATE_LABEL] == "success"
        assert not (get_object(kubeapi, f"/api/v1/nodes/{node}")["spec"].get("unschedulable")), f"{node} left cordoned"
    # the node that asks for nothing: no task changed anything there, no label
    assert not [change for change in first.changed_on if change.startswith("gpu-node-2:")], first.changed_on
    assert STATE_LABEL not in node_labels(kubeapi, "gpu-node-2")
    assert not state_file(bench, "gpu-node-2").exists()

    second = run(bench, wanted)
    assert second.rc == 0, second.failures or second.explain()
    assert second.changed == [], second.changed_on

    before = instance_uuids(bench, "gpu-node-1")
    changed = run(bench, {"gpu-node-1": "all-balanced"})
    assert changed.rc == 0, changed.failures or changed.explain()
    assert layout(bench, "gpu-node-1") == [collections.Counter({"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1})]
    after = instance_uuids(bench, "gpu-node-1")
    # two of the seven 1g.5gb stay as they were (same compute instances); only the others are destroyed
    assert len(set(after) & set(before)) == 2 and all(before[uuid] == "1g.5gb" for uuid in set(after) & set(before))
    assert not [change for change in changed.changed_on if change.startswith(("gpu-node-2:", "gpu-node-3:"))], changed.changed_on
    assert node_labels(kubeapi, "gpu-node-1")[STATE_LABEL] == "success"


@pytest.mark.parametrize(
    "node, configs, reason",
    [
        # a T4 (Turing) has no MIG (NVIDIA MIG user guide, "Supported GPUs": A100, A30, H100, H200, B200, ...)
        ("gpu-node-2", None, "GPU 0"),
        # no A100-40GB profile of this name (MIG user guide, "A100 MIG Profiles")
        (
            "gpu-node-1",
            {"version": "v1", "mig-configs": {"odd": [{"devices": "all", "mig-enabled": True, "mig-devices": {"5g.50gb": 1}}]}},
            "5g.50gb",
        ),
    ],
    ids=["not-mig-capable", "unknown-profile"],
)
def test_a_refused_layout_writes_the_failed_state_fails_the_host_with_the_reason_and_changes_nothing(
    bench, kubeapi, node, configs, reason
):
    extra = {"kubegpu_mig_configs": configs} if configs else {}
    layouts = {node: "odd" if configs else "all-1g.5gb"}
    refused = run(bench, layouts, **extra)
    assert refused.rc != 0
    assert any(reason in failure and node in failure for failure in refused.failures), refused.failures
    assert node_labels(kubeapi, node)[STATE_LABEL] == "failed"
    assert not get_object(kubeapi, f"/api/v1/nodes/{node}")["spec"].get("unschedulable"), "refused before the drain"
    # the GPUs as the scenario has them: no state written, or the A100's two 3g.20gb untouched
    assert layout(bench, node) in ([], [collections.Counter({"3g.20gb": 2})])


def test_gpu_validate_checks_the_mig_resources_of_a_mig_node_and_fails_naming_a_missing_one(bench, kubeapi):
    first = run(bench, {"gpu-node-1": "all-balanced"})
    assert first.rc == 0, first.failures or first.explain()
    stack = {
        "kubegpu_device_plugin": "nvidia_device_plugin",
        "gpu_validate_smoke": False,
        **NO_SETUP,
    }
    # the plugin with migStrategy mixed advertises each MIG profile: the allocatable check passes on the MIG node
    good = bench.run(
        "facts.yml", "cluster.yml", "validate.yml", extra_vars={**stack, "nvidia_device_plugin_mig_strategy": "mixed"}
    )
    assert good.rc == 0, good.failures or good.explain()
    allocatable = get_object(kubeapi, "/api/v1/nodes/gpu-node-1")["status"]["allocatable"]
    assert {
        key: allocatable.get(key) for key in ("nvidia.com/mig-1g.5gb", "nvidia.com/mig-2g.10gb", "nvidia.com/mig-3g.20gb")
    } == {
        "nvidia.com/mig-1g.5gb": "2",
        "nvidia.com/mig-2g.10gb": "1",
        "nvidia.com/mig-3g.20gb": "1",
    }
    # the layout changed by hand (the module alone, as nvidia-smi mig would): the plugin's pod still advertises what it
    # enumerated when it started, so gpu_validate, judging by the GPU facts, fails naming the node and the resource
    by_hand = {
        "name": "A MIG layout changed by hand",
        "hosts": "gpu-node-1",
        "gather_facts": False,
        "tasks": [{"name": "Partition by hand", "kubegpu.core.gpu_mig": {"config": "all-1g.5gb"}}],
    }
    bad = bench.run(by_hand, "facts.yml", "validate.yml", extra_vars={**stack, "nvidia_device_plugin_mig_strategy": "mixed"})
    assert bad.rc != 0
    assert "gpu-node-1: allocatable: nvidia.com/mig-1g.5gb is 2, expected 7" in bad.message, bad.message
    # the role's change restarts the device stack's pods on the node: they enumerate the new layout
    again = run(bench, {"gpu-node-1": "all-balanced"})
    assert again.rc == 0, again.failures or again.explain()
    good = bench.run("facts.yml", "validate.yml", extra_vars={**stack, "nvidia_device_plugin_mig_strategy": "mixed"})
    assert good.rc == 0, good.failures or good.explain()


def test_a_mode_change_waiting_for_a_reboot_drains_once_and_keeps_the_state_pending_until_the_reboot(kubeapi, tmp_path):
    """An A100 80GB whose MIG mode change needs a reboot (NVML's activation status RESET_REQUIRED, as for a GPU passed
    through to a VM: the mode stays pending, no GPU instance can be created before the reset). The first run drains
    and sets the mode; a run before the reboot changes nothing, does not drain again and keeps mig-manager's
    ``pending`` state; the run after the reboot creates the layout (NVIDIA's all-3g.40gb: two 3g.40gb) and writes
    ``success``."""
    kubeapi.admin.set_ready_controller(True)
    kubeapi.admin.load(yaml.safe_dump(gpu_node("cpu-node-1", gpus=0)))
    scenario = fake_nvml.load("a100_80gb")
    scenario["devices"][0]["mig"]["activation"] = "reset_required"
    (tmp_path / "a100_80gb_vm.json").write_text(json.dumps(scenario))
    bench = SiteBench(kubeapi, tmp_path, scenarios={"gpu-node-1": str(tmp_path / "a100_80gb_vm")})
    bench.host_vars["gpu-node-1"] = {"kubegpu_mig_config": "all-3g.40gb"}
    plays = {**NO_SETUP}

    first = bench.run(*NODE_PLAYS, extra_vars=plays)
    assert first.rc == 0, first.failures or first.explain()
    assert any("Cordon" in change or "drain" in change.lower() for change in first.changed_on), first.changed_on
    assert node_labels(kubeapi, "gpu-node-1")[STATE_LABEL] == "pending"
    assert layout(bench, "gpu-node-1") == [collections.Counter()]

    waiting = bench.run(*NODE_PLAYS, extra_vars=plays)
    assert waiting.rc == 0, waiting.failures or waiting.explain()
    assert waiting.changed == [], waiting.changed_on  # no drain, no label change, no NVML write
    assert "waits for a GPU reset or a reboot" in waiting.task("Say the plan", "gpu-node-1").result["msg"]
    assert node_labels(kubeapi, "gpu-node-1")[STATE_LABEL] == "pending"

    fake_nvml.reset_gpus(state_file(bench, "gpu-node-1"))  # the reboot
    done = bench.run(*NODE_PLAYS, extra_vars=plays)
    assert done.rc == 0, done.failures or done.explain()
    assert layout(bench, "gpu-node-1") == [collections.Counter({"3g.40gb": 2})]
    assert node_labels(kubeapi, "gpu-node-1")[STATE_LABEL] == "success"
    assert not get_object(kubeapi, "/api/v1/nodes/gpu-node-1")["spec"].get("unschedulable"), "left cordoned"
