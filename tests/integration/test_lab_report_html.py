"""The lab's report.html, opened in a real headless browser (Debian's chromium through chromium-driver and selenium).

The report.json given to the renderer has gpu_validate's shape (``{"nodes": [...]}``, see the
``kubegpu.core.gpu_readiness`` filter) with the GPUs of the fake NVML scenarios the lab's nodes use, in both
shapes: with the checks per node (``checks: [{check, result, message}]`` and ``result``) and the older one
with the smoke test alone; the end-to-end lab test renders the real one. Nothing here is simulated but those
input values. Readability is judged by the browser's own layout: no two pieces of text on the page may
overlap.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.support import fake_nvml
from tests.support.lab import NODES
from tests.support.lab.report import CHART_WIDTH, render

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromium-driver (hack/apt-packages.txt, make setup) are missing"
)


def report_entries() -> list[dict]:
    entries = []
    for name, scenario in NODES.items():
        devices = fake_nvml.load(scenario)["devices"]
        entries.append(
            {
                "node": name,
                "host": name,
                "device_plugin": "vgpu_scheduler",
                "registered": True,
                "gpus": {
                    "count": len(devices),
                    "models": sorted({d["name"] for d in devices}),
                    "memory_mib": [d["memory_total_mib"] for d in devices],
                },
                "driver_version": fake_nvml.load(scenario)["driver_version"],
                "cuda_driver_version": "12.2",
                "default_runtime": "nvidia",
                "labels": {"gpu": "on", "nvidia.com/gpu.count": str(len(devices)), "<script>": "x&y"},
                "taints": [{"key": "gpu", "value": "", "effect": "NoSchedule"}],
                "allocatable": {"nvidia.com/gpu": str(len(devices))},
                "smoke": {"result": "failed" if name == "gpu-node-2" else "passed", "message": f"pod smoke-{name}", "pod": None},
            }
        )
    return entries


CHECKS = ("daemonsets", "allocatable", "profile", "smoke", "gpu_label")
GPUS = {1: "t4", 2: "v100x2", 8: "h100x8"}  # fake NVML scenarios by GPU count


def checked_entry(name: str, gpus: int, failed: dict[str, str] | None = None) -> dict:
    """A node entry of the report with every check (``failed``: check -> message of those that failed)."""
    scenario = fake_nvml.load(GPUS.get(gpus, "h100x8"))
    devices = (scenario["devices"] * 8)[:gpus]
    failed = failed or {}
    checks = [
        {
            "check": check,
            "result": "failed" if check in failed else "passed",
            "message": failed.get(check, f"{check} of {name}: as expected"),
        }
        for check in CHECKS
    ]
    return {
        "node": name,
        "host": name,
        "device_plugin": "vgpu_scheduler",
        "registered": True,
        "gpus": {
            "count": gpus,
            "models": sorted({d["name"] for d in devices}),
            "memory_mib": [d["memory_total_mib"] for d in devices],
        },
        "driver_version": scenario["driver_version"],
        "cuda_driver_version": "12.2",
        "default_runtime": "nvidia",
        "labels": {"gpu": "on", "nvidia.com/gpu.count": str(gpus)},
        "taints": [{"key": "gpu", "value": "", "effect": "NoSchedule"}],
        "allocatable": {"nvidia.com/gpu": str(gpus * 10)},
        "smoke": {"result": "failed" if "smoke" in failed else "passed", "message": failed.get("smoke", "ran"), "pod": None},
        "checks": checks,
        "result": "failed" if failed else "passed",
    }


# Node names as long as real fleets have them (a DNS name is a valid node name), GPU counts from 1 to 8.
LONG = "gpu-worker-{:02d}.rack-b.eu-west-1.compute.internal"
LAYOUTS = {
    "1 node, 8 GPUs": [(LONG.format(1), 8)],
    "3 nodes, 1, 2 and 8 GPUs": [(LONG.format(1), 1), (LONG.format(2), 2), (LONG.format(3), 8)],
    "12 nodes, 1 to 8 GPUs": [(LONG.format(n), 1 + n % 8) for n in range(12)],
}

# Every piece of text the page shows, as the browser laid it out (one rectangle per line box of each text
# node; SVG text elements by their box), and the pairs of them that overlap.
OVERLAPS = """
const boxes = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (!node.textContent.trim() || node.parentElement.closest('title, style')) continue;
  const range = document.createRange();
  range.selectNodeContents(node);
  const svg = node.parentElement.closest('svg');
  const rects = svg ? [node.parentElement.getBoundingClientRect()] : range.getClientRects();
  for (const r of rects) {
    if (r.width > 0 && r.height > 0) {
      boxes.push({text: node.textContent.trim(), x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height});
    }
  }
}
const overlaps = [];
for (let i = 0; i < boxes.length; i++) {
  for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    if (a.x < b.x + b.w - 0.5 && b.x < a.x + a.w - 0.5 && a.y < b.y + b.h - 0.5 && b.y < a.y + a.h - 0.5) {
      overlaps.push([a.text, b.text]);
    }
  }
}
return {count: boxes.length, overlaps: overlaps.slice(0, 10)};
"""


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_report_page_renders_a_table_per_node_and_a_memory_chart_to_scale(browser, tmp_path: Path):
    entries = report_entries()
    page = tmp_path / "report.html"
    page.write_text(render({"nodes": entries}), encoding="utf-8")
    browser.get(page.as_uri())

    assert browser.title == "kubegpu.core GPU readiness"
    assert browser.find_element(By.TAG_NAME, "h1").text == "GPU readiness: 2 of 3 nodes passed"
    tables = browser.find_elements(By.CSS_SELECTOR, "table.node")
    assert [t.get_attribute("data-node") for t in tables] == list(NODES)
    third = tables[2].text
    assert "8 x NVIDIA H100 80GB HBM3" in third
    assert "gpu:NoSchedule" in third
    assert "<script>=x&y" in tables[0].text  # escaped, shown as text
    smoke = browser.find_element(By.CSS_SELECTOR, 'table[data-node="gpu-node-2"] td.smoke')
    assert (smoke.text, smoke.value_of_css_property("color")) == ("failed", "rgba(207, 34, 46, 1)")

    bars = browser.find_elements(By.CSS_SELECTOR, "#gpu-memory .bar")
    expected = [(e["node"], mib) for e in entries for mib in e["gpus"]["memory_mib"]]
    assert [(b.get_attribute("data-node"), int(b.get_attribute("data-mib"))) for b in bars] == expected
    widths = [b.rect["width"] for b in bars]  # as laid out by the browser
    top = max(mib for _node, mib in expected)
    for (_node, mib), width in zip(expected, widths):
        assert width == pytest.approx(CHART_WIDTH * mib / top, abs=0.6)
    lefts = {round(b.rect["x"]) for b in bars}
    assert len(lefts) == 1  # one baseline
    tops = [b.rect["y"] for b in bars]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)  # one under the other, in node order
    labels = [t.text.splitlines()[0] for t in browser.find_elements(By.CSS_SELECTOR, "#gpu-memory td.node-label")]
    assert labels == list(NODES)

    # self-contained: the browser fetched nothing but the page itself
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources == []
    assert browser.execute_script("return document.querySelectorAll('link, script, img, [src], [href]').length") == 0


def test_report_without_nodes_still_renders(browser, tmp_path: Path):
    page = tmp_path / "report.html"
    page.write_text(render({"nodes": []}), encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.find_element(By.TAG_NAME, "h1").text == "GPU readiness: 0 of 0 nodes passed"
    assert browser.find_elements(By.CSS_SELECTOR, "#gpu-memory .bar") == []


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_no_two_pieces_of_text_overlap_with_long_node_names_and_1_to_8_gpus(browser, tmp_path: Path, layout):
    entries = [checked_entry(name, gpus) for name, gpus in LAYOUTS[layout]]
    page = tmp_path / "report.html"
    page.write_text(render({"nodes": entries}), encoding="utf-8")
    browser.get(page.as_uri())
    found = browser.execute_script(OVERLAPS)
    assert found["count"] > 20 * len(entries), found  # the page's text was found
    assert found["overlaps"] == [], f"{layout}: overlapping text {found['overlaps']}"
    # every node's name is in the chart, whole
    chart = browser.find_element(By.ID, "gpu-memory").text
    assert all(name in chart for name, _gpus in LAYOUTS[layout]), chart


def test_each_node_shows_its_checks_and_a_failed_check_fails_the_node(browser, tmp_path: Path):
    entries = [
        checked_entry("gpu-node-1", 2),
        checked_entry("gpu-node-2", 1, {"allocatable": "nvidia.com/gpu is 1, the configuration implies 10"}),
        checked_entry("gpu-node-3", 8),
    ]
    entries[2]["checks"][2] = {"check": "profile", "result": "skipped", "message": "OpenFaaS is not enabled"}
    page = tmp_path / "report.html"
    page.write_text(render({"nodes": entries}), encoding="utf-8")
    browser.get(page.as_uri())

    assert browser.find_element(By.TAG_NAME, "h1").text == "GPU readiness: 2 of 3 nodes passed"
    for entry in entries:
        rows = browser.find_elements(By.CSS_SELECTOR, f'table[data-node="{entry["node"]}"] table.checks tr[data-check]')
        shown = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
        assert shown == [[c["check"], c["result"], c["message"]] for c in entry["checks"]], shown
    failed = browser.find_element(By.CSS_SELECTOR, 'table[data-node="gpu-node-2"] tr[data-check="allocatable"] td.result')
    assert (failed.text, failed.value_of_css_property("color")) == ("failed", "rgba(207, 34, 46, 1)")
    summary = {
        row.find_elements(By.TAG_NAME, "td")[0].text: row.find_element(By.CSS_SELECTOR, "td.result").text
        for row in browser.find_elements(By.CSS_SELECTOR, "table#summary tr[data-node]")
    }
    assert summary == {"gpu-node-1": "passed", "gpu-node-2": "failed", "gpu-node-3": "passed"}
    # the summary names the failed check of the failed node
    assert "allocatable" in browser.find_element(By.CSS_SELECTOR, 'table#summary tr[data-node="gpu-node-2"]').text


def test_a_report_without_checks_shows_the_smoke_test_as_the_only_check(browser, tmp_path: Path):
    entries = report_entries()  # the older shape: no checks, no result
    page = tmp_path / "report.html"
    page.write_text(render({"nodes": entries}), encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.find_element(By.TAG_NAME, "h1").text == "GPU readiness: 2 of 3 nodes passed"
    for entry in entries:
        rows = browser.find_elements(By.CSS_SELECTOR, f'table[data-node="{entry["node"]}"] table.checks tr[data-check]')
        shown = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
        assert shown == [["smoke", entry["smoke"]["result"], entry["smoke"]["message"]]], shown
