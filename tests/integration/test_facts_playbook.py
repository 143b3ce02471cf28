"""playbooks/facts.yml (plays 0 and 1 of site.yml) on three hosts whose GPUs are fake NVML scenarios
(tests/support/site_bench.py and role_runs.py say how): the real gpu_facts gathers each host's facts, and the hosts with an
NVIDIA GPU, only those, join the GPU group for the plays that follow in the same run. No cluster is involved;
the node Python play is switched off (kubegpu_manage_node_python), the controller's Python has the libraries.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support.adhoc import BIN, REPO_ROOT, ansible_env
from tests.support.site_bench import PLAYBOOKS, SiteBench

pytestmark = pytest.mark.slow

SCENARIOS = {"gpu-node-1": "v100x2", "gpu-node-2": "no_devices", "gpu-node-3": "driver_not_loaded"}


def group_members(bench: SiteBench, group: str, extra_vars: dict | None = None):
    """Runs facts.yml, then a play that reports the group, in one ansible-playbook run."""
    probe = {
        "name": "Probe",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": "Members", "ansible.builtin.debug": {"msg": f"{{{{ groups['{group}'] | default([]) }}}}"}}],
    }
    run = bench.run("facts.yml", probe, extra_vars=extra_vars)
    assert run.rc == 0, run.failures or run.explain()
    members = [record["result"]["msg"] for record in run.records if record["task"] == "Members"]
    return run, members[0]


def test_facts_playbook_puts_only_hosts_with_an_nvidia_gpu_in_the_gpu_group(tmp_path):
    bench = SiteBench(kubeapi=None, workdir=tmp_path, scenarios=SCENARIOS)
    run, members = group_members(bench, "gpu_nodes")
    assert members == ["gpu-node-1"]
    facts = {r["host"]: r["result"]["ansible_facts"]["gpu"] for r in run.records if r["task"] == "Gather GPU facts"}
    assert facts["gpu-node-1"]["count"] == 2 and facts["gpu-node-1"]["driver_version"]
    assert not facts["gpu-node-2"]["present"] and not facts["gpu-node-3"]["present"]
    assert "not loaded" in facts["gpu-node-3"]["reason"].lower()
    # gathering facts and grouping hosts change nothing on the hosts
    assert run.changed == [], run.changed
    # another group name
    _run, members = group_members(bench, "accelerated", {"kubegpu_gpu_group": "accelerated"})
    assert members == ["gpu-node-1"]


def test_facts_playbook_without_inventory_reports_this_machine(tmp_path):
    """``ansible-playbook playbooks/facts.yml`` as ``make demo`` runs it: the implicit localhost. It runs the bare
    CLI on purpose (no inventory, no extra variables, no test callback, the checkout as working directory), as a
    user would, so it does not go through role_runs.run_playbook."""
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), str(PLAYBOOKS / "facts.yml")],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TASK [Gather GPU facts]" in proc.stdout and "ok: [localhost]" in proc.stdout


def test_with_v_facts_playbook_prints_each_gpus_health_and_its_reasons(tmp_path):
    """An operator asks with -v why a node is held back from gpu=on: the GPU line says the GPU's health and reasons
    (row_remap_failure_h100x2: GPU 1's remapped rows report a failure, nvmlDeviceGetRemappedRows' failureOccurred)."""
    bench = SiteBench(kubeapi=None, workdir=tmp_path, scenarios={"gpu-node-1": "row_remap_failure_h100x2"})
    run = bench.run("facts.yml", env={"ANSIBLE_VERBOSITY": "1"})
    assert run.rc == 0, run.failures or run.explain()
    shown = run.task(
        "Show the GPUs found, the driver, what is missing and the node labels these facts give (with -v)", "gpu-node-1"
    )
    lines = shown.result["msg"].splitlines()
    assert lines[0].endswith(", health ok"), lines
    assert lines[1].startswith("GPU 1: NVIDIA H100 80GB HBM3") and ", health unhealthy (row remapping failed" in lines[1], lines
