"""The nvidia_driver_wanted filter: the driver version kubegpu.core.nvidia_driver installs on a host (its README:
``nvidia_driver_version``, the pin; with the runfile method and no pin the installer's version), from NVIDIA's
installer names ``NVIDIA-Linux-<arch>-<version>.run`` (as download.nvidia.com serves them, for x86_64 and aarch64),
with the role's defaults (README table: method ``package``, no pin, no installer) for what a host does not set."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.core.plugins.filter import nvidia_driver_wanted as plugin
from ansible_collections.kubegpu.core.plugins.filter.nvidia_driver_wanted import FilterModule, nvidia_driver_wanted

ROOT = Path(__file__).resolve().parents[2]
# NVIDIA's data-center driver 570.195.03 as its download site names it, per architecture
X86_64_URL = "https://us.download.nvidia.com/tesla/570.195.03/NVIDIA-Linux-x86_64-570.195.03.run"
AARCH64_URL = "https://us.download.nvidia.com/tesla/570.195.03/NVIDIA-Linux-aarch64-570.195.03.run"


@pytest.mark.parametrize(
    ("host_vars", "wanted"),
    [
        pytest.param({}, "", id="role-defaults-package-no-pin"),
        pytest.param({"nvidia_driver_version": "535.261.03"}, "535.261.03", id="package-pinned"),
        pytest.param(
            {"nvidia_driver_method": "package", "nvidia_driver_runfile_url": X86_64_URL}, "", id="package-ignores-runfile"
        ),
        pytest.param({"nvidia_driver_runfile_url": X86_64_URL}, "", id="default-method-is-package"),
        pytest.param(
            {"nvidia_driver_method": "runfile", "nvidia_driver_runfile_url": X86_64_URL}, "570.195.03", id="runfile-x86_64-url"
        ),
        pytest.param(
            {"nvidia_driver_method": "runfile", "nvidia_driver_runfile_url": AARCH64_URL}, "570.195.03", id="runfile-aarch64-url"
        ),
        pytest.param(
            {"nvidia_driver_method": "runfile", "nvidia_driver_runfile_src": "files/NVIDIA-Linux-x86_64-580.82.07.run"},
            "580.82.07",
            id="runfile-controller-file",
        ),
        pytest.param(
            {"nvidia_driver_method": "runfile", "nvidia_driver_runfile_src": "NVIDIA-Linux-x86_64-550.54.15.run"},
            "550.54.15",
            id="runfile-bare-name",
        ),
        pytest.param(
            {
                "nvidia_driver_method": "runfile",
                "nvidia_driver_runfile_url": AARCH64_URL,
                "nvidia_driver_runfile_src": "/srv/NVIDIA-Linux-x86_64-580.82.07.run",
            },
            "570.195.03",
            id="runfile-url-before-src",
        ),
        pytest.param(
            {"nvidia_driver_method": "runfile", "nvidia_driver_version": "565.57.01", "nvidia_driver_runfile_url": X86_64_URL},
            "565.57.01",
            id="runfile-pin-before-name",
        ),
        # names the rule does not read a version from: the role then refuses the runfile without a pin
        pytest.param(
            {"nvidia_driver_method": "runfile", "nvidia_driver_runfile_url": "https://mirror.example.internal/driver.run"},
            "",
            id="runfile-other-name",
        ),
        pytest.param(
            {"nvidia_driver_method": "runfile", "nvidia_driver_runfile_src": "/srv/NVIDIA-Linux-x86_64-535.161.08-grid.run"},
            "",
            id="runfile-grid-name",
        ),
        pytest.param(
            {"nvidia_driver_method": "runfile", "nvidia_driver_runfile_url": X86_64_URL + "?token=abc"},
            "",
            id="runfile-url-with-query",
        ),
        pytest.param(
            {"nvidia_driver_method": "runfile", "nvidia_driver_runfile_url": "https://h/NVIDIA-Linux-x86_64-570.run"},
            "",
            id="runfile-branch-only-name",
        ),
        pytest.param({"nvidia_driver_method": "runfile"}, "", id="runfile-without-installer"),
        # a null from the inventory counts as unset, as default('', true) did
        pytest.param(
            {
                "nvidia_driver_method": "runfile",
                "nvidia_driver_version": None,
                "nvidia_driver_runfile_url": None,
                "nvidia_driver_runfile_src": "/srv/NVIDIA-Linux-aarch64-580.82.07.run",
            },
            "580.82.07",
            id="runfile-nulls-unset",
        ),
        pytest.param({"nvidia_driver_version": None}, "", id="package-null-pin"),
    ],
)
def test_wanted_version(host_vars, wanted):
    assert nvidia_driver_wanted(host_vars) == wanted


def test_a_host_without_the_variables_gets_the_role_defaults():
    """The role's defaults are read from its defaults/main.yml, not repeated in the filter."""
    defaults = yaml.safe_load((ROOT / "roles" / "nvidia_driver" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert plugin.role_defaults() == {name: defaults[name] for name in plugin.ROLE_VARIABLES}
    assert plugin.ROLE_DEFAULTS == ROOT / "roles" / "nvidia_driver" / "defaults" / "main.yml"


def test_a_templated_default_is_refused(tmp_path, monkeypatch):
    defaults = tmp_path / "main.yml"
    defaults.write_text(
        'nvidia_driver_method: package\nnvidia_driver_version: "{{ pinned }}"\n'
        'nvidia_driver_runfile_url: ""\nnvidia_driver_runfile_src: ""\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(plugin, "ROLE_DEFAULTS", defaults)
    plugin.role_defaults.cache_clear()
    try:
        with pytest.raises(AnsibleFilterError, match="must set nvidia_driver_version to a plain value"):
            nvidia_driver_wanted({})
    finally:
        monkeypatch.undo()
        plugin.role_defaults.cache_clear()


@pytest.mark.parametrize("host_vars", [None, "gpu-node-1", ["nvidia_driver_version"]])
def test_not_a_host_s_variables_is_refused(host_vars):
    with pytest.raises(AnsibleFilterError, match="expected a host's variables"):
        nvidia_driver_wanted(host_vars)


def test_no_role_keeps_its_own_copy_of_the_runfile_rule():
    """nvidia_driver and dra_driver both read the filter; a second regex on NVIDIA's installer name would drift."""
    copies = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "roles").rglob("*.yml")
        if "NVIDIA-Linux-[" in path.read_text(encoding="utf-8")
    ]
    assert not copies
    for user in ("roles/nvidia_driver/vars/main.yml", "roles/dra_driver/tasks/drivers.yml"):
        assert "kubegpu.core.nvidia_driver_wanted" in (ROOT / user).read_text(encoding="utf-8"), user


def test_filter_is_registered():
    assert FilterModule().filters() == {"nvidia_driver_wanted": nvidia_driver_wanted}
