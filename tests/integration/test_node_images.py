"""The Debian node images (tests/support/images) are real Debian systems that boot
systemd as PID 1 in a container on this machine, and are built once per recipe.
Nothing is simulated; each test runs a container of the image."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from tests.support import images

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def docker_daemon():
    subprocess.run([str(images.REPO_ROOT / "hack" / "docker-daemon")], check=True)


def _docker(*argv: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(params=images.SUITES)
def node(request):
    image = images.ensure_image(request.param)
    name = f"kubegpu-test-{request.param}-{uuid.uuid4().hex[:8]}"
    started = _docker("run", "--detach", "--name", name, *images.SYSTEMD_RUN_ARGS, image)
    assert started.returncode == 0, started.stderr
    yield request.param, name
    _docker("rm", "--force", name)


def _system_state(name: str, timeout: float = 90) -> str:
    """systemd's state once boot is over; systemctl cannot connect until PID 1 is up (it then prints nothing or, as
    trixie's systemctl does, ``offline``: "the manager is not running", systemctl(1)), so both are asked again."""
    deadline = time.monotonic() + timeout
    while True:
        state = _docker("exec", name, "systemctl", "is-system-running", "--wait")
        if state.stdout.strip() not in ("", "offline") or time.monotonic() > deadline:
            return state.stdout.strip() or state.stderr.strip()
        time.sleep(0.5)


def test_node_boots_systemd_as_pid_1(node):
    suite, name = node
    assert _system_state(name) in ("running", "degraded")
    pid1 = _docker("exec", name, "cat", "/proc/1/comm")
    assert pid1.stdout.strip() == "systemd"
    release = _docker("exec", name, "cat", "/etc/os-release")
    assert f"VERSION_CODENAME={suite}" in release.stdout


def test_node_has_what_ansible_and_node_python_need(node):
    name = node[1]
    for argv in (
        ["python3", "-c", "import venv, apt"],
        ["sudo", "--version"],
        ["test", "-s", "/etc/ssl/certs/ca-certificates.crt"],
    ):
        result = _docker("exec", name, *argv)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"


@pytest.mark.parametrize("suite", images.SUITES)
def test_image_is_built_once_per_recipe(suite):
    images.ensure_image(suite)
    before = _docker("image", "inspect", "--format", "{{.Id}}", images.image_name(suite)).stdout
    assert images.built_recipe(suite) == images.recipe_hash(suite)
    images.ensure_image(suite)
    assert _docker("image", "inspect", "--format", "{{.Id}}", images.image_name(suite)).stdout == before


def test_recipe_hash_differs_per_suite():
    assert len({images.recipe_hash(suite) for suite in images.SUITES}) == len(images.SUITES)
