"""inventory/kubespray/group_vars: kubespray's own config, rendered with them, needs no change from our role.

Simulated: kubespray's containerd template. It cannot be fetched while tests run and is not ours to copy,
so tests/support/kubespray/config.toml.j2 (README there) is written to lay out the runtime tables as
kubespray's template does at master 46dbdd3 (after v2.31.0): ``version = 3`` below containerd 2.3,
``default_runtime_name`` from ``containerd_default_runtime``, one ``runtimes.<name>`` table per entry of
``[containerd_runc_runtime] + containerd_additional_runtimes`` with ``runtime_type``, ``base_runtime_spec``
and an ``options`` table whose values are written bare when their string is ``true``/``false`` and quoted
otherwise. Ansible renders it (``ansible.builtin.template``) from kubespray's defaults
(tests/support/kubespray/defaults.yml) overridden by our group_vars file, as kubespray's inventory
overrides its role defaults.

Real: containerd 2.1 (Debian sid) judges the file (``config dump``), and roles/container_toolkit's own containerd tasks run
on the file (kubegpu.core.containerd_runtime with the role's arguments), in check mode and for real; dockerd
26.1 (Debian trixie) judges the docker flags with ``--validate``, and runs with them (tests/support/dockerd.py)
while roles/container_toolkit (engine docker, the toolkit not installed) asks it through ``docker info``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import tomlkit
import yaml

from tests.support import debs, dockerd
from tests.support.adhoc import REPO_ROOT
from tests.support.role_runs import run_playbook

KUBESPRAY_VARS = REPO_ROOT / "inventory" / "kubespray" / "group_vars" / "gpu_nodes"
SUPPORT = REPO_ROOT / "tests" / "support" / "kubespray"
CRI = "io.containerd.cri.v1.runtime"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def containerd() -> str:
    return str(debs.fetch("containerd", "sid") / "usr" / "bin" / "containerd")


def containerd_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return next(word.lstrip("v") for word in out.split() if word[:1].isdigit() or word[:2] == "v2")


def render_kubespray_config(dest: Path, containerd: str, group_vars: list[Path]) -> str:
    """config.toml as kubespray renders it with its defaults overridden by ``group_vars``."""
    play = [
        {
            "name": "kubespray's containerd config (layout reproduced, see module docstring)",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(SUPPORT / "defaults.yml"), *map(str, group_vars)],
            "vars": {"containerd_version": containerd_version(containerd)},
            "tasks": [
                {
                    "name": "Render",
                    "ansible.builtin.template": {"src": str(SUPPORT / "config.toml.j2"), "dest": str(dest), "mode": "0644"},
                }
            ],
        }
    ]
    run = run_playbook(play, cwd=REPO_ROOT)
    assert run.rc == 0, run.explain()
    return dest.read_text()


def dump(binary: str, path: Path) -> dict[str, t.Any]:
    proc = subprocess.run([binary, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return tomlkit.parse(proc.stdout).unwrap()


def configure_tasks() -> str:
    """container_toolkit's task file that configures containerd (its name before and after the docker split)."""
    tasks = REPO_ROOT / "roles" / "container_toolkit" / "tasks"
    return next(name for name in ("configure_containerd.yml", "configure.yml") if (tasks / name).is_file())


def run_container_toolkit(config: Path, containerd: str, *, check: bool, succeed: bool = True) -> list[dict[str, t.Any]]:
    """container_toolkit's containerd step, as the role runs it (its own tasks and defaults), on ``config``, with
    this containerd; every task result."""
    play = [
        {
            "name": "container_toolkit on kubespray's config",
            "hosts": "localhost",
            "gather_facts": False,
            # this machine's own /usr/bin/containerd (1.6, found before PATH) cannot read version 3 files
            "module_defaults": {"kubegpu.core.containerd_runtime": {"containerd_binary": containerd}},
            "tasks": [
                {
                    "name": "Configure containerd",
                    "ansible.builtin.include_role": {"name": "kubegpu.core.container_toolkit", "tasks_from": configure_tasks()},
                    "vars": {
                        "container_toolkit_containerd_config": str(config),
                        "container_toolkit_python_interpreter": sys.executable,
                    },
                }
            ],
        }
    ]
    run = run_playbook(play, check=check, diff=True, cwd=REPO_ROOT)
    assert (run.rc == 0) is succeed, run.explain()
    records = run.records
    assert any(
        "containerd_runtime" in str(r["result"].get("invocation", {})) or "restart_required" in r["result"] for r in records
    )
    return records


def test_kubespray_config_with_our_group_vars_needs_no_change_from_container_toolkit(tmp_path, containerd):
    config = tmp_path / "config.toml"
    text = render_kubespray_config(config, containerd, [KUBESPRAY_VARS / "containerd.yml"])
    assert '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia]' in text
    before = config.read_bytes()

    for check in (True, False):
        records = run_container_toolkit(config, containerd, check=check)
        module_runs = [r for r in records if "restart_required" in r["result"]]
        assert len(module_runs) >= 2, [r["task"] for r in records]  # runc declared, nvidia added
        changed = [(r["task"], r["result"].get("diff")) for r in records if r["result"].get("changed")]
        assert changed == [], (check, changed)
    assert config.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("config.toml.")] == [], "a backup of an unchanged file"

    cri = dump(containerd, config)["plugins"][CRI]["containerd"]
    assert cri["default_runtime_name"] == "nvidia"
    nvidia = cri["runtimes"]["nvidia"]
    assert nvidia["runtime_type"] == "io.containerd.runc.v2"
    assert nvidia["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    # the same cgroup driver as kubespray's runc, which is still there
    assert nvidia["options"]["SystemdCgroup"] is True is cri["runtimes"]["runc"]["options"]["SystemdCgroup"]


def test_kubespray_config_without_our_group_vars_is_one_container_toolkit_changes(tmp_path, containerd):
    """The control: kubespray's defaults alone lack the runtime, and the same check mode run says so."""
    config = tmp_path / "config.toml"
    render_kubespray_config(config, containerd, [])
    # the role's restart handler follows the change, and fails here: no systemd runs containerd on this machine,
    # so the role puts the old file back (a no-op in check mode), fails to restart again and ends the play
    records = run_container_toolkit(config, containerd, check=True, succeed=False)
    changed = [r["result"] for r in records if r["result"].get("changed") and "restart_required" in r["result"]]
    assert len(changed) == 1 and changed[0]["restart_required"], [r["task"] for r in records]
    assert records[-1]["status"] == "failed" and records[-1]["task"] == "Fail with the engine's journal", records[-1]
    assert "containerd did not come up" in records[-1]["result"]["msg"], records[-1]
    assert dump(containerd, config)["plugins"][CRI]["containerd"]["default_runtime_name"] == "runc"


@pytest.mark.skipif(dockerd.available() is not None, reason=str(dockerd.available()))
def test_kubespray_docker_options_give_dockerd_the_nvidia_default_runtime(tmp_path):
    """dockerd accepts the flags of docker.yml; it refuses them beside a daemon.json that sets
    default-runtime too, which is why docs/kubespray.md keeps the default out of daemon.json."""
    options = yaml.safe_load((KUBESPRAY_VARS / "docker.yml").read_text())["docker_options"]
    flags = shlex.split(options)
    assert flags == ["--add-runtime", "nvidia=/usr/bin/nvidia-container-runtime", "--default-runtime", "nvidia"]
    env = {"PATH": dockerd._path()}

    def validate(daemon_json: dict[str, t.Any]) -> subprocess.CompletedProcess:
        path = tmp_path / "daemon.json"
        path.write_text(json.dumps(daemon_json))
        return subprocess.run(
            ["dockerd", "--validate", f"--config-file={path}", *flags], capture_output=True, text=True, env=env, check=False
        )

    assert validate({}).returncode == 0
    with_runtime = validate({"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}})
    assert with_runtime.returncode == 0, with_runtime.stderr
    both = validate({"default-runtime": "nvidia"})
    assert both.returncode != 0 and "default-runtime" in both.stderr


def run_container_toolkit_docker(
    daemon_json: Path, daemon: dockerd.Daemon, *, check: bool, succeed: bool = True
) -> list[dict[str, t.Any]]:
    """The whole container_toolkit role with engine docker, the toolkit not installed, on ``daemon_json``, with
    ``docker`` talking to ``daemon`` (DOCKER_HOST); every task result."""
    play = [
        {
            "name": "container_toolkit, engine docker",
            "hosts": "localhost",
            "gather_facts": False,
            "environment": daemon.environment,
            "roles": [
                {
                    "role": "kubegpu.core.container_toolkit",
                    "vars": {
                        "container_toolkit_engine": "docker",
                        "container_toolkit_install": False,
                        "container_toolkit_docker_config": str(daemon_json),
                        "container_toolkit_python_interpreter": sys.executable,
                    },
                }
            ],
        }
    ]
    run = run_playbook(play, check=check, diff=True, cwd=REPO_ROOT)
    assert (run.rc == 0) is succeed, run.explain()
    return run.records


def docker_flags() -> list[str]:
    return shlex.split(yaml.safe_load((KUBESPRAY_VARS / "docker.yml").read_text())["docker_options"])


@pytest.mark.skipif(dockerd.available() is not None, reason=str(dockerd.available()))
def test_container_toolkit_leaves_daemon_json_alone_when_docker_options_set_the_nvidia_default(tmp_path):
    """dockerd runs with docker.yml's flags: container_toolkit finds nvidia its default runtime there, says so,
    leaves daemon.json as it is in check mode and for real, and dockerd still starts with both."""
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{\n  "log-driver": "json-file"\n}\n')
    before = daemon_json.read_bytes()
    with dockerd.running(daemon_json, docker_flags()) as daemon:
        assert daemon.report.started and daemon.report.default_runtime == "nvidia", daemon.report.error
        for check in (True, False):
            records = run_container_toolkit_docker(daemon_json, daemon, check=check)
            changed = [(r["task"], r["result"].get("diff")) for r in records if r["result"].get("changed")]
            assert changed == [], (check, changed)
            said = [r["result"].get("msg", "") for r in records if r["task"].startswith("Leave daemon.json alone")]
            assert len(said) == 1 and "command line" in said[0] and str(daemon_json) in said[0], said
            module_runs = [r for r in records if r["task"] == "Add the NVIDIA runtime to docker"]
            assert [r["status"] for r in module_runs] == ["skipped"], module_runs
            facts = [
                r["result"]["ansible_facts"] for r in records if "kubegpu_default_runtime" in r["result"].get("ansible_facts", {})
            ]
            assert facts == [{"kubegpu_default_runtime": "nvidia"}], facts
    assert daemon_json.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("daemon.json.")] == [], "a backup of an unchanged file"
    # the next restart of dockerd, with the same flags and file, still has the runtime as its default
    restarted = dockerd.start(daemon_json, docker_flags())
    assert restarted.started and restarted.default_runtime == "nvidia", restarted.error


@pytest.mark.skipif(dockerd.available() is not None, reason=str(dockerd.available()))
def test_container_toolkit_writes_daemon_json_when_dockerd_runs_without_the_flags(tmp_path):
    """The control: the same dockerd without docker.yml's flags runs runc by default, and the same check mode run
    adds the runtime and default-runtime to daemon.json (then its restart handler fails: no systemd runs docker here)."""
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{\n  "log-driver": "json-file"\n}\n')
    before = daemon_json.read_bytes()
    with dockerd.running(daemon_json) as daemon:
        assert daemon.report.started and daemon.report.default_runtime == "runc", daemon.report.error
        records = run_container_toolkit_docker(daemon_json, daemon, check=True, succeed=False)
    assert not [r for r in records if r["task"].startswith("Leave daemon.json alone") and r["status"] == "ok"]
    module_runs = [r["result"] for r in records if r["task"] == "Add the NVIDIA runtime to docker"]
    assert len(module_runs) == 1 and module_runs[0]["changed"] and module_runs[0]["restart_required"], module_runs
    assert module_runs[0]["default_runtime"] == "nvidia"
    assert records[-1]["status"] == "failed" and "did not come up" in records[-1]["result"]["msg"], records[-1]
    assert daemon_json.read_bytes() == before
