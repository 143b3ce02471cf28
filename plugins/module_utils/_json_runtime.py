# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure edits of docker's daemon.json runtimes. Private to the collection.

The document is a plain ``dict`` as ``json`` reads it, so key order is kept;
only ``runtimes.<name>`` and ``default-runtime`` are ever touched.
"""

from __future__ import annotations

import json
import re
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils import _runtime_name as runtime_name
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

# dockerd refuses to redefine its built-in runtime
RESERVED_NAMES = ("runc",)


def validate_name(name: str) -> str:
    """The shared runtime name rule, and not one of dockerd's built-in runtimes."""
    runtime_name.validate_name(name)
    if name in RESERVED_NAMES:
        raise KubeGPUError(f"name={name!r} is docker's built-in runtime, which daemon.json cannot redefine; choose another name")
    return name


def _no_duplicates(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
    result: dict[str, t.Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse(text: str, path: str = "daemon.json") -> dict[str, t.Any]:
    """The daemon.json object; an empty file is ``{}``. Errors name the line and column."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise KubeGPUError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}; nothing was changed",
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except ValueError as exc:
        raise KubeGPUError(f"{path} is not valid for dockerd: {exc}; nothing was changed") from exc
    if not isinstance(data, dict):
        raise KubeGPUError(f"{path} must hold a JSON object, found {type(data).__name__}; nothing was changed")
    runtimes = data.get("runtimes")
    if runtimes is not None and not isinstance(runtimes, dict):
        raise KubeGPUError(f"{path}: 'runtimes' must be an object, found {type(runtimes).__name__}; nothing was changed")
    default = data.get("default-runtime")
    if default is not None and not isinstance(default, str):
        raise KubeGPUError(f"{path}: 'default-runtime' must be a string, found {default!r}; nothing was changed")
    return data


def detect_indent(text: str) -> int | str:
    """The indentation the file uses (spaces or a tab), 2 for a new or one-line file."""
    match = re.search(r"\n([ \t]+)\S", text)
    if not match:
        return 2
    indent = match.group(1)
    return "\t" if indent.startswith("\t") else len(indent)


def dumps(data: dict[str, t.Any], indent: int | str = 2) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def set_runtime(data: dict[str, t.Any], name: str, path: str, runtime_args: t.Sequence[str] | None = None) -> bool:
    """Sets ``runtimes.<name>.path`` (and ``runtimeArgs`` when given, an empty list
    removing them); other keys of the runtime are kept. Returns whether it changed."""
    validate_name(name)
    if not isinstance(path, str) or not path.startswith("/"):
        raise KubeGPUError(f"runtime_path={path!r} is not an absolute path; docker needs the runtime binary's full path")
    runtimes = data.setdefault("runtimes", {})
    before = json.dumps(runtimes.get(name), sort_keys=True)
    runtime = runtimes.setdefault(name, {})
    if not isinstance(runtime, dict):
        raise KubeGPUError(f"daemon.json: runtimes.{name} must be an object, found {runtime!r}; fix the file first")
    runtime["path"] = path
    if runtime_args is not None:
        if runtime_args:
            runtime["runtimeArgs"] = list(runtime_args)
        else:
            runtime.pop("runtimeArgs", None)
    return json.dumps(runtime, sort_keys=True) != before


def remove_runtime(data: dict[str, t.Any], name: str) -> bool:
    """Removes ``runtimes.<name>`` (and ``runtimes`` when it becomes empty)."""
    runtimes = data.get("runtimes")
    if not runtimes or name not in runtimes:
        return False
    del runtimes[name]
    if not runtimes:
        del data["runtimes"]
    return True


def get_default(data: dict[str, t.Any]) -> str | None:
    return data.get("default-runtime")


def set_default(data: dict[str, t.Any], name: str) -> bool:
    if data.get("default-runtime") == name:
        return False
    data["default-runtime"] = name
    return True


def unset_default(data: dict[str, t.Any], name: str) -> bool:
    """Removes ``default-runtime`` when it names ``name`` (docker's default, runc,
    applies again); a default naming another runtime is left alone."""
    if data.get("default-runtime") != name:
        return False
    del data["default-runtime"]
    return True
