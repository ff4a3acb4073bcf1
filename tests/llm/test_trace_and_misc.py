"""Trace recording, stop cutting, thinking clamps and body rules that the vectors do not pin."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from chapterx.llm.errors import ProviderError
from chapterx.llm.fake import FakeLLMServer
from chapterx.llm.providers import ProviderOptions
from chapterx.llm.providers.anthropic import bedrock_model_id, thinking_param
from chapterx.llm.providers.base import StopCutter
from chapterx.llm.routing import Router
from chapterx.llm.types import ChatMessage, ProviderRequest

KEY = "sk-ant-trace-secret-0001"


def _req(**kw: Any) -> ProviderRequest:
    base: dict[str, Any] = {"model": "claude-sonnet-4-5-20250929",
                            "messages": [ChatMessage("user", [{"type": "text", "text": "alice: hi"}])],
                            "max_tokens": 100, "temperature": 1}
    base.update(kw)
    return ProviderRequest(**base)


def test_trace_records_each_attempt_with_usage_and_error(tmp_path: Path) -> None:
    from chapterx.trace.collector import start_activation
    from chapterx.trace.writer import TraceWriter

    async def run() -> Any:
        async with FakeLLMServer([{"http_status": 400, "error_body": {"type": "error", "error": {
                "type": "invalid_request_error", "message": "bad"}}}, {"text": "Hello there", "usage": {
                "input_tokens": 120, "output_tokens": 3, "cache_read_input_tokens": 100}}]) as srv:
            router = Router({"anthropic": {"config": {"anthropic_api_key": KEY}}}, env={},
                            base_url_override=srv.base_url, options=ProviderOptions(retry_base_delay=0.01))
            provider = router.route("claude-sonnet-4-5-20250929").provider
            writer = TraceWriter(tmp_path, background=False)
            with start_activation("c1", "m1", "aria", writer=writer) as collector:
                with pytest.raises(ProviderError) as info:
                    await provider.complete(_req())
                ok = await provider.complete(_req())
                return collector.trace, info.value, ok

    trace, err, ok = asyncio.run(run())
    calls = trace["llmCalls"]
    assert len(calls) == 2
    assert calls[0]["error"]["code"] == "400" and "invalid_request_error" in calls[0]["error"]["message"]
    assert calls[1]["tokenUsage"]["inputTokens"] == 120 and calls[1]["tokenUsage"]["cacheReadTokens"] == 100
    assert ok.text == "Hello there" and err.status == 400 and not err.retryable
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert KEY not in written
    assert '"alice: hi"' in written  # the request body was stored


def test_stop_cutter_holds_back_and_cuts() -> None:
    pieces: list[str] = []
    cutter = StopCutter(["\nbob:", "\nAria:"], pieces.append)
    for part in ["Hello", " there\n", "bo", "b: hi"]:
        cutter.feed(part)
    assert cutter.finish() == "Hello there"
    assert "".join(pieces) == "Hello there" and cutter.hit == "\nbob:"
    # a partial match that does not complete is released at the end
    pieces.clear()
    cutter = StopCutter(["\nbob:"], pieces.append)
    cutter.feed("ok\nbo")
    assert "".join(pieces) == "o" or "".join(pieces) == ""
    assert cutter.finish() == "ok\nbo" and "".join(pieces) == "ok\nbo"


def test_openai_cut_at_stop_beyond_the_cap() -> None:
    async def run() -> Any:
        async with FakeLLMServer([{"text": "Sure thing.\ncarol: nope"}]) as srv:
            router = Router({"openai": {"config": {"openai_api_key": "k"}}}, env={}, base_url_override=srv.base_url)
            stops = ["\nAria:", "\nalice:", "\nbob:", "\ndave:", "\ncarol:"]
            resp = await router.route("gpt-4o").provider.complete(
                ProviderRequest(model="gpt-4o", messages=[ChatMessage("user", "hi")], stop_sequences=stops))
            return resp, srv.requests[0]["body"]

    resp, body = asyncio.run(run())
    assert body["stop"] == ["\nAria:", "\nalice:", "\nbob:", "\ndave:"]
    assert resp.text == "Sure thing." and resp.stop_reason == "stop_sequence" and resp.stop_sequence == "\ncarol:"


def test_thinking_budget_rules() -> None:
    assert thinking_param(_req(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 8000})) == {
        "type": "enabled", "budget_tokens": 3072}
    assert thinking_param(_req(max_tokens=1500, thinking={"type": "enabled", "budget_tokens": 8000})) is None
    assert thinking_param(_req(thinking={"type": "adaptive", "display": "summarized"})) == {
        "type": "adaptive", "display": "summarized"}


def test_anthropic_body_rules_and_cache_ttl_beta() -> None:
    async def run() -> Any:
        async with FakeLLMServer([{"text": "x"}, {"text": "y", "tool_use": {"id": "t1", "name": "f", "input": {}}}]) as srv:
            router = Router({"anthropic": {"config": {"anthropic_api_key": KEY}}}, env={},
                            base_url_override=srv.base_url)
            p = router.route("claude-x").provider
            blocks = [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
            await p.complete(_req(messages=[ChatMessage("user", blocks)], temperature=0.5, top_p=0.9, top_k=5,
                                  stop_sequences=["\nA:"], thinking={"type": "enabled", "budget_tokens": 2000},
                                  max_tokens=4096, extra={"metadata": {"user_id": "u"}}))
            tools = [{"name": "f", "description": "d", "inputSchema": {"type": "object", "properties": {}}}]
            resp = await p.complete(_req(tools=tools, stop_sequences=["\nA:"], top_p=0.9, temperature=None))
            return srv.requests, resp

    reqs, resp = asyncio.run(run())
    b0 = reqs[0]["body"]
    assert b0["temperature"] == 1 and "top_p" not in b0 and b0["top_k"] == 5
    assert b0["thinking"] == {"type": "enabled", "budget_tokens": 2000} and b0["metadata"] == {"user_id": "u"}
    assert reqs[0]["headers"]["anthropic-beta"] == "extended-cache-ttl-2025-04-11"
    b1 = reqs[1]["body"]
    assert "stop_sequences" not in b1 and "top_p" not in b1
    assert b1["tools"] == [{"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {}}}]
    assert "anthropic-beta" not in reqs[1]["headers"]
    assert resp.stop_reason == "tool_use" and resp.content[-1] == {"type": "tool_use", "id": "t1", "name": "f",
                                                                    "input": {}}


def test_bedrock_model_ids() -> None:
    assert bedrock_model_id("claude-sonnet-4-20250514") == "anthropic.claude-sonnet-4-20250514-v1:0"
    assert bedrock_model_id("bedrock:claude-3-5-sonnet-20241022") == "anthropic.claude-3-5-sonnet-20241022-v2:0"
    assert bedrock_model_id("us.anthropic.claude-x-v1:0") == "us.anthropic.claude-x-v1:0"


def test_fake_server_records_and_runs_out_cleanly() -> None:
    async def run() -> Any:
        async with FakeLLMServer([]) as srv:
            router = Router({"openai": {"config": {"openai_api_key": "k"}}}, env={}, base_url_override=srv.base_url)
            with pytest.raises(ProviderError) as info:
                await router.route("gpt-4o").provider.complete(ProviderRequest(model="gpt-4o", messages=[
                    ChatMessage("user", "hi")]))
            return srv.requests, info.value

    reqs, err = asyncio.run(run())
    assert len(reqs) == 1 and "no scripted response left" in err.message
    assert json.loads(reqs[0]["raw"])["model"] == "gpt-4o"


@pytest.mark.parametrize("stream", [True, False])
def test_reasoning_and_gemini_function_calls(stream: bool) -> None:
    async def run() -> Any:
        async with FakeLLMServer([{"thinking": "let me think", "text": "Answer."},
                                  {"text": "", "tool_use": {"id": "x", "name": "save", "input": {"a": 1}}}]) as srv:
            router = Router({"openai-local": {"config": {"api_base": "http://l.invalid/v1"}},
                             "gemini": {"config": {"api_key": "g"}}}, env={}, base_url_override=srv.base_url)
            r1 = await router.route("local:deepseek").provider.complete(
                ProviderRequest(model="local:deepseek", messages=[ChatMessage("user", "hi")], stream=stream))
            tools = [{"name": "save", "description": "s", "input_schema": {"type": "object", "properties": {}}}]
            r2 = await router.route("gemini-2.5-pro").provider.complete(
                ProviderRequest(model="gemini-2.5-pro", messages=[ChatMessage("user", "hi")], tools=tools,
                                stream=stream))
            await router.aclose()
            return r1, r2, srv.requests

    r1, r2, reqs = asyncio.run(run())
    assert r1.text == "Answer." and r1.content[0] == {"type": "thinking", "thinking": "let me think"}
    assert r2.stop_reason == "tool_use"
    assert r2.content[-1]["name"] == "save" and r2.content[-1]["input"] == {"a": 1}
    decl = reqs[1]["body"]["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "save"


def test_gate_holds_a_response_until_released() -> None:
    async def run() -> Any:
        async with FakeLLMServer([{"text": "late", "gate": "g"}]) as srv:
            router = Router({"anthropic": {"config": {"anthropic_api_key": KEY}}}, env={},
                            base_url_override=srv.base_url)
            task = asyncio.create_task(router.route("claude-x").provider.complete(_req()))
            await asyncio.sleep(0.3)
            assert not task.done() and len(srv.requests) == 1
            srv.release("g")
            resp = await asyncio.wait_for(task, 10)
            await router.aclose()
            return resp

    assert asyncio.run(run()).text == "late"


def test_error_body_is_one_line_and_bounded() -> None:
    from chapterx.llm.providers.base import status_error

    err = status_error("X: ", 502, "<html>\n<body>" + "x" * 5000 + "</body>\n</html>", {"retry-after": "2"})
    assert "\n" not in err.message and len(err.message) < 1100
    assert err.retryable and err.retry_after == 2.0 and err.status == 502


def test_stream_is_abandoned_at_a_stop_beyond_the_cap() -> None:
    long_tail = "\ncarol: " + "blah " * 400

    async def run() -> Any:
        async with FakeLLMServer([{"text": "Short answer." + long_tail}]) as srv:
            router = Router({"openrouter": {"config": {"openrouter_api_key": "k"}}}, env={},
                            base_url_override=srv.base_url)
            pieces: list[str] = []
            resp = await router.route("meta/llama").provider.complete(
                ProviderRequest(model="meta/llama", messages=[ChatMessage("user", "hi")],
                                stop_sequences=["\nA:", "\nB:", "\nC:", "\nD:", "\ncarol:"]), on_text=pieces.append)
            await router.aclose()
            return resp, pieces

    resp, pieces = asyncio.run(run())
    assert resp.text == "Short answer." and "".join(pieces) == "Short answer."
    assert resp.stop_reason == "stop_sequence" and resp.stop_sequence == "\ncarol:"


def test_bedrock_session_token_is_signed_and_sent() -> None:
    async def run() -> Any:
        async with FakeLLMServer([{"text": "ok"}]) as srv:
            router = Router({"bedrock-w": {"config": {"aws_access_key_id": "AKIAX", "aws_secret_access_key": "s3cr3t",
                                                      "aws_session_token": "tok-123", "region": "eu-west-1"}}},
                            env={}, base_url_override=srv.base_url,
                            options=ProviderOptions(now=lambda: 1740832200.0))
            resp = await router.route("claude-sonnet-4-20250514").provider.complete(_req(
                model="claude-sonnet-4-20250514", stream=False))
            await router.aclose()
            return resp, srv.requests[0]

    resp, req = asyncio.run(run())
    h = req["headers"]
    assert req["path"] == "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/invoke"
    assert h["x-amz-security-token"] == "tok-123" and h["x-amz-date"] == "20250301T123000Z"
    assert h["host"] == "bedrock-runtime.eu-west-1.amazonaws.com" and h["accept"] == "application/json"
    assert "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token," in h["authorization"]
    assert "/20250301/eu-west-1/bedrock/aws4_request" in h["authorization"]
    assert req["body"]["anthropic_version"] == "bedrock-2023-05-31" and "model" not in req["body"]
    assert resp.text == "ok"


def test_sdk_environment_variables_do_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"OPENAI_ORG_ID": "org-env", "OPENAI_PROJECT_ID": "proj-env", "ANTHROPIC_AUTH_TOKEN": "tok",
                        "ANTHROPIC_API_KEY": "other-key", "GOOGLE_GENAI_USE_VERTEXAI": "true"}.items():
        monkeypatch.setenv(name, value)

    async def run() -> Any:
        async with FakeLLMServer([{"text": "a"}] * 3) as srv:
            router = Router({"openrouter": {"config": {"openrouter_api_key": "k"}},
                             "gemini": {"config": {"api_key": "g"}},
                             "anthropic": {"config": {"anthropic_api_key": "a"}}}, env={},
                            base_url_override=srv.base_url)
            for model in ("x/y", "gemini-2.5-pro", "claude-x"):
                await router.route(model).provider.complete(
                    ProviderRequest(model=model, messages=[ChatMessage("user", "hi")]))
            await router.aclose()
            return srv.requests

    reqs = asyncio.run(run())
    assert "openai-organization" not in reqs[0]["headers"] and "openai-project" not in reqs[0]["headers"]
    assert reqs[1]["path"].startswith("/v1beta/models/gemini-2.5-pro:")  # not switched to Vertex AI
    assert reqs[2]["headers"]["x-api-key"] == "a" and "authorization" not in reqs[2]["headers"]
