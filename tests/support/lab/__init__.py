"""The lab: a simulated three-node GPU cluster on which the real ``playbooks/site.yml`` runs.

What is real: three Debian node containers (``kubegpu-node:<suite>``, systemd as PID 1), that suite's containerd
and runc installed and running under systemd in each (the suite: ``KUBEGPU_LAB_SUITE``, one of the node images'
``images.SUITES``, default :data:`DEFAULT_SUITE`; bookworm's containerd 1.6 has no CDI, trixie's 1.7 has), the node
Python environment (made by the ``node_python`` role in site.yml), Ansible reaching them with ``community.docker.docker``, Helm.
What is simulated: the GPUs (the fake NVML library ``libnvidia-ml.so.1`` installed where the real
one lives, ``/usr/lib/x86_64-linux-gnu``, with the node's scenario at its default path
``/etc/fake-nvml/scenario.json``, and the fake ``nvidia-smi``), the driver's life cycle (``fake_nvml/fake_driver.py``:
modprobe, modinfo and dkms doubles in ``/usr/local/sbin``, a ``nvidia-persistenced`` unit that holds the module, the
runfile installer ``fake_nvml.runfile()`` writes), and the cluster (the test API server
of ``tests/support/kubeapi``, in the background, with one Node object per container, ``/version``
v1.35.2 and the ready controller). The charts are the real ones (``charts.py``: ``KUBEGPU_CHARTS_DIR``,
else ``helm pull`` into ``.cache/charts``), except OpenFaaS' stand-in in ``tests/support/charts``.

``Lab(prefix, directory, suite).up()`` brings it up (idempotently: what runs already is kept, so a second
``make demo`` finds the same cluster state; containers of another suite under the same prefix are refused, naming
both suites and ``down``), ``down()`` removes the containers, stops the server and
removes the node image only if the lab built it. Container names carry ``prefix`` (the demo and the
test use different ones); Node objects and inventory hosts are ``gpu-node-1..3``; the Node ``cpu-node-1`` (no GPU, no
container, not in the inventory) is the untainted worker the cluster's other pods run on.

Command line: ``python -m tests.support.lab charts|suite|up|down|status|report [--prefix P] [--dir D] [--suite S]``
(``charts`` prints the charts directory once it holds what the lab installs, or says what is missing and fails;
``suite`` prints the nodes' suite, or fails naming a ``KUBEGPU_LAB_SUITE`` the node images do not have;
``report`` renders ``report.json`` into ``report.html`` in the lab directory, see ``report.py``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import yaml

from tests.support import debs, fake_nvml, fake_sysfs, images
from tests.support.kube_clients import BIN
from tests.support.kubeapi.nodes import gpu_node
from tests.support.lab import charts, report

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PREFIX = "kubegpu-lab-"
DEFAULT_DIR = REPO_ROOT / ".cache" / "lab"
# Debian 13, the current stable: containerd 1.7 with CDI (the DRA driver needs it); bookworm stays selectable and is
# covered by molecule
DEFAULT_SUITE = "trixie"
SUITE_ENV = "KUBEGPU_LAB_SUITE"
KUBE_VERSION = "v1.35.2"
LABEL = "org.kubegpu.lab"
# inventory host / Node name -> fake NVML scenario
NODES = {"gpu-node-1": "v100x2", "gpu-node-2": "t4", "gpu-node-3": "h100x8"}
# A worker without a GPU, untainted, as a cluster has for what runs beside the GPU nodes (HAMi's scheduler and its
# certificate Jobs, OpenFaaS): a Node object only (the bench's kubelet double runs its pods), no container, not in
# the inventory. Without it every node carries the GPU taint and those pods wait for a node forever.
CPU_NODES = ("cpu-node-1",)
LIBRARY_PATH = "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"
SCENARIO_PATH = "/etc/fake-nvml/scenario.json"
STAMP_PATH = "/etc/fake-nvml/installed"
DRIVER_STAMP_PATH = "/var/lib/fake-nvidia/installed-doubles"
DEB_DROP = "/var/tmp"  # where the .debs are copied for dpkg -i
SYSFS_PATH = "/var/lib/fake-nvidia/sys"  # the fake sysfs fake_driver.py keeps (its FAKE_DRIVER_SYSFS default)
# A stand-in for NVIDIA's persistence daemon unit: a GPU client that holds the nvidia module while active (the
# modprobe double refuses -r then), so that "stop the GPU clients before unloading" is observable.
PERSISTENCED_UNIT = """[Unit]
Description=NVIDIA Persistence Daemon (lab double: holds the nvidia module while active)

[Service]
Type=simple
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""


class LabError(RuntimeError):
    pass


def suite_from_env() -> str:
    """The Debian suite of the lab's nodes: ``KUBEGPU_LAB_SUITE``, else :data:`DEFAULT_SUITE`; one of ``images.SUITES``."""
    suite = os.environ.get(SUITE_ENV) or DEFAULT_SUITE
    if suite not in images.SUITES:
        raise LabError(f"{SUITE_ENV}={suite!r}: the lab's node images exist for {', '.join(images.SUITES)}")
    return suite


def containerd_runtime_version(deb_version: str) -> str:
    """A Node's ``containerRuntimeVersion`` as kubelet reports the containerd of a Debian package version
    (``1.7.24~ds1-6+deb13u1`` -> ``containerd://1.7.24``)."""
    match = re.match(r"(?:\d+:)?(\d+\.\d+\.\d+)", deb_version)
    if not match:
        raise LabError(f"containerd's Debian version {deb_version!r} does not start with X.Y.Z")
    return f"containerd://{match.group(1)}"


def _run(argv: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise LabError(f"{' '.join(argv)} failed ({result.returncode}): {output}")
    return result


def node_objects(runtime: str) -> list[dict]:
    """The Node objects the lab's API server starts with: as kubelets on the containers would register them, with
    ``runtime`` (:func:`containerd_runtime_version` of the nodes' containerd) as their ``containerRuntimeVersion``."""
    nodes = []
    for index, (name, scenario) in enumerate(NODES.items(), start=1):
        count = len(fake_nvml.load(scenario).get("devices") or [])
        node = gpu_node(name, gpus=count, product=None, scenario=scenario)
        node["status"]["addresses"][0]["address"] = f"10.0.0.{10 + index}"
        info = node["status"]["nodeInfo"]
        info.update(kubeletVersion=KUBE_VERSION, kubeProxyVersion=KUBE_VERSION, containerRuntimeVersion=runtime)
        nodes.append(node)
    for index, name in enumerate(CPU_NODES, start=len(NODES) + 1):
        node = gpu_node(name, gpus=0)
        node["status"]["addresses"][0]["address"] = f"10.0.0.{10 + index}"
        info = node["status"]["nodeInfo"]
        info.update(kubeletVersion=KUBE_VERSION, kubeProxyVersion=KUBE_VERSION, containerRuntimeVersion=runtime)
        nodes.append(node)
    for name in [*NODES, *CPU_NODES]:
        nodes.append(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40},
            }
        )
    return nodes


class Lab:
    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        directory: Optional[Path] = None,
        log: Callable[[str], None] = print,
        suite: Optional[str] = None,
    ):
        self.prefix = prefix
        self.suite = suite or suite_from_env()
        if self.suite not in images.SUITES:
            raise LabError(f"suite {self.suite!r}: the lab's node images exist for {', '.join(images.SUITES)}")
        self.dir = Path(directory or DEFAULT_DIR).resolve()
        self.kubeconfig = self.dir / "kubeconfig"
        self.log = log

    # -- names ---------------------------------------------------------------------------------

    def container(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def _running(self) -> set[str]:
        listed = _run(["docker", "ps", "-a", "--filter", f"label={LABEL}={self.prefix}", "--format", "{{.Names}} {{.State}}"])
        return {line.split()[0] for line in listed.stdout.splitlines() if line.endswith(" running")}

    def _all_containers(self) -> list[str]:
        listed = _run(["docker", "ps", "-a", "--filter", f"label={LABEL}={self.prefix}", "--format", "{{.Names}}"])
        return listed.stdout.split()

    def suites(self) -> dict[str, str]:
        """container -> the suite of the node image it was started from (its image's tag), for the lab's containers."""
        containers = self._all_containers()
        if not containers:
            return {}
        listed = _run(["docker", "inspect", "--format", "{{.Name}} {{.Config.Image}}", *containers])
        found = {}
        for line in listed.stdout.splitlines():
            name, image = line.split()
            found[name.lstrip("/")] = image.rpartition(":")[2]
        return found

    def _refuse_another_suite(self) -> None:
        """Before anything changes: containers of another suite under this prefix are not converted in place (their
        packages, the API server's Node objects and what site.yml left on them belong to that suite)."""
        other = {name: suite for name, suite in self.suites().items() if suite != self.suite}
        if other:
            listed = ", ".join(f"{name} ({suite})" for name, suite in sorted(other.items()))
            raise LabError(
                f"the lab {self.prefix!r} runs nodes of another suite than the {self.suite} asked for: {listed}; "
                f"remove it first (make demo-down, or KUBEGPU_LAB_PREFIX={self.prefix} python -m tests.support.lab down)"
            )

    # -- up ------------------------------------------------------------------------------------

    def up(self) -> None:
        self._refuse_another_suite()
        self.dir.mkdir(parents=True, exist_ok=True)
        created = images.built_recipe(self.suite) is None
        image = images.image_name(self.suite)
        self.log(f"lab: node image {image}" + (" (debootstrap, a few minutes; removed by make demo-down)" if created else ""))
        images.ensure_image(self.suite)
        if created:
            (self.dir / "created-images").write_text(image + "\n")
        library = fake_nvml.library_dir() / "libnvidia-ml.so.1"
        self.log(f"lab: containerd and runc from Debian {self.suite} (.deb cache)")
        packages = [self._deb("runc"), self._deb("containerd")]
        running = self._running()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(NODES)) as pool:
            jobs = {
                pool.submit(self._node, node, scenario, image, library, packages, self.container(node) in running): node
                for node, scenario in NODES.items()
            }
            for job in concurrent.futures.as_completed(jobs):
                job.result()
        self._server()
        self.wheels()

    def _deb(self, package: str) -> Path:
        debs.fetch(package, self.suite)
        (deb,) = sorted((debs.CACHE / self.suite / package).glob("*.deb"))
        return deb

    def _exec(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run(["docker", "exec", self.container(node), *argv], check=check)

    def _node(self, node: str, scenario: str, image: str, library: Path, packages: list[Path], running: bool) -> None:  # noqa: PLR0917
        name = self.container(node)
        if not running:
            _run(["docker", "rm", "-f", name], check=False)
            self.log(f"lab: {node}: start container {name} ({image}, systemd)")
            _run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    name,
                    "--label",
                    f"{LABEL}={self.prefix}",
                    *images.SYSTEMD_RUN_ARGS,
                    image,
                    "/sbin/init",
                ]
            )
        deadline = time.monotonic() + 120
        while True:
            state = self._exec(node, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise LabError(f"{name}: systemd did not finish booting within 120 s (state {state!r})")
            time.sleep(0.5)
        if self._exec(node, "test", "-x", "/usr/bin/containerd", check=False).returncode != 0:
            self.log(f"lab: {node}: install containerd and runc (dpkg)")
            # not /tmp: trixie's systemd mounts a tmpfs there (tmp.mount), over the directory docker cp writes into
            for deb in packages:
                _run(["docker", "cp", str(deb), f"{name}:{DEB_DROP}/{deb.name}"])
            self._exec(node, "dpkg", "-i", *(f"{DEB_DROP}/{deb.name}" for deb in packages))
            self._exec(node, "rm", "-f", *(f"{DEB_DROP}/{deb.name}" for deb in packages))
        self._exec(node, "systemctl", "enable", "--now", "containerd")
        stamp = hashlib.sha256(library.read_bytes() + fake_nvml.scenario(scenario).read_bytes()).hexdigest()
        if self._exec(node, "cat", STAMP_PATH, check=False).stdout.strip() != stamp:
            self.log(f"lab: {node}: fake NVML ({scenario}) at {LIBRARY_PATH}")
            self._exec(node, "mkdir", "-p", str(Path(SCENARIO_PATH).parent), "/usr/local/lib/fake-nvml")
            _run(["docker", "cp", str(library), f"{name}:{LIBRARY_PATH}"])
            _run(["docker", "cp", str(fake_nvml.scenario(scenario)), f"{name}:{SCENARIO_PATH}"])
            _run(["docker", "cp", str(fake_nvml.HERE / "fake_nvidia_smi.py"), f"{name}:/usr/local/lib/fake-nvml/"])
            _run(["docker", "cp", str(fake_nvml.HERE / "nvidia-smi"), f"{name}:/usr/local/lib/fake-nvml/nvidia-smi"])
            self._exec(node, "ln", "-sf", "/usr/local/lib/fake-nvml/nvidia-smi", "/usr/bin/nvidia-smi")
            self._exec(node, "ldconfig")
            self._exec(node, "sh", "-c", f"echo {stamp} > {STAMP_PATH}")
        self._driver_doubles(node, scenario, stamp)

    def _driver_doubles(self, node: str, scenario: str, nvml_stamp: str) -> None:
        """The driver's life cycle on the node (``tests/support/fake_nvml/fake_driver.py``): modprobe, modinfo and dkms
        doubles in /usr/local/sbin (ahead of /usr/sbin on PATH), a nvidia-persistenced unit that holds the module while
        active, the scenario's driver installed and loaded. Re-done when the doubles or the fake NVML install change."""
        name = self.container(node)
        double = fake_nvml.DRIVER_DOUBLE
        wrappers = "".join(fake_nvml.tool_wrapper(tool) for tool in fake_nvml.DRIVER_TOOLS)
        stamp = hashlib.sha256(
            double.read_bytes() + wrappers.encode() + PERSISTENCED_UNIT.encode() + nvml_stamp.encode()
        ).hexdigest()
        if self._exec(node, "cat", DRIVER_STAMP_PATH, check=False).stdout.strip() == stamp:
            return
        self.log(f"lab: {node}: driver doubles (modprobe, modinfo, dkms, nvidia-persistenced)")
        self._exec(node, "mkdir", "-p", str(Path(fake_nvml.NODE_DRIVER_DOUBLE).parent), str(Path(DRIVER_STAMP_PATH).parent))
        _run(["docker", "cp", str(double), f"{name}:{fake_nvml.NODE_DRIVER_DOUBLE}"])
        for tool in fake_nvml.DRIVER_TOOLS:
            wrapper = f"/usr/local/sbin/{tool}"
            _run(
                ["docker", "exec", "-i", name, "sh", "-c", f"rm -f {wrapper} && cat > {wrapper} && chmod 0755 {wrapper}"],
                input=fake_nvml.tool_wrapper(tool),
            )
        unit = "/etc/systemd/system/nvidia-persistenced.service"
        _run(["docker", "exec", "-i", name, "sh", "-c", f"cat > {unit}"], input=PERSISTENCED_UNIT)
        self._exec(node, "systemctl", "daemon-reload")
        self._exec(node, "systemctl", "enable", "--now", "nvidia-persistenced")
        # the GPUs on the PCI bus, as sysfs shows them (nvidia_driver_sysfs_root in inventory/lab): present when the
        # driver is not loaded too, as on a real node
        with tempfile.TemporaryDirectory() as scratch:
            tree = fake_sysfs.build(Path(scratch) / "sys", fake_nvml.pci_functions(scenario))
            self._exec(node, "rm", "-rf", SYSFS_PATH)
            _run(["docker", "cp", str(tree), f"{name}:{SYSFS_PATH}"])
        self._exec(node, "python3", fake_nvml.NODE_DRIVER_DOUBLE, "initialise", fake_nvml.load(scenario)["driver_version"])
        self._exec(node, "sh", "-c", f"echo {stamp} > {DRIVER_STAMP_PATH}")

    def _server(self) -> None:
        if self.server_running():
            self.log(f"lab: API server already serving ({self.kubeconfig})")
            return
        fixture = self.dir / "nodes.yaml"
        runtime = containerd_runtime_version(debs.version_of("containerd", self.suite))
        fixture.write_text(yaml.safe_dump_all(node_objects(runtime), sort_keys=False))
        self.log("lab: test API server (simulated cluster)")
        _run(
            [
                sys.executable,
                "-m",
                "tests.support.kubeapi",
                "serve",
                "--kubeconfig",
                str(self.kubeconfig),
                "--fixture",
                str(fixture),
                "--version",
                KUBE_VERSION,
                "--ready-controller",
                "--background",
            ],
            cwd=REPO_ROOT,
        )

    def wheels(self) -> None:
        """node_python's pinned wheels on the controller, as an air-gapped site keeps them (the nodes have no index)."""
        defaults = yaml.safe_load((REPO_ROOT / "roles" / "node_python" / "defaults" / "main.yml").read_text())
        target = REPO_ROOT / ".cache" / "wheels" / "node_python"
        wanted = [
            f"tomlkit=={defaults['node_python_tomlkit_version']}",
            f"nvidia-ml-py=={defaults['node_python_nvidia_ml_py_version']}",
        ]
        stamp = target.with_name(target.name + ".stamp")  # beside the directory: node_python copies all of it
        if stamp.is_file() and stamp.read_text() == " ".join(wanted):
            return
        self.log("lab: node_python wheels for the nodes")
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(target),
                *wanted,
            ]
        )
        stamp.write_text(" ".join(wanted))

    def server_running(self) -> bool:
        pid_file = Path(f"{self.kubeconfig}.pid")
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return self.kubeconfig.is_file()

    # -- down ----------------------------------------------------------------------------------

    def down(self) -> None:
        if Path(f"{self.kubeconfig}.pid").exists():
            self.log("lab: stop the API server")
            _run(
                [sys.executable, "-m", "tests.support.kubeapi", "stop", "--kubeconfig", str(self.kubeconfig)],
                check=False,
                cwd=REPO_ROOT,
            )
        containers = self._all_containers()
        if containers:
            self.log(f"lab: remove containers {' '.join(containers)}")
            _run(["docker", "rm", "-f", "-v", *containers])
        created = self.dir / "created-images"
        if created.is_file():
            for image in created.read_text().split():
                self.log(f"lab: remove image {image} (the lab built it)")
                _run(["docker", "image", "rm", image], check=False)
            created.unlink()
        for leftover in ("kubeconfig", "kubeconfig.log", "nodes.yaml"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / leftover).unlink()

    def status(self) -> dict:
        return {
            "suite": self.suite,
            "containers": sorted(self._running()),
            "container_suites": self.suites(),
            "server": self.server_running(),
            "kubeconfig": str(self.kubeconfig),
        }


class SiteRun(NamedTuple):
    rc: int
    seconds: float
    output: str
    recap: dict[str, dict[str, int]]  # host -> {"ok": n, "changed": n, "failed": n, ...}

    @property
    def changed(self) -> int:
        return sum(counts.get("changed", 0) for counts in self.recap.values())


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP lines of ansible-playbook's default output, per host."""
    recap = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, flags=re.M):
        recap[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return recap


def run_site(lab: Lab, playbook: str = "site.yml", *args: str, timeout: float = 3600) -> SiteRun:
    """``ansible-playbook -i inventory/lab playbooks/<playbook>`` against ``lab``, as make demo runs it
    (``charts.ChartsError`` first when the charts the lab installs cannot be had)."""
    env = {
        **os.environ,
        "KUBEGPU_LAB_PREFIX": lab.prefix,
        "KUBEGPU_LAB_DIR": str(lab.dir),
        charts.CHARTS_ENV: str(charts.ensure_charts()),
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": f"{REPO_ROOT / '.collections'}:{REPO_ROOT / '.cache' / 'molecule-collections'}",
        # helm comes from the inventory (kubegpu_helm_binary), not PATH: the command make demo prints works as printed
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), *(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != BIN)]
        ),
        "ANSIBLE_NOCOLOR": "1",
    }
    started = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab", f"playbooks/{playbook}", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    return SiteRun(result.returncode, time.monotonic() - started, output, parse_recap(result.stdout))


# The device stacks the lab can run (kubegpu_device_plugin) and the driver each needs beyond the scenarios' own:
# the scenarios (v100x2, t4, h100x8) carry driver 535.161.08 as many fleets do, and the NVIDIA DRA driver needs 565 or later
# (roles/dra_driver/vars/main.yml), so for it site.yml changes each node's driver through the installer double.
LAB_STACKS = ("vgpu_scheduler", "nvidia_device_plugin", "dra_driver")
DRA_DRIVER_VERSION = "570.172.08"


def check_stack(stack: str) -> str:
    """``stack`` when the lab runs it; LabError naming it and those it runs otherwise."""
    if stack not in LAB_STACKS:
        raise LabError(f"the lab runs the device stacks {', '.join(LAB_STACKS)}, not {stack!r}")
    return stack


def stack_args(stack: str, directory: Path) -> list[str]:
    """The ansible-playbook arguments that run site.yml on the lab with ``stack`` as every GPU node's device stack
    (``make demo STACK=...`` and the lab test pass the same): ``-e kubegpu_device_plugin=<stack>`` and, for
    ``dra_driver``, the driver ``DRA_DRIVER_VERSION`` from a runfile double written into ``directory``
    (tests/support/fake_nvml/README.md; the module build of DKMS is the double's, so no compiler is installed)."""
    args = ["-e", f"kubegpu_device_plugin={check_stack(stack)}"]
    if stack == "dra_driver":
        directory.mkdir(parents=True, exist_ok=True)
        path, sha256 = fake_nvml.runfile(DRA_DRIVER_VERSION, directory)
        args += [
            *("-e", "nvidia_driver_method=runfile", "-e", f"nvidia_driver_version={DRA_DRIVER_VERSION}"),
            *("-e", f"nvidia_driver_runfile_src={path}", "-e", f"nvidia_driver_runfile_sha256={sha256}"),
            *("-e", "nvidia_driver_install_build_packages=false"),
        ]
    return args


def demo_refused_at_stage_0(directory: Path, **env: str) -> str:
    """Run hack/demo (what ``make demo`` runs) with a lab of its own under ``directory`` and ``env`` over the
    environment, expecting it to stop at stage 0, before anything changes (no later stage started, no lab directory
    made): returns its standard error, which says why. AssertionError otherwise."""
    lab_dir = Path(directory) / "lab"
    environment = {
        **os.environ,
        "KUBEGPU_LAB_DIR": str(lab_dir),
        "KUBEGPU_LAB_PREFIX": "kubegpu-demotest-",
        "PYTHON": sys.executable,
        **env,
    }
    argv = [str(REPO_ROOT / "hack" / "demo")]
    demo = subprocess.run(argv, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=False)
    assert demo.returncode != 0, demo.stdout[-2000:]
    assert "stage 1/5" not in demo.stdout and "[1/5]" not in demo.stdout, demo.stdout[-2000:]
    assert not lab_dir.exists()
    return demo.stderr


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.lab", description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("command", choices=("charts", "suite", "up", "down", "status", "report", "wheels", "stack-args"))
    parser.add_argument("--prefix", default=os.environ.get("KUBEGPU_LAB_PREFIX") or DEFAULT_PREFIX)
    parser.add_argument("--dir", default=os.environ.get("KUBEGPU_LAB_DIR") or str(DEFAULT_DIR))
    parser.add_argument("--suite", default=None, help=f"the nodes' Debian suite ({SUITE_ENV}, else {DEFAULT_SUITE})")
    parser.add_argument(
        "--stack", default="vgpu_scheduler", help=f"charts, stack-args: the device stack ({', '.join(LAB_STACKS)})"
    )
    args = parser.parse_args(argv)
    try:
        lab = Lab(args.prefix, Path(args.dir), log=lambda line: print(line, flush=True), suite=args.suite)
        if args.command == "charts":
            # the lab's own chart and the chart of the stack asked for (--stack, make demo STACK=...)
            roles = dict.fromkeys([*charts.REQUIRED_ROLES, check_stack(args.stack)])  # an unknown one before any fetch
            print(charts.ensure_charts(charts=[charts.role_chart(role) for role in roles]))
        elif args.command == "suite":
            print(lab.suite)
        elif args.command == "up":
            lab.up()
        elif args.command == "down":
            lab.down()
        elif args.command == "report":
            print(report.write(lab.dir))
        elif args.command == "wheels":
            lab.wheels()
        elif args.command == "stack-args":
            print("\n".join(stack_args(args.stack, lab.dir / "stack")))
        else:
            print(json.dumps(lab.status(), indent=2))
    except (LabError, charts.ChartsError, images.ImageBuildError, debs.DebFetchError) as error:
        print(f"lab: {error}", file=sys.stderr)
        return 1
    return 0
