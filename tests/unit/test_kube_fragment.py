"""The connection options are written twice by necessity (a spec for Ansible,
a doc fragment for ansible-doc); this holds the two together."""

from __future__ import annotations

import yaml

from ansible_collections.kubegpu.core.plugins.doc_fragments._kube import ModuleDocFragment
from ansible_collections.kubegpu.core.plugins.module_utils._kube import KUBE_ARG_SPEC

DOCUMENTED = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]


def test_every_spec_option_is_documented_and_nothing_else():
    assert sorted(DOCUMENTED) == sorted(KUBE_ARG_SPEC)


def test_types_defaults_and_aliases_match():
    for name, spec in KUBE_ARG_SPEC.items():
        doc = DOCUMENTED[name]
        assert doc["type"] == spec["type"], name
        assert doc.get("default") == spec.get("default"), name
        assert doc.get("aliases", []) == spec.get("aliases", []), name


def test_every_environment_fallback_is_documented():
    for name, spec in KUBE_ARG_SPEC.items():
        description = " ".join(DOCUMENTED[name]["description"])
        for variable in spec["fallback"][1]:
            assert f"E({variable})" in description, (name, variable)


def test_secrets_are_not_logged():
    assert KUBE_ARG_SPEC["api_key"]["no_log"] is True
