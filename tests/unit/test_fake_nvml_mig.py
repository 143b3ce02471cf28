"""The fake NVML library's MIG management calls, driven through the real pynvml binding.

Expected profiles, instance counts and placements are NVIDIA's published tables: MIG user guide, "Supported MIG
Profiles" (https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html): per product the
profile name, fraction of memory (eighths), fraction of SMs (sevenths), number of instances available; and the
placements `nvidia-smi mig -lgipp` lists on an A100 in the guide's "Getting Started" section, the same for every
A100/H100 (1g: {0..6}:1, 1g with two memory slices: {0,2,4,6}:2, 2g: {0,2,4}:2, 3g: {0,4}:4, 4g: {0}:4, 7g: {0}:8).
Each case runs in a fresh Python process, because the dynamic loader reads LD_LIBRARY_PATH only at start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import fake_nvml

PROFILES = """
import json, pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(0)
out = {}
for index in range(n.NVML_GPU_INSTANCE_PROFILE_COUNT):
    try:
        info = n.nvmlDeviceGetGpuInstanceProfileInfo(h, index)
    except n.NVMLError_NotSupported:
        continue
    count = n.c_uint(0)
    n.nvmlDeviceGetGpuInstancePossiblePlacements(h, info.id, None, n.byref(count))
    placements = (n.c_nvmlGpuInstancePlacement_t * count.value)()
    n.nvmlDeviceGetGpuInstancePossiblePlacements(h, info.id, placements, n.byref(count))
    name = info.name.decode() if isinstance(info.name, bytes) else info.name
    out[name] = {"slices": info.sliceCount, "instances": info.instanceCount, "memory": info.memorySizeMB,
                 "sms": info.multiprocessorCount, "placements": [[p.start, p.size] for p in placements]}
n.nvmlShutdown()
print(json.dumps(out))
"""

# NVIDIA's table: name: (compute slices of 7, memory eighths, instances)
A100_40GB = {
    "1g.5gb": (1, 1, 7),
    "1g.5gb+me": (1, 1, 1),
    "1g.10gb": (1, 2, 4),
    "2g.10gb": (2, 2, 3),
    "3g.20gb": (3, 4, 2),
    "4g.20gb": (4, 4, 1),
    "7g.40gb": (7, 8, 1),
}
# "For A100-SXM4-80GB, the profile names will change according to the memory proportion" (same guide); H100 80GB's
# table has the same names, fractions and counts
NAMES_80GB = ["1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]
TABLE_80GB = dict(zip(NAMES_80GB, A100_40GB.values()))
PLACEMENT_STARTS = {
    (1, 1): [0, 1, 2, 3, 4, 5, 6],
    (1, 2): [0, 2, 4, 6],
    (2, 2): [0, 2, 4],
    (3, 4): [0, 4],
    (4, 4): [0],
    (7, 8): [0],
}


def run(code: str, scenario: str, state=None, check=True) -> subprocess.CompletedProcess:
    env = fake_nvml.environment(scenario, state=state)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=check)


@pytest.mark.parametrize(
    ("scenario", "table", "sms_per_slice"),
    [("a100_mig", A100_40GB, 14), ("a100_80gb", TABLE_80GB, 14), ("h100x8", TABLE_80GB, None)],
)
def test_gpu_instance_profiles_are_nvidias_table(scenario, table, sms_per_slice):
    profiles = json.loads(run(PROFILES, scenario).stdout)
    assert sorted(profiles) == sorted(f"MIG {name}" for name in table)
    full = profiles[f"MIG {next(name for name in table if name.startswith('7g'))}"]["memory"]
    for name, (slices, eighths, instances) in table.items():
        got = profiles[f"MIG {name}"]
        assert (got["slices"], got["instances"]) == (slices, instances), name
        assert [start for start, _size in got["placements"]] == PLACEMENT_STARTS[(slices, eighths)], name
        assert {size for _start, size in got["placements"]} == {eighths}, name
        # memory: the published fraction of the 7g profile's, within rounding to the memory slices' granularity
        assert abs(got["memory"] / full - eighths / 8) < 0.02, name
        # the guide's fraction of SMs: A100's 108 SMs give 14 per compute slice (98 in 7g)
        if sms_per_slice:
            assert got["sms"] == slices * sms_per_slice, name


LIFECYCLE = """
import json, pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(0)
out = {"mode_before": n.nvmlDeviceGetMigMode(h)}
try:
    n.nvmlDeviceCreateGpuInstance(h, 9)
except n.NVMLError as exc:
    out["create_while_off"] = exc.value
out["activation"] = n.nvmlDeviceSetMigMode(h, 1)
out["mode_after"] = n.nvmlDeviceGetMigMode(h)
gis = [n.nvmlDeviceCreateGpuInstance(h, 9) for _ in range(2)]
try:
    n.nvmlDeviceCreateGpuInstance(h, 9)
except n.NVMLError as exc:
    out["third_3g"] = exc.value
out["gpu_instances"] = [[n.nvmlGpuInstanceGetInfo(gi).id, n.nvmlGpuInstanceGetInfo(gi).placement.start] for gi in gis]
cis = [n.nvmlGpuInstanceCreateComputeInstance(gi, 2) for gi in gis]
try:
    n.nvmlGpuInstanceDestroy(gis[0])
except n.NVMLError as exc:
    out["destroy_with_ci"] = exc.value
out["mig_devices"] = n.nvmlDeviceGetMaxMigDeviceCount(h)
names = []
for slot in range(7):
    try:
        names.append(n.nvmlDeviceGetName(n.nvmlDeviceGetMigDeviceHandleByIndex(h, slot)))
    except n.NVMLError_NotFound:
        pass
out["names"] = names
n.nvmlComputeInstanceDestroy(cis[1])
n.nvmlGpuInstanceDestroy(gis[1])
n.nvmlShutdown()
print(json.dumps(out))
"""

READ_BACK = """
import json, pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(0)
m = n.nvmlDeviceGetMigDeviceHandleByIndex(h, 0)
print(json.dumps({"mode": n.nvmlDeviceGetMigMode(h), "gi": n.nvmlDeviceGetGpuInstanceId(m), "name": n.nvmlDeviceGetName(m),
                  "remaining_3g": n.nvmlDeviceGetGpuInstanceRemainingCapacity(h, 9)}))
"""


def test_mig_state_persists_across_processes_and_instances_follow_nvml_rules(tmp_path):
    state = tmp_path / "state.json"
    out = json.loads(run(LIFECYCLE, "a100_80gb", state).stdout)
    assert out["mode_before"] == [0, 0]
    assert out["create_while_off"] == 3  # NOT_SUPPORTED while MIG is off
    assert (out["activation"], out["mode_after"]) == (0, [1, 1])
    assert out["third_3g"] == 23  # INSUFFICIENT_RESOURCES: two 3g fit
    assert out["gpu_instances"] == [[1, 0], [2, 4]]  # the ids nvidia-smi shows for 3g instances at slices 0 and 4
    assert out["destroy_with_ci"] == 19  # IN_USE while a compute instance exists
    assert out["names"] == ["NVIDIA A100-SXM4-80GB MIG 3g.40gb"] * 2
    # another process sees what the first left: MIG on, one 3g.40gb (GPU instance 1), room for one more
    back = json.loads(run(READ_BACK, "a100_80gb", state).stdout)
    assert back == {"mode": [1, 1], "gi": 1, "name": "NVIDIA A100-SXM4-80GB MIG 3g.40gb", "remaining_3g": 1}


SET_MODE = """
import json, sys, pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(0)
status = n.nvmlDeviceSetMigMode(h, int(sys.argv[1]))
print(json.dumps({"status": status, "mode": n.nvmlDeviceGetMigMode(h),
                  "processes": [p.pid for p in n.nvmlDeviceGetComputeRunningProcesses(h)]}))
"""


def scenario_copy(tmp_path, name, **mig_or_device):
    data = fake_nvml.load(name)
    data["devices"][0].update(mig_or_device.pop("device", {}))
    data["devices"][0]["mig"].update(mig_or_device)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def run_file(code, scenario_path, state, *args):
    env = fake_nvml.environment("a100_80gb", state=state)
    env["FAKE_NVML_SCENARIO"] = str(scenario_path)
    return json.loads(
        subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True).stdout
    )


def test_mode_change_pending_until_reset_where_the_gpu_cannot_be_reset_now(tmp_path):
    state = tmp_path / "state.json"
    path = scenario_copy(tmp_path, "a100_80gb", activation="reset_required")
    out = run_file(SET_MODE, path, state, "1")
    assert (out["status"], out["mode"]) == (16, [0, 1])  # RESET_REQUIRED: pending 1, current 0
    fake_nvml.reset_gpus(state)
    assert run_file(SET_MODE, path, state, "1")["mode"] == [1, 1]


def test_mode_change_refused_in_use_with_compute_processes(tmp_path):
    path = scenario_copy(tmp_path, "a100_80gb", device={"processes": [{"pid": 4242, "used_memory_mib": 512}]})
    out = run_file(SET_MODE, path, tmp_path / "state.json", "1")
    assert out == {"status": 19, "mode": [0, 0], "processes": [4242]}
    assert not (tmp_path / "state.json").exists()


ENABLE = """
import json, pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(0)
before = n.nvmlDeviceGetMigMode(h)
n.nvmlDeviceSetMigMode(h, 1)
print(json.dumps(before))
"""


def test_the_default_scenarios_state_lives_beside_it_and_a_tests_scenario_keeps_it_in_the_process(tmp_path):
    """The lab installs the scenario at /etc/fake-nvml/scenario.json: the state goes to /etc/fake-nvml/state.json
    (here a copy built with DEFAULT_SCENARIO in tmp_path). A scenario named by FAKE_NVML_SCENARIO without
    FAKE_NVML_STATE writes no file (the shipped scenarios stay as they are)."""
    default = tmp_path / "default" / "scenario.json"
    default.parent.mkdir()
    default.write_text(fake_nvml.scenario("a100_80gb").read_text())
    build = tmp_path / "build"
    subprocess.run(
        ["make", "-s", "-C", str(fake_nvml.HERE), f"BUILD_DIR={build}", f"DEFAULT_SCENARIO={default}"],
        check=True,
        capture_output=True,
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("FAKE_NVML_")}
    env["LD_LIBRARY_PATH"] = str(build)
    modes = [
        json.loads(subprocess.run([sys.executable, "-c", ENABLE], capture_output=True, text=True, env=env, check=True).stdout)
    ]
    modes.append(
        json.loads(subprocess.run([sys.executable, "-c", ENABLE], capture_output=True, text=True, env=env, check=True).stdout)
    )
    assert modes == [[0, 0], [1, 1]]
    assert fake_nvml.read_state(default.parent / "state.json")["gpus"][0]["current"] == 1

    shipped = sorted(path.name for path in fake_nvml.HERE.iterdir())
    env["FAKE_NVML_SCENARIO"] = str(fake_nvml.scenario("a100_80gb"))
    for _run in range(2):
        assert json.loads(
            subprocess.run([sys.executable, "-c", ENABLE], capture_output=True, text=True, env=env, check=True).stdout
        ) == [0, 0]
    assert sorted(path.name for path in fake_nvml.HERE.iterdir()) == shipped


LIST_MIG = """
import json, pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(0)
found = []
for slot in range(n.nvmlDeviceGetMaxMigDeviceCount(h)):
    try:
        m = n.nvmlDeviceGetMigDeviceHandleByIndex(h, slot)
    except n.NVMLError_NotFound:
        continue
    found.append([n.nvmlDeviceGetName(m), n.nvmlDeviceGetGpuInstanceId(m), n.nvmlDeviceGetMemoryInfo(m).total >> 20])
print(json.dumps(found))
"""


def test_scenario_mig_devices_of_a_product_without_a_profile_table_are_still_listed(tmp_path):
    """A scenario may describe MIG devices of a GPU this library has no profile table for (here an A30's PCI id):
    they are listed as the scenario says, with its memory."""
    data = fake_nvml.load("a100_mig")
    data["devices"][0]["pci_device_id"] = "0x20B710DE"
    for device in data["devices"][0]["mig"]["devices"]:
        device["memory_total_mib"] = 11968
    path = tmp_path / "a30.json"
    path.write_text(json.dumps(data))
    env = fake_nvml.environment("a100_mig")
    env["FAKE_NVML_SCENARIO"] = str(path)
    listed = json.loads(
        subprocess.run([sys.executable, "-c", LIST_MIG], capture_output=True, text=True, env=env, check=True).stdout
    )
    assert listed == [["NVIDIA A100-SXM4-40GB MIG 3g.20gb", 1, 11968], ["NVIDIA A100-SXM4-40GB MIG 3g.20gb", 2, 11968]]
