"""chapter2 vendors when an em runs in place: regex routing and intermodel's request shapes."""

from __future__ import annotations

import asyncio
from typing import Any

from chapterx.llm.fake import FakeLLMServer
from chapterx.llm.routing import Router
from chapterx.llm.types import ProviderRequest

VENDORS = {
    "openai-conduit": {"config": {"api_base": "https://conduit.invalid/v1", "openai_api_key": "sk-c",
                                  "logit_bias": {"50256": -100}}, "provides": ["llama-.*", "gpt-4.*"]},
    "anthropic": {"config": {"anthropic_api_key": "sk-ant-c2"}, "provides": ["claude-.*"]},
}


def _run(model: str, **kw: Any) -> tuple[Any, dict[str, Any]]:
    async def go() -> tuple[Any, dict[str, Any]]:
        async with FakeLLMServer([{"text": " hello there"}]) as srv:
            router = Router(VENDORS, env={}, chapter2=True, base_url_override=srv.base_url)
            request = ProviderRequest(model=model, prompt="alice: hi\nAria:", max_tokens=60, temperature=0.8,
                                      stop_sequences=["\nalice:", "\nbob:", "\ncarol:", "\ndave:"], stream=False, **kw)
            resp = await router.route(model).provider.complete(request)
            return resp, srv.requests[0]
    return asyncio.run(go())


def test_completions_model_gets_raw_prompt_and_vendor_keys() -> None:
    resp, req = _run("llama-3-405b")
    assert req["path"] == "/v1/completions"
    body = req["body"]
    assert body["prompt"] == "alice: hi\nAria:" and body["logit_bias"] == {"50256": -100}
    assert body["stop"] == ["\nalice:", "\nbob:", "\ncarol:"]  # chapter2 passes the first 3
    assert req["headers"]["authorization"] == "Bearer sk-c"
    assert resp.text == " hello there"


def test_chat_model_is_wrapped_in_the_chapter2_chat_messages() -> None:
    _, req = _run("gpt-4-turbo")
    assert req["path"] == "/v1/chat/completions"
    msgs = req["body"]["messages"]
    assert msgs[0]["role"] == "system" and "username is shown as None" in msgs[0]["content"]
    assert msgs[1] == {"role": "user", "content": "alice: hi\nAria:"}


def test_anthropic_cli_simulation_prefill() -> None:
    resp, req = _run("claude-3-opus-20240229")
    body = req["body"]
    assert req["path"] == "/v1/messages"
    assert body["system"].startswith("The assistant is in CLI simulation mode")
    assert body["messages"] == [{"role": "user", "content": "<cmd>cat untitled.txt</cmd>"},
                                {"role": "assistant", "content": "alice: hi\nAria:"}]
    assert body["stop_sequences"] == ["\nalice:", "\nbob:", "\ncarol:"]
    assert body["temperature"] == 0.8
    assert resp.text == " hello there"
