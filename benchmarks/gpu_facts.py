"""gpu_facts gather time on the fake 8xH100 node, against ``ansible.builtin.setup`` with ``gather_subset=min``.

Both are whole ``ansible localhost -m ...`` processes on this host, run
alternately, several times each; the table gives median, min and max wall time
and the ratio of medians. Two more rows time the NVML pass alone: in-process
(``_nvml.gather``, what ``timeout=0`` runs) and in the forked child the module
uses by default (``_nvml.gather_bounded``, killed after ``timeout``), so the cost
of bounding a hang is measured.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from tests.support import fake_nvml
from tests.support.adhoc import BIN, REPO_ROOT, ansible_env

RUNS = int(os.environ.get("KUBEGPU_BENCH_RUNS", "9"))
SCENARIO = "h100x8"

NVML_PASS = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.kubegpu.core.plugins.module_utils import _nvml
times = {"in_process": [], "child": []}
for _run in range(int(sys.argv[2])):
    for key, gather in (("in_process", _nvml.gather), ("child", lambda: _nvml.gather_bounded(30))):
        start = time.perf_counter()
        facts = gather()
        times[key].append(time.perf_counter() - start)
        assert len(facts["devices"]) == 8, facts
print(json.dumps(times))
"""


def _ansible(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """Wall time of one whole ``ansible localhost`` run, and the result it printed."""
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "ansible"), "localhost", *args], capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    head, _sep, payload = proc.stdout.strip().partition(" => ")
    if proc.returncode != 0 or head != "localhost | SUCCESS":
        raise SystemExit(f"benchmark run failed: ansible localhost {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    return elapsed, json.loads(payload)


def measure(runs: int = RUNS) -> list[tuple[str, list[float]]]:
    # oneline: one "localhost | SUCCESS => {...}" line to check per run
    oneline = {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.oneline"}
    fake_env = ansible_env({**fake_nvml.environment(SCENARIO), **oneline})
    plain_env = ansible_env(oneline)
    gpu_args = ["-m", "kubegpu.core.gpu_facts", "-a", json.dumps({"sources": ["nvml", "pci"]})]
    setup_args = ["-m", "ansible.builtin.setup", "-a", "gather_subset=min"]
    # one warm-up each (compiled module caches, page cache), which also proves the
    # module saw the fake node: a run that found no GPU would time the wrong thing
    _elapsed, warm_up = _ansible(gpu_args, fake_env)
    if warm_up["ansible_facts"]["gpu"]["count"] != 8:
        raise SystemExit(f"gpu_facts did not see the 8 fake H100s: {warm_up['ansible_facts']['gpu']}")
    _ansible(setup_args, plain_env)
    gpu_times, setup_times = [], []
    for _run in range(runs):
        gpu_times.append(_ansible(gpu_args, fake_env)[0])
        setup_times.append(_ansible(setup_args, plain_env)[0])
    proc = subprocess.run(
        [sys.executable, "-c", NVML_PASS, str(REPO_ROOT / ".collections"), str(runs)],
        capture_output=True,
        text=True,
        env={**os.environ, **fake_nvml.environment(SCENARIO)},
        check=True,
    )
    nvml_times = json.loads(proc.stdout)
    return [
        ("ansible -m kubegpu.core.gpu_facts (8xH100 fake NVML)", gpu_times),
        ("ansible -m ansible.builtin.setup gather_subset=min", setup_times),
        ("NVML pass alone, in-process (timeout=0, 8xH100)", nvml_times["in_process"]),
        ("NVML pass alone, forked child (default, 8xH100)", nvml_times["child"]),
    ]


def table(rows: list[tuple[str, list[float]]]) -> str:
    baseline = statistics.median(rows[1][1])
    lines = [
        f"{'gpu_facts gather time':<54} {'runs':>4} {'median s':>9} {'min s':>8} {'max s':>8} {'vs setup':>8}",
        "-" * 96,
    ]
    for name, times in rows:
        median = statistics.median(times)
        lines.append(f"{name:<54} {len(times):>4} {median:>9.4f} {min(times):>8.4f} {max(times):>8.4f} {median / baseline:>8.4f}")
    return "\n".join(lines)


def main() -> None:
    print(table(measure()))


if __name__ == "__main__":
    main()
