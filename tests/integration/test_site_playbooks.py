"""Issue 9's acceptance: playbooks/facts.yml, cluster.yml and validate.yml in one ansible-playbook run against the
test API server (the three GPU nodes of its fixture, ``/version`` v1.35.2, ready controller on), the nodes' facts
gathered by the real gpu_facts from the fake NVML scenarios v100x2, t4 and h100x8 (tests/support/site_bench.py
says how), HAMi's real chart (../shared/upstream/charts/hami-2.10.0.tgz) installed by real helm.

Simulated: the GPUs (fake NVML), the cluster (test API server; its ready controller reports DaemonSets and Pods
ready, nothing runs), OpenFaaS' chart (a local stand-in, tests/support/charts/openfaas: no real one is at hand).
Everything is asserted
from the objects the server stores (the smoke pods, deleted by the run, from the server's watch history).
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import typing as t
import urllib.request

import pytest
import yaml

from tests.support import fake_nvml
from tests.support.adhoc import REPO_ROOT, list_plays
from tests.support.kubeapi.nodes import gpu_node
from tests.support.site_bench import NODE_SCENARIOS, UPSTREAM_CHARTS, SiteBench

ROLES = ["gpu_labels", "vgpu_scheduler", "aws_vgpu_plugin", "openfaas_profile", "gpu_validate"]
MISSING = [f"roles/{r}" for r in ROLES if not (REPO_ROOT / "roles" / r).is_dir()] + [
    str(chart) for chart in (UPSTREAM_CHARTS / "hami-2.10.0.tgz",) if not chart.is_file()
]
PLAYBOOKS = ("facts.yml", "cluster.yml", "validate.yml")
TAINT = {"key": "gpu", "value": "", "effect": "NoSchedule"}
ACCELERATOR = {"gpu-node-1": "nvidia-tesla-v100", "gpu-node-2": "nvidia-tesla-t4", "gpu-node-3": "nvidia-h100-80gb"}
GPU_COUNT = {"gpu-node-1": "2", "gpu-node-2": "1", "gpu-node-3": "8"}
# OpenFaaS Standard with the Profile, so the GPU nodes are tainted and everything must tolerate it
OPENFAAS = {"kubegpu_openfaas_enabled": True, "openfaas_profile_install": True}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"missing (the roles, or the real HAMi chart of ../shared/upstream): {MISSING}"),
]


def api(kubeapi, path: str) -> t.Any:
    with urllib.request.urlopen(kubeapi.url + path, timeout=30) as response:
        return json.loads(response.read())


def writes(kubeapi) -> list[str]:
    """Requests that changed stored objects (any write that is not a dry run)."""
    found = []
    for request in kubeapi.admin.requests():
        query = request.get("query") or {}
        dry_run = query.get("dryRun")
        dry_run = dry_run[0] if isinstance(dry_run, list) and dry_run else dry_run
        if request["method"] in ("POST", "PUT", "PATCH", "DELETE") and dry_run != "All" and request.get("code", 500) < 400:
            found.append(f"{request['method']} {request['path']}")
    return found


def write_requests(kubeapi) -> list[str]:
    """Every request that asked to change an object, dry runs and refused ones included."""
    return [
        f"{request['method']} {request['path']}"
        for request in kubeapi.admin.requests()
        if request["method"] in ("POST", "PUT", "PATCH", "DELETE")
    ]


def tolerates(tolerations: list[dict[str, t.Any]] | None, taint: dict[str, str]) -> bool:
    """Kubernetes' rule (ToleratesTaint): an effect, when given, must be the taint's; a key, when given, must be
    the taint's (no key with Exists tolerates every key); Exists matches any value, Equal (the default) the same."""
    for toleration in tolerations or []:
        if toleration.get("effect") and toleration["effect"] != taint["effect"]:
            continue
        if toleration.get("key") and toleration["key"] != taint["key"]:
            continue
        if toleration.get("operator") == "Exists" or toleration.get("value", "") == taint["value"]:
            return True
    return False


def smoke_status(entry: dict[str, t.Any]) -> str:
    """The report's smoke result of a node: passed, failed or skipped (the word, or a mapping holding it)."""
    smoke = entry["smoke"]
    return smoke if isinstance(smoke, str) else smoke.get("status", smoke.get("result"))


def pods_created_since(kubeapi, resource_version: str) -> list[dict[str, t.Any]]:
    """Every Pod the run created, as stored, from the server's watch history after ``resource_version``."""
    path = f"/api/v1/pods?watch=true&resourceVersion={resource_version}&timeoutSeconds=1&allowWatchBookmarks=false"
    with urllib.request.urlopen(kubeapi.url + path, timeout=30) as response:
        events = [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]
    return [event["object"] for event in events if event["type"] == "ADDED"]


@pytest.fixture
def bench(kubeapi, tmp_path) -> SiteBench:
    kubeapi.admin.set_version("v1.35.2")
    kubeapi.admin.set_ready_controller(True)
    # an untainted worker without a GPU, where HAMi's scheduler, its certificate Jobs and OpenFaaS run (the three
    # GPU nodes carry the GPU taint once play 4 ran, and none of those pods tolerates it)
    kubeapi.admin.load(yaml.safe_dump(gpu_node("cpu-node-1", gpus=0)))
    return SiteBench(kubeapi, tmp_path)


def assert_converged(bench: SiteBench, kubeapi) -> None:
    nodes = {node["metadata"]["name"]: node for node in api(kubeapi, "/api/v1/nodes")["items"]}
    for name, scenario in NODE_SCENARIOS.items():
        labels = nodes[name]["metadata"]["labels"]
        driver = fake_nvml.load(scenario)["driver_version"]
        assert labels["nvidia.com/gpu.present"] == "true" and labels["gpu"] == "on", (name, labels)
        assert labels["accelerator"] == ACCELERATOR[name], (name, labels)
        assert labels["nvidia.com/gpu.count"] == GPU_COUNT[name], (name, labels)
        assert labels["nvidia.com/cuda.driver-version.full"] == driver, (name, labels)
        taints = [{k: taint.get(k, "") for k in ("key", "value", "effect")} for taint in nodes[name]["spec"].get("taints", [])]
        assert TAINT in taints, (name, taints)

    # HAMi: one release in kube-system, the scheduler image tag from /version under the key HAMi's chart reads
    releases = [
        s for s in api(kubeapi, "/api/v1/namespaces/kube-system/secrets")["items"] if s.get("type") == "helm.sh/release.v1"
    ]
    assert releases, "no Helm release in kube-system"
    values = bench_helm_values(bench, kubeapi)
    assert values["scheduler"]["kubeScheduler"]["image"]["tag"] == "v1.35.2", values

    # every DaemonSet on the GPU nodes tolerates their taint, and lands on all three
    gpu_daemonsets = [
        ds
        for ds in api(kubeapi, "/apis/apps/v1/daemonsets")["items"]
        if (ds["spec"]["template"]["spec"].get("nodeSelector") or {}).get("gpu") == "on"
    ]
    assert gpu_daemonsets, "no DaemonSet selects the gpu=on nodes"
    for ds in gpu_daemonsets:
        assert tolerates(ds["spec"]["template"]["spec"].get("tolerations"), TAINT), ds["metadata"]["name"]
        assert ds.get("status", {}).get("desiredNumberScheduled") == 3, (ds["metadata"]["name"], ds.get("status"))

    # the OpenFaaS Profile: tolerates the taint, requires gpu=on
    profile = api(kubeapi, "/apis/openfaas.com/v1/namespaces/openfaas/profiles/withgpu")
    assert tolerates(profile["spec"]["tolerations"], TAINT), profile["spec"]
    terms = profile["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"key": "gpu", "operator": "In", "values": ["on"]} in [e for term in terms for e in term["matchExpressions"]], terms


def bench_helm_values(bench: SiteBench, kubeapi) -> dict[str, t.Any]:
    """The user values of the HAMi release, as helm reads them back from the server."""
    env = {"HOME": str(bench.workdir), "HELM_CACHE_HOME": str(bench.workdir / "helm" / "cache"), "PATH": "/usr/bin:/bin"}
    listed = json.loads(
        subprocess.run(
            [str(bench.helm), "--kubeconfig", str(kubeapi.kubeconfig), "list", "-A", "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
    )
    hami = [release for release in listed if release["chart"].startswith("hami-")]
    assert len(hami) == 1 and hami[0]["namespace"] == "kube-system", listed
    out = subprocess.run(
        [
            str(bench.helm),
            "--kubeconfig",
            str(kubeapi.kubeconfig),
            "get",
            "values",
            hami[0]["name"],
            "-n",
            "kube-system",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return json.loads(out)


def pinned_node(spec: dict[str, t.Any]) -> str | None:
    """The one node a pod spec can run on: nodeName, a hostname node selector, or a required node affinity
    naming one node (by the field metadata.name or the label kubernetes.io/hostname)."""
    if spec.get("nodeName"):
        return spec["nodeName"]
    if (spec.get("nodeSelector") or {}).get("kubernetes.io/hostname"):
        return spec["nodeSelector"]["kubernetes.io/hostname"]
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    ) or {}
    names = set()
    for term in required.get("nodeSelectorTerms") or []:
        for requirement in (term.get("matchFields") or []) + (term.get("matchExpressions") or []):
            if requirement["key"] in ("metadata.name", "kubernetes.io/hostname") and requirement["operator"] == "In":
                names.update(requirement["values"])
    return names.pop() if len(names) == 1 else None


def assert_smoke_pods(pods: list[dict[str, t.Any]]) -> None:
    assert pods, "the run created no smoke pod"
    targeted = set()
    for pod in pods:
        spec = pod["spec"]
        limits = {k: v for c in spec["containers"] for k, v in (c.get("resources", {}).get("limits") or {}).items()}
        assert limits.get("nvidia.com/gpu") == "1", (pod["metadata"]["name"], limits)
        # HAMi's shares of a GPU: memory and cores
        assert {"nvidia.com/gpucores"} <= set(limits) and set(limits) & {"nvidia.com/gpumem", "nvidia.com/gpumem-percentage"}, (
            limits
        )
        assert tolerates(spec.get("tolerations"), TAINT), (pod["metadata"]["name"], spec.get("tolerations"))
        # HAMi places its pods with its own scheduler
        assert spec.get("schedulerName") == "hami-scheduler", (pod["metadata"]["name"], spec.get("schedulerName"))
        targeted.add(pinned_node(spec))
    assert targeted >= set(NODE_SCENARIOS), f"smoke pods for {targeted}, GPU nodes {sorted(NODE_SCENARIOS)}"


def test_cluster_playbooks_converge_the_gpu_nodes_then_change_nothing(bench, kubeapi):
    start = api(kubeapi, "/api/v1/pods")["metadata"]["resourceVersion"]
    first = bench.run(*PLAYBOOKS, extra_vars=OPENFAAS)
    assert first.rc == 0, first.failures or first.explain()
    assert first.changed, "the first run changed nothing"
    assert_converged(bench, kubeapi)
    # the smoke pods gpu_validate made (the bench's controllers also made the stack's pods: device plugin, jobs)
    smoke_pods = [
        pod
        for pod in pods_created_since(kubeapi, start)
        if (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "kubegpu-smoke"
    ]
    assert_smoke_pods(smoke_pods)
    left = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in api(kubeapi, "/api/v1/pods")["items"]}
    assert left.isdisjoint((p["metadata"]["namespace"], p["metadata"]["name"]) for p in smoke_pods), "smoke pods left behind"
    first_report = (bench.workdir / "report" / "report.json").read_text()
    report = json.loads(first_report)
    entries = report if isinstance(report, list) else report["nodes"]
    assert sorted(entry["node"] for entry in entries) == sorted(NODE_SCENARIOS), report
    for entry in entries:
        assert smoke_status(entry) == "passed", entry
        assert entry["default_runtime"] == "nvidia" and entry["driver_version"]

    kubeapi.admin.reset_counters()
    second = bench.run(*PLAYBOOKS, extra_vars=OPENFAAS)
    assert second.rc == 0, second.failures or second.explain()
    second_report = (bench.workdir / "report" / "report.json").read_text()
    report_diff = "".join(difflib.unified_diff(first_report.splitlines(True), second_report.splitlines(True), n=8))
    assert second.changed == [], f"the re-run changed {second.changed_on}; the report's diff:\n{report_diff}"
    assert_converged(bench, kubeapi)


def test_cluster_playbooks_in_check_mode_change_nothing(bench, kubeapi):
    before = api(kubeapi, "/api/v1/nodes")
    run = bench.run(*PLAYBOOKS, extra_vars=OPENFAAS, check=True)
    assert run.rc == 0, run.failures or run.explain()
    assert run.changed, "check mode reported nothing to do on a cluster without GPU set-up"
    assert writes(kubeapi) == []
    assert api(kubeapi, "/api/v1/nodes")["items"] == before["items"]


BAD_INPUTS = {
    "unknown device stack": ({}, {"kubegpu_device_plugin": "hami"}, ["hami", "vgpu_scheduler", "nvidia_device_plugin"]),
    "AWS plugin on a Pascal GPU": (
        {"gpu-node-2": {"scenario": "gtx1080ti"}},
        {"kubegpu_device_plugin": "aws_vgpu_plugin"},
        ["gpu-node-2", "7.0"],
    ),
    "vGPU scheduler with a node lacking gpu=on": (
        {"gpu-node-3": {"kubegpu_default_runtime": "runc"}},
        {},
        ["gpu-node-3", "gpu=on"],
    ),
    "OpenFaaS Profile without its CRD": ({}, {"kubegpu_openfaas_enabled": True}, ["Profile", "openfaas.com/v1"]),
    # the real legacy chart configures kube-scheduler with a v1beta2 config, gone since Kubernetes 1.28
    "legacy vgpu chart on Kubernetes 1.35": (
        {},
        {
            "vgpu_scheduler_chart_flavor": "vgpu",
            "vgpu_scheduler_chart_ref": str(UPSTREAM_CHARTS / "vgpu-2.0.0.tgz"),
            "vgpu_scheduler_release_name": "vgpu",
        },
        ["v1.35.2", "kubescheduler.config.k8s.io/v1beta2", "chart_flavor hami"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_with_a_clear_message_before_any_change(bench, kubeapi, case):
    hosts, extra_vars, words = BAD_INPUTS[case]
    for host, settings in hosts.items():
        bench.scenarios[host] = settings.get("scenario", bench.scenarios[host])
        bench.host_vars[host].update({key: value for key, value in settings.items() if key != "scenario"})
    run = bench.run("facts.yml", "cluster.yml", extra_vars=extra_vars)
    assert run.rc != 0, run.explain()
    message = " ".join(run.failures)
    assert all(word in message for word in words), (words, run.failures or run.explain())
    # refused by the preflight play: not even a dry run of a change reached the API server
    assert write_requests(kubeapi) == [], f"{case}: the refused run asked to change the cluster; failures: {run.failures}"


def missing_prerequisite(case: str, kubeapi, tmp_path) -> tuple[dict[str, t.Any], list[str]]:
    """The extra variables that take away one thing the cluster plays need, and the words its refusal must say."""
    if case == "helm not found":
        helm = str(tmp_path / "no-such-dir" / "helm")
        return {"kubegpu_helm_binary": helm}, [helm, "not found"]
    if case == "helm too old":
        # a helm 3.11 (before uninstall --cascade, which the roles' stack removal uses) answering as real helm does
        old = tmp_path / "helm-3.11"
        old.write_text('#!/bin/sh\n[ "$1" = version ] && { echo v3.11.3; exit 0; }\necho "not expected: $*" >&2; exit 1\n')
        old.chmod(0o755)
        return {"kubegpu_helm_binary": str(old)}, ["helm v3.11.3", "v3.12 or later"]
    if case == "kubeconfig not found":
        return {"kubegpu_kubeconfig": str(tmp_path / "no-such-kubeconfig")}, [str(tmp_path / "no-such-kubeconfig"), "not found"]
    if case == "context not in the kubeconfig":
        return {"kubegpu_kube_context": "no-such-context"}, ["no-such-context"]
    if case == "API server not answering":
        # the test API server's kubeconfig, its server a port nothing listens on
        dead = tmp_path / "kubeconfig-dead"
        text = kubeapi.kubeconfig.read_text()
        dead.write_text(re.sub(r"server: \S+", "server: http://127.0.0.1:9", text))
        return {"kubegpu_kubeconfig": str(dead)}, ["127.0.0.1:9"]
    if case == "Kubernetes older than the stacks run on":
        kubeapi.admin.set_version("v1.22.17")
        return {}, ['"v1.22.17"', "1.23 or later"]
    if case == "DRA API not served for the dra_driver stack":
        kubeapi.admin.set_version("v1.33.7")  # resource.k8s.io/v1 is served from 1.34 (the test API server's catalogue)
        return {"kubegpu_device_plugin": "dra_driver"}, ['"v1.33.7"', "does not serve resource.k8s.io/v1", "Nothing was changed"]
    if case == "drivers below 565 kept for the dra_driver stack":
        # the bench's nodes have driver 535.161.08 loaded (fake NVML scenarios) and no nvidia_driver_version: the
        # driver play keeps it, so the stack is refused before that play and the toolkit's (CDI, engine restart) run
        words = [f"{node} (driver 535.161.08)" for node in NODE_SCENARIOS] + ["set nvidia_driver_version (565 or later"]
        return {"kubegpu_device_plugin": "dra_driver"}, [*words, "Nothing was changed."]
    if case == "nvidia_driver_version below 565 for the dra_driver stack":
        words = [f"{node} (nvidia_driver_version 550.163.01)" for node in NODE_SCENARIOS]
        return {"kubegpu_device_plugin": "dra_driver", "nvidia_driver_version": "550.163.01"}, [*words, "Nothing was changed."]
    if case == "chart archive not found":
        chart = str(tmp_path / "charts" / "hami-2.10.0.tgz")
        return {"vgpu_scheduler_chart_ref": chart}, ["vgpu_scheduler_chart_ref", chart, "not found"]
    if case == "OpenFaaS Profile CRD missing":
        return {"kubegpu_openfaas_enabled": True}, ["Profile", "openfaas.com/v1", "install OpenFaaS"]
    raise AssertionError(case)


MISSING_PREREQUISITES = [
    "helm not found",
    "helm too old",
    "kubeconfig not found",
    "context not in the kubeconfig",
    "API server not answering",
    "Kubernetes older than the stacks run on",
    "DRA API not served for the dra_driver stack",
    "drivers below 565 kept for the dra_driver stack",
    "nvidia_driver_version below 565 for the dra_driver stack",
    "chart archive not found",
    "OpenFaaS Profile CRD missing",
]


@pytest.mark.parametrize("case", MISSING_PREREQUISITES)
def test_site_refuses_a_missing_prerequisite_of_the_cluster_plays_before_the_node_plays(bench, kubeapi, tmp_path, case):
    """site.yml as a whole, one thing the cluster plays need taken away: its early check play (before the driver
    and toolkit plays, which install packages, reboot and restart the engine on real nodes) fails naming what is
    missing, and neither a node task nor a write request ran. In check mode, so that even a regression could not
    change this machine."""
    extra_vars, words = missing_prerequisite(case, kubeapi, tmp_path)
    run = bench.run("site.yml", extra_vars=extra_vars, check=True)
    assert run.rc != 0, run.explain()
    message = " ".join(run.failures)
    assert all(word in message for word in words), (case, words, run.failures or run.explain())
    failed_plays = {record.get("play") for record in run.failed}
    assert failed_plays <= {"Device stack choice, checked before any node changes"}, (failed_plays, run.failures)
    ran = {record["task"] for record in run.records}
    assert not [task for task in ran if "nvidia_driver" in task or "container_toolkit" in task], sorted(ran)
    assert write_requests(kubeapi) == [], f"{case}: the refused run asked to change the cluster; failures: {run.failures}"


@pytest.mark.parametrize("case", ["helm not found", "chart archive not found"])
def test_cluster_playbook_refuses_a_missing_prerequisite_before_its_first_write(bench, kubeapi, tmp_path, case):
    """cluster.yml alone (not in check mode): its preflight play refuses before play 4 labels and taints the
    nodes, so the nodes stay as they were and no write request reached the API server. Unused stacks are kept
    (kubegpu_remove_unused_stacks: false), so no removal check runs helm in the preflight: only the check of
    what the plays need can find a missing helm there."""
    extra_vars, words = missing_prerequisite(case, kubeapi, tmp_path)
    extra_vars["kubegpu_remove_unused_stacks"] = False
    before = api(kubeapi, "/api/v1/nodes")["items"]
    run = bench.run("facts.yml", "cluster.yml", extra_vars=extra_vars)
    assert run.rc != 0, run.explain()
    message = " ".join(run.failures)
    assert all(word in message for word in words), (case, words, run.failures or run.explain())
    assert write_requests(kubeapi) == [], f"{case}: the refused run asked to change the cluster; failures: {run.failures}"
    assert api(kubeapi, "/api/v1/nodes")["items"] == before


SITE_PLAYS = [
    "Node Python for the kubegpu.core node-side modules",
    "NVIDIA GPU facts",
    "Device stack choice, checked before any node changes",
    "NVIDIA driver",
    "NVIDIA container toolkit and runtime",
    "MIG layouts",
    "Preflight of every role of this playbook, before anything changes",
    "GPU node labels and taints",
    "Device stack",
    "OpenFaaS GPU profile",
    "GPU smoke pods and readiness report",
]


@pytest.mark.skipif(not (REPO_ROOT / "roles" / "nvidia_driver").is_dir(), reason="roles/nvidia_driver is not here")
@pytest.mark.parametrize("playbook", ["playbooks/site.yml", "kubegpu.core.site"])
def test_site_runs_by_path_and_as_the_collection_playbook_in_the_designs_order(tmp_path, playbook):
    """The bare CLI on purpose: ``ansible-playbook -i inventory/sample/hosts.yml PLAYBOOK --list-tasks`` as a
    user types it, so the CLI itself resolves the path or the collection playbook name (role_runs.run_playbook
    would import it into a playbook of its own, and has no ``--list-tasks``)."""
    proc, plays = list_plays(playbook, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert plays == SITE_PLAYS, proc.stdout


def test_site_refuses_an_unknown_device_stack_before_the_node_plays(bench, kubeapi):
    """site.yml as a whole with ``kubegpu_device_plugin=hami`` (HAMi's stack is ``vgpu_scheduler``): the play right
    after the facts fails naming the value and the valid stacks, so the driver and toolkit plays (which install
    packages, reboot and restart the engine on real nodes) never start. In check mode, so that even a regression
    could not change this machine."""
    run = bench.run("site.yml", extra_vars={"kubegpu_device_plugin": "hami"}, check=True)
    assert run.rc != 0, run.explain()
    message = " ".join(run.failures)
    assert all(word in message for word in ("'hami'", "vgpu_scheduler", "nvidia_device_plugin")), run.failures
    ran = {record["task"] for record in run.records}
    assert not [task for task in ran if "nvidia_driver" in task or "container_toolkit" in task], sorted(ran)
    assert write_requests(kubeapi) == []
