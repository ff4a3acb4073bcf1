"""Fault handling per provider, real SDKs against the FakeLLMServer on 127.0.0.1.

Each call either succeeds after retries or fails with one ProviderError whose message carries no
secret; text already handed to `on_text` is never handed over again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from chapterx.llm.errors import ProviderError
from chapterx.llm.fake import FakeLLMServer
from chapterx.llm.providers import ProviderOptions
from chapterx.llm.routing import Router
from chapterx.llm.types import ChatMessage, ProviderRequest

SECRETS = ["sk-ant-fault-secret", "sk-openai-fault-secret", "sk-or-fault-secret", "AIzaFaultSecret",
           "fault-aws-secret-key", "base-fault-secret"]
VENDORS: dict[str, Any] = {
    "anthropic": {"config": {"anthropic_api_key": SECRETS[0]}},
    "openai": {"config": {"openai_api_key": SECRETS[1]}},
    "openrouter": {"config": {"openrouter_api_key": SECRETS[2]}},
    "gemini": {"config": {"google_api_key": SECRETS[3]}},
    "bedrock": {"config": {"aws_access_key_id": "AKIAFAULT", "aws_secret_access_key": SECRETS[4],
                           "aws_region": "us-west-2"}},
    "openai-local": {"config": {"api_base": "https://local.invalid/v1", "api_key": "x"}, "provides": ["local:*"]},
    "openaicompletion-base": {"config": {"api_base": "https://base.invalid/v1", "api_key": SECRETS[5]},
                              "provides": ["base:*"]},
}
MODELS = {
    "anthropic": "claude-sonnet-4-5-20250929",
    "bedrock": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "openai": "gpt-4o",
    "openrouter": "meta/llama-3-70b",
    "openai-compatible": "local:qwen",
    "openai-completions": "base:llama",
    "gemini": "gemini-2.5-flash",
}
TEXT = "The quick brown fox jumps over the lazy dog, twice over."


def _request(kind: str, stream: bool = True, retries: int = 3) -> ProviderRequest:
    model = MODELS[kind]
    if kind == "openai-completions":
        return ProviderRequest(model=model, prompt="alice: hi\n\nAria:", max_tokens=50, temperature=1,
                               stream=stream, llm_retries=retries)
    return ProviderRequest(model=model, messages=[ChatMessage("user", [{"type": "text", "text": "alice: hi"}])],
                           max_tokens=50, temperature=1, stream=stream, llm_retries=retries)


async def _call(kind: str, responses: list[dict[str, Any]], *, stream: bool = True, retries: int = 3,
                stall: float = 5.0) -> tuple[FakeLLMServer, Any, list[str], float]:
    async with FakeLLMServer(responses) as srv:
        opts = ProviderOptions(retry_base_delay=0.05, stall_timeout=stall, timeout=10)
        router = Router(VENDORS, env={}, base_url_override=srv.base_url, options=opts)
        route = router.route(MODELS[kind])
        assert route.kind == kind
        pieces: list[str] = []
        started = time.monotonic()
        try:
            result: Any = await route.provider.complete(_request(kind, stream, retries), on_text=pieces.append)
        except ProviderError as exc:
            result = exc
        elapsed = time.monotonic() - started
        await router.aclose()
        return srv, result, pieces, elapsed


KINDS = list(MODELS)


def _assert_no_secret(exc: ProviderError) -> None:
    for secret in SECRETS:
        assert secret not in str(exc)


@pytest.mark.parametrize("kind", KINDS)
def test_429_retry_after_is_honoured(kind: str) -> None:
    srv, result, pieces, elapsed = asyncio.run(
        _call(kind, [{"http_status": 429, "retry_after": 1}, {"text": TEXT}], retries=1))
    assert not isinstance(result, ProviderError), result
    assert result.text == TEXT and "".join(pieces) == TEXT
    assert len(srv.requests) == 2
    assert elapsed >= 0.9  # waited for retry-after


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [500, 529])
def test_server_errors_are_retried(kind: str, status: int) -> None:
    srv, result, pieces, _ = asyncio.run(_call(kind, [{"http_status": status}, {"text": TEXT}]))
    assert not isinstance(result, ProviderError), result
    assert "".join(pieces) == TEXT
    assert len(srv.requests) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_persistent_errors_fail_with_one_clear_error(kind: str) -> None:
    srv, result, pieces, _ = asyncio.run(_call(kind, [{"http_status": 529}] * 12, retries=2))
    assert isinstance(result, ProviderError)
    assert result.status == 529 and "529" in result.message
    assert "\n" not in result.message
    _assert_no_secret(result)
    assert pieces == []
    assert 2 <= len(srv.requests) <= 6


@pytest.mark.parametrize("kind", KINDS)
def test_reset_connection_is_retried(kind: str) -> None:
    _srv, result, pieces, _ = asyncio.run(_call(kind, [{"fault": "reset"}, {"text": TEXT}]))
    assert not isinstance(result, ProviderError), result
    assert "".join(pieces) == TEXT


@pytest.mark.parametrize("kind", KINDS)
def test_stall_before_any_text_is_retried(kind: str) -> None:
    srv, result, pieces, _ = asyncio.run(
        _call(kind, [{"text": TEXT, "fault": "stall", "fault_after_deltas": 0}, {"text": TEXT}], stall=0.5))
    assert not isinstance(result, ProviderError), result
    assert "".join(pieces) == TEXT
    assert len(srv.requests) == 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["stall", "malformed", "reset_mid_stream"])
def test_fault_after_partial_text_never_repeats_text(kind: str, fault: str) -> None:
    srv, result, pieces, _ = asyncio.run(
        _call(kind, [{"text": TEXT, "fault": fault, "fault_after_deltas": 2}, {"text": TEXT}], stall=0.5))
    delivered = "".join(pieces)
    assert TEXT.startswith(delivered)
    if isinstance(result, ProviderError):
        # text was already streamed, so no retry: one error, the partial text delivered once
        _assert_no_secret(result)
        assert len(srv.requests) == 1
        assert result.partial_text.startswith(delivered)
    else:
        # nothing had reached the caller yet (or the SDK recovered): the whole text exactly once
        assert delivered == TEXT and result.text == TEXT


@pytest.mark.parametrize("kind", KINDS)
def test_nonstreaming_retry_then_success(kind: str) -> None:
    srv, result, pieces, _ = asyncio.run(_call(kind, [{"http_status": 503}, {"text": TEXT}], stream=False))
    assert not isinstance(result, ProviderError), result
    assert result.text == TEXT and "".join(pieces) == TEXT
    assert len(srv.requests) == 2
