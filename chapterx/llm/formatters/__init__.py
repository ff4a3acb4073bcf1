"""Rendering participant messages into a provider-neutral `ProviderRequest` (reference §3).

`render(mode, participant_messages, config, ...)` picks the prefill, chat or completions
formatter; `resolve_mode` applies upstream's choice order (config `mode`, then the vendor's
formatter route, then the model name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.context.types import ParticipantMessage
from chapterx.llm.formatters.chat import render_chat
from chapterx.llm.formatters.completions import render_completions
from chapterx.llm.formatters.prefill import render_prefill
from chapterx.llm.types import ProviderRequest

__all__ = ["render", "render_chat", "render_completions", "render_prefill", "resolve_mode", "resolve_tool_mode"]


def resolve_mode(config: ConfigLike, formatter_route: str | None = None) -> str:
    """"prefill" | "chat" | "base-model" for this request (§3.1 formatter choice)."""
    cfg = as_bot_config(config)
    mode = cfg.mode
    if mode in ("prefill", "chat", "base-model"):
        return str(mode)
    if formatter_route == "completions":
        return "base-model"
    if formatter_route == "native":
        return "chat"
    if formatter_route == "anthropic-xml":
        return "prefill"
    model = cfg.continuation_model
    if model.startswith("claude-") or "anthropic.claude" in model:
        return "prefill"
    return "chat"


def resolve_tool_mode(config: ConfigLike, formatter_route: str | None = None) -> str:
    """"xml" (inline tools in the prefill) or "native" (§1.5 step 15)."""
    cfg = as_bot_config(config)
    mode = cfg.mode
    if mode == "prefill":
        return "xml"
    if mode in ("chat", "base-model"):
        return "native"
    if formatter_route in ("native", "completions"):
        return "native"
    model = cfg.continuation_model
    if "/" in model:
        return "native"
    if model.startswith("claude-") or model.startswith("anthropic."):
        return "xml"
    return "native"


def render(
    mode: str,
    participant_messages: Sequence[ParticipantMessage],
    config: ConfigLike,
    *,
    stop_sequences: Sequence[str] = (),
    tools: Sequence[Mapping[str, Any]] = (),
    model: str | None = None,
    vendor: Any = None,
    continuation: str | None = None,
    continue_last: bool = False,
) -> ProviderRequest:
    config = as_bot_config(config)
    model_name = model or config.continuation_model
    if mode == "chat":
        return render_chat(participant_messages, config, model=model_name, stop_sequences=stop_sequences, tools=tools)
    if mode == "base-model":
        return render_completions(
            participant_messages, config, model=model_name, stop_sequences=stop_sequences, vendor=vendor,
            continue_last=continue_last, continuation=continuation,
        )
    return render_prefill(
        participant_messages, config, model=model_name, stop_sequences=stop_sequences, tools=tools,
        continuation=continuation, continue_last=continue_last,
    )
