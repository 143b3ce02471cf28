#!/usr/bin/python
# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_runtime
short_description: Add or remove a runtime in docker's daemon.json
version_added: 0.1.0
description:
  - Adds a runtime (for example C(nvidia) running C(/usr/bin/nvidia-container-runtime)) to C(runtimes) in
    docker's C(daemon.json), optionally makes it C(default-runtime), or removes it.
  - Every other key of the file, and the order of keys, stay as they are; the file's indentation is kept.
  - The file is checked before it is edited (valid JSON, an object, no duplicate keys, C(runtimes) an object,
    C(default-runtime) a string); a broken file fails with its line and column and is left alone. A UTF-8
    byte-order mark, which dockerd accepts, is kept.
  - The module knows the runtime rules dockerd applies when it starts (which C(dockerd --validate) does not check)
    and never writes a file dockerd would refuse. A runtime has either C(path) (with optional C(runtimeArgs)) or
    C(runtimeType) (with optional C(options)), never both; C(runc) is reserved; C(default-runtime) must name a
    configured or built-in runtime; a default runtime with C(runtimeArgs) must have its C(path) installed on the
    host. A request that would break a rule, or a file whose other runtimes already break
    one, fails with a message naming the runtime and the keys, and the file is left alone.
  - The replacement is atomic and keeps the file's mode and owner; a new file gets mode C(0644) whatever the umask.
    A O(path) that is a symbolic link is edited through the link (the link stays); a dangling link is refused.
  - The module does not restart docker; it returns RV(restart_required) for a handler to act on.
author:
  - kubegpu.core maintainers (@kubegpu)
extends_documentation_fragment:
  - kubegpu.core._attributes
  - kubegpu.core._config_edit
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff is the file's text before and after.
  idempotent:
    support: full
options:
  path:
    description: Docker's daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  name:
    description:
      - The runtime's name, as given to C(docker run --runtime).
      - 1 to 63 letters, digits, C(.), C(_) or C(-), starting and ending with a letter or digit; not C(runc) or
        C(io.containerd.runc.v2), docker's built-in runtimes.
      - Unlike O(kubegpu.core.containerd_runtime#module:name), upper case, C(.) and C(_) are allowed, as dockerd accepts
        them and a docker runtime is never the C(handler) of a Kubernetes RuntimeClass (cri-dockerd accepts only the
        handler C(docker) or none; pods get the runtime through C(default-runtime)).
    type: str
    required: true
  state:
    description:
      - V(present) adds the runtime or updates it; V(absent) removes it (and C(default-runtime) if it named it).
    type: str
    choices: [present, absent]
    default: present
  runtime_path:
    description:
      - The runtime binary's absolute path (C(runtimes.<name>.path)), an OCI runtime such as
        C(nvidia-container-runtime) that docker runs through containerd's runc shim.
      - With O(state=present) give this or O(runtime_type), not both; or neither, to change only O(default) of a
        runtime the file already has (which is then left as it is).
      - Refused when the runtime already exists with C(runtimeType) (dockerd does not start with both); give
        O(runtime_type) then, or remove the runtime first.
    type: path
    aliases: [binary_name]
  runtime_args:
    description:
      - Arguments docker passes to the runtime (C(runtimeArgs)); only with O(runtime_path). Omitted, existing arguments
        are kept; an empty list removes them.
    type: list
    elements: str
  runtime_type:
    description:
      - A containerd shim to run the runtime (C(runtimes.<name>.runtimeType)), either a shim name with dots and no slash or a
        shim binary's absolute path. For example C(io.containerd.runc.v2)
        with O(runtime_options) setting C(BinaryName) to C(/usr/bin/nvidia-container-runtime), the form Docker 23 and later
        document for shims.
      - Refused when the runtime already exists with C(path) (dockerd does not start with both); give O(runtime_path)
        then, or remove the runtime first.
    type: str
  runtime_options:
    description:
      - Options for the shim (C(runtimes.<name>.options)); only with O(runtime_type). The keys given are set, other
        options of the runtime are kept. dockerd checks the values against the shim's options when it starts.
    type: dict
  default:
    description:
      - V(true) sets C(default-runtime) to this runtime.
      - V(false) removes C(default-runtime) if it names this runtime, so docker's default (runc) applies again;
        a default naming another runtime is left alone.
      - Omitted, C(default-runtime) is left as it is (except with O(state=absent)).
    type: bool
seealso:
  - module: kubegpu.core.containerd_runtime
notes:
  - Restart docker after a change (RV(restart_required)) for it to take effect.
"""

EXAMPLES = r"""
- name: Add the NVIDIA runtime and make it docker's default
  kubegpu.core.docker_runtime:
    name: nvidia
    runtime_path: /usr/bin/nvidia-container-runtime
    default: true
  notify: Restart docker

- name: The same runtime as a containerd shim (runtimeType), the form Docker 23 and later document
  kubegpu.core.docker_runtime:
    name: nvidia
    runtime_type: io.containerd.runc.v2
    runtime_options:
      BinaryName: /usr/bin/nvidia-container-runtime

- name: Remove it again
  kubegpu.core.docker_runtime:
    name: nvidia
    state: absent
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
runtime:
  description: The runtime's entry after the change; C(null) when it is absent.
  returned: always
  type: dict
  sample: {"path": "/usr/bin/nvidia-container-runtime"}
default_runtime:
  description: C(default-runtime) after the change; C(null) when the file does not set it.
  returned: always
  type: str
  sample: nvidia
restart_required:
  description: Whether the file changed (or would change in check mode), so docker must be restarted.
  returned: always
  type: bool
backup_file:
  description: The backup of the old file.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /etc/docker/daemon.json.12345.2026-01-01@00:00:00~
"""

import os
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.core.plugins.module_utils import _json_runtime as json_runtime
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._files import (
    CONFIG_EDIT_ARG_SPEC,
    check_lock_timeout,
    edit_lock,
    read_text,
    replace_file,
)

ARGUMENT_SPEC: dict[str, t.Any] = {
    "path": {"type": "path", "default": "/etc/docker/daemon.json"},
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "runtime_path": {"type": "path", "aliases": ["binary_name"]},
    "runtime_args": {"type": "list", "elements": "str"},
    "runtime_type": {"type": "str"},
    "runtime_options": {"type": "dict"},
    "default": {"type": "bool"},
    **CONFIG_EDIT_ARG_SPEC,
}


class DockerRuntime:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.path: str = self.params["path"]
        self.name = json_runtime.validate_name(self.params["name"])
        if self.params["state"] == "absent" and self.params["default"]:
            raise KubeGPUError("default=true cannot be combined with state=absent; a removed runtime cannot be the default")
        self.result: dict[str, t.Any] = {"path": self.path, "changed": False, "restart_required": False}
        self.lock_timeout = check_lock_timeout(self.params["lock_timeout"])

    def _edit(self, data: dict[str, t.Any]) -> None:
        params = self.params
        if params["state"] == "absent":
            json_runtime.unset_default(data, self.name)
            json_runtime.remove_runtime(data, self.name)
            return
        if params["runtime_path"] is None and params["runtime_type"] is None:
            # only the default is asked for: the runtime must be there already, and is left as it is
            if params["runtime_args"] is not None or params["runtime_options"] is not None:
                raise KubeGPUError(
                    "runtime_args needs runtime_path and runtime_options needs runtime_type; give the runtime's form with them"
                )
            if self.name not in (data.get("runtimes") or {}):
                raise KubeGPUError(
                    f"{self.path} has no runtime {self.name!r}; give runtime_path (or runtime_type) to add it; "
                    "nothing was changed"
                )
        else:
            json_runtime.set_runtime(
                data,
                self.name,
                path=params["runtime_path"],
                runtime_args=params["runtime_args"],
                runtime_type=params["runtime_type"],
                options=params["runtime_options"],
                file=self.path,
            )
        if params["default"] is True:
            json_runtime.set_default(data, self.name)
        elif params["default"] is False:
            json_runtime.unset_default(data, self.name)

    def run(self) -> dict[str, t.Any]:
        if self.params["state"] == "absent" and not os.path.lexists(self.path):
            # nothing to remove: no lock (nor its directory) is made for it
            return self._run()
        with edit_lock(self.module, self.path, self.lock_timeout):
            return self._run()

    def _run(self) -> dict[str, t.Any]:
        before = read_text(self.path)
        data = json_runtime.parse(before or "", self.path)
        if before is None and self.params["state"] == "absent":
            self.result.update(runtime=None, default_runtime=None)
            return self.result
        self._edit(data)
        after = json_runtime.dumps(data, json_runtime.detect_indent(before or ""), json_runtime.has_bom(before))
        self.result.update(
            runtime=(data.get("runtimes") or {}).get(self.name),
            default_runtime=json_runtime.get_default(data),
        )
        if before is not None and json_runtime.parse(before, self.path) == data:
            # same content: a file formatted differently from ours is not rewritten
            return self.result
        broken = json_runtime.problems(data) + json_runtime.host_problems(data)
        if broken:
            old = json_runtime.parse(before or "", self.path)
            already = set(json_runtime.problems(old) + json_runtime.host_problems(old))
            listed = [f"{problem} (already so in the file)" if problem in already else problem for problem in broken]
            raise KubeGPUError(
                f"dockerd would not start with {self.path} after this change: {'; '.join(listed)}. "
                "Nothing was changed; fix the file or the request first",
                problems=broken,
            )
        self.result.update(restart_required=True)
        self.result.update(replace_file(self.module, self.path, before, after, make_backup=self.params["backup"]))
        return self.result


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[
            ("runtime_path", "runtime_type"),
            ("runtime_args", "runtime_type"),
            ("runtime_options", "runtime_path"),
        ],
        supports_check_mode=True,
    )
    try:
        result = DockerRuntime(module).run()
    except KubeGPUError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
