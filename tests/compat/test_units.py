"""Unit tests of the chapter2 building blocks: YAML 1.1, regex -> glob, schema, detection, validate."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from chapterx.config.validate import validate_paths
from chapterx.config.vendors import glob_matches
from chapterx_compat.chapter2 import api
from chapterx_compat.chapter2.load import load
from chapterx_compat.chapter2.migrate import dump_yaml
from chapterx_compat.chapter2.schema import SCHEMA_PATH, build_schema, check_loaded, render_schema
from chapterx_compat.chapter2.vendors import regex_to_globs
from chapterx_compat.chapter2.yaml11 import YAML11Error, load_yaml11
from tests.conftest import FIXTURES_DIR, shared_path

HARBOUR = FIXTURES_DIR / "chapter2" / "harbour" / "ems"


# ------------------------------------------------------------------ YAML 1.1 (PyYAML semantics)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("31_000", 31000),
        ("017", 15),
        ("0o17", "0o17"),
        ("1_0.5", 10.5),
        ("1e3", "1e3"),
        ("1.0e+3", 1000.0),
        ("0x1F", 31),
        (".5", 0.5),
        ("yes", True),
        ("Off", False),
        ("y", "y"),
        ("n", "n"),
        ("~", None),
        ("'31_000'", "31_000"),
    ],
)
def test_yaml11_scalars(text: str, expected: object) -> None:
    value, dups = load_yaml11(f"k: {text}\n")
    assert value == {"k": expected}
    assert type(value["k"]) is type(expected)
    assert dups == []


def test_yaml11_inf_and_duplicates_last_wins_in_first_position() -> None:
    value, dups = load_yaml11("a: .inf\nb: 1\na: 2\nc: {x: 1, x: 3}\n")
    assert list(value) == ["a", "b", "c"]
    assert value["a"] == 2 and value["c"] == {"x": 3}
    assert [(d.key, d.line, d.path) for d in dups] == [("a", 3, ""), ("x", 4, "c")]
    assert load_yaml11("m: .inf\n")[0]["m"] == float("inf")


def test_yaml11_errors_are_one_line() -> None:
    with pytest.raises(YAML11Error) as info:
        load_yaml11("a: [1,\n")
    assert "\n" not in str(info.value) and "line" in str(info.value)


# ------------------------------------------------------------------ regex -> glob


MODELS = [
    "claude-3-opus-20240229", "claude-3.5-sonnet", "gpt-4", "gpt-4o", "gpt-4.1", "meta-llama/Llama-3.1-405B",
    "google/gemma-2-2b", "google/gemma-2-9b", "mistral-7b", "xclaude-3", "claude-", "", "a.b", "aXb",
]


@pytest.mark.parametrize(
    "pattern",
    [".*", "claude-.*", "meta-llama/.*", "google/gemma-2-2b", "gpt-4.*|claude-.*", r"^claude-3\.5.*$", "a\\.b",
     ".*-2b", ".*?"],
)
def test_translated_globs_match_exactly_what_the_regex_matched(pattern: str) -> None:
    globs = regex_to_globs(pattern)
    assert globs is not None
    for model in MODELS:
        assert any(glob_matches(g, model) for g in globs) == bool(re.fullmatch(pattern, model)), (pattern, model)


@pytest.mark.parametrize("pattern", ["gpt-4o?", "(a|b)", "[ab]c", "x.y", "*", r"\d+", "a+"])
def test_inexact_regexes_are_not_translated(pattern: str) -> None:
    assert regex_to_globs(pattern) is None


# ------------------------------------------------------------------ emitter


def test_emitter_round_trips_through_yaml11_and_yaml12_readers() -> None:
    from ruamel.yaml import YAML

    data = {
        "a": "yes", "b": "x\ny\n", "c": float("inf"), "d": ["a", {"q": 1, "r": [1, 2]}, [3, [4]], {}],
        "e": "", "f": "null", "g": "1e3", "h": 1.5, "i": 1e20, "j": None, "k": {"x": {"y": []}},
        "l": "###", "m": "a: b", "n": " lead", "o": "trail ", "p": "{now:%Y-%m-%d}", "q": "\u2028x",
        "s": "- x", "t": "@x", "u": -3, "v": True, "w": "0.9", "x": "2024-01-01", "z": "on",
    }
    text = dump_yaml(data)
    assert YAML(typ="safe", pure=True).load(text) == data
    assert load_yaml11(text)[0] == data


# ------------------------------------------------------------------ schema


def test_committed_schema_is_current_and_valid_2020_12() -> None:
    assert SCHEMA_PATH.read_text() == render_schema(), "run: python -m chapterx_compat.chapter2.schema"
    schema = build_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    em = schema["$defs"]["EmConfig"]["properties"]
    assert all(prop.get("description") for prop in em.values())


def test_schema_rejects_a_wrong_loaded_config() -> None:
    data = load(HARBOUR, "gull").data
    assert check_loaded(data) == []
    data["em"]["ensembles"][0]["faculty"] = "telepathy"
    data["interfaces"][0]["reply_on_random"] = "often"
    problems = check_loaded(data)
    assert problems and any("interfaces.0" in p for p in problems)


# ------------------------------------------------------------------ detection and validate


def test_looks_like_chapter2(tmp_path: Path) -> None:
    assert api.looks_like_chapter2(HARBOUR)
    assert api.looks_like_chapter2(HARBOUR / "gull")
    assert not api.looks_like_chapter2(tmp_path)
    chx = tmp_path / "chx"
    (chx / "bots").mkdir(parents=True)
    (chx / "shared.yaml").write_text("vendors: {}\n")
    assert not api.looks_like_chapter2(chx)
    ems = tmp_path / "emslayout"
    (ems / "bot1").mkdir(parents=True)
    (ems / "config.yaml").write_text("vendors: {}\n")
    (ems / "bot1" / "config.yaml").write_text("name: B\ncontinuation_model: x\nmax_tokens: 100\nmode: chat\n")
    assert not api.looks_like_chapter2(ems), "a ChapterX EMS-layout folder is not chapter2"


def test_validate_reports_per_em_in_the_chapterx_format(tmp_path: Path) -> None:
    reports = validate_paths([HARBOUR])
    assert [Path(r.path).name for r in reports] == ["gull", "skua", "tern"]
    assert {r.dialect for r in reports} == {"chapter2"}
    assert all(r.ok for r in reports)
    skua = next(r for r in reports if r.path.endswith("skua"))
    assert any("duplicate key 'recency_window'" in w.message for w in skua.warnings)
    assert any("unknown_setting" in w.message for w in skua.warnings)
    strict = api.validate_deployment(HARBOUR, strict=True)
    assert not next(r for r in strict if r.path.endswith("skua")).ok
    broken = tmp_path / "ems"
    shutil.copytree(HARBOUR, broken)
    (broken / "tern" / "config.yaml").write_text("message_history_format: colon\n")
    reports = validate_paths([broken])
    tern = next(r for r in reports if r.path.endswith("tern"))
    assert not tern.ok and "message_history_format" in tern.errors[0].message
    assert json.dumps(tern.to_json())


def test_home_layers_only_when_asked(tmp_path: Path) -> None:
    home = tmp_path / "home" / ".config" / "chapter2"
    home.mkdir(parents=True)
    (home / "config.yaml").write_text("continuation_max_tokens: 333\n")
    assert load(HARBOUR, "tern").config.em.continuation_max_tokens == 120
    assert load(HARBOUR, "tern", home=True, home_dir=home).config.em.continuation_max_tokens == 333


def test_corpus_simspode_yaml11_values() -> None:
    ems = shared_path("corpus", "chapter2", "joysatisficer__chapter2__49e5820", "ems")
    res = load(ems, "simspode")
    assert res.config.em.total_max_tokens == 30000  # `prompt_max_tokens: 30_000`, YAML 1.1 int
    assert res.config.em.recency_window == 300  # duplicate key: last wins
    assert any("duplicate key" in w.message for w in res.warnings)
    assert res.config.em.message_history_header.startswith("Current date: {now:%Y-%m-%d}")


def test_dead_settings_are_warned(tmp_path: Path) -> None:
    ems = tmp_path / "ems"
    shutil.copytree(HARBOUR, ems)
    (ems / "skua" / "config.yaml").write_text(
        "continuation_model: mistral-7b\nlogit_bias: {'50256': -100}\nbest_of: 2\nmufflers: [has_url, nope]\n"
        "ensembles:\n  - faculty: character\n    ensemble_format:\n      - format: {}\n"
    )
    messages = " | ".join(w.message for w in load(ems, "skua").warnings)
    for needle in ("logit_bias", "best_of", "unknown muffler 'nope'", "fewer than 2 ensemble_format layers"):
        assert needle in messages, needle
    gull = " | ".join(w.message for w in load(HARBOUR, "gull").warnings)
    assert "'top_p' has no effect" in gull


def test_progress_bar_for_large_deployments(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from chapterx.commands.migrate import PROGRESS_THRESHOLD, _plan_with_progress
    from chapterx_compat.chapter2.migrate import plan_migration

    ems = tmp_path / "ems"
    ems.mkdir()
    shutil.copy(HARBOUR / "config.yaml", ems / "config.yaml")
    for i in range(PROGRESS_THRESHOLD):
        shutil.copytree(HARBOUR / "skua", ems / f"em{i:02d}")
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    plan = _plan_with_progress(plan_migration, ems, None, False, console, show=True)
    assert len(plan.translations) == PROGRESS_THRESHOLD
    assert "migrating" in buf.getvalue()
    quiet = io.StringIO()
    _plan_with_progress(plan_migration, ems, None, False, Console(file=quiet, force_terminal=False), show=True)
    assert quiet.getvalue() == ""


def test_errors_point_at_file_and_line(tmp_path: Path) -> None:
    from chapterx_compat.chapter2.load import Chapter2Error

    ems = tmp_path / "ems"
    shutil.copytree(HARBOUR, ems)
    (ems / "skua" / "config.yaml").write_text(
        "recency_window: 5\nensembles:\n  - faculty: character\n    ensemble_format:\n"
        "      - format: {}\n        max_tokens: 1.5\n      - format: {}\n"
    )
    with pytest.raises(Chapter2Error) as info:
        load(ems, "skua")
    assert info.value.line == 6
    assert "skua/config.yaml:6: em.ensembles.0.character.ensemble_format.0.max_tokens" in str(info.value)
    (ems / "skua" / "config.yaml").write_text("interfaces:\n  - name: discord\n  - name: chatcompletions\n    port: x\n")
    with pytest.raises(Chapter2Error) as info:
        load(ems, "skua")
    assert info.value.line == 4 and "interfaces.1" in str(info.value)


def test_config_show_translates_a_chapter2_em(capsys: pytest.CaptureFixture[str]) -> None:
    from chapterx.cli import main

    assert main(["config", "show", "--ems", str(HARBOUR), "--bot", "tern"]) == 0
    out = capsys.readouterr().out
    assert "chapter2_prompt" in out and "Harbour radio log, {now:%Y-%m-%d}" in out
    assert "not-a-real-token" not in out and "sk-ant-TEST" not in out


def test_golden_sample_validates_per_em() -> None:
    ems = shared_path("golden", "chapter2", "sample-ems", "ems")
    reports = validate_paths([ems])
    assert sorted(Path(r.path).name for r in reports) == ["ferris", "quill", "wren"]
    assert all(r.dialect == "chapter2" and r.ok for r in reports)
