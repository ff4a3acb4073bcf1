"""Provider faults seen from a whole activation (`chapterx replay`'s code path, in-memory Discord,
real SDKs against the FakeLLMServer): the reply is posted once after retries, or nothing is posted
and the trace holds one clear error without secrets."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES_DIR

WORLD = json.loads((FIXTURES_DIR / "llm" / "activation_world.json").read_text(encoding="utf-8"))
REPLY = "Lighthouses guide ships past dangerous coasts at night."
MODELS = {"anthropic": "claude-sonnet-4-5-20250929", "openai": "gpt-4o", "gemini": "gemini-2.5-flash"}
SECRETS = ("sk-ant-fixture-secret", "sk-openai-fixture-secret", "AIzaFixtureSecret")


def _run(vendor: str, responses: list[dict[str, Any]], tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from chapterx.agent.replay import replay_case
    from chapterx.trace.collector import start_activation
    from chapterx.trace.writer import TraceWriter

    case = copy.deepcopy(WORLD)
    case["files"]["config/bots/aria.yaml"] = case["files"]["config/bots/aria.yaml"].replace(
        "claude-sonnet-4-5-20250929", MODELS[vendor])
    case["llm_responses"] = responses

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        writer = TraceWriter(tmp_path, background=False)
        out: dict[str, Any] = {}
        try:
            with start_activation("810000000000000001", "1410000000000000001", "aria", writer=writer) as tr:
                out = await replay_case(case)
        except Exception:  # noqa: BLE001 - a failed activation may re-raise; the trace is what we check
            pass
        return out, tr.trace

    return asyncio.run(go())


def _sends(out: dict[str, Any]) -> list[str]:
    return [a["content"] for a in out.get("discord_actions", []) if a["type"] == "send"]


@pytest.mark.parametrize("vendor", list(MODELS))
def test_activation_succeeds_after_retries_and_posts_once(vendor: str, tmp_path: Path) -> None:
    out, trace = _run(vendor, [{"http_status": 429, "retry_after": 0}, {"fault": "reset"},
                               {"http_status": 500}, {"text": REPLY}], tmp_path)
    assert _sends(out) == [REPLY]
    assert "error" not in out
    assert trace["llmCalls"] and not trace["llmCalls"][-1].get("error")


@pytest.mark.parametrize("vendor", list(MODELS))
def test_mid_stream_failure_is_retried_when_nothing_was_posted(vendor: str, tmp_path: Path) -> None:
    out, _trace = _run(vendor, [{"text": REPLY, "fault": "reset_mid_stream", "fault_after_deltas": 2},
                               {"text": REPLY}], tmp_path)
    assert _sends(out) == [REPLY]


@pytest.mark.parametrize("vendor", list(MODELS))
def test_failed_activation_posts_nothing_and_records_one_clear_error(vendor: str, tmp_path: Path) -> None:
    out, trace = _run(vendor, [{"http_status": 529}] * 20, tmp_path)
    assert _sends(out) == []
    assert "error" in out and "\n" not in out["error"]["message"] and "529" in out["error"]["message"]
    failed = [c for c in trace["llmCalls"] if c.get("error")]
    assert 1 <= len(failed) <= 4 and all(c["error"]["code"] == "529" for c in failed)
    # replay's own output lists the exact request headers (keys included, by design); the trace,
    # the error and what was posted must not carry them
    text = json.dumps(trace) + json.dumps(out["error"]) + json.dumps(out.get("discord_actions"))
    for secret in SECRETS:
        assert secret not in text
