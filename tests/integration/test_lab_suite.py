"""The lab's Debian suite (``KUBEGPU_LAB_SUITE``, ``make demo SUITE=...``): the Node objects' containerd version taken
from the suite's real containerd, a suite without a node image refused by ``make demo`` before anything changes, and a
lab already up with another suite refused by ``up()`` before anything changes. The full lab on a suite: test_lab.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import debs, images, upstream
from tests.support.lab import LABEL, REPO_ROOT, SUITE_ENV, Lab, LabError, containerd_runtime_version, node_objects


@pytest.mark.parametrize("suite", images.SUITES)
def test_the_nodes_report_the_containerd_version_of_the_suites_real_binary(suite):
    root = debs.fetch("containerd", suite)
    # Debian's containerd --version: "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1"
    printed = subprocess.run([str(root / "usr" / "bin" / "containerd"), "--version"], capture_output=True, text=True, check=True)
    upstream_version, package_version = printed.stdout.split()[2:4]
    assert package_version == debs.version_of("containerd", suite)
    runtime = containerd_runtime_version(package_version)
    assert runtime == f"containerd://{upstream_version.split('~')[0]}"
    nodes = [obj for obj in node_objects(runtime) if obj["kind"] == "Node"]
    assert {node["status"]["nodeInfo"]["containerRuntimeVersion"] for node in nodes} == {runtime}


def test_make_demo_refuses_a_suite_without_a_node_image_before_changing_anything(tmp_path):
    env = {
        **os.environ,
        "KUBEGPU_CHARTS_DIR": str(upstream.CHARTS),
        "KUBEGPU_LAB_DIR": str(tmp_path / "lab"),
        "KUBEGPU_LAB_PREFIX": "kubegpu-suitetest-",
        SUITE_ENV: "sid",
        "PYTHON": sys.executable,
    }
    demo = subprocess.run([str(REPO_ROOT / "hack" / "demo")], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    assert demo.returncode != 0
    assert f"lab: {SUITE_ENV}='sid': the lab's node images exist for {', '.join(images.SUITES)}" in demo.stderr
    assert "stage 1/5" not in demo.stdout and "[1/5]" not in demo.stdout
    assert not (tmp_path / "lab").exists()
    # make demo SUITE=... reaches hack/demo as KUBEGPU_LAB_SUITE
    dry = subprocess.run(["make", "-n", "demo", "SUITE=trixie"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert dry.stdout.splitlines()[-1] == f"{SUITE_ENV}=trixie hack/demo"


@pytest.mark.skipif(
    subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0,
    reason="no Docker daemon answers (make docker-daemon)",
)
def test_a_lab_of_another_suite_is_refused_before_anything_changes(tmp_path):
    if images.built_recipe("bookworm") is None:
        pytest.skip("no kubegpu-node:bookworm image (make node-images)")
    prefix = f"kubegpu-suitetest-{os.getpid()}-"
    name = f"{prefix}gpu-node-1"
    # a node of a bookworm lab as up() leaves it (its label and image); created, not started: nothing needs to run
    subprocess.run(
        ["docker", "create", "--name", name, "--label", f"{LABEL}={prefix}", images.image_name("bookworm"), "/sbin/init"],
        capture_output=True,
        check=True,
    )
    lab = Lab(prefix, tmp_path / "lab", log=lambda _line: None, suite="trixie")
    try:
        assert lab.status()["container_suites"] == {name: "bookworm"}
        with pytest.raises(LabError) as refused:
            lab.up()
        message = str(refused.value)
        assert f"{name} (bookworm)" in message and "the trixie asked for" in message and "make demo-down" in message
        assert not (tmp_path / "lab").exists()
        state = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Status}}", name], capture_output=True, text=True, check=True
        )
        assert state.stdout.strip() == "created"
    finally:
        lab.down()
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{prefix}"], capture_output=True, text=True, check=True)
    assert left.stdout == ""
