#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: helm_release
short_description: Install, upgrade or uninstall a Helm release with the helm CLI
version_added: 0.1.0
description:
  - Installs a chart as a release, upgrades it only when the chart version or the user-supplied values differ from
    the deployed release (C(helm list -o json), C(helm get values -o json)), or uninstalls it.
  - Works with helm v3 and v4 (C(--atomic) and C(--wait) on v3, C(--rollback-on-failure) and C(--wait=watcher) on v4).
  - Charts come from a repository (V(repo/name) with O(chart_repo_url), added with C(helm repo add) only when the
    repository is not configured yet or points elsewhere, and updated only when the version asked for is not in its
    cached index), from a local directory or archive, or from an V(oci://) registry.
  - The values (O(values_files) in order, then O(values)) are merged here and given to helm as one file, so the
    release stores exactly what is compared on the next run.
  - Values files are read as helm reads them (go-yaml v2 through sigs.k8s.io/yaml), not as YAML 1.1; a date or
    timestamp stays the text written (V(2024-05-01)), V(y)/V(n) are booleans, V(1:20) is a string, V(0o17) and
    V(0x1F) are integers, V(1e3) is a number. helm keeps every number as a float64, so an integer beyond 2**53 is
    stored rounded; the module compares what helm stores and warns that the value should be quoted.
  - A command that talks to the cluster and fails on a transient API error (kube-apiserver's 500 or 504, a proxy's
    5xx, etcd's timeouts, a dropped connection; helm's client retries a 429 or 503 with C(Retry-After) itself) is
    run again with the collection's backoff until O(api_timeout) is spent; a refused connection is tried three times.
  - Values files are read and checked before helm is run; check mode runs only helm's read commands.
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._kube
  - kubegpu.core._attributes
attributes:
  check_mode:
    support: full
    details: Only C(helm version), C(list), C(get values), C(show chart) and C(search repo) run against helm's own
      configuration and the cluster. A repository that the real run would add, or whose cached index lacks the
      version, is added or updated into a scratch configuration and cache that is removed afterwards, so check mode
      finds the versions the real run will find; helm's repositories and cache and the cluster are not written.
  diff_mode:
    support: full
    details: The release's chart and user-supplied values before and after.
  idempotent:
    support: full
options:
  name:
    description:
      - The release name, as helm validates it (C(ValidateReleaseName)) - at most 53 characters, lowercase letters,
        digits, C(-) and C(.), each dot-separated part beginning and ending with a letter or digit (V(gpu.demo)).
      - The chart's objects named after it must allow the name too (a Service name cannot have a dot).
    type: str
    required: true
    aliases: [release_name]
  namespace:
    description: The release's namespace.
    type: str
    default: default
    aliases: [release_namespace]
  create_namespace:
    description: Create the namespace if it does not exist (C(--create-namespace)).
    type: bool
    default: false
  chart_ref:
    description:
      - The chart. V(repo/name) for a chart of the repository named V(repo) (with O(chart_repo_url) to add it), a plain
        V(name) with O(chart_repo_url) (given to helm as C(--repo)), a path to a chart directory or C(.tgz) archive
        (absolute, or starting with C(.), or any path that exists), or an V(oci://) reference.
      - Required with O(state=present).
    type: str
  chart_repo_url:
    description: The repository's URL.
    type: str
  chart_version:
    description:
      - The chart version. Omitted, the newest in the repository's cached index (local charts - their own version).
    type: str
  update_repo_cache:
    description: Run C(helm repo update) for the chart's repository even when its index already has the version.
    type: bool
    default: false
  values:
    description: Values for the chart; they override O(values_files).
    type: dict
    default: {}
  values_files:
    description: YAML files of values, merged in order (later files win), under O(values).
    type: list
    elements: path
    default: []
  state:
    description: V(present) installs or upgrades the release; V(absent) uninstalls it.
    type: str
    choices: [present, absent]
    default: present
  chart_name:
    description:
      - With O(state=absent), the names of the charts the release may be of (C(helm list) shows the release's chart
        as V(name-version)). A release of that name of another chart is refused, naming its chart, and left in
        place, in check mode too. Omitted, any chart.
    type: list
    elements: str
  cascade:
    description:
      - With O(state=absent), how the release's objects' dependents are deleted (C(helm uninstall --cascade)).
        V(foreground) with O(wait) returns only once a DaemonSet's pods are gone, not only the DaemonSet.
    type: str
    choices: [background, foreground, orphan]
    default: background
  atomic:
    description: Roll back (or remove, on install) a release whose install or upgrade fails.
    type: bool
    default: false
  wait:
    description: Wait until the release's resources are ready (or gone, for O(state=absent)).
    type: bool
    default: false
  timeout:
    description: How long helm waits for each operation, as a Go duration (V(5m0s), V(90s)).
    type: str
    default: 5m0s
  binary_path:
    description: The helm binary; by default C(helm) on PATH.
    type: path
seealso:
  - module: kubegpu.core.k8s_apply
notes:
  - The connection options become helm's flags (C(--kubeconfig), C(--kube-context), C(--kube-apiserver),
    C(--kube-token), C(--kube-ca-file), C(--kube-insecure-skip-tls-verify)); O(proxy) is given to helm as
    C(HTTPS_PROXY). helm has no flags for O(username)/O(password) or O(client_cert)/O(client_key), so the module
    refuses them; put those in a kubeconfig. O(api_timeout) bounds the retries of transient API failures;
    O(timeout) bounds each of helm's operations.
  - A kubeconfig given as a dictionary is written, readable only by its owner, to a scratch directory for helm, and
    removed when the task ends, however it ends.
  - Values given as O(values) arrive as Ansible typed them (a date in a playbook reaches the module as
    V(2024-05-01), a timestamp as V(2024-05-01T10:00:00)); quote a value to keep its text exactly.
"""

EXAMPLES = r"""
- name: HAMi's vGPU scheduler, upgraded only when the version or values change
  kubegpu.core.helm_release:
    name: hami
    namespace: kube-system
    chart_ref: hami-charts/hami
    chart_repo_url: https://project-hami.github.io/HAMi/
    chart_version: 2.4.1
    values:
      scheduler:
        kubeScheduler:
          imageTag: v1.31.2
    wait: true
    atomic: true

- name: A chart from a local directory
  kubegpu.core.helm_release:
    name: gpu-demo
    chart_ref: "{{ playbook_dir }}/charts/gpu-demo"
    values_files:
      - files/gpu-demo-values.yaml

- name: Remove it
  kubegpu.core.helm_release:
    name: gpu-demo
    state: absent

- name: Remove HAMi's release, only if it is HAMi's chart, once its pods are gone
  kubegpu.core.helm_release:
    name: hami
    namespace: kube-system
    state: absent
    chart_name: hami
    cascade: foreground
    wait: true
"""

RETURN = r"""
release:
  description: The release as C(helm list -o json) shows it after the task; C(null) when absent (or in check mode
    before an install).
  returned: always
  type: dict
  sample: {"name": "hami", "namespace": "kube-system", "revision": "2", "status": "deployed", "chart": "hami-2.4.1",
           "app_version": "2.4.1"}
chart:
  description: The chart name and version the release has after the task (C(name-version)).
  returned: when O(state=present)
  type: str
  sample: gpu-demo-0.1.0
user_values:
  description:
    - The user-supplied values the release has after the task (C(helm get values)).
    - Named C(user_values) rather than C(values), which Jinja's dot notation cannot reach (C(result.values) is the
      dictionary method).
  returned: when O(state=present)
  type: dict
action:
  description: V(installed), V(upgraded), V(unchanged), V(uninstalled) or V(absent).
  returned: always
  type: str
command:
  description: The helm command that changed the release (connection flags left out); C(null) when none ran.
  returned: always
  type: list
  elements: str
helm_version:
  description: The helm binary's version.
  returned: always
  type: str
  sample: v4.1.4
"""

import json
import os
import re
import typing as t
from copy import deepcopy

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.core.plugins.module_utils import _kube as kube
from ansible_collections.kubegpu.core.plugins.module_utils._diff import DiffTracker
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._helm import (
    Helm,
    as_helm_stores,
    chart_source,
    deep_merge,
    load_values,
    rounded_integers,
)

try:
    import yaml
except ImportError:  # PyYAML ships with ansible-core
    yaml = None

ARGUMENT_SPEC: dict[str, t.Any] = deepcopy(kube.KUBE_ARG_SPEC)
ARGUMENT_SPEC.update(
    name={"type": "str", "required": True, "aliases": ["release_name"]},
    namespace={"type": "str", "default": "default", "aliases": ["release_namespace"]},
    create_namespace={"type": "bool", "default": False},
    chart_ref={"type": "str"},
    chart_repo_url={"type": "str"},
    chart_version={"type": "str"},
    update_repo_cache={"type": "bool", "default": False},
    values={"type": "dict", "default": {}},
    values_files={"type": "list", "elements": "path", "default": []},
    state={"type": "str", "choices": ["present", "absent"], "default": "present"},
    chart_name={"type": "list", "elements": "str"},
    cascade={"type": "str", "choices": ["background", "foreground", "orphan"], "default": "background"},
    atomic={"type": "bool", "default": False},
    wait={"type": "bool", "default": False},
    timeout={"type": "str", "default": "5m0s"},
    binary_path={"type": "path"},
)
# helm's ValidateReleaseName (pkg/chartutil/validate_name.go): a DNS-1123 subdomain of at most 53 characters
RELEASE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
RELEASE_NAME_MAX = 53
DURATION = re.compile(r"(\d+(\.\d+)?(h|m|s|ms))+\Z")
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def chart_of(listed: str, name: str) -> bool:
    """Whether ``helm list``'s ``chart`` field (``name-version``, e.g. ``gpu-operator-v26.7.0``) is chart ``name``."""
    return listed.startswith(f"{name}-") and re.match(r"v?[0-9]", listed[len(name) + 1 :]) is not None


def read_values_file(path: str) -> dict[str, t.Any]:
    """A values file as helm reads it (``load_values``: a date stays the text written, as helm keeps it)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = load_values(handle.read())
    except OSError as exc:
        raise KubeGPUError(f"values file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise KubeGPUError(f"values file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KubeGPUError(f"values file {path} must hold a mapping of values, not a {type(data).__name__}")
    return data


class Chart(t.NamedTuple):
    ref: str  # what helm is given
    name: str
    version: str | None  # None: unknown in check mode (repository not added yet)
    repo_url_flag: list[str]


class HelmRelease:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.check = module.check_mode
        name = self.params["name"]
        if len(name) > RELEASE_NAME_MAX or not RELEASE_NAME.match(name):
            raise KubeGPUError(
                f"release name {name!r} is not valid: at most {RELEASE_NAME_MAX} characters, lowercase letters, digits, "
                "'-' and '.', each dot-separated part beginning and ending with a letter or digit (helm's rule), "
                "for example gpu-demo or gpu.demo"
            )
        if not DURATION.match(self.params["timeout"]):
            raise KubeGPUError(f"timeout={self.params['timeout']!r} is not a duration such as 5m0s, 90s or 1h")
        self.user_values: dict[str, t.Any] = {}
        if self.params["state"] == "present":
            if not self.params["chart_ref"]:
                raise KubeGPUError("state=present needs chart_ref")
            for path in self.params["values_files"]:
                self.user_values = deep_merge(self.user_values, read_values_file(path))
            self.user_values = deep_merge(self.user_values, self.params["values"])
            try:
                json.dumps(self.user_values, allow_nan=False)
            except ValueError as exc:
                raise KubeGPUError(f"values: {exc}; helm takes values as JSON, which has no NaN or infinity") from exc
            for rounded in rounded_integers(self.user_values):
                module.warn(
                    f"values: {rounded}: helm keeps numbers as float64, exact only up to 2**53; quote the value to "
                    "pass it as a string"
                )
        self.helm = Helm(module, self.params["binary_path"], self.params)
        self.diff = DiffTracker()
        self.result: dict[str, t.Any] = {"helm_version": self.helm.version, "command": None}
        # helm's --repository-config/--repository-cache for check mode's scratch copies; empty: helm's own
        self.repo_flags: list[str] = []
        self.repo_updated = False

    # -- reading ----------------------------------------------------------------------------------

    def _release(self) -> dict[str, t.Any] | None:
        name, namespace = self.params["name"], self.params["namespace"]
        listed = self.helm.json(
            ["list", "--namespace", namespace, "--deployed", "--failed", "--pending", "--filter", f"^{re.escape(name)}$"],
            what=f"listing release {name} in namespace {namespace}",
        )
        for entry in listed or []:
            if entry.get("name") == name:
                return entry
        return None

    def _deployed_values(self) -> dict[str, t.Any]:
        name, namespace = self.params["name"], self.params["namespace"]
        values = self.helm.json(["get", "values", name, "--namespace", namespace], what=f"reading the values of release {name}")
        return values or {}

    def _show_chart(self, args: list[str], what: str) -> dict[str, t.Any]:
        result = self.helm.run(["show", "chart", *args], what=what, kube=False)
        metadata = yaml.safe_load(result.stdout) or {}
        return metadata if isinstance(metadata, dict) else {}

    def _chart(self) -> Chart:
        ref: str = self.params["chart_ref"]
        version = self.params["chart_version"]
        url = self.params["chart_repo_url"]
        source = chart_source(ref)
        if source == "oci":
            name = ref.rstrip("/").rsplit("/", 1)[-1].split(":")[0]
            if not version:
                version = self._show_chart([ref], f"reading chart {ref}").get("version")
            return Chart(ref, name, version, [])
        if source == "path":
            return self._local_chart(ref, version)
        if url and "/" not in ref:
            args = [ref, "--repo", url, *(["--version", version] if version else [])]
            metadata = self._show_chart(args, f"reading chart {ref} from {url}")
            return Chart(ref, ref, str(metadata.get("version")), ["--repo", url])
        repo, slash, name = ref.partition("/")
        if not slash or "/" in name or not REPO_NAME.match(repo):
            raise KubeGPUError(f"chart_ref={ref!r} is neither repo/name, a local chart path that exists, nor an oci:// reference")
        return self._repo_chart(repo, name, version, url)

    def _local_chart(self, path: str, version: str | None) -> Chart:
        metadata = self.helm.local_chart(path, version)
        return Chart(path, str(metadata.get("name")), str(metadata.get("version")), [])

    def _repo_chart(self, repo: str, name: str, version: str | None, url: str | None) -> Chart:
        listed = self.helm.run(["repo", "list", "-o", "json"], what="listing helm repositories", kube=False, check=False)
        if not listed.ok and "no repositories" not in listed.stderr:
            raise listed.failure("listing helm repositories")
        repos = {entry["name"]: entry["url"] for entry in (listed.json() if listed.ok else [])}
        ref = f"{repo}/{name}"
        if repo not in repos or (url and repos[repo].rstrip("/") != url.rstrip("/")):
            if not url:
                raise KubeGPUError(f"helm has no repository named {repo!r}; give chart_repo_url to add it")
            if self.check:
                # helm's repository configuration and index cache are the controller's own files, not the
                # cluster, but check mode leaves them as they are: the repository is added to a scratch
                # configuration and cache, read as the real run will, and thrown away
                scratch = self.helm.scratch_dir("repositories")
                self.repo_flags = ["--repository-config", os.path.join(scratch, "repositories.yaml")]
                self.repo_flags += ["--repository-cache", os.path.join(scratch, "cache")]
            self.helm.run(
                ["repo", "add", "--force-update", repo, url, *self.repo_flags],
                what=f"adding repository {repo} ({url})",
                kube=False,
            )
            if not self.check:
                self.result["repo_added"] = True
        elif self.params["update_repo_cache"]:
            self._repo_update(repo)
        found = self._search(ref, version)
        if found is None and not self.repo_updated and "--repository-config" not in self.repo_flags:
            self._repo_update(repo)
            found = self._search(ref, version)
        if found is None:
            wanted = f" version {version}" if version else ""
            raise KubeGPUError(f"chart {ref}{wanted} not found in repository {repo} ({repos.get(repo) or url})")
        return Chart(ref, name, found, [])

    def _repo_update(self, repo: str) -> None:
        if self.check:
            # the fresh index goes to a scratch cache (see _repo_chart), so check mode finds the versions the
            # real run will find without writing helm's own cache
            self.repo_flags = ["--repository-cache", self.helm.scratch_dir("repository-cache")]
        self.helm.run(["repo", "update", repo, *self.repo_flags], what=f"updating repository {repo}", kube=False)
        if not self.check:
            self.result["repo_updated"] = True
        self.repo_updated = True

    def _search(self, ref: str, version: str | None) -> str | None:
        args = ["search", "repo", ref, *self.repo_flags]
        if version:
            args += ["--version", version]
        for entry in self.helm.json(args, what=f"searching chart {ref}", kube=False):
            if entry.get("name") == ref:
                return str(entry.get("version"))
        return None

    # -- the task ---------------------------------------------------------------------------------

    def present(self) -> None:
        chart = self._chart()
        release = self._release()
        deployed_values = self._deployed_values() if release else None
        before_chart = release.get("chart") if release else None
        after_chart = f"{chart.name}-{chart.version}" if chart.version else f"{chart.name}-(newest)"
        self.diff.record("chart", before_chart, after_chart)
        planned_values = as_helm_stores(self.user_values)
        self.diff.record("values", deployed_values, planned_values)
        status_ok = release is not None and release.get("status") == "deployed"
        if not self.diff.changed and status_ok:
            self.result.update(action="unchanged", release=release, chart=before_chart, user_values=deployed_values)
            return
        if release is not None and not self.diff.changed:
            self.diff.record("status", release.get("status"), "deployed")
        action = "upgraded" if release else "installed"
        self.result.update(action=action, chart=after_chart, user_values=planned_values, release=release)
        if self.check:
            return
        values_file = self.helm.scratch_file("values.json", json.dumps(self.user_values))
        name, namespace = self.params["name"], self.params["namespace"]
        args = ["upgrade", "--install", name, chart.ref, "--namespace", namespace, "--reset-values", "-f", values_file]
        args += chart.repo_url_flag
        if chart.version:
            args += ["--version", chart.version]
        if self.params["create_namespace"]:
            args.append("--create-namespace")
        args += self.helm.wait_flags(self.params["wait"], self.params["atomic"], self.params["timeout"])
        self.helm.run(args, what=f"{'upgrading' if release else 'installing'} release {name} in namespace {namespace}")
        self.result["command"] = ["helm", *args]
        self.result["release"] = self._release()
        if self.result["release"]:
            self.result["chart"] = self.result["release"].get("chart")

    def absent(self) -> None:
        release = self._release()
        self.result.update(release=None)
        if release is None:
            self.result["action"] = "absent"
            return
        expected = self.params["chart_name"]
        if expected and not any(chart_of(str(release.get("chart")), name) for name in expected):
            raise KubeGPUError(
                f"release {self.params['name']} in namespace {self.params['namespace']} is of chart "
                f"{release.get('chart')}, not {' or '.join(expected)}: it was not installed as this release and is left "
                "in place; uninstall it yourself, or give the release another name"
            )
        self.diff.record("chart", release.get("chart"), None)
        self.result["action"] = "uninstalled"
        if self.check:
            return
        name, namespace = self.params["name"], self.params["namespace"]
        args = ["uninstall", name, "--namespace", namespace, "--timeout", self.params["timeout"]]
        if self.params["cascade"] != "background":
            args += ["--cascade", self.params["cascade"]]
        if self.params["wait"]:
            args.append("--wait=watcher" if self.helm.major >= 4 else "--wait")
        self.helm.run(args, what=f"uninstalling release {name} in namespace {namespace}")
        self.result["command"] = ["helm", *args]

    def run(self) -> dict[str, t.Any]:
        try:
            self.present() if self.params["state"] == "present" else self.absent()
        finally:
            self.helm.cleanup()
        self.result["changed"] = self.diff.changed
        if self.module._diff:
            self.result["diff"] = self.diff.diff()
        return self.result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = HelmRelease(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
