"""Chat mode (reference §3.4): native roles; other speakers' text is prefixed with their name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.context.types import ContentBlock, ParticipantMessage
from chapterx.llm.formatters.common import (
    base_request,
    cache_control,
    context_prefix_turns,
    has_content,
    thinking_param,
    tool_definitions,
)
from chapterx.llm.types import ChatMessage, ProviderRequest


def render_chat(
    messages: Sequence[ParticipantMessage],
    config: ConfigLike,
    *,
    model: str,
    stop_sequences: Sequence[str],
    tools: Sequence[Mapping[str, Any]] = (),
    extra_turns: Sequence[ChatMessage] = (),
) -> ProviderRequest:
    """Build the chat request; `extra_turns` are this activation's tool-use / tool-result turns."""
    config = as_bot_config(config)
    name = config.name
    caching = config.prompt_caching
    cc = cache_control(config)
    req = base_request(config, model)
    req.formatter = "chat"
    out = context_prefix_turns(config, cc if caching else None)
    marked = False
    for m in messages:
        if not has_content(m):
            continue
        role = "assistant" if m.participant == name else "user"
        blocks: list[ContentBlock] = []
        for b in m.content:
            nb = dict(b)
            if nb.get("type") == "text" and role == "user":
                nb["text"] = f"{m.participant}: {nb['text']}"
            blocks.append(nb)
        if m.cache_breakpoint and caching and blocks:
            blocks[-1]["cache_control"] = dict(cc)
            marked = True
        if out and out[-1].role == role and isinstance(out[-1].content, list):
            out[-1].content.extend(blocks)
        else:
            out.append(ChatMessage(role, blocks))
    for turn in extra_turns:
        if out and out[-1].role == turn.role and isinstance(out[-1].content, list) and isinstance(turn.content, list):
            out[-1].content.extend(turn.content)
        else:
            out.append(ChatMessage(turn.role, list(turn.content) if isinstance(turn.content, list) else turn.content))
    if out and out[0].role == "assistant":
        out.insert(0, ChatMessage("user", [{"type": "text", "text": "[continuing]"}]))
    system_prompt = config.system_prompt
    if system_prompt:
        if caching and not marked:
            req.system = [{"type": "text", "text": str(system_prompt), "cache_control": dict(cc)}]
        else:
            req.system = str(system_prompt)
    req.messages = out
    if tools:
        # Upstream's native-tool path sends no stop list (golden *-native-tool-loop cases).
        req.tools = tool_definitions(tools)
        req.stop_sequences = []
    else:
        req.stop_sequences = list(stop_sequences)
    req.thinking = thinking_param(config, "chat")
    return req
