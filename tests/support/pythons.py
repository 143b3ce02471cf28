"""The CPython interpreters the support matrix runs, and node-side venvs made with them.

``find_python("3.9")`` is pyenv's build of that version (``$PYENV_ROOT/versions/3.9.*``,
as the machine image has them) or else a ``python3.9`` on PATH (a distribution's
package); pyenv's shims are skipped, they answer only for the selected version.

``node_venv("3.9")`` is a venv with what the node-side modules import (tomlkit,
nvidia-ml-py, at the versions requirements.txt / requirements-test.txt ask for), as
the node_python role makes on a node; built once into ``.cache/node-python/``.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_VENVS = REPO_ROOT / ".cache" / "node-python"
# the node-side modules' libraries, by name; their version specs are read from the requirement files
NODE_PACKAGES = ("tomlkit", "nvidia-ml-py")


class PythonNotFound(RuntimeError):
    pass


def _version_key(path: str) -> list[int]:
    return [int(part) for part in Path(path).parts[-3].split(".") if part.isdigit()]


def find_python(version: str) -> str:
    """The interpreter of CPython ``version`` (X.Y)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    builds = sorted(glob.glob(str(pyenv_root / "versions" / f"{version}.*" / "bin" / f"python{version}")), key=_version_key)
    if builds:
        return builds[-1]
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if directory.rstrip("/").endswith("shims"):
            continue
        candidate = Path(directory) / f"python{version}"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise PythonNotFound(
        f"no Python {version} found (neither $PYENV_ROOT/versions/{version}.* nor python{version} on PATH); "
        f"install it, e.g. `apt-get install python{version}` where the distribution packages it"
    )


def node_requirements() -> list[str]:
    """The requirement lines of the node-side libraries, as the repository pins them."""
    lines = []
    for name in ("requirements.txt", "requirements-test.txt"):
        lines += (REPO_ROOT / name).read_text().splitlines()
    found = {}
    for line in lines:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*([<>=!~].*)?$", line)
        if match and match.group(1).lower() in NODE_PACKAGES:
            found[match.group(1).lower()] = line.strip()
    missing = set(NODE_PACKAGES) - set(found)
    if missing:
        raise RuntimeError(f"no requirement line for {', '.join(sorted(missing))} in requirements*.txt")
    return [found[name] for name in NODE_PACKAGES]


def node_venv(version: str) -> str:
    """The interpreter of a venv of Python ``version`` with the node-side libraries."""
    venv = NODE_VENVS / f"py{version}"
    wanted = "\n".join(node_requirements()) + "\n"
    stamp = venv / ".installed"
    if stamp.is_file() and stamp.read_text() == wanted:
        return str(venv / "bin" / "python")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([find_python(version), "-m", "venv", str(venv)], check=True, capture_output=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *node_requirements()],
        check=True,
        capture_output=True,
    )
    stamp.write_text(wanted)
    return str(venv / "bin" / "python")
