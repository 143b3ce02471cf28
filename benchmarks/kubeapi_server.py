"""The test API server's own CPU per request, at fleet scale (issue 25).

The server (tests/support/kubeapi) runs in a child process with 5,000 generated nodes; this process sends
(a) 10 metadata-only LIST pages of 500 nodes (``PartialObjectMetadataList``, as node_labels lists) and
(b) 5,000 merge PATCHes of ``metadata.labels`` from 16 threads (each with the metadata-only Accept node_labels
sends), and reads the child's CPU time (user + system, /proc/<pid>/stat) around each phase: milliseconds of
server CPU per LIST page and per PATCH. The client's CPU is not counted. Linux only.

    .venv/bin/python -m benchmarks.kubeapi_server [--nodes 5000] [--patches 5000] [--threads 16]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import time

import urllib3

from tests.support.kubeapi.nodes import generate_nodes
from tests.support.kubeapi.server import KubeAPIServer, load_objects

METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
PAGE = 500


def _serve(nodes: int, ready: multiprocessing.connection.Connection) -> None:
    server = KubeAPIServer().start()
    load_objects(server.store, generate_nodes(nodes, prefix="bench-"))
    ready.send(server.url)
    ready.recv()  # until the parent is done
    server.stop()


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--patches", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--pages", type=int, default=10)
    args = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_serve, args=(args.nodes, child), daemon=True)
    process.start()
    url = parent.recv()
    pool = urllib3.PoolManager(maxsize=args.threads)
    names: list[str] = []
    try:
        cpu, wall = _cpu(process.pid), time.perf_counter()
        token = ""
        pages = 0
        while pages < args.pages:
            pages += 1
            query = f"limit={PAGE}" + (f"&continue={token}" if token else "")
            answer = pool.request("GET", f"{url}/api/v1/nodes?{query}", headers={"Accept": METADATA_LIST_ACCEPT})
            assert answer.status == 200, answer.data[:300]
            listed = json.loads(answer.data)
            assert listed["kind"] == "PartialObjectMetadataList"
            names.extend(item["metadata"]["name"] for item in listed["items"])
            token = listed["metadata"].get("continue", "")
            if not token:
                break
        list_cpu, list_wall = _cpu(process.pid) - cpu, time.perf_counter() - wall
        targets = [names[i % len(names)] for i in range(args.patches)]

        def patch(index_name: tuple[int, str]) -> None:
            index, name = index_name
            body = json.dumps({"metadata": {"labels": {"bench.kubegpu.io/a": str(index)}}}).encode()
            answer = pool.request(
                "PATCH",
                f"{url}/api/v1/nodes/{name}",
                body=body,
                headers={"Content-Type": "application/merge-patch+json", "Accept": METADATA_ACCEPT},
            )
            assert answer.status == 200, answer.data[:300]

        cpu, wall = _cpu(process.pid), time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.threads) as executor:
            list(executor.map(patch, enumerate(targets)))
        patch_cpu, patch_wall = _cpu(process.pid) - cpu, time.perf_counter() - wall
    finally:
        parent.send("done")
        process.join(10)
    load = os.getloadavg()
    print(f"nodes {args.nodes}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    per_page = 1000 * list_cpu / pages
    print(f"LIST page ({PAGE}, metadata only): {per_page:.1f} ms server CPU ({pages} pages, {list_wall:.2f} s wall)")
    print(
        f"PATCH (merge, labels): {1000 * patch_cpu / len(targets):.3f} ms server CPU "
        f"({len(targets)} from {args.threads} threads, {patch_wall:.2f} s wall)"
    )


if __name__ == "__main__":
    main()
