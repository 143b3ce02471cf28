"""Run plays through the real ``ansible-playbook`` over this checkout and return every task result, as the test
callback tests/support/callbacks/result_file.py recorded it (the callback ``run_module`` of adhoc.py reads too).

- ``run_playbook(plays, inventory, ...)`` is the one runner: plays (inline, or playbook files imported in
  order, e.g. the collection's ``playbooks/facts.yml``), an inventory, extra variables, check and diff mode. It
  returns a ``PlaybookRun``.
- ``run_tasks({name: (module, args, environment)})``: many module runs for the start-up cost of one playbook.
- ``run_role(kubeapi, "vgpu_scheduler", variables={...}, hosts={...}, check=True)``: the roles on localhost as
  playbooks/cluster.yml runs the cluster roles (``module_defaults`` of ``group/kubegpu.core.k8s`` carry the test
  API server's kubeconfig; the real helm of .cache/bin on PATH, with private config, cache and data directories).
- ``run_role_each(kubeapi, "nvidia_device_plugin", [{...}, {...}], ...)``: one role included once per option set,
  in one play (the render tests plan many option sets in one run).
  ``hosts`` fills the inventory group ``gpu_nodes``: a mapping of host variables is a host that is never contacted
  (only its variables are read); a ``GpuHost`` is this machine (``ansible_connection: local``) and a first play
  gathers its facts with the real ``kubegpu.core.gpu_facts``, as play 1 of site.yml does.
- ``run_role_variants(kubeapi, "vgpu_scheduler", {name: RoleVariant(vars, check=True)}, ...)``: one role several
  times with other variables, one play each in one ``ansible-playbook`` (the start-up cost paid once); a variant
  the role refuses does not stop the next ones (``run.in_play(name)`` has each variant's results).

What ``GpuHost`` simulates: the GPUs (the fake libnvidia-ml.so.1 answering from a JSON scenario, see
tests/support/fake_nvml/README.md, loaded by the real pynvml binding) and the PCI bus (a fake sysfs tree, empty
unless the host names PCI functions). The host's Python interpreter is a small wrapper that exports the fake
library's environment and runs the controller's Python, so every module on that host, the facts of a playbook
of the collection's own (playbooks/facts.yml) too, sees that host's GPUs; each host has its own MIG state file
(``<host dir>/nvml-state.json``, FAKE_NVML_STATE), so a MIG change by one module is what the next one sees;
``gpu_host_vars`` gives the host variables to an inventory of another shape (tests/support/site_bench.py: kubespray's groups).
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

from tests.support import fake_nvml
from tests.support.adhoc import BIN, REPO_ROOT, ModuleRun, read_records, recording_env
from tests.support.fake_sysfs import PciFunction, build
from tests.support.kube_clients import ensure_clients

PLAYBOOKS = REPO_ROOT / "playbooks"
GPU_GROUP = "gpu_nodes"
FAKE_NVML_GROUP = "fake_nvml_hosts"  # the GpuHost hosts, whose facts the first play gathers


class PlaybookRun(t.NamedTuple):
    rc: int
    records: list[dict[str, t.Any]]  # every task result: {"status", "task", "host", "play", "result"}, in the order they came
    stdout: str
    stderr: str

    def task(self, name: str, host: str | None = None) -> ModuleRun:
        """The last result of the task called ``name`` (a role's task also as ``role : name``), on ``host`` if given."""
        found = [
            record
            for record in self.records
            if (record["task"] == name or record["task"].endswith(f" : {name}")) and host in (None, record["host"])
        ]
        if not found:
            ran = [f"{record['host']}: {record['task']}" for record in self.records]
            raise AssertionError(f"no result of task {name!r} on {host or 'any host'}; results: {ran}\n{self.stdout}")
        return ModuleRun(found[-1]["status"], found[-1]["result"], self.stdout, self.stderr)

    def in_play(self, play: str) -> PlaybookRun:
        """The results of the play called ``play`` only (``rc`` stays the whole run's)."""
        found = [record for record in self.records if record.get("play") == play]
        if not found:
            raise AssertionError(f"no result in play {play!r}; plays: {sorted({r.get('play') for r in self.records})}")
        return self._replace(records=found)

    @property
    def changed(self) -> list[str]:
        """The name of the task of every result that reports a change (or a loop item that does), in order."""
        return [record["task"] for record in self.records if _changed(record["result"])]

    @property
    def changed_on(self) -> list[str]:
        """``host: task`` of every result that reports a change (or a loop item that does), in order."""
        return [f"{record['host']}: {record['task']}" for record in self.records if _changed(record["result"])]

    @property
    def failed(self) -> list[dict[str, t.Any]]:
        """The records of the failed and unreachable results (ignored failures too)."""
        return [record for record in self.records if record["status"] in ("failed", "unreachable")]

    @property
    def message(self) -> str:
        """The messages of the failed results, one a line (empty when none failed)."""
        return "\n".join(str(record["result"].get("msg", "")) for record in self.failed)

    @property
    def failures(self) -> list[str]:
        """``host: task: message`` of every failed result, a loop's failed items' messages included."""
        found = []
        for record in self.failed:
            result = record["result"]
            items = result.get("results") if isinstance(result.get("results"), list) else []
            texts = [result.get("msg")] + [item.get("msg") for item in items if isinstance(item, dict)]
            found.append(f"{record['host']}: {record['task']}: " + " ".join(str(text) for text in texts if text))
        return found

    def explain(self) -> str:
        """The exit code and the ends of the output, for an assertion's message."""
        return f"rc={self.rc}\n{self.stdout[-6000:]}\n{self.stderr[-3000:]}"


def _changed(result: dict[str, t.Any]) -> bool:
    items = result.get("results") if isinstance(result.get("results"), list) else []
    return bool(result.get("changed")) or any(isinstance(item, dict) and item.get("changed") for item in items)


def run_playbook(
    plays: list[dict[str, t.Any] | str | Path],
    inventory: dict[str, t.Any] | None = None,
    *,
    extra_vars: dict[str, t.Any] | None = None,
    check: bool = False,
    diff: bool = False,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
    yaml_vars: str | None = None,
) -> PlaybookRun:
    """``ansible-playbook [-i INVENTORY] PLAYBOOK`` with every task result recorded. ``plays``: a mapping is a
    play; a string or path is a playbook imported there (``import_playbook``): a bare name such as
    ``"facts.yml"`` is one of the collection's playbooks/, else a file or a collection playbook
    (``kubegpu.core.site``). Without ``inventory`` only the implicit localhost exists; ``env`` adds to the
    environment; ``cwd`` is the directory it runs in (default: a fresh temporary one), as a shell would set it
    (``PWD``). ``yaml_vars`` is YAML text, variables as an operator writes them in an inventory (Ansible's loader
    types the unquoted values: ``12.10`` a float, ``yes`` a bool), passed as ``-e @FILE`` after ``extra_vars``."""
    with tempfile.TemporaryDirectory(prefix="kubegpu-playbook-") as scratch_name:
        scratch = Path(scratch_name)
        entries = [play if isinstance(play, dict) else {"import_playbook": _playbook(play)} for play in plays]
        (scratch / "playbook.yml").write_text(json.dumps(entries))  # JSON is YAML
        argv = [str(BIN / "ansible-playbook"), str(scratch / "playbook.yml")]
        if inventory is not None:
            (scratch / "inventory.json").write_text(json.dumps(inventory))
            argv += ["-i", str(scratch / "inventory.json")]
        if extra_vars:
            (scratch / "extra-vars.json").write_text(json.dumps(extra_vars))  # a file keeps numbers and booleans
            argv += ["-e", f"@{scratch / 'extra-vars.json'}"]
        if yaml_vars is not None:
            (scratch / "typed-vars.yml").write_text(yaml_vars)
            argv += ["-e", f"@{scratch / 'typed-vars.yml'}"]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        result_file = scratch / "results.jsonl"
        workdir = cwd or scratch
        run_env = recording_env(result_file, {**(env or {}), "PWD": str(workdir)})
        proc = subprocess.run(argv, capture_output=True, text=True, env=run_env, cwd=workdir, check=False, timeout=timeout)
        return PlaybookRun(proc.returncode, read_records(result_file), proc.stdout, proc.stderr)


def _playbook(name: str | Path) -> str:
    if isinstance(name, str) and "/" not in name and name.endswith((".yml", ".yaml")):
        return str(PLAYBOOKS / name)
    return str(name)


def helm_env(home: Path) -> dict[str, str]:
    """The real helm of .cache/bin first on PATH, its cache, configuration and data under ``home``."""
    helm = ensure_clients()["helm"]
    return {
        "PATH": f"{helm.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def run_tasks(tasks: dict[str, tuple[str, dict[str, t.Any], dict[str, str] | None]]) -> dict[str, ModuleRun]:
    """Runs ``{task name: (module, args, environment)}`` as the tasks of one play on localhost (``ignore_errors``,
    so every task runs) and returns each task's result by name."""
    play = {
        "name": "kubegpu.core tests",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"name": name, module: args, "environment": environment or {}, "ignore_errors": True}
            for name, (module, args, environment) in tasks.items()
        ],
    }
    run = run_playbook([play])
    if sorted(record["task"] for record in run.records) != sorted(tasks):
        raise AssertionError(f"expected one result of each of {sorted(tasks)}, got {run.records}:\n{run.stdout}\n{run.stderr}")
    return {name: run.task(name) for name in tasks}


class GpuHost(t.NamedTuple):
    scenario: str  # a fake NVML scenario: v100x2, t4, h100x8, a100_mig, gtx1080ti, driver_not_loaded, ...
    node: str | None = None  # kubegpu_node_name, when the node's name is not the host's
    vars: dict[str, t.Any] = {}  # further host variables (kubegpu_default_runtime, kubegpu_device_plugin, ...)
    pci: tuple[PciFunction, ...] = ()  # GPUs on the fake PCI bus (e.g. a GPU whose driver is not loaded)
    modules: dict[str, str] = {}  # loaded kernel modules in the fake sysfs, name: version ({"nvidia": "535.161.08"})


GPU_FACTS_PLAY = {
    "name": "GPU facts from the fake NVML scenarios",
    "hosts": FAKE_NVML_GROUP,
    "gather_facts": False,
    "tasks": [
        {
            "name": "Gather GPU facts",
            "kubegpu.core.gpu_facts": {"sysfs_root": "{{ kubegpu_test_sysfs }}", "nvidia_smi_path": "/nonexistent/nvidia-smi"},
        }
    ],
}


def gpu_host_vars(name: str, host: GpuHost, directory: Path) -> dict[str, t.Any]:
    """The host variables of the GPU host ``name``: this machine, its Python a wrapper that loads the fake NVML
    library answering ``host.scenario``; its fake sysfs tree (``kubegpu_test_sysfs``). Both are written under
    ``directory``/``name``, which must outlive the run."""
    home = directory / name
    build(home / "sys", list(host.pci), module_versions=host.modules)
    # each host its own MIG state, so that its modules and its gpu_facts see the same MIG devices
    environment = fake_nvml.environment(host.scenario, state=home / "nvml-state.json")
    exports = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in environment.items())
    wrapper = home / "python"
    wrapper.write_text(
        f"#!/bin/sh\n# test bench: the GPUs of {name} are the fake NVML scenario {host.scenario}\n"
        f'{exports}exec {shlex.quote(sys.executable)} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(wrapper),
        "kubegpu_test_sysfs": str(home / "sys"),
        **({"kubegpu_node_name": host.node} if host.node else {}),
        **host.vars,
    }


def _inventory(hosts: dict[str, dict[str, t.Any] | GpuHost], directory: Path) -> dict[str, t.Any]:
    gpu_nodes = {
        name: gpu_host_vars(name, host, directory) if isinstance(host, GpuHost) else dict(host) for name, host in hosts.items()
    }
    gpu_hosts = {name: {} for name, host in hosts.items() if isinstance(host, GpuHost)}
    return {
        "all": {
            # every host this machine runs modules on uses this Python (the venv's, with the kubernetes library)
            "vars": {"ansible_python_interpreter": sys.executable},
            "hosts": {"localhost": {"ansible_connection": "local"}},
            "children": {GPU_GROUP: {"hosts": gpu_nodes}, FAKE_NVML_GROUP: {"hosts": gpu_hosts}},
        }
    }


def run_role(
    kubeapi: t.Any,
    roles: str | list[str],
    *,
    variables: dict[str, t.Any] | None = None,
    hosts: dict[str, dict[str, t.Any] | GpuHost] | None = None,
    check: bool = False,
    diff: bool = False,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    yaml_vars: str | None = None,
) -> PlaybookRun:
    """``roles`` (``gpu_labels`` or ``kubegpu.core.gpu_labels``; several run in order, in one play) on localhost
    against the test API server, ``variables`` as extra variables (``yaml_vars`` as ``run_playbook`` takes them);
    ``hosts`` as the module docstring says."""
    names = [roles] if isinstance(roles, str) else roles
    names = [_role_name(name) for name in names]
    play = {"name": f"{', '.join(names)} (test)", "roles": [{"role": name} for name in names]}
    return _run_cluster_plays(
        kubeapi, [play], variables=variables, hosts=hosts, check=check, diff=diff, env=env, cwd=cwd, yaml_vars=yaml_vars
    )


def _role_name(name: str) -> str:
    return name if "." in name else f"kubegpu.core.{name}"


def _run_cluster_plays(
    kubeapi: t.Any,
    cluster_plays: list[dict[str, t.Any]],
    *,
    variables: dict[str, t.Any] | None,
    hosts: dict[str, dict[str, t.Any] | GpuHost] | None,
    check: bool = False,
    diff: bool = False,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    yaml_vars: str | None = None,
) -> PlaybookRun:
    """``cluster_plays`` on localhost against the test API server, as playbooks/cluster.yml runs the cluster roles,
    after the GPU facts play when ``hosts`` has a ``GpuHost``."""
    plays = [GPU_FACTS_PLAY] if any(isinstance(host, GpuHost) for host in (hosts or {}).values()) else []
    plays += [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/kubegpu.core.k8s": {"kubeconfig": str(kubeapi.kubeconfig)}},
            **play,
        }
        for play in cluster_plays
    ]
    with tempfile.TemporaryDirectory(prefix="kubegpu-role-") as scratch_name:
        scratch = Path(scratch_name)
        return run_playbook(
            plays,
            _inventory(hosts or {}, scratch / "hosts"),
            extra_vars=variables,
            check=check,
            diff=diff,
            env={**helm_env(scratch / "helm"), **(env or {})},
            cwd=cwd,
            yaml_vars=yaml_vars,
        )


class RoleVariant(t.NamedTuple):
    vars: dict[str, t.Any]  # the play's variables (over the role's defaults, under run_role_variants' ``variables``)
    check: bool = False  # the play runs in check mode
    diff: bool = False  # ... and diff mode


def run_role_variants(
    kubeapi: t.Any,
    role: str,
    variants: dict[str, RoleVariant],
    *,
    variables: dict[str, t.Any] | None = None,
    hosts: dict[str, dict[str, t.Any] | GpuHost] | None = None,
    env: dict[str, str] | None = None,
    yaml_vars: str | None = None,
) -> PlaybookRun:
    """``role`` once per variant, each in a play of its own named after it (``include_role`` in a block whose
    rescue lets the next plays run when the role fails: a refusal stays a failed result of its play), in one
    ``ansible-playbook`` run against the test API server; ``variables`` as extra variables (they win over every
    variant's; ``yaml_vars`` as ``run_playbook`` takes them), ``hosts`` as for ``run_role``. Facts the role sets
    stay for the next plays, as in any playbook that includes a role twice."""
    plays = [
        {
            "name": name,
            "check_mode": variant.check,
            "diff": variant.diff,
            "vars": variant.vars,
            "tasks": [
                {
                    "name": f"{role} ({name})",
                    "block": [{"ansible.builtin.include_role": {"name": _role_name(role)}}],
                    "rescue": [{"name": "The role failed", "ansible.builtin.debug": {"msg": "the next play runs"}}],
                }
            ],
        }
        for name, variant in variants.items()
    ]
    return _run_cluster_plays(kubeapi, plays, variables=variables, hosts=hosts, env=env, yaml_vars=yaml_vars)
