"""Debian node images for molecule and the node tests: ``kubegpu-node:<suite>``.

A rootfs made by ``debootstrap`` (the packages in :data:`PACKAGES`) from the mirror the
host's apt uses (:func:`tests.support.debs.host_mirror`), turned into a systemd node by
``setup-rootfs.sh``, then ``docker import``ed. Built once: the image carries a label with
the hash of its recipe (:func:`recipe`: suite, packages, setup script, import changes), and a build with the same
hash is skipped. Nothing is simulated: these are real Debian systems that boot systemd as
PID 1 when run with :data:`SYSTEMD_RUN_ARGS` (``--privileged`` fails on this machine).

Command line: ``python -m tests.support.images [SUITE...]`` builds (or finds) each
image and prints its name.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.debs import host_mirror

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
CACHE = Path(os.environ.get("KUBEGPU_IMAGE_CACHE", REPO_ROOT / ".cache" / "images"))
SUITES = ("bookworm", "trixie")
IMAGE_REPOSITORY = "kubegpu-node"
RECIPE_LABEL = "org.kubegpu.recipe"
RECIPE_REVISION = 1
VARIANT = "minbase"
# Dockerfile instructions given to `docker import`: systemd is the command and knows it
# runs in a container.
IMPORT_CHANGES = ("ENV container=docker", 'CMD ["/sbin/init"]')
# What Ansible, molecule and the node roles need on a node: systemd as init, Python with
# venv for node_python, sudo for become, certificates for an HTTPS index.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "python3-apt",
    "sudo",
    "ca-certificates",
    "gnupg",
    "procps",
    "iproute2",
)
# How to run a node image with systemd as PID 1 here. Host networking: the machines these
# tests run on cannot create Docker's bridge.
SYSTEMD_RUN_ARGS = (
    "--network=host",
    "--cap-add=SYS_ADMIN",
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:ro",
    "--stop-signal=SIGRTMIN+3",
)


class ImageBuildError(RuntimeError):
    pass


def image_name(suite: str) -> str:
    return f"{IMAGE_REPOSITORY}:{suite}"


def recipe(suite: str) -> dict:
    """Everything that decides the image's content. Not the mirror's address (any mirror
    of the archive serves the same packages), not this module's code: bump
    RECIPE_REVISION when a change here changes what an image holds."""
    return {
        "revision": RECIPE_REVISION,
        "suite": suite,
        "variant": VARIANT,
        "packages": sorted(PACKAGES),
        "setup": (HERE / "setup-rootfs.sh").read_text(),
        "changes": list(IMPORT_CHANGES),
    }


def recipe_hash(suite: str) -> str:
    return hashlib.sha256(json.dumps(recipe(suite), sort_keys=True).encode()).hexdigest()[:16]


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise ImageBuildError(f"{' '.join(argv)} failed ({result.returncode}): {output}")
    return result


def built_recipe(suite: str) -> str | None:
    """The recipe hash of the existing image, or None when there is no image."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{RECIPE_LABEL}"}}}}', image_name(suite)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_image(suite: str) -> str:
    """Build ``kubegpu-node:<suite>`` unless an image of the current recipe exists; return its name."""
    if suite not in SUITES:
        raise ImageBuildError(f"unknown suite {suite!r}; node images exist for {', '.join(SUITES)}")
    wanted = recipe_hash(suite)
    if built_recipe(suite) == wanted:
        return image_name(suite)
    CACHE.mkdir(parents=True, exist_ok=True)
    # one build per suite at a time (parallel test workers, two make targets)
    with open(CACHE / f".{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built_recipe(suite) != wanted:
            _build(suite, wanted)
    return image_name(suite)


def _build(suite: str, recipe: str) -> None:
    started = time.monotonic()
    # downloaded .debs are kept between builds (debootstrap --cache-dir)
    debs = CACHE / f"debs-{suite}"
    debs.mkdir(parents=True, exist_ok=True)
    # what a build killed half-way left behind (the lock is held: no build is running)
    for stale in CACHE.glob(f"rootfs-{suite}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"rootfs-{suite}-", dir=CACHE) as workdir:
        rootfs = Path(workdir) / "rootfs"
        _run(
            [
                "debootstrap",
                f"--variant={VARIANT}",
                f"--include={','.join(PACKAGES)}",
                f"--cache-dir={debs}",
                "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg",
                suite,
                str(rootfs),
                host_mirror(),
            ]
        )
        shutil.copy(HERE / "setup-rootfs.sh", rootfs / "setup-rootfs.sh")
        _run(["chroot", str(rootfs), "/bin/sh", "/setup-rootfs.sh"])
        (rootfs / "setup-rootfs.sh").unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            _run(
                [
                    "docker",
                    "import",
                    *(arg for change in IMPORT_CHANGES for arg in ("--change", change)),
                    "--change",
                    f"LABEL {RECIPE_LABEL}={recipe}",
                    "--message",
                    f"debootstrap {suite}, recipe {recipe}",
                    "-",
                    image_name(suite),
                ],
                stdin=tar.stdout,
            )
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise ImageBuildError(f"tar of the {suite} rootfs failed ({tar.returncode})")
    print(f"built {image_name(suite)} (recipe {recipe}) in {time.monotonic() - started:.0f} s", file=sys.stderr)


def main(argv: list[str]) -> int:
    suites = argv or list(SUITES)
    # the builds wait on the mirror and dpkg more than on each other: run them side by side
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(suites)) as pool:
        for name in pool.map(ensure_image, suites):
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
