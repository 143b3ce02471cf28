"""The lab's Debian suite (``KUBEGPU_LAB_SUITE``, ``make demo SUITE=...``): the Node objects' containerd version taken
from the suite's real containerd, a suite without a node image refused by ``make demo`` before anything changes, and a
lab already up with another suite refused by ``up()`` before anything changes. The full lab on a suite: test_lab.py."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support import debs, fake_nvml, images, upstream
from tests.support.lab import (
    DRA_DRIVER_VERSION,
    LABEL,
    REPO_ROOT,
    SUITE_ENV,
    Lab,
    LabError,
    containerd_runtime_version,
    demo_refused_at_stage_0,
    node_objects,
    stack_args,
)


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
    stderr = demo_refused_at_stage_0(tmp_path, KUBEGPU_CHARTS_DIR=str(upstream.CHARTS), **{SUITE_ENV: "sid"})
    assert f"lab: {SUITE_ENV}='sid': the lab's node images exist for {', '.join(images.SUITES)}" in stderr
    # make demo SUITE=... reaches hack/demo as KUBEGPU_LAB_SUITE
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", "SUITE=trixie"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
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


def test_make_demo_stack_passes_the_stack_and_refuses_an_unknown_one_before_changing_anything(tmp_path):
    """make demo STACK=... (KUBEGPU_LAB_STACK): the stack reaches site.yml as kubegpu_device_plugin; dra_driver brings
    the nodes a driver the DRA driver supports (NVIDIA: 565 or later) through the installer double; a stack the lab
    does not run is refused at stage 0, before the lab directory or any container exists."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", "STACK=dra_driver"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert dry.stdout.splitlines()[-1] == "KUBEGPU_LAB_STACK=dra_driver hack/demo"
    args = stack_args("dra_driver", tmp_path)
    assert args[:2] == ["-e", "kubegpu_device_plugin=dra_driver"]
    assert int(DRA_DRIVER_VERSION.partition(".")[0]) >= 565 and f"nvidia_driver_version={DRA_DRIVER_VERSION}" in args
    (tmp_path / "again").mkdir()
    runfile, sha256 = fake_nvml.runfile(DRA_DRIVER_VERSION, tmp_path / "again")
    assert f"nvidia_driver_runfile_src={tmp_path / runfile.name}" in args
    assert f"nvidia_driver_runfile_sha256={sha256}" in args  # the same double, so a re-run of make demo changes nothing
    assert stack_args("vgpu_scheduler", tmp_path) == ["-e", "kubegpu_device_plugin=vgpu_scheduler"]

    stderr = demo_refused_at_stage_0(tmp_path, KUBEGPU_CHARTS_DIR=str(upstream.CHARTS), KUBEGPU_LAB_STACK="aws_vgpu_plugin")
    assert "lab: the lab runs the device stacks vgpu_scheduler, nvidia_device_plugin, dra_driver, not 'aws_vgpu_plugin'" in stderr
