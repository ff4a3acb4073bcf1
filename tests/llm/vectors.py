"""Helpers to drive the provider layer with golden cases (test-only).

The pipeline builds the real ProviderRequest; here we rebuild the one it would hand us from the
case's informational `membrane_requests` (chat mode: one text block per participant message,
`Name: ` prefix on user turns, consecutive same-role turns merged, the cache breakpoint as
`cache_control`), or from the expected body for prefill/base-model cases whose prompt text is
the pipeline's business. What is tested is everything after that: vendor translation, headers,
paths, signing, streaming and retries.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML

from chapterx.llm.types import ChatMessage, ProviderRequest

RECORDED = {"accept", "anthropic-beta", "anthropic-version", "authorization", "content-type", "host", "http-referer",
            "x-amz-date", "x-amz-security-token", "x-api-key", "x-goog-api-key", "x-title"}
# headers the SDKs / HTTP stack always add; upstream recorded them only where its adapter set them
ALWAYS_PRESENT = {"accept", "host", "content-type"}


def load_yaml(text: str) -> Any:
    return YAML(typ="safe").load(text) or {}


def bot_config(case: dict[str, Any]) -> dict[str, Any]:
    files = case["input"]["files"]
    cfg: dict[str, Any] = {}
    for name, text in files.items():
        if name.startswith("config/bots/") and name.endswith(".yaml"):
            cfg.update(load_yaml(text))
    return cfg


def vendors(case: dict[str, Any]) -> Any:
    return load_yaml(case["input"]["files"].get("config/shared.yaml", "")).get("vendors") or {}


def now_of(case: dict[str, Any]) -> float | None:
    raw = case["input"].get("now")
    if not raw:
        return None
    return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def _attachment_data(case: dict[str, Any]) -> list[str]:
    out = []
    for msg in case["input"]["discord"]["messages"]:
        for att in msg.get("attachments") or []:
            if att.get("data_base64"):
                out.append(att["data_base64"])
    return out


def chat_request(case: dict[str, Any], mreq: dict[str, Any]) -> ProviderRequest:
    """The ProviderRequest the chat formatter would build from one membrane request."""
    assistant = mreq["assistantParticipant"]
    images = iter(_attachment_data(case))
    caching = mreq.get("promptCaching", True)
    messages: list[ChatMessage] = []
    for m in mreq["messages"]:
        role = "assistant" if m["participant"] == assistant else "user"
        blocks: list[dict[str, Any]] = []
        first_text = True
        for c in m["content"]:
            if c["type"] == "text":
                text = c["text"] if role == "assistant" or not first_text else f"{m['participant']}: {c['text']}"
                first_text = False
                blocks.append({"type": "text", "text": text})
            elif c["type"] == "image":
                src = c["source"]
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": src.get("mediaType"),
                                                           "data": next(images)}})
        if m.get("cacheBreakpoint") and caching and blocks:
            blocks[0]["cache_control"] = {"type": "ephemeral"}
        if messages and messages[-1].role == role:
            assert isinstance(messages[-1].content, list)
            messages[-1].content.extend(blocks)
        else:
            messages.append(ChatMessage(role=role, content=blocks))
    cfg = mreq["config"]
    extra = dict(mreq.get("providerParams") or {})
    modalities = None
    gen = extra.get("generationConfig")
    if isinstance(gen, dict) and "responseModalities" in gen:
        modalities = gen["responseModalities"]
        rest = {k: v for k, v in gen.items() if k != "responseModalities"}
        if rest:
            extra["generationConfig"] = rest
        else:
            del extra["generationConfig"]
    tools = [{"name": t["name"], "description": t.get("description"), "input_schema": t["inputSchema"]}
             for t in mreq.get("tools") or []] or None
    bot = bot_config(case)
    return ProviderRequest(
        model=cfg["model"],
        messages=messages,
        system=mreq.get("system"),
        max_tokens=cfg["maxTokens"],
        temperature=cfg.get("temperature"),
        top_p=cfg.get("topP"),
        top_k=cfg.get("topK"),
        presence_penalty=cfg.get("presencePenalty"),
        frequency_penalty=cfg.get("frequencyPenalty"),
        stop_sequences=list(mreq.get("stopSequences") or []),
        tools=tools,
        thinking=cfg.get("thinking"),
        stream=mreq.get("streaming", True) is not False,
        extra=extra,
        response_modalities=modalities,
        llm_retries=bot.get("llm_retries"),
    )


def continue_with_tool(request: ProviderRequest, response_spec: dict[str, Any], tool_output: str) -> ProviderRequest:
    """The follow-up request of a native tool loop (what the pipeline appends)."""
    blocks: list[dict[str, Any]] = []
    if response_spec.get("thinking"):
        blocks.append({"type": "thinking", "thinking": response_spec["thinking"],
                       "signature": response_spec.get("thinking_signature", "sig-invented")})
    if response_spec.get("text"):
        blocks.append({"type": "text", "text": response_spec["text"]})
    tool = response_spec["tool_use"]
    blocks.append({"type": "tool_use", "id": tool["id"], "name": tool["name"], "input": tool["input"]})
    result = {"type": "tool_result", "tool_use_id": tool["id"], "content": tool_output, "is_error": False}
    messages = [*request.messages, ChatMessage("assistant", blocks), ChatMessage("user", [result])]
    return ProviderRequest(**{**request.__dict__, "messages": messages})


def tool_output_of(body: dict[str, Any]) -> str:
    for m in body.get("messages", []):
        if m.get("role") == "tool":
            return str(m["content"])
        if isinstance(m.get("content"), list):
            for b in m["content"]:
                if b.get("type") == "tool_result":
                    return str(b["content"])
    raise AssertionError("no tool result in expected body")


def prefill_request(case: dict[str, Any], body: dict[str, Any]) -> ProviderRequest:
    """Prefill-mode request: the rendered transcript is the pipeline's; take it as expected."""
    bot = bot_config(case)
    return ProviderRequest(
        model=bot["continuation_model"],
        messages=[ChatMessage(m["role"], m["content"]) for m in body["messages"]],
        system=body.get("system"),
        max_tokens=body["max_tokens"],
        temperature=body.get("temperature"),
        stop_sequences=list(body.get("stop_sequences") or body.get("stop") or []),
        stream="/invoke-with-response-stream" in json.dumps(body) or body.get("stream", True) is not False,
        llm_retries=bot.get("llm_retries"),
    )


def completions_request(case: dict[str, Any], body: dict[str, Any]) -> ProviderRequest:
    known = {"model", "prompt", "max_tokens", "temperature", "repetition_penalty", "stop", "stream"}
    bot = bot_config(case)
    return ProviderRequest(
        model=body["model"], prompt=body["prompt"], max_tokens=body["max_tokens"], temperature=body.get("temperature"),
        repetition_penalty=body.get("repetition_penalty"), stop_sequences=list(body.get("stop") or []),
        stream=bool(body.get("stream")), extra={k: v for k, v in body.items() if k not in known},
        llm_retries=bot.get("llm_retries"),
    )


def strip_images(obj: Any) -> Any:
    """Replace image bytes with a marker (the vectors' bytes are the reference's re-encoding)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k == "url" and isinstance(v, str) and v.startswith("data:"):
                out[k] = v.split(",", 1)[0] + ",<bytes>"
            elif (k == "inlineData" and isinstance(v, dict)) or (k == "source" and isinstance(v, dict) and v.get("type") == "base64"):
                out[k] = {**v, "data": "<bytes>"}
            else:
                out[k] = strip_images(v)
        return out
    if isinstance(obj, list):
        return [strip_images(v) for v in obj]
    return obj


def recorded_path(real_base: str, recorded: dict[str, Any]) -> str:
    return urlsplit(real_base).netloc + recorded["path"]
