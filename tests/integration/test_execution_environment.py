"""meta/execution-environment.yml as ansible-builder (3.x, the real tool) reads it.

``ansible-builder introspect`` is what the builder runs inside the image to collect the dependencies
of the installed collections; here it runs on the collection built from this checkout and installed
into a scratch directory. ``ansible-builder create`` turns the EE definition of
docs/execution-environment.md into a build context. Nothing is built (no container engine, no
network); the context is what a build would use.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.support.adhoc import REPO_ROOT, ansible_env

BIN = Path(sys.executable).parent
ARTIFACT = "kubegpu-core-0.1.0.tar.gz"

pytestmark = pytest.mark.slow


def requirement_lines(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", "--output-path", out, REPO_ROOT],
        check=True,
        capture_output=True,
        env=ansible_env(),
    )
    return out / ARTIFACT


def test_builder_introspection_of_the_installed_collection_lists_our_python_requirements(tmp_path, artifact):
    collections = tmp_path / "collections"
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "install", "--offline", "--force", "-p", collections, artifact],
        check=True,
        capture_output=True,
        env=ansible_env(),
    )
    installed = collections / "ansible_collections" / "kubegpu" / "core"
    assert (installed / "meta" / "execution-environment.yml").is_file()
    pip_file = tmp_path / "requirements.txt"
    proc = subprocess.run(
        [BIN / "ansible-builder", "introspect", collections, "--write-pip", pip_file],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = yaml.safe_load(proc.stdout.split("# Dependency data for")[-1].split("\n", 1)[-1])
    ours = requirement_lines(REPO_ROOT / "requirements.txt")
    # the builder leaves ansible-core to the EE definition and PyYAML to the image (it comes with ansible-core)
    expected = [line for line in ours if not re.match(r"(?i)(ansible-core|pyyaml)\b", line)]
    assert expected and [re.sub(r"\s*#.*", "", line) for line in requirement_lines(pip_file)] == expected
    assert all("kubegpu.core" in line for line in found["python"]), found
    assert found.get("system", []) == []


def ee_definition_from_docs() -> dict:
    text = (REPO_ROOT / "docs" / "execution-environment.md").read_text()
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))


def test_builder_creates_a_context_that_installs_the_collection(tmp_path, artifact):
    definition = ee_definition_from_docs()
    assert definition["version"] == 3
    (tmp_path / ARTIFACT).write_bytes(artifact.read_bytes())
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    proc = subprocess.run(
        [
            BIN / "ansible-builder",
            "create",
            "-f",
            "execution-environment.yml",
            "-c",
            "context",
            "--output-filename",
            "Containerfile",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    # the galaxy stage installs the collections of requirements.yml, the builder stage introspects them
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements == {"collections": [{"name": f"collections/{ARTIFACT}", "type": "file"}]}
    copied = context / "_build" / "collections" / ARTIFACT
    assert copied.read_bytes() == artifact.read_bytes()
    with tarfile.open(copied) as tar:
        meta = yaml.safe_load(tar.extractfile("meta/execution-environment.yml").read())
        assert meta["dependencies"]["python"] == "requirements.txt"
        assert tar.extractfile("requirements.txt").read() == (REPO_ROOT / "requirements.txt").read_bytes()
