"""Golden vectors from upstream (config-resolution.json).

Cases listed in DIFFERENCES are deliberate differences (docs/differences.md#config); for those the
test checks what we do instead, so they are still tested, not skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chapterx.config.errors import ConfigError
from chapterx.config.load import load_bot_config_only, load_vendors, resolve_bot_config
from chapterx.config.pins import extract_config_pins
from chapterx.config.vendors import glob_matches, normalise_vendors
from tests.config.conftest import write_tree
from tests.conftest import SHARED_DIR, shared_path

GOLDEN = SHARED_DIR / "golden" / "chapterx" / "config-resolution.json"


def _cases(kind: str) -> list[dict[str, Any]]:
    if not GOLDEN.is_file():
        return []
    return [c for c in json.loads(GOLDEN.read_text(encoding="utf-8"))["cases"] if c.get("kind") == kind]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in cases]


# case id -> which of our deliberate behaviours applies instead of upstream's.
DIFFERENCES = {
    "cfg-falsy-or-defaults": "zero-honoured",
    "cfg-strict-boolean-operators": "type-error",
    "cfg-yaml12-yes-no-on": "type-error",
    "cfg-yaml12-numbers": "type-error",
    "cfg-yaml-duplicate-key-file-ignored": "broken-file-error",
    "cfg-yaml-leading-at-file-ignored": "broken-file-error",
    "cfg-camelcase-ignored": "camelcase-accepted",
    "cfg-prompt-file-parent-traversal": "shared-file-refused",
}


def _resolve(tmp_path: Path, case: dict[str, Any], **extra: Any) -> Any:
    inp = case["input"]
    kwargs: dict[str, Any] = {"bot_name": inp["bot_id"], "env": {}}
    if inp.get("layout") == "ems":
        kwargs["ems_path"] = tmp_path / "ems"
    else:
        kwargs["config_root"] = tmp_path / "config"
    kwargs.update(extra)
    return kwargs


@pytest.fixture(autouse=True)
def _need_golden() -> None:
    shared_path("golden", "chapterx", "config-resolution.json")


@pytest.mark.parametrize("case", _cases("load_config"), ids=_ids(_cases("load_config")))
def test_load_config(case: dict[str, Any], tmp_path: Path) -> None:
    inp, exp = case["input"], case["expected"]
    write_tree(tmp_path, inp["files"])
    pins = extract_config_pins(inp.get("pins", []), inp.get("bot_identity"))
    if "channel_configs" in exp:
        assert pins == exp["channel_configs"]
    kwargs = _resolve(tmp_path, case, guild_id=inp.get("guild_id"), channel_configs=pins)
    how = DIFFERENCES.get(case["id"])
    if how is None:
        if "error" in exp:
            with pytest.raises(ConfigError) as info:
                resolve_bot_config(**kwargs)
            assert exp["error"]["message"].lower() in str(info.value).lower()
        else:
            assert resolve_bot_config(**kwargs).config == exp["config"]
        return
    _check_difference(how, case, tmp_path, kwargs)


def _check_difference(how: str, case: dict[str, Any], tmp_path: Path, kwargs: dict[str, Any]) -> None:
    files = case["input"]["files"]
    if how == "type-error":
        # Strings where booleans/numbers belong are errors naming the file, line and key.
        with pytest.raises(ConfigError) as info:
            resolve_bot_config(**kwargs)
        msg = str(info.value)
        assert "aria.yaml:3:" in msg
        first_key = files["config/bots/aria.yaml"].splitlines()[2].split(":")[0]
        assert first_key in msg
    elif how == "broken-file-error":
        bad = next(p for p, text in files.items() if "@" in text or text.count("temperature") > 1)
        with pytest.raises(ConfigError) as info:
            resolve_bot_config(**kwargs)
        assert Path(bad).name in str(info.value)
        assert info.value.line is not None
    elif how == "zero-honoured":
        # max_tokens: 0 is out of range (must be positive) ...
        with pytest.raises(ConfigError) as info:
            resolve_bot_config(**kwargs)
        assert "max_tokens must be positive" in str(info.value)
        # ... and without it, explicit zeros are kept while ""/false keep upstream's `||` defaults.
        bot = tmp_path / "config" / "bots" / "aria.yaml"
        text = bot.read_text().replace("max_tokens: 0\n", "").replace("prefill_thinking: 0\n", "prefill_thinking: false\n")
        bot.write_text(text)
        cfg = resolve_bot_config(**kwargs).config
        for key in ("max_images", "rolling_threshold", "recent_participant_count", "max_tool_depth",
                    "max_text_attachment_kb", "discord_backoff_max", "max_queued_replies"):
            assert cfg[key] == 0, key
        expected = case["expected"]["config"]
        assert cfg["bot_reply_chain_depth_emote"] == expected["bot_reply_chain_depth_emote"]
        assert cfg["prefill_thinking"] is False and cfg["max_tokens"] == 4096
    elif how == "camelcase-accepted":
        resolved = resolve_bot_config(**kwargs)
        assert resolved.config["continuation_model"]
        assert any("camelCase" in w.message for w in resolved.warnings)
    elif how == "shared-file-refused":
        resolved = resolve_bot_config(**kwargs)
        assert "system_prompt" not in resolved.config
        assert "sk-ant" not in json.dumps(resolved.config)
        assert any("shared file" in w.message for w in resolved.warnings)
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize("case", _cases("load_bot_config_only"), ids=_ids(_cases("load_bot_config_only")))
def test_load_bot_config_only(case: dict[str, Any], tmp_path: Path) -> None:
    write_tree(tmp_path, case["input"]["files"])
    assert load_bot_config_only(**_resolve(tmp_path, case)) == case["expected"]["config"]


CLASS_KIND = {
    "AnthropicAdapter": "anthropic",
    "BedrockAdapter": "bedrock",
    "GeminiAdapter": "gemini",
    "OpenRouterAdapter": "openrouter",
    "OpenAIAdapter": "openai",
    "OpenAICompatibleAdapter": "openai-compatible",
    "OpenAICompletionsAdapter": "openai-completions",
}


@pytest.mark.parametrize("case", _cases("vendor_routing"), ids=_ids(_cases("vendor_routing")))
def test_vendor_normalisation(case: dict[str, Any], tmp_path: Path) -> None:
    """Config's share of vendor routing: the vendor list, kind by name prefix, unknown prefixes."""
    write_tree(tmp_path, case["input"]["files"])
    where = {"config_root": tmp_path / "config", "bot_name": case["input"]["bot_id"], "env": {}}
    vendors, warnings = load_vendors(**where)
    startup = load_bot_config_only(**where)
    exp = case["expected"]
    if case["id"] == "vendor-none-fatal":
        # Difference: the documented `providers:` form is read (upstream ignores it and fails to start).
        assert [(v.name, v.kind) for v in vendors] == [("anthropic", "anthropic")]
        assert vendors[0].config["anthropic_api_key"] == "sk-ant-invented"
        return
    kinds = {v.kind for v in vendors}
    for adapter in exp["adapters"]:
        assert CLASS_KIND[adapter["class"]] in kinds
        key = adapter["key"]
        for prefix in ("openai-compatible-", "openai-completions-", "anthropic-"):
            if key.startswith(prefix) and key != "anthropic":
                named = [v for v in vendors if v.name == key[len(prefix):]]
                assert named and named[0].kind == CLASS_KIND[adapter["class"]]
    unknown_expected = sum("Unknown vendor prefix" in w for w in exp["warnings"])
    assert sum(v.kind is None for v in vendors) == unknown_expected
    assert sum("unknown vendor name prefix" in w.message for w in warnings) == unknown_expected
    # the assistant name comes from the startup merge, falling back to the bot id
    assert (startup.get("name") or case["input"]["bot_id"]) == exp["assistant_name"]


@pytest.mark.parametrize(
    ("pattern", "model", "matches"),
    [
        ("gpt-4.*", "gpt-4.1", True),
        ("gpt-4.*", "gpt-4o", False),  # "." is literal: a glob, not a regex
        ("anthropic\\.claude.*", "anthropic.claude-3-5-sonnet-20241022-v2:0", False),
        ("claude-3-opus-*", "claude-3-opus-20240229", True),
        ("claude-sonnet-*", "claude-3-opus-20240229", False),
        ("local:*", "local:llama-3-8b", True),
        ("base:*", "base:llama-3-70b", True),
        ("mh-*", "oh-7b", False),
        ("gemini-2.5-*", "gemini-2.5-pro", True),
        ("gemini-2.5-*", "gemini-3-pro", False),
        ("Claude-*", "claude-x", False),  # case-sensitive
    ],
)
def test_provides_globs(pattern: str, model: str, matches: bool) -> None:
    assert glob_matches(pattern, model) is matches


def test_providers_short_form_normalised() -> None:
    vendors, warnings = normalise_vendors(
        {"providers": {"anthropic": {"api_key": "a"}, "openai": {"api_key": "b"},
                       "openrouter": {"api_key": "c", "api_base": "https://openrouter.ai/api/v1"}}}, {})
    assert [(v.name, v.kind) for v in vendors] == [
        ("anthropic", "anthropic"), ("openai", "openai"), ("openrouter", "openrouter")]
    assert vendors[0].config["anthropic_api_key"] == "a"
    assert vendors[1].config["openai_api_key"] == "b"
    assert vendors[2].config["openrouter_api_key"] == "c"
    assert vendors[2].config["api_base"] == "https://openrouter.ai/api/v1"
    assert warnings == []


def test_every_golden_case_is_parametrised() -> None:
    """With ../shared present, no case may fall out of the parametrised lists unnoticed.

    `_cases` returns [] when the file is absent so collection works without ../shared; this guard
    makes a renamed `kind` (or a new one) fail instead of silently shrinking the run.
    """
    data = json.loads(shared_path("golden", "chapterx", "config-resolution.json").read_text(encoding="utf-8"))
    handled = ("load_config", "load_bot_config_only", "vendor_routing")
    kinds = [c.get("kind") for c in data["cases"]]
    assert kinds and set(kinds) <= set(handled), sorted(set(kinds) - set(handled))
    assert all(_cases(k) for k in handled)
    assert sum(len(_cases(k)) for k in handled) == len(data["cases"])
