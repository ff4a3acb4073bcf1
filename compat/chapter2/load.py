"""Load one chapter2 em the way chapter2 does: layers, key-files, aliases, routing, validation.

Stages (each small and pure except the file reads at the top):
  read layers -> merge (shallow) -> key-files -> name/sysname -> legacy/active_interfaces ->
  rename_keys (hyphens, aliases) -> transpose (route flat keys) -> overlay defaults -> pydantic ->
  JSON Schema check.
Every deliberate difference from upstream is listed in docs/differences.md#chapter2.
"""

from __future__ import annotations

import copy
import errno
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from chapterx.config.report import Problem
from chapterx.errors import UserError
from chapterx_compat.chapter2 import models as m
from chapterx_compat.chapter2.yaml11 import YAML11Error, load_yaml11_lines

# Raw-text key-files whose trailing newline is part of the value (prompt text); every other raw
# key-file is stripped (chapter2 keeps the newline, which breaks booleans and names).
TEXT_KEYS = frozenset(
    {"message_history_header", "message_history_footer", "message_history_separator", "scene_break", "chat.context"}
)
# Key-files that would replace loader-forced values; chapter2 honours `folder`, we ignore both.
FORCED_KEYS = frozenset({"folder", "sysname"})


class Chapter2Error(UserError):
    """A chapter2 em that cannot be loaded: one line naming the em and the file."""

    def __init__(
        self, em: str, file: Path | str | None, message: str, key: str | None = None, line: int | None = None
    ) -> None:
        where = (f"{file}:{line}: " if line else f"{file}: ") if file else ""
        super().__init__(f"chapter2 em '{em}': {where}{message}", exit_code=1)
        self.em = em
        self.file = str(file) if file else None
        self.detail = message
        self.key = key
        self.line = line


@dataclass
class LoadResult:
    """Everything known about one loaded em; `data` is the validated config (secrets revealed)."""

    sysname: str
    ems_dir: Path
    em_dir: Path
    kv: dict[str, Any]
    origins: dict[str, Path]
    config: m.Config
    data: dict[str, Any]
    warnings: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    configured_em_keys: set[str] = field(default_factory=set)
    renamed: dict[str, str] = field(default_factory=dict)  # normalised key -> key as written


# ----------------------------------------------------------------------------- reading


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, IsADirectoryError):
        return "is a directory, expected a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(exc, FileNotFoundError):
        return "no such file (dangling symlink?)"
    return exc.strerror or type(exc).__name__


def _read_text(em: str, path: Path) -> str:
    try:
        # A FIFO or device would block or never end: refuse instead of hanging.
        if path.exists() and not stat.S_ISREG(path.stat().st_mode) and not path.is_dir():
            raise Chapter2Error(em, path, "not a regular file (a pipe, device or socket)")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise Chapter2Error(em, path, "not UTF-8 text") from None
    except OSError as exc:
        raise Chapter2Error(em, path, _describe_os_error(exc)) from None


# file -> {dotted key path: line}, filled as files are parsed; only used to point errors at lines.
_KEY_LINES: dict[str, dict[str, int]] = {}


def _parse(em: str, path: Path, text: str, warnings: list[Problem]) -> Any:
    try:
        value, dups, lines = load_yaml11_lines(text)
    except YAML11Error as exc:
        raise Chapter2Error(em, path, str(exc)) from None
    if len(_KEY_LINES) > 4096:
        _KEY_LINES.clear()
    _KEY_LINES[str(path)] = lines
    for dup in dups:
        key = f"{dup.path}.{dup.key}" if dup.path else dup.key
        warnings.append(
            Problem(f"{path}:{dup.line}: duplicate key '{key}': the last value wins (as in chapter2)", key)
        )
    return value


_LAYER_CACHE: dict[tuple[str, int, int, int], tuple[Any, list[Problem], dict[str, int]]] = {}


def _parse_cached(em: str, path: Path, warnings: list[Problem]) -> Any:
    """Shared layers (ems/config.yaml, vendors.yaml) are read once per run, not once per em."""
    try:
        st = path.stat()
    except OSError as exc:
        raise Chapter2Error(em, path, _describe_os_error(exc)) from None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _LAYER_CACHE.get(key)
    if hit is None:
        found: list[Problem] = []
        value = _parse(em, path, _read_text(em, path), found)
        hit = (value, found, _KEY_LINES[str(path)])
        if len(_LAYER_CACHE) > 64:
            _LAYER_CACHE.clear()
        _LAYER_CACHE[key] = hit
    warnings.extend(hit[1])
    _KEY_LINES.setdefault(str(path), hit[2])  # its line table may have been evicted: no need to re-read
    return copy.deepcopy(hit[0])


def _read_layer(em: str, path: Path, warnings: list[Problem], files: list[Path]) -> dict[str, Any]:
    """A whole-config layer: missing or empty counts as {}; a non-mapping is an error."""
    try:
        if not path.exists() and not path.is_symlink():
            return {}
    except OSError as exc:
        raise Chapter2Error(em, path, _describe_os_error(exc)) from None
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Chapter2Error(em, path, "symlink loop") from None
        return {}  # dangling symlink: chapter2 sees FileNotFoundError and uses {}
    files.append(path)
    value = _parse_cached(em, path, warnings)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Chapter2Error(em, path, f"top level must be a mapping of keys, not a {type(value).__name__}")
    return {str(k) if not isinstance(k, str) else k: v for k, v in value.items()}


def home_config_dir(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    return Path(env.get("HOME") or Path.home()) / ".config" / "chapter2"


def read_kv(
    ems_dir: Path, name: str, *, home: bool = False, home_dir: Path | None = None
) -> tuple[dict[str, Any], dict[str, Path], list[Problem], list[Path]]:
    """chapter2's `load_em_kv`: the merged flat dict before validation, plus where each key came from."""
    warnings: list[Problem] = []
    files: list[Path] = []
    em_dir = ems_dir / name
    if not em_dir.is_dir():
        if em_dir.exists():
            raise Chapter2Error(name, em_dir, "not a directory")
        raise Chapter2Error(name, em_dir, "em folder not found")
    hdir = home_dir if home_dir is not None else home_config_dir()
    layers = []
    if home:
        layers.append(hdir / "vendors.yaml")
    layers.append(ems_dir / "vendors.yaml")
    if home:
        layers.append(hdir / "config.yaml")
    layers += [ems_dir / "config.yaml", em_dir / "config.yaml"]
    kv: dict[str, Any] = {}
    origins: dict[str, Path] = {}
    for layer in layers:
        data = _read_layer(name, layer, warnings, files)
        kv.update(data)
        origins.update(dict.fromkeys(data, layer))
    kv["folder"] = em_dir
    origins["folder"] = em_dir
    try:
        entries = sorted(em_dir.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise Chapter2Error(name, em_dir, _describe_os_error(exc)) from None
    for p in entries:
        key: str | None = None
        if p.name in m.VALID_FILE_KEYS:
            key = p.name
            if key in FORCED_KEYS:
                warnings.append(Problem(f"{p}: key-file '{key}' ignored: the loader sets it", key))
                continue
            text = _read_text(name, p)
            if key in TEXT_KEYS:
                value: Any = text
            else:
                value = text.strip()
                if key in ("name", "continuation_model") and text != value:
                    warnings.append(
                        Problem(f"{p}: surrounding whitespace stripped (chapter2 keeps the trailing newline)", key)
                    )
        elif p.name.endswith(".yaml") and p.name[: -len(".yaml")] in m.VALID_FILE_KEYS and p.name != "config.yaml":
            key = p.name[: -len(".yaml")]
            if key in FORCED_KEYS:
                warnings.append(Problem(f"{p}: key-file '{key}' ignored: the loader sets it", key))
                continue
            value = _parse(name, p, _read_text(name, p), warnings)
        if key is None:
            continue
        files.append(p)
        kv[key] = value
        origins[key] = p
    if "name" not in kv:
        kv["name"] = name
        origins["name"] = em_dir
    kv["sysname"] = name
    origins["sysname"] = em_dir
    return kv, origins, warnings, files


# ----------------------------------------------------------------------------- normalising


def rename_keys(em: str, kv: dict[str, Any], origins: dict[str, Path]) -> tuple[dict[str, Any], dict[str, str]]:
    """Hyphens -> underscores, then aliases (top level only). Returns the new dict and new->old names."""
    renamed: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key, value in kv.items():
        new = key.replace("-", "_") if isinstance(key, str) else key
        if new != key and new in kv:
            raise Chapter2Error(em, origins.get(key), f"duplicate config keys: {key} and {new} both set", key)
        out[new] = value
        if new != key:
            renamed[new] = key
            origins[new] = origins.get(key, origins.get(new))  # type: ignore[assignment]
    for alias, target in m.ALIASES.items():
        if alias not in out:
            continue
        src = origins.get(alias)
        if alias == "sampling":
            raise Chapter2Error(
                em, src, "the 'sampling' alias does not work in chapter2 (it crashes); set temperature instead", alias
            )
        if target in out:
            raise Chapter2Error(em, src, f"duplicate config keys: {target} and {alias} both set", alias)
        # keep the position of the alias so routing order stays the same
        out = {(target if k == alias else k): v for k, v in out.items()}
        renamed[target] = alias
        origins[target] = src  # type: ignore[assignment]
    return out, renamed


def default_interfaces() -> list[dict[str, Any]]:
    return [m.DiscordInterfaceConfig().model_dump(mode="python")]


def transpose_keys(kv: dict[str, Any], warnings: list[Problem]) -> dict[str, Any]:
    """Route flat keys: em keys to `em`, shared interface keys to every interface, others by class."""
    explicit = "interfaces" in kv
    interfaces = copy.deepcopy(kv["interfaces"]) if explicit else [{"name": "discord"}]
    result: dict[str, Any] = {"em": {}, "interfaces": interfaces}
    for key, value in kv.items():
        if key == "interfaces":
            continue
        if key == "em":
            if isinstance(value, dict):
                # chapter2 replaces the em mapping here (dropping earlier flat keys); we merge.
                result["em"] = {**result["em"], **value}
            else:
                result["em"] = value
            continue
        if key in m.EM_KEYS:
            if isinstance(result["em"], dict):
                result["em"][key] = value
        elif key in m.SHARED_INTERFACE_KEYS:
            for iface in interfaces if isinstance(interfaces, list) else []:
                if isinstance(iface, dict):
                    iface[key] = value
        elif key in m.ALL_INTERFACE_KEYS:
            for i, iface in enumerate(interfaces if isinstance(interfaces, list) else []):
                if not isinstance(iface, dict):
                    continue
                kind = iface.get("name", "discord" if i == 0 else None)
                cls = m.INTERFACE_CLASSES.get(kind) if isinstance(kind, str) else None
                if cls is not None and key in cls.model_fields:
                    iface[key] = value
        else:
            result[key] = value
    return result


def overlay(base: Any, updates: Any, *, _in_overrides: bool = False) -> Any:
    """chapter2's overlay: dicts deep-merge, dict lists merge by index, other lists append."""
    if isinstance(base, dict) and isinstance(updates, dict):
        out = dict(base)
        for k, v in updates.items():
            out[k] = overlay(base[k], v, _in_overrides=_in_overrides or k == "em_overrides") if k in base else v
        return out
    if isinstance(base, list) and isinstance(updates, list):
        if all(isinstance(x, dict) for x in base + updates) and (base or updates):
            out_list = [copy.deepcopy(x) for x in base]
            for i, item in enumerate(updates):
                if i < len(out_list):
                    out_list[i] = overlay(out_list[i], item, _in_overrides=_in_overrides)
                else:
                    out_list.append(item)
            return out_list
        acc = list(base)
        for item in updates:
            if item is None and not _in_overrides:
                acc = []
            else:
                acc.append(item)
        return acc
    return updates


def _loc_str(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _locate(loc: tuple[Any, ...], origins: dict[str, Path], renamed: dict[str, str]) -> tuple[Path | None, int | None]:
    """The file (and line, when known) that set the value at a pydantic error location."""
    if not loc:
        return None, None
    src: Path | None = None
    prefix: list[str] = []
    rest: tuple[Any, ...] = ()
    if loc[0] == "em" and len(loc) > 1:
        key = str(loc[1])
        written = renamed.get(key, key)
        rest = loc[2:]
        if written in origins:
            src, prefix = origins[written], [written]
        elif "em" in origins:
            src, prefix = origins["em"], ["em", key]
    elif loc[0] == "interfaces":
        key = str(loc[3]) if len(loc) > 3 else ""
        written = renamed.get(key, key)
        rest = loc[4:]
        if key and written in origins and written not in ("interfaces",):
            src, prefix = origins[written], [written]
        elif "interfaces" in origins:
            src = origins["interfaces"]
            prefix = ["interfaces", *([str(loc[1])] if len(loc) > 1 else []), *([key] if key else [])]
    if src is None:
        return None, None
    lines = _KEY_LINES.get(str(src), {})
    if prefix and src.name == f"{prefix[0]}.yaml":
        prefix = prefix[1:]  # a `<key>.yaml` key-file holds the value itself
    path = ".".join(prefix)
    best = lines.get(path) if path else None
    for part in rest:
        cand = f"{path}.{part}" if path else str(part)
        if cand in lines:  # union tags (class or faculty names) are not in the file: skip them
            path, best = cand, lines[cand]
    return src, best


def _line_of(src: Path, dotted: str) -> int | None:
    """Line of a dotted key in a parsed file (also when it sits under `em:` or in a `<key>.yaml`)."""
    lines = _KEY_LINES.get(str(src), {})
    head, _, tail = dotted.partition(".")
    if src.name == f"{head}.yaml":
        return lines.get(tail) if tail else None
    return lines.get(dotted) or lines.get(f"em.{dotted}")


IGNORED_BY_CHAPTER2 = " is ignored by chapter2"
"""Said of an unknown key; dropped from the message when `validate --strict` makes it an error."""


def _unknown_key_warnings(transposed: dict[str, Any], renamed: dict[str, str], origins: dict[str, Path]) -> list[Problem]:
    """chapter2 silently ignores unknown keys everywhere; we say where they are."""
    out: list[Problem] = []

    def warn(path: str, src: Path | None, extra: str = "") -> None:
        line = _line_of(src, path) if src else None
        where = (f"{src}:{line}: " if line else f"{src}: ") if src else ""
        out.append(Problem(f"{where}unknown key '{path}'{IGNORED_BY_CHAPTER2}{extra}", path, unknown_key=True))

    for key in transposed:
        if key not in ("em", "interfaces") and key not in ("lookup_msg_cache", "character_faculty_recent_message_attention"):
            warn(renamed.get(key, key), origins.get(key))
    if "character_faculty_recent_message_attention" in transposed:
        out.append(
            Problem(
                f"{origins.get('character_faculty_recent_message_attention') or ''}: 'lookup_msg_cache' has no effect "
                "in chapter2 (its alias target is not a setting)".lstrip(": "),
                "lookup_msg_cache",
            )
        )
    em = transposed.get("em")
    if isinstance(em, dict):
        for i, ens in enumerate(em.get("ensembles") or []):
            if not isinstance(ens, dict):
                continue
            faculties: dict[str, type[BaseModel]] = {
                "character": m.CharacterFacultyConfig,
                "exa_search": m.ExaSearchFacultyConfig,
                "metaphor_search": m.ExaSearchFacultyConfig,
                "history": m.HistoryFacultyConfig,
                "sim": m.SimFacultyConfig,
                "airtable_notes": m.AirtableNotesFacultyConfig,
            }
            cls = faculties.get(str(ens.get("faculty")))
            if cls is None:
                continue
            for k in ens:
                if k not in cls.model_fields:
                    hint = " (faculty-level header/max_tokens go in ensemble_format layers)" if k in (
                        "header", "footer", "max_tokens", "separator") else ""
                    warn(f"ensembles.{i}.{k}", origins.get("ensembles") or origins.get("em"), hint)
            for j, layer in enumerate(ens.get("ensemble_format") or []):
                if isinstance(layer, dict):
                    for k in layer:
                        if k not in m.LayerOfEnsembleFormat.model_fields:
                            warn(f"ensembles.{i}.ensemble_format.{j}.{k}", origins.get("ensembles"))
    ifaces = transposed.get("interfaces")
    if isinstance(ifaces, list) and "interfaces" in origins:
        for i, iface in enumerate(ifaces):
            if not isinstance(iface, dict):
                continue
            cls = m.INTERFACE_CLASSES.get(str(iface.get("name", "discord" if i == 0 else "")))
            if cls is None:
                continue
            for k in iface:
                if k not in cls.model_fields and k not in m.ALL_INTERFACE_KEYS:
                    warn(f"interfaces.{i}.{k}", origins.get("interfaces"))
    return out


def validate_kv(
    em: str, kv: dict[str, Any], origins: dict[str, Path]
) -> tuple[m.Config, list[Problem], dict[str, str], set[str]]:
    """chapter2's `load_config_from_kv`: normalise, route, apply defaults and validate."""
    warnings: list[Problem] = []
    kv = dict(kv)
    if "legacy" in kv:
        kv.pop("legacy")
        warnings.append(Problem(f"{origins.get('legacy', '')}: 'legacy' has no effect in chapter2 (ignored)", "legacy"))
    if "active_interfaces" in kv:
        src = origins.get("active_interfaces")
        if "interfaces" in kv:
            raise Chapter2Error(em, src, "'interfaces' conflicts with the legacy key 'active_interfaces'", "interfaces")
        names = kv.pop("active_interfaces")
        if not isinstance(names, list):
            raise Chapter2Error(em, src, "'active_interfaces' must be a list of interface names", "active_interfaces")
        kv["interfaces"] = [{"name": n} for n in names]
        origins["interfaces"] = src  # type: ignore[assignment]
    kv, renamed = rename_keys(em, kv, origins)
    transposed = transpose_keys(kv, warnings)
    if isinstance(transposed["interfaces"], list):
        transposed["interfaces"] = overlay(default_interfaces(), transposed["interfaces"])
    warnings += _unknown_key_warnings(transposed, renamed, origins)
    configured = set(transposed["em"]) if isinstance(transposed["em"], dict) else set()
    try:
        config = m.Config.model_validate({"em": transposed["em"], "interfaces": transposed["interfaces"]})
    except ValidationError as exc:
        errs = exc.errors()
        first = errs[0]
        loc = tuple(first["loc"])
        src, line = _locate(loc, origins, renamed)
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise Chapter2Error(em, src, f"{_loc_str(loc)}: {first['msg']}{more}", _loc_str(loc), line) from None
    return config, warnings, renamed, configured


def dump(config: m.Config) -> dict[str, Any]:
    """The validated config as plain data (secrets revealed, folder as a string)."""
    data = config.model_dump(mode="python")
    data["em"]["folder"] = str(data["em"]["folder"])
    for ens in data["em"]["ensembles"]:
        if ens.get("faculty") == "sim":
            ens["em"]["folder"] = str(ens["em"]["folder"])
    return data


def dead_setting_warnings(config: m.Config, configured: set[str], origins: dict[str, Path]) -> list[Problem]:
    """Settings chapter2 accepts but that change nothing (reference section 9, point 6)."""
    em = config.em
    out: list[Problem] = []

    def warn(key: str, why: str) -> None:
        src = origins.get(key)
        out.append(Problem(f"{src}: '{key}' {why}" if src else f"'{key}' {why}", key))

    if "top_p" in configured:
        warn("top_p", "has no effect: chapter2 never sends top_p")
    if em.logit_bias and not em.prevent_scene_break:
        warn("logit_bias", "has no effect: chapter2 discards logit_bias unless prevent_scene_break is true")
    if em.continuation_options:
        warn("continuation_options", "has no effect: the pinned intermodel drops these options")
    if em.best_of is not None:
        warn("best_of", "has no effect: the pinned intermodel drops it")
    known = {"has_url", "has_pump_fun_ca", "has_img_url_token", "context_sentence_repetition"}
    for muffler in em.mufflers:
        if muffler not in known:
            warn("mufflers", f"lists unknown muffler '{muffler}': chapter2 fails when it generates a reply")
    for i, iface in enumerate(config.interfaces):
        if isinstance(iface, m.DiscordInterfaceConfig):
            if iface.airtable is not None:
                warn("airtable", f"(interfaces.{i}) is unused by chapter2 at interface level")
            if iface.image_limits.max_images != 5:
                warn("image_limits", f"(interfaces.{i}): max_images is unused by chapter2")
    for i, fac in enumerate(em.ensembles):
        if isinstance(fac, (m.CharacterFacultyConfig, m.SimFacultyConfig)) and len(fac.ensemble_format) < 2:
            warn("ensembles", f"(ensembles.{i}, {fac.faculty}) has fewer than 2 ensemble_format layers: "
                              "chapter2 raises IndexError when it builds the prompt")
        if isinstance(fac, m.HistoryFacultyConfig):
            warn("ensembles", f"(ensembles.{i}) uses the history faculty, which always fails at chapter2 HEAD")
    return out


def load(ems_dir: Path, name: str, *, home: bool = False, home_dir: Path | None = None) -> LoadResult:
    """Load and validate one em; raises Chapter2Error (one line) when chapter2 would fail."""
    ems_dir = Path(ems_dir)
    kv, origins, warnings, files = read_kv(ems_dir, name, home=home, home_dir=home_dir)
    config, more, renamed, configured = validate_kv(name, kv, origins)
    data = dump(config)
    from chapterx_compat.chapter2.schema import check_loaded  # local: builds a validator once

    for problem in check_loaded(data):
        raise Chapter2Error(name, None, f"loaded config does not match the chapter2 schema: {problem}")
    if not config.em.vendors:
        more.append(Problem("no 'vendors' configured: chapter2 needs a vendor whose 'provides' matches the model",
                            "vendors"))
    more += dead_setting_warnings(config, configured, origins)
    return LoadResult(
        sysname=name,
        ems_dir=ems_dir,
        em_dir=ems_dir / name,
        kv=kv,
        origins=origins,
        config=config,
        data=data,
        warnings=warnings + more,
        files=files,
        configured_em_keys=configured,
        renamed=renamed,
    )


def load_em(ems_dir: Path, name: str, home: bool = False) -> dict[str, Any]:
    """The em config after loading, chapter2 keys, secrets revealed (the interface contract)."""
    return load(Path(ems_dir), name, home=home).data


def masked(data: dict[str, Any], config: m.Config) -> dict[str, Any]:
    """Like chapter2's `model_dump(mode="json")`: secrets shown as `**********`, inf as "Infinity"."""
    out = copy.deepcopy(data)
    em = out["em"]
    if "vendors" in config.em.model_fields_set:
        em["vendors"] = "**********"
    else:
        em["vendors"] = "{}"
    for key in ("exa_search_api_key", "novelai_api_key"):
        if em.get(key) is not None:
            em[key] = "**********"
    for iface in out["interfaces"]:
        for key in m.SECRET_INTERFACE_KEYS:
            if iface.get(key) is not None:
                iface[key] = "**********"
        if isinstance(iface.get("airtable"), dict):
            iface["airtable"]["api_token"] = "**********"

    def fix(v: Any) -> Any:
        if isinstance(v, float) and math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return fix(out)  # type: ignore[no-any-return]


def list_ems(ems_dir: Path) -> list[str]:
    """Em folders of a deployment: sub-folders (not hidden, not `*.chr`) of the ems folder."""
    out = []
    for p in sorted(Path(ems_dir).iterdir(), key=lambda p: p.name):
        if p.name.startswith(".") or p.name.endswith(".chr"):
            continue
        try:
            if p.is_dir():
                out.append(p.name)
        except OSError:
            continue
    return out
