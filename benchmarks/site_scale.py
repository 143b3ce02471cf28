"""site.yml's playbooks at fleet scale: facts.yml and cluster.yml on 50 simulated GPU hosts, first run and re-run.

Each host is a ``role_runs.GpuHost`` of tests/support/site_bench.py: this machine through Ansible's ``local``
connection, its Python a wrapper that loads the fake ``libnvidia-ml.so.1`` answering the host's own scenario (the
three scenarios of the lab in turn: 2x V100, 1x T4, 8x H100), so the real ``gpu_facts`` runs once per host. One
test API server (tests/support/kubeapi, in this process) holds the 50 GPU Nodes and an untainted CPU node, as a
kubelet would register them; ``/version`` v1.35.2, its ready controller on; the device stack is the default (HAMi's
real chart, ../shared/upstream/charts, installed by real helm).

Simulated: the GPUs and the cluster. Not run: the node set-up plays (node Python, driver, toolkit: nodes.yml,
which needs real nodes; the lab benchmark measures them on three containers) and validate.yml's smoke pods. So the
rows show what one more host costs the facts play and the controller-side plays: seconds per host, first run and
the re-run that changes nothing (checked: changed=0). Ansible's default of 5 forks, as an operator's run has
unless told otherwise. The times depend on the machine's load (the table says it).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from tests.support.kubeapi.admin import AdminClient
from tests.support.kubeapi.nodes import gpu_node
from tests.support.kubeapi.server import KubeAPIServer, load_objects
from tests.support.site_bench import UPSTREAM_CHARTS, SiteBench

HOSTS = 50
SCENARIOS = ("v100x2", "t4", "h100x8")  # the lab's three nodes, in turn
GPUS = {"v100x2": 2, "t4": 1, "h100x8": 8}
PRODUCTS = {"v100x2": "Tesla-V100-SXM2-16GB", "t4": "Tesla-T4", "h100x8": "NVIDIA-H100-80GB-HBM3"}
PLAYBOOKS = ("facts.yml", "cluster.yml")


class _KubeAPI:
    """What SiteBench needs of the API server: its kubeconfig and admin API (the tests' KubeAPI fixture's shape)."""

    def __init__(self, server: KubeAPIServer, kubeconfig: Path) -> None:
        self.server = server
        self.kubeconfig = kubeconfig
        self.admin = AdminClient(server.url)
        self.url = server.url


def fleet(count: int) -> dict[str, str]:
    """Host (Node) name -> fake NVML scenario."""
    return {f"gpu-node-{index:02d}": SCENARIOS[index % len(SCENARIOS)] for index in range(count)}


def measure(count: int = HOSTS) -> dict:
    chart = UPSTREAM_CHARTS / "hami-2.10.0.tgz"
    if not chart.is_file():
        raise RuntimeError(f"the real HAMi chart is missing: {chart} (KUBEGPU_CHARTS_DIR names another folder)")
    scenarios = fleet(count)
    with tempfile.TemporaryDirectory(prefix="site-scale-") as directory, KubeAPIServer() as server:
        workdir = Path(directory)
        kubeapi = _KubeAPI(server, server.write_kubeconfig(workdir / "kubeconfig"))
        kubeapi.admin.set_version("v1.35.2")
        kubeapi.admin.set_ready_controller(True)
        nodes = [gpu_node(name, gpus=GPUS[s], product=PRODUCTS[s], scenario=s) for name, s in scenarios.items()]
        # an untainted worker without a GPU for HAMi's scheduler and its certificate Jobs (test_site_playbooks' bench)
        load_objects(server.store, [*nodes, gpu_node("cpu-node-1", gpus=0)])
        bench = SiteBench(kubeapi, workdir, scenarios=scenarios)
        rows = {}
        for name in ("first", "second"):
            started = time.monotonic()
            run = bench.run(*PLAYBOOKS)
            seconds = time.monotonic() - started
            if run.rc != 0:
                raise RuntimeError(f"the {name} run failed: {run.failures or run.explain()}")
            if name == "second" and run.changed:
                raise RuntimeError(f"the re-run changed {run.changed_on}")
            rows[name] = {"seconds": seconds, "changed": len(run.changed), "tasks": len(run.records)}
    return {"hosts": count, **rows}


def table(result: dict) -> str:
    hosts = result["hosts"]
    lines = [
        f"site.yml's facts.yml + cluster.yml on {hosts} simulated GPU hosts (local connection, fake NVML each,",
        f"one test API server, 5 forks; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)",
        f"{'run':<30}{'seconds':>10}{'s per host':>12}{'task results':>14}",
    ]
    for name, label in (("first", f"first (changed={result['first']['changed']})"), ("second", "re-run (changed=0)")):
        row = result[name]
        lines.append(f"{label:<30}{row['seconds']:>10.1f}{row['seconds'] / hosts:>12.2f}{row['tasks']:>14}")
    return "\n".join(lines)


def main() -> None:
    print(table(measure(int(os.environ.get("KUBEGPU_BENCH_SITE_HOSTS", HOSTS)))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
