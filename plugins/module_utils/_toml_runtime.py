# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure edits of containerd's config.toml runtimes. Private to the collection.

Every function works on a ``tomlkit`` document, so comments, key order and
formatting of everything it does not touch survive a round trip.  Nothing here
reads files or runs containerd; the module does that.

Where the CRI runtimes live, by config version:

* 2 (containerd 1.x):         ``plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>``
* 3 (containerd 2.0 to 2.2):  ``plugins."io.containerd.cri.v1.runtime".containerd.runtimes.<name>``
* 4 (containerd 2.3 and later): same table as version 3.

CDI (``enable_cdi``, ``cdi_spec_dirs``) is a key of the CRI plugin table itself, the
parent of ``containerd``: ``plugins."io.containerd.grpc.v1.cri"`` (version 2) or
``plugins."io.containerd.cri.v1.runtime"`` (versions 3 and 4).
"""

from __future__ import annotations

import json
import re
import traceback
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError, one_of
from ansible_collections.kubegpu.core.plugins.module_utils._runtime_name import validate_handler

TOMLKIT_IMPORT_ERROR: str | None
try:
    import tomlkit
    from tomlkit.container import OutOfOrderTableProxy
    from tomlkit.exceptions import ParseError as TOMLParseError
    from tomlkit.exceptions import TOMLKitError
except ImportError:
    tomlkit = None
    OutOfOrderTableProxy = TOMLParseError = TOMLKitError = ValueError  # type: ignore[assignment,misc]
    TOMLKIT_IMPORT_ERROR = traceback.format_exc()
else:
    TOMLKIT_IMPORT_ERROR = None

# Older tomlkit releases lose literal quoting, move comments and, in files that
# split a table, can put an edit in the wrong table: the edits here need 0.15.1.
TOMLKIT_MIN_VERSION = (0, 15, 1)


def tomlkit_too_old() -> str | None:
    """A message when the importable tomlkit is older than the edits need, else None."""
    version = getattr(tomlkit, "__version__", "0")
    parts = tuple(int(part) if part.isdigit() else 0 for part in version.split(".")[:3])
    if parts >= TOMLKIT_MIN_VERSION:
        return None
    wanted = ".".join(str(part) for part in TOMLKIT_MIN_VERSION)
    return (
        f"tomlkit {version} is too old to edit containerd's config without disturbing it; "
        f"tomlkit>={wanted} is required on the node (e.g. pip install 'tomlkit>={wanted}'); nothing was changed"
    )


CRI_V2 = "io.containerd.grpc.v1.cri"
CRI_V3 = "io.containerd.cri.v1.runtime"
CRI_PLUGIN = {2: CRI_V2, 3: CRI_V3, 4: CRI_V3}
SUPPORTED_VERSIONS = tuple(CRI_PLUGIN)
# containerd's built-in default runtime; present even when the file does not declare it.
BUILTIN_DEFAULT_RUNTIME = "runc"
# the shim a runtime gets when it is created without runtime_type
DEFAULT_RUNTIME_TYPE = "io.containerd.runc.v2"
BOM = "\ufeff"

# A shim name as containerd resolves it: ``io.containerd.<name>.<version>``, e.g.
# io.containerd.runc.v2, io.containerd.kata.v2, io.containerd.runsc.v1; or an absolute
# path to a shim binary.
RUNTIME_TYPE_RE = re.compile(r"^(io\.containerd\.[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*\.v[0-9]+|/[^\s]+)$")


def validate_runtime_type(runtime_type: str) -> str:
    if not isinstance(runtime_type, str) or not RUNTIME_TYPE_RE.fullmatch(runtime_type):
        raise KubeGPUError(
            f"runtime_type={runtime_type!r} is not a valid containerd shim name; expected "
            "'io.containerd.<name>.v<N>' (for example 'io.containerd.runc.v2') or an absolute path to a shim"
        )
    return runtime_type


# The keys of the runc shim's options (containerd's runc Options message, the same in
# 1.6, 1.7 and 2.x; CriuPath was dropped in 2.0) and the type each must have.  containerd
# keeps a runtime's options as untyped TOML and only decodes them into that message when
# it starts a container, so `config dump` accepts ``BinaryName = ["a"]`` and the mistake
# shows up as pods that cannot start: the module checks them before writing.
UINT32_MAX = 2**32 - 1
RUNC_OPTION_TYPES: dict[str, str] = {
    "NoPivotRoot": "boolean",
    "NoNewKeyring": "boolean",
    "ShimCgroup": "string",
    "IoUid": "uint32",
    "IoGid": "uint32",
    "BinaryName": "string",
    "Root": "string",
    "CriuPath": "string",
    "SystemdCgroup": "boolean",
    "CriuImagePath": "string",
    "CriuWorkPath": "string",
    "TaskApiAddress": "string",
    "TaskApiVersion": "uint32",
}
# containerd's TOML decoding matches option keys to the message's fields whatever their case
_RUNC_OPTION_KEYS = {key.lower(): key for key in RUNC_OPTION_TYPES}


def _has_type(value: t.Any, expected: str) -> bool:
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= UINT32_MAX


def check_runc_options(options: t.Mapping[str, t.Any], runtime_type: str | None) -> None:
    """Refuses an option of the runc shim (``RUNC_OPTION_TYPES``) whose value has the wrong
    type, naming key, value and the type expected.  Only for ``io.containerd.runc.v2``
    runtimes: other shims define other options.  ``None`` values (removals) and keys the
    runc shim does not define are not checked."""
    if runtime_type != DEFAULT_RUNTIME_TYPE:
        return
    for key, value in options.items():
        field = _RUNC_OPTION_KEYS.get(str(key).lower())
        if field is None or value is None:
            continue
        expected = RUNC_OPTION_TYPES[field]
        if not _has_type(value, expected):
            wanted = {"boolean": "a boolean (true or false)", "string": "a string",
                      "uint32": f"an integer from 0 to {UINT32_MAX}"}[expected]  # fmt: skip
            raise KubeGPUError(
                f"options.{key}={value!r} is not valid for the runc shim ({DEFAULT_RUNTIME_TYPE}): {field} must be "
                f"{wanted}, not {_toml_type(value)}; nothing was changed"
            )


def _toml_type(value: t.Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer" if 0 <= value <= UINT32_MAX else "an integer out of that range"
    names = ((float, "a float"), (str, "a string"), ((list, tuple), "an array"), (dict, "a table"))
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def parse(text: str, path: str = "config.toml") -> t.Any:
    """The document of ``text``; a syntax error names the file, line and column."""
    try:
        return tomlkit.parse(text)
    except TOMLParseError as exc:
        line = getattr(exc, "line", None)
        col = getattr(exc, "col", None)
        raise KubeGPUError(
            f"{path} is not valid TOML (line {line}, column {col}): {exc}; fix or remove the file, nothing was changed",
            line=line,
            column=col,
        ) from exc


def dumps(doc: t.Any) -> str:
    return tomlkit.dumps(doc)


class TextForm(t.NamedTuple):
    """How a file's text is encoded beyond TOML: a leading UTF-8 byte-order mark, and
    whether every line ends with CRLF. Edits work on the plain text and put both back."""

    bom: bool
    crlf: bool

    @classmethod
    def of(cls, text: str) -> tuple[TextForm, str]:
        """The form of ``text`` and the text without it (no mark, LF line ends).

        Only a file whose every line ends with CRLF counts as CRLF; a file that mixes
        line ends is edited as it is (new lines get LF)."""
        bom = text.startswith(BOM)
        if bom:
            text = text[len(BOM) :]
        crlf = "\r\n" in text and text.count("\n") == text.count("\r\n")
        if crlf:
            text = text.replace("\r\n", "\n")
        return cls(bom, crlf), text

    def apply(self, text: str) -> str:
        if self.crlf:
            text = text.replace("\n", "\r\n")
        return BOM + text if self.bom else text


def file_version(doc: t.Any) -> int | None:
    """The file's config version: its ``version`` key; 1 when a non-empty file has
    none (containerd's legacy format); ``None`` for a file without any key."""
    if "version" in doc:
        value = doc["version"]
        raw = value.unwrap() if hasattr(value, "unwrap") else value
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise KubeGPUError(f"the config's version = {raw!r} is not an integer; containerd expects for example version = 2")
        return raw
    return 1 if len(doc) else None


def version_for_containerd(version_output: str) -> int:
    """The config version a containerd writes by default, from ``containerd --version``."""
    match = re.search(r"\sv?(\d+)\.(\d+)\.\d+", version_output)
    if not match:
        raise KubeGPUError(f"could not read a containerd version from {version_output.strip()!r}")
    major, minor = int(match.group(1)), int(match.group(2))
    if major == 1:
        return 2
    if major == 2 and minor <= 2:
        return 3
    if major == 2:
        return 4
    raise KubeGPUError(
        f"containerd {major}.{minor} is newer than this module knows (1.x: config version 2, 2.0-2.2: 3, 2.3+: 4); "
        "set config_version explicitly if its format is one of these"
    )


def check_version(version: int | None) -> int:
    """The version to edit, refusing formats this module does not write."""
    if version == 1:
        raise KubeGPUError(
            "the config has no 'version' key, so containerd reads it as the legacy version 1 format, which this module "
            "does not edit; migrate it first: with containerd 2.x run `containerd config migrate > config.toml.new` and "
            "review it, with containerd 1.x add `version = 2` and rename the plugin sections "
            '(plugins.cri -> plugins."io.containerd.grpc.v1.cri"), or start from `containerd config default`'
        )
    if version not in CRI_PLUGIN:
        raise KubeGPUError(one_of("config version", version, SUPPORTED_VERSIONS) + " (the version key in the file)")
    return version


def plugin_table_path(version: int) -> list[str]:
    """The CRI plugin's own table, where ``enable_cdi`` and ``cdi_spec_dirs`` live."""
    return ["plugins", CRI_PLUGIN[check_version(version)]]


def containerd_table_path(version: int) -> list[str]:
    return [*plugin_table_path(version), "containerd"]


def runtime_table_path(version: int, name: str) -> list[str]:
    return [*containerd_table_path(version), "runtimes", name]


def _lookup(doc: t.Any, keys: t.Sequence[str]) -> t.Any:
    current = doc
    for key in keys:
        if not hasattr(current, "keys") or key not in current:
            return None
        current = current[key]
    return current


def _plain(value: t.Any) -> t.Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def _same(left: t.Any, right: t.Any) -> bool:
    """Equal in value and TOML type (true is not 1, 1 is not 1.0)."""
    return json.dumps(_plain(left), sort_keys=True, default=str) == json.dumps(_plain(right), sort_keys=True, default=str)


def _ensure_table(container: t.Any, key: str) -> t.Any:
    if key not in container:
        # super table: no header of its own, so creating plugins.<x>.containerd.runtimes
        # writes only the runtime's own [..] header
        container[key] = tomlkit.table(is_super_table=True)
    table = container[key]
    if not hasattr(table, "keys"):
        raise KubeGPUError(f"the config's {key!r} is a {type(_plain(table)).__name__}, not a table; containerd expects a table")
    return table


def _raw(table: t.Any, key: str) -> t.Any:
    """The tomlkit item of ``key`` (``table[key]`` gives a plain bool for booleans)."""
    container = getattr(table, "value", None)
    if container is not None and hasattr(container, "item"):
        return container.item(key)
    return table[key]


def _key_indent(table: t.Any) -> str:
    """The indentation of the table's existing plain keys, to match it for a new key."""
    for key in table:
        item = _raw(table, key)
        if not hasattr(item, "keys") and hasattr(item, "trivia"):
            return item.trivia.indent
    return ""


def _new_item(value: t.Any, like: t.Any = None) -> t.Any:
    """A tomlkit item for ``value``; a string replacing a 'literal' string stays literal."""
    literal = getattr(getattr(like, "type", None), "name", "") == "SLL"
    if literal and isinstance(value, str) and "'" not in value and "\n" not in value:
        return tomlkit.string(value, literal=True)
    return tomlkit.item(value)


def _set_key(table: t.Any, key: str, value: t.Any, indent: str | None = None) -> bool:
    """Sets ``key`` (``None`` removes it); returns whether it changed.  An unchanged key
    is not touched; a changed one keeps its line's indentation and comment; a new one
    is indented like the table's other keys (or ``indent``)."""
    if value is None:
        if key not in table:
            return False
        del table[key]
        return True
    old = _raw(table, key) if key in table else None
    if old is not None and _same(old, value):
        return False
    if old is not None and hasattr(old, "keys"):
        raise KubeGPUError(f"the config's {key!r} is a table, expected a plain value; fix the file first")
    if isinstance(table, tomlkit.items.InlineTable):
        table[key] = _new_item(value, old)  # tomlkit keeps an inline table's own spacing
        return True
    new = _new_item(value, old)
    if old is None:
        indent = _key_indent(table) if indent is None else indent
    # the same item object ends up in the table (and in an out-of-order table's
    # proxy), so its trivia can be set after the insertion, which re-indents it
    table[key] = new
    if hasattr(new, "trivia"):
        if old is not None and hasattr(old, "trivia"):
            new.trivia.indent = old.trivia.indent
            new.trivia.comment_ws = old.trivia.comment_ws
            new.trivia.comment = old.trivia.comment
            new.trivia.trail = old.trivia.trail
        else:
            new.trivia.indent = indent or ""
    return True


def _table_indents(runtimes: t.Any) -> tuple[str, str, str, str]:
    """Indentation of a new runtime table like an existing one's: its header, its
    keys, its options header and the options' keys (all empty when there is none)."""
    for key in runtimes:
        runtime = runtimes[key]
        if not hasattr(runtime, "keys") or not hasattr(runtime, "trivia"):
            continue
        header = runtime.trivia.indent
        keys = _key_indent(runtime)
        options = runtime.get("options")
        if options is not None and hasattr(options, "trivia"):
            return header, keys, options.trivia.indent, _key_indent(options)
        return header, keys, keys, keys
    return "", "", "", ""


def _add_table(parent: t.Any, key: str, values: t.Mapping[str, t.Any], header_indent: str, key_indent: str) -> t.Any:
    """Adds a new table with ``values`` to ``parent``, indented as given, followed by a blank line."""
    table = tomlkit.table()
    items = []
    for name, value in values.items():
        item = tomlkit.item(value)
        table[name] = item
        items.append(item)
    parent[key] = table
    table = parent[key]
    table.trivia.indent = header_indent
    for item in items:
        if hasattr(item, "trivia"):
            item.trivia.indent = key_indent
    return table


def _body(node: t.Any) -> list[tuple[t.Any, t.Any]] | None:
    """The (key, item) list of a document or table; None for what has none
    (an out-of-order table's proxy, an inline table)."""
    if isinstance(node, tomlkit.items.Table):
        return node.value.body
    if isinstance(node, tomlkit.TOMLDocument):
        return node.body
    return None


def _last_descendant(node: t.Any) -> t.Any:
    """The table whose body is rendered last within ``node``: what a new table
    appended to ``node`` follows."""
    body = _body(node)
    for key, item in reversed(body or []):
        if key is None:
            continue
        if isinstance(item, tomlkit.items.Table):
            return _last_descendant(item)
        break
    return node


def _take_trailing_comments(node: t.Any) -> list[t.Any]:
    """Detaches the comment lines that end ``node``'s rendering.

    tomlkit keeps a comment written above a table header in the body of the table
    before it, so a table added or removed there would carry the comment away from
    the header it describes. Blank lines before the first such comment stay."""
    holder = _last_descendant(node)
    body = _body(holder)
    if not body:
        return []
    start = len(body)
    while start > 0 and body[start - 1][0] is None:
        start -= 1
    comments = [index for index in range(start, len(body)) if isinstance(body[index][1], tomlkit.items.Comment)]
    if not comments:
        return []
    taken = [item for _key, item in body[comments[0] :]]
    # unkeyed trailing items are not in the container's key map: removing them is safe
    del body[comments[0] :]
    return taken


def _put_comments_back(node: t.Any, items: list[t.Any]) -> None:
    body = _body(_last_descendant(node))
    if body is not None:
        body.extend((None, item) for item in items)


def _deepest_existing(doc: t.Any, keys: t.Sequence[str]) -> t.Any:
    node = doc
    for key in keys:
        if not hasattr(node, "keys") or key not in node or not hasattr(node[key], "keys"):
            break
        node = node[key]
    return node


def _prune_empty(doc: t.Any, keys: t.Sequence[str]) -> None:
    """Removes the tables along ``keys`` that an edit left without any content,
    innermost first, so that removing what the module added leaves no empty headers."""
    for depth in range(len(keys), 0, -1):
        parent = _lookup(doc, keys[: depth - 1]) if depth > 1 else doc
        key = keys[depth - 1]
        if parent is None or key not in parent:
            continue
        table = parent[key]
        if (
            not isinstance(table, tomlkit.items.Table)
            or len(table)
            or any(isinstance(item, tomlkit.items.Comment) for _key, item in table.value.body)
        ):
            return
        del parent[key]
        if depth == 1:
            # tomlkit put a blank line before the table when it was added at the top level
            body = doc.body
            while body and body[-1][0] is None and isinstance(body[-1][1], tomlkit.items.Null):
                body.pop()  # tomlkit's placeholder for the deleted table
            if body and body[-1][0] is None and isinstance(body[-1][1], tomlkit.items.Whitespace) and body[-1][1].s == "\n":
                body.pop()


def get_runtime(doc: t.Any, version: int, name: str) -> dict[str, t.Any] | None:
    """The runtime's settings as plain data, or None when it is not configured."""
    table = _lookup(doc, runtime_table_path(version, name))
    return None if table is None else _plain(table)


def get_default(doc: t.Any, version: int) -> str | None:
    """``default_runtime_name`` as written in the file (None when not set there)."""
    table = _lookup(doc, containerd_table_path(version))
    if table is None or "default_runtime_name" not in table:
        return None
    return _plain(table["default_runtime_name"])


def _parts(node: t.Any) -> list[t.Any]:
    """The tables ``node`` is written as: itself, or each part of a table split across the file."""
    if isinstance(node, OutOfOrderTableProxy):
        return list(node._tables)
    return [node]


def _dotted_part(parent: t.Any, key: str) -> t.Any:
    """The part of ``parent`` that writes ``key`` with a dotted key (``runtimes.runc.x = ..``), or None."""
    for part in _parts(parent):
        for entry, _item in _body(part) or []:
            if entry is not None and entry.key == key and entry.is_dotted():
                return part
    return None


def table_name(keys: t.Sequence[str]) -> str:
    """A table's name as a TOML header writes it: plugins."io.containerd.grpc.v1.cri".containerd."""
    return ".".join(key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key) for key in keys)


def _chain(doc: t.Any, keys: t.Sequence[str]) -> list[t.Any]:
    """The nodes along ``keys`` that exist, the document first; a value where a table
    belongs is refused."""
    nodes = [doc]
    for depth, key in enumerate(keys):
        if key not in nodes[-1]:
            break
        child = nodes[-1][key]
        if not hasattr(child, "keys"):
            raise KubeGPUError(
                f"the config's {table_name(keys[: depth + 1])} is a {type(_plain(child)).__name__}, not a table; "
                "containerd expects a table there; fix the file first"
            )
        nodes.append(child)
    return nodes


def _inline(content: t.Mapping[str, t.Any]) -> t.Any:
    table = tomlkit.inline_table()
    for key, value in content.items():
        table[key] = _inline(value) if isinstance(value, t.Mapping) else value
    return table


def _flatten(content: t.Mapping[str, t.Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], t.Any]]:
    pairs: list[tuple[tuple[str, ...], t.Any]] = []
    for key, value in content.items():
        if isinstance(value, t.Mapping) and value:
            pairs += _flatten(value, (*prefix, key))
        else:
            pairs.append(((*prefix, key), value))
    return pairs


def _create_written_like_parent(doc: t.Any, path: t.Sequence[str], content: t.Mapping[str, t.Any]) -> bool:
    """Creates the table at ``path`` with ``content`` (a mapping value is a sub-table)
    the way its deepest existing ancestor is written, when that is not a standard
    [header] table: inside an inline table as inline tables, below a table written with
    dotted keys as more dotted keys of the table that holds them. Returns False when
    the ancestor is a standard table (the caller adds [header] tables then)."""
    nodes = _chain(doc, path[:-1])
    depth = len(nodes) - 1
    anchor = nodes[-1]
    missing = list(path[depth:])
    if isinstance(anchor, tomlkit.items.InlineTable):
        value: t.Any = dict(content)
        for key in reversed(missing[1:]):
            value = {key: value}
        anchor[missing[0]] = _inline(value)
        added = _raw(anchor, missing[0])
        if hasattr(added, "trivia"):
            added.trivia.indent = ""  # tomlkit copies the line's indentation into the braces
        return True
    if depth == 0 or _dotted_part(nodes[depth - 1], path[depth - 1]) is None:
        return False
    start = depth
    holder = None
    while start >= 1:
        part = _dotted_part(nodes[start - 1], path[start - 1])
        if part is None:
            break
        holder = part
        start -= 1
    indent = _key_indent(holder)
    for leaf, item_value in _flatten(content):
        item = tomlkit.item(item_value)
        holder.append(tomlkit.key([*path[start:], *leaf]), item)
        if hasattr(item, "trivia"):
            item.trivia.indent = indent
    return True


def set_runtime(
    doc: t.Any,
    version: int,
    name: str,
    runtime_type: str | None = None,
    binary_name: str | None = None,
    *,
    options: t.Mapping[str, t.Any] | None = None,
    settings: t.Mapping[str, t.Any] | None = None,
) -> bool:
    """Adds or updates runtime ``name``; keys not given are left as they are.

    ``settings`` are keys of the runtime table itself (``privileged_without_host_devices``,
    ``runtime_path``, ...), ``options`` keys of its ``options`` table (``SystemdCgroup``,
    ...), ``binary_name`` is ``options.BinaryName``; a ``None`` value removes that key.
    ``runtime_type`` defaults to io.containerd.runc.v2 only for a runtime created here.
    The runtime is written the way the file writes its parent table: standard [header]
    tables, dotted keys or inline tables.  Returns whether the document changed.
    """
    validate_handler(name)
    values: dict[str, t.Any] = {}
    if runtime_type is not None:
        values["runtime_type"] = validate_runtime_type(runtime_type)
    for key, value in (settings or {}).items():
        if key in ("runtime_type", "options"):
            raise KubeGPUError(f"settings.{key} is not allowed; use the module's {key} option")
        values[key] = value
    option_values = {} if binary_name is None else {"BinaryName": binary_name}
    option_values.update(options or {})
    if binary_name is not None and option_values["BinaryName"] != binary_name:
        raise KubeGPUError(
            f"binary_name={binary_name!r} and options.BinaryName={option_values['BinaryName']!r} disagree; give one"
        )

    path = runtime_table_path(version, name)
    existing = _lookup(doc, path)
    if runtime_type is None:
        # a new runtime (or one written without runtime_type) runs the runc shim
        current = existing.get("runtime_type") if hasattr(existing, "get") else None
        runtime_type = _plain(current) if current is not None else DEFAULT_RUNTIME_TYPE
    check_runc_options(option_values, runtime_type)
    try:
        if existing is None:
            return _create_runtime(doc, path, values, option_values)
        return _update_runtime(doc, path, values, option_values)
    except TOMLKitError as exc:
        raise KubeGPUError(
            f"cannot edit the table {table_name(path)} as the file writes it ({exc}); rewrite the runtimes of "
            f"{table_name(path[:-2])} as standard [..] tables and run again"
        ) from exc


def _without_nulls(values: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    return {key: value for key, value in values.items() if value is not None}


def _create_runtime(doc: t.Any, path: list[str], values: dict[str, t.Any], option_values: dict[str, t.Any]) -> bool:
    values = {"runtime_type": DEFAULT_RUNTIME_TYPE, **_without_nulls(values)}
    option_values = _without_nulls(option_values)
    content = {**values, **({"options": option_values} if option_values else {})}
    if _create_written_like_parent(doc, path, content):
        return True
    name = path[-1]
    # a new table is appended to its deepest existing ancestor: comments above the
    # header that follows must stay above that header, after the new table
    ancestor = _deepest_existing(doc, path[:-1])
    comments = _take_trailing_comments(ancestor)
    runtimes = doc
    for key in path[:-1]:
        runtimes = _ensure_table(runtimes, key)
    header, keys, options_header, options_keys = _table_indents(runtimes)
    table = _add_table(runtimes, name, values, header, keys)
    if option_values:
        table.add(tomlkit.nl())
        _add_table(table, "options", option_values, options_header, options_keys).add(tomlkit.nl())
    else:
        table.add(tomlkit.nl())  # a blank line before whatever table follows
    _put_comments_back(ancestor, comments)
    return True


def _update_runtime(doc: t.Any, path: list[str], values: dict[str, t.Any], option_values: dict[str, t.Any]) -> bool:
    name = path[-1]
    table = _lookup(doc, path)
    if not hasattr(table, "keys"):
        raise KubeGPUError(f"the config's runtime {name!r} ({table_name(path)}) is not a table; fix the file first")
    changed = False
    for key, value in values.items():
        changed |= _set_key(table, key, value)
    if not option_values:
        return changed
    if "options" not in table:
        new_options = _without_nulls(option_values)
        if not new_options:
            return changed
        if not _create_written_like_parent(doc, [*path, "options"], new_options):
            keys = _key_indent(table)
            _add_table(table, "options", new_options, keys, keys + "  " if keys else "").add(tomlkit.nl())
        return True
    option_table = table["options"]
    if not hasattr(option_table, "keys"):
        raise KubeGPUError(
            f"the config's runtime {name!r} has 'options' that is not a table ({table_name([*path, 'options'])}); "
            "fix the file first"
        )
    for key, value in option_values.items():
        changed |= _set_key(option_table, key, value)
    return changed


def _render_order(node: t.Any, ancestors: tuple[int, ...] = ()) -> list[tuple[t.Any, tuple[int, ...]]]:
    """Every table under ``node`` in the order tomlkit writes them, each with the ids
    of the tables it is nested in (raw bodies, so split out-of-order tables too)."""
    order = []
    for _key, item in _body(node) or []:
        if isinstance(item, tomlkit.items.Table):
            order.append((item, ancestors))
            order += _render_order(item, (*ancestors, id(item)))
    return order


def remove_runtime(doc: t.Any, version: int, name: str) -> bool:
    """Removes runtime ``name``; returns whether it was there (see ``_remove_runtime``)."""
    try:
        return _remove_runtime(doc, version, name)
    except TOMLKitError as exc:
        path = runtime_table_path(version, name)
        raise KubeGPUError(
            f"cannot remove the table {table_name(path)} as the file writes it ({exc}); rewrite "
            f"{table_name(path[:-2])} and its runtimes as standard [..] tables, each written once, and run again"
        ) from exc


def _remove_runtime(doc: t.Any, version: int, name: str) -> bool:
    """Removes runtime ``name``; returns whether it was there.

    Comments at the end of the removed table describe what follows it (tomlkit keeps
    a comment above a header in the table before it) or end the file; they move to
    whatever is written where the table was (in a file that splits the runtimes
    table, that can be the split part's own, now empty, header). Only when the removed
    table is followed by a sibling inside a table with nothing else before it is there
    no such place; then they go with the table."""
    path = runtime_table_path(version, name)
    runtimes = _lookup(doc, path[:-1])
    if runtimes is None or name not in runtimes:
        return False
    table = runtimes[name]
    order = _render_order(doc)
    index = next((i for i, (item, _parents) in enumerate(order) if item is table), None)
    if index is None:  # not a table: nothing to carry over
        del runtimes[name]
        _prune_empty(doc, path[:-1])
        return True
    tables = {id(item): item for item, _parents in order}
    parents = order[index][1]
    later = order[index + 1 :]
    # the table written last before it, unless a table it is nested in writes a header or keys in between
    previous = None
    for item, _item_parents in reversed(order[:index]):
        if id(item) not in parents:
            previous = item
            break
        if not item.is_super_table():
            break

    def last_within(ancestor: int | None) -> bool:
        """Whether nothing outside the removed table follows it inside ``ancestor`` (None: the document)."""
        return all(id(table) in item_parents for _item, item_parents in later if ancestor is None or ancestor in item_parents)

    comments = _take_trailing_comments(table)
    was_last = last_within(None)
    # the first table written after the removed one (and its sub-tables): the comments belong above it
    following = next((item for item, item_parents in later if id(table) not in item_parents), None)
    del runtimes[name]
    _prune_empty(doc, path[:-1])
    if was_last and not comments:
        _trim_blank_lines_at_end(doc)
    if not comments:
        return True
    if previous is not None:
        _put_comments_back(previous, comments)
        return True
    alive = {id(item) for item, _parents in _render_order(doc)}
    for ancestor in reversed(parents):
        if ancestor not in alive:
            continue  # pruned
        node = tables[ancestor]
        if not len(node):
            # a part of a split table left empty is written exactly where the removed
            # table was; holding the comments, it writes its (empty, harmless) header too
            node.value.body.extend((None, item) for item in comments)
            return True
        if len(node) and last_within(ancestor):
            _put_comments_back(node, comments)
            return True
        if following is not None:
            _insert_before(doc, following, comments)
        return True
    if last_within(None):
        doc.body.extend((None, item) for item in comments)
    elif following is not None:
        _insert_before(doc, following, comments)
    return True


def _insert_before(node: t.Any, target: t.Any, items: list[t.Any]) -> bool:
    """Puts ``items`` right before the table ``target`` in whichever body holds it."""
    body = _body(node) or []
    for index, (_key, item) in enumerate(body):
        if item is target:
            body[index:index] = [(None, comment) for comment in items]
            return True
        if isinstance(item, tomlkit.items.Table) and _insert_before(item, target, items):
            return True
    return False


def _trim_blank_lines_at_end(doc: t.Any) -> None:
    """Drops the blank lines a removal of the file's last table left at its end: tomlkit
    keeps the blank line that separated that table in the body of the table before it."""
    for _attempt in range(8):
        if not dumps(doc).endswith("\n\n"):
            return
        body = _body(_last_descendant(doc)) or []
        while body and body[-1][0] is None and isinstance(body[-1][1], tomlkit.items.Null):
            body.pop()
        if not body or body[-1][0] is not None or not isinstance(body[-1][1], tomlkit.items.Whitespace):
            return
        whitespace = body[-1][1]
        if whitespace.s.count("\n") > 1 and not whitespace.s.strip(" \t\n"):
            whitespace._s = whitespace.s[: whitespace.s.rindex("\n")]
        elif not whitespace.s.strip(" \t\n"):
            body.pop()
        else:
            return


def _set_table_key(doc: t.Any, path: list[str], key: str, value: t.Any) -> bool:
    """Sets ``key`` of the table at ``path``, creating the table the way the file writes
    its parent when it is missing; returns whether the document changed."""
    table = _lookup(doc, path)
    if table is None:
        if _create_written_like_parent(doc, path, {key: value}):
            return True
        ancestor = _deepest_existing(doc, path)
        comments = _take_trailing_comments(ancestor)
        table = doc
        for part in path:
            table = _ensure_table(table, part)
        _set_key(table, key, value)
        table.add(tomlkit.nl())
        _put_comments_back(ancestor, comments)
        return True
    if not hasattr(table, "keys"):
        raise KubeGPUError(
            f"the config's {table_name(path)} is a {type(_plain(table)).__name__}, not a table; fix the file first"
        )
    return _set_key(table, key, value)


def set_default(doc: t.Any, version: int, name: str) -> bool:
    """Makes ``name`` containerd's default runtime (``default_runtime_name``)."""
    return _set_table_key(doc, containerd_table_path(version), "default_runtime_name", name)


# containerd's CDI switch in the CRI plugin table, and what containerd does when a file does not set
# it: 1.7 (config version 2) keeps CDI off (`containerd config default` writes enable_cdi = false),
# 2.x (versions 3 and 4) has it on (enable_cdi = true). containerd 1.6 has no CDI: its `config dump`
# has no enable_cdi at all.
CDI_KEY = "enable_cdi"
CDI_DEFAULT = {2: False, 3: True, 4: True}


def get_plugin_key(doc: t.Any, version: int, key: str) -> t.Any:
    """A key of the CRI plugin table as written in the file (None when not set there)."""
    table = _lookup(doc, plugin_table_path(version))
    if table is None or not hasattr(table, "keys") or key not in table:
        return None
    return _plain(table[key])


def set_plugin_key(doc: t.Any, version: int, key: str, value: t.Any) -> bool:
    """Sets a key of the CRI plugin table (``enable_cdi``); returns whether the document changed."""
    try:
        return _set_table_key(doc, plugin_table_path(version), key, value)
    except TOMLKitError as exc:
        raise KubeGPUError(
            f"cannot set {key} in {table_name(plugin_table_path(version))} as the file writes it ({exc}); rewrite that "
            "table as a standard [..] table and run again"
        ) from exc


def unset_default(doc: t.Any, version: int, name: str) -> bool:
    """If ``name`` is the default runtime, hands the default back to runc.

    When the file declares a ``runc`` runtime (as ``containerd config default``
    writes it), ``default_runtime_name`` becomes ``"runc"``; otherwise the key is
    removed, so containerd's built-in default (runc) applies. A default that
    names another runtime is left alone.
    """
    if get_default(doc, version) != name:
        return False
    table = _lookup(doc, containerd_table_path(version))
    if name == BUILTIN_DEFAULT_RUNTIME:
        return False
    if get_runtime(doc, version, BUILTIN_DEFAULT_RUNTIME) is not None:
        return _set_key(table, "default_runtime_name", BUILTIN_DEFAULT_RUNTIME)
    del table["default_runtime_name"]
    _drop_empty_header(table)
    _prune_empty(doc, containerd_table_path(version))
    return True


def _drop_empty_header(table: t.Any) -> None:
    """A table left with only sub-tables (and blank lines) no longer needs its own
    header: the module wrote that header for the key it just removed, so drop it
    again. tomlkit has no public switch for this; its own rule decides once the
    explicit flag is cleared."""
    body = getattr(getattr(table, "value", None), "body", None)
    if body is None or not hasattr(table, "_is_super_table"):
        return
    only_tables = all(
        isinstance(item, (tomlkit.items.Whitespace, tomlkit.items.Null)) if key is None else hasattr(item, "keys")
        for key, item in body
    )
    if only_tables and any(key is not None for key, _item in body):
        table._is_super_table = None
        for key, item in body:
            if key is None and isinstance(item, tomlkit.items.Whitespace):
                item._s = ""  # the blank line that followed the removed key


def with_version(text: str, version: int) -> str:
    """The text of a config without keys (empty, or only comments) plus ``version = N``.

    Comments stay first; the key goes after them, which is valid because such a
    file has no table the key could fall into."""
    check_version(version)
    body = text.rstrip()
    return f"{body}\n\nversion = {version}\n" if body else f"version = {version}\n"


def _json(value: t.Any) -> str:
    """A canonical text of plain data that tells TOML types apart (true is not 1, 1 is not 1.0)."""
    return json.dumps(value, sort_keys=True, default=str)


def _without_edited(data: t.Any, version: int, name: str, plugin_keys: t.Collection[str] = ()) -> t.Any:
    """``data`` without what an edit of runtime ``name`` may change: that runtime's table,
    ``default_runtime_name`` and the CRI plugin's ``plugin_keys``; tables left empty along
    that path count as absent."""
    data = json.loads(_json(data))
    path = runtime_table_path(version, name)
    nodes = [data]
    for key in path[:-1]:
        node = nodes[-1].get(key) if isinstance(nodes[-1], dict) else None
        if not isinstance(node, dict):
            break
        nodes.append(node)
    if len(nodes) > len(path) - 1:
        nodes[-1].pop(path[-1], None)
    if len(nodes) > len(path) - 2:
        nodes[len(path) - 2].pop("default_runtime_name", None)
    if len(nodes) > len(plugin_table_path(version)):
        for key in plugin_keys:
            nodes[len(plugin_table_path(version))].pop(key, None)
    for depth in range(len(nodes) - 1, 0, -1):
        if nodes[depth] == {}:
            del nodes[depth - 1][path[depth - 1]]
    return data


def first_difference(left: t.Any, right: t.Any, keys: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The keys of the first place where two plain data trees differ, or None."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if key not in left or key not in right:
                return (*keys, key)
            found = first_difference(left[key], right[key], (*keys, key))
            if found is not None:
                return found
        return None
    return None if _json(left) == _json(right) else keys


def check_edit(
    before: t.Any,
    after_text: str,
    version: int,
    name: str,
    *,
    runtime: t.Mapping[str, t.Any] | None,
    default: bool | None,
    plugin_keys: t.Mapping[str, t.Any] | None = None,
    path: str = "config.toml",
) -> None:
    """Refuses an edit whose written text does not mean what was asked.

    ``before`` is the plain data of the document before the edit, ``after_text`` the
    text the edit wrote. Read back, it must differ from ``before`` only in runtime
    ``name``, ``default_runtime_name`` and the CRI plugin's ``plugin_keys`` (``enable_cdi``),
    which must hold the values given; the runtime must hold the ``runtime`` values
    asked for (a ``None`` value: the key is absent; ``runtime=None``: the runtime is
    absent) and the default must agree with ``default``. Whatever shape of the file
    made the edit go wrong, the module then fails instead of writing it."""
    what = f"the edit of runtime {name!r} in {path} went wrong"
    advice = (
        "nothing was changed; please report this with the file, and meanwhile rewrite "
        f"{table_name(containerd_table_path(version))} and its runtimes as standard [..] tables"
    )
    try:
        after = tomlkit.parse(after_text).unwrap()
    except TOMLKitError as exc:  # a parse error, or a table written twice that unwrap() finds
        raise KubeGPUError(f"{what}: the result would not be valid TOML ({exc}); {advice}") from exc
    plugin_keys = plugin_keys or {}
    moved = first_difference(
        _without_edited(before, version, name, plugin_keys), _without_edited(after, version, name, plugin_keys)
    )
    if moved is not None:
        raise KubeGPUError(f"{what}: it would also change {table_name(moved)}; {advice}")
    plugin = after
    for key in plugin_table_path(version):
        plugin = plugin.get(key) if isinstance(plugin, dict) else None
    for key, value in plugin_keys.items():
        found = plugin.get(key) if isinstance(plugin, dict) else None
        if _json(found) != _json(value):
            raise KubeGPUError(
                f"{what}: {table_name([*plugin_table_path(version), key])} would be {found!r}, not {value!r}; {advice}"
            )
    table = after
    for key in runtime_table_path(version, name):
        table = table.get(key) if isinstance(table, dict) else None
    if runtime is None and table is not None:
        raise KubeGPUError(f"{what}: the runtime would still be there; {advice}")
    if runtime is not None:
        if not isinstance(table, dict):
            raise KubeGPUError(f"{what}: the runtime would not be in {table_name(runtime_table_path(version, name))}; {advice}")
        for keys, value in _flatten(runtime):
            found: t.Any = table
            for key in keys:
                found = found.get(key) if isinstance(found, dict) else None
            if _json(found) != _json(value):
                raise KubeGPUError(f"{what}: {'.'.join(keys)} would be {found!r}, not {value!r}; {advice}")
    containerd = after
    for key in containerd_table_path(version):
        containerd = containerd.get(key) if isinstance(containerd, dict) else None
    current = containerd.get("default_runtime_name") if isinstance(containerd, dict) else None
    # default=false cannot take the default from runc: it is what the default goes back to
    if (default is True and current != name) or (default is False and current == name != BUILTIN_DEFAULT_RUNTIME):
        raise KubeGPUError(f"{what}: default_runtime_name would be {current!r}; {advice}")
