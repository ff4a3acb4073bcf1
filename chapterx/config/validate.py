"""`validate_paths`: check config roots, single files and loose folders of files.

Each file gets one FileReport (dialect "chapterx", "chapter2" or "other" for files that are not
configs, such as steering probe catalogs, token placeholders and text dumps). Per-file checks come
from the schema (with line numbers); bot files are also resolved with their shared file so that
required keys are checked after merging, as the runtime does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chapterx.config import schema as sch
from chapterx.config.check import check_document
from chapterx.config.errors import ConfigError
from chapterx.config.load import resolve_bot_config
from chapterx.config.report import FileReport, Problem
from chapterx.config.vendors import normalise_vendors
from chapterx.config.yamlio import Document, load_file, read_text

YAML_SUFFIXES = (".yaml", ".yml", ".yaml.example", ".yml.example")


def validate_paths(
    paths: Iterable[Path | str], dialect: str = "auto", strict: bool = False, chapter2_home: bool = False
) -> list[FileReport]:
    """Validate each path; `chapter2_home` adds chapter2's ~/.config/chapter2 layers to em resolution."""
    reports: list[FileReport] = []
    for raw in paths:
        reports.extend(_validate_one(Path(raw), dialect, strict, chapter2_home))
    return reports


def _chapter2(path: Path, strict: bool, home: bool) -> list[FileReport]:
    from chapterx_compat.chapter2 import api

    try:
        return list(api.validate_deployment(path, strict=strict, home=home))
    except ConfigError as exc:
        return [FileReport(exc.path or str(path), "chapter2", errors=[Problem(exc.detail, exc.key, exc.line)],
                           unreadable=exc.exit_code == 2)]


def _looks_like_chapter2(path: Path) -> bool:
    try:
        from chapterx_compat.chapter2 import api

        return bool(api.looks_like_chapter2(path))
    except Exception:  # noqa: BLE001 - a broken probe must not break ChapterX validation
        return False


def _validate_one(path: Path, dialect: str, strict: bool, chapter2_home: bool = False) -> list[FileReport]:
    if not path.exists():
        return [FileReport(str(path), "chapterx", errors=[Problem("path not found")], unreadable=True)]
    if dialect == "chapter2" or (dialect == "auto" and _looks_like_chapter2(path)):
        return _chapter2(path, strict, chapter2_home)
    em_folder = _chapter2_folder_of(path, dialect)
    if em_folder is not None:  # ems/<em>/config.yaml (or ems/config.yaml): that em (those ems) as chapter2 loads it
        return _chapter2(em_folder, strict, chapter2_home)
    if path.is_dir():
        if (path / "shared.yaml").is_file() or (path / "bots").is_dir():
            return validate_config_root(path, strict)
        if (path / "config.yaml").is_file() and any((d / "config.yaml").is_file() for d in _subdirs(path)):
            return validate_ems_root(path, strict)
        return _validate_loose_dir(path, dialect, strict)
    return [validate_file(path, strict=strict)]


def _chapter2_folder_of(path: Path, dialect: str) -> Path | None:
    """The em (or ems) folder when `path` is a chapter2 `config.yaml` / `vendors.yaml` file.

    Such a file only means something merged with its `ems/` tree, and read as a ChapterX bot file it
    would get a list of bogus errors; its place in the tree tells which it is.
    """
    if dialect not in ("auto", "chapter2") or not path.is_file() or path.name not in ("config.yaml", "vendors.yaml"):
        return None
    if dialect == "chapter2" or _looks_like_chapter2(path.parent):
        return path.parent
    return None


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError:
        return []


def _validate_loose_dir(path: Path, dialect: str, strict: bool) -> list[FileReport]:
    try:
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        return [FileReport(str(path), "chapterx", errors=[Problem(f"cannot list folder: {exc.strerror}")],
                           unreadable=True)]
    out: list[FileReport] = []
    for entry in entries:
        if entry.is_dir():
            out.extend(_validate_one(entry, dialect, strict))
        else:
            out.append(validate_file(entry, strict=strict))
    if not out:
        out.append(FileReport(str(path), "other", note="empty folder: no config files found"))
    return out


def validate_config_root(root: Path, strict: bool = False) -> list[FileReport]:
    """A ChapterX config root: shared.yaml, guilds/*.yaml, bots/*.yaml (bot and bot x guild files)."""
    out: list[FileReport] = []
    if (root / "shared.yaml").exists():
        out.append(validate_file(root / "shared.yaml", role="shared", strict=strict))
    for g in _yaml_files(root / "guilds"):
        out.append(validate_file(g, role="guild", strict=strict))
    bots = _yaml_files(root / "bots")
    stems = {_stem(b) for b in bots}
    for b in bots:
        m = re.match(r"^(.+)-(\d*)$", _stem(b))
        role = "bot-guild" if m and m.group(1) in stems else "bot"
        out.append(validate_file(b, role=role, strict=strict, config_root=root, others_reported=True))
    if not bots:
        out.append(FileReport(str(root / "bots"), "chapterx", warnings=[Problem("no bot files (bots/*.yaml) found")]))
    return out


def validate_ems_root(root: Path, strict: bool = False) -> list[FileReport]:
    """A ChapterX EMS-layout root: config.yaml, guilds/*.yaml, <bot>/config.yaml, <bot>/guilds/*.yaml."""
    out = [validate_file(root / "config.yaml", role="shared", strict=strict)]
    for g in _yaml_files(root / "guilds"):
        out.append(validate_file(g, role="guild", strict=strict))
    for d in _subdirs(root):
        if d.name == "guilds" or not (d / "config.yaml").exists():
            continue
        out.append(validate_file(d / "config.yaml", role="bot", strict=strict, ems_root=root, bot_name=d.name,
                                 others_reported=True))
        for g in _yaml_files(d / "guilds"):
            out.append(validate_file(g, role="bot-guild", strict=strict))
    return out


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith((".yaml", ".yml")) and not p.name.startswith("."))


def _stem(p: Path) -> str:
    name = p.name
    for suffix in YAML_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return p.stem


def _not_a_config(path: Path) -> str | None:
    """A note when the file is clearly not a ChapterX config (decided from its name and content)."""
    name = path.name.lower()
    if "token" in name and not name.endswith(YAML_SUFFIXES):
        return "not a config: token placeholder file (holds a secret; never commit a real one)"
    if name.endswith(".json"):
        try:
            data = json.loads(read_text(path, what="file"))
        except (ConfigError, ValueError):
            return "not a config: JSON file (ChapterX configs are YAML)"
        if isinstance(data, dict) and data and all(isinstance(v, dict) and "labels" in v for v in data.values()):
            return f"not a config: steering probe catalog ({len(data)} probe sets)"
        return "not a config: JSON file (ChapterX configs are YAML)"
    return None


def classify(path: Path, doc: Document | None) -> str:
    """Which layer a file is: "shared", "guild" or "bot" (by name and location, then by content)."""
    name = _stem(path).lower()
    if name.endswith("shared") or path.name.lower().startswith("shared."):
        return "shared"
    if path.parent.name == "guilds":
        return "guild"
    data = doc.data if doc is not None else None
    if isinstance(data, dict) and ("vendors" in data or "providers" in data) and not (
            "name" in data or "continuation_model" in data or "innerName" in data):
        return "shared"
    return "bot"


def validate_file(path: Path, *, role: str | None = None, strict: bool = False, config_root: Path | None = None,
                  ems_root: Path | None = None, bot_name: str | None = None,
                  others_reported: bool = False) -> FileReport:
    """Validate one file; `role` is guessed when not given."""
    shown = str(path)
    if role is None and not path.is_dir():
        note = _not_a_config(path)
        if note:
            return FileReport(shown, "other", note=note)
    try:
        doc = load_file(path)
    except ConfigError as exc:
        if role is None and not path.name.endswith(YAML_SUFFIXES) and exc.exit_code == 1:
            return FileReport(shown, "other", note="not a config: plain text (for example a text dump), not YAML")
        return FileReport(shown, "chapterx", errors=[Problem(exc.detail, exc.key, exc.line)],
                          unreadable=exc.exit_code == 2)
    if role is None and not path.name.endswith(YAML_SUFFIXES):
        known = sch.key_table(sch.SHARED_SCHEMA).properties
        if not (isinstance(doc.data, dict) and any(k in known for k in doc.data)):
            return FileReport(shown, "other", note="not a config: plain text with no config keys")
    role = role or classify(path, doc)
    report = FileReport(shown, "chapterx")
    if doc.empty:
        report.errors.append(Problem("file is empty (or only comments); add keys or delete it"))
        return report
    schema_name = sch.SHARED_SCHEMA if role == "shared" else sch.BOT_SCHEMA
    checked = check_document(doc, schema_name, strict=strict, role="bot" if role == "bot" else role)
    report.errors.extend(checked.errors)
    report.warnings.extend(checked.warnings)
    from chapterx.tools.validate import tool_warnings  # tools area: unknown plugins, bad scopes, MCP entries

    report.warnings.extend(Problem(m, k, doc.line_of(k)) for m, k in tool_warnings(checked.data))
    if role == "shared" and isinstance(checked.data, dict) and not checked.errors:
        _, vwarn = normalise_vendors(checked.data, {}, shown)
        for w in vwarn:
            report.warnings.append(Problem(w.message, w.key, doc.line_of(w.key)))
    if role == "bot" and not report.errors:
        _check_resolution(path, report, doc, strict, config_root, ems_root, bot_name, others_reported)
    return report


def _check_resolution(path: Path, report: FileReport, doc: Document, strict: bool, config_root: Path | None,
                      ems_root: Path | None, bot_name: str | None, others_reported: bool = False) -> None:
    """Resolve the bot (shared + bot file) as the runtime would, to catch missing required keys."""
    kwargs: dict[str, Any] = {"env": {}, "strict": strict}
    if ems_root is not None:
        kwargs.update(ems_path=ems_root, bot_name=bot_name)
    else:
        kwargs.update(bot_file=path, config_root=config_root)
    try:
        resolved = resolve_bot_config(**kwargs)
    except ConfigError as exc:
        same = exc.path is not None and Path(exc.path.split(" (")[0]) == path
        if same:
            line = exc.line if exc.line else doc.line_of(exc.key) if exc.key in ("providers_config",) else None
            report.errors.append(Problem(exc.detail, exc.key, line))
        elif not others_reported:  # inside a config root the other file has its own report
            report.errors.append(Problem(f"cannot resolve this bot: {exc}", exc.key))
        return
    shared = resolved.paths[:1]  # the shared file is read first; it has its own report
    for f in resolved.findings:
        key, source = f.problem.key, Path(f.source)
        if not (key and key.endswith("_file")) or source == path:
            continue  # only prompt-file problems; this file's own ones come from the per-file check
        if source in shared and not f.source.endswith("_file"):
            continue
        report.warnings.append(Problem(f.problem.message, key, doc.line_of(key)))
