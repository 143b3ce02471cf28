"""The gpu_validate role through ansible-playbook against the test API server, with GPU facts gathered by the real
kubegpu.core.gpu_facts from the fake NVML scenarios (2x V100, 1x T4, 8x H100) in a first play, as facts.yml does.

Simulated: the smoke pods never run. With the ready controller on, the server's scheduler and kubelet doubles
(tests/support/kubeapi/kubelet.py) place each pod from its affinity, tolerations and GPU requests against the Node
objects' taints and allocatable resources, and mark a placed run-to-completion pod Succeeded; a node that does not
advertise the GPU resource leaves its pod Pending and Unschedulable, which the role must report as failed."""

from __future__ import annotations

import json
import urllib.request

import yaml

from tests.support import fake_nvml
from tests.support.kube_modules import writes
from tests.support.kubeapi.nodes import gpu_node
from tests.support.role_runs import GpuHost, run_role
from tests.support.upstream import require

SCENARIOS = {"gpu-node-1": "v100x2", "gpu-node-2": "t4", "gpu-node-3": "h100x8"}
FAST = {"gpu_validate_smoke_timeout": 4, "gpu_validate_smoke_poll_interval": 1}


def _validate(kubeapi, tmp_path, hosts, variables=None, **kwargs):
    """gpu_validate with ``hosts`` (node name -> scenario and host variables) as GPU hosts whose facts the real
    gpu_facts gathers first; the report is written under ``tmp_path``."""
    gpu_hosts = {}
    for name, host in hosts.items():
        host_vars = {key: value for key, value in host.items() if key != "scenario"}
        gpu_hosts[name] = GpuHost(host["scenario"], vars={"kubegpu_default_runtime": "nvidia", **host_vars})
    return run_role(kubeapi, "gpu_validate", variables={**FAST, **(variables or {})}, hosts=gpu_hosts, cwd=tmp_path, **kwargs)


def _pods_written(kubeapi, since: str) -> dict[str, dict]:
    """Every smoke pod as the server stored it (the last version before deletion), replayed from its watch history."""
    url = f"{kubeapi.url}/api/v1/namespaces/default/pods?watch=1&resourceVersion={since}&timeoutSeconds=1"
    pods = {}
    with urllib.request.urlopen(url, timeout=10) as stream:
        for line in stream:
            event = json.loads(line)
            if event["type"] in ("ADDED", "MODIFIED"):
                pods[event["object"]["metadata"]["name"]] = event["object"]
    return pods


def _resource_version(kubeapi) -> str:
    with urllib.request.urlopen(f"{kubeapi.url}/api/v1/namespaces/default/pods", timeout=10) as response:
        return json.loads(response.read())["metadata"]["resourceVersion"]


def _taint(kubeapi, node: str, taints: list[dict]) -> None:
    request = urllib.request.Request(
        f"{kubeapi.url}/api/v1/nodes/{node}",
        data=json.dumps({"spec": {"taints": taints}}).encode(),
        headers={"Content-Type": "application/merge-patch+json"},
        method="PATCH",
    )
    urllib.request.urlopen(request, timeout=10).close()


def test_smoke_pods_pass_on_every_gpu_node_and_the_report_says_so(kubeapi, tmp_path):
    kubeapi.admin.set_ready_controller(True)
    _taint(kubeapi, "gpu-node-1", [{"key": "gpu", "effect": "NoSchedule"}])  # the smoke pods tolerate the GPU taint
    hosts = {name: {"scenario": scenario} for name, scenario in SCENARIOS.items()}
    hosts["gpu-node-3"]["kubegpu_device_plugin"] = "nvidia_device_plugin"
    since = _resource_version(kubeapi)

    run = _validate(kubeapi, tmp_path, hosts)
    assert run.rc == 0, run.stdout
    table = "\n".join(run.task("GPU readiness").result["msg"])
    assert "gpu-node-1  2x Tesla V100-SXM2-16GB" in table and "gpu:NoSchedule" in table

    pods = _pods_written(kubeapi, since)
    assert sorted(pods) == ["kubegpu-smoke-gpu-node-1", "kubegpu-smoke-gpu-node-2", "kubegpu-smoke-gpu-node-3"]
    vgpu = pods["kubegpu-smoke-gpu-node-1"]["spec"]
    assert vgpu["schedulerName"] == "hami-scheduler" and vgpu["restartPolicy"] == "Never"
    assert vgpu["containers"][0]["resources"]["limits"] == {
        "nvidia.com/gpu": "1",
        "nvidia.com/gpumem": "1024",
        "nvidia.com/gpucores": "10",
    }
    assert {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"} in vgpu["tolerations"]
    assert vgpu["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-node-1"]}]}
    ]
    assert vgpu["nodeName"] == "gpu-node-1"  # bound by the scheduler double, not pinned by the role
    plugin = pods["kubegpu-smoke-gpu-node-3"]["spec"]
    assert "schedulerName" not in plugin or plugin["schedulerName"] == "default-scheduler"
    assert plugin["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert json.loads(urllib.request.urlopen(f"{kubeapi.url}/api/v1/namespaces/default/pods", timeout=10).read())["items"] == []

    report = json.loads((tmp_path / "kubegpu-report" / "report.json").read_text())["nodes"]
    first = report[0]
    assert first["node"] == "gpu-node-1" and first["registered"] and first["device_plugin"] == "vgpu_scheduler"
    assert first["gpus"] == {"count": 2, "models": ["Tesla V100-SXM2-16GB"], "memory_mib": [16384, 16384]}
    assert first["driver_version"] == fake_nvml.load("v100x2")["driver_version"]
    assert first["default_runtime"] == "nvidia"
    assert first["labels"] == {"nvidia.com/gpu.present": "true"}
    assert first["taints"] == [{"key": "gpu", "effect": "NoSchedule"}]
    assert first["allocatable"] == {"nvidia.com/gpu": "2"}
    assert first["smoke"] == {
        "result": "passed",
        "message": "pod default/kubegpu-smoke-gpu-node-1 succeeded on gpu-node-1",
        "pod": "default/kubegpu-smoke-gpu-node-1",
    }
    assert [(entry["node"], entry["gpus"]["count"], entry["smoke"]["result"]) for entry in report] == [
        ("gpu-node-1", 2, "passed"),
        ("gpu-node-2", 1, "passed"),
        ("gpu-node-3", 8, "passed"),
    ]
    markdown = (tmp_path / "kubegpu-report" / "report.md").read_text()
    assert "3 GPU node(s): 3 smoke test(s) passed, 0 failed, 0 skipped." in markdown

    again = _validate(kubeapi, tmp_path, hosts)
    assert again.rc == 0 and again.changed == [], again.stdout


def test_the_aws_stacks_smoke_pod_is_an_mps_client_as_the_upstream_manifest_requires(kubeapi, tmp_path):
    """The AWS plugin's MPS server (its DaemonSet: hostIPC and the host path of its pipe directory) serves only pods
    that share the host's IPC namespace and mount that directory (awslabs/aws-virtual-gpu-device-plugin's README);
    ``nvidia-smi -L`` opens no CUDA context, so a smoke pod without them would pass and prove nothing."""
    manifest = yaml.safe_load(require("manifests", "aws-virtual-gpu-device-plugin.yml").read_text())
    server = manifest["spec"]["template"]["spec"]
    (mps,) = [container for container in server["containers"] if container["name"] == "mps"]
    (mount,) = mps["volumeMounts"]
    (volume,) = [volume for volume in server["volumes"] if volume["name"] == mount["name"]]
    hosts = {"gpu-node-1": {"scenario": "v100x2", "kubegpu_device_plugin": "aws_vgpu_plugin"}}
    run = _validate(kubeapi, tmp_path, hosts, check=True)
    assert run.rc == 0, run.stdout
    (pod,) = [entry["object"] for entry in run.task("Start the smoke pods").result["objects"]]
    spec = pod["spec"]
    assert spec["hostIPC"] is server["hostIPC"] is True
    (mounted,) = [v for v in spec["volumes"] if v.get("hostPath", {}).get("path") == volume["hostPath"]["path"]]
    assert {"name": mounted["name"], "mountPath": mount["mountPath"]} in spec["containers"][0]["volumeMounts"]
    assert spec["containers"][0]["resources"]["limits"] == {"k8s.amazonaws.com/vgpu": "1"}


def test_a_node_without_allocatable_gpus_fails_its_smoke_test_with_the_reason(kubeapi, tmp_path):
    kubeapi.admin.set_ready_controller(True)
    # a node whose facts show a T4 but whose device plugin advertises nothing; another not in the cluster at all
    kubeapi.admin.load(yaml.safe_dump(gpu_node("gpu-node-4", gpus=0)))
    hosts = {
        "gpu-node-2": {"scenario": "t4"},
        "gpu-node-4": {"scenario": "t4"},
        "gpu-node-3": {"scenario": "h100x8", "kubegpu_device_plugin": "none"},
        "gpu-node-9": {"scenario": "t4"},
    }
    run = _validate(kubeapi, tmp_path, hosts)
    assert run.rc != 0
    failure = run.failed[-1]
    assert failure["task"] == "Fail when a node failed its validation"
    assert "GPU validation failed on gpu-node-4, gpu-node-9" in failure["result"]["msg"]

    report = {entry["node"]: entry for entry in json.loads((tmp_path / "kubegpu-report" / "report.json").read_text())["nodes"]}
    assert report["gpu-node-2"]["smoke"]["result"] == "passed"
    failed = report["gpu-node-4"]["smoke"]
    assert failed["result"] == "failed" and failed["pod"] == "default/kubegpu-smoke-gpu-node-4"
    assert "did not finish within 4s, still Pending" in failed["message"]
    assert "not scheduled (Unschedulable): 0/4 nodes are available:" in failed["message"]
    assert "1 Insufficient nvidia.com/gpu" in failed["message"]
    assert report["gpu-node-4"]["allocatable"] == {} and report["gpu-node-4"]["gpus"]["count"] == 1
    assert report["gpu-node-3"]["smoke"] == {
        "result": "skipped",
        "message": "no device stack on this node (kubegpu_device_plugin=none)",
        "pod": None,
    }
    assert report["gpu-node-9"]["registered"] is False
    assert report["gpu-node-9"]["smoke"]["message"] == "node gpu-node-9 is not registered with the API server"
    markdown = (tmp_path / "kubegpu-report" / "report.md").read_text()
    assert "4 GPU node(s): 1 smoke test(s) passed, 2 failed, 1 skipped." in markdown
    # the smoke pods are removed, the failed one too
    assert json.loads(urllib.request.urlopen(f"{kubeapi.url}/api/v1/namespaces/default/pods", timeout=10).read())["items"] == []


def test_check_mode_sends_the_pods_as_a_dry_run_and_writes_nothing(kubeapi, tmp_path):
    kubeapi.admin.set_ready_controller(True)
    run = _validate(kubeapi, tmp_path, {name: {"scenario": scenario} for name, scenario in SCENARIOS.items()}, check=True)
    assert run.rc == 0, run.stdout
    pod_writes = [entry for entry in writes(kubeapi) if "/pods" in entry["path"]]
    assert pod_writes and all(entry["query"].get("dryRun") == "All" for entry in pod_writes)
    assert not (tmp_path / "kubegpu-report").exists()
    table = run.task("GPU readiness").result["msg"]
    assert "gpu-node-2: skipped - check mode: the smoke pods were sent as a dry run, not run" in table
    assert set(run.changed) == {"The report's directory", "The report as JSON", "The report as Markdown"}


def test_bad_settings_are_refused_before_any_request(kubeapi, tmp_path):
    bad = {"gpu_validate_device_plugin": "hami", "gpu_validate_smoke_timeout": 0}
    run = _validate(kubeapi, tmp_path, {"gpu-node-2": {"scenario": "t4"}}, bad)
    assert run.rc != 0
    message = run.failed[0]["result"]["msg"]
    for word in ("device stacks hami", "valid: vgpu_scheduler, nvidia_device_plugin", "smoke_timeout=0"):
        assert word in message, message
    assert kubeapi.admin.requests() == []
