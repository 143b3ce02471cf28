"""The real upstream artifacts as the oracle: the charts, manifests and CRDs in ``../shared/upstream``.

Nothing here simulates an upstream component. ``../shared/upstream`` (beside the repository; its README says what
each file is) holds the real charts and manifests the roles deploy; this module renders them with the real helm
(``helm template``, .cache/bin) and judges what comes out with rules taken from outside the code under test:

- placement: kube-scheduler's node predicates (nodeSelector, required node affinity, taints against tolerations),
  through the same functions the test API server's scheduler double uses (tests/support/kubeapi/kubelet.py, read
  from kube-scheduler's NodeAffinity and TaintToleration plugins);
- schemas: the Kubernetes OpenAPI schemas of a given minor version (the ``kubernetes-validate`` package, strict,
  so an unknown field is an error as with ``kubectl apply --validate=strict``) and, for a custom resource, its CRD's
  ``openAPIV3Schema`` (tests/support/kubeapi/crd_schema.py, pruning = unknown fields);
- silent no-ops: a values key a role sets must change the render when its value changes.

Tests that need the folder call ``require()`` and are skipped, with the reason, on a clone that lacks it.
"""

from __future__ import annotations

import copy
import json
import subprocess
import tempfile
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.support.adhoc import REPO_ROOT
from tests.support.kube_clients import ensure_clients
from tests.support.kube_modules import get_object
from tests.support.kubeapi import crd_schema, kubelet
from tests.support.role_runs import GpuHost, PlaybookRun, run_role

UPSTREAM = REPO_ROOT.parent / "shared" / "upstream"
CHARTS = UPSTREAM / "charts"
MANIFESTS = UPSTREAM / "manifests"
CRDS = UPSTREAM / "crds"
KUBESPRAY = UPSTREAM / "kubespray"
MISSING = (
    f"{UPSTREAM} is absent: the real upstream artifacts (charts, manifests, kubespray templates) live in "
    "../shared/upstream beside the repository (CI and the developers' machines have it; a user's clone does not)"
)
# The Kubernetes versions the render tests cover: the oldest supported, one in the middle, the newest.
KUBE_VERSIONS = ("v1.28.15", "v1.31.14", "v1.35.0")

# The kinds whose objects carry a pod template, and where it is.
_POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "DaemonSet": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def require(*relative: str) -> Path:
    """``../shared/upstream/<relative>``, or skip the test saying what is missing."""
    path = UPSTREAM.joinpath(*relative)
    if not path.exists():
        pytest.skip(MISSING if not UPSTREAM.exists() else f"{path} is missing from {UPSTREAM}")
    return path


def real_charts() -> list[Path]:
    """The real chart packages of ``../shared/upstream/charts``, sorted ([] where it is absent)."""
    return sorted(CHARTS.glob("*.tgz")) if CHARTS.is_dir() else []


def chart(filename: str) -> Path:
    """A real chart package, e.g. ``chart("hami-2.10.0.tgz")``."""
    return require("charts", filename)


def load_all(text: str) -> list[dict[str, t.Any]]:
    """The objects of a YAML stream (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm_template(
    chart_path: Path,
    values: dict[str, t.Any] | None = None,
    *,
    release: str,
    namespace: str,
    kube_version: str,
    api_versions: t.Sequence[str] = (),
) -> list[dict[str, t.Any]]:
    """``helm template RELEASE CHART`` with ``values`` (JSON, so types stay as given), CRDs included, for a
    cluster of ``kube_version`` serving ``api_versions`` on top of the built-in ones. A render error fails the test
    with helm's own words."""
    helm = ensure_clients()["helm"]
    with tempfile.TemporaryDirectory(prefix="kubegpu-render-") as scratch:
        values_file = Path(scratch) / "values.json"
        values_file.write_text(json.dumps(values or {}))
        argv = [str(helm), "template", release, str(chart_path), "--namespace", namespace, "--include-crds"]
        argv += ["--kube-version", kube_version, "--values", str(values_file)]
        for api_version in api_versions:
            argv += ["--api-versions", api_version]
        env = {
            "PATH": "/usr/bin:/bin",
            "HELM_CACHE_HOME": f"{scratch}/cache",
            "HELM_CONFIG_HOME": f"{scratch}/config",
            "HELM_DATA_HOME": f"{scratch}/data",
        }
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=120)
    if proc.returncode != 0:
        raise RenderError(f"helm template {chart_path.name} failed (rc {proc.returncode}): {proc.stderr.strip()}")
    return load_all(proc.stdout)


class RenderError(AssertionError):
    """helm refused to render the chart with these values (its message inside)."""


def named(docs: list[dict[str, t.Any]], kind: str, name: str | None = None) -> list[dict[str, t.Any]]:
    """The objects of ``kind`` (and ``name``) in a render."""
    return [doc for doc in docs if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name)]


def pod_templates(docs: list[dict[str, t.Any]]) -> list[tuple[str, dict[str, t.Any]]]:
    """``("Kind/name", pod)`` for every pod the render would make: the pod template of each workload (as a Pod:
    ``metadata`` and ``spec``) and every bare Pod."""
    found = []
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Pod":
            found.append((f"Pod/{doc['metadata']['name']}", doc))
            continue
        path = _POD_TEMPLATE_PATHS.get(kind or "")
        if path is None:
            continue
        template: t.Any = doc
        for key in path:
            template = (template or {}).get(key)
        if template:
            found.append((f"{kind}/{doc['metadata']['name']}", template))
    return found


def node(name: str, labels: dict[str, str], taints: t.Sequence[dict[str, t.Any]] = ()) -> dict[str, t.Any]:
    """A Node object as the placement rules read it."""
    return {"metadata": {"name": name, "labels": dict(labels)}, "spec": {"taints": [dict(taint) for taint in taints]}}


def placement_problem(pod: dict[str, t.Any], on: dict[str, t.Any]) -> str | None:
    """Why kube-scheduler (or the DaemonSet controller, which uses the same predicates) would not place ``pod`` on
    the node ``on``; None when it would."""
    spec = pod.get("spec") or {}
    labels = (on.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return f"nodeSelector {key}={value} is not met (the node has {key}={labels.get(key)!r})"
    if not kubelet.matches_affinity({"spec": {"affinity": spec.get("affinity")}}, on):
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        return f"required node affinity {json.dumps(terms)} is not met by the node's labels {json.dumps(labels)}"
    taint = kubelet.untolerated_taint(pod, on)
    if taint is not None:
        return f"the taint {json.dumps(taint)} is not tolerated (tolerations: {json.dumps(spec.get('tolerations') or [])})"
    return None


def images(docs: list[dict[str, t.Any]]) -> list[tuple[str, str]]:
    """``("Kind/name", image)`` of every container, init container and ephemeral container in the render."""
    found = []
    for where, pod in pod_templates(docs):
        spec = pod.get("spec") or {}
        for field in ("initContainers", "containers", "ephemeralContainers"):
            found += [(where, container.get("image")) for container in spec.get(field) or []]
    return found


def schema_errors(docs: list[dict[str, t.Any]], kube_version: str, crds: t.Sequence[dict[str, t.Any]] = ()) -> list[str]:
    """What a ``--validate=strict`` apply of each object to a cluster of ``kube_version`` would refuse: built-in
    kinds against that version's OpenAPI schema (unknown fields included), custom resources against the
    ``openAPIV3Schema`` of their CRD (from the render itself, or ``crds``). A kind neither knows is an error too."""
    import kubernetes_validate  # noqa: PLC0415 - a test-only dependency, loaded where used

    definitions = {}
    for crd in [*named(docs, "CustomResourceDefinition"), *crds]:
        spec = crd["spec"]
        for served in spec["versions"]:
            schema = (served.get("schema") or {}).get("openAPIV3Schema")
            definitions[(f"{spec['group']}/{served['name']}", spec["names"]["kind"])] = schema
    errors = []
    for doc in docs:
        where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in definitions:
            pruned, field_errors = crd_schema.prune_and_validate(copy.deepcopy(doc), definitions[key])
            errors += [f"{where}: unknown field {path}" for path in pruned]
            errors += [f"{where}: {error}" for error in field_errors]
            continue
        try:
            kubernetes_validate.validate(doc, kube_version.lstrip("v"), strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{where}: {error.message} at {'.'.join(str(p) for p in error.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: {doc.get('apiVersion')} {doc.get('kind')} is not served by Kubernetes {kube_version}")
    return errors


def leaves(values: dict[str, t.Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], t.Any]]:
    """Every value a values dict sets, by key path; a list or an empty dict counts as one value."""
    found = []
    for key, value in values.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            found += leaves(value, path)
        else:
            found.append((path, value))
    return found


def with_value(values: dict[str, t.Any], path: tuple[str, ...], value: t.Any) -> dict[str, t.Any]:
    """A copy of ``values`` with ``path`` set to ``value``."""
    changed = copy.deepcopy(values)
    target = changed
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return changed


def other_value(value: t.Any) -> t.Any:
    """A value of the same type that differs from ``value``, as an operator's other choice would."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 1
    if isinstance(value, str):
        return f"{value}1" if value else "x"
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return [*value, {"key": "kubegpu.io/probe", "operator": "Exists", "effect": "NoSchedule"}]
        return [*value, "probe"]
    if isinstance(value, dict):
        return {"kubegpu.io/probe": "x"}
    if value is None:
        return "x"
    raise TypeError(f"no other value for {value!r}")


def silent_keys(render: t.Callable[[dict[str, t.Any]], list[dict[str, t.Any]]], values: dict[str, t.Any]) -> list[str]:
    """The values keys the chart ignores: those whose change (``other_value``) leaves ``render(values)`` as it was.
    A change the chart refuses to render counts as read (helm's validation read it)."""
    baseline = render(values)
    silent = []
    for path, value in leaves(values):
        try:
            if render(with_value(values, path, other_value(value))) == baseline:
                silent.append(".".join(path))
        except RenderError:
            continue
    return silent


def nodes_after_gpu_labels(
    kubeapi: t.Any, hosts: dict[str, GpuHost], variables: dict[str, t.Any] | None = None
) -> dict[str, dict[str, t.Any]]:
    """The GPU nodes as the real kubegpu.core.gpu_labels role leaves them (facts from the fake NVML scenarios of
    ``hosts``, labels and taints written to the test API server by a real run), read back from the server: the
    labels a chart's selectors meet after our run, before the stack's own components add theirs."""
    run = run_role(kubeapi, "gpu_labels", hosts=hosts, variables=variables)
    if run.rc != 0:
        raise AssertionError(f"gpu_labels failed: {run.explain()}")
    names = [host.node or name for name, host in hosts.items()]
    return {name: get_object(kubeapi, f"/api/v1/nodes/{name}") for name in names}


def planned_values(run: PlaybookRun, task: str) -> dict[str, t.Any]:
    """The chart values a role's helm_release task computed, from its check-mode diff (``run`` with check and
    diff): what the role would install, without a copy of the role's logic in the test."""
    if run.rc != 0:
        raise AssertionError(f"the role failed: {run.explain()}")
    return run.task(task).result["diff"]["after"]["values"]


def planned_values_each(run: PlaybookRun, task: str) -> list[dict[str, t.Any]]:
    """``planned_values`` of every result of ``task`` in ``run``, in order: one per variant of a
    ``role_runs.run_role_variants`` run (where no variant may fail)."""
    if run.rc != 0 or run.failed:
        raise AssertionError(f"the role failed: {run.failures or run.explain()}")
    found = [
        record["result"]["diff"]["after"]["values"]
        for record in run.records
        if record["task"] == task or record["task"].endswith(f" : {task}")
    ]
    if not found:
        raise AssertionError(f"no result of task {task!r}: {run.explain()}")
    return found
