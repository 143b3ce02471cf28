"""The vgpu_scheduler role judged by the real charts it installs: HAMi 2.10.0 and 2.8.0 and the legacy 4paradigm
``vgpu`` 2.0.0 from ../shared/upstream/charts, rendered by the real helm (``helm template``) with the values the
role's own tasks compute (a check-mode diff run against the test API server, tests/support/upstream.py).

For Kubernetes 1.28, 1.31 (reported with a k3s suffix, as k3s does) and 1.35, and every option set the role
offers (chart, derived or given kube-scheduler tag, a mirror registry, device split, memory scaling, node port),
the render must:

- place the NVIDIA device plugin DaemonSet on each GPU node of this stack as the real gpu_labels role leaves it,
  with the GPU taint on and off (HAMi's own components write no label its DaemonSet selects on: its device plugin
  registers the node by annotations, pkg/device/nvidia; so the labels are gpu_labels' alone);
- read every values key the role sets (no silent no-op);
- with a mirror, pull every image from it; without, pull kube-scheduler from registry.k8s.io (not HAMi's default,
  registry.cn-hangzhou.aliyuncs.com) and HAMi's own images from HAMi's registry;
- pass that Kubernetes version's strict schemas.

The legacy chart configures kube-scheduler with kubescheduler.config.k8s.io/v1beta2, removed in 1.28: on those
versions the role must refuse it, and the other impossible combinations, before any write; it is rendered at
v1.27 for the rules above. The scheduler Deployment and the certificate Jobs run on any schedulable node (no
placement rule), their images and schemas are checked like the rest.
"""

from __future__ import annotations

import copy

import pytest

from tests.support import upstream
from tests.support.kube_modules import writes
from tests.support.role_runs import GpuHost, PlaybookRun, RoleVariant, run_role_variants

TASK = "Install or upgrade the vGPU scheduler release"
MIRROR = "mirror.test:5000"
# The GPU nodes (fake NVML scenarios), both of the vGPU scheduler's stack (the default kubegpu_device_plugin).
GPU_HOSTS = {
    "node1": GpuHost("v100x2", "gpu-node-1", {"kubegpu_default_runtime": "nvidia"}),
    "node2": GpuHost("t4", "gpu-node-2", {"kubegpu_default_runtime": "nvidia"}),
}
# The same hosts for the role's runs, which read only their variables.
HOSTS = {name: {"kubegpu_node_name": host.node, **host.vars} for name, host in GPU_HOSTS.items()}
# The version each KUBE_VERSIONS entry's API server reports: one a distribution's build, whose suffix no
# kube-scheduler image tag has.
REPORTED = {version: f"{version}+k3s1" if version.startswith("v1.31.") else version for version in upstream.KUBE_VERSIONS}
LEGACY_KUBE = "v1.27.16"  # the newest Kubernetes the legacy chart's scheduler configuration works on

OPTIONS = {
    "vgpu_scheduler_kube_scheduler_tag": "v1.30.2",
    "vgpu_scheduler_image_registry": MIRROR,
    "vgpu_scheduler_device_split_count": 4,
    "vgpu_scheduler_device_memory_scaling": 1.5,
    "vgpu_scheduler_node_port": 31000,
}


def hami(version: str, **more) -> dict:
    return {
        "vgpu_scheduler_chart_ref": str(upstream.CHARTS / f"hami-{version}.tgz"),
        "vgpu_scheduler_chart_version": version,
        **more,
    }


def legacy(**more) -> dict:
    return {
        "vgpu_scheduler_chart_flavor": "vgpu",
        "vgpu_scheduler_chart_ref": str(upstream.CHARTS / "vgpu-2.0.0.tgz"),
        "vgpu_scheduler_chart_version": "2.0.0",
        "vgpu_scheduler_release_name": "vgpu",
        **more,
    }


# name: (chart file, role variables)
RENDERED = {
    "hami-2.10.0": ("hami-2.10.0.tgz", hami("2.10.0")),
    "hami-2.10.0 options": ("hami-2.10.0.tgz", hami("2.10.0", **OPTIONS)),
    "hami-2.8.0": ("hami-2.8.0.tgz", hami("2.8.0")),
    "hami-2.8.0 options": ("hami-2.8.0.tgz", hami("2.8.0", **OPTIONS)),
}
LEGACY_RENDERED = {
    "vgpu-2.0.0": ("vgpu-2.0.0.tgz", legacy()),
    "vgpu-2.0.0 options": (
        "vgpu-2.0.0.tgz",
        legacy(
            **{**OPTIONS, "vgpu_scheduler_kube_scheduler_tag": "v1.27.3"},
            vgpu_scheduler_default_memory=2048,
            vgpu_scheduler_default_cores=20,
        ),
    ),
}
# name: (role variables, words the refusal must say); the legacy chart's refusal is tried on every version.
REFUSED_EVERYWHERE = {"refused: vgpu-2.0.0": (legacy(), ["v1beta2", "chart_flavor hami", "2.10.0"])}
REFUSED = {
    "refused: hami 2.7": (
        {"vgpu_scheduler_chart_version": "2.7.0"},
        ["chart hami 2.7.0", "chart_flavor=hami", "2.8.0 or later", "chart_flavor hami"],
    ),
    "refused: hami 2.8 as vgpu": (
        hami("2.8.0", vgpu_scheduler_chart_flavor="vgpu"),
        ["chart hami 2.8.0", "chart_flavor=vgpu", "with chart_flavor hami"],
    ),
    "refused: tag with a suffix": (
        {"vgpu_scheduler_kube_scheduler_tag": "v1.31.4+k3s1"},
        ['kube_scheduler_tag="v1.31.4+k3s1"', "not an image tag", "v1.31.4"],
    ),
}


def release_of(variables: dict) -> str:
    return variables.get("vgpu_scheduler_release_name", "hami")


def plan(kubeapi, rendered: dict, refused: dict) -> tuple[PlaybookRun, list]:
    """The role's runs of one Kubernetes version, and the write requests the server saw meanwhile (the check-mode
    plans write nothing; the refusal tests check that the refusals wrote nothing either)."""
    variants = {name: RoleVariant(variables, check=True, diff=True) for name, (_chart, variables) in rendered.items()}
    variants.update({name: RoleVariant(variables) for name, (variables, _words) in refused.items()})
    kubeapi.admin.reset_counters()
    run = run_role_variants(kubeapi, "vgpu_scheduler", variants, hosts=HOSTS)
    assert run.rc == 0, run.explain()
    return run, writes(kubeapi)


@pytest.fixture(scope="module")
def bench(kubeapi_server):
    """The nodes as gpu_labels leaves them (GPU taint on, then off) and, per Kubernetes version, the role's runs:
    a check-mode plan of the option sets whose values depend on the version (the kube-scheduler tag derived from
    it; those with a given tag are planned once, on the first), and the refusals (real runs)."""
    for chart in ("hami-2.10.0.tgz", "hami-2.8.0.tgz", "vgpu-2.0.0.tgz"):
        upstream.chart(chart)  # or skip, saying the upstream artifacts are absent
    kubeapi = kubeapi_server
    kubeapi.admin.reset()
    tainted = upstream.nodes_after_gpu_labels(kubeapi, GPU_HOSTS, {"kubegpu_gpu_taint_enabled": True})
    runs, written = {}, {}
    for version in upstream.KUBE_VERSIONS:
        kubeapi.admin.set_version(REPORTED[version])
        first = version == upstream.KUBE_VERSIONS[0]
        rendered = {name: case for name, case in RENDERED.items() if first or not given_tag(case[1])}
        runs[version], written[version] = plan(kubeapi, rendered, {**REFUSED_EVERYWHERE, **(REFUSED if first else {})})
    kubeapi.admin.set_version(LEGACY_KUBE)
    runs[LEGACY_KUBE], written[LEGACY_KUBE] = plan(kubeapi, LEGACY_RENDERED, {})
    untainted = upstream.nodes_after_gpu_labels(kubeapi, GPU_HOSTS, {"kubegpu_gpu_taint_enabled": False})
    kubeapi.admin.reset()
    return {"nodes": {"taint on": tainted, "taint off": untainted}, "runs": runs, "writes": written}


def given_tag(variables: dict) -> bool:
    return bool(variables.get("vgpu_scheduler_kube_scheduler_tag"))


def values_of(bench, version: str, name: str) -> dict:
    """The values the role planned for option set ``name`` on a cluster of ``version``."""
    variables = {**RENDERED, **LEGACY_RENDERED}[name][1]
    if given_tag(variables) and version in upstream.KUBE_VERSIONS:
        version = upstream.KUBE_VERSIONS[0]  # planned once: nothing in them depends on the version
    run = bench["runs"][version].in_play(name)
    assert run.failed == [], run.failures
    return upstream.planned_values(run, TASK)


def renderer(chart: str, release: str, version: str):
    return lambda values: upstream.helm_template(
        upstream.chart(chart), values, release=release, namespace="kube-system", kube_version=REPORTED.get(version, version)
    )


CASES = [(version, name) for version in upstream.KUBE_VERSIONS for name in RENDERED]
CASES += [(LEGACY_KUBE, name) for name in LEGACY_RENDERED]


@pytest.mark.parametrize(("version", "name"), CASES, ids=[f"{v}-{n}" for v, n in CASES])
def test_render_places_the_device_plugin_reads_every_key_pulls_from_the_right_registry_and_passes_schemas(bench, version, name):
    chart, variables = {**RENDERED, **LEGACY_RENDERED}[name]
    release = release_of(variables)
    values = values_of(bench, version, name)
    render = renderer(chart, release, version)
    docs = render(values)

    plugin = dict(upstream.pod_templates(docs))[f"DaemonSet/{release}-device-plugin"]
    for state, nodes in bench["nodes"].items():
        for node_name, node in nodes.items():
            assert upstream.placement_problem(plugin, node) is None, (state, node_name, upstream.placement_problem(plugin, node))

    # Which keys HAMi's templates read depends on the version only below 1.22 and 1.26 (the scheduler configuration's
    # API), so once per option set is enough for 1.28 to 1.35 (each render costs a helm run).
    if version in (upstream.KUBE_VERSIONS[-1], LEGACY_KUBE):
        assert upstream.silent_keys(render, values) == []

    images = upstream.images(docs)
    kube_scheduler = dict(upstream.pod_templates(docs))[f"Deployment/{release}-scheduler"]["spec"]["containers"][0]
    assert kube_scheduler["name"] == "kube-scheduler"
    scheduler = kube_scheduler["image"]
    tag = variables.get("vgpu_scheduler_kube_scheduler_tag") or version.split("+")[0]
    if variables.get("vgpu_scheduler_image_registry"):
        assert [(where, image) for where, image in images if not image.startswith(f"{MIRROR}/")] == []
        assert scheduler == f"{MIRROR}/kube-scheduler:{tag}"
    else:
        assert scheduler == f"registry.k8s.io/kube-scheduler:{tag}"
        # the chart's own images as the chart names them: as rendered without the role's kube-scheduler image
        chart_default = copy.deepcopy(values)
        del chart_default["scheduler"]["kubeScheduler"]["image"]
        own = sorted(image for _where, image in images if "kube-scheduler:" not in image)
        assert own == sorted(image for _where, image in upstream.images(render(chart_default)) if "kube-scheduler:" not in image)

    assert upstream.schema_errors(docs, version) == []


@pytest.mark.parametrize("version", upstream.KUBE_VERSIONS)
def test_the_legacy_chart_is_refused_on_every_supported_version_naming_it(bench, version):
    for name, (_variables, words) in REFUSED_EVERYWHERE.items():
        run = bench["runs"][version].in_play(name)
        message = "\n".join(run.failures)
        for word in [*words, REPORTED[version]]:
            assert word in message, (word, message)
    assert bench["writes"][version] == [], "refused before any write"


@pytest.mark.parametrize("name", list(REFUSED))
def test_charts_and_tags_the_role_cannot_serve_are_refused_before_any_change(bench, name):
    run = bench["runs"][upstream.KUBE_VERSIONS[0]].in_play(name)
    message = "\n".join(run.failures)
    assert message, f"{name} was not refused"
    for word in REFUSED[name][1]:
        assert word in message, (word, message)
    assert bench["writes"][upstream.KUBE_VERSIONS[0]] == [], "refused before any write"
