"""The container_toolkit role's package pin and its CDI choice, run as the role's own task files on this machine.

Simulated: nvidia-ctk (a script in tmp_path answering ``--version`` as the toolkit's CLI does, "NVIDIA Container
Toolkit CLI version 1.18.0", and ``cdi generate`` with a small spec, logging its arguments) and the CDI spec path
(in tmp_path). Real: the role's cdi.yml, packages_apt.yml and packages_dnf.yml with its defaults and vars, and
Ansible's apt and dnf modules in check mode, whose recorded arguments are read (this machine has neither NVIDIA's
repository nor, for dnf, dnf: the modules fail after they received their arguments, which is what is checked).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.adhoc import REPO_ROOT
from tests.support.role_runs import run_playbook

ROLE = REPO_ROOT / "roles" / "container_toolkit"
PKG_MGR = {"Debian": "apt", "RedHat": "dnf"}
SPEC = "---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n"


def fake_ctk(tmp_path: Path, version: str) -> tuple[Path, Path]:
    log = tmp_path / "nvidia-ctk.log"
    generated = tmp_path / "generated.yaml"
    generated.write_text(SPEC)
    ctk = tmp_path / "nvidia-ctk"
    ctk.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        f'[ "$1" = --version ] && echo "NVIDIA Container Toolkit CLI version {version}" && echo "commit: 0123456" && exit 0\n'
        f'[ "$1" = cdi ] && [ "$2" = generate ] && cat {generated} && exit 0\n'
        "exit 2\n"
    )
    ctk.chmod(0o755)
    return ctk, log


def run_tasks(tasks_file: str, extra: dict, check: bool = False, family: str = "Debian") -> dict:
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                # the dnf action plugin picks its backend from the package manager fact (this machine has apt)
                {"name": "package manager", "ansible.builtin.set_fact": {"pkg_mgr": PKG_MGR[family], "cacheable": True}},
                {"name": "role defaults", "ansible.builtin.include_vars": str(ROLE / "defaults" / "main.yml")},
                {"name": "role vars", "ansible.builtin.include_vars": str(ROLE / "vars" / "main.yml")},
                {"name": "family vars", "ansible.builtin.include_vars": str(ROLE / "vars" / f"{family}.yml")},
                {"name": "tasks", "ansible.builtin.include_tasks": str(ROLE / "tasks" / tasks_file)},
            ],
        }
    ]
    run = run_playbook(play, extra_vars={"ansible_become": False, **extra}, check=check, cwd=REPO_ROOT)
    return {record["task"]: record for record in run.records}, run


@pytest.mark.parametrize(("tasks_file", "family"), [("packages_apt.yml", "Debian"), ("packages_dnf.yml", "RedHat")])
def test_a_pinned_toolkit_version_may_be_a_downgrade(tasks_file, family):
    """apt and dnf refuse to install an older version than the installed one unless told (Ansible's apt and dnf
    modules: ``allow_downgrade``), so a pin to an older toolkit must say so; no pin, no downgrade."""
    extra = {"__container_toolkit_repo": {"changed": False}, "__container_toolkit_key": {"changed": False}}
    for version, allowed in (("1.17.0-1", True), ("", False)):
        results, run = run_tasks(tasks_file, {**extra, "container_toolkit_version": version}, check=True, family=family)
        result = results["Install the toolkit packages"]["result"]
        assert "invocation" in result, run.explain()
        assert result["invocation"]["module_args"]["allow_downgrade"] is allowed, version


def test_cdi_spec_generated_into_etc_cdi_before_toolkit_1_18(tmp_path):
    ctk, log = fake_ctk(tmp_path, "1.17.8")
    spec = tmp_path / "etc" / "cdi" / "nvidia.yaml"
    extra = {"container_toolkit_ctk_binary": str(ctk), "container_toolkit_cdi_spec": str(spec)}
    results, run = run_tasks("cdi.yml", extra)
    assert run.rc == 0, run.explain()
    assert results["Install the CDI specification"]["result"]["changed"]
    assert spec.read_text() == SPEC
    assert "cdi generate --format=yaml" in log.read_text()


def test_cdi_spec_left_to_nvidia_cdi_refresh_from_toolkit_1_18(tmp_path):
    """NVIDIA Container Toolkit 1.18.0 and later: "the CDI specification is automatically generated and updated by
    a systemd service called nvidia-cdi-refresh", at /var/run/cdi/nvidia.yaml
    (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/cdi-support.html). CDI reads
    /etc/cdi then /var/run/cdi and the later directory wins a device both name (container-device-interface
    pkg/cdi: DefaultSpecDirs = [/etc/cdi, /var/run/cdi], a spec's priority is its directory's index, and
    resolveConflict keeps the higher one): a spec in /etc/cdi would only be shadowed, or go stale. The role
    writes none, and removes the one it wrote before (check mode first: reported, nothing removed)."""
    ctk, log = fake_ctk(tmp_path, "1.18.0")
    spec = tmp_path / "etc" / "cdi" / "nvidia.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text("# written by the role with toolkit 1.17\n")
    extra = {"container_toolkit_ctk_binary": str(ctk), "container_toolkit_cdi_spec": str(spec)}

    checked, run = run_tasks("cdi.yml", extra, check=True)
    assert run.rc == 0, run.explain()
    assert checked["Remove the specification the role wrote before nvidia-cdi-refresh"]["result"]["changed"]
    assert spec.exists()

    results, run = run_tasks("cdi.yml", extra)
    assert run.rc == 0, run.explain()
    assert results["Remove the specification the role wrote before nvidia-cdi-refresh"]["result"]["changed"]
    assert not spec.exists()
    assert "nvidia-cdi-refresh" in results["Say who writes the CDI specification instead"]["result"]["msg"]
    assert "cdi generate" not in log.read_text()

    again, run = run_tasks("cdi.yml", extra)
    assert not again["Remove the specification the role wrote before nvidia-cdi-refresh"]["result"]["changed"]
    assert not spec.exists()
