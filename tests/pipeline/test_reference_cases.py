"""Vector-style cases for three differences reference runs found on new inputs (issue 10, "Pipeline
bugs"): each case is replayed offline (`replay_case`: in-memory Discord, real SDKs against the fake LLM
server) and the request / state the reference produces is asserted.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest

from chapterx.agent.replay import replay_case
from tests.pipeline.conftest import make_case, msg

HUMAN = "950000000000000001"
BEDROCK_YAML = ("vendors:\n  bedrock:\n    config:\n      aws_access_key_id: AKIATESTONLY\n"
                "      aws_secret_access_key: test-only-secret\n      aws_region: us-west-2\n")


def _chat(bot_yaml: str) -> dict[str, Any]:
    return make_case([msg(1, HUMAN, "think about it <@930000000000000001>")],
                     "name: Gull\ncontinuation_model: claude-sonnet-4-5-20250929\nmode: chat\n" + bot_yaml,
                     [{"text": "Thought about it."}])


async def test_thinking_that_does_not_fit_keeps_the_configured_temperature() -> None:
    """`thinking_type: enabled` with `max_tokens` 1500 (budget 1500 - 1024 < 1024): no thinking
    parameter, and the configured temperature is sent (not forced to 1)."""
    out = await replay_case(_chat("thinking_type: enabled\nmax_tokens: 1500\ntemperature: 0.4\n"))
    (req,) = out["provider_requests"]
    assert "thinking" not in req["body"]
    assert req["body"]["temperature"] == 0.4


async def test_thinking_that_fits_forces_temperature_one() -> None:
    out = await replay_case(_chat("thinking_type: enabled\nmax_tokens: 4096\nthinking_budget: 2000\n"
                                  "temperature: 0.4\n"))
    (req,) = out["provider_requests"]
    assert req["body"]["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert req["body"]["temperature"] == 1


@pytest.mark.parametrize(("model", "bedrock_id"), [
    ("claude-3-5-haiku-latest", "anthropic.claude-3-5-haiku-20241022-v1:0"),
    ("claude-3-5-sonnet-latest", "anthropic.claude-3-5-sonnet-20241022-v2:0"),
    ("claude-3-5-haiku-20241022", "anthropic.claude-3-5-haiku-20241022-v1:0"),
    # the reference's table sends a 3.5 Haiku id here by mistake (docs/differences.md)
    ("claude-haiku-4-5-20251001", "anthropic.claude-haiku-4-5-20251001-v1:0"),
])
async def test_bedrock_model_ids(model: str, bedrock_id: str) -> None:
    case = make_case([msg(1, HUMAN, "hello <@930000000000000001>")],
                     f"name: Gull\ncontinuation_model: {model}\nmode: prefill\n", [{"text": "Hi."}])
    case["files"]["config/shared.yaml"] = BEDROCK_YAML
    out = await replay_case(case)
    (req,) = out["provider_requests"]
    assert unquote(req["path"]).endswith(f"/model/{bedrock_id}/invoke-with-response-stream")


@pytest.mark.parametrize(("caching", "anchor"), [(False, None), (True, "1410000000000000004")])
async def test_cache_anchor_moves_on_a_roll_only_with_caching(caching: bool, anchor: str | None) -> None:
    """A roll forced by the character limits moves the window anchor only when prompt caching is on."""
    messages = [msg(n, HUMAN, f"message number {n} " + "x" * 40) for n in range(1, 7)]
    case = make_case(messages, "name: Gull\ncontinuation_model: claude-sonnet-4-5-20250929\nmode: prefill\n"
                               f"prompt_caching: {str(caching).lower()}\nrecency_window_characters: 200\n",
                     [{"text": "Ok."}])
    out = await replay_case(case)
    assert "error" not in out
    assert out["state_after"]["cache_oldest_message_id"] == anchor
    assert out["state_after"]["messages_since_roll"] == 0
