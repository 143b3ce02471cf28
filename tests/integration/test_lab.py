"""The lab end to end: three node containers, the real playbooks/site.yml, the readiness report, a re-run.

Real: the Debian node containers (``kubegpu-node:<suite>``, shared with molecule; the suite is ``KUBEGPU_LAB_SUITE``,
else the lab's default) with systemd and that suite's containerd and runc, the node Python venv made by node_python,
the roles and modules, helm, kubectl.
Simulated: the GPUs (fake NVML at the real library path in each container, see
tests/support/fake_nvml/README.md) and the cluster (the test API server). The containers carry their
own prefix (``kubegpu-labtest-<hash of the checkout path>-``, or ``KUBEGPU_LABTEST_PREFIX``), so
``make demo``'s lab and other checkouts' test runs on the same Docker daemon are left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import pytest

from tests.support import debs, fake_nvml, upstream
from tests.support.kube_clients import ensure_clients
from tests.support.lab import (
    CPU_NODES,
    DRA_DRIVER_VERSION,
    KUBE_VERSION,
    NODES,
    REPO_ROOT,
    Lab,
    charts,
    report,
    run_site,
    stack_args,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0,
        reason="no Docker daemon answers (make docker-daemon)",
    ),
    # issue 9's playbooks land on other branches; once merged this always runs
    pytest.mark.skipif(not (REPO_ROOT / "playbooks" / "site.yml").is_file(), reason="playbooks/site.yml is not in this tree yet"),
    # the real charts: KUBEGPU_CHARTS_DIR (make test sets it), else those beside the checkout
    pytest.mark.skipif(not (os.environ.get(charts.CHARTS_ENV) or upstream.CHARTS.is_dir()), reason=upstream.MISSING),
]
# per checkout by default, so two checkouts on one Docker daemon never share containers
PREFIX = os.environ.get("KUBEGPU_LABTEST_PREFIX") or f"kubegpu-labtest-{hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:6]}-"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not os.environ.get(charts.CHARTS_ENV):
        os.environ[charts.CHARTS_ENV] = str(upstream.CHARTS)  # as make test sets it (run_site passes it on)
    lab = Lab(PREFIX, tmp_path_factory.mktemp("lab"), log=lambda _line: None)
    lab.down()  # what an interrupted earlier run left
    try:
        lab.up()
        yield lab
    finally:
        lab.down()  # a failed up() too: no containers left behind
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{PREFIX}"], capture_output=True, text=True, check=True)
    assert left.stdout.strip() == ""
    assert not lab.server_running()


def kubectl(lab: Lab, *args: str) -> str:
    binary = ensure_clients()["kubectl"]
    env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig)}
    return subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, check=True).stdout


def helm(lab: Lab, *args: str) -> str:
    binary = ensure_clients()["helm"]
    env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig)}
    return subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, check=True).stdout


def test_site_yml_on_the_lab_then_a_rerun_changes_nothing(lab):
    first = run_site(lab)
    assert first.rc == 0, first.output[-6000:]
    assert first.changed > 0
    assert set(first.recap) == {*NODES, "localhost"}

    # the readiness report gpu_validate wrote, and its HTML page
    entries = {e["node"]: e for e in json.loads((lab.dir / "report.json").read_text())["nodes"]}
    assert sorted(entries) == sorted(NODES)
    for name, scenario in NODES.items():
        devices = fake_nvml.load(scenario)["devices"]
        assert entries[name]["gpus"]["memory_mib"] == [d["memory_total_mib"] for d in devices]
        assert entries[name]["default_runtime"] == "nvidia"
        assert entries[name]["smoke"]["result"] == "passed", entries[name]["smoke"]
        assert entries[name]["labels"].get("gpu") == "on"
    page = report.write(lab.dir).read_text()
    assert page.count('class="bar"') == sum(len(fake_nvml.load(s)["devices"]) for s in NODES.values())

    # on the nodes: the real containerd runs with the NVIDIA runtime as its default
    for name in NODES:
        dump = subprocess.run(
            ["docker", "exec", lab.container(name), "containerd", "config", "dump"], capture_output=True, text=True, check=True
        ).stdout
        assert 'default_runtime_name = "nvidia"' in dump
        active = subprocess.run(
            ["docker", "exec", lab.container(name), "systemctl", "is-active", "containerd"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert active.stdout.strip() == "active"
        # the suite's own containerd (Debian's `containerd --version`: name, module, upstream version, package version),
        # and the Node object says so as kubelet would
        version = subprocess.run(
            ["docker", "exec", lab.container(name), "containerd", "--version"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert version[3] == debs.version_of("containerd", lab.suite), version
        runtime = kubectl(lab, "get", "node", name, "-o", "jsonpath={.status.nodeInfo.containerRuntimeVersion}")
        assert runtime == f"containerd://{version[2].split('~')[0]}", (runtime, version)

    # what a user types
    table = kubectl(lab, "get", "nodes").splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [line.split()[0] for line in table[1:]] == sorted([*NODES, *CPU_NODES])
    assert [line.split()[4] for line in table[1:]] == [KUBE_VERSION] * (len(NODES) + len(CPU_NODES))
    assert "gpu=on" in kubectl(lab, "get", "node", "gpu-node-3", "--show-labels")

    # the real HAMi chart (the role's default version, from KUBEGPU_CHARTS_DIR): its device plugin
    # DaemonSet and scheduler Deployment, as the server stores them and as kubectl lists them
    hami = charts.role_chart("vgpu_scheduler")
    releases = json.loads(helm(lab, "list", "-A", "-o", "json"))
    assert [(r["name"], r["chart"]) for r in releases if r["chart"].startswith("hami")] == [("hami", f"hami-{hami.version}")]
    workloads = json.loads(kubectl(lab, "get", "daemonsets,deployments", "-A", "-o", "json"))["items"]
    by_name = {(w["kind"], w["metadata"]["name"]): w for w in workloads}
    plugin, scheduler = by_name[("DaemonSet", "hami-device-plugin")], by_name[("Deployment", "hami-scheduler")]
    assert plugin["metadata"]["labels"]["helm.sh/chart"] == f"hami-{hami.version}"
    assert plugin["status"]["desiredNumberScheduled"] == plugin["status"]["numberReady"] == len(NODES)
    assert scheduler["status"]["readyReplicas"] == 1
    listed = [line.split()[:2] for line in kubectl(lab, "get", "ds", "-A").splitlines()[1:]]
    assert ["kube-system", "hami-device-plugin"] in listed, listed

    # every check of every GPU node passed; the bench's DaemonSet controller ran HAMi's device plugin on each GPU node
    # (kubectl get pods -A -o wide, as a user reads it) and its device-plugin double registered HAMi's split count
    # (deviceSplitCount 10 per GPU, HAMi's documented default) as nvidia.com/gpu
    for entry in entries.values():
        assert entry["result"] == "passed", entry["checks"]
        assert [check["check"] for check in entry["checks"]] == ["daemonsets", "allocatable", "profile", "smoke", "gpu_label"]
    rows = [line.split() for line in kubectl(lab, "get", "pods", "-A", "-o", "wide").splitlines()[1:]]
    plugin_pods = {row[7]: row[3] for row in rows if row[1].startswith("hami-device-plugin-")}
    assert plugin_pods == dict.fromkeys(NODES, "Running"), rows
    for name, scenario in NODES.items():
        gpus = len(fake_nvml.load(scenario)["devices"])
        allocatable = kubectl(lab, "get", "node", name, "-o", "jsonpath={.status.allocatable.nvidia\\.com/gpu}")
        assert allocatable == str(gpus * 10), (name, allocatable)

    second = run_site(lab)
    assert second.rc == 0, second.output[-6000:]
    assert second.changed == 0, [line for line in second.output.splitlines() if line.startswith("changed:")]
    ratio = second.seconds / first.seconds
    print(f"lab ({lab.suite}) site.yml: first {first.seconds:.0f} s, second {second.seconds:.0f} s, ratio {ratio:.2f}")

    # broken behind the playbook's back: a NoExecute taint HAMi's device plugin does not tolerate evicts it from
    # gpu-node-2 (the DaemonSet controller's rule); site.yml leaves others' taints alone, and its report now fails
    # naming the node, the check, the DaemonSet and the taint
    kubectl(lab, "taint", "node", "gpu-node-2", "maintenance=drain:NoExecute")
    try:
        # its smoke pod cannot be placed either: a short wait for it is enough
        broken = run_site(lab, "site.yml", "-e", "gpu_validate_smoke_timeout=20")
    finally:
        kubectl(lab, "taint", "node", "gpu-node-2", "maintenance=drain:NoExecute-")
    assert broken.rc != 0
    failed = {e["node"]: e for e in json.loads((lab.dir / "report.json").read_text())["nodes"]}
    assert [node for node, entry in sorted(failed.items()) if entry["result"] == "failed"] == ["gpu-node-2"]
    daemonsets = {check["check"]: check for check in failed["gpu-node-2"]["checks"]}["daemonsets"]
    assert daemonsets["result"] == "failed"
    assert "hami-device-plugin" in daemonsets["message"] and "maintenance" in daemonsets["message"], daemonsets
    assert "gpu-node-2" in broken.output and "daemonsets" in broken.output


NEW_DRIVER = DRA_DRIVER_VERSION  # the installer double "installs" what its name says; 565 or later, as the DRA test below needs
FAILED_ANNOTATION = "kubegpu.io/driver-change-failed"


def node_driver(lab: Lab, node: str) -> str:
    """The driver version NVML answers on the node (pynvml in node_python's venv, through the fake library), or the
    NVML error's name."""
    probe = (
        "import pynvml\n"
        "try:\n    pynvml.nvmlInit()\nexcept pynvml.NVMLError as e:\n    print(type(e).__name__)\n"
        "else:\n    print(pynvml.nvmlSystemGetDriverVersion())\n"
    )
    argv = ["docker", "exec", lab.container(node), "/opt/kubegpu/venv/bin/python", "-c", probe]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def node_state(lab: Lab, node: str) -> tuple[str, str, dict]:
    """(STATUS as kubectl get node prints it, the gpu label, the annotations)."""
    status = kubectl(lab, "get", "node", node, "--no-headers").split()[1]
    obj = json.loads(kubectl(lab, "get", "node", node, "-o", "json"))
    return status, obj["metadata"].get("labels", {}).get("gpu", ""), obj["metadata"].get("annotations") or {}


def device_plugin_pods(lab: Lab, timeout: float = 60) -> dict[str, str]:
    """node -> STATUS of HAMi's device plugin pods (kubectl get pods -A -o wide), once one runs on every GPU node."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [line.split() for line in kubectl(lab, "get", "pods", "-A", "-o", "wide").splitlines()[1:]]
        pods = {row[7]: row[3] for row in rows if row[1].startswith("hami-device-plugin-")}
        if pods == dict.fromkeys(NODES, "Running") or time.monotonic() > deadline:
            return pods
        time.sleep(2)


def test_a_rolling_driver_change_stops_at_a_failing_node_and_leaves_it_cordoned_with_the_reason(lab, tmp_path):
    """Issue 22: playbooks/driver-upgrade.yml, one node at a time, with gpu-node-2's module build failing (the runfile
    double's failure marker): gpu-node-1 changes and serves again, the roll stops at gpu-node-2, which stays cordoned
    with the reason, gpu-node-3 is not touched; once the cause is gone a rerun finishes the roll and clears the mark.
    Needs the lab as the test above leaves it (site.yml applied). The driver doubles: tests/support/fake_nvml/README.md."""
    old = {node: fake_nvml.load(scenario)["driver_version"] for node, scenario in NODES.items()}
    assert {node_driver(lab, node) for node in NODES} == set(old.values())  # what site.yml left: the scenarios' drivers
    runfile, sha256 = fake_nvml.runfile(NEW_DRIVER, tmp_path)
    args = [
        *("-e", "kubegpu_driver_serial=1", "-e", "nvidia_driver_method=runfile", "-e", f"nvidia_driver_version={NEW_DRIVER}"),
        *("-e", f"nvidia_driver_runfile_src={runfile}", "-e", f"nvidia_driver_runfile_sha256={sha256}"),
        # the installer double stands in for DKMS' compile: the compiler and dkms packages are not installed (minutes a node)
        *("-e", "nvidia_driver_install_build_packages=false"),
    ]
    docker = ["docker", "exec", lab.container("gpu-node-2")]
    subprocess.run([*docker, "touch", "/var/lib/fake-nvidia/fail-build"], check=True)
    try:
        failed = run_site(lab, "driver-upgrade.yml", *args, timeout=900)
    finally:
        subprocess.run([*docker, "rm", "-f", "/var/lib/fake-nvidia/fail-build"], check=True)
    assert failed.rc != 0, failed.output[-6000:]

    # gpu-node-1: the new driver answers NVML, the node schedulable again, its device plugin pod back, still gpu=on
    assert node_driver(lab, "gpu-node-1") == NEW_DRIVER, failed.output[-6000:]
    status, gpu, annotations = node_state(lab, "gpu-node-1")
    assert (status, gpu) == ("Ready", "on") and FAILED_ANNOTATION not in annotations, failed.output[-6000:]
    assert device_plugin_pods(lab, timeout=30).get("gpu-node-1") == "Running"
    # gpu-node-2: the installer failed building the module; cordoned (kubectl's SchedulingDisabled), the reason on it
    assert node_driver(lab, "gpu-node-2") != NEW_DRIVER
    status, _gpu, annotations = node_state(lab, "gpu-node-2")
    assert status == "Ready,SchedulingDisabled", failed.output[-6000:]
    # the annotation names the step that failed and the installer's own last words (nvidia-installer's error)
    assert "installer" in annotations.get(FAILED_ANNOTATION, ""), annotations
    assert '"Building kernel modules"' in annotations[FAILED_ANNOTATION], annotations
    assert 'An error occurred while performing the step: "Building kernel modules"' in failed.output
    # gpu-node-3: the roll stopped before it: old driver, never cordoned, no task of the driver role ran on it
    assert node_driver(lab, "gpu-node-3") == old["gpu-node-3"]
    status, gpu, annotations = node_state(lab, "gpu-node-3")
    assert (status, gpu) == ("Ready", "on") and FAILED_ANNOTATION not in annotations
    role_output = failed.output[failed.output.index("TASK [kubegpu.core.nvidia_driver") :]
    assert "[gpu-node-3]" not in role_output.split("PLAY RECAP")[0]

    # the cause gone: the rerun finishes the roll, every node on the new driver, in service, the mark removed
    rerun = run_site(lab, "driver-upgrade.yml", *args, timeout=900)
    assert rerun.rc == 0, rerun.output[-6000:]
    for node in NODES:
        assert node_driver(lab, node) == NEW_DRIVER, node
        status, gpu, annotations = node_state(lab, node)
        assert (status, gpu) == ("Ready", "on") and FAILED_ANNOTATION not in annotations, (node, status, annotations)
    assert device_plugin_pods(lab) == dict.fromkeys(NODES, "Running")
    # gpu_validate (validate.yml) judges the facts and runtime the plays before it set: site.yml, which ends with it
    validated = run_site(lab, "site.yml")
    assert validated.rc == 0, validated.output[-6000:]
    seconds = f"failing roll {failed.seconds:.0f} s, rerun {rerun.seconds:.0f} s, site.yml {validated.seconds:.0f} s"
    print(f"lab ({lab.suite}) driver-upgrade.yml: {seconds}")


def test_the_lab_moved_to_the_dra_driver_serves_each_gpu_through_resource_slices(lab, tmp_path):
    """Issue 23: site.yml with kubegpu_device_plugin=dra_driver (as make demo STACK=dra_driver passes it) on the lab the
    tests above leave (HAMi, drivers 570 from the rolling change): container_toolkit turns CDI on in each node's real
    containerd 1.7, HAMi (no GPU node uses it any more) is removed, the real DRA chart is installed, its kubelet plugin
    publishes each node's GPUs in a ResourceSlice (the kubelet-plugin double, from the node's fake NVML scenario) and
    gpu_validate's claims are allocated from them; a second run changes nothing."""
    args = stack_args("dra_driver", tmp_path)
    assert {node_driver(lab, node) for node in NODES} == {DRA_DRIVER_VERSION}  # the driver the roll above left
    first = run_site(lab, "site.yml", *args)
    assert first.rc == 0, first.output[-6000:]

    # on the nodes: CDI on in the real containerd's effective configuration (its own config dump)
    for name in NODES:
        dump = subprocess.run(
            ["docker", "exec", lab.container(name), "containerd", "config", "dump"], capture_output=True, text=True, check=True
        ).stdout
        assert "enable_cdi = true" in dump, name
        assert 'default_runtime_name = "nvidia"' in dump

    # the cluster: the DRA chart's release instead of HAMi's, one ResourceSlice per GPU node (kubectl's columns)
    releases = {r["name"]: r["chart"] for r in json.loads(helm(lab, "list", "-A", "-o", "json"))}
    assert releases.get("dra-driver-nvidia-gpu") == "dra-driver-nvidia-gpu-0.4.1" and "hami" not in releases, releases
    table = [line.split() for line in kubectl(lab, "get", "resourceslices").splitlines()]
    assert table[0][:4] == ["NAME", "NODE", "DRIVER", "POOL"]
    assert sorted((row[1], row[2], row[3]) for row in table[1:]) == [(node, "gpu.nvidia.com", node) for node in sorted(NODES)]

    # the report: every check of every GPU node passed; the devices published are the scenario's GPUs
    entries = {e["node"]: e for e in json.loads((lab.dir / "report.json").read_text())["nodes"]}
    for name, scenario in NODES.items():
        entry = entries[name]
        assert entry["result"] == "passed", entry["checks"]
        checks = [check["check"] for check in entry["checks"]]
        assert {"daemonsets", "resourceslices", "smoke", "selector", "gpu_label"} <= set(checks), checks
        uuids = sorted(d["uuid"] for d in fake_nvml.load(scenario)["devices"])
        assert sorted(item["uuid"] for item in entry["dra"]["published"]) == uuids, entry["dra"]
        assert {item["check"] for item in entry["dra"]["allocated"]} == {"smoke", "selector"}, entry["dra"]

    second = run_site(lab, "site.yml", *args)
    assert second.rc == 0, second.output[-6000:]
    assert second.changed == 0, [line for line in second.output.splitlines() if line.startswith("changed:")]
    print(f"lab site.yml with dra_driver: first {first.seconds:.0f} s, second {second.seconds:.0f} s")
