"""Real Debian binaries for the test bench, without touching the host's packages.

``fetch("containerd", suite="sid")`` downloads the package from that suite with a
private apt configuration (its own source list and state directories; the host's
sources, lists and dpkg database are left alone), unpacks it with ``dpkg -x`` into
``.cache/debs/<suite>/<package>/root`` and returns that directory. A second call
reuses the unpacked tree. The mirror is the one the host's apt already uses
(override with ``KUBEGPU_DEBIAN_MIRROR``), so no registry is named here.

Command line: ``python -m tests.support.debs SUITE PACKAGE...`` prints
each unpacked root.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("KUBEGPU_DEB_CACHE", REPO_ROOT / ".cache" / "debs"))
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# Every component, whatever the package: one set of lists per suite serves all fetches.
COMPONENTS = "main contrib non-free non-free-firmware"


class DebFetchError(RuntimeError):
    pass


def host_mirror() -> str:
    """The Debian archive URI the host's apt uses (not the security archive)."""
    if os.environ.get("KUBEGPU_DEBIAN_MIRROR"):
        return os.environ["KUBEGPU_DEBIAN_MIRROR"].rstrip("/")
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.suffix in (".list", ".sources") and path.is_file():
            texts.append(path.read_text(errors="replace"))
    for uri in re.findall(r"(?:^URIs:\s*|^deb(?:\s+\[[^\]]*\])?\s+)(\S+)", "\n".join(texts), flags=re.M):
        if not uri.rstrip("/").endswith("-security"):
            return uri.rstrip("/")
    raise DebFetchError("no Debian mirror found in the host's apt sources; set KUBEGPU_DEBIAN_MIRROR")


def _apt_options(suite: str) -> list[str]:
    """A private apt configuration for ``suite``; its package lists are fetched
    again whenever the source line changes (a new mirror, or a cache made before)."""
    base = CACHE / f"apt-{suite}"
    lists = base / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    (base / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    source_list = base / "sources.list"
    source_line = f"deb [signed-by={KEYRING}] {host_mirror()} {suite} {COMPONENTS}\n"
    # written after each successful update: the source line those lists are for
    updated_for = base / "lists-source"
    stale = not updated_for.is_file() or updated_for.read_text() != source_line
    source_list.write_text(source_line)
    options = [
        f"-oDir::Etc::SourceList={source_list}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={lists}",
        f"-oDir::Cache={base}",
        "-oDir::Cache::archives=" + str(base / "archives"),
        "-oDebug::NoLocking=1",
        "-oAcquire::Retries=3",
        "-oAPT::Get::List-Cleanup=0",
    ]
    if stale:
        _run(["apt-get", *options, "-qq", "update"])
        updated_for.write_text(source_line)
    return options


def _run(argv: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DebFetchError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout


def fetch(package: str, suite: str = "bookworm") -> Path:
    """Unpack ``package`` from ``suite`` and return the root it was unpacked into."""
    target = CACHE / suite / package
    root = target / "root"
    if (target / ".done").is_file():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    # one fetch at a time per cache (pytest-xdist workers share it)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".done").is_file():
            _download_and_unpack(package, suite, target, root)
    return root


def _download_and_unpack(package: str, suite: str, target: Path, root: Path) -> None:
    options = _apt_options(suite)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    _run(["apt-get", *options, "-qq", "download", package], cwd=target)
    debs = sorted(target.glob("*.deb"))
    if not debs:
        raise DebFetchError(f"apt-get download {package} from {suite} produced no .deb")
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(root)])
    (target / ".done").write_text(debs[0].name + "\n")


def version_of(package: str, suite: str = "bookworm") -> str:
    """The Debian version of a fetched package, from its .deb file name."""
    fetch(package, suite)
    name = (CACHE / suite / package / ".done").read_text().strip()
    return name.split("_")[1].replace("%3a", ":")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    suite = argv[0]
    for package in argv[1:]:
        print(fetch(package, suite))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
