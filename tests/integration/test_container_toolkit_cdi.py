"""container_toolkit turns CDI on in containerd for the DRA stack, and records ``kubegpu_cdi_enabled``.

Real: the role's configure_containerd.yml and facts.yml with its defaults and vars, kubegpu.core.containerd_runtime,
and Debian's containerd 1.6 (bookworm), 1.7 (trixie) and 2.1 (sid) (tests/support/debs.py) judging each file with
``config dump``; each node starts from its containerd's own ``containerd config default``. Simulated: the engine's
restart, a play handler listening on the role's topic (the role's handler restarts the unit with systemd, which does
not run here); it only records that the role asked for it. docker is not running here either: the docker node asks
``docker info``, which fails, and the role's CDI answer for docker does not depend on it.

One ansible-playbook run: a check-mode play, a real play and a second real play, every node in each.
"""

from __future__ import annotations

import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import tomlkit

from tests.support import debs
from tests.support.adhoc import REPO_ROOT
from tests.support.role_runs import PlaybookRun, run_playbook

pytestmark = pytest.mark.slow

ROLE = REPO_ROOT / "roles" / "container_toolkit"
TOPIC = "kubegpu.core.container_toolkit restart the engine"
# node: (Debian suite of its containerd, kubegpu_device_plugin or None for the collection's default, engine)
NODES: dict[str, tuple[str, str | None, str]] = {
    "dra17": ("trixie", "dra_driver", "containerd"),
    "dra21": ("sid", "dra_driver", "containerd"),
    "dra16": ("bookworm", "dra_driver", "containerd"),
    "plugin17": ("trixie", None, "containerd"),
    "dradocker": ("trixie", "dra_driver", "docker"),
}
PLAYS = ("check", "real", "again")


def containerd_binary(suite: str) -> str:
    return str(debs.fetch("containerd", suite) / "usr" / "bin" / "containerd")


def dump(binary: str, path: Path) -> dict[str, t.Any]:
    proc = subprocess.run([binary, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    data = tomlkit.parse(proc.stdout).unwrap()
    data.pop("imports", None)  # containerd 1.x lists the file it read there
    return data


def cri_plugin(data: dict[str, t.Any]) -> dict[str, t.Any]:
    plugins = data["plugins"]
    return plugins["io.containerd.grpc.v1.cri"] if data.get("version") == 2 else plugins["io.containerd.cri.v1.runtime"]


def play(name: str) -> dict[str, t.Any]:
    return {
        "name": name,
        "hosts": "all",
        "gather_facts": False,
        "check_mode": name == "check",
        "module_defaults": {"kubegpu.core.containerd_runtime": {"containerd_binary": "{{ node_containerd }}"}},
        "tasks": [
            {"name": "role defaults", "ansible.builtin.include_vars": str(ROLE / "defaults" / "main.yml")},
            {"name": "role vars", "ansible.builtin.include_vars": str(ROLE / "vars" / "main.yml")},
            # the node's own values win over the defaults just loaded, as inventory values win over a role's defaults
            {
                "name": "node vars",
                "ansible.builtin.set_fact": {
                    "container_toolkit_engine": "{{ node_engine }}",
                    "container_toolkit_containerd_config": "{{ node_config }}",
                    "container_toolkit_python_interpreter": sys.executable,
                },
            },
            {
                "name": "configure containerd",
                "ansible.builtin.include_tasks": str(ROLE / "tasks" / "configure_containerd.yml"),
                "when": "container_toolkit_engine == 'containerd'",
            },
            {"name": "facts", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "facts.yml")},
        ],
        "handlers": [{"name": "restart (simulated)", "ansible.builtin.debug": {"msg": "restart"}, "listen": TOPIC}],
    }


@pytest.fixture(scope="module")
def cdi_run(tmp_path_factory) -> dict[str, t.Any]:
    scratch = tmp_path_factory.mktemp("cdi")
    hosts: dict[str, dict[str, t.Any]] = {}
    originals: dict[str, bytes] = {}
    for node, (suite, stack, engine) in NODES.items():
        binary = containerd_binary(suite)
        config = scratch / node / "config.toml"
        config.parent.mkdir()
        config.write_text(subprocess.run([binary, "config", "default"], capture_output=True, text=True, check=True).stdout)
        originals[node] = config.read_bytes()
        hosts[node] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ansible_become": False,
            "node_containerd": binary,
            "node_engine": engine,
            "node_config": str(config),
            **({"kubegpu_device_plugin": stack} if stack else {}),
        }
    run = run_playbook([play(name) for name in PLAYS], {"all": {"hosts": hosts}}, diff=True, cwd=REPO_ROOT)
    return {"run": run, "scratch": scratch, "originals": originals}


def facts(run: PlaybookRun, node: str) -> list[t.Any]:
    return [
        record["result"]["ansible_facts"]["kubegpu_cdi_enabled"]
        for record in run.records
        if record["host"] == node and "kubegpu_cdi_enabled" in record["result"].get("ansible_facts", {})
    ]


def changed(run: PlaybookRun, node: str) -> list[str]:
    return [record["task"] for record in run.records if record["host"] == node and record["result"].get("changed")]


def test_containerd_1_7_gets_cdi_on_for_the_dra_stack_check_mode_first_then_idempotent(cdi_run):
    """containerd 1.7's default has enable_cdi = false: check mode reports the change and the fact as it will be after
    the restart, leaving the file alone; the real run writes enable_cdi = true, which containerd's dump shows with
    everything else as before, and asks for the restart; the next run changes nothing."""
    run, config = cdi_run["run"], cdi_run["scratch"] / "dra17" / "config.toml"
    binary = containerd_binary("trixie")
    check, real, again = (run.in_play(name) for name in PLAYS)
    assert changed(check, "dra17") == [
        "Add the NVIDIA runtime to containerd",
        "Schedule the containerd restart the change requires",
    ]
    assert facts(check, "dra17") == [True]
    assert changed(real, "dra17") == changed(check, "dra17")
    assert [r["task"] for r in real.records if r["host"] == "dra17" and r["task"] == "restart (simulated)"] == [
        "restart (simulated)"
    ]
    assert facts(real, "dra17") == [True]
    assert changed(again, "dra17") == [] and facts(again, "dra17") == [True]

    before_path = config.parent / "before.toml"
    before_path.write_bytes(cdi_run["originals"]["dra17"])
    before, after = dump(binary, before_path), dump(binary, config)
    assert cri_plugin(before)["enable_cdi"] is False and cri_plugin(after)["enable_cdi"] is True
    assert cri_plugin(after)["cdi_spec_dirs"] == ["/etc/cdi", "/var/run/cdi"]
    for data in (before, after):
        cri_plugin(data).pop("enable_cdi")
        cri_plugin(data)["containerd"]["runtimes"].pop("nvidia", None)
        cri_plugin(data)["containerd"].pop("default_runtime_name")
    assert after == before


def test_containerd_2_has_cdi_on_by_default_and_is_left_alone(cdi_run):
    """containerd 2.1's default has enable_cdi = true: the role writes nothing for CDI (only the runtime) and records true."""
    run = cdi_run["run"]
    result = run.in_play("real").task("Add the NVIDIA runtime to containerd", "dra21").result
    assert result["cdi_enabled"] is True and "enable_cdi" not in result["diff"]["after"].replace("enable_cdi = true", "", 1), (
        result["diff"]
    )
    assert result["diff"]["before"].count("enable_cdi") == result["diff"]["after"].count("enable_cdi") == 1
    assert facts(run, "dra21") == [True, True, True]


def test_containerd_1_6_is_refused_naming_its_version_before_any_write(cdi_run):
    run, config = cdi_run["run"], cdi_run["scratch"] / "dra16" / "config.toml"
    failed = [r for r in run.records if r["host"] == "dra16" and r["status"] == "failed"]
    assert [r["task"] for r in failed] == ["Add the NVIDIA runtime to containerd"], run.explain()
    assert "1.6.20" in failed[0]["result"]["msg"] and "no CDI" in failed[0]["result"]["msg"], failed[0]["result"]["msg"]
    assert config.read_bytes() == cdi_run["originals"]["dra16"]


def test_other_stacks_leave_cdi_as_it_is_and_the_fact_says_what_containerd_does(cdi_run):
    """Without kubegpu_device_plugin (the collection's default, vgpu_scheduler) the module is not asked about CDI;
    containerd 1.7's default keeps it off, and the fact says so."""
    run = cdi_run["run"]
    args = run.in_play("check").task("Add the NVIDIA runtime to containerd", "plugin17").result["invocation"]["module_args"]
    assert args["enable_cdi"] is None
    assert facts(run, "plugin17") == [False, False, False]
    assert "enable_cdi = false" in (cdi_run["scratch"] / "plugin17" / "config.toml").read_text()


def test_docker_gets_no_cdi_and_says_why(cdi_run):
    run = cdi_run["run"]
    assert facts(run, "dradocker") == [False, False, False]
    said = run.in_play("real").task("Say that docker hands no CDI devices to pods", "dradocker").result["msg"]
    assert "Kubernetes runs no pod through docker's CDI" in said
    assert changed(run, "dradocker") == []
