# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure edits of docker's daemon.json runtimes. Private to the collection.

The document is a plain ``dict`` as ``json`` reads it, so key order is kept;
only ``runtimes.<name>`` and ``default-runtime`` are ever touched.

``problems()`` holds, once, the runtime rules dockerd 26.1 applies when it
starts (its ``--validate`` checks none of them): a runtime has either ``path``
(with optional ``runtimeArgs``) or ``runtimeType`` (with optional
``options``), never both; ``runc`` is reserved; ``default-runtime`` names a
configured runtime, a built-in one, or a containerd shim name.  Like dockerd's
JSON decoder, a runtime's keys are matched without regard to case.
"""

from __future__ import annotations

import json
import re
import shutil
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils import _runtime_name as runtime_name
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

# dockerd refuses a runtimes entry with this name
RESERVED_NAMES = ("runc",)
# runtimes dockerd always has (not from daemon.json); the module does not redefine them either
BUILTIN_RUNTIMES = ("runc", "io.containerd.runc.v2")
# a UTF-8 byte-order mark: dockerd reads a daemon.json that starts with one, so the module keeps it
BOM = "\ufeff"
# the keys of a runtime, as dockerd spells them, and the JSON type each must have
RUNTIME_KEYS = {"path": str, "runtimeArgs": list, "runtimeType": str, "options": dict}


def validate_name(name: str) -> str:
    """The shared runtime name rule, and not one of dockerd's built-in runtimes."""
    runtime_name.validate_name(name)
    if name in BUILTIN_RUNTIMES:
        raise KubeGPUError(f"name={name!r} is docker's built-in runtime, which daemon.json cannot redefine; choose another name")
    return name


def _no_duplicates(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
    result: dict[str, t.Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> t.NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def parse(text: str, path: str = "daemon.json") -> dict[str, t.Any]:
    """The daemon.json object; an empty file is ``{}``; a leading byte-order mark is
    ignored (``has_bom`` tells). Errors name the line and column."""
    text = text[len(BOM) :] if text.startswith(BOM) else text
    if not text.strip():
        return {}
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise KubeGPUError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}; nothing was changed",
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except ValueError as exc:
        raise KubeGPUError(f"{path} is not valid for dockerd: {exc}; nothing was changed") from exc
    if not isinstance(data, dict):
        raise KubeGPUError(f"{path} must hold a JSON object, found {_json_type(data)}; nothing was changed")
    runtimes = data.get("runtimes")
    if runtimes is not None and not isinstance(runtimes, dict):
        raise KubeGPUError(f"{path}: 'runtimes' must be an object, found {_json_type(runtimes)}; nothing was changed")
    default = data.get("default-runtime")
    if default is not None and not isinstance(default, str):
        raise KubeGPUError(f"{path}: 'default-runtime' must be a string, found {default!r}; nothing was changed")
    return data


def has_bom(text: str | None) -> bool:
    return bool(text) and text.startswith(BOM)


def _json_type(value: t.Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def detect_indent(text: str) -> int | str:
    """The indentation the file uses (spaces or a tab), 2 for a new or one-line file."""
    match = re.search(r"\n([ \t]+)\S", text)
    if not match:
        return 2
    indent = match.group(1)
    return "\t" if indent.startswith("\t") else len(indent)


def dumps(data: dict[str, t.Any], indent: int | str = 2, bom: bool = False) -> str:
    return (BOM if bom else "") + json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def _keys(runtime: dict[str, t.Any], key: str) -> list[str]:
    """The spellings of ``key`` in ``runtime`` (dockerd's decoder ignores case; the last one wins)."""
    return [candidate for candidate in runtime if candidate.lower() == key.lower()]


def field(runtime: dict[str, t.Any], key: str) -> t.Any:
    """The value dockerd reads for ``key`` of a runtime (None when absent)."""
    spellings = _keys(runtime, key)
    return runtime[spellings[-1]] if spellings else None


def _put(runtime: dict[str, t.Any], key: str, value: t.Any) -> None:
    """Sets ``key`` as dockerd spells it, in place of any other spelling."""
    spellings = _keys(runtime, key)
    if spellings == [key]:
        runtime[key] = value
        return
    for spelling in spellings:
        del runtime[spelling]
    runtime[key] = value


def _drop(runtime: dict[str, t.Any], key: str) -> None:
    for spelling in _keys(runtime, key):
        del runtime[spelling]


def runtime_problems(name: str, runtime: t.Any) -> list[str]:
    """What dockerd 26.1 refuses at start in ``runtimes.<name>``, each in words with what to do."""
    where = f"runtimes.{name}"
    if name in RESERVED_NAMES:
        return [f"{where}: the name {name!r} is reserved for docker's built-in runtime; rename or remove it"]
    if not isinstance(runtime, dict):
        return [f"{where} must be an object with 'path' or 'runtimeType', found {_json_type(runtime)}"]
    problems = []
    for key, kind in RUNTIME_KEYS.items():
        value = field(runtime, key)
        if value is not None and not isinstance(value, kind):
            problems.append(f"{where}.{key} must be a JSON {_json_type(kind())}, found {_json_type(value)}")
        elif key == "runtimeArgs" and value and not all(isinstance(arg, str) for arg in value):
            problems.append(f"{where}.runtimeArgs must be a list of strings, found {value!r}")
    if problems:
        return problems
    path, args, runtime_type, options = (field(runtime, key) for key in RUNTIME_KEYS)
    if not path and not runtime_type:
        problems.append(f"{where} has neither 'path' nor 'runtimeType'; dockerd needs one of them")
    elif path and runtime_type:
        problems.append(
            f"{where} has both 'path' ({path!r}) and 'runtimeType' ({runtime_type!r}), which dockerd refuses; keep one"
        )
    elif path and options:
        problems.append(f"{where} has 'options' beside 'path'; dockerd allows 'options' only with 'runtimeType'")
    elif runtime_type and args:
        problems.append(f"{where} has 'runtimeArgs' beside 'runtimeType'; dockerd allows 'runtimeArgs' only with 'path'")
    return problems


def default_known(data: dict[str, t.Any], default: str) -> bool:
    """Whether dockerd accepts ``default-runtime: default``: a configured or built-in runtime,
    or a containerd shim name (a dot, no slash, e.g. ``io.containerd.kata.v2``)."""
    return default in BUILTIN_RUNTIMES or default in (data.get("runtimes") or {}) or ("." in default and "/" not in default)


def problems(data: dict[str, t.Any]) -> list[str]:
    """Every runtime rule dockerd 26.1 applies at start that ``data`` breaks."""
    found = []
    for name, runtime in (data.get("runtimes") or {}).items():
        found.extend(runtime_problems(name, runtime))
    default = data.get("default-runtime")
    if default and not default_known(data, default):
        found.append(
            f"default-runtime={default!r} names no runtime in 'runtimes' and is not built in "
            f"({', '.join(BUILTIN_RUNTIMES)}); dockerd refuses to start"
        )
    return found


def host_problems(data: dict[str, t.Any], which: t.Callable[[str], str | None] = shutil.which) -> list[str]:
    """What dockerd 26.1 refuses at start on this host: a default runtime with ``runtimeArgs``
    runs through a wrapper script, and dockerd checks at start that its ``path`` exists."""
    default = data.get("default-runtime")
    runtime = (data.get("runtimes") or {}).get(default) if default else None
    if not isinstance(runtime, dict) or not field(runtime, "runtimeArgs"):
        return []
    path = field(runtime, "path")
    if not isinstance(path, str) or not path or which(path):
        return []
    return [
        f"runtimes.{default} is the default runtime and has runtimeArgs, so dockerd looks for its path {path!r} when it "
        "starts, and it is not an executable on this host; install the runtime first"
    ]


def set_runtime(
    data: dict[str, t.Any],
    name: str,
    path: str | None = None,
    runtime_args: t.Sequence[str] | None = None,
    *,
    runtime_type: str | None = None,
    options: dict[str, t.Any] | None = None,
    file: str = "daemon.json",
) -> bool:
    """Sets ``runtimes.<name>`` to run ``path`` (with ``runtimeArgs`` when given, an empty
    list removing them) or the shim ``runtime_type`` (``options`` merged into its options).
    Other keys of the runtime are kept. A request that would give the runtime both forms
    is refused: dockerd does not start with ``path`` and ``runtimeType`` together.
    Returns whether it changed."""
    validate_name(name)
    if (path is None) == (runtime_type is None):
        raise KubeGPUError("give either runtime_path or runtime_type (not both): docker runs one or the other")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise KubeGPUError(f"runtime_path={path!r} is not an absolute path; docker needs the runtime binary's full path")
    if runtime_type is not None and not _is_shim_name(runtime_type):
        raise KubeGPUError(
            f"runtime_type={runtime_type!r} is not a containerd shim name; use a name like 'io.containerd.runc.v2' "
            "(dots, no slash) or a shim binary's absolute path"
        )
    if runtime_type is not None and runtime_args:
        raise KubeGPUError("runtime_args cannot be combined with runtime_type: dockerd passes arguments only to a path runtime")
    if path is not None and options:
        raise KubeGPUError("runtime_options cannot be combined with runtime_path: dockerd allows options only with runtimeType")
    for key, value in (options or {}).items():
        if value is None:
            raise KubeGPUError(f"runtime_options.{key} is null; give a value (dockerd cannot pass a null option)")
    runtimes = data.setdefault("runtimes", {})
    before = json.dumps(runtimes.get(name), sort_keys=True)
    runtime = runtimes.setdefault(name, {})
    if not isinstance(runtime, dict):
        raise KubeGPUError(f"{file}: runtimes.{name} must be an object, found {runtime!r}; fix the file first")
    if path is not None:
        other = field(runtime, "runtimeType")
        if other or field(runtime, "options"):
            raise KubeGPUError(
                f"{file}: runtimes.{name} is a shim runtime (runtimeType {other!r}); runtime_path would add 'path' beside "
                "it, which dockerd refuses. Give runtime_type (and runtime_options, e.g. BinaryName) instead of "
                f"runtime_path, or remove the runtime first (state=absent) to make it a path runtime; nothing was changed"
            )
        _put(runtime, "path", path)
        if runtime_args is not None:
            if runtime_args:
                _put(runtime, "runtimeArgs", list(runtime_args))
            else:
                _drop(runtime, "runtimeArgs")
    else:
        other = field(runtime, "path")
        if other or field(runtime, "runtimeArgs"):
            raise KubeGPUError(
                f"{file}: runtimes.{name} is a path runtime (path {other!r}); runtime_type would add 'runtimeType' beside "
                "it, which dockerd refuses. Give runtime_path instead of runtime_type, or remove the runtime first "
                "(state=absent) to make it a shim runtime; nothing was changed"
            )
        _put(runtime, "runtimeType", runtime_type)
        if options:
            current = field(runtime, "options")
            merged = dict(current) if isinstance(current, dict) else {}
            merged.update(options)
            _put(runtime, "options", merged)
    return json.dumps(runtime, sort_keys=True) != before


def _is_shim_name(name: t.Any) -> bool:
    """A containerd shim: a name like io.containerd.kata.v2, or a shim binary's absolute path."""
    if not isinstance(name, str) or name != name.strip() or not name:
        return False
    if name.startswith("/"):
        return True
    return "." in name and "/" not in name and not name.startswith(".")


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
