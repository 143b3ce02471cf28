"""Role kubegpu.core.gpu_labels through ansible-playbook against the test API server (three GPU nodes,
gpu-node-1..3), with facts gathered by the real gpu_facts from the fake NVML scenarios and, for a GPU whose driver
is not loaded, a fake PCI bus (tests/support/role_runs.py says what is simulated). Labels and taints are read back
from the server's stored Node objects.

The three-way run (check mode, real run, no change on the second run) of this role with every label checked is in
test_aws_vgpu_plugin_role.py, which runs gpu_labels and aws_vgpu_plugin together as cluster.yml does."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support.fake_sysfs import PciFunction
from tests.support.kube_modules import node_labels, patch_node, writes
from tests.support.lab import report as lab_report
from tests.support.role_runs import GpuHost, run_role

pytestmark = pytest.mark.slow

NVIDIA = {"kubegpu_default_runtime": "nvidia"}


def node_taints(kubeapi, name: str) -> list[dict]:
    with urllib.request.urlopen(f"{kubeapi.url}/api/v1/nodes/{name}", timeout=10) as response:
        return json.loads(response.read())["spec"].get("taints") or []


def _run(kubeapi, hosts, variables=None, **kwargs):
    return run_role(kubeapi, "gpu_labels", hosts=hosts, variables=variables, **kwargs)


def test_held_back_nodes_lose_gpu_on_and_are_listed_stacks_per_node_group_stale_labels_and_taint_removed(kubeapi):
    hosts = {
        "node1": GpuHost("v100x2", "gpu-node-1", {**NVIDIA, "kubegpu_device_plugin": "nvidia_device_plugin"}),
        # a GPU on the PCI bus whose driver is not loaded: NVML answers DRIVER_NOT_LOADED
        "node2": GpuHost("driver_not_loaded", "gpu-node-2", NVIDIA, (PciFunction("0000:3b:00.0"),)),
        "node3": GpuHost("h100x8", "gpu-node-3", {"kubegpu_default_runtime": "runc", "kubegpu_device_plugin": "gpu_operator"}),
    }
    patch_node(kubeapi, "gpu-node-3", {"metadata": {"labels": {"gpu": "on", "nvidia.com/old.label": "x", "other.io/keep": "1"}}})
    patch_node(kubeapi, "gpu-node-1", {"spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}]}})
    extra = {"gpu_labels_deprecated_cuda_labels": True, "gpu_labels_remove_stale": True}  # taint off: no OpenFaaS

    run = _run(kubeapi, hosts, extra)
    assert run.rc == 0, run.stdout
    held = run.task("List the nodes held back from gpu=on").result["msg"]
    assert held == [
        "gpu-node-2: the NVIDIA driver is not loaded (nvml: NVML found no NVIDIA kernel driver (Driver Not Loaded)"
        + held[0].split("(Driver Not Loaded)", 1)[1],
        "gpu-node-3: its default runtime is 'runc', not 'nvidia' (kubegpu_default_runtime)",
    ], held
    v100, absent, h100 = (node_labels(kubeapi, f"gpu-node-{index}") for index in (1, 2, 3))
    assert (v100["gpu"], v100["kubegpu.io/device-stack"], v100["nvidia.com/gpu.deploy.operands"]) == (
        "on",
        "nvidia_device_plugin",
        "false",
    )
    assert (v100["nvidia.com/cuda.driver.major"], v100["nvidia.com/cuda.driver.rev"], v100["nvidia.com/cuda.runtime.minor"]) == (
        "535",
        "08",
        "2",
    )
    assert "gpu" not in absent and absent["nvidia.com/gpu.present"] == "true" and absent["nvidia.com/gpu.count"] == "1"
    assert absent["kubegpu.io/device-stack"] == "vgpu_scheduler" and "accelerator" not in absent
    assert "gpu" not in h100 and "nvidia.com/old.label" not in h100 and h100["other.io/keep"] == "1"
    assert h100["kubegpu.io/device-stack"] == "gpu_operator" and "nvidia.com/gpu.deploy.operands" not in h100
    assert node_taints(kubeapi, "gpu-node-1") == []

    again = _run(kubeapi, hosts, extra)
    assert again.rc == 0 and again.changed == [], again.changed


def test_a_broken_driver_is_held_back_from_gpu_on_with_the_reason_in_the_play_output(kubeapi):
    """Issue 22: node2's driver libraries were upgraded under its loaded 535 nvidia module (the fake NVML answers
    NVML_ERROR_LIB_RM_VERSION_MISMATCH, and the fake sysfs shows /sys/module/nvidia loaded with a GPU bound to it).
    The node had gpu=on from before; it loses it, and the play output names the broken driver and why."""
    hosts = {
        "node1": GpuHost("v100x2", "gpu-node-1", NVIDIA),
        "node2": GpuHost(
            "driver_mismatch",
            "gpu-node-2",
            NVIDIA,
            (PciFunction("0000:00:1e.0", device=0x1EB8, driver="nvidia"),),
            {"nvidia": "535.161.08"},
        ),
    }
    patch_node(kubeapi, "gpu-node-2", {"metadata": {"labels": {"gpu": "on"}}})

    # GpuHost's nvidia-smi is missing: the node's NVML is what fails
    run = _run(kubeapi, hosts)
    assert run.rc == 0, run.explain()
    (held,) = run.task("List the nodes held back from gpu=on").result["msg"]
    assert held.startswith(
        "gpu-node-2: the NVIDIA driver is broken (reboot or reinstall needed: the nvidia kernel module 535.161.08 is "
        "loaded (0000:00:1e.0 bound to it) but neither NVML nor nvidia-smi answers (nvml: nvmlInit failed: "
        "RM has detected an NVML/RM version mismatch. (NVML error 18, Driver/library version mismatch)"
    ), held
    assert "gpu-node-2: the NVIDIA driver is broken (reboot or reinstall needed" in run.stdout
    assert "gpu" not in node_labels(kubeapi, "gpu-node-2")
    assert node_labels(kubeapi, "gpu-node-1")["gpu"] == "on"


def test_unknown_and_doubled_device_stacks_are_refused_naming_them_before_any_change(kubeapi):
    hosts = {
        "node1": GpuHost("v100x2", "gpu-node-1", {**NVIDIA, "kubegpu_device_plugin": "hami"}),
        "node2": GpuHost("t4", "gpu-node-2", {**NVIDIA, "kubegpu_device_plugin": ["vgpu_scheduler", "nvidia_device_plugin"]}),
        "node3": GpuHost("h100x8", "gpu-node-3", NVIDIA),
    }
    run = _run(kubeapi, hosts, {"kubegpu_gpu_taint_enabled": True})
    assert run.rc != 0
    message = run.failed[0]["result"]["msg"]
    assert "kubegpu_device_plugin of host node1 is 'hami', which is not a device stack" in message, message
    assert "vgpu_scheduler, nvidia_device_plugin, gpu_operator, aws_vgpu_plugin, dra_driver, none" in message
    assert "of host node2 is ['vgpu_scheduler', 'nvidia_device_plugin']: one device stack per node" in message
    assert writes(kubeapi) == []


HEALTH_TAINT = {"key": "nvidia.com/gpu.health", "value": "unhealthy", "effect": "NoSchedule"}


def _held(run) -> dict[str, str]:
    task = run.task("List the nodes held back from gpu=on")
    return dict(line.split(": ", 1) for line in (task.result or {}).get("msg") or []) if task else {}


def test_unhealthy_gpus_hold_their_node_back_and_taint_it_until_healthy_again(kubeapi, tmp_path):
    """Issue 24: each GPU defect of tests/support/fake_nvml's health scenarios (as NVML reports it) holds its node back
    from gpu=on with the reason, and with kubegpu_unhealthy_taint taints it; a degraded GPU (clocks held down by the
    hardware) does neither; a node whose GPUs are healthy again gets gpu=on back and loses the taint. gpu_validate's
    report (JSON, Markdown, the lab's HTML page) shows each GPU's health and the node held back for it."""
    taint_on = {"kubegpu_unhealthy_taint": True}
    first = {
        "node1": GpuHost("ecc_uncorrectable_h100x2", "gpu-node-1", NVIDIA),
        "node2": GpuHost("gpu_lost_h100x2", "gpu-node-2", NVIDIA),
        "node3": GpuHost("hw_slowdown_t4", "gpu-node-3", NVIDIA),
    }
    # no device stack on the bench: the stack checks of node3 fail, which this test does not judge
    validate = {"gpu_validate_smoke": False, "gpu_validate_fail_on_error": False}
    run = run_role(kubeapi, ["gpu_labels", "gpu_validate"], hosts=first, variables={**taint_on, **validate}, cwd=tmp_path)
    assert run.rc == 0, run.explain()
    assert _held(run) == {
        "gpu-node-1": "unhealthy GPU (GPU 1: 1 uncorrectable ECC error(s) since the driver loaded (volatile))",
        "gpu-node-2": "unhealthy GPU (GPU 1: GPU is lost (NVML_ERROR_GPU_IS_LOST: fallen off the bus, Xid 79): reboot needed)",
    }
    assert [("gpu" in node_labels(kubeapi, f"gpu-node-{index}")) for index in (1, 2, 3)] == [False, False, True]
    assert [node_taints(kubeapi, f"gpu-node-{index}") for index in (1, 2, 3)] == [[HEALTH_TAINT], [HEALTH_TAINT], []]
    report_dir = tmp_path / "kubegpu-report"
    report = {entry["node"]: entry for entry in json.loads((report_dir / "report.json").read_text())["nodes"]}
    ecc = "1 uncorrectable ECC error(s) since the driver loaded (volatile)"
    assert report["gpu-node-1"]["gpu_health"] == [
        {"index": 0, "health": "ok", "reasons": []},
        {"index": 1, "health": "unhealthy", "reasons": [ecc]},
    ]
    assert report["gpu-node-3"]["gpu_health"] == [
        {
            "index": 0,
            "health": "degraded",
            "reasons": ["clocks held down: hardware slowdown", "clocks held down: hardware thermal slowdown"],
        }
    ]
    gpu_label = {item["check"]: item for item in report["gpu-node-1"]["checks"]}["gpu_label"]
    assert gpu_label == {
        "check": "gpu_label",
        "result": "passed",
        "message": f"no gpu=on: held back (unhealthy GPU (GPU 1: {ecc}))",
    }
    markdown = (report_dir / "report.md").read_text()
    assert f"- GPU health: GPU 0 ok, GPU 1 unhealthy ({ecc})" in markdown
    assert "- GPU health: GPU 0 ok, GPU 1 unhealthy (GPU is lost (NVML_ERROR_GPU_IS_LOST" in markdown
    page = lab_report.write(report_dir).read_text()
    assert f"<th>GPU health</th><td>GPU 0 ok, GPU 1 unhealthy ({ecc})</td>" in page

    second = {
        "node1": GpuHost("healthy_h100x2", "gpu-node-1", NVIDIA),
        "node2": GpuHost("row_remap_failure_h100x2", "gpu-node-2", NVIDIA),
        "node3": GpuHost("retired_pages_pending_v100x2", "gpu-node-3", NVIDIA),
    }
    run = _run(kubeapi, second, taint_on)
    assert run.rc == 0, run.explain()
    assert _held(run) == {
        "gpu-node-2": "unhealthy GPU (GPU 1: row remapping failed: the GPU needs service)",
        "gpu-node-3": "unhealthy GPU (GPU 0: page retirement pending: takes effect at the next driver reload or reboot)",
    }
    assert node_labels(kubeapi, "gpu-node-1")["gpu"] == "on" and node_taints(kubeapi, "gpu-node-1") == []
    assert [node_taints(kubeapi, f"gpu-node-{index}") for index in (2, 3)] == [[HEALTH_TAINT], [HEALTH_TAINT]]

    # without the option the health taint is left as it is, and the node is still held back
    third = {"node2": GpuHost("row_remap_pending_h100x2", "gpu-node-2", NVIDIA)}
    run = _run(kubeapi, third)
    assert run.rc == 0, run.explain()
    assert _held(run) == {"gpu-node-2": "unhealthy GPU (GPU 0: row remapping pending: takes effect at the next GPU reset)"}
    assert node_taints(kubeapi, "gpu-node-2") == [HEALTH_TAINT] and "gpu" not in node_labels(kubeapi, "gpu-node-2")
