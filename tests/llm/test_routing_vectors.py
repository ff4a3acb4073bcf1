"""Vendor routing against the `vendor_routing` cases of config-resolution.json.

Documented differences (docs/differences.md#providers): unknown models are an error instead of
being handed to an OpenAI-compatible/completions vendor that does not list them, and our error
message names the vendors tried.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ruamel.yaml import YAML

from chapterx.llm.errors import NoAdaptersError
from chapterx.llm.routing import Router
from tests.conftest import shared_path

# model -> routes we deliberately changed (unknown model no longer silently routed)
DIFFERENT = {
    ("vendor-openai-compatible-and-official", "mistral-large"),
    ("vendor-openaicompletion-formatter-route", "other:thing"),
    ("vendor-openaicompletion-formatter-route", "claude-sonnet-4-5-20250929"),
    ("vendor-nonstandard-name-and-unknown", "oh-7b"),
}


def _cases() -> list[dict[str, Any]]:
    path = shared_path("golden", "chapterx", "config-resolution.json")
    data = json.loads(path.read_text())
    return [c for c in data["cases"] if c.get("kind") == "vendor_routing"]


def _vendors(files: dict[str, str]) -> Any:
    shared = YAML(typ="safe").load(files.get("config/shared.yaml", "")) or {}
    return shared.get("vendors") or {}


def test_vendor_routing_vectors() -> None:
    cases = _cases()
    assert cases
    checked = 0
    for case in cases:
        exp = case["expected"]
        vendors = _vendors(case["input"]["files"])
        if "error" in exp:
            with pytest.raises(NoAdaptersError) as info:
                Router(vendors, env={})
            assert str(info.value) == exp["error"]["message"], case["id"]
            continue
        router = Router(vendors, env={})
        got = router.describe(case["input"]["models"])
        assert got["adapters"] == exp["adapters"], case["id"]
        assert got["warnings"] == exp["warnings"], case["id"]
        for model, route in exp["routes"].items():
            mine = got["routes"][model]
            assert mine["formatter_route"] == route["formatter_route"], (case["id"], model)
            assert mine["tool_mode_when_mode_unset"] == route["tool_mode_when_mode_unset"], (case["id"], model)
            if (case["id"], model) in DIFFERENT:
                assert route["adapter"] is not None and mine["adapter"] is None, (case["id"], model)
                assert f'"{model}"' in mine["error"] and "Vendors tried:" in mine["error"]
                continue
            assert mine["adapter"] == route["adapter"], (case["id"], model)
            if route["adapter"] is None:
                assert mine["error"].startswith(f'No adapter found for model "{model}".'), (case["id"], model)
            checked += 1
    assert checked >= 20


def test_unknown_model_error_names_vendors_and_no_secret() -> None:
    router = Router({"anthropic": {"config": {"anthropic_api_key": "sk-ant-secret-123"}, "provides": ["claude-*"]},
                     "openai-local": {"config": {"api_base": "http://x.invalid/v1"}, "provides": ["local:*"]}}, env={})
    from chapterx.llm.errors import NoVendorError

    with pytest.raises(NoVendorError) as info:
        router.route("mystery-model")
    msg = str(info.value)
    assert '"mystery-model"' in msg and "anthropic" in msg and "openai-local (local:*)" in msg
    assert "sk-ant-secret-123" not in msg


def test_env_fallbacks() -> None:
    router = Router({}, env={"ANTHROPIC_API_KEY": "k1", "OPENAI_API_KEY": "k2", "OPENROUTER_API_KEY": "k3",
                             "GOOGLE_API_KEY": "k4"})
    assert router.route("claude-x").kind == "anthropic"
    assert router.route("gpt-4o").kind == "openai"
    assert router.route("meta/llama").kind == "openrouter"
    assert router.route("gemini-2.5-pro").kind == "gemini"
    with pytest.raises(NoAdaptersError):
        Router({}, env={})


def test_globs_are_literal_except_star() -> None:
    router = Router({"openai-a": {"config": {"api_base": "http://a.invalid/v1"}, "provides": ["gpt-4.*", "x?y"]},
                     "openai-b": {"config": {"api_base": "http://b.invalid/v1"}, "provides": ["*"]}}, env={})
    assert router.route("gpt-4.1").vendor_name == "openai-a"
    assert router.route("gpt-4o").vendor_name == "openai-b"
    assert router.route("xy").vendor_name == "openai-b"
    assert router.route("x?y").vendor_name == "openai-a"


def test_chapter2_regex_fullmatch_in_order() -> None:
    vendors = {"openai-conduit": {"config": {"api_base": "http://c.invalid/v1"}, "provides": ["llama-.*"]},
               "anthropic": {"config": {"anthropic_api_key": "k"}, "provides": [".*"]}}
    router = Router(vendors, env={}, chapter2=True)
    assert router.route("llama-3-405b").vendor_name == "openai-conduit"
    assert router.route("xllama-3").vendor_name == "anthropic"  # fullmatch, not search
    only_openai = Router({"openai": {"config": {}, "provides": ["gpt-.*"]}}, env={}, chapter2=True)
    from chapterx.llm.errors import NoVendorError

    with pytest.raises(NoVendorError):
        only_openai.route("mistral")
