"""gpu_validate on nodes of the DRA driver (``kubegpu_device_plugin: dra_driver``), through ansible-playbook against the
test API server at Kubernetes 1.35, with GPU facts gathered by the real kubegpu.core.gpu_facts from the fake NVML
scenarios (t4, v100x2).

The cluster: the DeviceClasses and the kubelet plugin's DaemonSet of the real chart dra-driver-nvidia-gpu 0.4.1
(rendered by real helm with GPUs on and the GPU taint tolerated), GPU nodes as gpu_labels and NFD leave them, each
naming the fake NVML scenario of its GPUs. The DaemonSet controller double places the kubelet plugin's pods, and the
kubelet-plugin double (tests/support/kubeapi/dra_plugin.py) publishes, where that pod runs, one ResourceSlice with the
node's GPUs as the real driver does. A node is broken by giving it other GPUs than its host's facts (another scenario)
or none (no scenario: nothing is published).

Simulated: the pods never run. With the ready controller on, the server's scheduler double
(tests/support/kubeapi/dra.py) makes each pod's claim from its template, allocates it from the ResourceSlices with the
DeviceClass's and the request's CEL selectors (cel-python) or leaves the pod Pending (``cannot allocate all claims``),
and its kubelet double reports a placed pod's init container (the smoke command, holding the claim) terminated with
exit code 0 and the pod Running (its main container only sleeps), so its claim stays reserved until the pod goes."""

from __future__ import annotations

import copy
import json
import urllib.request

import pytest
import yaml

from tests.support import fake_nvml, upstream
from tests.support.kube_modules import writes
from tests.support.kubeapi.nodes import gpu_node
from tests.support.lab.report import render
from tests.support.role_runs import GpuHost, RoleVariant, run_role, run_role_variants

KUBE_VERSION = "v1.35.0"
CHART = "dra-driver-nvidia-gpu-0.4.1.tgz"
NAMESPACE = "dra-driver-nvidia-gpu"  # the dra_driver role's default (dra_driver_namespace)
FAST = {"gpu_validate_smoke_timeout": 2, "gpu_validate_smoke_poll_interval": 1}
GPU_TAINT = {"key": "gpu", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def chart(kubeapi_server):
    """The real chart's DeviceClasses and kubelet plugin DaemonSet, rendered for a 1.35 cluster with GPUs on and the
    GPU taint tolerated (as the dra_driver role asks)."""
    values = {
        "gpuResourcesEnabledOverride": True,
        "resources": {"gpus": {"enabled": True}, "computeDomains": {"enabled": False}},
        "kubeletPlugin": {
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
            ]
        },
    }
    docs = upstream.helm_template(
        upstream.chart(CHART), values, release="dra-driver-nvidia-gpu", namespace=NAMESPACE, kube_version=KUBE_VERSION
    )
    classes = upstream.named(docs, "DeviceClass")
    (daemonset,) = upstream.named(docs, "DaemonSet")
    daemonset = copy.deepcopy(daemonset)
    daemonset["metadata"]["namespace"] = NAMESPACE
    return {"classes": classes, "daemonset": daemonset}


def _node(name: str, scenario: str | None) -> dict:
    """A GPU node of the DRA stack as gpu_labels and NFD leave it: gpu=on, the GPU taint, NFD's NVIDIA PCI label
    (the kubelet plugin's required affinity); no nvidia.com/gpu allocatable (no device plugin); its GPUs the fake NVML
    ``scenario`` (None: none the plugin double can see)."""
    labels = {"gpu": "on", "nvidia.com/gpu.present": "true", "feature.node.kubernetes.io/pci-10de.present": "true"}
    node = gpu_node(name, gpus=0, labels=labels, scenario=scenario)
    node["spec"]["taints"] = [dict(GPU_TAINT)]
    return node


def _load(kubeapi, chart, nodes: dict[str, str | None]) -> None:
    """The cluster: the chart's objects and the nodes (name -> the scenario of its GPUs)."""
    kubeapi.admin.reset()
    kubeapi.admin.set_version(KUBE_VERSION)
    kubeapi.admin.set_ready_controller(True)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    objects = [namespace, *chart["classes"], chart["daemonset"], *[_node(name, scenario) for name, scenario in nodes.items()]]
    kubeapi.admin.load(yaml.safe_dump_all(objects))


def _hosts(scenarios: dict[str, str]) -> dict[str, GpuHost]:
    return {
        name: GpuHost(scenario, vars={"kubegpu_default_runtime": "nvidia", "kubegpu_device_plugin": "dra_driver"})
        for name, scenario in scenarios.items()
    }


def _list(kubeapi, path: str) -> list[dict]:
    with urllib.request.urlopen(f"{kubeapi.url}{path}", timeout=10) as response:
        return json.loads(response.read())["items"]


def _checks(entry: dict) -> dict[str, tuple[str, str]]:
    return {item["check"]: (item["result"], item["message"]) for item in entry["checks"]}


def _report(run, play: str) -> dict[str, dict]:
    entries = run.in_play(play).task("Build the readiness report").result["ansible_facts"]["__gpu_validate_report"]
    return {entry["node"]: entry for entry in entries}


def test_dra_nodes_pass_each_check_and_the_report_shows_their_devices(kubeapi, chart, tmp_path):
    """dra-1 has two V100s, dra-2 and dra-3 a T4 each: the claim selecting the V100 is placed by the scheduler alone,
    those selecting the T4 are pinned (two nodes have it). A second run changes nothing; check mode writes nothing."""
    scenarios = {"dra-1": "v100x2", "dra-2": "t4", "dra-3": "t4"}
    _load(kubeapi, chart, scenarios)
    variants = {name: RoleVariant({**FAST, "gpu_validate_report_dir": str(tmp_path / "report")}) for name in ("first", "again")}
    run = run_role_variants(kubeapi, "gpu_validate", variants, hosts=_hosts(scenarios))
    assert run.failed == [], "\n".join(run.failures)
    (gpu_class,) = [item for item in chart["classes"] if item["metadata"]["name"] == "gpu.nvidia.com"]
    v100 = fake_nvml.load("v100x2")["devices"]
    t4 = fake_nvml.load("t4")["devices"][0]["name"]

    report = _report(run, "first")
    for node, entry in report.items():
        checks = _checks(entry)
        assert list(checks) == ["daemonsets", "allocatable", "resourceslices", "profile", "smoke", "selector", "gpu_label"]
        assert entry["result"] == "passed", (node, checks)
        assert checks["daemonsets"] == (
            "passed",
            "a Ready pod on the node from each of dra-driver-nvidia-gpu-kubelet-plugin",
        )
        assert checks["allocatable"][0] == "skipped" and "ResourceSlices" in checks["allocatable"][1]
    dra1 = report["dra-1"]
    assert [(item["name"], item["type"], item["productName"]) for item in dra1["dra"]["published"]] == [
        ("gpu-0", "gpu", v100[0]["name"]),
        ("gpu-1", "gpu", v100[1]["name"]),
    ]
    assert _checks(dra1)["resourceslices"] == (
        "passed",
        f"2 device(s) published as the facts found: gpu-0 ({v100[0]['name']}), gpu-1 ({v100[1]['name']})",
    )
    assert _checks(dra1)["selector"] == (
        "passed",
        f"a claim selecting productName '{v100[0]['name']}' got gpu-0 on dra-1 (placed by the scheduler alone)",
    )
    assert _checks(report["dra-2"])["selector"] == (
        "passed",
        f"a claim selecting productName '{t4}' got gpu-0 on dra-2 (pinned to the node, as dra-3 has the same model)",
    )
    # each node: the smoke pod's claim and the selector's claim, each one device of that node
    for node, entry in report.items():
        allocated = [
            (item["check"], item["pod"], item["driver"], item["pool"], item["device"]) for item in entry["dra"]["allocated"]
        ]
        assert allocated == [
            ("smoke", f"default/kubegpu-smoke-{node}", "gpu.nvidia.com", node, "gpu-0"),
            ("selector", f"default/kubegpu-select-{node}", "gpu.nvidia.com", node, "gpu-0"),
        ]
        assert _checks(entry)["smoke"] == ("passed", f"pod default/kubegpu-smoke-{node}: init container smoke exited 0 on {node}")

    # the claims were read while their pods ran: each pod Running, its init container done, each claim allocated and
    # still reserved for its pod (the resourceclaim controller releases and deletes the claim of a pod that is done)
    for wave in ("smoke", "selector"):
        seen = run.in_play("first").task(f"Wait for the pods to finish ({wave})").result["resources"]
        assert {pod["status"]["phase"] for pod in seen} == {"Running"}, wave
        assert {
            (status["name"], status["state"]["terminated"]["exitCode"])
            for pod in seen
            for status in pod["status"]["initContainerStatuses"]
        } == {("smoke", 0)}
        read = run.in_play("first").task(f"Read the DRA claims ({wave})").result["resources"]
        assert len(read) == 3 and all(claim["status"]["allocation"] for claim in read), wave
        assert sorted(ref["name"] for claim in read for ref in claim["status"]["reservedFor"]) == sorted(
            pod["metadata"]["name"] for pod in seen
        )

    # what the role sent: the smoke claim asks one device of the chart's GPU class, the selector's selects by CEL
    first = run.in_play("first")
    started = first.task("Start the pods (selector)").result["objects"]
    created = first.task("Create the DRA nodes' ResourceClaimTemplates first (selector)").result["objects"]
    templates = {item["object"]["metadata"]["name"]: item["object"] for item in created}
    (request,) = templates["kubegpu-select-dra-1"]["spec"]["spec"]["devices"]["requests"]
    assert request["exactly"]["deviceClassName"] == gpu_class["metadata"]["name"]
    assert request["exactly"]["selectors"] == [
        {"cel": {"expression": f'device.attributes["gpu.nvidia.com"].productName == "{v100[0]["name"]}"'}}
    ]
    pods = {item["object"]["metadata"]["name"]: item["object"] for item in started if item["object"]["kind"] == "Pod"}
    assert "affinity" not in pods["kubegpu-select-dra-1"]["spec"] and "nodeName" not in pods["kubegpu-select-dra-1"]["spec"]
    assert pods["kubegpu-select-dra-2"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["dra-2"]}]}]
    }
    # the smoke command runs as the init container holding the claim; the main container only waits, holding nothing
    (init,) = pods["kubegpu-select-dra-2"]["spec"]["initContainers"]
    assert (init["name"], init["command"], init["resources"]) == ("smoke", ["nvidia-smi", "-L"], {"claims": [{"name": "gpu"}]})
    (hold,) = pods["kubegpu-select-dra-2"]["spec"]["containers"]
    assert (hold["name"], hold["command"], hold.get("resources")) == ("hold", ["sleep", "2"], None)
    assert pods["kubegpu-select-dra-2"]["spec"]["restartPolicy"] == "Never"

    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| selector | gpu_label | result |" in markdown
    assert f"- DRA devices published: `gpu-0` (gpu, {v100[0]['name']}), `gpu-1` (gpu, {v100[1]['name']})" in markdown
    assert "- DRA devices allocated: `gpu-0` to default/kubegpu-smoke-dra-1 (smoke)" in markdown
    # the lab's HTML page, from the report.json written
    page = render(json.loads((tmp_path / "report" / "report.json").read_text()))
    assert page.count('<code data-device="gpu-1">') == 1 and page.count('<code data-allocated="gpu-0">') == 6
    assert "gpu-0</code> to default/kubegpu-select-dra-2 (selector)" in page

    # nothing left behind: pods, templates, and the claims made from them (the garbage collector, as their pods go)
    for path in (
        "/api/v1/namespaces/default/pods",
        "/apis/resource.k8s.io/v1/namespaces/default/resourceclaimtemplates",
        "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims",
    ):
        assert _list(kubeapi, path) == [], path
    assert run.in_play("again").changed == [] and _report(run, "again") == report

    # check mode (ansible-playbook --check): reads, and the templates and pods sent as a dry run
    kubeapi.admin.reset_counters()
    check = run_role(kubeapi, "gpu_validate", variables=FAST, hosts=_hosts(scenarios), cwd=tmp_path, check=True)
    assert check.rc == 0, check.stdout
    entries = check.task("Build the readiness report").result["ansible_facts"]["__gpu_validate_report"]
    skipped = ("skipped", "check mode: the smoke pods were sent as a dry run, not run")
    assert {(_checks(entry)["smoke"], _checks(entry)["selector"]) for entry in entries} == {(skipped, skipped)}
    assert {_checks(entry)["resourceslices"][0] for entry in entries} == {"passed"}
    sent = writes(kubeapi)
    assert sent and all(entry["query"].get("dryRun") == "All" for entry in sent), sent
    created = {entry["path"].split("/")[-2] for entry in sent if entry["method"] == "PATCH"}  # server-side apply
    assert created == {"pods", "resourceclaimtemplates"}, sent


def test_a_dra_node_short_of_gpus_or_claims_that_cannot_be_met_fail_naming_the_node(kubeapi, chart, tmp_path):
    """The hosts' facts: dra-1 a T4, dra-2 two V100s, dra-3 a T4. The nodes' GPUs as the plugin double sees them:
    dra-1 two V100s, dra-2 a T4, dra-3 none. So dra-1 publishes more GPUs and dra-2 fewer than their facts, dra-3
    nothing (its smoke claim cannot be allocated), no node has a T4 for the claims selecting one (pinned: two hosts
    have it), and the claim selecting a V100 for dra-2 lands on dra-1 (the first node that can serve it)."""
    facts = {"dra-1": "t4", "dra-2": "v100x2", "dra-3": "t4"}
    v100 = fake_nvml.load("v100x2")["devices"][0]["name"]
    t4 = fake_nvml.load("t4")["devices"][0]["name"]
    _load(kubeapi, chart, {"dra-1": "v100x2", "dra-2": "t4", "dra-3": None})
    run = run_role(kubeapi, "gpu_validate", variables={**FAST}, hosts=_hosts(facts), cwd=tmp_path)
    assert run.rc != 0
    failure = run.failed[-1]
    assert failure["task"].endswith("Fail when a node failed its validation")
    message = failure["result"]["msg"]
    assert message.startswith("GPU validation failed on dra-1, dra-2, dra-3:"), message
    report = {entry["node"]: entry for entry in json.loads((tmp_path / "kubegpu-report" / "report.json").read_text())["nodes"]}
    checks = {node: _checks(entry) for node, entry in report.items()}

    short = "node dra-2: 1 gpu device(s) published (gpu-0), the facts found 2"
    assert checks["dra-2"]["resourceslices"] == ("failed", short)
    assert f"dra-2: resourceslices: {short}" in message
    assert checks["dra-1"]["resourceslices"] == (
        "failed",
        "node dra-1: 2 gpu device(s) published (gpu-0, gpu-1), the facts found 1",
    )
    assert checks["dra-3"]["resourceslices"] == (
        "failed",
        "no ResourceSlice of driver gpu.nvidia.com publishes a device of node dra-3 (the facts found 1 gpu)",
    )
    assert checks["dra-3"]["daemonsets"][0] == "passed"  # the plugin runs there, but sees no GPU
    smoke = checks["dra-3"]["smoke"]
    assert smoke[0] == "failed" and "did not finish within 2s, still Pending" in smoke[1]
    assert "cannot allocate all claims" in smoke[1], smoke
    assert checks["dra-2"]["smoke"][0] == checks["dra-1"]["smoke"][0] == "passed"
    assert checks["dra-2"]["selector"] == ("failed", f"the claim selecting productName '{v100}' landed on dra-1, not on dra-2")
    for node in ("dra-1", "dra-3"):  # pinned (the same model): no T4 device anywhere
        result, why = checks[node]["selector"]
        assert result == "failed" and why.startswith(
            f"the claim selecting productName '{t4}': pod default/kubegpu-select-{node}"
        ), why
        assert "cannot allocate all claims" in why
    assert [item["productName"] for item in report["dra-2"]["dra"]["published"]] == [t4]
    assert report["dra-3"]["dra"] == {"published": [], "allocated": []}
    for path in ("/api/v1/namespaces/default/pods", "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims"):
        assert _list(kubeapi, path) == [], path
