"""Pure edits of containerd's config.toml (plugins/module_utils/_toml_runtime.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.kubegpu.core.plugins.module_utils import _runtime_name as runtime_name
from ansible_collections.kubegpu.core.plugins.module_utils import _toml_runtime as tr
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

V2 = '"io.containerd.grpc.v1.cri"'
V3 = '"io.containerd.cri.v1.runtime"'

HAND_WRITTEN = f"""# comment at the top
version = 2  # the version

[plugins.{V2}.containerd]
  snapshotter = "overlayfs"  # keep this comment
  default_runtime_name = "runc"

  [plugins.{V2}.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.{V2}.containerd.runtimes.runc.options]
      SystemdCgroup = true

# another plugin
[plugins."io.containerd.internal.v1.opt"]
  path = "/opt/containerd"
"""


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", 2),
        ("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1", 2),
        ("containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da", 2),
        ("containerd github.com/containerd/containerd/v2 2.0.0 207ad711eabd375a01713109a8a197d197ff6542", 3),
        ("containerd github.com/containerd/containerd/v2 2.1.9+unknown ", 3),
        ("containerd github.com/containerd/containerd/v2 v2.2.1 abc", 3),
        ("containerd github.com/containerd/containerd/v2 2.3.0 abc", 4),
        ("containerd github.com/containerd/containerd/v2 2.10.0 abc", 4),
    ],
)
def test_config_version_follows_the_containerd_release(output, version):
    assert tr.version_for_containerd(output) == version


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("containerd github.com/containerd/containerd/v3 3.0.0 abc", "newer than this module knows"),
        ("containerd dev", "could not read a containerd version"),
        ("", "could not read a containerd version"),
    ],
)
def test_unknown_containerd_releases_are_refused(output, message):
    with pytest.raises(KubeGPUError, match=message):
        tr.version_for_containerd(output)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("version = 2\n", 2),
        ("version = 3\n[plugins]\n", 3),
        ("# only a comment\n", None),
        ("", None),
        ("[plugins.cri]\nsandbox_image = 'x'\n", 1),
        ("root = '/var/lib/containerd'\n", 1),
    ],
)
def test_file_version_reads_the_version_key(text, version):
    assert tr.file_version(tr.parse(text)) == version


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (1, "containerd config migrate"),
        (5, "config version=5 is not valid; expected one of: 2, 3, 4"),
        (0, "expected one of"),
    ],
)
def test_versions_the_module_does_not_write_are_refused(version, message):
    with pytest.raises(KubeGPUError, match=message):
        tr.check_version(version)


def test_a_version_that_is_not_an_integer_is_refused():
    with pytest.raises(KubeGPUError, match="not an integer"):
        tr.file_version(tr.parse('version = "2"\n'))


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version = 2\n[plugins\n", 2),
        ("version = 2\nversion = 3\n", 2),
        ('version = 2\n\n\nx = "unterminated\n', 4),
    ],
)
def test_invalid_toml_names_the_line(text, line):
    with pytest.raises(KubeGPUError, match=rf"not valid TOML \(line {line},") as info:
        tr.parse(text, "/etc/containerd/config.toml")
    assert info.value.details["line"] == line
    assert "/etc/containerd/config.toml" in info.value.msg


@pytest.mark.parametrize("name", ["nvidia", "nvidia-experimental", "kata.v2", "runsc_gvisor", "a", "A1", "Nvidia"])
def test_valid_runtime_names(name):
    assert runtime_name.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-nvidia", "nvidia-", "nv idia", "nv/idia", 'nv"idia', "x" * 64, "nvidia\n"])
def test_invalid_runtime_names(name):
    with pytest.raises(KubeGPUError, match="is not a valid runtime name"):
        runtime_name.validate_name(name)


@pytest.mark.parametrize("name", ["nvidia", "kata-qemu", "a", "0", "x" * 63, "nvidia-cdi-2"])
def test_valid_runtime_class_handlers(name):
    assert runtime_name.validate_handler(name) == name


@pytest.mark.parametrize("name", ["Nvidia", "my_rt", "a.b", "", "-a", "a-", "x" * 64, "nv idia", "nvidia\n", None, 1])
def test_invalid_runtime_class_handlers_name_value_and_rule(name):
    with pytest.raises(KubeGPUError) as info:
        runtime_name.validate_handler(name)
    assert f"name={name!r}" in info.value.msg and "lowercase RFC 1123 DNS label" in info.value.msg


@pytest.mark.parametrize("name", ["Nvidia", "my_rt", "a.b"])
def test_set_runtime_refuses_a_name_that_is_no_handler(name):
    doc = tr.parse(HAND_WRITTEN)
    with pytest.raises(KubeGPUError, match="not a valid RuntimeClass handler"):
        tr.set_runtime(doc, 2, name, binary_name="/usr/bin/nvidia-container-runtime")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"BinaryName": ["a"]}, "options.BinaryName=['a'] .*BinaryName must be a string, not an array"),
        ({"Root": 1}, "options.Root=1 .*must be a string, not an integer"),
        ({"SystemdCgroup": "true"}, "options.SystemdCgroup='true' .*must be a boolean .*not a string"),
        ({"SystemdCgroup": 1}, "must be a boolean .*not an integer"),
        ({"NoPivotRoot": "yes"}, "NoPivotRoot must be a boolean"),
        ({"IoUid": -1}, "options.IoUid=-1 .*integer from 0 to 4294967295, not an integer out of that range"),
        ({"IoGid": 2**32}, "IoGid must be an integer from 0"),
        ({"IoGid": True}, "IoGid must be an integer from 0 .*not a boolean"),
        ({"IoUid": 1.5}, "not a float"),
        ({"CriuWorkPath": {"a": 1}}, "CriuWorkPath must be a string, not a table"),
        ({"systemdcgroup": "on"}, "options.systemdcgroup='on' .*SystemdCgroup must be a boolean"),
        ({"TaskApiVersion": "3"}, "TaskApiVersion must be an integer"),
    ],
)
def test_runc_options_of_the_wrong_type_are_refused(options, message):
    doc = tr.parse(HAND_WRITTEN)
    before = tr.dumps(doc)
    with pytest.raises(KubeGPUError) as info:
        tr.set_runtime(doc, 2, "nvidia", options=options)
    # the message names key, value and the expected type, in this order (" .*" separates the parts)
    position = 0
    for part in message.split(" .*"):
        position = info.value.msg.index(part, position)
    assert tr.dumps(doc) == before


@pytest.mark.parametrize(
    "options",
    [
        {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True, "IoUid": 0, "IoGid": 4294967295},
        {"Root": None, "SystemdCgroup": None},  # removals are not type-checked
        {"SomeFutureKey": [1, 2]},  # keys the runc shim does not define are left to containerd
    ],
)
def test_runc_options_of_the_right_type_are_written(options):
    doc = tr.parse(HAND_WRITTEN)
    tr.set_runtime(doc, 2, "nvidia", options=options)
    written = tr.get_runtime(doc, 2, "nvidia")["options"] if any(v is not None for v in options.values()) else {}
    assert written == {key: value for key, value in options.items() if value is not None}


def test_options_of_other_shims_are_not_checked_as_runc_ones():
    doc = tr.parse(HAND_WRITTEN)
    assert tr.set_runtime(doc, 2, "kata", runtime_type="io.containerd.kata.v2", options={"BinaryName": ["a"]})
    # an existing runtime keeps its own shim, and its options are judged by that shim
    assert tr.set_runtime(doc, 2, "kata", options={"IoUid": "x"})
    assert tr.get_runtime(doc, 2, "kata")["options"] == {"BinaryName": ["a"], "IoUid": "x"}


def test_an_existing_runc_runtime_has_its_options_checked():
    doc = tr.parse(HAND_WRITTEN)
    tr.set_runtime(doc, 2, "nvidia", binary_name="/usr/bin/nvidia-container-runtime")
    with pytest.raises(KubeGPUError, match="SystemdCgroup must be a boolean"):
        tr.set_runtime(doc, 2, "nvidia", options={"SystemdCgroup": "false"})


def test_a_runtime_with_another_name_in_the_file_stays_readable_and_removable():
    doc = tr.parse(HAND_WRITTEN + f'\n[plugins.{V2}.containerd.runtimes.Nvidia]\n  runtime_type = "io.containerd.runc.v2"\n')
    assert tr.get_runtime(doc, 2, "Nvidia") == {"runtime_type": "io.containerd.runc.v2"}
    assert tr.remove_runtime(doc, 2, "Nvidia")
    assert tr.get_runtime(doc, 2, "Nvidia") is None


@pytest.mark.parametrize(
    "runtime_type", ["io.containerd.runc.v2", "io.containerd.kata.v2", "io.containerd.runsc.v1", "io.containerd.kata-qemu.v2",
                     "/usr/local/bin/containerd-shim-foo-v1"],
)  # fmt: skip
def test_valid_runtime_types(runtime_type):
    assert tr.validate_runtime_type(runtime_type) == runtime_type


@pytest.mark.parametrize(
    "runtime_type", ["runc", "io.containerd.runc", "io.containerd.runc.v", "containerd.runc.v2", "relative/shim", ""]
)
def test_invalid_runtime_types(runtime_type):
    with pytest.raises(KubeGPUError, match="is not a valid containerd shim name"):
        tr.validate_runtime_type(runtime_type)


@pytest.mark.parametrize(("version", "plugin"), [(2, V2), (3, V3), (4, V3)])
def test_a_runtime_goes_to_the_versions_cri_plugin(version, plugin):
    doc = tr.parse(f"version = {version}\n")
    assert tr.set_runtime(doc, version, "nvidia", "io.containerd.runc.v2", "/usr/bin/nvidia-container-runtime")
    text = tr.dumps(doc)
    assert f"[plugins.{plugin}.containerd.runtimes.nvidia]\n" in text
    assert f"[plugins.{plugin}.containerd.runtimes.nvidia.options]\n" in text
    assert tr.get_runtime(tr.parse(text), version, "nvidia") == {
        "runtime_type": "io.containerd.runc.v2",
        "options": {"BinaryName": "/usr/bin/nvidia-container-runtime"},
    }


def test_adding_a_runtime_only_inserts_lines_indented_like_its_siblings():
    doc = tr.parse(HAND_WRITTEN)
    assert tr.set_runtime(doc, 2, "nvidia", "io.containerd.runc.v2", "/usr/bin/nvidia", options={"SystemdCgroup": True})
    text = tr.dumps(doc)
    assert text.startswith(HAND_WRITTEN.split("# another plugin", maxsplit=1)[0])
    assert text.endswith("# another plugin\n" + HAND_WRITTEN.split("# another plugin\n")[1])
    assert (
        f"""
  [plugins.{V2}.containerd.runtimes.nvidia]
    runtime_type = "io.containerd.runc.v2"

    [plugins.{V2}.containerd.runtimes.nvidia.options]
      BinaryName = "/usr/bin/nvidia"
      SystemdCgroup = true
"""
        in text
    )


@pytest.mark.parametrize(
    ("kwargs", "changed"),
    [
        ({"runtime_type": "io.containerd.runc.v2"}, False),
        ({"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}}, False),
        ({"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": False}}, True),
        ({"runtime_type": "io.containerd.kata.v2"}, True),
        ({"runtime_type": None, "binary_name": "/usr/bin/runc"}, True),
        ({"runtime_type": None, "settings": {"privileged_without_host_devices": True}}, True),
        ({"runtime_type": None}, False),
    ],
)
def test_setting_an_existing_runtime_changes_only_what_differs(kwargs, changed):
    doc = tr.parse(HAND_WRITTEN)
    assert tr.set_runtime(doc, 2, "runc", **kwargs) is changed
    text = tr.dumps(doc)
    assert (text != HAND_WRITTEN) is changed
    assert "# keep this comment" in text and "# comment at the top" in text


def test_a_changed_value_keeps_its_line_comment_and_literal_quotes():
    text = f"version = 3\n[plugins.{V3}.containerd.runtimes.x]\n  runtime_type = 'io.containerd.runc.v2'  # shim\n"
    doc = tr.parse(text)
    assert tr.set_runtime(doc, 3, "x", "io.containerd.kata.v2")
    assert tr.dumps(doc) == text.replace("runc", "kata")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"settings": {"runtime_type": "x"}}, "settings.runtime_type is not allowed"),
        ({"settings": {"options": {}}}, "settings.options is not allowed"),
        ({"binary_name": "/a", "options": {"BinaryName": "/b"}}, "disagree"),
        ({"runtime_type": "runc"}, "not a valid containerd shim name"),
    ],
)
def test_conflicting_runtime_arguments_are_refused(kwargs, message):
    with pytest.raises(KubeGPUError, match=message):
        tr.set_runtime(tr.parse("version = 2\n"), 2, "nvidia", **kwargs)


def test_a_runtime_that_is_not_a_table_is_refused():
    doc = tr.parse(f"version = 2\n[plugins.{V2}.containerd.runtimes]\nnvidia = 1\n")
    with pytest.raises(KubeGPUError, match=r"runtime 'nvidia' .* is not a table"):
        tr.set_runtime(doc, 2, "nvidia", "io.containerd.runc.v2")


@pytest.mark.parametrize(("name", "present"), [("runc", True), ("nvidia", False)])
def test_remove_runtime_reports_whether_it_was_there(name, present):
    doc = tr.parse(HAND_WRITTEN)
    assert tr.remove_runtime(doc, 2, name) is present
    assert tr.get_runtime(doc, 2, name) is None
    # the comment above the next table's header stays right above it
    assert '\n# another plugin\n[plugins."io.containerd.internal.v1.opt"]\n' in tr.dumps(doc)


def test_add_then_remove_gives_back_the_original_text():
    doc = tr.parse(HAND_WRITTEN)
    tr.set_runtime(doc, 2, "nvidia", "io.containerd.runc.v2", "/usr/bin/nvidia")
    doc = tr.parse(tr.dumps(doc))
    assert tr.remove_runtime(doc, 2, "nvidia")
    assert tr.dumps(doc) == HAND_WRITTEN


@pytest.mark.parametrize(
    ("text", "after_unset", "default_after_unset"),
    [
        # runc declared: the default goes back to runc by name
        (HAND_WRITTEN, HAND_WRITTEN, "runc"),
        # no runc declared, no key before: the key goes, containerd's built-in default applies
        (f'version = 2\n[plugins.{V2}.containerd]\n  snapshotter = "overlayfs"\n',
         f'version = 2\n[plugins.{V2}.containerd]\n  snapshotter = "overlayfs"\n', None),
        ("version = 2\n", "version = 2\n", None),
    ],
)  # fmt: skip
def test_default_on_then_off(text, after_unset, default_after_unset):
    doc = tr.parse(text)
    assert tr.set_default(doc, 2, "nvidia")
    assert not tr.set_default(doc, 2, "nvidia")
    assert tr.get_default(doc, 2) == "nvidia"
    doc = tr.parse(tr.dumps(doc))
    assert tr.unset_default(doc, 2, "nvidia")
    assert not tr.unset_default(doc, 2, "nvidia")
    assert tr.get_default(doc, 2) == default_after_unset
    assert tr.dumps(doc) == after_unset


@pytest.mark.parametrize(("name", "changed"), [("kata", False), ("runc", False)])
def test_unset_default_leaves_another_default_and_runc_alone(name, changed):
    doc = tr.parse(HAND_WRITTEN)
    assert tr.unset_default(doc, 2, name) is changed
    assert tr.get_default(doc, 2) == "runc"


def test_new_key_in_an_out_of_order_table_is_indented_like_its_neighbours():
    text = (
        f'version = 2\n[plugins.{V2}.containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n'
        f'[plugins.{V2}.containerd]\n  snapshotter = "overlayfs"\n'
    )
    doc = tr.parse(text)
    assert tr.set_default(doc, 2, "nvidia")
    assert tr.dumps(doc) == text + '  default_runtime_name = "nvidia"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "version = 3\n"),
        ("\n\n", "version = 3\n"),
        ("# hand made\n", "# hand made\n\nversion = 3\n"),
    ],
)
def test_with_version_keeps_leading_comments(text, expected):
    assert tr.with_version(text, 3) == expected
    assert tr.file_version(tr.parse(expected)) == 3


def test_removing_a_runtime_in_the_middle_keeps_the_comments_around_it():
    """Comments above the removed header stay (they may introduce more than that table);
    the one above the next header stays above it."""
    text = f"""version = 2
[plugins.{V2}.containerd.runtimes.a]
  runtime_type = "io.containerd.runc.v2"
# b is for tests
[plugins.{V2}.containerd.runtimes.b]
  runtime_type = "io.containerd.runc.v2"
# c is for production
[plugins.{V2}.containerd.runtimes.c]
  runtime_type = "io.containerd.runc.v2"
"""
    doc = tr.parse(text)
    assert tr.remove_runtime(doc, 2, "b")
    assert tr.dumps(doc) == text.replace(f'[plugins.{V2}.containerd.runtimes.b]\n  runtime_type = "io.containerd.runc.v2"\n', "")


def test_default_on_and_off_where_the_containerd_table_has_no_header():
    """As in Debian's packaged config.toml: [plugins."io.containerd.grpc.v1.cri".containerd]
    exists only implicitly, through the runtime added below it. Each step re-reads the
    text, as separate module runs do."""
    text = f'version = 2\n\n[plugins]\n  [plugins.{V2}.cni]\n    bin_dir = "/usr/lib/cni"\n'
    doc = tr.parse(text)
    tr.set_runtime(doc, 2, "nvidia", "io.containerd.runc.v2", "/x")
    added = tr.dumps(doc)
    doc = tr.parse(added)
    assert tr.set_default(doc, 2, "nvidia")
    doc = tr.parse(tr.dumps(doc))
    assert tr.get_default(doc, 2) == "nvidia"
    assert tr.unset_default(doc, 2, "nvidia")
    assert tr.dumps(doc) == added
    doc = tr.parse(added)
    assert tr.remove_runtime(doc, 2, "nvidia")
    # the blank line tomlkit put before the added table may stay at the end of the file
    assert tr.dumps(doc) in (text, text + "\n")


OUT_OF_ORDER = f"""version = 2
[plugins.{V2}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
# opt follows
[plugins."io.containerd.internal.v1.opt"]
  path = "/opt"
[plugins.{V2}.containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"
# end of file
"""
KATA = f'[plugins.{V2}.containerd.runtimes.kata]\n  runtime_type = "io.containerd.kata.v2"\n'
RUNC = f'[plugins.{V2}.containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n'


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        pytest.param(OUT_OF_ORDER, "kata", OUT_OF_ORDER.replace(KATA, ""), id="last-table-keeps-end-of-file-comment"),
        pytest.param(
            OUT_OF_ORDER,
            "runc",
            OUT_OF_ORDER.replace(RUNC, f"[plugins.{V2}.containerd.runtimes]\n"),
            id="first-of-split-runtimes-keeps-comment-under-empty-header",
        ),
        pytest.param(f"version = 2\n{KATA}# end\n", "kata", "version = 2\n# end\n", id="only-table-keeps-end-of-file-comment"),
    ],
)
def test_removal_keeps_the_comments_that_follow_the_table(text, name, expected):
    doc = tr.parse(text)
    assert tr.remove_runtime(doc, 2, name)
    assert tr.dumps(doc) == expected


def test_adding_to_split_runtimes_keeps_everything_else():
    doc = tr.parse(OUT_OF_ORDER)
    assert tr.set_runtime(doc, 2, "nvidia", "io.containerd.runc.v2", "/x")
    text = tr.dumps(doc)
    assert tr.get_runtime(tr.parse(text), 2, "nvidia") == {
        "runtime_type": "io.containerd.runc.v2",
        "options": {"BinaryName": "/x"},
    }
    doc = tr.parse(text)
    assert tr.remove_runtime(doc, 2, "nvidia")
    assert tr.dumps(doc) == OUT_OF_ORDER


# --- shapes written by hand (issue 15) ---

DOTTED = f"""version = 2
[plugins.{V2}.containerd]
  default_runtime_name = "runc"
  runtimes.runc.runtime_type = "io.containerd.runc.v2"
  runtimes.kata.runtime_type = "io.containerd.kata.v2"
"""
TOP_DOTTED = f"""version = 2
plugins.{V2}.containerd.runtimes.kata.runtime_type = "io.containerd.kata.v2"

[plugins."io.containerd.internal.v1.opt"]
  path = "/opt/containerd"
"""
INLINE = f"""version = 2
[plugins.{V2}.containerd]
  runtimes = {{ kata = {{ runtime_type = "io.containerd.kata.v2", options = {{ X = 1 }} }} }}
"""
KATA_DATA = {"runtime_type": "io.containerd.kata.v2"}


@pytest.mark.parametrize(
    ("text", "new_lines"),
    [
        pytest.param(DOTTED, ['  runtimes.nvidia.runtime_type = "io.containerd.runc.v2"',
                              '  runtimes.nvidia.options.BinaryName = "/usr/bin/nvidia"'], id="dotted-in-table"),
        pytest.param(TOP_DOTTED, [f'plugins.{V2}.containerd.runtimes.nvidia.runtime_type = "io.containerd.runc.v2"',
                                  f'plugins.{V2}.containerd.runtimes.nvidia.options.BinaryName = "/usr/bin/nvidia"'],
                     id="dotted-at-top"),
        pytest.param(INLINE, ['nvidia = {runtime_type = "io.containerd.runc.v2", options = {BinaryName = "/usr/bin/nvidia"}}'],
                     id="inline"),
    ],
)  # fmt: skip
def test_a_new_runtime_is_written_the_way_the_file_writes_its_siblings(text, new_lines):
    """On main, dotted keys got a top-level [runtimes.nvidia] and inline tables raised tomlkit's error."""
    doc = tr.parse(text)
    before = doc.unwrap()
    assert tr.set_runtime(doc, 2, "nvidia", binary_name="/usr/bin/nvidia")
    after = tr.dumps(doc)
    tr.check_edit(before, after, 2, "nvidia", runtime={"options": {"BinaryName": "/usr/bin/nvidia"}}, default=None)
    for line in new_lines:
        assert line in after
    assert tr.get_runtime(tr.parse(after), 2, "kata")["runtime_type"] == "io.containerd.kata.v2"
    doc = tr.parse(after)
    assert tr.remove_runtime(doc, 2, "nvidia")
    assert tr.dumps(doc) == text


@pytest.mark.parametrize("text", [DOTTED, TOP_DOTTED, INLINE])
def test_settings_on_an_existing_runtime_keep_its_type(text):
    doc = tr.parse(text)
    assert tr.set_runtime(doc, 2, "kata", settings={"privileged_without_host_devices": True})
    assert tr.get_runtime(tr.parse(tr.dumps(doc)), 2, "kata") | {"options": None} == {
        **KATA_DATA, "privileged_without_host_devices": True, "options": None,
    }  # fmt: skip


@pytest.mark.parametrize("text", [DOTTED, INLINE, TOP_DOTTED])
def test_default_goes_into_the_containerd_table_however_it_is_written(text):
    doc = tr.parse(text)
    before = doc.unwrap()
    assert tr.set_default(doc, 2, "kata")
    tr.check_edit(before, tr.dumps(doc), 2, "kata", runtime={}, default=True)
    assert tr.get_default(tr.parse(tr.dumps(doc)), 2) == "kata"


def test_a_null_value_removes_the_key_and_a_missing_one_is_no_change():
    doc = tr.parse(HAND_WRITTEN)
    assert tr.set_runtime(doc, 2, "runc", options={"SystemdCgroup": None})
    assert tr.get_runtime(doc, 2, "runc") == {"runtime_type": "io.containerd.runc.v2", "options": {}}
    assert not tr.set_runtime(doc, 2, "runc", options={"SystemdCgroup": None}, settings={"snapshotter": None})
    doc = tr.parse("version = 2\n")
    assert tr.set_runtime(doc, 2, "nvidia", options={"SystemdCgroup": None})
    assert tr.get_runtime(doc, 2, "nvidia") == {"runtime_type": "io.containerd.runc.v2"}


@pytest.mark.parametrize(
    ("after", "message"),
    [
        # what main wrote for the dotted file: the runtime outside the CRI plugin, kata inside its options
        (DOTTED.replace('  runtimes.kata.runtime_type = "io.containerd.kata.v2"\n', "")
         + '\n[runtimes.nvidia]\nruntime_type = "io.containerd.runc.v2"\n[runtimes.nvidia.options]\n'
         + 'runtimes.kata.runtime_type = "io.containerd.kata.v2"\n', "would also change"),
        (DOTTED + DOTTED, "would not be valid TOML"),
        (DOTTED, "would not be in"),
    ],
)  # fmt: skip
def test_the_self_check_refuses_an_edit_that_moved_other_data(after, message):
    with pytest.raises(KubeGPUError, match=message):
        tr.check_edit(tr.parse(DOTTED).unwrap(), after, 2, "nvidia", runtime={}, default=None, path="/etc/x.toml")


@pytest.mark.parametrize(
    ("raw", "form", "plain"),
    [
        ("a = 1\n", (False, False), "a = 1\n"),
        ("\ufeffa = 1\r\nb = 2\r\n", (True, True), "a = 1\nb = 2\n"),
        ("a = 1\r\nb = 2\n", (False, False), "a = 1\r\nb = 2\n"),  # mixed: edited as it is
    ],
)
def test_text_form_round_trips(raw, form, plain):
    found, text = tr.TextForm.of(raw)
    assert tuple(found) == form and text == plain
    assert found.apply(text) == raw


def test_the_self_check_lets_default_false_leave_runc_the_default():
    """Found by the property tests: runc stays the default with default=false (it is what the default goes back to)."""
    doc = tr.parse(HAND_WRITTEN)
    before = doc.unwrap()
    assert not tr.unset_default(doc, 2, "runc")
    assert tr.set_runtime(doc, 2, "runc", options={"SystemdCgroup": False})
    tr.check_edit(before, tr.dumps(doc), 2, "runc", runtime={"options": {"SystemdCgroup": False}}, default=False)


SPLIT = f"""# top
version = 2

# above crun
[plugins.{V2}.containerd.runtimes.crun]
  runtime_type = "io.containerd.runc.v2"
  [plugins.{V2}.containerd.runtimes.crun.options]
    BinaryName = "/usr/bin/crun"

# above metrics
[metrics]
address = "x"
"""


def test_removing_the_only_runtime_keeps_the_comment_above_the_next_table():
    """Found by the property tests: the comment above [metrics] went with the removed runtime."""
    doc = tr.parse(SPLIT)
    assert tr.remove_runtime(doc, 2, "crun")
    assert tr.dumps(doc).endswith('# above metrics\n[metrics]\naddress = "x"\n')


def test_removing_the_only_runtime_of_a_split_containerd_table_is_refused_not_written():
    """Found by the property tests (a known limit): with the runtimes written before a later
    [..containerd] header, removing the last runtime makes tomlkit write that header twice or
    raise; the module refuses instead of writing."""
    text = SPLIT + f'\n[plugins.{V2}.containerd]\ndefault_runtime_name = "crun"\n'
    doc = tr.parse(text)
    before = doc.unwrap()
    with pytest.raises(KubeGPUError, match="crun"):
        tr.unset_default(doc, 2, "crun")
        tr.remove_runtime(doc, 2, "crun")
        tr.check_edit(before, tr.dumps(doc), 2, "crun", runtime=None, default=None)


def test_removing_the_first_of_several_runtimes_keeps_the_comment_above_the_next():
    """Found by the property tests: the comment above the next runtime's header was dropped.
    (It now comes with an empty [..runtimes] header above it: valid, and the same data.)"""
    text = f"""version = 2

[plugins.{V2}.containerd]

# crun
[plugins.{V2}.containerd.runtimes.crun]
  runtime_type = "io.containerd.runc.v2"

# kata
[plugins.{V2}.containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"
"""
    doc = tr.parse(text)
    before = doc.unwrap()
    assert tr.remove_runtime(doc, 2, "crun")
    after = tr.dumps(doc)
    assert f'# kata\n[plugins.{V2}.containerd.runtimes.kata]\n  runtime_type = "io.containerd.kata.v2"\n' in after
    tr.check_edit(before, after, 2, "crun", runtime=None, default=None)


_TOML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=5), children, max_size=3),
    max_leaves=5,
)


@pytest.mark.property
@given(key=st.sampled_from(sorted(tr.RUNC_OPTION_TYPES)), value=_TOML_VALUES, upper=st.booleans())
def test_a_runc_option_is_written_exactly_when_its_value_has_the_shims_type(key, value, upper):
    """Whatever the value: accepted and written as given when it has the type of the runc shim's
    field (None removes), else refused with the file's document untouched."""
    expected = tr.RUNC_OPTION_TYPES[key]
    fits = (
        value is None
        or {
            "boolean": isinstance(value, bool),
            "string": isinstance(value, str),
            "uint32": isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**32 - 1,
        }[expected]
    )
    key = key.upper() if upper else key
    doc = tr.parse(HAND_WRITTEN)
    before = tr.dumps(doc)
    if fits:
        tr.set_runtime(doc, 2, "nvidia", options={key: value})
        written = (tr.get_runtime(doc, 2, "nvidia") or {}).get("options", {})
        assert written == ({} if value is None else {key: value})
    else:
        with pytest.raises(KubeGPUError, match=rf"^options\.{key}=.* is not valid for the runc shim"):
            tr.set_runtime(doc, 2, "nvidia", options={key: value})
        assert tr.dumps(doc) == before
