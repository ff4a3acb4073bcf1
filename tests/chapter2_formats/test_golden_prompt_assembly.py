"""prompt-assembly.json: the exact prompt, the stop list, max_tokens, the replies and the character
retrieval of each case, through `build_prompt` / `generation` from the em's prompt keys.

The em's config files are merged shallowly here (shared `ems/config.yaml`, then the em's own file), which
is all these cases need; the real loader is `chapterx_compat.chapter2.load`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from chapterx_compat.chapter2.formats import Message
from chapterx_compat.chapter2.formats.generation import (
    build_logit_bias,
    build_stop_sequences,
    exa_query,
    exa_results_to_messages,
    generate_replies,
    parse_replies,
)
from chapterx_compat.chapter2.formats.prompt import PromptSettings, assemble_prompt, build_prompt
from tests.conftest import golden_cases, golden_ids

NOW = datetime(2025, 3, 14, 15, 9, 26)
HOST = "golden-host"


def _cases() -> dict[str, dict[str, Any]]:
    return golden_cases("chapter2", "prompt-assembly.json")


def _ids() -> list[str]:
    return golden_ids("chapter2", "prompt-assembly.json")


def _write_tree(case: dict[str, Any], root: Path) -> tuple[dict[str, Any], Path]:
    for rel, text in case["input"]["files"].items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    em = case["input"]["em"]
    yaml = YAML(typ="safe")
    merged: dict[str, Any] = {}
    for rel in ("ems/config.yaml", f"ems/{em}/config.yaml"):
        text = case["input"]["files"].get(rel)
        if text:
            merged.update(yaml.load(text) or {})
    return merged, root / "ems" / em


def _history(case: dict[str, Any]) -> list[Message]:
    return [Message.from_dict(m) for m in case["input"]["history_newest_first"]][::-1]


class Script:
    """The LLM stand-in: scripted completions in order, finish_reason "stop"."""

    def __init__(self, completions: list[str]) -> None:
        self.completions = list(completions)

    async def next(self) -> tuple[str, str | None]:
        return self.completions.pop(0), "stop"


def _run(case: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    config, base_dir = _write_tree(case, tmp_path)
    history = _history(case)
    script = Script(case["input"]["completions"])
    nested: list[dict[str, Any]] = []

    def faculty_items(faculty: dict[str, Any], newest_first: list[Message]) -> Any:
        if faculty["faculty"] == "exa_search":
            return exa_results_to_messages(case["input"].get("exa_results") or [])
        if faculty["faculty"] == "sim":
            sub = PromptSettings.from_dict(faculty["em"])
            name = faculty["em"]["name"]
            nested.append({"stop": build_stop_sequences(sub, newest_first[::-1], name),
                           "max_tokens": sub.continuation_max_tokens})
            return asyncio.run(generate_replies(sub, name, script.next))
        return None

    result = build_prompt(config, history, em_name=config.get("name", case["input"]["em"]), now=NOW,
                          base_dir=base_dir, hostname=HOST, faculty_items=faculty_items)
    settings = PromptSettings.from_dict(config)
    em_name = config.get("name", case["input"]["em"])
    replies = asyncio.run(generate_replies(settings, em_name, script.next)) if script.completions else []
    return {
        "result": result,
        "settings": settings,
        "config": config,
        "stop": build_stop_sequences(settings, history, em_name),
        "replies": [m.to_dict() for m in replies],
        "nested": nested,
    }


# Quirks decided not to reproduce (docs/differences.md#postprocess); checked separately below.
DIFFERENT = {"header-unknown-placeholder", "character-single-layer-crash", "history-faculty-broken",
             "completion-muffled-retry", "vendors-unset-crash"}


@pytest.mark.parametrize("case_id", [i for i in _ids() if i not in DIFFERENT])
def test_prompt_case(case_id: str, tmp_path: Path) -> None:
    case = _cases()[case_id]
    exp = case["expected"]
    got = _run(case, tmp_path)
    assert got["result"].prompt == exp["prompt"]
    assert got["stop"] == exp["stop"]
    assert got["settings"].continuation_max_tokens == exp["requests"][-1]["max_tokens"]
    assert [r.get("stop") for r in exp["requests"][:-1]] == [n["stop"] for n in got["nested"]]
    assert [r.get("max_tokens") for r in exp["requests"][:-1]] == [n["max_tokens"] for n in got["nested"]]
    assert got["replies"] == exp["replies"]
    if "character_retrieval" in exp:
        assert got["result"].character_retrieval == exp["character_retrieval"]
    if any(r.get("logit_bias") for r in exp["requests"]):
        cfg = got["config"]
        bias = build_logit_bias(cfg.get("logit_bias", {}), prevent_scene_break=bool(cfg.get("prevent_scene_break")),
                                scene_break=got["settings"].scene_break, tokenize=str.split)
        assert {str(k): v for k, v in bias.items()} == exp["requests"][-1]["logit_bias"]
    if "exa_requests" in exp:
        assert exp["exa_requests"][0]["query"] == exa_query(_history(case), case["input"]["em"])


def test_unknown_placeholder_stays_literal(tmp_path: Path) -> None:
    cases = _cases()
    got = _run(cases["header-unknown-placeholder"], tmp_path)
    assert cases["header-unknown-placeholder"]["expected"]["prompt_error"]["type"] == "KeyError"
    assert got["result"].prompt == "Dear {reader}\n" + cases["default-irc"]["expected"]["prompt"]


def test_single_character_layer_gets_default_inner_layer(tmp_path: Path) -> None:
    case = _cases()["character-single-layer-crash"]
    got = _run(case, tmp_path / "a")
    explicit = json.loads(json.dumps(case))
    explicit["input"]["files"]["ems/wren/config.yaml"] = (
        "ensembles:\n  - faculty: character\n    ensemble_format:\n      - format: {name: irc}\n"
        "      - format: {name: irc}\n        separator: ''\n        footer: ''\n"
    )
    assert got["result"].prompt == _run(explicit, tmp_path / "b")["result"].prompt
    assert got["result"].prompt.startswith("<wren> high tide tonight is at nine\n")  # best chunk first (append)


def test_history_faculty_skipped_with_warning(tmp_path: Path) -> None:
    cases = _cases()
    got = _run(cases["history-faculty-broken"], tmp_path)
    assert got["result"].prompt == cases["default-irc"]["expected"]["prompt"]
    assert any("history" in w for w in got["result"].warnings)


def test_muffled_retry_sends_clean_lines_once(tmp_path: Path) -> None:
    case = _cases()["completion-muffled-retry"]
    got = _run(case, tmp_path)
    assert got["result"].prompt == case["expected"]["prompt"]
    # upstream yields the clean line on each of the 3 tries; we send the accepted try only
    assert got["replies"] == case["expected"]["replies"][:1]


def test_vendors_unset_prompt_still_assembles(tmp_path: Path) -> None:
    case = _cases()["vendors-unset-crash"]
    config, base_dir = _write_tree(case, tmp_path)
    prompt = assemble_prompt(config, _history(case), em_name="wren", now=NOW, base_dir=base_dir, hostname=HOST)
    assert prompt == case["expected"]["prompt"]


def test_parse_replies_trims_incomplete_sentence_only_on_length() -> None:
    s = PromptSettings.from_dict({"trim_final_incomplete_sentence": True})
    assert [m.content for m in parse_replies(s, " It is late. The tide is", "wren", finish_reason="length")] == ["It is late."]
    assert [m.content for m in parse_replies(s, " It is late. The tide is", "wren", finish_reason="stop")] == ["It is late. The tide is"]
