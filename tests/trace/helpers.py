"""Builders shared by the trace tests (not fixtures from upstream: written here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chapterx.trace.collector import start_activation
from chapterx.trace.redact import Redactor
from chapterx.trace.writer import TraceWriter


def write_activation(writer: TraceWriter, *, channel: str = "1000", trigger: str = "5000", bot: str = "TestBot",
                     context: list[str | None] | None = None, sent: list[str] | None = None,
                     success: bool = True, text: str = "hello back", channel_name: str = "general",
                     calls: int = 1) -> str:
    with start_activation(channel, trigger, bot, channel_name=channel_name, writer=writer) as c:
        c.record_activation("mention", [{"type": "message", "messageId": trigger, "authorId": "1",
                                         "authorName": "alice", "contentPreview": f"hi {trigger}"}])
        msgs = [{"position": i, "discordMessageId": mid, "participant": "alice", "contentPreview": "x"}
                for i, mid in enumerate(context or [trigger])]
        c.record_context({"messagesConsidered": len(msgs), "messagesIncluded": len(msgs), "messages": msgs})
        for _ in range(calls):
            c.record_llm_call({"model": "claude-sonnet-4-5-20250929", "max_tokens": 100,
                               "messages": [{"role": "user", "content": "hi"}]},
                              {"content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                               "usage": {"input_tokens": 100, "output_tokens": 10}},
                              model="claude-sonnet-4-5-20250929", usage=None, stop_reason="end_turn",
                              duration_ms=5)
        c.set_outcome(success, text, sent or [])
        return c.trace_id


def new_writer(logs: Path, **kw: Any) -> TraceWriter:
    kw.setdefault("redactor", Redactor(include_env=False))
    return TraceWriter(logs, **kw)
