"""inventory/kubespray/group_vars: kubespray's own config, rendered with them, needs no change from our role.

Real: kubespray's containerd templates and defaults at every release in ../shared/upstream/kubespray (v2.27.0,
v2.29.1, v2.31.0, master 46dbdd3; ``config.toml.j2`` and, where the release has it, ``config-v1.toml.j2`` for
containerd 1.x), rendered by Ansible's template engine as kubespray renders them (its role defaults, overridden by
our group_vars as a kubespray inventory overrides them); roles/container_toolkit's own containerd tasks run on each
result; real containerd judges it (``config dump``): 1.7 (Debian trixie) for the templates that write the
``io.containerd.grpc.v1.cri`` plugin (config version 2), 2.1 (Debian sid) for the others. dockerd 26.1 (Debian
trixie) judges the docker flags with ``--validate``, and runs with them (tests/support/dockerd.py) while
roles/container_toolkit (engine docker, the toolkit not installed) asks it through ``docker info``.

Variables kubespray computes outside the files in upstream/, supplied by hand (``hand_vars``):
- ``containerd_version``: kubespray derives it from its checksums file (roles/kubespray_defaults/vars), which
  upstream/ does not hold; it is the version of the containerd that judges the file, as on a node.
- ``pod_infra_version``: kubespray looks it up by Kubernetes version in roles/kubespray_defaults/vars, not in
  upstream/ either; it only names the sandbox (pause) image in the file, which containerd stores and never checks.
- v2.27.0 has no kubespray_defaults in upstream/: v2.29.1's stand in for the six names its template reads
  (bin_dir, containerd_use_systemd_cgroup, kata_containers_enabled, gvisor_enabled, nri_enabled, pod_infra_image_*).
- ``containerd_runc_runtime`` with ``engine: ""`` and ``root: ""`` added, for the config-v1 templates of v2.31.0 and
  master only: they write ``runtime_engine``/``runtime_root`` for runc too, whose defaults lost those keys, so
  kubespray cannot render them with its own defaults (test_kubespray_config_v1_fails_on_its_own_runc_from_v2_31
  proves it); "" is the value v2.27 and v2.29 give runc and containerd 1.7's default.
"""

from __future__ import annotations

import json
import re
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
UPSTREAM = REPO_ROOT.parent / "shared" / "upstream" / "kubespray"
NO_UPSTREAM = f"kubespray's templates are not at {UPSTREAM} (../shared/upstream beside the checkout)"
TEMPLATES = ("config.toml.j2", "config-v1.toml.j2")
NVIDIA_BINARY = "/usr/bin/nvidia-container-runtime"
CRI_V2, CRI_V3 = "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"

pytestmark = pytest.mark.slow


class Cell(t.NamedTuple):
    release: str
    template: str

    @property
    def host(self) -> str:
        return f"{self.release}_{self.template.split('.')[0]}"

    @property
    def source(self) -> Path:
        return UPSTREAM / self.release / self.template

    @property
    def plugin(self) -> str:
        """The CRI plugin the template writes runtimes under (from the real template)."""
        return CRI_V2 if f'"{CRI_V2}"' in self.source.read_text() else CRI_V3

    @property
    def suite(self) -> str:
        """The Debian suite whose containerd reads that plugin's config: 1.7 for version 2, 2.1 for version 3."""
        return "trixie" if self.plugin == CRI_V2 else "sid"

    def defaults(self) -> list[Path]:
        """kubespray's defaults files for this release, in the order kubespray's roles stack them."""
        own = UPSTREAM / self.release
        general = sorted(own.glob("kubespray_defaults-*.yml")) or sorted((UPSTREAM / "v2.29.1").glob("kubespray_defaults-*.yml"))
        return [*general, own / "containerd-common-defaults.yml", own / "containerd-defaults.yml"]

    def runc(self) -> dict[str, t.Any]:
        return yaml.safe_load((UPSTREAM / self.release / "containerd-defaults.yml").read_text())["containerd_runc_runtime"]

    def needs_runc_engine(self) -> bool:
        return "runtime.engine" in self.source.read_text() and "engine" not in self.runc()


CELLS = (
    [Cell(d.name, name) for d in sorted(UPSTREAM.iterdir()) if d.is_dir() for name in TEMPLATES if (d / name).is_file()]
    if UPSTREAM.is_dir()
    else []
)
CELL_PARAMS = [pytest.param(cell, id=cell.host) for cell in CELLS] or [
    pytest.param(None, marks=pytest.mark.skip(reason=NO_UPSTREAM))
]


def test_every_kubespray_release_and_template_is_a_cell():
    """Seven templates at four releases: a release or template added to upstream/ is tested without editing here."""
    if not UPSTREAM.is_dir():
        pytest.skip(NO_UPSTREAM)
    assert len({cell.release for cell in CELLS}) >= 4 and len(CELLS) >= 7, CELLS


def containerd_binary(suite: str) -> str:
    return str(debs.fetch("containerd", suite) / "usr" / "bin" / "containerd")


def containerd_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return re.search(r"\sv?(\d+\.\d+\.\d+)", out).group(1)


def hand_vars(cell: Cell, binary: str, scratch: Path) -> Path:
    """The variables kubespray computes outside the files of upstream/ (module docstring), as a vars file."""
    variables: dict[str, t.Any] = {"containerd_version": containerd_version(binary), "pod_infra_version": "3.10"}
    if cell.needs_runc_engine():
        variables["containerd_runc_runtime"] = {"engine": "", "root": "", **cell.runc()}
    path = scratch / f"{cell.host}-hand-vars.yml"
    path.write_text(json.dumps(variables))
    return path


def render_plays(cells: list[Cell], scratch: Path, name: str, group_vars: list[Path]) -> list[dict[str, t.Any]]:
    """One play per cell (host): kubespray's template rendered to ``scratch/<host>/<name>``."""
    plays = []
    for cell in cells:
        binary = containerd_binary(cell.suite)
        (scratch / cell.host).mkdir(exist_ok=True)
        plays.append(
            {
                "name": f"kubespray {cell.release} {cell.template}",
                "hosts": cell.host,
                "gather_facts": False,
                "vars_files": [*map(str, cell.defaults()), *map(str, group_vars), str(hand_vars(cell, binary, scratch))],
                "tasks": [
                    {
                        "name": "Render",
                        "ansible.builtin.template": {
                            "src": str(cell.source),
                            "dest": str(scratch / cell.host / name),
                            "mode": "0644",
                        },
                        "ignore_errors": True,
                    }
                ],
            }
        )
    return plays


def inventory(cells: list[Cell]) -> dict[str, t.Any]:
    hosts = {cell.host: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable} for cell in cells}
    return {"all": {"hosts": hosts}}


def render(cells: list[Cell], scratch: Path, name: str, group_vars: list[Path]) -> dict[str, dict[str, t.Any]]:
    """Renders every cell in one ansible-playbook run; each cell's Render result by host."""
    run = run_playbook(render_plays(cells, scratch, name, group_vars), inventory(cells), cwd=REPO_ROOT)
    results = {record["host"]: record for record in run.records if record["task"] == "Render"}
    assert sorted(results) == sorted(cell.host for cell in cells), run.explain()
    return results


def dump(binary: str, path: Path) -> dict[str, t.Any]:
    proc = subprocess.run([binary, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return tomlkit.parse(proc.stdout).unwrap()


def configure_tasks() -> str:
    """container_toolkit's task file that configures containerd (its name before and after the docker split)."""
    tasks = REPO_ROOT / "roles" / "container_toolkit" / "tasks"
    return next(name for name in ("configure_containerd.yml", "configure.yml") if (tasks / name).is_file())


def container_toolkit_play(cell: Cell, config: Path, *, check: bool) -> dict[str, t.Any]:
    """container_toolkit's containerd step, as the role runs it (its own tasks and defaults), on ``config``."""
    return {
        "name": f"container_toolkit on kubespray {cell.release} {cell.template}" + (" (check mode)" if check else ""),
        "hosts": cell.host,
        "gather_facts": False,
        "check_mode": check,
        # this machine's own /usr/bin/containerd (1.6, found before PATH) is not the one that judges the file
        "module_defaults": {"kubegpu.core.containerd_runtime": {"containerd_binary": containerd_binary(cell.suite)}},
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


def runtimes_as_rendered(text: str, plugin: str) -> dict[str, t.Any]:
    return tomlkit.parse(text).unwrap()["plugins"][plugin]["containerd"]["runtimes"]


def assert_nvidia_is_runc_with_its_binary(binary: str, config: Path, runc: dict[str, t.Any]) -> None:
    """containerd runs nvidia by default, and sees in it every key kubespray wrote for runc (``runc``, as rendered)
    with runc's value, base_runtime_spec included, BinaryName aside, which is the NVIDIA runtime."""
    seen = dump(binary, config)
    cri = seen["plugins"][CRI_V2 if seen.get("version") == 2 else CRI_V3]["containerd"]
    assert cri["default_runtime_name"] == "nvidia"
    seen_runc, seen_nvidia = cri["runtimes"]["runc"], cri["runtimes"]["nvidia"]
    for key in runc:
        if key != "options":
            assert seen_nvidia.get(key) == seen_runc.get(key), key
    assert seen_nvidia["base_runtime_spec"] == seen_runc["base_runtime_spec"] == "/etc/containerd/cri-base.json"
    assert seen_nvidia["options"]["BinaryName"] == NVIDIA_BINARY
    for key in runc["options"]:
        if key.lower() != "binaryname":
            # containerd 2.x shows the options it fills in for runc (Root = ''), not for nvidia: an option
            # missing there is the runc shim's zero value
            value = seen_runc["options"][key]
            assert seen_nvidia["options"].get(key, type(value)()) == value, key


@pytest.fixture(scope="module")
def kubespray_runs(tmp_path_factory) -> dict[str, t.Any]:
    """Every cell at once: kubespray renders with our group_vars, container_toolkit runs on the result in check
    mode then for real, kubespray renders again; three ansible-playbook runs in all."""
    if not CELLS:
        pytest.skip(NO_UPSTREAM)
    scratch = tmp_path_factory.mktemp("kubespray")
    group_vars = [KUBESPRAY_VARS / "containerd.yml"]
    first = render(CELLS, scratch, "config.toml", group_vars)
    rendered = {
        cell.host: (scratch / cell.host / "config.toml").read_bytes() for cell in CELLS if first[cell.host]["status"] == "ok"
    }
    plays = [
        container_toolkit_play(cell, scratch / cell.host / "config.toml", check=check)
        for check in (True, False)
        for cell in CELLS
        if cell.host in rendered
    ]
    role = run_playbook(plays, inventory(CELLS), diff=True, cwd=REPO_ROOT)
    second = render(CELLS, scratch, "config.again.toml", group_vars)
    return {"scratch": scratch, "first": first, "rendered": rendered, "role": role, "second": second}


@pytest.mark.parametrize("cell", CELL_PARAMS)
def test_kubespray_renders_our_group_vars_and_container_toolkit_changes_nothing(cell, kubespray_runs):
    """kubespray renders the nvidia runtime of our group_vars with its real template; container_toolkit, which makes
    the runtime a copy of runc with its own BinaryName (as nvidia-ctk does), finds it in place and changes nothing in
    check mode and for real; kubespray's next render is the same file; containerd runs nvidia by default with runc's
    table (base_runtime_spec and SystemdCgroup included)."""
    first = kubespray_runs["first"][cell.host]
    assert first["status"] == "ok", first["result"].get("msg")
    config = kubespray_runs["scratch"] / cell.host / "config.toml"
    text = config.read_text()
    runtimes = runtimes_as_rendered(text, cell.plugin)
    assert list(runtimes) == ["runc", "nvidia"], list(runtimes)

    role = kubespray_runs["role"]
    records = [r for r in role.records if r["host"] == cell.host]
    assert records and not [r for r in records if r["status"] == "failed"], [r["result"].get("msg") for r in records]
    module_runs = [r for r in records if "restart_required" in r["result"]]
    assert len(module_runs) == 4, [r["task"] for r in records]  # runc declared, nvidia added; check mode and real
    assert [r["result"].get("copied_from") for r in module_runs if "copied_from" in r["result"]] == ["runc", "runc"]
    changed = [(r["task"], r["result"].get("diff")) for r in records if r["result"].get("changed")]
    assert changed == []
    assert config.read_bytes() == kubespray_runs["rendered"][cell.host]
    assert [p.name for p in config.parent.iterdir() if p.name.startswith("config.toml.")] == [], "a backup of an unchanged file"
    assert kubespray_runs["second"][cell.host]["status"] == "ok"
    assert (config.parent / "config.again.toml").read_bytes() == config.read_bytes()

    # as kubespray wrote runc, so nvidia: every key of runc's table, BinaryName aside
    runc, nvidia = runtimes["runc"], runtimes["nvidia"]
    assert runc["base_runtime_spec"] == "/etc/containerd/cri-base.json"
    assert {k: v for k, v in nvidia.items() if k != "options"} == {k: v for k, v in runc.items() if k != "options"}
    binary_key = next(k for k in runc["options"] if k.lower() == "binaryname")
    assert nvidia["options"] == {**{k: v for k, v in runc["options"].items() if k != binary_key}, "BinaryName": NVIDIA_BINARY}

    # and as containerd sees them
    assert_nvidia_is_runc_with_its_binary(containerd_binary(cell.suite), config, runc)


@pytest.fixture(scope="module")
def kubespray_cdi(kubespray_runs) -> dict[str, t.Any]:
    """Copies of kubespray's renders (with our group_vars), then containerd_runtime with enable_cdi=true (the runtime
    nvidia, nothing else asked of it, as container_toolkit asks on a dra_driver node) in check mode, for real and
    again, each judged by the cell's containerd: one ansible-playbook run."""
    scratch = kubespray_runs["scratch"]
    cells = [cell for cell in CELLS if cell.host in kubespray_runs["rendered"]]
    hosts = inventory(cells)
    for cell in cells:
        (scratch / cell.host / "cdi.toml").write_bytes(kubespray_runs["rendered"][cell.host])
        hosts["all"]["hosts"][cell.host]["cell_containerd"] = containerd_binary(cell.suite)
    task = {
        "name": "Turn CDI on",
        "kubegpu.core.containerd_runtime": {
            "path": f"{scratch}/{{{{ inventory_hostname }}}}/cdi.toml",
            "name": "nvidia",
            "enable_cdi": True,
            "containerd_binary": "{{ cell_containerd }}",
        },
    }
    plays = [
        {"name": name, "hosts": "all", "gather_facts": False, "check_mode": name == "check", "tasks": [task]}
        for name in ("check", "real", "again")
    ]
    run = run_playbook(plays, hosts, diff=True, cwd=REPO_ROOT)
    return {"run": run, "cells": [cell.host for cell in cells]}


@pytest.mark.parametrize("cell", CELL_PARAMS)
def test_kubespray_config_gets_cdi_on_with_everything_else_as_kubespray_wrote_it(cell, kubespray_cdi, kubespray_runs):
    """kubespray writes enable_cdi only when its own enable_cdi is true (default false): its containerd 1.x templates
    (config version 2) leave containerd 1.7's default, CDI off, and the module adds enable_cdi = true, after which
    containerd's dump differs from the one of kubespray's file in that key only; its containerd 2.x templates leave
    2.x's default, CDI on, and the module changes nothing. Check mode first, and a second run changes nothing."""
    assert cell.host in kubespray_cdi["cells"], "kubespray did not render this cell"
    run = kubespray_cdi["run"]
    results = {play: run.in_play(play).task("Turn CDI on", cell.host) for play in ("check", "real", "again")}
    assert not any(result.failed for result in results.values()), {p: r.result.get("msg") for p, r in results.items()}
    assert all(result.result["cdi_enabled"] is True for result in results.values())
    binary = containerd_binary(cell.suite)
    config = kubespray_runs["scratch"] / cell.host / "cdi.toml"
    rendered = kubespray_runs["scratch"] / cell.host / "config.toml"
    writes = cell.plugin == CRI_V2
    assert [results[play].changed for play in ("check", "real", "again")] == [writes, writes, False]
    before, after = dump(binary, rendered), dump(binary, config)
    plugin = CRI_V2 if after.get("version") == 2 else CRI_V3
    assert before["plugins"][plugin].get("enable_cdi") is (not writes)
    assert after["plugins"][plugin]["enable_cdi"] is True
    assert after["plugins"][plugin]["cdi_spec_dirs"] == ["/etc/cdi", "/var/run/cdi"]
    for data in (before, after):
        data.pop("imports", None)
        data["plugins"][plugin].pop("enable_cdi")
    assert after == before
    if not writes:
        assert config.read_bytes() == kubespray_runs["rendered"][cell.host]


def test_kubespray_config_v1_fails_on_its_own_runc_from_v2_31(tmp_path):
    """Why hand_vars adds engine and root to runc for v2.31's and master's config-v1.toml.j2: kubespray's own
    defaults, without our group_vars, cannot render it (runc lost engine/root, the template still writes them)."""
    cells = [cell for cell in CELLS if cell.template == "config-v1.toml.j2" and cell.needs_runc_engine()]
    if not cells:
        pytest.skip(NO_UPSTREAM if not CELLS else "no release whose config-v1 template kubespray's runc cannot render")
    plays = render_plays(cells, tmp_path, "config.toml", [])
    for play in plays:  # kubespray's own defaults, nothing of ours, no engine for runc
        play["vars_files"] = [*map(str, next(c for c in cells if c.host == play["hosts"]).defaults()), play["vars_files"][-1]]
        play["vars"] = {}
    for cell in cells:
        hand = {"containerd_version": containerd_version(containerd_binary(cell.suite)), "pod_infra_version": "3.10"}
        (tmp_path / f"{cell.host}-hand-vars.yml").write_text(json.dumps(hand))
    run = run_playbook(plays, inventory(cells), cwd=REPO_ROOT)
    results = {r["host"]: r for r in run.records if r["task"] == "Render"}
    for cell in cells:
        assert results[cell.host]["status"] == "failed", cell
        assert "has no attribute 'engine'" in results[cell.host]["result"]["msg"], results[cell.host]["result"]["msg"]


def test_kubespray_config_without_our_group_vars_is_one_container_toolkit_changes(tmp_path):
    """The control, on kubespray master's config.toml.j2: kubespray's defaults alone lack the runtime, and the same
    check mode run adds it as a copy of kubespray's runc (base_runtime_spec, Root, SystemdCgroup) with its own
    BinaryName."""
    cell = next((c for c in CELLS if c.release.startswith("master") and c.template == "config.toml.j2"), None)
    if cell is None:
        pytest.skip(NO_UPSTREAM)
    result = render([cell], tmp_path, "config.toml", [])[cell.host]
    assert result["status"] == "ok", result["result"].get("msg")
    config = tmp_path / cell.host / "config.toml"
    runc = runtimes_as_rendered(config.read_text(), cell.plugin)["runc"]
    # the role's restart handler follows the change, and fails here: no systemd runs containerd on this machine,
    # so the role puts the old file back (a no-op in check mode), fails to restart again and ends the play
    run = run_playbook([container_toolkit_play(cell, config, check=True)], inventory([cell]), diff=True, cwd=REPO_ROOT)
    assert run.rc != 0
    records = run.records
    changed = [r["result"] for r in records if r["result"].get("changed") and "restart_required" in r["result"]]
    assert len(changed) == 1 and changed[0]["restart_required"], [r["task"] for r in records]
    assert changed[0]["copied_from"] == "runc"
    assert changed[0]["runtime"]["base_runtime_spec"] == runc["base_runtime_spec"]
    # the file the check-mode run would write, as containerd reads it
    diff = changed[0]["diff"]
    after = tmp_path / "config.after.toml"
    after.write_text((diff[-1] if isinstance(diff, list) else diff)["after"])
    assert_nvidia_is_runc_with_its_binary(containerd_binary(cell.suite), after, runc)
    assert records[-1]["status"] == "failed" and records[-1]["task"] == "Fail with the engine's journal", records[-1]
    assert "containerd did not come up" in records[-1]["result"]["msg"], records[-1]
    assert dump(containerd_binary(cell.suite), config)["plugins"][cell.plugin]["containerd"]["default_runtime_name"] == "runc"


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
