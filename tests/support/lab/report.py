"""The readiness report as one self-contained HTML page: ``report.json`` (gpu_validate) -> ``report.html``.

No external assets: inline CSS, and the chart of GPU memory per node and GPU is inline SVG (one
group of bars per node, one bar per GPU, heights to scale). Every value comes from report.json
(``{"nodes": [{node, gpus: {count, models, memory_mib}, driver_version, default_runtime, labels,
taints, allocatable, smoke: {result, message}}, ...]}``); nothing is made up here.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

CHART_HEIGHT = 200  # pixels of the tallest bar
BAR_WIDTH = 22
BAR_GAP = 4
GROUP_GAP = 36
MARGIN_LEFT = 70
MARGIN_BOTTOM = 60
MARGIN_TOP = 20
COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "skipped": "#9a6700"}

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
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _taint(taint: dict) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


def _node_table(entry: dict) -> str:
    gpus = entry.get("gpus") or {}
    smoke = entry.get("smoke") or {}
    result = str(smoke.get("result") or "unknown")
    memory = ", ".join(f"{mib} MiB" for mib in gpus.get("memory_mib") or [] if mib is not None) or "-"
    rows = [
        ("GPUs", f"{gpus.get('count', 0)} x {', '.join(gpus.get('models') or []) or '-'}"),
        ("GPU memory", memory),
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
    cells += f'<tr><th>Smoke test</th><td class="smoke {_e(result)}">{_e(result)}</td></tr>'
    cells += f"<tr><th>Message</th><td>{_e(smoke.get('message'))}</td></tr>"
    node = _e(entry.get("node"))
    return f'<h2 id="node-{node}">{node}</h2>\n<table class="node" data-node="{node}">{cells}</table>'


def memory_chart(nodes: list[dict]) -> str:
    """Inline SVG: GPU memory (MiB) per node and GPU, bars to scale, each bar titled with its value."""
    values = [mib for entry in nodes for mib in ((entry.get("gpus") or {}).get("memory_mib") or []) if mib]
    top = max(values) if values else 1
    x = MARGIN_LEFT
    parts = []
    for entry in nodes:
        memory = [mib or 0 for mib in (entry.get("gpus") or {}).get("memory_mib") or []]
        start = x
        for index, mib in enumerate(memory):
            height = round(CHART_HEIGHT * mib / top, 1)
            y = MARGIN_TOP + CHART_HEIGHT - height
            parts.append(
                f'<rect class="bar" data-node="{_e(entry.get("node"))}" data-gpu="{index}" data-mib="{mib}" '
                f'x="{x}" y="{y}" width="{BAR_WIDTH}" height="{height}" fill="#0969da">'
                f"<title>{_e(entry.get('node'))} GPU {index}: {mib} MiB</title></rect>"
            )
            x += BAR_WIDTH + BAR_GAP
        if not memory:
            x += BAR_WIDTH
        middle = (start + x - BAR_GAP) / 2
        parts.append(
            f'<text class="node-label" x="{middle}" y="{MARGIN_TOP + CHART_HEIGHT + 20}" text-anchor="middle">'
            f"{_e(entry.get('node'))}</text>"
        )
        parts.append(
            f'<text x="{middle}" y="{MARGIN_TOP + CHART_HEIGHT + 38}" text-anchor="middle" font-size="11">'
            f"{len(memory)} GPU{'s' if len(memory) != 1 else ''}</text>"
        )
        x += GROUP_GAP
    width = x
    left, bottom = MARGIN_LEFT - 6, MARGIN_TOP + CHART_HEIGHT
    axis = (
        f'<line x1="{left}" y1="{bottom}" x2="{width}" y2="{bottom}" stroke="#59636e"/>'
        f'<line x1="{left}" y1="{MARGIN_TOP}" x2="{left}" y2="{bottom}" stroke="#59636e"/>'
        f'<text x="{MARGIN_LEFT - 10}" y="{MARGIN_TOP + 4}" text-anchor="end" font-size="11">{top} MiB</text>'
        f'<text x="{MARGIN_LEFT - 10}" y="{MARGIN_TOP + CHART_HEIGHT}" text-anchor="end" font-size="11">0</text>'
    )
    return (
        f'<svg id="gpu-memory" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{MARGIN_TOP + CHART_HEIGHT + MARGIN_BOTTOM}" role="img" aria-label="GPU memory per node and GPU">'
        f"{axis}{''.join(parts)}</svg>"
    )


def render(report: dict) -> str:
    nodes = report.get("nodes") or []
    summary_rows = "".join(
        f"<tr><td>{_e(e.get('node'))}</td><td>{_e((e.get('gpus') or {}).get('count', 0))}</td>"
        f"<td>{_e(', '.join((e.get('gpus') or {}).get('models') or []) or '-')}</td>"
        f"<td>{_e(e.get('default_runtime') or '-')}</td>"
        f'<td class="{_e((e.get("smoke") or {}).get("result"))}">{_e((e.get("smoke") or {}).get("result"))}</td></tr>'
        for e in nodes
    )
    passed = sum(1 for e in nodes if (e.get("smoke") or {}).get("result") == "passed")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kubegpu.core GPU readiness</title>
<style>{STYLE}</style></head>
<body>
<h1>GPU readiness: {passed} of {len(nodes)} nodes passed</h1>
<table id="summary"><tr><th>Node</th><th>GPUs</th><th>Models</th><th>Default runtime</th><th>Smoke test</th></tr>
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
