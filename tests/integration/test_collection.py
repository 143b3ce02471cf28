"""The checkout works as the collection kubegpu.core, and builds into a clean artifact."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def ansible_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}


def test_galaxy_metadata_names_the_collection():
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("kubegpu", "core")
    assert galaxy["version"] == "0.1.0"
    for field in ("license", "tags", "repository", "documentation", "build_ignore"):
        assert galaxy[field], field


def test_build_leaves_out_tests_benchmarks_molecule_and_venvs(tmp_path):
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp_path, REPO_ROOT],
        check=True,
        capture_output=True,
        env=ansible_env(),
    )
    artifact = tmp_path / "kubegpu-core-0.1.0.tar.gz"
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    top_level = {name.split("/", 1)[0] for name in names}
    assert {"MANIFEST.json", "FILES.json", "README.md", "meta", "plugins"} <= top_level
    leaked = top_level & {"tests", "benchmarks", "molecule", ".venv", ".venv-sanity", ".cache", ".collections", ".git", "hack"}
    assert leaked == set()


@pytest.mark.matrix
def test_checkout_resolves_as_the_collection_for_ansible_doc():
    result = subprocess.run(
        [BIN / "ansible-doc", "-t", "module", "-l", "kubegpu.core", "--json"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=ansible_env(),
    )
    modules = yaml.safe_load(result.stdout)
    module_files = sorted(p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))
    assert sorted(name.removeprefix("kubegpu.core.") for name in modules) == module_files


def test_collection_path_in_ansible_cfg_points_at_this_checkout():
    link = REPO_ROOT / ".collections" / "ansible_collections" / "kubegpu" / "core"
    assert link.resolve() == REPO_ROOT
