"""kubegpu.core.gpu_mig against the fake NVML library (real pynvml), through the real ``ansible`` command.

Expected layouts are NVIDIA's: the named layouts as mig-parted's default configuration ships them
(deployments/systemd/config-default.yaml in github.com/NVIDIA/mig-parted: ``all-balanced`` is 1g.5gb x2, 2g.10gb x1,
3g.20gb x1 on an A100 40GB and 1g.10gb x2, 2g.20gb x1, 3g.40gb x1 on an A100 80GB / H100 80GB; ``all-1g.10gb`` is seven
1g.10gb on an H100 80GB), and what fits a GPU is the MIG user guide's table ("Supported MIG Profiles",
https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html: e.g. two 3g.40gb at most, no
1g.5gb on an H100 80GB, no MIG on a T4).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import yaml

from tests.support import fake_nvml
from tests.support.adhoc import BIN, ansible_env, run_module
from tests.support.mig_parted import MIG_PARTED_DEFAULT
from tests.support.role_runs import run_playbook

# the NVML calls that change a GPU's MIG state
WRITES = {
    "nvmlDeviceSetMigMode",
    "nvmlDeviceCreateGpuInstance",
    "nvmlDeviceCreateGpuInstanceWithPlacement",
    "nvmlGpuInstanceDestroy",
    "nvmlGpuInstanceCreateComputeInstance",
    "nvmlComputeInstanceDestroy",
}


class Node:
    """One simulated node: a scenario (a shipped one or a changed copy), its MIG state file, its NVML call log."""

    def __init__(self, tmp_path: Path, scenario: str, **device_changes) -> None:
        self.dir = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.state = tmp_path / "nvml-state.json"
        self.calls = tmp_path / "calls.log"
        self.env = fake_nvml.environment(scenario, call_log=self.calls, state=self.state)
        if device_changes:
            data = fake_nvml.load(scenario)
            for device in data["devices"]:
                mig = device_changes.get("mig")
                device.update({key: value for key, value in device_changes.items() if key != "mig"})
                if mig:
                    device["mig"].update(mig)
            path = tmp_path / f"{scenario}.json"
            path.write_text(json.dumps(data))
            self.env["FAKE_NVML_SCENARIO"] = str(path)

    def mig(self, config: str, check: bool = False, **args):
        self.calls.unlink(missing_ok=True)
        return run_module("kubegpu.core.gpu_mig", {"config": config, **args}, check=check, diff=True, env=self.env)

    def writes(self) -> Counter:
        lines = self.calls.read_text().splitlines() if self.calls.exists() else []
        return Counter(line for line in lines if line in WRITES)


def profiles(gpu_result: dict, when: str = "after") -> list[str]:
    return sorted(instance["profile"] for instance in gpu_result[when]["instances"])


def test_a100_and_h100_into_two_layouts_then_nothing_to_change_and_gpu_facts_sees_the_instances(tmp_path):
    a100 = Node(tmp_path / "a100", "a100_mig")  # A100 40GB, MIG on, two 3g.20gb
    h100 = Node(tmp_path / "h100", "h100x8")  # 8 x H100 80GB, MIG off

    first = a100.mig("all-balanced")
    assert first.status == "ok" and first.changed, first.result
    assert profiles(first.result["gpus"][0]) == ["1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"]
    # one of the two 3g.20gb stays: only the other one is destroyed
    assert a100.writes()["nvmlGpuInstanceDestroy"] == 1
    assert first.result["plan"] == [
        "GPU 0: destroy 3g.20gb (GPU instance 1)",
        "GPU 0: create 2g.10gb x1",
        "GPU 0: create 1g.5gb x2",
    ]
    again = a100.mig("all-balanced")
    assert (again.changed, again.result["plan"], a100.writes()) == (False, [], Counter())

    first = h100.mig("all-1g.10gb")
    assert first.status == "ok" and first.changed, first.result
    assert first.result["plan"][:2] == ["GPU 0: enable MIG mode", "GPU 0: create 1g.10gb x7"]
    assert [profiles(gpu) for gpu in first.result["gpus"]] == [["1g.10gb"] * 7] * 8
    assert first.result["reset_required"] is False
    assert h100.writes() == Counter(
        {"nvmlDeviceSetMigMode": 8, "nvmlDeviceCreateGpuInstanceWithPlacement": 56, "nvmlGpuInstanceCreateComputeInstance": 56}
    )
    again = h100.mig("all-1g.10gb")
    assert (again.changed, again.result["plan"], h100.writes()) == (False, [], Counter())

    facts = run_module("kubegpu.core.gpu_facts", {"sources": ["nvml"], "sysfs_root": str(tmp_path)}, env=h100.env).result[
        "ansible_facts"
    ]["gpu"]
    gpu0 = facts["devices"][0]
    assert (gpu0["mig_mode_current"], gpu0["mig_device_count"]) == (True, 7)
    assert {device["name"] for device in gpu0["mig_devices"]} == {"NVIDIA H100 80GB HBM3 MIG 1g.10gb"}
    assert sorted(device["uuid"] for device in gpu0["mig_devices"]) == sorted(
        instance["uuid"] for instance in first.result["gpus"][0]["after"]["instances"]
    )


def test_a_change_of_layout_destroys_and_creates_only_what_differs(tmp_path):
    node = Node(tmp_path, "a100_80gb")
    assert node.mig("all-balanced").changed
    before = node.mig("all-balanced").result["gpus"][0]["after"]["instances"]
    (kept,) = [instance for instance in before if instance["profile"] == "3g.40gb"]

    change = node.mig("all-3g.40gb")
    assert change.changed, change.result
    # all-balanced (1g.10gb x2, 2g.20gb, 3g.40gb) to all-3g.40gb (3g.40gb x2): three instances go, one comes
    assert node.writes() == Counter(
        {
            "nvmlComputeInstanceDestroy": 3,
            "nvmlGpuInstanceDestroy": 3,
            "nvmlDeviceCreateGpuInstanceWithPlacement": 1,
            "nvmlGpuInstanceCreateComputeInstance": 1,
        }
    )
    after = change.result["gpus"][0]["after"]["instances"]
    assert profiles(change.result["gpus"][0]) == ["3g.40gb", "3g.40gb"]
    assert kept in after  # same GPU instance, same MIG device UUID
    assert change.result["diff"]["before"]["GPU 0"]["instances"] != change.result["diff"]["after"]["GPU 0"]["instances"]

    off = node.mig("all-disabled")
    assert off.result["plan"][-1] == "GPU 0: disable MIG mode"
    assert off.result["gpus"][0]["after"] == {"mig_enabled": False, "mig_pending": False, "instances": []}
    assert node.mig("all-disabled").changed is False


def test_check_mode_reports_the_plan_and_writes_nothing(tmp_path):
    node = Node(tmp_path, "a100_80gb")
    check = node.mig("all-7g.80gb", check=True)
    assert check.status == "ok" and check.changed
    assert check.result["plan"] == ["GPU 0: enable MIG mode", "GPU 0: create 7g.80gb x1"]
    assert check.result["diff"]["after"]["GPU 0"] == {
        "mig_enabled": True,
        "mig_pending": True,
        "instances": ["7g.80gb at slice 0"],
    }
    assert node.writes() == Counter()
    assert not node.state.exists()
    real = node.mig("all-7g.80gb")
    assert (real.result["plan"], real.result["diff"]) == (check.result["plan"], check.result["diff"])


H100_SPLIT_REFUSED = {
    "version": "v1",
    "mig-configs": {
        "split": [
            {"devices": [0], "mig-enabled": True, "mig-devices": {"1g.10gb": 7}},
            {"devices": [1], "mig-enabled": True, "mig-devices": {"3g.40gb": 3}},
        ]
    },
}


# case: (scenario, changes to its GPUs, module arguments, a part of the refusal's message)
REFUSALS = {
    "unknown-config": ("h100x8", {}, {"config": "all-9g.99gb"}, "config='all-9g.99gb' is not a known MIG layout"),
    "profile-not-offered": (
        "h100x8",
        {},
        {"config": "all-1g.5gb"},
        "GPU 0 (NVIDIA H100 80GB HBM3) does not offer the MIG profile(s) 1g.5gb",
    ),
    # GPU 0's part fits; GPU 1's three 3g.40gb do not: nothing changes on GPU 0 either
    "more-than-fit": (
        "h100x8",
        {},
        {"config": "split", "configs": H100_SPLIT_REFUSED},
        "GPU 1 (NVIDIA H100 80GB HBM3): the instances config 'split'",
    ),
    # all-1g.20gb has no device filter (all-1g.10gb's filters leave a T4 alone, as mig-parted does)
    "not-mig-capable": ("t4", {}, {"config": "all-1g.20gb"}, "GPU 0 (Tesla T4) is not MIG-capable"),
    # a driver before MIG (R418): its library has no nvmlDeviceGetMigMode
    "old-driver": ("old_driver", {}, {"config": "all-1g.20gb"}, "GPU 0 (Tesla P100-PCIE-16GB) is not MIG-capable"),
    "running-processes": (
        "a100_80gb",
        {"processes": [{"pid": 4242, "used_memory_mib": 900}]},
        {"config": "all-1g.10gb"},
        "compute processes (pid 4242)",
    ),
    # a compute-instance profile smaller than its GPU instance (MIG user guide: "1c.3g.40gb", one of the compute
    # instance profiles inside a 3g.40gb GPU instance) is not supported: refused as such, not as a profile not offered
    "compute-instance-profile": (
        "a100_80gb",
        {},
        {
            "config": "ci",
            "configs": {
                "version": "v1",
                "mig-configs": {"ci": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1c.3g.40gb": 3}}]},
            },
        },
        "compute-instance profile(s) 1c.3g.40gb",
    ),
    "bad-format": (
        "a100_80gb",
        {},
        {"config": "x", "configs": {"version": "v2", "mig-configs": {}}},
        "configs: version='v2' is not valid",
    ),
}


def test_each_refusal_changes_nothing(tmp_path):
    # one ansible-playbook run, one task per case, each with its own node's environment
    nodes = {case: Node(tmp_path / case, scenario, **changes) for case, (scenario, changes, _args, _message) in REFUSALS.items()}
    tasks = [
        {"name": case, "kubegpu.core.gpu_mig": args, "environment": nodes[case].env, "ignore_errors": True}
        for case, (_scenario, _changes, args, _message) in REFUSALS.items()
    ]
    run = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    for case, (_scenario, _changes, _args, message) in REFUSALS.items():
        refused = run.task(case)
        assert refused.failed and message in refused.result["msg"], (case, refused.result)
        assert nodes[case].writes() == Counter(), case
        assert not nodes[case].state.exists(), case


def test_a_mode_change_that_needs_a_reset_is_reported_and_finished_after_the_reboot(tmp_path):
    node = Node(tmp_path, "a100_80gb", mig={"activation": "reset_required"})
    first = node.mig("all-3g.40gb")
    assert first.changed and first.result["reset_required"] is True
    assert first.result["gpus"][0]["after"]["mig_pending"] is True and first.result["gpus"][0]["after"]["mig_enabled"] is False
    assert node.writes() == Counter({"nvmlDeviceSetMigMode": 1})
    # before the reboot a re-run (the role's nightly site.yml) changes nothing, writes nothing and still says why
    # (NVML creates no GPU instance while MIG mode is only pending: nvmlDeviceCreateGpuInstance answers NOT_SUPPORTED)
    waiting = node.mig("all-3g.40gb")
    assert (waiting.changed, waiting.result["plan"], waiting.result["reset_required"]) == (False, [], True)
    assert node.writes() == Counter()
    fake_nvml.reset_gpus(node.state)  # the reboot
    second = node.mig("all-3g.40gb")
    assert (second.changed, second.result["reset_required"], profiles(second.result["gpus"][0])) == (True, False, ["3g.40gb"] * 2)
    assert node.mig("all-3g.40gb").changed is False


def test_an_operators_mig_parted_file_on_the_node(tmp_path):
    node = Node(tmp_path, "a100_mig")
    layout = tmp_path / "config.yaml"
    layout.write_text(
        "version: v1\nmig-configs:\n  custom:\n    - devices: all\n      mig-enabled: true\n"
        '      mig-devices:\n        "4g.20gb": 1\n        "3g.20gb": 1\n'
    )
    done = node.mig("custom", config_file=str(layout))
    assert done.status == "ok" and profiles(done.result["gpus"][0]) == ["3g.20gb", "4g.20gb"], done.result
    # the 3g.20gb at slice 4 stays (4g.20gb fits only at slice 0)
    assert done.result["plan"] == ["GPU 0: destroy 3g.20gb (GPU instance 1)", "GPU 0: create 4g.20gb x1"]


def test_ansible_doc_shows_the_format_with_nvidias_all_balanced_layout():
    """The module's documentation carries one of NVIDIA's named layouts as mig-parted ships it."""
    doc = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", "kubegpu.core.gpu_mig"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        check=True,
    )
    page = json.loads(doc.stdout)["kubegpu.core.gpu_mig"]
    examples = yaml.safe_load(page["examples"])
    (shown,) = [
        task["kubegpu.core.gpu_mig"]["configs"]
        for task in examples
        if task.get("kubegpu.core.gpu_mig", {}).get("config") == "all-balanced"
    ]
    assert shown["mig-configs"]["all-balanced"] == MIG_PARTED_DEFAULT["mig-configs"]["all-balanced"]
    assert "mig-configs" in " ".join(page["doc"]["description"])


def test_a_layout_that_matches_no_gpu_changes_nothing_and_says_so(tmp_path):
    # NVIDIA's all-1g.10gb is filtered to A100 80GB / H100 PCI device ids (mig-parted's config-default.yaml): a T4 is
    # left alone, as mig-parted leaves it, and the module warns instead of staying silent
    node = Node(tmp_path, "t4")
    run = node.mig("all-1g.10gb")
    assert (run.changed, run.result["plan"]) == (False, [])
    assert any(
        "matches no GPU of this node" in warning and "0x1EB810DE" in warning for warning in run.result.get("warnings", [])
    ), run.result
