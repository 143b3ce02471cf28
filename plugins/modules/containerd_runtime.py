#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: containerd_runtime
short_description: Add, change or remove a CRI runtime in containerd's config.toml
version_added: 0.1.0
description:
  - Adds a runtime (for example C(nvidia) running C(/usr/bin/nvidia-container-runtime)) to containerd's CRI
    plugin configuration, optionally makes it the default runtime, or removes it.
  - Edits the file with C(tomlkit), so every unrelated table, key, comment and their order stay as they are.
    The runtime is written the way the file writes its neighbours, whatever TOML shape that is (standard
    C([..]) tables, implicit or split tables, dotted keys such as C(runtimes.runc.runtime_type = ...), inline
    tables). Before anything is written the new text is read back and compared with the old one; if anything
    besides this runtime's table and C(default_runtime_name) would differ, the module fails and changes nothing.
  - A UTF-8 byte-order mark and CRLF line ends are kept. containerd 1.6 and 1.7 read a file with a byte-order
    mark, containerd 2.x does not; with O(validate=true) the module agrees with the installed containerd and
    refuses such a file, naming the mark, where containerd would.
  - "Drop-ins: with O(validate=true) the module also checks containerd's effective config, the file plus
    the files its C(imports) name (as C(containerd config dump) merges them), before and after the change. It
    fails, changing nothing, when a drop-in overrides what the task asks (for example O(state=absent) or
    O(default=false) while a drop-in such as C(/etc/containerd/conf.d/99-nvidia.toml) still makes the runtime
    the default), when containerd would lose another runtime (containerd 1.x replaces its built-in C(runc) with
    the runtimes a file declares), or when anything else would change. To change a drop-in, run the module
    with O(path) set to that drop-in. RV(runtime_file) and RV(default_runtime_file) say which file defines
    the runtime and the default."
  - "Where the runtimes live depends on the config version: version 2 (containerd 1.x) uses
    C(plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes), versions 3 (containerd 2.0 to 2.2) and
    4 (containerd 2.3 and later) use C(plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes)."
  - A missing file is created from C(containerd config default) when containerd is installed (and its
    default has the wanted version), else with only a C(version) key.
  - Before the file is replaced, the new content is written to a temporary file in the same directory and
    checked with C(containerd --config TEMPFILE config dump); content containerd rejects is never installed.
    The replacement is atomic and keeps the file's mode and owner.
  - "CDI: O(enable_cdi) turns the Container Device Interface on (or off) in the CRI plugin, which a Dynamic Resource
    Allocation driver such as NVIDIA's needs to hand devices to containers. RV(cdi_enabled) reports whether containerd
    has it on with the result, judged from its C(config dump) as the default runtime is."
  - The module does not restart containerd; it returns RV(restart_required) for a handler to act on.
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._attributes
  - kubegpu.core._config_edit
attributes:
  check_mode:
    support: full
    details: The candidate is still validated with containerd, using a temporary file that is removed afterwards.
  diff_mode:
    support: full
    details: The diff is the file's text before and after.
  idempotent:
    support: full
requirements:
  - tomlkit >= 0.15.1 (Python library, on the managed node; the module refuses older releases, which move comments and quoting)
options:
  path:
    description: The containerd configuration file.
    type: path
    default: /etc/containerd/config.toml
  name:
    description:
      - The runtime's name, the key under C(runtimes) and the C(handler) of a Kubernetes RuntimeClass.
      - With O(state=present), a valid RuntimeClass handler, as the Kubernetes API requires, so a lowercase RFC 1123
        DNS label, 1 to 63 lowercase letters, digits or C(-), starting and ending with a letter or digit (C(Nvidia),
        C(my_rt) and C(a.b) are refused).
      - With O(state=absent) the wider rule of names other tools may have written is enough (letters of either case,
        digits, C(.), C(_), C(-)), so a runtime such as a legacy C(Nvidia) can still be removed. Runtimes the task does
        not name are never checked and stay as they are, whatever their names.
    type: str
    required: true
  state:
    description:
      - V(present) adds the runtime or updates the keys given; keys of the runtime not given are left alone.
      - V(absent) removes the runtime table. If it was the default runtime, the default goes back to runc
        as described for O(default). A file without the runtime is left as it is, whatever it holds (even
        an empty one).
    type: str
    choices: [present, absent]
    default: present
  runtime_type:
    description:
      - The shim, C(io.containerd.<name>.v<N>) or an absolute path to a shim binary.
      - When omitted, a runtime the task creates gets C(io.containerd.runc.v2); an existing runtime keeps its own
        C(runtime_type) (a C(kata) runtime stays C(io.containerd.kata.v2)).
    type: str
  binary_name:
    description:
      - The OCI runtime the runc shim runs (C(options.BinaryName)), for example C(/usr/bin/nvidia-container-runtime).
      - Not set when omitted; an existing value is kept.
    type: str
  options:
    description:
      - Further keys of the runtime's C(options) table, for example C(SystemdCgroup=true).
      - Values are written with their YAML types (a boolean stays a TOML boolean).
      - For a runtime of type C(io.containerd.runc.v2) (the default for a new runtime) the keys of the runc shim's
        options are type-checked before anything is written, whatever their case, because containerd only decodes
        them when it starts a container (C(config dump) accepts C(BinaryName = ["a"])). Strings are C(BinaryName),
        C(Root), C(ShimCgroup), C(CriuPath), C(CriuImagePath), C(CriuWorkPath), C(TaskApiAddress), booleans
        C(SystemdCgroup), C(NoPivotRoot), C(NoNewKeyring), integers from 0 to 4294967295 C(IoUid), C(IoGid),
        C(TaskApiVersion). Other keys, and the options of other shims, are left to containerd.
      - A C(null) value removes that key (nothing happens if it is not there).
    type: dict
    default: {}
  settings:
    description:
      - Further keys of the runtime table itself, beside C(runtime_type), for example
        C(privileged_without_host_devices), C(runtime_path), C(snapshotter) or C(pod_annotations).
      - containerd checks their types when the candidate is validated, so a wrong type fails before the file is touched.
      - A C(null) value removes that key (nothing happens if it is not there).
    type: dict
    default: {}
  copy_from:
    description:
      - Start the runtime from the first of these runtimes that containerd has, as C(nvidia-ctk runtime configure)
        does (it copies the whole table of the default runtime unless that is an C(nvidia*) one, else of C(runc),
        else of C(crun), and changes only C(options.BinaryName)). The runtime gets every key the config sets on
        that runtime (C(runtime_type), C(base_runtime_spec), C(cni_conf_dir), its C(options) such as
        C(SystemdCgroup), ...), as containerd sees it with the drop-ins of C(imports) merged; a key the runtime
        sets that the copied one does not is removed. O(runtime_type), O(binary_name), O(options) and O(settings)
        win over what is copied; C(BinaryName) is never copied, in whatever case the file spells it, and an option
        of O(options) spelt in another case than the file's (C(SystemdCgroup), C(systemdCgroup)) replaces that
        spelling, so containerd never has two to choose from.
      - A key is copied only where its value differs from the one containerd fills in for that runtime declared
        with nothing but its C(runtime_type) (compared in a C(config dump) of such a file), so the written table
        stays short and containerd's behaviour is the same as with nvidia-ctk's full copy.
      - Without containerd (O(validate=false) or not installed) the runtime's table as the file writes it is copied.
      - The runtime itself (O(name)) is skipped in the list; when none of them is there nothing is copied
        (RV(copied_from) is C(null)). Only with O(state=present).
    type: list
    elements: str
    default: []
    version_added: 0.1.0
  default:
    description:
      - V(true) makes this runtime containerd's default (C(default_runtime_name)).
      - V(false) gives the default back to runc, but only if it currently names this runtime. If the file declares a
        C(runc) runtime (as C(containerd config default) writes it), C(default_runtime_name) is set to C(runc);
        otherwise the key is removed, so containerd's built-in default, runc, applies. For O(name=runc) it changes
        nothing (runc is what the default goes back to).
      - Omitted, the default runtime is left as it is (except with O(state=absent), see there).
    type: bool
  enable_cdi:
    description:
      - V(true) makes containerd's CRI plugin hand CDI devices to containers (C(enable_cdi = true) in
        C(plugins."io.containerd.grpc.v1.cri") for config version 2, C(plugins."io.containerd.cri.v1.runtime") for
        versions 3 and 4); V(false) turns CDI off. Omitted, CDI is left as it is.
      - The key is written only where containerd's effective config does not already have the value asked for, so a
        containerd 2.x file, whose default is CDI on, is left alone. containerd 1.7 reads its CDI specifications from
        C(cdi_spec_dirs), by default C(/etc/cdi) and C(/var/run/cdi); the module does not change them (RV(cdi_spec_dirs)).
      - containerd 1.6 has no CDI (its C(config dump) has no C(enable_cdi)); V(true) there fails, naming the version,
        before anything is written. Without containerd (O(validate=false) or not installed) that cannot be told and
        the key is written by the file's config version (version 2 files default to off, 3 and 4 to on).
      - A drop-in of C(imports) that overrides the value fails the task, naming the drop-in, as for the runtime.
    type: bool
    version_added: 0.1.0
  config_version:
    description:
      - The config format to write. V(auto) reads the file's C(version) key or, for a missing or empty file,
        asks C(containerd --version) (1.x gives 2, 2.0 to 2.2 give 3, 2.3 and later give 4).
      - A file whose C(version) differs from an explicit value is refused, as is a file without a C(version) key
        (the legacy version 1 format; the message tells how to migrate it).
    type: str
    choices: [auto, '2', '3', '4']
    default: auto
  containerd_binary:
    description: The containerd command, a name looked up on PATH (and C(/usr/local/bin), C(/usr/bin)) or a path.
    type: str
    default: containerd
  validate:
    description:
      - Check the new content with C(containerd --config TEMPFILE config dump) before installing it, and
        compare containerd's effective config (with the drop-ins of C(imports)) before and after, see the
        description. A run that changes nothing still checks the effective config when containerd is installed.
      - Needs containerd on the node; set V(false) to configure a node before containerd is installed. Then
        neither containerd's parsing nor the drop-ins are checked, and RV(runtime_file), RV(default_runtime_file),
        RV(effective_default_runtime), RV(effective_runtime) and RV(drop_ins) are not returned; the read-back
        check of the edited file still runs.
    type: bool
    default: true
seealso:
  - module: kubegpu.core.docker_runtime
notes:
  - Restart containerd after a change (RV(restart_required)) for it to take effect.
"""

EXAMPLES = r"""
- name: Add the NVIDIA runtime and make it the default
  kubegpu.core.containerd_runtime:
    name: nvidia
    binary_name: /usr/bin/nvidia-container-runtime
    options:
      SystemdCgroup: true
    default: true
  register: __nvidia_runtime
  notify: Restart containerd

- name: Add the NVIDIA runtime as nvidia-ctk would, a copy of runc's table (base_runtime_spec, SystemdCgroup, ...)
  kubegpu.core.containerd_runtime:
    name: nvidia
    binary_name: /usr/bin/nvidia-container-runtime
    copy_from: [runc, crun]
    default: true

- name: Add the runtime for a RuntimeClass without touching the default
  kubegpu.core.containerd_runtime:
    name: nvidia
    binary_name: /usr/bin/nvidia-container-runtime
    settings:
      privileged_without_host_devices: false

- name: Take a setting off an existing runtime (null removes the key; its runtime_type stays)
  kubegpu.core.containerd_runtime:
    name: kata
    settings:
      privileged_without_host_devices: null

- name: Take back what nvidia-ctk put in a drop-in, then check the main file
  kubegpu.core.containerd_runtime:
    path: "{{ item }}"
    name: nvidia
    state: absent
  loop:
    - /etc/containerd/conf.d/99-nvidia.toml
    - /etc/containerd/config.toml

- name: Remove a runtime another tool wrote under a name that is no RuntimeClass handler
  kubegpu.core.containerd_runtime:
    name: Nvidia
    state: absent
    lock_timeout: 120  # wait longer for other runs editing /etc/containerd

- name: Remove it again (the default goes back to runc if it was nvidia)
  kubegpu.core.containerd_runtime:
    name: nvidia
    state: absent
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/containerd/config.toml
config_version:
  description: The config version of the file (C(null) when there is no file and nothing to do).
  returned: always
  type: int
  sample: 2
runtime:
  description: The runtime's table in the file after the change, as data; C(null) when it is absent.
  returned: always
  type: dict
  sample: {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": "/usr/bin/nvidia-container-runtime"}}
default_runtime:
  description: C(default_runtime_name) as written in the file after the change; C(null) when the file does not set it.
  returned: always
  type: str
  sample: nvidia
restart_required:
  description: Whether the file changed (or would change in check mode), so containerd must be restarted.
  returned: always
  type: bool
runtime_file:
  description:
    - The last file, in the order containerd reads them (the config, then its C(imports)), that defines the runtime;
      C(null) when none does, or when containerd's effective config has no such runtime (a drop-in it ignores, for
      example one written in another config version, is not named).
  returned: when containerd checked the effective config (O(validate=true) and containerd installed)
  type: str
  sample: /etc/containerd/conf.d/99-nvidia.toml
default_runtime_file:
  description:
    - The last file, in the same order, that sets C(default_runtime_name) to the effective default runtime; C(null)
      when none does (containerd's built-in default applies).
  returned: when containerd checked the effective config
  type: str
  sample: /etc/containerd/config.toml
effective_default_runtime:
  description: The default runtime containerd uses with the result (its C(config dump), drop-ins merged).
  returned: when containerd checked the effective config
  type: str
  sample: nvidia
effective_runtime:
  description: The runtime as containerd sees it with the result (with the keys containerd fills in); C(null) when absent.
  returned: when containerd checked the effective config
  type: dict
  sample: {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": "/usr/bin/nvidia-container-runtime"}}
drop_ins:
  description: The files the config imports, in the order containerd reads them.
  returned: when containerd checked the effective config
  type: list
  elements: str
  sample: [/etc/containerd/conf.d/99-nvidia.toml]
copied_from:
  description: The runtime whose table was copied (O(copy_from)); C(null) when none was.
  returned: when O(copy_from) is given
  type: str
  sample: runc
cdi_enabled:
  description:
    - Whether containerd has CDI on with the result (C(enable_cdi) in its C(config dump), drop-ins merged); V(false)
      for a containerd without CDI (1.6).
  returned: when containerd checked the effective config
  type: bool
  sample: true
cdi_spec_dirs:
  description: The directories containerd reads CDI specifications from, as its C(config dump) has them ([] for 1.6).
  returned: when containerd checked the effective config
  type: list
  elements: str
  sample: [/etc/cdi, /var/run/cdi]
backup_file:
  description: The backup of the old file.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /etc/containerd/config.toml.12345.2026-01-01@00:00:00~
"""

import os
import tempfile
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubegpu.core.plugins.module_utils import _containerd_drop_ins as drop_ins
from ansible_collections.kubegpu.core.plugins.module_utils import _runtime_name as runtime_name
from ansible_collections.kubegpu.core.plugins.module_utils import _toml_runtime as toml_runtime
from ansible_collections.kubegpu.core.plugins.module_utils._command import CommandRunner
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._files import (
    CONFIG_EDIT_ARG_SPEC,
    Candidate,
    check_lock_timeout,
    edit_lock,
    read_text,
    replace_file,
)

ARGUMENT_SPEC: dict[str, t.Any] = {
    "path": {"type": "path", "default": "/etc/containerd/config.toml"},
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "runtime_type": {"type": "str"},
    "binary_name": {"type": "str"},
    "options": {"type": "dict", "default": {}},
    "settings": {"type": "dict", "default": {}},
    "copy_from": {"type": "list", "elements": "str", "default": []},
    "default": {"type": "bool"},
    "enable_cdi": {"type": "bool"},
    "config_version": {"type": "str", "choices": ["auto", "2", "3", "4"], "default": "auto"},
    "containerd_binary": {"type": "str", "default": "containerd"},
    "validate": {"type": "bool", "default": True},
    **CONFIG_EDIT_ARG_SPEC,
}
# where containerd packages put the binary, beside PATH
BINARY_DIRS = ["/usr/local/bin", "/usr/bin", "/usr/sbin"]


class ContainerdRuntime:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.path: str = self.params["path"]
        if self.params["state"] == "present":
            # a name written must be usable as a RuntimeClass handler; one only removed may be
            # a runtime someone else wrote under another name (a legacy 'Nvidia')
            self.name = runtime_name.validate_handler(self.params["name"])
            if self.params["runtime_type"] is not None:
                toml_runtime.validate_runtime_type(self.params["runtime_type"])
        else:
            self.name = runtime_name.validate_name(self.params["name"])
            if self.params["default"]:
                raise KubeGPUError("default=true cannot be combined with state=absent; a removed runtime cannot be the default")
            if self.params["copy_from"]:
                raise KubeGPUError(
                    f"copy_from={self.params['copy_from']!r} cannot be combined with state=absent; a removed runtime "
                    "copies nothing, drop copy_from"
                )
        self.copy_from = [runtime_name.validate_name(source) for source in self.params["copy_from"]]
        # what the task asks, before and after copy_from adds the copied runtime's keys
        self.runtime_type: str | None = self.params["runtime_type"]
        self.options: dict[str, t.Any] = dict(self.params["options"])
        self.settings: dict[str, t.Any] = dict(self.params["settings"])
        wanted = self.params["config_version"]
        self.wanted_version = None if wanted == "auto" else int(wanted)
        self.containerd = CommandRunner(module, self.params["containerd_binary"], extra_dirs=BINARY_DIRS, required=False)
        self.result: dict[str, t.Any] = {"path": self.path, "changed": False, "restart_required": False}
        self.lock_timeout = check_lock_timeout(self.params["lock_timeout"])
        self.form = toml_runtime.TextForm(bom=False, crlf=False)
        self.original_dump: dict[str, t.Any] | None = None
        # the CRI plugin keys this run writes ({"enable_cdi": True}); empty when it writes none
        self.plugin_keys: dict[str, t.Any] = {}

    def _containerd_version(self) -> int:
        if not self.containerd.available:
            raise KubeGPUError(
                f"{self.path} has no version key and {self.params['containerd_binary']!r} was not found to tell which "
                "config version to write; install containerd or set config_version"
            )
        output = self.containerd.run(["--version"], check=True, what="asking containerd for its version").stdout
        return toml_runtime.version_for_containerd(output)

    def _base_text(self, before: str | None) -> str:
        """The text to edit: the file, or for a missing file containerd's default."""
        if before is not None:
            return before
        if self.containerd.available:
            default = self.containerd.run(["config", "default"], check=True, what="reading containerd's default config")
            doc = toml_runtime.parse(default.stdout, "`containerd config default`")
            if self.wanted_version in (None, toml_runtime.file_version(doc)):
                return default.stdout
        return ""

    def _document(self, text: str) -> tuple[t.Any, int]:
        doc = toml_runtime.parse(text, self.path)
        version = toml_runtime.file_version(doc)
        if version is None:
            version = toml_runtime.check_version(self.wanted_version or self._containerd_version())
            doc = toml_runtime.parse(toml_runtime.with_version(text, version), self.path)
            return doc, version
        toml_runtime.check_version(version)
        if self.wanted_version is not None and version != self.wanted_version:
            raise KubeGPUError(
                f"{self.path} has version = {version} but config_version={self.wanted_version}; the module does not convert "
                "between versions (containerd 2.x converts with `containerd config migrate`); use config_version=auto"
            )
        return doc, version

    def _requested_runtime(self) -> dict[str, t.Any] | None:
        """The runtime keys this task asks for (None: the runtime must be absent)."""
        params = self.params
        if params["state"] == "absent":
            return None
        runtime = dict(self.settings)
        if self.runtime_type is not None:
            runtime["runtime_type"] = self.runtime_type
        options = dict(self.options)
        if params["binary_name"] is not None:
            options["BinaryName"] = params["binary_name"]
        if options:
            runtime["options"] = options
        return runtime

    def _edit(self, doc: t.Any, version: int) -> bool:
        """Edits the document as asked; returns whether it changed."""
        params = self.params
        if params["state"] == "absent":
            changed = toml_runtime.unset_default(doc, version, self.name)
            return toml_runtime.remove_runtime(doc, version, self.name) or changed
        changed = toml_runtime.set_runtime(
            doc,
            version,
            self.name,
            runtime_type=self.runtime_type,
            binary_name=params["binary_name"],
            options=self.options,
            settings=self.settings,
        )
        if params["default"] is True:
            changed |= toml_runtime.set_default(doc, version, self.name)
        elif params["default"] is False:
            changed |= toml_runtime.unset_default(doc, version, self.name)
        return changed

    def _edit_cdi(self, doc: t.Any, version: int) -> bool:
        """Writes enable_cdi where the file sets another value or, not setting it, where containerd's
        effective value (its dump of the file, else the version's default) is another; returns whether it changed."""
        wanted = self.params["enable_cdi"]
        if wanted is None:
            return False
        written = toml_runtime.get_plugin_key(doc, version, toml_runtime.CDI_KEY)
        if written is None:
            effective = drop_ins.cdi_state(self.original_dump)[0] if self.original_dump is not None else None
            current = toml_runtime.CDI_DEFAULT[version] if effective is None else effective
            if current == wanted:
                return False
        elif written == wanted:
            return False
        self.plugin_keys = {toml_runtime.CDI_KEY: wanted}
        return toml_runtime.set_plugin_key(doc, version, toml_runtime.CDI_KEY, wanted)

    def _refuse_without_cdi(self, dump: dict[str, t.Any]) -> None:
        """enable_cdi=true on a containerd that has no CDI (1.6: its dump has no enable_cdi)."""
        if self.params["enable_cdi"] is not True or drop_ins.cdi_state(dump)[0] is not None:
            return
        version = self.containerd.run(["--version"], what="asking containerd for its version").stdout.strip()
        raise KubeGPUError(
            f"enable_cdi=true, but {version or self.params['containerd_binary']} has no CDI support (its `config dump` "
            "has no enable_cdi; containerd 1.7 added CDI); upgrade containerd to 1.7 or later; nothing was changed",
            containerd_version=version,
        )

    def _effective(self, config: str, main_text: str) -> None:
        """Checks containerd's effective config (``config`` plus its imports, as
        ``config dump`` merges them) against the request, and reports where the runtime
        and the default come from."""
        result = self.containerd.run(["--config", config, "config", "dump"])
        if result.ok:
            self._refuse_without_cdi(drop_ins.parse_dump(result.stdout))
        if not result.ok:
            # containerd 2.x: "invalid character at start of key: U+00EF"
            if self.form.bom and "U+00EF" in result.stderr + result.stdout:
                raise result.failure(
                    f"{self.path} starts with a UTF-8 byte-order mark, which this containerd does not accept; remove the "
                    "mark (the file's first three bytes, EF BB BF) and run again; nothing was changed"
                )
            if config == self.path:
                raise result.failure(f"containerd rejects {self.path} as it is; fix it first, nothing was changed")
            raise result.failure(f"containerd rejects the new {self.path}, which was left unchanged")
        effective = drop_ins.Effective(self.path, main_text, result.stdout)
        self.result.update(effective.sources(self.name))
        problem = effective.contradiction(self.name, self._requested_runtime(), self.params["default"], self.params["enable_cdi"])
        if not problem and self.original_dump is not None and config != self.path:
            problem = effective.collateral(self.name, self.original_dump, self.plugin_keys)
        if problem:
            raise KubeGPUError(problem + "; nothing was changed", **effective.sources(self.name))

    def run(self) -> dict[str, t.Any]:
        if self.params["state"] == "absent" and not os.path.lexists(self.path):
            # nothing to remove: no lock (nor its directory) is made for it
            return self._run()
        with edit_lock(self.module, self.path, self.lock_timeout):
            return self._run()

    def _run(self) -> dict[str, t.Any]:
        before = read_text(self.path)
        if before is None and self.params["state"] == "absent":
            self.result.update(config_version=None, runtime=None, default_runtime=None)
            return self.result
        self.form, base = toml_runtime.TextForm.of(self._base_text(before))
        if before is not None and self.params["validate"] and self.containerd.available:
            # what containerd makes of the file now, to compare the candidate's with
            current = self.containerd.run(["--config", self.path, "config", "dump"])
            self.original_dump = drop_ins.parse_dump(current.stdout) if current.ok else None
            if self.original_dump is not None:
                self._refuse_without_cdi(self.original_dump)
        doc, version = self._document(base)
        if self.copy_from:
            self._copy(doc, version)
        original = doc.unwrap()
        changed = self._edit(doc, version)
        changed = self._edit_cdi(doc, version) or changed
        text = toml_runtime.dumps(doc)
        if changed:
            toml_runtime.check_edit(
                original, text, version, self.name, runtime=self._requested_runtime(), default=self.params["default"],
                plugin_keys=self.plugin_keys, path=self.path,
            )  # fmt: skip
        after = self.form.apply(text) if changed else before
        self.result.update(
            config_version=version,
            runtime=toml_runtime.get_runtime(doc, version, self.name),
            default_runtime=toml_runtime.get_default(doc, version),
        )
        if after == before:
            if self.params["validate"] and self.containerd.available:
                self._effective(self.path, text)
            return self.result
        self.result.update(restart_required=True)
        validate = self._validate(text) if self.params["validate"] else None
        changes = replace_file(self.module, self.path, before, after, make_backup=self.params["backup"], validate=validate)
        self.result.update(changes)
        return self.result

    def _dump(self, text: str, what: str) -> dict[str, t.Any]:
        """containerd's ``config dump`` of ``text`` (a scratch file, removed after)."""
        with tempfile.NamedTemporaryFile("w", suffix=".toml", encoding="utf-8") as scratch:
            scratch.write(text)
            scratch.flush()
            result = self.containerd.run(["--config", scratch.name, "config", "dump"])
        if not result.ok:
            raise result.failure(f"containerd rejects {what}; nothing was changed")
        return drop_ins.parse_dump(result.stdout)

    def _copy(self, doc: t.Any, version: int) -> None:
        """Adds the keys of the first runtime of copy_from to the request (operator's keys win)."""
        use_containerd = self.params["validate"] and self.containerd.available
        if use_containerd:
            current = self.original_dump or self._dump(toml_runtime.dumps(doc), f"the config {self.path} starts from")
            runtimes = drop_ins.cri_table(current).get("runtimes")
            runtimes = runtimes if isinstance(runtimes, dict) else {}
        else:
            runtimes = {name: toml_runtime.get_runtime(doc, version, name) for name in [*self.copy_from, self.name]}
        source_name = next((n for n in self.copy_from if n != self.name and isinstance(runtimes.get(n), dict)), None)
        self.result["copied_from"] = source_name
        if source_name is None:
            return
        source = runtimes[source_name]
        reference: dict[str, t.Any] = {}
        if use_containerd:
            # what containerd fills in by itself for that runtime: copying it would change nothing
            probe: dict[str, t.Any] = {"runtime_type": source.get("runtime_type") or toml_runtime.DEFAULT_RUNTIME_TYPE}
            for key in reversed(toml_runtime.runtime_table_path(version, source_name)):
                probe = {key: probe}
            text = toml_runtime.tomlkit.dumps({"version": version, **probe})
            found = (drop_ins.cri_table(self._dump(text, f"the runtime {source_name!r} alone")).get("runtimes") or {}).get(
                source_name
            )
            reference = found if isinstance(found, dict) else {}
        target = runtimes.get(self.name)
        runtime_type, settings, options = drop_ins.copied_runtime(source, reference, target if isinstance(target, dict) else None)
        if self.runtime_type is None:
            self.runtime_type = runtime_type
        # an option the task gives wins over the copied one; a copied or left-over spelling other than the
        # task's (systemdCgroup beside SystemdCgroup) is removed, or containerd would have two to pick from
        given = {key.lower(): key for key in self.options}
        copied = {key: value if given.get(key.lower()) is None else None for key, value in options.items()}
        if isinstance(target, dict) and isinstance(target.get("options"), dict):
            copied.update({key: None for key in target["options"] if given.get(key.lower(), key) != key})
        self.options = {**{key: value for key, value in copied.items() if key not in given.values()}, **self.options}
        self.settings = {**settings, **self.settings}

    def _validate(self, text: str) -> t.Callable[[Candidate], None]:
        def validate(candidate: Candidate) -> None:
            if not self.containerd.available:
                raise KubeGPUError(
                    f"validate=true needs containerd, but {self.params['containerd_binary']!r} was not found on PATH or in "
                    f"{', '.join(BINARY_DIRS)}; install containerd first, give containerd_binary, or set validate=false"
                )
            self._effective(candidate.name, text)

        return validate


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if toml_runtime.TOMLKIT_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("tomlkit>=0.15.1"), exception=toml_runtime.TOMLKIT_IMPORT_ERROR)
    too_old = toml_runtime.tomlkit_too_old()
    if too_old:
        module.fail_json(msg=too_old)
    try:
        result = ContainerdRuntime(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
