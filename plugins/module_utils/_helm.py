# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The helm CLI (v3 and v4) through CommandRunner. Private to the collection.

``Helm`` finds the binary, learns its major version once, and turns the shared
Kubernetes connection options into helm's global flags; every command is an argv
list run through ``_command.CommandRunner``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import typing as t

try:
    import yaml
except ImportError:  # PyYAML ships with ansible-core
    yaml = None

from ansible_collections.kubegpu.core.plugins.module_utils._command import CommandRunner
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

# Connection options helm has no flag for.
UNSUPPORTED = ("username", "password", "client_cert", "client_key")
# The oldest helm the collection runs: the roles remove a device stack with ``helm uninstall --cascade foreground``
# (helm/helm#11479, first released in v3.12.0); helm v4 has every flag helm_release uses.
MINIMUM_VERSION = (3, 12)


def supported_version(text: str, path: str) -> int:
    """The major version of a helm that printed ``text`` for ``helm version --template {{.Version}}``; a helm the
    collection cannot run (v2, v3 before 3.12, v5 or later, or not a version at all) raises, naming it."""
    match = re.match(r"v?(\d+)\.(\d+)", text.strip())
    wanted = f"v{MINIMUM_VERSION[0]}.{MINIMUM_VERSION[1]} or later v3, or v4"
    if not match:
        raise KubeGPUError(f"{path} printed {text.strip()!r} as its version, not a helm's; kubegpu.core needs helm {wanted}")
    major, minor = int(match.group(1)), int(match.group(2))
    if major not in (3, 4) or (major, minor) < MINIMUM_VERSION:
        raise KubeGPUError(
            f"{path} is helm {text.strip()}; kubegpu.core needs helm {wanted} (the roles remove a stack with "
            "helm uninstall --cascade, new in v3.12.0): install a newer helm, or set binary_path "
            "(kubegpu_helm_binary in the playbooks) to one"
        )
    return major


def deep_merge(base: dict[str, t.Any], override: dict[str, t.Any]) -> dict[str, t.Any]:
    """Values files and values coalesce as helm does: maps merge key by key, anything else is replaced."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def chart_source(ref: str) -> str:
    """Where helm takes chart ``ref`` from: ``oci`` (an ``oci://`` reference), ``path`` (a chart directory or
    archive: absolute, starting with ``.``, ending in ``.tgz``, or any path that exists) or ``repository``
    (``repo/name``, or a plain name given with a repository URL)."""
    if ref.startswith("oci://"):
        return "oci"
    if ref.startswith((".", "/")) or ref.endswith(".tgz") or os.path.exists(ref):
        return "path"
    return "repository"


class Helm:
    def __init__(self, module: t.Any, binary: str | None, connection: dict[str, t.Any]) -> None:
        self.module = module
        try:
            self.runner = CommandRunner(module, binary or "helm")
        except KubeGPUError as exc:
            raise KubeGPUError(
                f"{exc.msg} (kubegpu.core needs helm v{MINIMUM_VERSION[0]}.{MINIMUM_VERSION[1]} or later v3, or v4; set "
                "binary_path, kubegpu_helm_binary in the playbooks, to use one outside PATH)"
            ) from exc
        for option in UNSUPPORTED:
            if connection.get(option):
                raise KubeGPUError(f"helm has no flag for {option}; put the credentials in a kubeconfig and give kubeconfig")
        self._scratch = tempfile.mkdtemp(prefix="kubegpu-helm-")
        self.flags = self._connection_flags(connection)
        self.environ: dict[str, str] = {}
        if connection.get("proxy"):
            self.environ = {"HTTPS_PROXY": connection["proxy"], "HTTP_PROXY": connection["proxy"]}
        version = self.run(["version", "--template", "{{.Version}}"], what="reading the helm version", kube=False)
        self.major = supported_version(version.stdout, self.runner.path)
        self.version = version.stdout.strip()

    def cleanup(self) -> None:
        for name in os.listdir(self._scratch):
            os.unlink(os.path.join(self._scratch, name))
        os.rmdir(self._scratch)

    def scratch_file(self, name: str, text: str) -> str:
        path = os.path.join(self._scratch, name)
        with open(path, "w", encoding="utf-8") as handle:
            os.chmod(path, 0o600)
            handle.write(text)
        return path

    def _connection_flags(self, connection: dict[str, t.Any]) -> list[str]:
        flags: list[str] = []
        kubeconfig = connection.get("kubeconfig")
        if isinstance(kubeconfig, dict):
            kubeconfig = self.scratch_file("kubeconfig", json.dumps(kubeconfig))
        elif kubeconfig is not None and not isinstance(kubeconfig, str):
            raise KubeGPUError(f"kubeconfig must be a file path or a dictionary, not {type(kubeconfig).__name__}")
        elif kubeconfig:
            kubeconfig = os.path.expanduser(kubeconfig.split(os.pathsep)[0])
            if not os.path.isfile(kubeconfig):
                raise KubeGPUError(f"kubeconfig file {kubeconfig} not found")
        if kubeconfig:
            flags += ["--kubeconfig", kubeconfig]
        if connection.get("context"):
            flags += ["--kube-context", connection["context"]]
        if connection.get("host"):
            flags += ["--kube-apiserver", connection["host"]]
        if connection.get("api_key"):
            flags += ["--kube-token", connection["api_key"]]
        if connection.get("ca_cert"):
            flags += ["--kube-ca-file", connection["ca_cert"]]
        if connection.get("validate_certs") is False:
            flags.append("--kube-insecure-skip-tls-verify")
        return flags

    def run(self, args: list[str], *, what: str, kube: bool = True, check: bool = True) -> t.Any:
        """``helm args... [connection flags]``; a failure raises naming ``what``."""
        full = [*args, *self.flags] if kube else list(args)
        result = self.runner.run(full, what=what, environ=self.environ)
        if check and not result.ok:
            error = result.failure(what)
            # the token must not appear in a failure message
            for index, arg in enumerate(full):
                if arg == "--kube-token" and index + 1 < len(full):
                    error.msg = error.msg.replace(full[index + 1], "********")
                    error.details["cmd"] = error.details["cmd"].replace(full[index + 1], "********")
            raise error
        return result

    def local_chart(self, path: str, version: str | None) -> dict[str, t.Any]:
        """The Chart.yaml of the chart directory or archive ``path`` (``helm show chart``, which reads either
        without a cluster or network); raises when it is missing, not a chart, or not ``version``."""
        if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "Chart.yaml")):
            raise KubeGPUError(f"chart_ref={path!r} is a directory without Chart.yaml, not a chart")
        if not os.path.exists(path):
            raise KubeGPUError(f"chart {path} not found")
        shown = self.run(["show", "chart", path], what=f"reading chart {path}", kube=False)
        try:
            metadata = yaml.safe_load(shown.stdout) if yaml else None
        except yaml.YAMLError:
            metadata = None
        if not isinstance(metadata, dict) or not metadata.get("name"):
            raise KubeGPUError(f"chart {path}: helm show chart printed no chart metadata: {shown.stdout[:200]!r}")
        found = str(metadata.get("version"))
        if version and version != found:
            raise KubeGPUError(f"chart {path} is version {found}, not chart_version={version}")
        return metadata

    def json(self, args: list[str], *, what: str, kube: bool = True) -> t.Any:
        return self.run([*args, "-o", "json"], what=what, kube=kube).json()

    def wait_flags(self, wait: bool, atomic: bool, timeout: str) -> list[str]:
        flags = ["--timeout", timeout]
        if atomic:
            flags.append("--rollback-on-failure" if self.major >= 4 else "--atomic")
        if wait:
            flags.append("--wait=watcher" if self.major >= 4 else "--wait")
        return flags
