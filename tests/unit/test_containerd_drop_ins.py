"""Which file says what, and what contradicts the request (plugins/module_utils/_containerd_drop_ins.py).

The dumps here are written as containerd 1.7's ``config dump`` prints them for the files
alongside; tests/integration/test_containerd_runtime.py checks the same with the real binary."""

from __future__ import annotations

from ansible_collections.kubegpu.core.plugins.module_utils._containerd_drop_ins import Effective

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
