"""Prefill mode (reference §3.2): the conversation as one assistant transcript the model continues.

Lines are `Name: text` joined by a single newline; the cache breakpoint flushes the transcript so
far into a cached assistant block; image turns become user messages; the last assistant message
(the prefill) ends with the bot's turn label, or, for a continuation, with the text so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.context.types import ContentBlock, ParticipantMessage
from chapterx.llm.formatters.common import (
    CLI_FIRST_USER,
    CLI_SYSTEM_PROMPT,
    START_USER,
    base_request,
    cache_control,
    context_prefix_turns,
    has_content,
    xml_tools_text,
)
from chapterx.llm.types import ChatMessage, ProviderRequest

TOOL_INJECTION_WINDOW = 10


def render_prefill(
    messages: Sequence[ParticipantMessage],
    config: ConfigLike,
    *,
    model: str,
    stop_sequences: Sequence[str],
    tools: Sequence[Mapping[str, Any]] = (),
    continuation: str | None = None,
    continue_last: bool = False,
) -> ProviderRequest:
    """Build the prefill request.

    `continuation`: text the bot already produced in this activation (tool loop); it follows the
    bot's turn label verbatim. `continue_last`: the newest message is the bot's own and is continued
    raw (no new label), as the spec asks for `m continue` / ▶️.
    """
    config = as_bot_config(config)
    name = config.name
    caching = config.prompt_caching
    cc = cache_control(config)
    req = base_request(config, model)
    req.formatter = "prefill"
    system_prompt = config.system_prompt
    out = context_prefix_turns(config, cc if caching else None)

    msgs = [m for m in messages]
    while msgs and not has_content(msgs[-1]):
        msgs.pop()  # trailing empty messages (the completion placeholder)
    n = len(msgs)
    tool_index = max(0, n - TOOL_INJECTION_WINDOW) if tools else -1
    buffer: list[str] = []
    tools_done = False

    def flush(cached: bool = False) -> None:
        if not buffer:
            return
        text = "\n".join(buffer)
        buffer.clear()
        if cached:
            out.append(ChatMessage("assistant", [{"type": "text", "text": text, "cache_control": dict(cc)}]))
        else:
            out.append(ChatMessage("assistant", text))

    for i, m in enumerate(msgs):
        text = m.text()
        images = [b for b in m.content if b.get("type") == "image"]
        if images:
            flush()
            blocks: list[ContentBlock] = []
            if text:
                blocks.append({"type": "text", "text": f"{m.participant}: {text}"})
            blocks.extend(images)
            out.append(ChatMessage("user", blocks))
            continue
        if not tools_done and tool_index >= 0 and i >= tool_index:
            # upstream skips the catalogue when an image turn sits at the injection index; we put it
            # before the next text turn instead
            buffer.append(xml_tools_text(tools))
            tools_done = True
        if not text and i != n - 1:
            continue
        if text:
            buffer.append(f"{m.participant}: {text}")
        if m.cache_breakpoint and caching:
            flush(cached=True)

    if continue_last and msgs and msgs[-1].participant == name:
        # the bot's own last line is the end of the transcript; text produced in this activation
        # (tool rounds) continues it directly
        tail = None
        if continuation:
            if buffer:
                buffer[-1] += continuation
            else:
                buffer.append(continuation)
    else:
        label = f"{name}: <thinking>" if config.prefill_thinking is True else f"{name}:"
        tail = label + (continuation or "")
    if tail is not None:
        buffer.append(tail)
    if buffer:
        out.append(ChatMessage("assistant", "\n".join(buffer)))

    system: list[ContentBlock] | None = None
    if system_prompt:
        system = [{"type": "text", "text": str(system_prompt)}]
    if out and out[0].role != "user":
        if config.prefill_user_message:
            out.insert(0, ChatMessage("user", str(config.prefill_user_message)))
        elif not system_prompt:
            system = [{"type": "text", "text": CLI_SYSTEM_PROMPT}]
            out.insert(0, ChatMessage("user", CLI_FIRST_USER))
        else:
            out.insert(0, ChatMessage("user", START_USER))
    if system is not None and caching:
        system[0]["cache_control"] = dict(cc)
    req.system = system
    req.messages = out
    req.stop_sequences = ["</function_calls>", *stop_sequences]
    return req
