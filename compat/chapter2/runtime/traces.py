"""A handled chapter2 message as a trace in our store (`framework: chapter2`).

The file has the fields every trace reader already uses (`traceId`, `timestamp`, `channelId`,
`triggeringMessageId`, `botId`, `activation.reason` = the trigger kind, `contextBuild.messages` = the
history window, `llmCalls` with prompt and continuation, `outcome`, `durationMs`), so listing, search,
the index and the viewer's chapter2 view work unchanged. The `chapter2` section holds what this runtime
decided: trigger, channel config (the kv and the fields it changed), history, requests, replies, Discord
actions, typing, the error, and chapter2's span names (as a span tree whose root carries the decision).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from chapterx.trace.collector import normalize_usage
from chapterx.trace.cost import call_cost, trace_cost
from chapterx.trace.ids import iso_now, new_trace_id
from chapterx_compat.chapter2.runtime.interface import EventRecord


def _reason(rec: EventRecord) -> str:
    if rec.trigger:
        return rec.trigger
    if rec.dropped:
        return "dropped: max_queued_replies"
    if rec.exception and rec.exception["type"] == "ValidationError":
        return "channel config invalid"
    return "no trigger"


def _span_tree(rec: EventRecord) -> list[dict[str, Any]]:
    """chapter2's span names under one root (`handle_exceptions`) that carries the decision."""
    root_name = rec.spans[-1] if rec.spans else "DiscordInterface.handle_exceptions"
    attrs: dict[str, Any] = {
        "message.id": rec.message_id, "channel.id": rec.channel_id, "should_reply": repr(rec.should_reply),
        "trigger": repr(rec.trigger), "channel_config": json.dumps(rec.channel_kv, default=str),
        "config_changes": json.dumps(rec.config_changes, default=str), "actions": json.dumps(rec.actions),
        "typing_count": rec.typing_count,
    }
    if rec.guild_id is not None:
        attrs["guild.id"] = rec.guild_id
    children = [{"name": n, "startOffsetMs": 0, "durationMs": 0, "attributes": {}, "children": []}
                for n in rec.spans[:-1]]
    root: dict[str, Any] = {"name": root_name, "startOffsetMs": 0, "durationMs": rec.duration_ms,
                            "attributes": attrs, "children": children}
    if rec.exception is not None:
        root["status"] = "error"
        root["statusMessage"] = f"{rec.exception['type']}: {rec.exception['message'].splitlines()[0]}"
    return [root]


def trace_of(rec: EventRecord, *, bot: str, channel_name: str, is_thread: bool, parent_id: int | None,
             started: datetime | None = None) -> dict[str, Any]:
    started = started or datetime.now(UTC)
    sent = "\n".join(a["content"] for a in rec.actions if a["type"] == "send")
    outcome: dict[str, Any] = {"success": rec.exception is None, "responseText": sent,
                               "sentMessageIds": [str(i) for i in rec.sent_ids],
                               "activated": bool(rec.should_reply)}
    if rec.exception is not None:
        outcome["error"] = {"message": f"{rec.exception['type']}: {rec.exception['message'].splitlines()[0]}"}
    oldest_first = list(zip(reversed(rec.history_ids), reversed(rec.history), strict=False))
    messages = [{"position": i, "participant": m.author.name if m.author else None, "content": m.content,
                 "contentPreview": m.content[:100], "discordMessageId": str(mid),
                 "isTrigger": mid == rec.message_id, "tokenEstimate": len(m.content.split())}
                for i, (mid, m) in enumerate(oldest_first)]
    calls = []
    for i, r in enumerate(rec.requests):
        call: dict[str, Any] = {"model": r.model, "vendor": r.vendor, "prompt": r.prompt,
                                "continuation": rec.completions[i] if i < len(rec.completions) else None}
        if i >= len(rec.completions) and rec.exception is not None:
            call["error"] = outcome["error"]["message"]
        if i < len(rec.usages) and rec.usages[i]:  # only what the vendor reported: no counts is not zero
            call["tokenUsage"] = normalize_usage(rec.usages[i])
            cost = call_cost(r.model, call["tokenUsage"])
            if cost is not None:
                call["cost"] = cost
        calls.append(call)
    trace: dict[str, Any] = {
        "traceId": new_trace_id(int(started.timestamp() * 1000)),
        "timestamp": iso_now(started),
        "channelId": str(rec.channel_id),
        "triggeringMessageId": str(rec.message_id),
        "botId": bot,
        "guildId": str(rec.guild_id) if rec.guild_id is not None else None,
        "channelName": channel_name,
        "isThread": is_thread,
        "parentChannelId": str(parent_id) if parent_id is not None else None,
        "framework": "chapter2",
        "activation": {"reason": _reason(rec), "triggerEvents": [{"messageId": str(rec.message_id),
                                                                  "contentPreview": rec.content_preview}]},
        "contextBuild": {"messagesIncluded": len(messages), "messages": messages},
        "llmCalls": calls,
        "toolExecutions": [],
        "outcome": outcome,
        "durationMs": rec.duration_ms,
        "chapter2": {
            "prompt": rec.requests[-1].prompt if rec.requests else None,
            "continuation": rec.completions[-1] if rec.completions else None,
            "history": "\n".join(f"<{m.author.name if m.author else ''}> {m.content}" for m in rec.history) or None,
            "spanCount": len(rec.spans),
            "spans": _span_tree(rec),
            "spanNames": list(rec.spans),
            "shouldReply": rec.should_reply,
            "trigger": rec.trigger,
            "command": rec.command,
            "dropped": rec.dropped,
            "randomRolls": list(rec.random_rolls),
            "channelConfig": rec.channel_kv,
            "configChanges": rec.config_changes,
            "historyNewestFirst": [m.to_dict() for m in rec.history],
            "requests": [r.to_dict() for r in rec.requests],
            "replies": [m.to_dict() for m in rec.replies],
            "actions": list(rec.actions),
            "typingCount": rec.typing_count,
            "exception": rec.exception,
        },
    }
    total = trace_cost(trace)
    if total is not None:
        trace["cost"] = total
    return trace
