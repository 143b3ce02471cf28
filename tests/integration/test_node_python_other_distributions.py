"""The node_python role on the RHEL family and on an OS family it has no variables for, which no node
image here runs.

Simulated: the node's OS facts (cacheable facts of localhost). Real: the role's own preflight and
install tasks and vars files, run by ``ansible-playbook`` in check mode (nothing is installed here).
"""

from __future__ import annotations

import pytest

from tests.support.adhoc import REPO_ROOT
from tests.support.role_runs import run_playbook

ROLE = REPO_ROOT / "roles" / "node_python"


def run_role_tasks(facts: dict[str, str], tasks: list[dict], extra_vars: dict):
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"role_path": str(ROLE)},
            "tasks": [
                {"name": "node facts", "ansible.builtin.set_fact": {**facts, "cacheable": True}},
                {"name": "role defaults", "ansible.builtin.include_vars": str(ROLE / "defaults" / "main.yml")},
                {"name": "role vars", "ansible.builtin.include_vars": str(ROLE / "vars" / "main.yml")},
                *tasks,
            ],
        }
    ]
    run = run_playbook(play, extra_vars={"ansible_become": False, **extra_vars}, check=True, cwd=REPO_ROOT)
    assert run.rc == 0, run.explain()
    return {record["task"]: record for record in run.records}


def rhel(major: str) -> dict[str, str]:
    return {
        "os_family": "RedHat",
        "distribution": "RedHat",
        "distribution_major_version": major,
        "distribution_version": f"{major}.5",
    }


SUSE = {"os_family": "Suse", "distribution": "SLES", "distribution_major_version": "15", "distribution_version": "15.6"}


# Python's venv module is part of RHEL's python3 (python3-libs; ensurepip's pip wheel comes with it); RHEL 8's
# python3 is 3.6 (the collection needs 3.9+: docs/values.md), RHEL 8.10 has python3.12 in AppStream.
@pytest.mark.parametrize(
    ("major", "packages", "venv_command"),
    [
        ("8", ["python3.12", "python3.12-setuptools"], "/usr/bin/python3.12 -m venv"),
        ("9", ["python3", "python3-packaging"], "/usr/bin/python3 -m venv"),
        ("10", ["python3", "python3-packaging"], "/usr/bin/python3 -m venv"),
    ],
)
def test_rhel_family_gets_its_venv_packages_and_command(major, packages, venv_command):
    tasks = [
        {"name": "preflight", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "preflight.yml")},
        {"name": "chosen", "ansible.builtin.debug": {"msg": "{{ [_node_python_system_packages, _node_python_venv_command] }}"}},
    ]
    results = run_role_tasks(rhel(major), tasks, {})
    assert results["chosen"]["result"]["msg"] == [packages, venv_command]


@pytest.mark.parametrize("facts", [rhel("9"), SUSE], ids=["rhel9", "suse"])
def test_the_suggested_workaround_makes_the_venv_where_the_role_installs_no_packages(facts, tmp_path):
    """The preflight's advice (install Python's venv module, set node_python_install_system_packages to false)
    must lead to a venv: the install steps run in check mode and the pip step would create it."""
    tasks = [
        {"name": "probe", "ansible.builtin.set_fact": {"__node_python_probe": {"rc": 1}}},
        {"name": "preflight", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "preflight.yml")},
        {"name": "install", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "install.yml")},
    ]
    extra = {"node_python_install_system_packages": False, "node_python_venv": str(tmp_path / "venv")}
    results = run_role_tasks(facts, tasks, extra)
    pip = results["Create the venv and install the pinned node-side libraries"]
    assert pip["status"] == "ok" and pip["result"]["changed"], pip
    assert not (tmp_path / "venv").exists()
