"""The support matrix: each supported ansible-core on a controller Python it supports,
and each supported node Python, tested.

    python3 hack/matrix.py         every combination (`make matrix`)
    python3 hack/matrix.py --ci    the oldest and newest ansible-core and node Python (part of `make test`)
    python3 hack/matrix.py --list  the combinations, without running them

Per ansible-core (a venv of its own in .cache/matrix/, built once and reused):
ansible-test sanity, the unit tests, and the matrix slice of the integration tests
(`-m matrix`: one run of each module through that ansible against the test bench).
Per node Python: ansible-test sanity's compile and import tests on that Python, and
the node-side modules run with it as the module interpreter (the slice's node tests).

Pythons come from pyenv (``$PYENV_ROOT/versions/X.Y.*``, the machine image's) or,
where pyenv lacks one, from PATH (a distribution's ``pythonX.Y``). The summary is a
table of combinations with pass/fail and time; the exit code is non-zero when any failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "matrix"
# (ansible-core minor, controller Python): each Python is one the release supports as a controller
CONTROLLERS = [
    ("2.17", "3.10"),
    ("2.18", "3.11"),
    ("2.19", "3.11"),
    ("2.20", "3.12"),
    ("2.21", "3.13"),
]
NODE_PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
# What `make test` runs: the ends of both ranges.
CI_CONTROLLERS = [CONTROLLERS[0], CONTROLLERS[-1]]
CI_NODE_PYTHONS = [NODE_PYTHONS[0], NODE_PYTHONS[-1]]
# ansible-test sanity's target-Python tests: the ones that run the code on the node's Python
NODE_SANITY_TESTS = ["compile", "import"]


sys.path.insert(0, str(ROOT))
from tests.support.pythons import PythonNotFound, find_python  # noqa: E402  (the repository is importable only now)


class MatrixError(RuntimeError):
    pass


def python_dir() -> Path:
    """A directory of pythonX.Y links to every Python found, for the front of PATH
    (ansible-test looks each target Python up by that name)."""
    directory = CACHE / "bin"
    directory.mkdir(parents=True, exist_ok=True)
    for version in sorted({*NODE_PYTHONS, *(python for _core, python in CONTROLLERS)}):
        try:
            target = find_python(version)
        except PythonNotFound:
            continue
        link = directory / f"python{version}"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return directory


def run(argv: list[str], log, env: dict[str, str] | None = None) -> bool:
    log.write(f"\n$ {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.run(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    return proc.returncode == 0


def controller_venv(core: str, python: str, log) -> Path:
    """A venv with ansible-core ``core`` and what the tests import, rebuilt when its requirements change."""
    venv = CACHE / f"ansible-core-{core}-py{python}"
    wanted = (
        f"ansible-core=={core}.*\n"
        + (ROOT / "requirements.txt").read_text()
        + (ROOT / "hack" / "matrix-requirements.txt").read_text()
    )
    stamp = venv / ".installed"
    if stamp.is_file() and stamp.read_text() == wanted:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    ok = run([find_python(python), "-m", "venv", str(venv)], log) and run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            f"ansible-core=={core}.*",
            "-r",
            str(ROOT / "requirements.txt"),
            "-r",
            str(ROOT / "hack" / "matrix-requirements.txt"),
        ],
        log,
    )
    if not ok:
        raise MatrixError(f"could not build the venv for ansible-core {core} on Python {python}; see the log")
    stamp.write_text(wanted)
    return venv


def version_of(venv: Path) -> str:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from ansible.release import __version__; print(__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def result(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def controller_row(core: str, python: str, log, env: dict[str, str]) -> list[str]:
    """Sanity, unit tests and the matrix slice with ansible-core ``core`` on Python ``python``."""
    start = time.monotonic()
    name = [f"ansible-core {core}", f"Python {python}"]
    try:
        venv = controller_venv(core, python, log)
    except (MatrixError, PythonNotFound) as exc:
        log.write(f"\n{exc}\n")
        return [*name, "FAIL (venv)", "-", "-", f"{time.monotonic() - start:.0f} s"]
    python_bin = str(venv / "bin" / "python")
    name[0] = f"ansible-core {version_of(venv)}"
    sanity_env = {**env, "SANITY_PYTHON": python_bin, "SANITY_VENV": f"{venv}-sanity", "SANITY_WORK": f"{venv}-sanity-work"}
    sanity = run([str(ROOT / "hack" / "sanity")], log, sanity_env)
    pytest = [python_bin, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    unit = run([*pytest, "tests/unit"], log, env)
    modules = run([*pytest, "-m", "matrix", "tests/integration"], log, env)
    return [*name, result(sanity), result(unit), result(modules), f"{time.monotonic() - start:.0f} s"]


def node_row(python: str, log, env: dict[str, str]) -> list[str]:
    """ansible-test's compile and import tests on the node Python, and the node-side modules
    run with it as the module interpreter (both with the test venv's ansible-core)."""
    start = time.monotonic()
    tests = [arg for name in NODE_SANITY_TESTS for arg in ("--test", name)]
    sanity_env = {**env, "SANITY_WORK": str(CACHE / f"node-py{python}-sanity-work")}
    sanity = run([str(ROOT / "hack" / "sanity"), *tests, "--python", python], log, sanity_env)
    node_env = {**env, "KUBEGPU_NODE_PYTHONS": python}
    pytest = [str(ROOT / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    modules = run([*pytest, "-m", "node_python", "tests/integration"], log, node_env)
    return ["node (modules)", f"Python {python}", result(sanity), "-", result(modules), f"{time.monotonic() - start:.0f} s"]


def print_table(rows: list[list[str]]) -> None:
    rows = [["ansible", "Python", "sanity", "unit", "module runs", "time"], *rows]
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    print("\n".join(lines))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ci", action="store_true", help="only the oldest and newest ansible-core and node Python")
    parser.add_argument("--list", action="store_true", help="print the combinations and exit")
    options = parser.parse_args(argv)
    controllers = CI_CONTROLLERS if options.ci else CONTROLLERS
    node_pythons = CI_NODE_PYTHONS if options.ci else NODE_PYTHONS
    if options.list:
        for core, python in controllers:
            print(f"ansible-core {core} on Python {python}: sanity, unit, slice")
        for python in node_pythons:
            print(f"node Python {python}: sanity compile+import, node modules run with it")
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{python_dir()}{os.pathsep}{os.environ.get('PATH', '')}"}
    log_path = CACHE / ("ci.log" if options.ci else "matrix.log")
    rows = []
    with open(log_path, "w") as log:
        for core, python in controllers:
            print(f"matrix: ansible-core {core} on Python {python} ...", flush=True)
            rows.append(controller_row(core, python, log, env))
        for python in node_pythons:
            print(f"matrix: node Python {python} ...", flush=True)
            rows.append(node_row(python, log, env))
    print_table(rows)
    failed = [row for row in rows if "FAIL" in " ".join(row)]
    if failed:
        print(f"matrix: {len(failed)} of {len(rows)} combinations failed; the log is {log_path}")
        print(subprocess.run(["tail", "-n", "60", str(log_path)], capture_output=True, text=True, check=False).stdout)
        return 1
    print(f"matrix: {len(rows)} combinations passed (log: {log_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
