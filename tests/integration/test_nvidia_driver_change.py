"""The driver change of role kubegpu.core.nvidia_driver (tasks change_plan, stop, unload, load, verify, resume,
change_failed) and playbooks/driver-upgrade.yml, against the test API server (its DaemonSet controller removes a
DaemonSet's pod from a node that no longer matches its nodeSelector, as kube-controller-manager does).

What is simulated on this machine (the GPU host is this machine, ``ansible_connection: local``): the GPUs (the fake
NVML library, its scenario a copy that the fake ``modprobe`` below replaces by the new driver's answer when
``modprobe nvidia`` loads it) and ``modprobe`` itself (a script first on PATH that logs its arguments). The order
of the change is the GPU Operator's driver upgrade (cordon, drain, stop the GPU clients, unload, install, load)
and kubectl drain's (node_drain, tests/integration/test_node_drain.py). The lab test (three node containers) is in
test_lab.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import fake_nvml
from tests.support.adhoc import list_plays
from tests.support.kube_modules import get_object, node_labels, patch_node, writes
from tests.support.role_runs import REPO_ROOT, GpuHost, gpu_host_vars, run_playbook

pytestmark = pytest.mark.slow

NODE = "gpu-node-1"
OLD, NEW = "535.161.08", "580.95.05"  # the v100x2 scenario's driver; the one the change installs
STACK = {"kubegpu.io/device-stack": "nvidia_device_plugin"}
PLUGIN = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system"},
    "spec": {
        "selector": {"matchLabels": {"app": "nvidia-device-plugin"}},
        "template": {
            "metadata": {"labels": {"app": "nvidia-device-plugin"}},
            "spec": {
                "nodeSelector": STACK,
                "tolerations": [{"operator": "Exists"}],
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "plugin", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.4"}],
            },
        },
    },
}
FAKE_MODPROBE = """#!/bin/sh
# test bench: modprobe; -r fails with $FAKE_UNLOAD_RC, loading nvidia makes NVML answer the new driver
echo "$*" >> {log}
if [ "$1" = "-r" ]; then exit "${{FAKE_UNLOAD_RC:-0}}"; fi
if [ "$1" = "nvidia" ] && [ -z "$FAKE_LOAD_KEEPS_OLD" ]; then cp {new} {current}; fi
exit 0
"""


class Bench:
    def __init__(self, kubeapi, tmp_path: Path) -> None:
        self.kubeapi = kubeapi
        self.tmp = tmp_path
        self.log = tmp_path / "modprobe.log"
        scenario = json.loads(fake_nvml.scenario("v100x2").read_text())
        current, new = tmp_path / "current.json", tmp_path / "new.json"
        current.write_text(json.dumps(scenario))
        new.write_text(json.dumps({**scenario, "driver_version": NEW}))
        fakebin = tmp_path / "bin"
        fakebin.mkdir()
        (fakebin / "modprobe").write_text(FAKE_MODPROBE.format(log=self.log, new=new, current=current))
        (fakebin / "modprobe").chmod(0o755)
        host = gpu_host_vars("node1", GpuHost("v100x2", NODE), tmp_path / "hosts")
        wrapper = Path(host["ansible_python_interpreter"])
        wrapper.write_text(wrapper.read_text().replace(str(fake_nvml.scenario("v100x2")), str(current)))
        self.path = f"{fakebin}:{Path(sys.executable).parent}:/usr/bin:/bin:/usr/sbin:/sbin"
        self.inventory = {
            "all": {
                "vars": {"ansible_python_interpreter": sys.executable},
                "hosts": {"localhost": {"ansible_connection": "local"}},
                "children": {
                    "gpu_nodes": {
                        "hosts": {
                            "node1": {
                                **host,
                                # root here, no sudo: become is what a real node needs
                                "ansible_become": False,
                                "nvidia_driver_python_interpreter": str(wrapper),
                                "nvidia_driver_sysfs_root": host["kubegpu_test_sysfs"],
                                "kubegpu_device_plugin": "nvidia_device_plugin",
                            }
                        }
                    }
                },
            }
        }
        kubeapi.admin.set_ready_controller(True)  # the DaemonSet controller and the kubelet double
        kubeapi.admin.load(yaml.safe_dump(PLUGIN))
        patch_node(kubeapi, NODE, {"metadata": {"labels": STACK}})
        kubeapi.admin.reset_counters()

    def run(self, playbook: str = "driver-upgrade.yml", check: bool = False, env: dict | None = None, **extra):
        variables = {
            "kubegpu_kubeconfig": str(self.kubeapi.kubeconfig),
            "kubegpu_manage_node_python": False,
            "nvidia_driver_version": NEW,
            "nvidia_driver_install": False,  # the install itself is the lab's and molecule's
            "nvidia_driver_gpu_client_units": [],
            "nvidia_driver_drain_timeout": 30,
            **extra,
        }
        return run_playbook([playbook], self.inventory, extra_vars=variables, check=check, env={"PATH": self.path, **(env or {})})

    def node(self) -> dict:
        return get_object(self.kubeapi, f"/api/v1/nodes/{NODE}")

    def plugin_pods(self) -> list[str]:
        pods = get_object(self.kubeapi, "/api/v1/namespaces/kube-system/pods")["items"]
        return [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == NODE]

    def modprobe(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def bench(kubeapi, tmp_path):
    return Bench(kubeapi, tmp_path)


def test_check_mode_reports_the_plan_and_changes_nothing(bench):
    assert bench.plugin_pods(), "the device plugin's DaemonSet runs a pod on the node"
    run = bench.run(check=True)
    assert run.rc == 0, run.explain()
    plan = run.task("Say the plan of the driver change").result["msg"]
    assert f"driver {OLD} -> {NEW}" in plan and f"cordon and drain Node {NODE}" in plan, plan
    assert "kubegpu.io/device-stack=nvidia_device_plugin label off" in plan, plan
    assert writes(bench.kubeapi) == [] and bench.modprobe() == []
    assert not bench.node()["spec"].get("unschedulable")


def test_the_change_drains_unloads_loads_verifies_and_puts_the_node_back(bench):
    run = bench.run()
    assert run.rc == 0, run.explain()
    # the device stack's pod left before the modules were unloaded; the modules in the order that frees nvidia
    assert run.task("Read the node's pods until none of a device stack's DaemonSet is left").status == "ok"
    assert bench.modprobe() == ["-r nvidia_uvm nvidia_drm nvidia_modeset nvidia", "nvidia", "nvidia_uvm"]
    node = bench.node()
    assert not node["spec"].get("unschedulable")
    assert node_labels(bench.kubeapi, NODE)["kubegpu.io/device-stack"] == "nvidia_device_plugin"
    assert "kubegpu.io/driver-change-failed" not in (node["metadata"].get("annotations") or {})
    assert bench.plugin_pods(), "the device plugin came back with the label"


def decision_task_names() -> set[str]:
    """The tasks of the role's decision: main.yml and the files it imports (preflight, kernels, change_plan), with the
    tasks inside their blocks; everything else (the change, the module build, the resume) is in change.yml."""
    tasks_dir = REPO_ROOT / "roles" / "nvidia_driver" / "tasks"
    names: set[str] = set()

    def walk(tasks: list[dict]) -> None:
        for task in tasks or []:
            names.add(task["name"])
            for key in ("block", "rescue", "always"):
                walk(task.get(key, []))

    for name in ("main.yml", "preflight.yml", "kernels.yml", "change_plan.yml"):
        walk(yaml.safe_load((tasks_dir / name).read_text()))
    return names


def test_a_re_run_on_a_current_driver_skips_the_change_as_one_task(bench):
    """The no-op re-run: the driver answers at the wanted version, the Node is in service. The role decides with its
    probes (gpu_facts, the kernels, the Node) and skips the rest as one task: no task of the change, the module build
    or the resume is even listed as skipped (on main they were, one line each, in every batch)."""
    run = bench.run(nvidia_driver_version=OLD)
    assert run.rc == 0, run.explain()
    assert run.changed == [], run.changed_on
    decision = "Change the driver, build its module for a pending kernel, or put the node back into service"
    assert run.task(decision, "node1").status == "skipped"
    # the play runs the role only; the argument spec check is the role's too
    role_tasks = {
        r["task"].split(" : ", 1)[-1]
        for r in run.in_play("NVIDIA driver, batch after batch").records
        if "Validating arguments against arg spec" not in r["task"]
    }
    assert role_tasks, run.explain()
    assert role_tasks <= decision_task_names(), sorted(role_tasks - decision_task_names())
    assert writes(bench.kubeapi) == [] and bench.modprobe() == []


def test_a_failed_change_leaves_the_node_cordoned_with_the_reason_and_fails_the_host(bench):
    # the module loads, but NVML still answers the old driver: the verification fails
    run = bench.run(env={"FAKE_LOAD_KEEPS_OLD": "1"})
    assert run.rc != 0
    node = bench.node()
    assert node["spec"].get("unschedulable") is True
    reason = (node["metadata"].get("annotations") or {}).get("kubegpu.io/driver-change-failed", "")
    assert f"at version {NEW} (loaded: {OLD})" in reason, node["metadata"]
    assert "kubegpu.io/device-stack" not in node_labels(bench.kubeapi, NODE)
    assert "stays cordoned with the annotation kubegpu.io/driver-change-failed" in run.message, run.message

    # fixed by hand (the new driver now answers): the next run finds it current and puts it back into service
    bench.run(env={})  # loads the new driver through the fake modprobe
    node = bench.node()
    assert not node["spec"].get("unschedulable")
    assert "kubegpu.io/driver-change-failed" not in (node["metadata"].get("annotations") or {})
    assert node_labels(bench.kubeapi, NODE)["kubegpu.io/device-stack"] == "nvidia_device_plugin"


def test_the_playbook_rolls_in_batches_and_stops_on_a_failed_batch():
    """serial and max_fail_percentage as Ansible reads them from the playbook (defaults: 20 %, 0 %)."""
    plays = yaml.safe_load((REPO_ROOT / "playbooks" / "driver-upgrade.yml").read_text())
    roll = plays[-1]
    assert roll["serial"] == "{{ kubegpu_driver_serial | default('20%') }}"
    assert roll["max_fail_percentage"] == "{{ kubegpu_driver_max_fail_percentage | default(0) }}"
    assert roll["roles"] == [{"role": "kubegpu.core.nvidia_driver"}]
    nodes = yaml.safe_load((REPO_ROOT / "playbooks" / "nodes.yml").read_text())
    assert nodes[0]["max_fail_percentage"] == roll["max_fail_percentage"]
    alias = yaml.safe_load((REPO_ROOT / "playbooks" / "driver_upgrade.yml").read_text())
    assert alias == [{"name": "Rolling NVIDIA driver change", "ansible.builtin.import_playbook": "driver-upgrade.yml"}]


def test_a_failed_node_stops_the_roll_before_the_next_batch(bench):
    """Two nodes per batch (kubegpu_driver_serial=2): the first batch's node1 fails (its nvidia_driver_method is
    refused) while node2 (no GPU) passes; max_fail_percentage 0 ends the play at that task, so the second batch's
    node3 is never touched (without it Ansible goes on while a batch has a host left)."""
    hosts = bench.inventory["all"]["children"]["gpu_nodes"]["hosts"]
    hosts["node1"]["nvidia_driver_method"] = "bogus"
    no_gpu = gpu_host_vars("node2", GpuHost("no_devices", "gpu-node-2"), bench.tmp / "hosts")
    hosts["node2"] = {
        **no_gpu,
        "ansible_become": False,
        "nvidia_driver_python_interpreter": no_gpu["ansible_python_interpreter"],
        "nvidia_driver_sysfs_root": no_gpu["kubegpu_test_sysfs"],
    }
    hosts["node3"] = {"ansible_connection": "local", "kubegpu_node_name": "gpu-node-3"}
    run = bench.run(kubegpu_driver_serial=2)
    assert run.rc != 0
    assert "nvidia_driver_method must be one of: package, runfile, got: bogus" in run.message, run.message
    roll = run.in_play("NVIDIA driver, batch after batch")
    assert {record["host"] for record in roll.records} == {"node1", "node2"}, run.stdout
    assert writes(bench.kubeapi) == []


@pytest.mark.parametrize("playbook", ["playbooks/driver-upgrade.yml", "kubegpu.core.driver_upgrade"])
def test_the_playbook_runs_by_path_and_as_the_collection_playbook(tmp_path, playbook):
    """``ansible-playbook -i inventory/sample/hosts.yml PLAYBOOK --list-tasks`` as a user types it."""
    proc, plays = list_plays(playbook, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert plays == ["Node Python for the driver role's modules", "NVIDIA driver, batch after batch"], proc.stdout
    # the change itself (cordon, drain, install, uncordon) is an include that runs only where the role has something
    # to do (a re-run skips it as one task), so --list-tasks names the include and the lookup that decides it
    assert "Look the host up as a Kubernetes Node" in proc.stdout, proc.stdout
    assert "Change the driver, build its module for a pending kernel, or put the node back into service" in proc.stdout


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("no Node of that name", "no drain (the cluster has no Node gpu-node-9)"),
        ("no cluster configured", "no drain (no Kubernetes cluster is configured on the controller)"),
    ],
)
def test_a_host_outside_the_cluster_is_changed_without_a_drain_and_the_plan_says_so(bench, case, says):
    hosts = bench.inventory["all"]["children"]["gpu_nodes"]["hosts"]
    extra, env = {}, {}
    if case == "no Node of that name":
        hosts["node1"]["kubegpu_node_name"] = "gpu-node-9"
    else:
        # nothing names a cluster: no kubeconfig option, KUBECONFIG empty, no ~/.kube/config, not in a pod
        extra["kubegpu_kubeconfig"] = ""
        env = {"HOME": str(bench.tmp), "KUBECONFIG": "", "K8S_AUTH_KUBECONFIG": "", "KUBERNETES_SERVICE_HOST": ""}
    run = bench.run(env=env, **extra)
    assert run.rc == 0, run.explain()
    assert says in run.task("Say the plan of the driver change").result["msg"]
    assert bench.modprobe() == ["-r nvidia_uvm nvidia_drm nvidia_modeset nvidia", "nvidia", "nvidia_uvm"]
    assert writes(bench.kubeapi) == []
