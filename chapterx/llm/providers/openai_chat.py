"""OpenAI chat completions (official, OpenRouter, OpenAI-compatible servers) and `/v1/completions`,
through the official `openai` SDK.

Translation from the Anthropic-shaped ProviderRequest (golden README 5): system as a leading
`system` message; a message whose blocks are all plain text becomes one string joined with "\\n";
images become `image_url` data URIs; OpenRouter keeps `cache_control` on text parts (so such a
message stays an array); `tool_use` / `tool_result` become `tool_calls` / role `tool`; stop lists
are cut to 4; reasoning models (o1/o3/o4, gpt-5) get `max_completion_tokens` and no sampling
parameters; OpenRouter drops `top_p` for Claude models and merges `provider_params` into the body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import openai
from openai import AsyncStream

from chapterx.llm.errors import ProviderError
from chapterx.llm.providers.base import (
    Provider,
    StopCutter,
    close_quietly,
    connection_cause,
    json_object,
    status_error,
    stream_finish,
    transport_error,
    with_stall_timeout,
)
from chapterx.llm.types import ChatMessage, ContentBlock, ProviderRequest, ProviderResponse

# OpenAI org/project ids from the environment are not sent to servers that are not OpenAI
_NO_OPENAI_IDS: dict[str, Any] = {"OpenAI-Organization": openai.omit, "OpenAI-Project": openai.omit}
OPENROUTER_HEADERS = {"HTTP-Referer": "https://chapterx.local", "X-Title": "ChapterX"}

_REASONING = re.compile(r"^(o1|o3|o4|gpt-5|gpt5)")
_FINISH = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal", "tool_calls": "tool_use",
           "function_call": "tool_use"}


def is_reasoning_model(model: str) -> bool:
    return _REASONING.match(model) is not None


CHAPTER2_CHAT_SYSTEM = ("Respond to the chat, where your username is shown as None. Only respond with the content "
                        "of your message, without including your username.")
_CHAPTER2_CHAT_PREFIXES = ("gpt-3.5", "gpt-4", "gpt4", "o1", "openpipe:", "deepseek-reasoner", "deepseek/deepseek-r1")


def is_chapter2_chat_model(model: str) -> bool:
    """intermodel's rule for which models an openai* vendor sends to /chat/completions."""
    return model.startswith(_CHAPTER2_CHAT_PREFIXES) and not model.endswith("-base")


def _thinking_on(request: ProviderRequest) -> bool:
    th = request.thinking or {}
    return bool(th.get("type") in ("enabled", "adaptive") or th.get("enabled"))


def openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    params = tool.get("input_schema") or tool.get("inputSchema") or tool.get("parameters") or {"type": "object",
                                                                                                 "properties": {}}
    fn: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description") is not None:
        fn["description"] = tool["description"]
    fn["parameters"] = params
    return {"type": "function", "function": fn}


def _image_url(block: ContentBlock) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "url":
        url = source.get("url", "")
    else:
        media = source.get("media_type") or source.get("mediaType") or "image/png"
        url = f"data:{media};base64,{source.get('data', '')}"
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_text(block: ContentBlock) -> str:
    content = block.get("content", "")
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if b.get("type") == "text")
    return str(content)


class OpenAIChatProvider(Provider):
    """Chat completions; `flavour` is "openai" (official), "openrouter" or "compatible"."""

    kind = "openai"
    stop_cap = 4

    def __init__(self, *args: Any, flavour: str = "openai", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flavour = flavour
        self.error_prefix = {"openai": "OpenAI API error: ", "openrouter": "OpenRouter error: "}.get(
            flavour, "OpenAI-compatible API error: "
        )
        self._client: openai.AsyncOpenAI | None = None

    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = _openai_client(self, self._default_headers())
        return self._client

    def _default_headers(self) -> dict[str, Any] | None:
        """OpenRouter's attribution headers; and never OpenAI org/project ids (from OPENAI_ORG_ID /
        OPENAI_PROJECT_ID in the environment) towards a server that is not OpenAI."""
        if self.flavour == "openai":
            return None
        headers: dict[str, Any] = dict(_NO_OPENAI_IDS)
        if self.flavour == "openrouter":
            headers.update(OPENROUTER_HEADERS)
        return headers

    # -- messages --------------------------------------------------------------------------------
    def _keep_cache_control(self) -> bool:
        return self.flavour == "openrouter"

    def _content(self, content: str | list[ContentBlock]) -> Any:
        if isinstance(content, str):
            return content
        parts: list[dict[str, Any]] = []
        plain = True
        for block in content:
            btype = block.get("type")
            if btype == "text":
                part: dict[str, Any] = {"type": "text", "text": block.get("text", "")}
                if self._keep_cache_control() and block.get("cache_control"):
                    part["cache_control"] = block["cache_control"]
                    plain = False
                parts.append(part)
            elif btype == "image":
                parts.append(_image_url(block))
                plain = False
            elif btype == "image_url":
                parts.append(dict(block))
                plain = False
        if plain:
            return "\n".join(p["text"] for p in parts)
        return parts

    def convert_messages(self, request: ProviderRequest) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if request.system:
            out.append({"role": "system", "content": self._content(request.system)})
        if request.prompt is not None and not request.messages:
            # a base-model prompt on a chat endpoint: the whole prompt as one user turn
            out.append({"role": "user", "content": request.prompt})
            return out
        for msg in request.messages:
            out.extend(self._convert(msg))
        return out

    def _convert(self, msg: ChatMessage) -> list[dict[str, Any]]:
        if isinstance(msg.content, str):
            return [{"role": msg.role, "content": msg.content}]
        blocks = msg.content
        tool_uses = [b for b in blocks if b.get("type") == "tool_use"]
        tool_results = [b for b in blocks if b.get("type") == "tool_result"]
        rest = [b for b in blocks if b.get("type") in ("text", "image", "image_url")]
        out: list[dict[str, Any]] = []
        if msg.role == "assistant" and tool_uses:
            text = "\n".join(b.get("text", "") for b in rest if b.get("type") == "text")
            out.append({
                "role": "assistant",
                "content": text or None,
                "tool_calls": [
                    {"id": b["id"], "type": "function",
                     "function": {"name": b["name"], "arguments": json.dumps(b.get("input", {}), separators=(",", ":"),
                                                                             ensure_ascii=False)}}
                    for b in tool_uses
                ],
            })
            return out
        for b in tool_results:
            out.append({"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": _tool_result_text(b)})
        if rest or not tool_results:
            out.append({"role": msg.role, "content": self._content(rest)})
        return out

    # -- body ------------------------------------------------------------------------------------
    def build_body(self, request: ProviderRequest) -> dict[str, Any]:
        model = request.model
        native_tools = bool(request.tools)
        reasoning = self.flavour == "openai" and is_reasoning_model(model)
        body: dict[str, Any] = {"model": model, "messages": self.convert_messages(request)}
        if reasoning:
            body["max_completion_tokens"] = request.max_tokens
        else:
            body["max_tokens"] = request.max_tokens
            temperature = request.temperature
            if self.flavour == "openrouter" and _thinking_on(request):
                temperature = 1  # upstream forced it; no thinking/reasoning field is sent (use provider_params)
            if temperature is not None:
                body["temperature"] = temperature
            drop_top_p = self.flavour == "openrouter" and "claude" in model.lower()
            if not native_tools:
                if request.top_p is not None and not drop_top_p:
                    body["top_p"] = request.top_p
                _put_sampling(body, request, ("presence_penalty", "frequency_penalty"))
        withhold_stop = reasoning and model.startswith(("o1", "o3", "o4"))
        if request.stop_sequences and not native_tools and not withhold_stop:
            body["stop"] = self.capped_stops(request.stop_sequences)
        body.update(request.extra)
        if native_tools:
            body["tools"] = [openai_tool(t) for t in request.tools or []]
        if request.stream:
            body["stream"] = True
            if self.flavour in ("openai", "openrouter"):
                body["stream_options"] = {"include_usage": True}
        return body

    # -- one attempt -----------------------------------------------------------------------------
    async def _attempt(self, request: ProviderRequest, body: dict[str, Any], cutter: StopCutter) -> ProviderResponse:
        client = self.client()
        if not body.get("stream"):
            data = json_object(await client.post("/chat/completions", body=dict(body), cast_to=object),
                                self.error_prefix)
            choice = (data.get("choices") or [{}])[0]
            message = choice.get("message") or {}
            cutter.feed(message.get("content") or "")
            tool_calls = message.get("tool_calls") or []
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            return _response(cutter, choice.get("finish_reason"), tool_calls, data.get("usage"),
                             data.get("model") or request.model, self.error_prefix,
                             reasoning if isinstance(reasoning, str) else "")
        stream = await client.post("/chat/completions", body=dict(body), cast_to=object, stream=True,
                                   stream_cls=AsyncStream[object])
        calls: dict[int, dict[str, Any]] = {}
        reasoning_parts: list[str] = []

        def on_choice(choice: dict[str, Any]) -> None:
            delta = choice.get("delta") or {}
            reasoning_delta = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning_delta, str):
                reasoning_parts.append(reasoning_delta)
            if delta.get("content"):
                cutter.feed(delta["content"])
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(int(tc.get("index") or 0), {"id": None, "name": "", "arguments": ""})
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    slot["name"] += fn["name"]
                if fn.get("arguments"):
                    slot["arguments"] += fn["arguments"]

        finish, usage, model = await _read_stream(stream, self.options.stall_timeout, cutter, on_choice,
                                                  self.error_prefix)
        tool_calls = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(calls.items())
        ]
        return _response(cutter, finish, tool_calls, usage, model or request.model, self.error_prefix,
                         "".join(reasoning_parts))

    def _classify(self, exc: BaseException) -> ProviderError:
        return classify_openai(exc, self.error_prefix)


def classify_openai(exc: BaseException, prefix: str) -> ProviderError:
    if isinstance(exc, openai.APIStatusError):
        try:
            text = exc.response.text
        except Exception:  # noqa: BLE001
            text = str(exc.body)
        return status_error(prefix, exc.status_code, text, exc.response.headers)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"{prefix}request timed out", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"{prefix}connection error: {connection_cause(exc)}", retryable=True)
    return transport_error(exc, prefix) or ProviderError(f"{prefix}{type(exc).__name__}: {exc}", retryable=False)


def _openai_client(provider: Provider, headers: dict[str, Any] | None) -> openai.AsyncOpenAI:
    """One SDK client per provider; chat and completions differ only in their default headers."""
    return openai.AsyncOpenAI(
        api_key=provider.settings.get("api_key") or "not-needed",
        base_url=provider.base_url,
        max_retries=provider.sdk_max_retries,
        timeout=provider.options.timeout,
        default_headers=headers,
    )


async def _read_stream(stream: AsyncStream[Any], stall_timeout: float, cutter: StopCutter,
                       on_choice: Callable[[dict[str, Any]], None], prefix: str) -> tuple[str, Any, str | None]:
    """Read a chat or completions stream to its end, or until the cutter hits a stop the vendor did
    not know (no need to pay for a turn we cut anyway); `on_choice` takes each choice's delta.
    Returns (finish reason, usage, model)."""
    finish: str | None = None
    usage: Any = None
    model: str | None = None
    try:
        async for chunk in with_stall_timeout(stream, stall_timeout):
            data = json_object(chunk, prefix)
            model = data.get("model") or model
            if data.get("usage"):
                usage = data["usage"]
            for choice in data.get("choices") or []:
                on_choice(choice)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            if cutter.hit is not None:
                break
    finally:
        await close_quietly(stream)
    return stream_finish(cutter, finish, prefix), usage, model


def _response(cutter: StopCutter, finish: str | None, tool_calls: list[dict[str, Any]], usage: Any, model: str,
              prefix: str, reasoning: str = "") -> ProviderResponse:
    """The Anthropic-shaped answer for both chat and completions (completions just have no tool calls)."""
    text = cutter.finish()
    # reasoning text some servers stream (`reasoning_content` / `reasoning`) becomes a thinking block
    content: list[ContentBlock] = [{"type": "thinking", "thinking": reasoning}] if reasoning else []
    if text:
        content.append({"type": "text", "text": text})
    for tc in tool_calls:
        fn = tc.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError as exc:
            raise ProviderError(f"{prefix}malformed tool call arguments", retryable=True) from exc
        content.append({"type": "tool_use", "id": tc.get("id"), "name": fn.get("name"), "input": args})
    stop_reason = _FINISH.get(finish or "stop", "end_turn")
    stop_sequence = None
    if cutter.hit is not None and stop_reason == "end_turn":
        stop_reason, stop_sequence = "stop_sequence", cutter.hit
    u = _usage(usage)
    raw = {"content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence, "model": model,
           "usage": u, "finish_reason": finish}
    return ProviderResponse(text=text, content=content, stop_reason=stop_reason, stop_sequence=stop_sequence,
                            usage=u, model=model, raw=raw)


def _put_sampling(body: dict[str, Any], request: ProviderRequest, names: tuple[str, ...]) -> None:
    """Copy the sampling parameters the caller set (None means "server default": not sent)."""
    for name in names:
        value = getattr(request, name)
        if value is not None:
            body[name] = value


def _usage(usage: Any) -> dict[str, int]:
    if not usage:
        return {}
    out = {"input_tokens": int(usage.get("prompt_tokens") or 0), "output_tokens": int(usage.get("completion_tokens") or 0)}
    details = usage.get("prompt_tokens_details") or {}
    if details.get("cached_tokens"):
        out["cache_read_input_tokens"] = int(details["cached_tokens"])
    return out


class CompletionsProvider(Provider):
    """`/v1/completions` for base models (openaicompletion* vendors and chapter2 openai* vendors)."""

    kind = "openai-completions"
    error_prefix = "OpenAI completions error: "

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: openai.AsyncOpenAI | None = None
        self._chat_provider: OpenAIChatProvider | None = None
        if self.settings.get("chapter2"):
            self.stop_cap = 3  # chapter2 passes stop_sequences[:3]

    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = _openai_client(self, _NO_OPENAI_IDS)
        return self._client

    def _chat(self) -> OpenAIChatProvider:
        """chapter2 sends chat models through /chat/completions (intermodel's rule)."""
        if self._chat_provider is None:
            self._chat_provider = OpenAIChatProvider(self.settings, flavour="compatible", base_url=self.base_url,
                                                     options=self.options, vendor_name=self.vendor_name,
                                                     real_base_url=self.real_base_url)
        return self._chat_provider

    def build_body(self, request: ProviderRequest) -> dict[str, Any]:
        if self.settings.get("chapter2") and is_chapter2_chat_model(request.model):
            return self._chapter2_chat_body(request)
        prompt = request.prompt
        if prompt is None:
            raise ProviderError("completions vendor needs a text prompt (base-model mode)", retryable=False)
        body: dict[str, Any] = dict(self.settings.get("extra_body") or {})
        body.update({"model": request.model, "prompt": prompt, "max_tokens": request.max_tokens})
        _put_sampling(body, request, ("temperature", "top_p", "presence_penalty", "frequency_penalty",
                                      "repetition_penalty"))
        if request.stop_sequences:
            body["stop"] = self.capped_stops(request.stop_sequences)
        body.update(request.extra)
        if request.stream:
            body["stream"] = True
        return body

    def _chapter2_chat_body(self, request: ProviderRequest) -> dict[str, Any]:
        body: dict[str, Any] = dict(self.settings.get("extra_body") or {})
        body["model"] = request.model
        body["messages"] = [{"role": "system", "content": CHAPTER2_CHAT_SYSTEM},
                            {"role": "user", "content": request.prompt or ""}]
        o1 = request.model.startswith("o1")
        if not o1:
            body["max_tokens"] = request.max_tokens
        _put_sampling(body, request, ("temperature", "presence_penalty", "frequency_penalty"))
        if request.stop_sequences and not o1:
            body["stop"] = self.capped_stops(request.stop_sequences)
        body.update(request.extra)
        if request.stream:
            body["stream"] = True
        return body

    async def _attempt(self, request: ProviderRequest, body: dict[str, Any], cutter: StopCutter) -> ProviderResponse:
        if "messages" in body:
            return await self._chat()._attempt(request, body, cutter)
        client = self.client()
        finish: str | None = None
        usage: Any = None
        model: str | None = None
        if not body.get("stream"):
            data = json_object(await client.post("/completions", body=dict(body), cast_to=object), self.error_prefix)
            choice = (data.get("choices") or [{}])[0]
            cutter.feed(choice.get("text") or "")
            finish, usage, model = choice.get("finish_reason"), data.get("usage"), data.get("model")
        else:
            stream = await client.post("/completions", body=dict(body), cast_to=object, stream=True,
                                       stream_cls=AsyncStream[object])

            def on_choice(choice: dict[str, Any]) -> None:
                if choice.get("text"):
                    cutter.feed(choice["text"])

            finish, usage, model = await _read_stream(stream, self.options.stall_timeout, cutter, on_choice,
                                                      self.error_prefix)
        return _response(cutter, finish, [], usage, model or request.model, self.error_prefix)

    def _classify(self, exc: BaseException) -> ProviderError:
        return classify_openai(exc, self.error_prefix)
