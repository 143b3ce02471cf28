"""The lab's report.html, opened in a real headless browser (Debian's chromium through chromium-driver and selenium).

The report.json given to the renderer has gpu_validate's shape (``{"nodes": [...]}``, see the
``kubegpu.core.gpu_readiness`` filter) with the GPUs of the fake NVML scenarios the lab's nodes use;
the end-to-end lab test renders the real one. Nothing here is simulated but those input values.
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
from tests.support.lab.report import CHART_HEIGHT, render

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

    bars = browser.find_elements(By.CSS_SELECTOR, "svg#gpu-memory rect.bar")
    expected = [(e["node"], mib) for e in entries for mib in e["gpus"]["memory_mib"]]
    assert [(b.get_attribute("data-node"), int(b.get_attribute("data-mib"))) for b in bars] == expected
    heights = [b.rect["height"] for b in bars]  # as laid out by the browser
    top = max(mib for _node, mib in expected)
    for (_node, mib), height in zip(expected, heights):
        assert height == pytest.approx(CHART_HEIGHT * mib / top, abs=0.6)
    bottoms = {round(b.rect["y"] + b.rect["height"]) for b in bars}
    assert len(bottoms) == 1  # one baseline
    lefts = [b.rect["x"] for b in bars]
    assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts)  # side by side, in node order
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg#gpu-memory text.node-label")]
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
    assert browser.find_elements(By.CSS_SELECTOR, "svg#gpu-memory rect.bar") == []
