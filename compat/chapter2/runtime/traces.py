"""A handled chapter2 message as a trace in our store (`framework: chapter2`).

The file has the fields every trace reader already uses (`traceId`, `timestamp`, `channelId`,
`triggeringMessageId`, `botId`, `activation`, `llmCalls`, `contextBuild`, `outcome`, `durationMs`), so
listing, search and the index work unchanged, plus a `chapter2` section with what this runtime decided:
trigger kind, channel config (kv and the fields it changed), the history window, the requests, the
replies, the Discord actions, typing, the error and chapter2's span names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chapterx.trace.ids import iso_now, new_trace_id
from compat.chapter2.runtime.interface import EventRecord


def trace_of(rec: EventRecord, *, bot: str, channel_name: str, is_thread: bool, parent_id: int | None,
             started: datetime | None = None) -> dict[str, Any]:
    started = started or datetime.now(UTC)
    trace_id = new_trace_id(int(started.timestamp() * 1000))
    reason = rec.trigger or ("dropped by max_queued_replies" if rec.dropped else
                             "config error" if rec.exception and rec.exception["type"] == "ValidationError" else
                             "no trigger")
    sent = " ".join(a["content"] for a in rec.actions if a["type"] == "send")
    success = rec.exception is None
    outcome: dict[str, Any] = {"success": success, "responseText": sent,
                               "sentMessageIds": [str(i) for i in rec.sent_ids],
                               "activated": bool(rec.should_reply)}
    if rec.exception is not None:
        outcome["error"] = {"message": f"{rec.exception['type']}: {rec.exception['message'].splitlines()[0]}"}
    trace: dict[str, Any] = {
        "traceId": trace_id,
        "timestamp": iso_now(started),
        "channelId": str(rec.channel_id),
        "triggeringMessageId": str(rec.message_id),
        "botId": bot,
        "guildId": str(rec.guild_id) if rec.guild_id is not None else None,
        "channelName": channel_name,
        "isThread": is_thread,
        "parentChannelId": str(parent_id) if parent_id is not None else None,
        "framework": "chapter2",
        "activation": {"reason": reason, "triggerEvents": [{"messageId": str(rec.message_id),
                                                            "contentPreview": rec.content_preview}]},
        "contextBuild": {"messages": [{"discordMessageId": str(mid), "position": i}
                                      for i, mid in enumerate(reversed(rec.history_ids))]},
        "llmCalls": [{"model": r.model, "vendor": r.vendor, "promptChars": len(r.prompt)} for r in rec.requests],
        "toolExecutions": [],
        "outcome": outcome,
        "durationMs": rec.duration_ms,
        "chapter2": {
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
            "spans": list(rec.spans),
        },
    }
    return trace
