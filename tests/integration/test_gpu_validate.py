"""The gpu_validate role through ansible-playbook against the test API server, with GPU facts gathered by the real
kubegpu.core.gpu_facts from the fake NVML scenarios (2x V100, 1x T4, 8x H100) in a first play, as facts.yml does.

Simulated: the smoke pods never run. With the ready controller on, the server's scheduler and kubelet doubles
(tests/support/kubeapi/kubelet.py) place each pod from its affinity, tolerations and GPU requests against the Node
objects' taints and allocatable resources, and mark a placed run-to-completion pod Succeeded; a node that does not
advertise the GPU resource leaves its pod Pending and Unschedulable, which the role must report as failed."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request

import pytest
import yaml

from tests.support import fake_nvml, upstream
from tests.support.kube_modules import get_object, writes
from tests.support.kubeapi.nodes import gpu_node
from tests.support.role_runs import GpuHost, RoleVariant, run_role, run_role_variants
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


def test_smoke_pods_pass_on_every_gpu_node_and_the_report_says_so(kubeapi, stack, tmp_path):
    kubeapi.admin.set_ready_controller(True)
    _load_cluster(kubeapi, stack, controllers=True)  # a healthy cluster, as the bench runs it
    hosts = {name: {"scenario": scenario} for name, scenario in SCENARIOS.items()}
    hosts["gpu-node-3"]["kubegpu_device_plugin"] = "nvidia_device_plugin"
    since = _resource_version(kubeapi)

    run = _validate(kubeapi, tmp_path, hosts, SETTINGS)
    assert run.rc == 0, run.stdout
    table = "\n".join(run.task("GPU readiness").result["msg"])
    assert "gpu-node-1  2x Tesla V100-SXM2-16GB" in table and "gpu:NoSchedule" in table

    pods = _pods_written(kubeapi, since)
    # gpu-node-3 shares its 8 GPUs by time-slicing: 9 pods, each asking for one, must run there together
    shared = ["kubegpu-smoke-gpu-node-3", *[f"kubegpu-smoke-gpu-node-3-{index}" for index in range(1, 9)]]
    assert sorted(pods) == sorted(["kubegpu-smoke-gpu-node-1", "kubegpu-smoke-gpu-node-2", *shared])
    assert {pods[name]["spec"]["nodeName"] for name in shared} == {"gpu-node-3"}
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
    assert first["labels"]["nvidia.com/gpu.present"] == "true" and first["labels"]["gpu"] == "on"
    assert first["taints"] == [{"key": "gpu", "effect": "NoSchedule"}]
    assert first["allocatable"] == {"nvidia.com/gpu": "20"}
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
    assert report[2]["smoke"]["message"] == "9 pods, each asking for one shared GPU, succeeded together on gpu-node-3"
    markdown = (tmp_path / "kubegpu-report" / "report.md").read_text()
    assert "3 GPU node(s): 3 passed, 0 failed, 0 skipped." in markdown
    assert [entry["result"] for entry in report] == ["passed"] * 3

    again = _validate(kubeapi, tmp_path, hosts, SETTINGS)
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
    # no AWS plugin on the bench: its checks fail, which this test does not judge
    run = _validate(kubeapi, tmp_path, hosts, {"gpu_validate_fail_on_error": False}, check=True)
    assert run.rc == 0, run.stdout
    (pod,) = [entry["object"] for entry in run.task("Start the pods (smoke)").result["objects"]]
    spec = pod["spec"]
    assert spec["hostIPC"] is server["hostIPC"] is True
    (mounted,) = [v for v in spec["volumes"] if v.get("hostPath", {}).get("path") == volume["hostPath"]["path"]]
    assert {"name": mounted["name"], "mountPath": mount["mountPath"]} in spec["containers"][0]["volumeMounts"]
    assert spec["containers"][0]["resources"]["limits"] == {"k8s.amazonaws.com/vgpu": "1"}


def test_a_node_without_allocatable_gpus_fails_its_smoke_test_with_the_reason(kubeapi, stack, tmp_path):
    kubeapi.admin.set_ready_controller(True)
    _load_cluster(kubeapi, stack, controllers=True)
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
    assert "4 GPU node(s): 2 passed, 2 failed, 0 skipped." in markdown
    assert {node: entry["result"] for node, entry in report.items()} == {
        "gpu-node-2": "passed",
        "gpu-node-3": "passed",  # no device stack: only gpu=on is checked there
        "gpu-node-4": "failed",
        "gpu-node-9": "failed",
    }
    assert _checks(report["gpu-node-4"])["daemonsets"] == (
        "failed",
        "DaemonSet kube-system/hami-device-plugin places no pod on the node: its nodeSelector needs the label gpu=on, "
        "the node lacks it (HAMi's device plugin)",
    )
    # the smoke pods are removed, the failed one too
    assert json.loads(urllib.request.urlopen(f"{kubeapi.url}/api/v1/namespaces/default/pods", timeout=10).read())["items"] == []


def test_check_mode_sends_the_pods_as_a_dry_run_and_writes_nothing(kubeapi, stack, tmp_path):
    kubeapi.admin.set_ready_controller(True)
    _load_cluster(kubeapi, stack, controllers=True)
    hosts = {name: {"scenario": scenario} for name, scenario in SCENARIOS.items()}
    hosts["gpu-node-3"]["kubegpu_device_plugin"] = "nvidia_device_plugin"
    run = _validate(kubeapi, tmp_path, hosts, SETTINGS, check=True)
    assert run.rc == 0, run.stdout
    pod_writes = [entry for entry in writes(kubeapi) if "/pods" in entry["path"]]
    assert pod_writes and all(entry["query"].get("dryRun") == "All" for entry in pod_writes)
    assert not (tmp_path / "kubegpu-report").exists()
    table = run.task("GPU readiness").result["msg"]
    assert "gpu-node-2: smoke: skipped - check mode: the smoke pods were sent as a dry run, not run" in table
    assert "gpu-node-2: daemonsets: passed - a Ready pod on the node from each of hami-device-plugin" in table
    assert set(run.changed) == {"The report's directory", "The report as JSON", "The report as Markdown"}


def test_bad_settings_are_refused_before_any_request(kubeapi, tmp_path):
    bad = {"gpu_validate_device_plugin": "hami", "gpu_validate_smoke_timeout": 0}
    run = _validate(kubeapi, tmp_path, {"gpu-node-2": {"scenario": "t4"}}, bad)
    assert run.rc != 0
    message = run.failed[0]["result"]["msg"]
    for word in ("device stacks hami", "valid: vgpu_scheduler, nvidia_device_plugin", "smoke_timeout=0"):
        assert word in message, message
    # the collection's modules never watch; a watch here is a helm or kubectl client of an earlier test on the
    # session's server re-opening its watch (seen in a clean-clone run under load), not a request of this run
    assert [request for request in kubeapi.admin.requests() if request["verb"] != "watch"] == []


# ---- the checks per GPU node, on clusters loaded as given (the ready controller off: nothing rewrites them)

HAMI = "Install or upgrade the vGPU scheduler release"
NVDP = "Install or upgrade the NVIDIA device plugin release"
PROFILE = "Apply the Profile withgpu"
BENCH_HOSTS = {
    "gpu-node-1": GpuHost("v100x2", vars={"kubegpu_default_runtime": "nvidia"}),
    "gpu-node-2": GpuHost("t4", vars={"kubegpu_default_runtime": "nvidia"}),
    "gpu-node-3": GpuHost("h100x8", vars={"kubegpu_default_runtime": "nvidia", "kubegpu_device_plugin": "nvidia_device_plugin"}),
}
# the cluster's settings: HAMi on two nodes, NVIDIA's plugin time-slicing each GPU 4 ways on the third, OpenFaaS
# Standard (so the GPU nodes are tainted and the Profile tolerates the taint)
SETTINGS = {
    "kubegpu_openfaas_enabled": True,
    "nvidia_device_plugin_sharing": "time-slicing",
    "nvidia_device_plugin_replicas": 4,
}
ROLE_SETTINGS = {
    **SETTINGS,
    "vgpu_scheduler_chart_ref": "../shared/upstream/charts/hami-2.10.0.tgz",
    "vgpu_scheduler_chart_repo_url": "",
    "nvidia_device_plugin_chart_ref": "../shared/upstream/charts/nvidia-device-plugin-0.20.0.tgz",
    "nvidia_device_plugin_chart_repo_url": "",
}
KUBE_VERSION = "v1.35.0"


@pytest.fixture(scope="module")
def stack(kubeapi_server):
    """The GPU nodes as the real gpu_labels leaves them, the real charts (HAMi 2.10.0, NVIDIA device plugin 0.20.0)
    rendered with the values the real vgpu_scheduler and nvidia_device_plugin roles plan, and the Profile the real
    openfaas_profile role applies (its dry run, against the real Profile CRD): one role run each for the module."""
    kubeapi = kubeapi_server
    kubeapi.admin.reset()
    kubeapi.admin.set_version(KUBE_VERSION)
    kubeapi.admin.load(
        require("crds", "openfaas.com_profiles.yaml").read_text()
        + "\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: openfaas}\n"
    )
    nodes = upstream.nodes_after_gpu_labels(kubeapi, BENCH_HOSTS, SETTINGS)
    settings = {
        **ROLE_SETTINGS,
        "vgpu_scheduler_chart_ref": str(upstream.chart("hami-2.10.0.tgz")),
        "nvidia_device_plugin_chart_ref": str(upstream.chart("nvidia-device-plugin-0.20.0.tgz")),
    }
    run = run_role(
        kubeapi,
        ["vgpu_scheduler", "nvidia_device_plugin", "openfaas_profile"],
        hosts=BENCH_HOSTS,
        variables=settings,
        check=True,
        diff=True,
    )
    hami = upstream.helm_template(
        upstream.chart("hami-2.10.0.tgz"),
        upstream.planned_values(run, HAMI),
        release="hami",
        namespace="kube-system",
        kube_version=KUBE_VERSION,
    )
    nvdp = upstream.helm_template(
        upstream.chart("nvidia-device-plugin-0.20.0.tgz"),
        upstream.planned_values(run, NVDP),
        release="nvidia-device-plugin",
        namespace="nvidia-device-plugin",
        kube_version=KUBE_VERSION,
    )
    (profile,) = [entry["object"] for entry in run.task(PROFILE).result["objects"]]
    kubeapi.admin.reset()
    return {"nodes": nodes, "hami": hami, "nvdp": nvdp, "profile": profile}


DAEMON_NAMESPACES = {"hami": "kube-system", "nvdp": "nvidia-device-plugin"}
# What the nodes advertise when each stack applied its configuration, as the vendors document it: HAMi's device
# plugin registers deviceSplitCount (10) devices per GPU as nvidia.com/gpu (its docs: a node with 2 GPUs shows
# nvidia.com/gpu: 20; gpumem and gpucores are its scheduler's bookkeeping, not node resources); NVIDIA's plugin
# with time-slicing advertises replicas per GPU (its README: 8 GPUs shared 10 ways show nvidia.com/gpu: 80).
APPLIED = {"gpu-node-1": {"nvidia.com/gpu": "20"}, "gpu-node-2": {"nvidia.com/gpu": "10"}, "gpu-node-3": {"nvidia.com/gpu": "32"}}


def _stored(obj: dict) -> dict:
    """``obj`` without what the server assigned when it was read back (so a load stores it as new)."""
    found = copy.deepcopy(obj)
    for key in ("resourceVersion", "managedFields", "uid", "creationTimestamp", "generation"):
        found.get("metadata", {}).pop(key, None)
    return found


def _daemonsets(stack, without_tolerations: set[str] = frozenset()) -> list[dict]:
    """The charts' DaemonSets in the namespaces a helm install puts them; those named in
    ``without_tolerations`` rendered as if their tolerations had been left out of the values."""
    found = []
    for render, namespace in DAEMON_NAMESPACES.items():
        for doc in upstream.named(stack[render], "DaemonSet"):
            daemonset = copy.deepcopy(doc)
            name = daemonset["metadata"]["name"]
            daemonset["metadata"]["namespace"] = namespace
            if name in without_tolerations:
                daemonset["spec"]["template"]["spec"].pop("tolerations", None)
            found.append(daemonset)
    return found


def _daemon_pods(daemonsets: list[dict], nodes: dict[str, dict]) -> list[dict]:
    """What the DaemonSet controller and the kubelets leave: one Running, Ready pod of each DaemonSet on each node
    its pod template fits, judged by kube-scheduler's predicates as the bench reads them (upstream.placement_problem,
    tests/support/kubeapi/kubelet.py), not by the code under test."""
    pods = []
    for daemonset in daemonsets:
        meta = daemonset["metadata"]
        template = daemonset["spec"]["template"]
        for node in nodes.values():
            if upstream.placement_problem(template, node) is not None:
                continue
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{meta['name'][:50]}-{node['metadata']['name'][-5:]}",
                        "namespace": meta["namespace"],
                        "labels": template["metadata"]["labels"],
                        "ownerReferences": [
                            {
                                "apiVersion": "apps/v1",
                                "kind": "DaemonSet",
                                "name": meta["name"],
                                "uid": meta["uid"],
                                "controller": True,
                            }
                        ],
                    },
                    "spec": {"nodeName": node["metadata"]["name"], "containers": template["spec"]["containers"]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
                }
            )
    return pods


def _load_cluster(kubeapi, stack, *, nodes=None, daemonsets=None, allocatable=None, profile=None, controllers=False) -> None:
    """Store the cluster's objects as given: the GPU nodes (replacing the fixture's, ``allocatable`` over their
    status), the stacks' DaemonSets and the pods their controller would have placed, the real Profile CRD and the
    OpenFaaS Profile. With ``controllers`` (the bench's ready controller on), its controllers and device-plugin doubles do what a
    cluster's would instead: the charts' whole renders are stored (their ConfigMaps are the plugins' settings), the
    DaemonSet controller places the pods and the plugins' pods set the nodes' allocatable."""
    nodes = copy.deepcopy(nodes or stack["nodes"])
    for name, node in nodes.items():
        if not controllers:
            node["status"]["allocatable"] = {**node["status"]["allocatable"], **(allocatable or APPLIED).get(name, {})}
        _delete(kubeapi, f"/api/v1/nodes/{name}")
    daemonsets = _daemonsets(stack) if daemonsets is None else daemonsets
    crd = yaml.safe_load(require("crds", "openfaas.com_profiles.yaml").read_text())
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}} for name in ("openfaas", "nvidia-device-plugin")
    ]
    kubeapi.admin.load(yaml.safe_dump_all([crd, *namespaces]))
    if controllers:
        kubeapi.admin.load(yaml.safe_dump_all([_stored(obj) for obj in [*nodes.values(), *_renders(stack)]]))
        kubeapi.admin.load(yaml.safe_dump(_stored(profile or stack["profile"])))
        return
    kubeapi.admin.load(yaml.safe_dump_all([_stored(obj) for obj in [*nodes.values(), *daemonsets, profile or stack["profile"]]]))
    # the pods name their DaemonSet's uid, which the server gave it
    stored = [
        get_object(kubeapi, f"/apis/apps/v1/namespaces/{ds['metadata']['namespace']}/daemonsets/{ds['metadata']['name']}")
        for ds in daemonsets
    ]
    if stored:
        kubeapi.admin.load(yaml.safe_dump_all(_daemon_pods(stored, nodes)))


CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}


def _renders(stack) -> list[dict]:
    """Every object of the charts' renders, in the namespace a helm install puts it."""
    found = []
    for render, namespace in DAEMON_NAMESPACES.items():
        for doc in stack[render]:
            obj = copy.deepcopy(doc)
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"].setdefault("namespace", namespace)
            found.append(obj)
    return found


def _delete(kubeapi, path: str) -> None:
    request = urllib.request.Request(f"{kubeapi.url}{path}", method="DELETE")
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise


def _variants_report(run, name: str) -> dict[str, dict]:
    """The report entries the variant ``name`` built (check mode writes no file), by node."""
    entries = run.in_play(name).task("Build the readiness report").result["ansible_facts"]["__gpu_validate_report"]
    return {entry["node"]: entry for entry in entries}


def _checks(entry: dict) -> dict[str, tuple[str, str]]:
    return {item["check"]: (item["result"], item["message"]) for item in entry["checks"]}


def _variants(tmp_path, names: list[str]) -> dict[str, RoleVariant]:
    base = {**SETTINGS, "gpu_validate_smoke": False}
    return {
        name: RoleVariant({**base, "gpu_validate_report_dir": str(tmp_path / name)}, check="check mode" in name) for name in names
    }


def test_a_healthy_cluster_passes_every_check_of_every_gpu_node(kubeapi, stack, tmp_path):
    _load_cluster(kubeapi, stack)
    run = run_role_variants(kubeapi, "gpu_validate", _variants(tmp_path, ["healthy", "healthy, check mode"]), hosts=BENCH_HOSTS)
    assert run.failed == [], "\n".join(run.failures)
    for name in ("healthy", "healthy, check mode"):
        report = _variants_report(run, name)
        assert sorted(report) == ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
        for node, entry in report.items():
            assert [item["check"] for item in entry["checks"]] == ["daemonsets", "allocatable", "profile", "smoke", "gpu_label"]
            checks = _checks(entry)
            assert entry["result"] == "passed", (node, checks)
            assert checks["smoke"] == ("skipped", "gpu_validate_smoke is false")
            assert all(result == "passed" for check, (result, _why) in checks.items() if check != "smoke"), (node, checks)
        assert "a Ready pod on the node from each of hami-device-plugin" in _checks(report["gpu-node-1"])["daemonsets"][1]
        assert _checks(report["gpu-node-3"])["allocatable"][1] == "nvidia.com/gpu=32"
    table = run.in_play("healthy").task("GPU readiness").result["msg"]
    assert table[0].split()[-6:] == ["daemonsets", "allocatable", "profile", "smoke", "gpu_label", "result"]
    assert "gpu-node-3: profile: passed - the Profile openfaas/withgpu selects and tolerates this node" in table
    assert json.loads((tmp_path / "healthy" / "report.json").read_text())["nodes"] == sorted(
        _variants_report(run, "healthy").values(), key=lambda entry: entry["node"]
    )
    assert not (tmp_path / "healthy, check mode").exists()
    markdown = (tmp_path / "healthy" / "report.md").read_text()
    assert "3 GPU node(s): 3 passed, 0 failed, 0 skipped." in markdown
    assert "- daemonsets: **passed**" in markdown


def test_a_broken_cluster_fails_each_check_naming_the_node_and_the_cause(kubeapi, stack, tmp_path):
    """One cluster broken five ways, each as a real cluster would show it: HAMi's DaemonSet rendered without the
    GPU taint's toleration; the label the NVIDIA plugin's affinity needs removed from gpu-node-3; its time-slicing
    replicas not applied (allocatable 8 = its GPUs, not 8 x 4); the Profile's selector value written from an
    unquoted YAML ``on`` (the boolean True, so "True", not the label's "on"); gpu=on on gpu-node-4, which gpu_labels
    holds back (its default runtime is runc). The same checks run in check mode (reads only)."""
    nodes = copy.deepcopy(stack["nodes"])
    del nodes["gpu-node-3"]["metadata"]["labels"]["nvidia.com/gpu.present"]
    held = gpu_node("gpu-node-4", gpus=1, labels={"gpu": "on"})
    held["spec"]["taints"] = [{"key": "gpu", "effect": "NoSchedule"}]
    nodes["gpu-node-4"] = held
    profile = copy.deepcopy(stack["profile"])
    terms = profile["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["on"]}]}]
    terms[0]["matchExpressions"][0]["values"] = [str(yaml.safe_load("on"))]
    daemonsets = _daemonsets(stack, without_tolerations={"hami-device-plugin"})
    _load_cluster(
        kubeapi,
        stack,
        nodes=nodes,
        daemonsets=daemonsets,
        allocatable={**APPLIED, "gpu-node-3": {"nvidia.com/gpu": "8"}},
        profile=profile,
    )
    hosts = {**BENCH_HOSTS, "gpu-node-4": GpuHost("t4", vars={"kubegpu_default_runtime": "runc"})}
    kubeapi.admin.reset_counters()  # the role's requests only from here
    run = run_role_variants(kubeapi, "gpu_validate", _variants(tmp_path, ["broken", "broken, check mode"]), hosts=hosts)
    for name in ("broken", "broken, check mode"):
        (failure,) = run.in_play(name).failed
        message = failure["result"]["msg"]
        assert failure["task"].endswith("Fail when a node failed its validation"), failure
        assert message.startswith("GPU validation failed on gpu-node-1, gpu-node-2, gpu-node-3, gpu-node-4:"), message
        report = _variants_report(run, name)
        assert {node: entry["result"] for node, entry in report.items()} == dict.fromkeys(report, "failed")
        taint = (
            "DaemonSet kube-system/hami-device-plugin places no pod on the node: "
            "it does not tolerate the node's taint gpu:NoSchedule"
        )
        for node in ("gpu-node-1", "gpu-node-2"):
            assert _checks(report[node])["daemonsets"] == ("failed", f"{taint} (HAMi's device plugin)")
            assert f"{node}: daemonsets: {taint}" in message
        daemonsets_3 = _checks(report["gpu-node-3"])["daemonsets"]
        # the role selects the plugin's nodes by the label gpu_labels writes (and the stack label); GFD and the
        # NFD worker (GFD runs only with MPS by default) are not deployed with time-slicing
        assert daemonsets_3 == (
            "failed",
            "DaemonSet nvidia-device-plugin/nvidia-device-plugin places no pod on the node: its nodeSelector needs the "
            "label nvidia.com/gpu.present=true, the node lacks it (the NVIDIA device plugin)",
        )
        assert f"gpu-node-3: daemonsets: {daemonsets_3[1]}" in message
        assert _checks(report["gpu-node-3"])["allocatable"] == ("failed", "nvidia.com/gpu is 8, expected 32")
        assert "gpu-node-3: allocatable: nvidia.com/gpu is 8, expected 32" in message
        for node in ("gpu-node-1", "gpu-node-2", "gpu-node-3"):
            result, why = _checks(report[node])["profile"]
            assert result == "failed" and "the Profile openfaas/withgpu does not select this GPU node" in why
            assert "label gpu in ['True'] is needed, the node has gpu='on'" in why
        assert _checks(report["gpu-node-4"])["gpu_label"] == (
            "failed",
            "gpu=on is set, but gpu_labels held this node back: "
            "its default runtime is 'runc', not 'nvidia' (kubegpu_default_runtime)",
        )
        assert _checks(report["gpu-node-4"])["daemonsets"][0] == "skipped"
        # what was not broken still passes
        assert _checks(report["gpu-node-1"])["allocatable"] == ("passed", "nvidia.com/gpu=20")
        assert _checks(report["gpu-node-3"])["gpu_label"][0] == "passed"
    assert [entry for entry in writes(kubeapi) if entry["query"].get("dryRun") != "All"] == []
