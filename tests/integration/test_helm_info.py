"""kubegpu.core.helm_info, the read-only check the playbooks run before their first write, beside helm_release:
both take helm's version through the same rule (plugins/module_utils/_helm.py ``supported_version``).

Real helm v4 (.cache/bin/helm) and v3.17.3 (tests/support/kube_clients.py ``ensure_helm3``) must pass; helm
v3.11 (the last release without ``helm uninstall --cascade``, added by helm/helm#11479 in v3.12.0, which the
roles' stack removal uses) and v2 are refused, each a script answering ``helm version`` as that release
prints it. The charts: the local stand-in chart (tests/support/charts/gpu-demo) and a chart archive that
helm itself packages from it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.kube_clients import ensure_clients, ensure_helm3
from tests.support.role_runs import run_tasks

CHART = Path(__file__).resolve().parents[1] / "support" / "charts" / "gpu-demo"


def fake_helm(directory: Path, version: str) -> Path:
    """A script that answers ``helm version --template {{.Version}}`` with ``version`` and fails for anything else."""
    script = directory / f"helm-{version}"
    script.write_text(f'#!/bin/sh\n[ "$1" = version ] && {{ echo {version}; exit 0; }}\necho "not expected: $*" >&2; exit 1\n')
    script.chmod(0o755)
    return script


def test_helm_versions_and_charts_as_helm_release_takes_them(tmp_path):
    helm4, helm3 = ensure_clients()["helm"], ensure_helm3()
    archive = tmp_path / "packaged"
    subprocess.run([str(helm4), "package", str(CHART), "-d", str(archive)], check=True, capture_output=True)
    (packaged,) = archive.glob("*.tgz")
    env = {"HELM_CONFIG_HOME": str(tmp_path / "config"), "HELM_CACHE_HOME": str(tmp_path / "cache")}
    charts = [
        {"chart_ref": str(CHART), "label": "directory"},
        {"chart_ref": str(packaged), "chart_version": "0.1.0", "label": "archive"},
        {"chart_ref": "nvdp/nvidia-device-plugin", "chart_repo_url": "https://nvidia.github.io/k8s-device-plugin"},
        {"chart_ref": "oci://registry.example.com/charts/gpu-demo"},
    ]
    old = fake_helm(tmp_path, "v3.11.3")
    results = run_tasks(
        {
            "helm v4": ("kubegpu.core.helm_info", {"binary_path": str(helm4), "charts": charts}, env),
            "helm v3.17": ("kubegpu.core.helm_info", {"binary_path": str(helm3), "charts": charts}, env),
            "helm v3.11": ("kubegpu.core.helm_info", {"binary_path": str(old)}, env),
            "helm v2": ("kubegpu.core.helm_info", {"binary_path": str(fake_helm(tmp_path, "v2.17.0"))}, env),
            "not helm": ("kubegpu.core.helm_info", {"binary_path": "/bin/true"}, env),
            "missing": ("kubegpu.core.helm_info", {"binary_path": str(tmp_path / "none" / "helm")}, env),
            "helm_release with helm v3.11": (
                "kubegpu.core.helm_release",
                {"binary_path": str(old), "name": "demo", "chart_ref": str(CHART), "kubeconfig": {"apiVersion": "v1"}},
                env,
            ),
            "archive not found": (
                "kubegpu.core.helm_info",
                {"binary_path": str(helm4), "charts": [{"chart_ref": str(tmp_path / "gone.tgz"), "label": "x_chart_ref"}]},
                env,
            ),
            "archive of another version": (
                "kubegpu.core.helm_info",
                {"binary_path": str(helm4), "charts": [{"chart_ref": str(packaged), "chart_version": "9.9.9"}]},
                env,
            ),
            "repository not configured": (
                "kubegpu.core.helm_info",
                {"binary_path": str(helm4), "charts": [{"chart_ref": "nvdp/nvidia-device-plugin", "label": "y_chart_ref"}]},
                env,
            ),
        }
    )
    for name in ("helm v4", "helm v3.17"):
        run = results[name]
        assert not run.failed and not run.changed, (name, run.result)
        assert [(c["source"], c.get("name"), c.get("version")) for c in run.result["charts"]] == [
            ("path", "gpu-demo", "0.1.0"),
            ("path", "gpu-demo", "0.1.0"),
            ("repository", None, None),
            ("oci", None, None),
        ], run.result
    assert results["helm v4"].result["helm_version"].startswith("v4.")
    assert results["helm v3.17"].result["helm_version"].startswith("v3.17.")

    def refused(name: str, *words: str) -> None:
        run = results[name]
        assert run.failed, (name, run.result)
        assert all(word in run.result["msg"] for word in words), (name, words, run.result["msg"])

    refused("helm v3.11", "helm v3.11.3", "v3.12 or later")
    refused("helm_release with helm v3.11", "helm v3.11.3", "v3.12 or later")  # one rule for both
    refused("helm v2", "helm v2.17.0", "v3.12 or later")
    refused("not helm", "/bin/true", "not a helm")
    refused("missing", str(tmp_path / "none" / "helm"), "not found", "kubegpu_helm_binary")
    refused("archive not found", "x_chart_ref", str(tmp_path / "gone.tgz"), "not found")
    refused("archive of another version", "version 0.1.0, not chart_version=9.9.9")
    refused("repository not configured", "y_chart_ref", "no repository named 'nvdp'", "repository URL")
