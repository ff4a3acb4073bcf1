"""The narrow surface the rest of chapterx uses to reach chapter2 deployments.

The CLI (`validate`, `config show --ems`, `migrate`) and the runtime call only these functions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from chapterx.config.report import FileReport, Problem

# Keys only a chapter2 config uses (ChapterX would ignore them) and keys only ChapterX uses: how
# we tell a chapter2 `ems/` folder from a ChapterX EMS-layout folder, which looks the same.
_CHAPTER2_ONLY = frozenset(
    {
        "continuation_max_tokens", "ensembles", "message_history_format", "message_history_header",
        "message_history_footer", "message_history_separator", "message_history_max_tokens",
        "message_history_operator", "prompt_max_tokens", "total_max_tokens", "recency_window",
        "representation_model", "mufflers", "split_message", "name_prefix", "nicknames", "interfaces",
        "active_interfaces", "reply_on_sim", "reply_on_regex", "scene_break", "prevent_scene_break",
        "continuation-model", "continuation-max-tokens", "exa_search_api_key", "em",
    }
)
_CHAPTERX_ONLY = frozenset(
    {
        "max_tokens", "mode", "tool_plugins", "plugin_config", "mcp_servers", "system_prompt",
        "context_prefix", "recency_window_messages", "recency_window_characters", "rolling_threshold",
        "prompt_caching", "prefill_thinking", "chapter2_prompt", "provider_params", "llm_retries",
    }
)


def _top_keys(path: Path) -> set[str]:
    try:
        from chapterx_compat.chapter2.yaml11 import load_yaml11

        data, _ = load_yaml11(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a probe: unreadable means "no evidence"
        return set()
    return {str(k) for k in data} if isinstance(data, dict) else set()


def _em_like(folder: Path) -> bool:
    try:
        return (folder / "config.yaml").is_file() or (folder / "discord_token").exists() or any(
            p.name.endswith(".chr") for p in folder.iterdir()
        )
    except OSError:
        return False


def looks_like_chapter2(path: Path) -> bool:
    """True when `path` is a chapter2 `ems/` folder (or one em folder inside one)."""
    path = Path(path)
    try:
        if not path.is_dir() or (path / "shared.yaml").exists() or (path / "bots").is_dir():
            return False
        subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return False
    ems = [d for d in subdirs if not d.name.endswith(".chr") and d.name != "guilds" and _em_like(d)]
    if ems:
        root, em_dirs = path, ems
    elif _em_like(path) and path.parent != path:
        root, em_dirs = path.parent, [path]  # one em folder
    else:
        return False
    keys: set[str] = set()
    for f in [root / "config.yaml", root / "vendors.yaml", *(d / "config.yaml" for d in em_dirs)]:
        if f.is_file():
            keys |= _top_keys(f)
    if keys & _CHAPTERX_ONLY and not keys & _CHAPTER2_ONLY:
        return False  # a ChapterX EMS-layout folder
    if (root / "guilds").is_dir() and not keys & _CHAPTER2_ONLY:
        return False
    return True


def _split_target(path: Path) -> tuple[Path, list[str]]:
    """(ems folder, em names) for either an ems folder or a single em folder."""
    from chapterx_compat.chapter2.load import list_ems

    names = [n for n in list_ems(path) if _em_like(path / n)]
    if names:
        return path, names
    return path.parent, [path.name]


def validate_deployment(path: Path, *, strict: bool = False, home: bool = False) -> list[FileReport]:
    """One report per em, each em resolved through its layers (dialect "chapter2")."""
    from chapterx_compat.chapter2.load import IGNORED_BY_CHAPTER2, Chapter2Error, load

    path = Path(path)
    if not path.is_dir():
        return [FileReport(str(path), "chapter2", errors=[Problem("not a folder (expected a chapter2 ems/ folder)")])]
    try:
        ems_dir, names = _split_target(path)
    except OSError as exc:
        return [FileReport(str(path), "chapter2", errors=[Problem(f"cannot list folder: {exc.strerror}")])]
    reports: list[FileReport] = []
    for name in names:
        report = FileReport(str(ems_dir / name), "chapter2")
        try:
            result = load(ems_dir, name, home=home)
        except Chapter2Error as exc:
            report.errors.append(Problem(exc.message, exc.key))
        else:
            for w in result.warnings:  # --strict makes unknown keys errors, as the ChapterX dialect does
                if strict and w.unknown_key:
                    report.errors.append(dataclasses.replace(w, message=w.message.replace(IGNORED_BY_CHAPTER2, "")))
                else:
                    report.warnings.append(w)
        reports.append(report)
    return reports


def translate_em(ems_dir: Path, name: str, *, home: bool = False) -> dict[str, Any]:
    """The em's resolved config translated to ChapterX keys (what `migrate` writes for it).

    This is the bot file's content (no vendors: those go to shared.yaml; no token: a file).
    """
    from chapterx_compat.chapter2.load import load
    from chapterx_compat.chapter2.translate import translate

    return translate(load(Path(ems_dir), name, home=home)).bot
