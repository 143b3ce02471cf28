"""Every role's ``meta/argument_specs.yml`` mirrors its ``defaults/main.yml``: the same
variables, the same defaults, each documented and typed, every name role-prefixed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROLE_DIRS = sorted(path for path in ROLES.iterdir() if (path / "tasks").is_dir()) if ROLES.is_dir() else []


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def test_there_are_roles_to_check():
    assert ROLE_DIRS, f"no roles under {ROLES}"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda path: path.name)
def test_argument_specs_mirror_defaults(role: Path):
    defaults = _load(role / "defaults" / "main.yml")
    options = _load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults), "argument_specs options and defaults name different variables"
    for name, value in defaults.items():
        assert "default" in options[name], f"{name}: argument_specs gives no default"
        assert options[name]["default"] == value, f"{name}: default {options[name]['default']!r} != {value!r}"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda path: path.name)
def test_role_variables_are_prefixed_documented_and_typed(role: Path):
    options = _load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, spec in options.items():
        assert name.startswith(f"{role.name}_"), f"{name} lacks the role prefix {role.name}_"
        assert spec.get("description"), f"{name} has no description"
        assert spec.get("type"), f"{name} has no type"
        if spec["type"] == "list":
            assert spec.get("elements"), f"{name}: a list needs elements"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda path: path.name)
def test_role_has_readme(role: Path):
    readme = (role / "README.md").read_text()
    for name in _load(role / "defaults" / "main.yml"):
        assert f"`{name}`" in readme, f"README of {role.name} does not describe {name}"
