"""The lab's site.yml: first run (a fresh lab) and second run (nothing to change), and their ratio.

A fresh lab (its own container prefix ``kubegpu-bench-``, removed afterwards) on this machine: three
node containers with real containerd, simulated GPUs and API server (tests/support/lab). The target
for the ratio second/first is at most 0.4. The times depend on the machine's load (say so when quoting them).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from tests.support.lab import Lab, run_site

TARGET = 0.4


def measure(prefix: str = "kubegpu-bench-") -> dict:
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as directory:
        lab = Lab(prefix, Path(directory), log=lambda _line: None)
        lab.down()
        try:
            lab.up()
            first = run_site(lab)
            if first.rc != 0:
                raise RuntimeError(f"site.yml failed on the lab:\n{first.output[-4000:]}")
            second = run_site(lab)
            if second.rc != 0 or second.changed:
                raise RuntimeError(f"the second site.yml run failed or changed {second.changed} things:\n{second.output[-4000:]}")
        finally:
            lab.down()
    return {"first": first.seconds, "second": second.seconds, "changed_first": first.changed, "load": os.getloadavg()[0]}


def table(row: dict) -> str:
    ratio = row["second"] / row["first"]
    lines = [
        "site.yml on the lab (3 node containers, simulated GPUs and API server;"
        f" load average {row['load']:.1f} on {os.cpu_count()} CPUs)",
        f"{'run':<34}{'seconds':>10}",
        f"{'first (fresh lab, changed=' + str(row['changed_first']) + ')':<34}{row['first']:>10.1f}",
        f"{'second (changed=0)':<34}{row['second']:>10.1f}",
        f"{'ratio second/first (target <= 0.4)':<34}{ratio:>10.2f}{'' if ratio <= TARGET else '  ABOVE TARGET'}",
    ]
    return "\n".join(lines)


def main() -> None:
    print(table(measure()))
    sys.stdout.flush()
