"""Which file says what, and what contradicts the request (plugins/module_utils/_containerd_drop_ins.py).

The dumps here are written as containerd 1.7's ``config dump`` prints them for the files
alongside; tests/integration/test_containerd_runtime.py checks the same with the real binary."""

from __future__ import annotations

import pytest

from ansible_collections.kubegpu.core.plugins.module_utils import _toml_runtime as toml_runtime
from ansible_collections.kubegpu.core.plugins.module_utils._containerd_drop_ins import Effective, copied_runtime

CRI = 'plugins."io.containerd.grpc.v1.cri".containerd'
NVIDIA = "/usr/bin/nvidia-container-runtime"


def test_an_option_a_drop_in_hides_is_reported_with_the_drop_in(tmp_path):
    """Found by the property tests: containerd 1.x takes a drop-in's whole CRI table, so an
    option set in the main file is missing from the effective runtime."""
    (tmp_path / "conf.d").mkdir()
    drop_in = tmp_path / "conf.d" / "99-nvidia.toml"
    drop_in.write_text(f'version = 2\n[{CRI}.runtimes.nvidia.options]\n  BinaryName = "{NVIDIA}"\n')
    main = tmp_path / "config.toml"
    text = (
        f'version = 2\nimports = ["{tmp_path}/conf.d/*.toml"]\n'
        f'[{CRI}.runtimes.nvidia.options]\n  BinaryName = "{NVIDIA}"\n  SystemdCgroup = false\n'
    )
    dump = f'version = 2\n[{CRI}]\n  default_runtime_name = "runc"\n[{CRI}.runtimes.nvidia.options]\n  BinaryName = "{NVIDIA}"\n'
    effective = Effective(str(main), text, dump)
    assert effective.drop_ins == [str(drop_in)]
    assert effective.sources("nvidia")["runtime_file"] == str(drop_in)
    problem = effective.contradiction("nvidia", {"options": {"SystemdCgroup": False, "BinaryName": NVIDIA}}, None)
    assert problem is not None and "options.SystemdCgroup = None" in problem and str(drop_in) in problem
    assert effective.contradiction("nvidia", {"options": {"BinaryName": NVIDIA}}, None) is None


# --- copied_runtime: the table nvidia-ctk's AddRuntime would give the runtime ---
# nvidia-container-toolkit, pkg/config/engine/containerd: AddRuntime copies the whole table of the first
# low-level runtime the config has (the default unless nvidia*, else runc, else crun) and sets BinaryName.
# The tables below are written as containerd 1.7's `config dump` prints them (every runtime key filled in).

RUNC = "io.containerd.runc.v2"
FILLED = {  # containerd 1.7's (Debian trixie) dump of `[...runtimes.runc] runtime_type = "io.containerd.runc.v2"`
    "base_runtime_spec": "", "cni_conf_dir": "", "cni_max_conf_num": 0, "container_annotations": [],
    "pod_annotations": [], "privileged_without_host_devices": False,
    "privileged_without_host_devices_all_devices_allowed": False, "runtime_engine": "", "runtime_path": "",
    "runtime_root": "", "runtime_type": RUNC, "sandbox_mode": "", "snapshotter": "", "options": {},
}  # fmt: skip
KUBESPRAY_RUNC = {  # kubespray v2.27's runc (containerd_runc_runtime), as containerd 1.7 dumps it
    **FILLED, "base_runtime_spec": "/etc/containerd/cri-base.json",
    "options": {"systemdCgroup": True, "binaryName": "/usr/local/bin/runc"},
}  # fmt: skip


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        pytest.param(
            {
                **FILLED,
                "base_runtime_spec": "/etc/containerd/cri-base.json",
                "privileged_without_host_devices": True,
                "options": {"SystemdCgroup": True, "BinaryName": "/usr/bin/runc", "Root": ""},
            },
            None,
            (
                RUNC,
                {"base_runtime_spec": "/etc/containerd/cri-base.json", "privileged_without_host_devices": True},
                {"SystemdCgroup": True, "Root": ""},
            ),
            id="new-runtime-gets-every-key-set-on-the-source-but-binary-name",
        ),
        pytest.param(
            {**FILLED},
            {**FILLED, "cni_conf_dir": "/etc/cni/other", "options": {"NoPivotRoot": True, "BinaryName": NVIDIA}},
            (RUNC, {"cni_conf_dir": None}, {"NoPivotRoot": None}),
            id="target-keys-the-source-lacks-are-removed-its-binary-name-kept",
        ),
        pytest.param(
            {**FILLED, "snapshotter": "native", "options": {"SystemdCgroup": False}},
            {**FILLED, "snapshotter": "overlayfs", "options": {"SystemdCgroup": True, "BinaryName": NVIDIA}},
            (RUNC, {"snapshotter": "native"}, {"SystemdCgroup": False}),
            id="source-values-replace-the-targets",
        ),
        pytest.param(
            KUBESPRAY_RUNC,
            {**FILLED, "options": {"binaryName": "/usr/local/bin/runc", "BinaryName": NVIDIA}},
            (RUNC, {"base_runtime_spec": "/etc/containerd/cri-base.json"}, {"systemdCgroup": True, "binaryName": None}),
            id="kubespray-v2.27-spelling-binary-name-not-copied-and-removed-from-the-target",
        ),
        pytest.param(
            {**FILLED, "runtime_type": "io.containerd.crun.v2", "options": "not a table"},
            None,
            ("io.containerd.crun.v2", {}, {}),
            id="source-options-that-are-not-a-table-copy-nothing",
        ),
        pytest.param(
            {**FILLED, "runtime_type": ""},
            None,
            (None, {}, {}),
            id="an-empty-runtime-type-is-not-copied",
        ),
    ],
)
def test_copied_runtime_is_nvidia_ctks_copy_less_what_containerd_fills_in(source, target, expected):
    assert copied_runtime(source, FILLED, target) == expected


def test_copied_runtime_compares_values_not_types_of_mapping():
    """A tomlkit table and a dict with the same content are the same value: nothing to copy."""
    source = toml_runtime.tomlkit.parse('runtime_type = "io.containerd.runc.v2"\noptions = { SystemdCgroup = true }\n')
    reference = {"runtime_type": RUNC, "options": {"SystemdCgroup": True}}
    assert copied_runtime(source, reference, None) == (RUNC, {}, {})
