#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: helm_info
short_description: Check that helm runs, is a version the collection supports, and that charts are at hand
version_added: 0.1.0
description:
  - Runs C(helm version) with the binary helm_release would run and refuses a helm the collection does not support
    (helm_release's own rule - v3.12 or later, or v4 - so both say the same), or one that is missing or does not run.
  - For each chart of O(charts), checks without a cluster or network that helm_release could take it - a chart
    directory or archive must exist and be a chart (C(helm show chart)) of O(charts[].chart_version) when given; a
    V(repo/name) chart needs O(charts[].chart_repo_url) or a repository of that name configured in helm
    (C(helm repo list)); an V(oci://) reference is taken as given.
  - Changes nothing. The playbooks run it in their preflight, so a missing helm or chart fails the run before any
    node or cluster object is changed.
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode reads the same.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  binary_path:
    description: The helm binary; by default C(helm) on PATH.
    type: path
  charts:
    description: The charts to look for, each as helm_release takes it.
    type: list
    elements: dict
    default: []
    suboptions:
      chart_ref:
        description: A chart directory or archive, V(repo/name), a plain name with O(charts[].chart_repo_url), or V(oci://).
        type: str
        required: true
      chart_repo_url:
        description: The repository's URL (not contacted).
        type: str
      chart_version:
        description: The version a local chart must be.
        type: str
      label:
        description: What the chart is for, at the start of a failure message (for example the variable that named it).
        type: str
seealso:
  - module: kubegpu.core.helm_release
"""

EXAMPLES = r"""
- name: Helm and the charts the device stack needs, before anything changes
  kubegpu.core.helm_info:
    binary_path: "{{ kubegpu_helm_binary | default(omit) }}"
    charts:
      - label: vgpu_scheduler_chart_ref
        chart_ref: /srv/charts/hami-2.10.0.tgz
      - label: openfaas_profile_chart_ref
        chart_ref: openfaas/openfaas
        chart_repo_url: https://openfaas.github.io/faas-netes/
"""

RETURN = r"""
helm_version:
  description: The helm binary's version.
  returned: always
  type: str
  sample: v4.1.4
helm_path:
  description: The helm binary that ran.
  returned: always
  type: str
  sample: /usr/local/bin/helm
charts:
  description: Each chart of O(charts) with where helm takes it from (V(path), V(repository), V(oci)) and, for a
    local chart, its name and version.
  returned: always
  type: list
  elements: dict
  sample: [{"label": "vgpu_scheduler_chart_ref", "chart_ref": "/srv/charts/hami-2.10.0.tgz", "source": "path",
            "name": "hami", "version": "2.10.0"}]
"""

import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._helm import Helm, chart_source

ARGUMENT_SPEC: dict[str, t.Any] = {
    "binary_path": {"type": "path"},
    "charts": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "chart_ref": {"type": "str", "required": True},
            "chart_repo_url": {"type": "str"},
            "chart_version": {"type": "str"},
            "label": {"type": "str"},
        },
    },
}


class HelmInfo:
    def __init__(self, module: AnsibleModule) -> None:
        self.params = module.params
        self.helm = Helm(module, self.params["binary_path"], {})
        self._repos: dict[str, str] | None = None

    def repositories(self) -> dict[str, str]:
        if self._repos is None:
            listed = self.helm.run(["repo", "list", "-o", "json"], what="listing helm repositories", kube=False, check=False)
            if not listed.ok and "no repositories" not in listed.stderr:
                raise listed.failure("listing helm repositories")
            self._repos = {entry["name"]: entry["url"] for entry in (listed.json() if listed.ok else [])}
        return self._repos

    def chart(self, entry: dict[str, t.Any]) -> dict[str, t.Any]:
        ref, url, version = entry["chart_ref"], entry["chart_repo_url"], entry["chart_version"]
        label = entry["label"] or "chart_ref"
        source = chart_source(ref)
        found: dict[str, t.Any] = {"label": label, "chart_ref": ref, "source": source}
        if source == "path":
            try:
                metadata = self.helm.local_chart(ref, version)
            except KubeGPUError as exc:
                raise KubeGPUError(
                    f"{label}={ref!r}: {exc.msg}. Give a chart directory or .tgz archive that exists on the controller, "
                    "or a repository chart (repo/name with its repository URL)"
                ) from exc
            found.update(name=metadata.get("name"), version=str(metadata.get("version")))
        elif source == "repository" and not url:
            repo, slash, _name = ref.partition("/")
            if not slash:
                raise KubeGPUError(f"{label}={ref!r} is a chart name without a repository: give its repository URL too")
            if repo not in self.repositories():
                raise KubeGPUError(
                    f"{label}={ref!r}: helm has no repository named {repo!r} and no repository URL was given: give the "
                    f"chart's repository URL (the role's chart_repo_url), add it (helm repo add {repo} URL), or give a "
                    "chart archive that exists"
                )
        return found

    def run(self) -> dict[str, t.Any]:
        try:
            charts = [self.chart(entry) for entry in self.params["charts"]]
        finally:
            self.helm.cleanup()
        return {"changed": False, "helm_version": self.helm.version, "helm_path": self.helm.runner.path, "charts": charts}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = HelmInfo(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
