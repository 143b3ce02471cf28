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

Real: containerd 2.1 (Debian sid) judges the file (``config dump``), and kubegpu.core.containerd_runtime
runs with the arguments roles/container_toolkit passes (read from its defaults) in check mode; dockerd
26.1 (Debian trixie) judges the docker flags with ``--validate``.
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
from tests.support.adhoc import REPO_ROOT, ansible_env

KUBESPRAY_VARS = REPO_ROOT / "inventory" / "kubespray" / "group_vars" / "gpu_nodes"
SUPPORT = REPO_ROOT / "tests" / "support" / "kubespray"
TOOLKIT_DEFAULTS = REPO_ROOT / "roles" / "container_toolkit" / "defaults" / "main.yml"
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
    playbook = dest.with_suffix(".play.yml")
    playbook.write_text(json.dumps(play))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest.read_text()


def role_module_args(path: Path, containerd: str) -> list[dict[str, t.Any]]:
    """The containerd_runtime calls of container_toolkit's configure step, with the role's defaults."""
    defaults = yaml.safe_load(TOOLKIT_DEFAULTS.read_text())
    common = {"path": str(path), "backup": True, "containerd_binary": containerd}
    return [
        {**common, "name": "runc"},
        {
            **common,
            "name": defaults["container_toolkit_runtime_name"],
            "binary_name": defaults["container_toolkit_runtime_binary"],
            "options": defaults["container_toolkit_runtime_options"],
            "default": defaults["container_toolkit_runtime_default"],
        },
    ]


def dump(binary: str, path: Path) -> dict[str, t.Any]:
    proc = subprocess.run([binary, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return tomlkit.parse(proc.stdout).unwrap()


def run_role_calls(calls: list[dict[str, t.Any]], *, check: bool) -> list[dict[str, t.Any]]:
    """The module calls as the tasks of one ansible-playbook run (one start-up for both); their results."""
    scratch = Path(calls[0]["path"]).parent
    result_file = scratch / "results.jsonl"
    result_file.unlink(missing_ok=True)
    play = [
        {
            "name": "container_toolkit's containerd_runtime calls",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"name": args["name"], "kubegpu.core.containerd_runtime": args} for args in calls],
        }
    ]
    playbook = scratch / "role-calls.yml"
    playbook.write_text(json.dumps(play))
    env = ansible_env(
        {
            "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "tests" / "support" / "callbacks"),
            "ANSIBLE_CALLBACKS_ENABLED": "result_file",
            "KUBEGPU_RESULT_FILE": str(result_file),
        }
    )
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "--diff", *(["--check"] if check else [])]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line)["result"] for line in result_file.read_text().splitlines()]


def test_kubespray_config_with_our_group_vars_needs_no_change_from_container_toolkit(tmp_path, containerd):
    config = tmp_path / "config.toml"
    text = render_kubespray_config(config, containerd, [KUBESPRAY_VARS / "containerd.yml"])
    assert '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia]' in text
    before = config.read_bytes()

    calls = role_module_args(config, containerd)
    for check in (True, False):
        results = run_role_calls(calls, check=check)
        assert len(results) == len(calls)
        for args, result in zip(calls, results):
            assert not result.get("changed") and not result["restart_required"], (check, args["name"], result.get("diff"))
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
    runc, nvidia = run_role_calls(role_module_args(config, containerd), check=True)
    assert not runc.get("changed"), runc
    assert nvidia["changed"] and nvidia["restart_required"], nvidia
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
