# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd's effective config: a config file plus the drop-ins it imports.
Private to the collection.

``imports = ["/etc/containerd/conf.d/*.toml"]`` makes containerd read more files
after the main one (``nvidia-ctk runtime configure`` and distribution packages put
runtimes and ``default_runtime_name`` there). containerd 1.x replaces a plugin's
whole table with an imported file's; 2.x merges key by key. Rather than re-implement
either rule, the module asks containerd (``config dump`` prints the merged result)
and uses the files only to say which of them defines what.
"""

from __future__ import annotations

import glob
import json
import os
import typing as t

from ansible_collections.kubegpu.core.plugins.module_utils import _toml_runtime as toml_runtime
from ansible_collections.kubegpu.core.plugins.module_utils._errors import KubeGPUError

# how deep imports of imports are followed (containerd itself has no limit but refuses cycles)
MAX_FILES = 256


def _dig(data: t.Any, keys: t.Sequence[str]) -> t.Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _containerd_tables(data: t.Any, *, plugin_level: bool = False) -> list[dict[str, t.Any]]:
    """A file's CRI ``containerd`` tables (with ``plugin_level``, the CRI plugin tables that
    hold them), whatever config version it is written in."""
    tables = []
    for plugin in (toml_runtime.CRI_V2, toml_runtime.CRI_V3):
        table = _dig(data, ["plugins", plugin] if plugin_level else ["plugins", plugin, "containerd"])
        if isinstance(table, dict):
            tables.append(table)
    return tables


def parse_dump(dump: str) -> dict[str, t.Any]:
    """``config dump`` output as data, without ``imports`` (containerd 1.x lists the files
    it read there, a temporary candidate's name included)."""
    try:
        data = toml_runtime.tomlkit.parse(dump).unwrap()
    except toml_runtime.TOMLParseError as exc:
        raise KubeGPUError(f"could not read containerd's `config dump` output ({exc})") from exc
    data.pop("imports", None)
    return data


def cri_plugin_table(data: dict[str, t.Any]) -> dict[str, t.Any]:
    """The CRI plugin table of a dump (``enable_cdi`` is there); containerd 2.x dumps version 2 files migrated."""
    plugin = toml_runtime.CRI_PLUGIN.get(data.get("version"), toml_runtime.CRI_V3)
    table = _dig(data, ["plugins", plugin])
    return table if isinstance(table, dict) else {}


def cri_table(data: dict[str, t.Any]) -> dict[str, t.Any]:
    """The CRI ``containerd`` table of a dump (containerd 2.x dumps version 2 files migrated)."""
    table = cri_plugin_table(data).get("containerd")
    return table if isinstance(table, dict) else {}


def cdi_state(data: dict[str, t.Any]) -> tuple[bool | None, list[str]]:
    """CDI in a dump: whether containerd has it on (None: this containerd has no CDI, its dump
    has no ``enable_cdi``, as 1.6) and the directories it reads CDI specifications from."""
    plugin = cri_plugin_table(data)
    enabled = plugin.get(toml_runtime.CDI_KEY)
    dirs = plugin.get("cdi_spec_dirs")
    return (enabled if isinstance(enabled, bool) else None), (list(dirs) if isinstance(dirs, list) else [])


def _without(data: dict[str, t.Any], name: str, plugin_keys: t.Collection[str] = ()) -> dict[str, t.Any]:
    """A dump without what an edit of runtime ``name`` (and of the CRI plugin's ``plugin_keys``) may change."""
    data = json.loads(toml_runtime._json(data))
    cri = cri_table(data)
    if isinstance(cri.get("runtimes"), dict):
        cri["runtimes"].pop(name, None)
    cri.pop("default_runtime_name", None)
    plugin = cri_plugin_table(data)
    for key in plugin_keys:
        plugin.pop(key, None)
    return data


class Effective:
    """The effective config of ``path`` (whose text after the edit is ``text``), from
    the output of ``containerd --config FILE config dump``."""

    def __init__(self, path: str, text: str, dump: str) -> None:
        self.path = path
        self.dump = parse_dump(dump)
        self.cri = cri_table(self.dump)
        self.files: list[tuple[str, t.Any]] = [(path, toml_runtime.tomlkit.parse(text).unwrap())]
        self._follow_imports(path, self.files[0][1])

    def _follow_imports(self, path: str, data: t.Any) -> None:
        """Adds the files ``data`` imports, in containerd's order (each pattern's matches
        sorted), relative paths taken from ``path``'s directory."""
        imports = data.get("imports") if isinstance(data, dict) else None
        for entry in imports if isinstance(imports, list) else []:
            if not isinstance(entry, str):
                continue
            pattern = entry if os.path.isabs(entry) else os.path.join(os.path.dirname(os.path.abspath(path)), entry)
            for match in sorted(glob.glob(pattern)):
                if len(self.files) >= MAX_FILES or any(os.path.samefile(match, seen) for seen, _data in self.files[1:]):
                    continue
                try:
                    with open(match, encoding="utf-8") as handle:
                        text = toml_runtime.TextForm.of(handle.read())[1]
                    imported = toml_runtime.tomlkit.parse(text).unwrap()
                except (OSError, UnicodeDecodeError, toml_runtime.TOMLParseError):
                    continue  # containerd has read it (the dump worked): nothing to attribute
                self.files.append((match, imported))
                self._follow_imports(match, imported)

    @property
    def drop_ins(self) -> list[str]:
        return [path for path, _data in self.files[1:]]

    def _last(
        self, test: t.Callable[[dict[str, t.Any]], bool], *, drop_ins_only: bool = False, plugin_level: bool = False
    ) -> str | None:
        """The last file in containerd's reading order whose CRI ``containerd`` table (with
        ``plugin_level``, CRI plugin table) passes ``test``."""
        found = None
        for path, data in self.files[1:] if drop_ins_only else self.files:
            if any(test(table) for table in _containerd_tables(data, plugin_level=plugin_level)):
                found = path
        return found

    def sources(self, name: str) -> dict[str, t.Any]:
        """The result keys that say where the runtime and the default come from."""

        def defines(table: dict[str, t.Any]) -> bool:
            return isinstance(table.get("runtimes"), dict) and name in table["runtimes"]

        # a file containerd did not take the value from (a drop-in it ignores, e.g. one in another
        # config version) is not named: only one whose value is the effective one
        effective_runtime = (self.cri.get("runtimes") or {}).get(name)
        effective_default = self.cri.get("default_runtime_name")
        cdi_enabled, cdi_spec_dirs = cdi_state(self.dump)
        return {
            "runtime_file": self._last(defines) if effective_runtime is not None else None,
            "default_runtime_file": self._last(lambda table: table.get("default_runtime_name") == effective_default),
            "effective_default_runtime": effective_default,
            "effective_runtime": effective_runtime,
            "drop_ins": self.drop_ins,
            "cdi_enabled": cdi_enabled is True,
            "cdi_spec_dirs": cdi_spec_dirs,
        }

    def _blame(self, test: t.Callable[[dict[str, t.Any]], bool], what: str, *, plugin_level: bool = False) -> str:
        culprit = self._last(test, drop_ins_only=True, plugin_level=plugin_level)
        if culprit is None:
            cri_files = [path for path, data in self.files[1:] if _containerd_tables(data, plugin_level=plugin_level)]
            if not cri_files:
                return f"{what}; no imported file explains it, see containerd's `config dump`"
            culprit = cri_files[-1]
            what += (
                f" because {culprit} (imported) also configures the CRI plugin, and containerd 1.x then uses that "
                f"file's table instead of {self.path}'s"
            )
        else:
            what += f", set by {culprit} (imported by {self.path})"
        return f"{what}; edit that drop-in (this module edits it when given path={culprit}), remove it, or take it out of imports"

    def collateral(self, name: str, original: dict[str, t.Any], plugin_keys: t.Collection[str] = ()) -> str | None:
        """What else the change would change in containerd's effective config, compared
        with ``original`` (the dump of the file before the change), or None. The CRI
        plugin's ``plugin_keys`` (``enable_cdi``) are the task's to change."""
        old_runtimes = cri_table(original).get("runtimes") or {}
        new_runtimes = self.cri.get("runtimes") or {}
        default = self.cri.get("default_runtime_name")
        lost = sorted(set(old_runtimes) - set(new_runtimes) - {name})
        if lost:
            declared = any(
                isinstance(table.get("runtimes"), dict) and set(table["runtimes"]) - {name}
                for table in _containerd_tables(self.files[0][1])
            )
            return (
                f"after this change containerd's effective config ({self.path} and the files it imports) would no longer "
                f"have the runtime(s) {', '.join(lost)}"
                + (", its default runtime, so the CRI plugin would not start" if default in lost else "")
                + ": containerd 1.x replaces its built-in runtimes with the ones the file declares"
                + ("" if declared else f", and {self.path} declares none besides {name!r}")
                + f"; declare {lost[0]} in the file first (for example with this module, name={lost[0]}) or start from "
                "`containerd config default`"
            )
        if default not in new_runtimes and cri_table(original).get("default_runtime_name") in old_runtimes:
            return (
                f"after this change containerd's default runtime {default!r} would have no runtime table in its "
                f"effective config ({self.path} and the files it imports), so its CRI plugin would not start; "
                "make another runtime the default first"
            )
        after = _without(self.dump, name, plugin_keys)
        if toml_runtime.BUILTIN_DEFAULT_RUNTIME not in old_runtimes:
            # containerd 1.x brings its built-in runc back when a file no longer declares any runtime
            (cri_table(after).get("runtimes") or {}).pop(toml_runtime.BUILTIN_DEFAULT_RUNTIME, None)
        moved = toml_runtime.first_difference(_without(original, name, plugin_keys), after)
        if moved is None:
            return None
        return (
            f"the change would also change {toml_runtime.table_name(moved)} in containerd's effective config "
            f"({self.path} and the files it imports); see containerd's `config dump` of the file before and after"
        )

    def contradiction(
        self, name: str, runtime: t.Mapping[str, t.Any] | None, default: bool | None, enable_cdi: bool | None = None
    ) -> str | None:
        """Why the effective config does not do what was asked, or None when it does.

        ``runtime`` is what the task asks of the runtime (None: absent); a key the dump
        does not list (containerd 2.x drops keys of version 2 files it migrates) is not
        checked. ``default`` and ``enable_cdi`` as the module's options (a containerd
        without CDI is the caller's to refuse, naming its version)."""
        runtimes = self.cri.get("runtimes") if isinstance(self.cri.get("runtimes"), dict) else {}
        current_default = self.cri.get("default_runtime_name")
        lead = f"containerd's effective config ({self.path} and the files it imports)"
        cdi_enabled = cdi_state(self.dump)[0]
        if enable_cdi is not None and cdi_enabled is not None and cdi_enabled != enable_cdi:
            return self._blame(
                lambda table: toml_runtime.CDI_KEY in table,
                f"{lead} has {toml_runtime.CDI_KEY} = {str(cdi_enabled).lower()}, not {str(enable_cdi).lower()}",
                plugin_level=True,
            )
        if default is True and current_default != name:
            return self._blame(
                lambda table: "default_runtime_name" in table,
                f"{lead} makes {current_default!r} the default runtime, not {name!r}",
            )
        if (
            default is not True
            and current_default == name != toml_runtime.BUILTIN_DEFAULT_RUNTIME
            and (default is False or runtime is None)
        ):
            return self._blame(
                lambda table: table.get("default_runtime_name") == name,
                f"{lead} still makes {name!r} the default runtime",
            )
        if runtime is None and name in runtimes:
            return self._blame(
                lambda table: isinstance(table.get("runtimes"), dict) and name in table["runtimes"],
                f"{lead} still has the runtime {name!r}",
            )
        if runtime is not None:
            effective = runtimes.get(name)
            if not isinstance(effective, dict):
                return self._blame(lambda table: False, f"{lead} has no runtime {name!r}")
            for keys, value in toml_runtime._flatten(runtime):
                if value is None:
                    continue
                found = _dig(effective, keys)
                # a runtime-table key the dump lacks was dropped by 2.x's migration of a version 2 file;
                # an option the dump lacks was hidden by a drop-in (containerd 1.x takes its whole CRI table)
                if (found is not None or keys[0] == "options") and toml_runtime._json(found) != toml_runtime._json(value):
                    dotted = ".".join(keys)
                    return self._blame(
                        lambda table, keys=keys: _dig(table, ["runtimes", name, *keys]) is not None,
                        f"{lead} has {dotted} = {found!r} for the runtime {name!r}, not {value!r}",
                    )
        return None


# the runc shim's option naming the OCI runtime; containerd decodes option keys whatever their case
BINARY_NAME = "BinaryName"


def _differs(value: t.Any, reference: t.Any) -> bool:
    return toml_runtime._json(value) != toml_runtime._json(reference)


def copied_runtime(
    source: t.Mapping[str, t.Any], reference: t.Mapping[str, t.Any], target: t.Mapping[str, t.Any] | None
) -> tuple[str | None, dict[str, t.Any], dict[str, t.Any]]:
    """What makes runtime ``target`` a copy of ``source`` with its own BinaryName, as
    ``nvidia-ctk runtime configure`` makes one (it copies the whole table of the default
    runtime, else runc, else crun, and sets only ``options.BinaryName``).

    All three are tables as containerd's ``config dump`` shows them: ``source`` the runtime
    copied, ``reference`` the same runtime declared with only its ``runtime_type`` (what
    containerd fills in by itself, so writing it changes nothing), ``target`` the runtime
    as it is now (None: new). Returns the ``runtime_type``, the runtime-table keys and the
    options to request: every key the config sets on ``source`` (one that differs from
    ``reference``) with its value, and ``None`` (removed) for a key ``target`` sets that
    ``source`` does not. A BinaryName of ``source`` in any case is left out (the caller's
    replaces it), and one ``target`` spells otherwise is removed."""
    target = target or {}
    settings: dict[str, t.Any] = {}
    for key, value in source.items():
        if key not in ("options", "runtime_type") and _differs(value, reference.get(key)):
            settings[key] = value
    for key, value in target.items():
        if key not in ("options", "runtime_type") and key not in settings and _differs(value, reference.get(key)):
            settings[key] = None
    source_options = source.get("options") if isinstance(source.get("options"), dict) else {}
    reference_options = reference.get("options") if isinstance(reference.get("options"), dict) else {}
    target_options = target.get("options") if isinstance(target.get("options"), dict) else {}
    options = {
        key: value
        for key, value in source_options.items()
        if key.lower() != BINARY_NAME.lower() and _differs(value, reference_options.get(key))
    }
    for key, value in target_options.items():
        if key.lower() == BINARY_NAME.lower():
            if key != BINARY_NAME:
                options[key] = None  # a second spelling would leave containerd to pick one
        elif key not in options and _differs(value, reference_options.get(key)):
            options[key] = None
    runtime_type = source.get("runtime_type")
    return (runtime_type if isinstance(runtime_type, str) and runtime_type else None), settings, options
