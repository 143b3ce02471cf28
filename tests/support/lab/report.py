"""The readiness report as one self-contained HTML page: ``report.json`` (gpu_validate) -> ``report.html``.

No external assets: inline CSS; the chart of GPU memory per node and GPU is a table (one row per GPU, a bar
whose width is to scale, the node's name spanning its rows), so the browser lays out every label and none
can run into another. Every value comes from report.json (``{"nodes": [{node, gpus: {count, models,
memory_mib}, gpu_health: [{index, health, reasons}], driver_version, default_runtime, labels, taints,
allocatable, smoke: {result, message}, dra: {published, allocated} on DRA nodes, checks: [{check, result, message}],
result}, ...]}``); a report from
before ``checks`` shows its smoke test as the node's only check and result. Nothing is made up here.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

CHART_WIDTH = 360  # pixels of the longest bar
COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "skipped": "#9a6700"}

# The chart is an HTML table, not SVG: the browser lays out every name and number, so a long node name
# wraps or widens its column instead of running into its neighbour's (SVG text has no layout).
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
.passed { color: #1a7f37; font-weight: 600; } .failed { color: #cf222e; font-weight: 600; }
.skipped { color: #9a6700; font-weight: 600; }
code { font-size: 0.9em; }
.note { color: #59636e; font-size: 0.9em; }
td.node-label { max-width: 22rem; overflow-wrap: anywhere; }
.gpu-count { display: block; color: #59636e; font-size: 0.85em; }
td.memory { white-space: nowrap; }
.bar { display: inline-block; height: 0.9em; background: #0969da; vertical-align: middle; margin-right: 0.5em; }
table.checks { margin: 0; } table.checks td { border-color: #eaeef2; }
td.message { overflow-wrap: anywhere; max-width: 40rem; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _taint(taint: dict) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


def _health(entry: dict) -> str:
    """report.json's ``gpu_health`` as the Markdown report writes it: ``GPU 0 ok, GPU 1 unhealthy (why)``. (This
    module runs without the collection on ``sys.path``, so it cannot import gpu_readiness' own formatter.)"""
    return ", ".join(
        f"GPU {item.get('index')} {item.get('health') or 'unknown'}"
        + (f" ({'; '.join(item['reasons'])})" if item.get("reasons") else "")
        for item in entry.get("gpu_health") or []
    )


def _node_table(entry: dict) -> str:
    gpus = entry.get("gpus") or {}
    smoke = entry.get("smoke") or {}
    result = str(smoke.get("result") or "unknown")
    memory = ", ".join(f"{mib} MiB" for mib in gpus.get("memory_mib") or [] if mib is not None) or "-"
    rows = [
        ("GPUs", f"{gpus.get('count', 0)} x {', '.join(gpus.get('models') or []) or '-'}"),
        ("GPU memory", memory),
        ("GPU health", _health(entry) or "-"),
        ("Driver", entry.get("driver_version") or "-"),
        ("CUDA (driver)", entry.get("cuda_driver_version") or "-"),
        ("Default runtime", entry.get("default_runtime") or "-"),
        ("Device stack", entry.get("device_plugin") or "-"),
        ("Registered", "yes" if entry.get("registered", True) else "no"),
    ]
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    labels = entry.get("labels") or {}
    cells += (
        "<tr><th>Labels</th><td>"
        + ("<br>".join(f"<code>{_e(k)}={_e(v)}</code>" for k, v in sorted(labels.items())) or "-")
        + "</td></tr>"
    )
    taints = entry.get("taints") or []
    cells += "<tr><th>Taints</th><td>" + ("<br>".join(f"<code>{_e(_taint(t))}</code>" for t in taints) or "-") + "</td></tr>"
    allocatable = entry.get("allocatable") or {}
    cells += (
        "<tr><th>Allocatable</th><td>"
        + ("<br>".join(f"<code>{_e(k)}: {_e(v)}</code>" for k, v in sorted(allocatable.items())) or "-")
        + "</td></tr>"
    )
    cells += _dra_rows(entry.get("dra"))
    cells += f'<tr><th>Smoke test</th><td class="smoke {_e(result)}">{_e(result)}</td></tr>'
    cells += f"<tr><th>Message</th><td>{_e(smoke.get('message'))}</td></tr>"
    overall = node_result(entry)
    cells += f'<tr><th>Result</th><td class="result {_e(overall)}">{_e(overall)}</td></tr>'
    check_rows = "".join(
        f'<tr data-check="{_e(check.get("check"))}"><td>{_e(check.get("check"))}</td>'
        f'<td class="result {_e(check.get("result"))}">{_e(check.get("result"))}</td>'
        f'<td class="message">{_e(check.get("message"))}</td></tr>'
        for check in node_checks(entry)
    )
    cells += f'<tr><th>Checks</th><td><table class="checks">{check_rows}</table></td></tr>'
    node = _e(entry.get("node"))
    return f'<h2 id="node-{node}">{node}</h2>\n<table class="node" data-node="{node}">{cells}</table>'


def _dra_rows(dra: Any) -> str:
    """A node of the DRA driver (report.json's ``dra``): the devices its ResourceSlices publish, and those the
    smoke and selector claims were allocated; nothing for a node of another stack (``dra`` null or absent)."""
    if not isinstance(dra, dict):
        return ""
    published = "<br>".join(
        f'<code data-device="{_e(item.get("name"))}">{_e(item.get("name"))}</code> {_e(item.get("type"))}, '
        f"{_e(item.get('productName'))}, {_e(item.get('memory') or '-')}"
        for item in dra.get("published") or []
    )
    allocated = "<br>".join(
        f'<code data-allocated="{_e(item.get("device"))}">{_e(item.get("device"))}</code> to {_e(item.get("pod"))} '
        f"({_e(item.get('check'))})"
        for item in dra.get("allocated") or []
    )
    return (
        f'<tr><th>DRA devices published</th><td class="dra-published">{published or "-"}</td></tr>'
        f'<tr><th>DRA devices allocated</th><td class="dra-allocated">{allocated or "-"}</td></tr>'
    )


def node_checks(entry: dict) -> list[dict]:
    """The node's checks (gpu_validate's ``checks``); a report from before them has the smoke test alone."""
    if isinstance(entry.get("checks"), list):
        return [check for check in entry["checks"] if isinstance(check, dict)]
    smoke = entry.get("smoke") or {}
    return [{"check": "smoke", "result": smoke.get("result") or "unknown", "message": smoke.get("message")}]


def node_result(entry: dict) -> str:
    """passed, failed or skipped: the report's ``result``, else (an older report) the smoke test's."""
    return str(entry.get("result") or (entry.get("smoke") or {}).get("result") or "unknown")


def memory_chart(nodes: list[dict]) -> str:
    """GPU memory (MiB) per node and GPU: one row per GPU, its bar's width to scale and its value beside it; the
    node's name (and GPU count) spans its rows."""
    values = [mib for entry in nodes for mib in ((entry.get("gpus") or {}).get("memory_mib") or []) if mib]
    top = max(values) if values else 1
    rows = []
    for entry in nodes:
        node = _e(entry.get("node"))
        memory = [mib or 0 for mib in (entry.get("gpus") or {}).get("memory_mib") or []]
        label = (
            f'<td class="node-label" rowspan="{max(len(memory), 1)}">{node}'
            f'<span class="gpu-count">{len(memory)} GPU{"s" if len(memory) != 1 else ""}</span></td>'
        )
        if not memory:
            rows.append(f'<tr data-node="{node}">{label}<td>-</td><td class="memory">-</td></tr>')
        for index, mib in enumerate(memory):
            width = round(CHART_WIDTH * mib / top, 1)
            rows.append(
                f'<tr data-node="{node}">{label if index == 0 else ""}<td class="gpu">GPU {index}</td>'
                f'<td class="memory"><span class="bar" data-node="{node}" data-gpu="{index}" data-mib="{mib}" '
                f'style="width: {width}px" title="{node} GPU {index}: {mib} MiB"></span>{mib} MiB</td></tr>'
            )
    return (
        f'<table id="gpu-memory" aria-label="GPU memory per node and GPU"><tr><th>Node</th><th>GPU</th>'
        f"<th>Memory (longest bar: {top} MiB)</th></tr>{''.join(rows)}</table>"
    )


def _checks_summary(entry: dict) -> str:
    """Each check's name, coloured by its result (the word itself in its title)."""
    return " ".join(
        f'<span class="{_e(check.get("result"))}" title="{_e(check.get("result"))}">{_e(check.get("check"))}</span>'
        for check in node_checks(entry)
    )


def render(report: dict) -> str:
    nodes = report.get("nodes") or []
    summary_rows = "".join(
        f'<tr data-node="{_e(e.get("node"))}"><td>{_e(e.get("node"))}</td><td>{_e((e.get("gpus") or {}).get("count", 0))}</td>'
        f"<td>{_e(', '.join((e.get('gpus') or {}).get('models') or []) or '-')}</td>"
        f"<td>{_e(e.get('default_runtime') or '-')}</td>"
        f'<td class="result {_e(node_result(e))}">{_e(node_result(e))}</td>'
        f"<td>{_checks_summary(e)}</td></tr>"
        for e in nodes
    )
    passed = sum(1 for e in nodes if node_result(e) == "passed")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kubegpu.core GPU readiness</title>
<style>{STYLE}</style></head>
<body>
<h1>GPU readiness: {passed} of {len(nodes)} nodes passed</h1>
<table id="summary"><tr><th>Node</th><th>GPUs</th><th>Models</th><th>Default runtime</th><th>Result</th><th>Checks</th></tr>
{summary_rows}</table>
<h2>GPU memory per node and GPU</h2>
{memory_chart(nodes)}
{"".join(_node_table(e) for e in nodes)}
<p class="note">From report.json written by the kubegpu.core.gpu_validate role.</p>
</body></html>
"""


def write(directory: Path) -> Path:
    """Render ``directory/report.json`` into ``directory/report.html`` and return its path."""
    report = json.loads((directory / "report.json").read_text())
    target = directory / "report.html"
    target.write_text(render(report), encoding="utf-8")
    return target
