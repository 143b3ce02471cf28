"""The gpu_readiness filters of the gpu_validate role: one report entry per node from facts, Node objects and the
smoke pods' last state, and its table and Markdown forms."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.kubegpu.core.plugins.filter.gpu_readiness import (
    gpu_readiness,
    gpu_readiness_markdown,
    gpu_readiness_table,
    smoke_result,
)
from tests.support.kubeapi.nodes import gpu_node

FACTS = {
    "present": True,
    "driver_version": "535.161.08",
    "cuda_driver_version": "12.2",
    "devices": [{"name": "Tesla T4", "memory_total_mib": 15360}],
}


def target(node="gpu-1", smoke=True, **extra):
    return {
        "host": node,
        "node": node,
        "device_plugin": "vgpu_scheduler",
        "gpu": FACTS,
        "default_runtime": "nvidia",
        "smoke": smoke,
        **extra,
    }


def smoke_pod(node="gpu-1", phase="Succeeded", **status):
    return {
        "metadata": {"name": f"kubegpu-smoke-{node}", "namespace": "default", "annotations": {"kubegpu.io/smoke-node": node}},
        "spec": {"nodeName": node},
        "status": {"phase": phase, **status},
    }


def test_an_entry_joins_facts_node_and_pod():
    node = gpu_node("gpu-1", gpus=1, labels={"gpu": "on", "topology.kubernetes.io/zone": "a"})
    node["spec"]["taints"] = [{"key": "gpu", "effect": "NoSchedule"}]
    [entry] = gpu_readiness([target()], [node], [smoke_pod()], timeout=30)
    assert entry["gpus"] == {"count": 1, "models": ["Tesla T4"], "memory_mib": [15360]}
    assert entry["labels"] == {"gpu": "on", "nvidia.com/gpu.present": "true"}
    assert entry["allocatable"] == {"nvidia.com/gpu": "1"}
    assert entry["taints"] == [{"key": "gpu", "effect": "NoSchedule"}]
    assert entry["smoke"]["result"] == "passed" and entry["registered"]


@pytest.mark.parametrize(
    ("pod", "words"),
    [
        (
            smoke_pod(phase="Failed", reason="OutOfnvidia.com/gpu", message="Pod was rejected"),
            ["failed: OutOfnvidia.com/gpu: Pod was rejected"],
        ),
        (
            smoke_pod(
                phase="Failed", containerStatuses=[{"name": "smoke", "state": {"terminated": {"exitCode": 9, "reason": "Error"}}}]
            ),
            ["container smoke exited 9 (Error)"],
        ),
        (
            smoke_pod(
                phase="Pending",
                conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}],
            ),
            ["did not finish within 30s, still Pending", "not scheduled (Unschedulable): 0/1 nodes"],
        ),
        (
            smoke_pod(
                phase="Pending",
                containerStatuses=[{"name": "smoke", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no"}}}],
            ),
            ["container smoke waiting (ImagePullBackOff)"],
        ),
        (smoke_pod(phase="Running"), ["still Running on gpu-1"]),
        (None, ["not found"]),
    ],
)
def test_every_unfinished_or_failed_pod_is_a_failure_with_its_reason(pod, words):
    result = smoke_result(pod, 30)
    assert result["result"] == "failed"
    for word in words:
        assert word in result["message"], result["message"]


def test_unregistered_skipped_and_check_mode_entries():
    entries = gpu_readiness(
        [target("gone"), target("gpu-1", smoke=False, skip_reason="no device stack")], [gpu_node("gpu-1")], []
    )
    assert entries[0]["smoke"]["message"] == "node gone is not registered with the API server" and not entries[0]["registered"]
    assert entries[1]["smoke"] == {"result": "skipped", "message": "no device stack", "pod": None}
    [checked] = gpu_readiness([target()], [gpu_node("gpu-1")], [], skipped="check mode")
    assert checked["smoke"] == {"result": "skipped", "message": "check mode", "pod": None}


def test_table_and_markdown():
    entries = gpu_readiness([target(), target("gpu-2")], [gpu_node("gpu-1"), gpu_node("gpu-2")], [smoke_pod()], timeout=5)
    table = gpu_readiness_table(entries)
    assert table[0].split() == [
        *["node", "GPUs", "driver", "runtime", "advertised", "taints"],
        *["daemonsets", "allocatable", "profile", "smoke", "gpu_label", "result"],
    ]
    assert table[2].split()[:4] == ["gpu-1", "1x", "Tesla", "T4"] and table[2].endswith("passed")
    assert table[3].split()[0] == "gpu-2" and table[3].endswith("failed")
    # every check of every node, one a line
    assert [line.split(":")[:2] for line in table[4:]] == [
        [node, f" {check}"]
        for node in ("gpu-1", "gpu-2")
        for check in ("daemonsets", "allocatable", "profile", "smoke", "gpu_label")
    ]
    assert any(line.startswith("gpu-2: smoke: failed - ") for line in table)
    markdown = gpu_readiness_markdown(entries)
    assert "2 GPU node(s): 1 passed, 1 failed, 0 skipped." in markdown
    row = (
        "| gpu-1 | 1x Tesla T4 | 535.161.08 | nvidia | nvidia.com/gpu=1 | - | "
        + " | ".join(["skipped"] * 3 + ["passed"] * 3)
        + " |"
    )
    assert row in markdown
    assert "- smoke: **failed** - the smoke pod was not found after the wait" in markdown


def test_a_broken_driver_shows_in_the_report_with_its_reason():
    """Issue 22: a node whose nvidia module is loaded but whose NVML and nvidia-smi fail (gpu_facts' driver_state
    broken) shows "broken" in the driver column and its reason, and gpu_labels' holding it back is what the
    gpu_label check expects."""
    reason = "reboot or reinstall needed: the nvidia kernel module 535.161.08 is loaded but neither NVML nor nvidia-smi answers"
    broken = dict(FACTS, driver_version=None, driver_loaded=True, driver_state="broken", driver_state_reason=reason)
    ready = dict(FACTS, driver_loaded=True, driver_state="ready", driver_state_reason=None)
    entries = gpu_readiness(
        [target(gpu=broken), target("gpu-2", gpu=ready)],
        [gpu_node("gpu-1"), gpu_node("gpu-2", labels={"gpu": "on"})],
        [],
        skipped="check mode",
    )
    assert [(entry["driver_state"], entry["driver_state_reason"]) for entry in entries] == [("broken", reason), ("ready", None)]
    table = gpu_readiness_table(entries)
    assert table[2].split()[4] == "broken" and table[3].split()[4] == "535.161.08", table
    label_check = next(item for item in entries[0]["checks"] if item["check"] == "gpu_label")
    assert (
        label_check["result"] == "passed" and "the NVIDIA driver is broken (reboot or reinstall needed" in label_check["message"]
    )
    markdown = gpu_readiness_markdown(entries)
    assert f"- driver: **broken** - {reason}" in markdown
    assert markdown.count("- driver: ") == 1


def test_bad_input_is_named():
    with pytest.raises(AnsibleFilterError, match="must be a list of nodes, not dict"):
        gpu_readiness({}, [])
    with pytest.raises(AnsibleFilterError, match="the gpu facts of gpu-1 must be a mapping, not str"):
        gpu_readiness([target(gpu="x")], [])


PHASES = st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Unknown", None])
TEXT = st.text(max_size=20)
STATUSES = st.fixed_dictionaries(
    {"phase": PHASES},
    optional={
        "reason": TEXT,
        "message": TEXT,
        "conditions": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["PodScheduled", "Ready"]), "status": st.sampled_from(["True", "False"])}
            ),
            max_size=3,
        ),
        "containerStatuses": st.lists(
            st.fixed_dictionaries(
                {"name": TEXT},
                optional={
                    "state": st.one_of(
                        st.just({}),
                        st.fixed_dictionaries({"terminated": st.fixed_dictionaries({"exitCode": st.integers(0, 255)})}),
                        st.fixed_dictionaries({"waiting": st.fixed_dictionaries({"reason": TEXT})}),
                    )
                },
            ),
            max_size=2,
        ),
    },
)


@pytest.mark.property
@given(status=STATUSES)
def test_any_pod_status_gives_passed_only_when_succeeded_and_names_the_pod(status):
    pod = smoke_pod()
    pod["status"] = {key: value for key, value in status.items() if value is not None}
    result = smoke_result(pod, 7)
    assert result["result"] == ("passed" if status["phase"] == "Succeeded" else "failed")
    assert "default/kubegpu-smoke-gpu-1" in result["message"] and result["pod"] == "default/kubegpu-smoke-gpu-1"


def dra_smoke_pod(phase, init_state, reason=None):
    """A DRA smoke pod as the kubelet reports it: nvidia-smi as the init container smoke, a container hold that waits."""
    pod = smoke_pod(phase=phase)
    pod["spec"].update(initContainers=[{"name": "smoke"}], containers=[{"name": "hold"}])
    pod["status"]["initContainerStatuses"] = [{"name": "smoke", "state": init_state}]
    if reason:
        pod["status"]["reason"] = reason
    return pod


def test_a_dra_smoke_pod_passes_running_once_its_init_container_exited_0_and_fails_with_its_exit():
    done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    assert smoke_result(dra_smoke_pod("Running", done), 5) == {
        "result": "passed",
        "message": "pod default/kubegpu-smoke-gpu-1: init container smoke exited 0 on gpu-1",
        "pod": "default/kubegpu-smoke-gpu-1",
    }
    # restartPolicy Never: nvidia-smi's non-zero exit fails the pod (kubectl shows Init:Error)
    failed = smoke_result(dra_smoke_pod("Failed", {"terminated": {"exitCode": 9, "reason": "Error"}}), 5)
    assert failed["result"] == "failed"
    assert failed["message"] == "pod default/kubegpu-smoke-gpu-1 failed: init container smoke exited 9 (Error)"
    # still initializing: the image is pulled, or the claim's device prepared
    pulling = dra_smoke_pod("Pending", {"waiting": {"reason": "ErrImagePull", "message": "no such image"}})
    assert smoke_result(pulling, 5)["message"] == (
        "pod default/kubegpu-smoke-gpu-1 did not finish within 5s, still Pending on gpu-1: "
        "container smoke waiting (ErrImagePull): no such image"
    )
    # Running without the init container's exit 0 is not a pass (as no status the kubelet writes, but judged all the same)
    assert smoke_result(dra_smoke_pod("Running", {"running": {}}), 5)["result"] == "failed"
    assert smoke_result(dra_smoke_pod("Running", {"terminated": {"exitCode": 1}}), 5)["result"] == "failed"
    # a device-plugin pod running (restartPolicy Never, no init container) has not finished
    assert smoke_result(smoke_pod(phase="Running"), 5)["result"] == "failed"


def test_a_shared_node_passes_only_when_all_its_smoke_pods_succeeded():
    """Time-slicing and MPS: one pod more than the node's GPUs, each asking for one GPU, must all run."""
    pods = [smoke_pod(), {**smoke_pod(), "metadata": {**smoke_pod()["metadata"], "name": "kubegpu-smoke-gpu-1-1"}}]
    shared = target(smoke_pods=2)
    [entry] = gpu_readiness([shared], [gpu_node("gpu-1")], pods, timeout=5)
    assert entry["smoke"]["result"] == "passed" and entry["smoke"]["message"].startswith("2 pods, each asking for one shared GPU")
    pending = {**pods[1], "status": {"phase": "Pending"}}
    [entry] = gpu_readiness([shared], [gpu_node("gpu-1")], [pods[0], pending], timeout=5)
    assert entry["smoke"] == {
        "result": "failed",
        "message": "pod default/kubegpu-smoke-gpu-1-1 did not finish within 5s, still Pending on gpu-1",
        "pod": "default/kubegpu-smoke-gpu-1-1",
    }
    [entry] = gpu_readiness([target(smoke_pods=3)], [gpu_node("gpu-1")], pods, timeout=5)
    assert entry["smoke"]["message"] == "2 of 3 smoke pods were found after the wait"
