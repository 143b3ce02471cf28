"""node_labels on a fleet, against kubernetes.core.k8s looped per node.

One test API server (tests/support/kubeapi, in this process) that adds 5 ms to every request, as a
remote API server's round trip would. Every row is one whole ``ansible-playbook`` run:

- (a) ``kubegpu.core.node_labels`` setting 4 labels on 200 nodes in one task;
- (b) the same labels with ``kubernetes.core.k8s`` (``state: patched``) looped over the 200 nodes:
  kubernetes.core comes from the ``ansible`` package, installed only into a separate benchmark
  venv (``.cache/bench-venv``), never a requirement of the collection;
- our module on 1,000 and 5,000 nodes: every node differs, then 10 % differ, then none (the no-op
  re-run, which must send only the LIST pages and no PATCH).

Each run's result is checked (every node carries the labels, the PATCH count equals the nodes that
differ) before its time is reported; requests are the server's own counters.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from tests.support.adhoc import BIN, REPO_ROOT, ansible_env
from tests.support.kubeapi.admin import AdminClient
from tests.support.kubeapi.nodes import generate_nodes
from tests.support.kubeapi.server import KubeAPIServer, load_objects

LATENCY = 0.005
PAGE = 500  # node_labels lists nodes in pages of 500
BENCH_VENV = Path(os.environ.get("KUBEGPU_BENCH_VENV", REPO_ROOT / ".cache" / "bench-venv"))
BENCH_REQUIREMENTS = ["ansible>=10", "kubernetes>=24.2.0"]
PREFIX = "bench.kubegpu.io/"


def ensure_bench_venv() -> Path:
    """The benchmark venv with the ``ansible`` package (for kubernetes.core); created once."""
    stamp = BENCH_VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != json.dumps(BENCH_REQUIREMENTS):
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "--quiet", *BENCH_REQUIREMENTS], check=True)
        stamp.write_text(json.dumps(BENCH_REQUIREMENTS))
    return BENCH_VENV / "bin"


def labels_for(index: int, generation: int, differ_every: int) -> dict[str, str]:
    """4 labels; in generation 2 every ``differ_every``-th node gets a new value of one of them."""
    changed = generation > 1 and index % differ_every == 0
    return {f"{PREFIX}a": "1", f"{PREFIX}b": "2", f"{PREFIX}c": "3", f"{PREFIX}d": "changed" if changed else "4"}


class Bench:
    def __init__(self) -> None:
        self.server = KubeAPIServer().start()
        self.scratch = Path(tempfile.mkdtemp(prefix="kubegpu-bench-"))
        self.kubeconfig = self.server.write_kubeconfig(self.scratch / "kubeconfig")
        self.admin = AdminClient(self.server.url)

    def close(self) -> None:
        self.server.stop()

    def fleet(self, count: int) -> list[str]:
        self.admin.reset()
        nodes = generate_nodes(count, prefix="bench-")
        # straight into the in-process store: a YAML upload of 5,000 nodes is slow on a busy machine
        load_objects(self.server.store, nodes)
        self.admin.set_latency(LATENCY)
        return [node["metadata"]["name"] for node in nodes]

    def _playbook(self, binary: Path, tasks: list[dict], name: str) -> tuple[float, dict[str, int]]:
        playbook = self.scratch / f"{name}.yml"
        playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False))
        self.admin.reset_counters()
        start = time.perf_counter()
        proc = subprocess.run(
            [str(binary), str(playbook)],
            capture_output=True,
            text=True,
            env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal"}),
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"benchmark run {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        counters = self.admin.counters()
        return elapsed, counters

    def labelled(self, names: list[str], generation: int, differ_every: int) -> None:
        """Check the end state: every node carries its 4 labels (read without latency)."""
        self.admin.set_latency(0)
        live = {item["metadata"]["name"]: item["metadata"]["labels"] for item in self._list_nodes()}
        for index, name in enumerate(names):
            wanted = labels_for(index, generation, differ_every)
            if any(live[name].get(key) != value for key, value in wanted.items()):
                raise SystemExit(f"benchmark check: node {name} lacks its labels: {live[name]}")
        self.admin.set_latency(LATENCY)

    def _list_nodes(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.server.url}/api/v1/nodes", timeout=60) as response:
            return json.loads(response.read())["items"]

    def ours(self, names: list[str], generation: int, differ_every: int, label: str) -> dict:
        nodes = [{"name": name, "labels": labels_for(index, generation, differ_every)} for index, name in enumerate(names)]
        task = {"kubegpu.core.node_labels": {"kubeconfig": str(self.kubeconfig), "nodes": nodes}}
        elapsed, counters = self._playbook(BIN / "ansible-playbook", [task], label)
        self.labelled(names, generation, differ_every)
        return {"name": label, "nodes": len(names), "seconds": elapsed, "counters": counters}

    def looped(self, bench_bin: Path, names: list[str]) -> dict:
        task = {
            "kubernetes.core.k8s": {
                "kubeconfig": str(self.kubeconfig),
                "state": "patched",
                "definition": {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": "{{ item.0 }}", "labels": "{{ item.1 }}"},
                },
            },
            "loop": [[name, labels_for(index, 1, 1)] for index, name in enumerate(names)],
        }
        label = f"(b) kubernetes.core.k8s looped, {len(names)} nodes"
        elapsed, counters = self._playbook(bench_bin / "ansible-playbook", [task], "looped")
        self.labelled(names, 1, 1)
        return {"name": label, "nodes": len(names), "seconds": elapsed, "counters": counters}


def _check_cost(row: dict, differ: int) -> None:
    pages = math.ceil(row["nodes"] / PAGE)
    counters = row["counters"]
    expected = {"list nodes": pages, **({"patch nodes": differ} if differ else {})}
    if counters != expected:
        raise SystemExit(f"benchmark check: {row['name']} sent {counters}, expected {expected}")


def measure(
    compare_nodes: int = 200, fleets: tuple[int, ...] = (1000, 5000), differ_every: int = 10, progress: bool = False
) -> list[dict]:
    bench_bin = ensure_bench_venv()
    bench = Bench()
    rows: list[dict] = []
    try:
        # warm-up (not reported): the first ansible-playbook of a run also compiles and caches
        bench.ours(bench.fleet(4), 1, differ_every, "warm-up")
        names = bench.fleet(compare_nodes)
        ours = bench.ours(names, 1, differ_every, f"(a) kubegpu.core.node_labels, {compare_nodes} nodes, one task")
        _check_cost(ours, compare_nodes)
        rows.append(ours)
        _progress(progress, ours)
        names = bench.fleet(compare_nodes)
        rows.append(bench.looped(bench_bin, names))
        _progress(progress, rows[-1])
        for count in fleets:
            names = bench.fleet(count)
            differ = len(range(0, count, differ_every))
            for generation, label, expect in (
                (1, "all differ", count),
                (2, f"{differ} differ", differ),
                (2, "no-op re-run", 0),
            ):
                row = bench.ours(names, generation, differ_every, f"node_labels, {count} nodes, {label}")
                _check_cost(row, expect)
                row["differ"] = expect
                rows.append(row)
                _progress(progress, row)
    finally:
        bench.close()
    rows[0]["differ"] = rows[1]["differ"] = compare_nodes
    return rows


def _progress(enabled: bool, row: dict) -> None:
    if enabled:
        print(f"  ... {row['name']}: {row['seconds']:.2f} s, {row['counters']}", file=sys.stderr, flush=True)


def table(rows: list[dict]) -> str:
    lines = [
        f"API server latency {LATENCY * 1000:.0f} ms per request; wall time of one ansible-playbook run",
        f"{'run':<58} {'nodes':>6} {'differ':>6} {'wall s':>8} {'requests':>8} {'LIST':>5} {'PATCH':>6}",
        "-" * 103,
    ]
    for row in rows:
        counters = row["counters"]
        lists = counters.get("list nodes", 0)
        patches = counters.get("patch nodes", 0)
        total = sum(counters.values())
        lines.append(
            f"{row['name']:<58} {row['nodes']:>6} {row['differ']:>6} {row['seconds']:>8.2f} {total:>8} {lists:>5} {patches:>6}"
        )
    ratio = rows[1]["seconds"] / rows[0]["seconds"]
    lines.append(f"ratio (b)/(a): {ratio:.1f}x (target >= 30)")
    return "\n".join(lines)


def main() -> None:
    print(table(measure(progress=True)))


if __name__ == "__main__":
    main()
