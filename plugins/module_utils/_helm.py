# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The helm CLI (v3 and v4) through CommandRunner. Private to the collection.

``Helm`` finds the binary, learns its major version once, and turns the shared
Kubernetes connection options into helm's global flags; every command is an argv
list run through ``_command.CommandRunner``. A command that talks to the cluster and
fails on a transient API error (``TRANSIENT_API_ERRORS``: what client-go and
kube-apiserver print for a 5xx or a dropped connection) is run again with the
collection's backoff (``_kube._backoff``) until ``api_timeout`` is spent.

``load_values`` reads a values file as helm does (go-yaml v2's scalar resolution,
then JSON numbers), and ``as_helm_stores`` turns planned values into what helm
stores, so that they compare with ``helm get values -o json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import typing as t

try:
    import yaml
except ImportError:  # PyYAML ships with ansible-core
    yaml = None

from ansible_collections.kubegpu.core.plugins.module_utils._command import CommandRunner
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError
from ansible_collections.kubegpu.core.plugins.module_utils._kube import (
    CONNECT_ATTEMPTS,
    PERMANENT_500_MESSAGES,
    check_api_timeout,
)
from ansible_collections.kubegpu.core.plugins.module_utils._kube import _backoff as backoff

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


# What helm prints when a request to the API server failed in a way a retry can cure. client-go retries a 429
# or 5xx by itself only when it carries Retry-After; these are the rest. From k8s.io/apimachinery
# pkg/api/errors (NewInternalError, NewTimeoutError, NewGenericServerResponse for a body that is no Status),
# etcd's errors that kube-apiserver passes on, and Go's net/http and net errors for a dropped connection.
TRANSIENT_API_ERRORS = (
    "Internal error occurred:",  # kube-apiserver's 500
    "Timeout: ",  # kube-apiserver's 504
    "has prevented the request from succeeding",  # client-go: a 5xx whose body is not a Status (a proxy's 502)
    "the server is currently unable to handle the request",  # client-go: 503
    "the server was unable to return a response in the time allotted",  # client-go: 504
    "the server has received too many requests",  # client-go: 429
    "etcdserver: request timed out",
    "etcdserver: leader changed",
    "connection reset by peer",
    "http2: client connection lost",
    "TLS handshake timeout",
    "i/o timeout",
    "unexpected EOF",
)
# a refused connection: an API server that restarts comes back quickly or not at all (as _kube)
REFUSED = "connection refused"
# float64 holds every integer up to 2**53 exactly; helm's values are JSON numbers read as float64
EXACT_INTEGERS = 2**53


def transient(output: str) -> bool:
    """Whether helm's error output is a transient API failure worth another try."""
    if any(text in output for text in PERMANENT_500_MESSAGES):
        return False
    return REFUSED in output or any(text in output for text in TRANSIENT_API_ERRORS)


# -- values as helm reads them ------------------------------------------------------------------

# go-yaml v2 (gopkg.in/yaml.v2 resolve.go; helm reads values with sigs.k8s.io/yaml, which uses it) resolves a
# plain scalar by its first character: a digit or sign may be an int (strconv.ParseInt(s, 0, 64) with '_'
# removed, else ParseUint) or a float (yamlStyleFloat); a '.' a float; these words a bool or null; anything
# else, timestamps included (kept as the text for interface{} values), is a string.
_GO_WORDS: dict[str, t.Any] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
}
_GO_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z")
_GO_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_PLAIN_TAG = "tag:kubegpu.core,2026:helm-plain"


def _go_int(text: str) -> int | None:
    match = _GO_INT.match(text)
    if not match:
        return None
    sign, digits = match.groups()
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "xXoObB":
        value = int(digits[2:], {"x": 16, "o": 8, "b": 2}[digits[1].lower()])
    else:
        value = int(digits, 8) if digits[0] == "0" else int(digits)
    value = -value if sign == "-" else value
    if -(2**63) <= value < 2**63 or (sign == "" and value < 2**64):  # ParseInt, then ParseUint (no sign)
        return value
    return None


def go_yaml_scalar(text: str) -> t.Any:
    """A plain YAML scalar as go-yaml v2 decodes it into an interface{} (helm's values)."""
    if text in _GO_WORDS:
        return _GO_WORDS[text]
    first = text[0]
    if first.isdigit() or first in "+-":
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return number
        if _GO_YAML_FLOAT.match(plain):
            return float(plain)
    elif first == ".":
        try:
            return float(text) if _GO_YAML_FLOAT.match(text) else text
        except ValueError:
            return text
    return text


if yaml is not None:

    class HelmValuesLoader(yaml.SafeLoader):
        """PyYAML's safe loader with go-yaml v2's plain scalars: no YAML 1.1 sexagesimals, timestamps kept as
        written, ``y``/``n`` booleans, Go's integer syntax (``0o17``, ``0x1F``), ``1e3`` a float."""

        def resolve(self, kind: t.Any, value: t.Any, implicit: t.Any) -> t.Any:
            if kind is yaml.ScalarNode and implicit[0]:
                return _PLAIN_TAG
            return super().resolve(kind, value, implicit)

    def _construct_plain(loader: t.Any, node: t.Any) -> t.Any:
        return go_yaml_scalar(loader.construct_scalar(node))

    def _construct_timestamp(loader: t.Any, node: t.Any) -> t.Any:
        return loader.construct_scalar(node)  # an explicit !!timestamp: go-yaml v2 keeps the text too

    HelmValuesLoader.add_constructor(_PLAIN_TAG, _construct_plain)
    HelmValuesLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def load_values(text: str) -> t.Any:
    """A values document as helm reads it (``yaml.YAMLError`` when it is not YAML)."""
    return yaml.load(text, Loader=HelmValuesLoader)


def as_helm_stores(value: t.Any) -> t.Any:
    """``value`` as helm stores it: sigs.k8s.io/yaml turns values into JSON and reads every number back as a
    float64, so an integer beyond 2**53 is rounded. Integers stay ints (helm prints 1000, not 1000.0)."""
    if isinstance(value, dict):
        return {str(key) if not isinstance(key, bool) else str(key).lower(): as_helm_stores(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_helm_stores(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > EXACT_INTEGERS:
        return int(float(value))
    return value


def rounded_integers(value: t.Any, path: str = "") -> list[str]:
    """The paths of integers in ``value`` that float64 cannot hold exactly (helm keeps them rounded)."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in rounded_integers(item, f"{path}.{key}" if path else str(key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in rounded_integers(item, f"{path}[{index}]")]
    if isinstance(value, int) and not isinstance(value, bool) and int(float(value)) != value:
        return [f"{path}={value} (helm stores {int(float(value))})"]
    return []


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
        # the same rule as the API client's (0 or less is refused, not replaced by the default)
        self.retry_seconds = check_api_timeout(connection.get("api_timeout"))
        self.retries = 0
        # the scratch directory may hold a kubeconfig with a token: it goes whatever fails from here on
        self._scratch = tempfile.mkdtemp(prefix="kubegpu-helm-")
        try:
            self.flags = self._connection_flags(connection)
            self.environ: dict[str, str] = {}
            if connection.get("proxy"):
                self.environ = {"HTTPS_PROXY": connection["proxy"], "HTTP_PROXY": connection["proxy"]}
            version = self.run(["version", "--template", "{{.Version}}"], what="reading the helm version", kube=False)
            self.major = supported_version(version.stdout, self.runner.path)
        except BaseException:
            self.cleanup()
            raise
        self.version = version.stdout.strip()

    def cleanup(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    def scratch_dir(self, name: str) -> str:
        path = os.path.join(self._scratch, name)
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path

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
        """``helm args... [connection flags]``; a failure raises naming ``what``. A command that talks to the
        cluster (``kube``) and fails on a transient API error is run again, with backoff, within api_timeout."""
        full = [*args, *self.flags] if kube else list(args)
        deadline = time.monotonic() + self.retry_seconds
        attempt = refused = 0
        while True:
            attempt += 1
            result = self.runner.run(full, what=what, environ=self.environ)
            output = result.stderr + result.stdout
            if result.ok or not kube or not transient(output):
                break
            refused += REFUSED in output
            if refused >= CONNECT_ATTEMPTS:
                break
            delay = backoff(attempt)
            if time.monotonic() + delay >= deadline:
                break
            time.sleep(delay)
            self.retries += 1
        if check and not result.ok:
            if attempt > 1:
                result.stderr = f"{result.stderr.rstrip()} (after {attempt} attempts)"
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
