"""chapter2 vendors -> ChapterX vendors: names that keep the adapter kind, regex `provides` -> globs.

chapter2 (intermodel) picks a vendor by `re.fullmatch(pattern, model)` in mapping order; ChapterX
matches anchored globs (`*` is the only wildcard; every other character, `?` included, is literal).
A regex is translated only when the glob matches exactly the same model names; anything else is
reported, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Characters that are regex syntax when unescaped.
_META = set(".^$*+?{}[]|()\\")


def regex_to_globs(pattern: str) -> list[str] | None:
    """Exact glob equivalents of a fullmatch regex, or None when there is no exact translation.

    Handles literals, escaped punctuation (`\\.`), `.*` (-> `*`), redundant `^`/`$` anchors and
    top-level alternation (`a|b` -> two globs, since fullmatch of an alternation = any branch).
    """
    branches = _split_top_level(pattern)
    if branches is None:
        return None
    out: list[str] = []
    for branch in branches:
        glob = _branch_to_glob(branch)
        if glob is None:
            return None
        out.append(glob)
    return out


def _split_top_level(pattern: str) -> list[str] | None:
    parts, cur, i = [], "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            cur += pattern[i : i + 2]
            i += 2
            continue
        if ch in "([":
            return None  # groups and classes: not exactly expressible as a glob
        if ch == "|":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return parts


def _branch_to_glob(branch: str) -> str | None:
    if branch.startswith("^"):
        branch = branch[1:]
    if branch.endswith("$") and not branch.endswith("\\$"):
        branch = branch[:-1]
    out, i = "", 0
    while i < len(branch):
        ch = branch[i]
        if ch == "\\":
            if i + 1 >= len(branch):
                return None
            nxt = branch[i + 1]
            if nxt.isalnum() or nxt in "*?":
                return None  # \d, \w, ... classes; literal * or ? cannot be written in a ChapterX glob
            out += nxt
            i += 2
            continue
        if branch.startswith(".*", i):
            # `.*` followed by `?` (lazy) is still "anything" under fullmatch
            i += 3 if branch.startswith(".*?", i) else 2
            if not out.endswith("*"):
                out += "*"
            continue
        if ch in _META:
            return None
        out += ch
        i += 1
    return out


def chapter2_kind(name: str) -> str:
    """The intermodel adapter a chapter2 vendor name selects."""
    for prefix in ("anthropic", "openai"):
        if name.startswith(prefix):
            return prefix
    return name if name in ("ai21", "huggingface", "forefront", "replicate", "textsynth", "fake-local") else "unknown"


def pick_vendor(vendors: dict[str, Any], model: str) -> str | None:
    """chapter2's vendor choice: first `provides` fullmatch, else intermodel's name heuristics."""
    base = re.split(r"[\^@]", model, maxsplit=1)[0]
    for vname, entry in vendors.items():
        for pat in (entry or {}).get("provides") or []:
            try:
                if re.fullmatch(pat, base):
                    return str(vname)
            except re.error:
                continue
    if any(s in base for s in ("ada", "babbage", "curie", "davinci", "cushman")) or base.startswith(
        ("text-moderation-", "ft-", "gpt-4", "gpt-3.5-", "o1-")
    ):
        guess = "openai"
    elif base.startswith(("j1-", "j2-")):
        guess = "ai21"
    elif "forefront" in base:
        guess = "forefront"
    elif base.startswith("claude-"):
        guess = "anthropic"
    elif "/" in base:
        guess = "huggingface"
    else:
        return None
    return guess


@dataclass
class VendorTranslation:
    """One chapter2 vendor as it will appear in ChapterX's shared.yaml (or why it cannot)."""

    source_name: str
    name: str | None  # ChapterX vendor name (None: not carried over)
    entry: dict[str, Any] | None
    kind: str
    notes: list[str] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)  # provides regexes with no exact glob


OPENAI_CONFIG_KEYS = ("openai_api_key", "api_base")


def translate_vendor(name: str, entry: dict[str, Any]) -> VendorTranslation:
    config = dict((entry or {}).get("config") or {})
    provides = list((entry or {}).get("provides") or [])
    kind = chapter2_kind(name)
    if kind not in ("openai", "anthropic"):
        return VendorTranslation(
            name,
            None,
            None,
            kind,
            notes=[f"chapter2 vendor kind '{kind}' has no ChapterX adapter; not carried over"],
        )
    notes: list[str] = []
    globs: list[str] = []
    untranslated: list[str] = []
    for pat in provides:
        got = regex_to_globs(str(pat))
        if got is None:
            untranslated.append(str(pat))
        else:
            for g in got:
                if g not in globs:
                    globs.append(g)
    if untranslated:
        notes.append(
            "provides regex(es) with no exact ChapterX glob were left out: "
            + ", ".join(repr(p) for p in untranslated)
        )
    out_config: dict[str, Any] = {}
    if kind == "anthropic":
        new_name = name
        for k, v in config.items():
            if k == "anthropic_api_key":
                out_config[k] = v
            else:
                notes.append(f"config key '{k}' is not read by ChapterX's anthropic adapter")
        notes.append(
            "chapter2 sent the prompt as assistant prefill after a CLI-simulation system prompt; "
            "ChapterX's anthropic adapter uses its own prefill formatting"
        )
    else:
        base = str(config.get("api_base") or "")
        official = not base or "api.openai.com" in base
        if official:
            new_name = name
            notes.append(
                "official OpenAI endpoint: chapter2 used /chat/completions for gpt-3.5/gpt-4/o1 models and "
                "/completions otherwise; ChapterX's openai adapter is chat-only"
            )
        else:
            # chapter2's openai* vendor with a custom base sends raw prompts to /completions:
            # ChapterX keeps that behaviour only with an `openaicompletion*` vendor.
            new_name = "openaicompletion" + name[len("openai") :]
            notes.append(
                f"renamed '{name}' -> '{new_name}' so ChapterX keeps raw-prompt /completions "
                "(an 'openai*' name would select its chat adapter)"
            )
        for k, v in config.items():
            if k in OPENAI_CONFIG_KEYS:
                out_config[k] = v
            else:
                notes.append(f"config key '{k}' was sent in the request body by chapter2; ChapterX ignores it")
    out_entry: dict[str, Any] = {"config": out_config}
    if globs:
        out_entry["provides"] = globs
    return VendorTranslation(name, new_name, out_entry, kind, notes, untranslated)
