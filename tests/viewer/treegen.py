"""Small ChapterX logs trees for viewer tests (XSS payloads, traversal targets), written like the bot does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chapterx.trace.model import index_entry

XSS_PAYLOADS = [
    '<img src=x onerror="window.__xss=(window.__xss||0)+1">',
    "</script><script>window.__xss=(window.__xss||0)+1</script>",
    "javascript:window.__xss=(window.__xss||0)+1",
    '" onmouseover="window.__xss=(window.__xss||0)+1" x="',
    "' onfocus='window.__xss=(window.__xss||0)+1' autofocus='",
    "<svg/onload=window.__xss=(window.__xss||0)+1>",
]


def payload(i: int = 0) -> str:
    return XSS_PAYLOADS[i % len(XSS_PAYLOADS)]


def make_trace(
    trace_id: str,
    ts: datetime,
    *,
    bot: str,
    text: str,
    channel: str = "1217880725127299073",
    success: bool = True,
    req_ref: str | None = None,
    resp_ref: str | None = None,
) -> dict[str, Any]:
    """A ChapterX activation trace in which every free-text field is `text` (or derived from it)."""
    iso = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    trig = "1500000000000000001"
    outcome: dict[str, Any] = {
        "success": success,
        "responseText": text + " response",
        "responseLength": len(text) + 9,
        "sentMessageIds": ["1500000000000000009"] if success else [],
        "messagesSent": 1 if success else 0,
    }
    if not success:
        outcome["error"] = {"message": text + " error", "phase": text + " phase", "stack": text + " stack"}
    return {
        "traceId": trace_id,
        "timestamp": iso,
        "channelId": channel,
        "channelName": text + " channel",
        "guildId": "1217880720932995072",
        "triggeringMessageId": trig,
        "botId": bot,
        "isThread": False,
        "activation": {
            "reason": text + " reason",
            "triggerEvents": [
                {
                    "type": "mention",
                    "messageId": trig,
                    "authorName": text,
                    "contentPreview": text + " trigger",
                }
            ],
        },
        "rawDiscordMessages": [
            {
                "id": trig,
                "author": {"id": "42", "username": text, "displayName": text + " display", "bot": False},
                "content": text + " content",
                "timestamp": iso,
                "attachments": [{"url": "javascript:alert(1)", "filename": text}],
            }
        ],
        "contextBuild": {
            "messagesConsidered": 2,
            "messagesIncluded": 1,
            "messages": [
                {
                    "position": 0,
                    "discordMessageId": trig,
                    "participant": text + " participant",
                    "contentPreview": text + " preview",
                    "contentLength": 10,
                    "tokenEstimate": 5,
                    "transformations": [text],
                    "isTrigger": True,
                    "hasImages": False,
                    "imageCount": 0,
                    "hasCacheControl": True,
                },
                {
                    "position": 1,
                    "discordMessageId": None,
                    "participant": bot,
                    "contentPreview": "",
                    "contentLength": 0,
                    "tokenEstimate": 0,
                    "transformations": [],
                    "isTrigger": False,
                    "hasImages": False,
                    "imageCount": 0,
                    "hasCacheControl": False,
                },
            ],
            "didTruncate": True,
            "truncateReason": text + " truncate",
            "messagesRolledOff": 3,
            "cacheMarker": text,
            "tokenEstimates": {"system": 10, "messages": 20, "images": 0, "tools": 5, "total": 35},
        },
        "llmCalls": [
            {
                "callId": f"{trace_id}-llm-0",
                "depth": 0,
                "model": text + " model",
                "durationMs": 1200,
                "request": {"messageCount": 1, "temperature": 1, "maxTokens": 100},
                "response": {
                    "stopReason": text + " stop",
                    "contentBlocks": 1,
                    "textLength": 5,
                    "toolUseCount": 1,
                },
                "tokenUsage": {
                    "inputTokens": 100,
                    "outputTokens": 20,
                    "cacheReadTokens": 0,
                    "cacheCreationTokens": 0,
                },
                **({"requestBodyRef": req_ref, "requestBodyRefs": [req_ref]} if req_ref else {}),
                **({"responseBodyRef": resp_ref, "responseBodyRefs": [resp_ref]} if resp_ref else {}),
                **({} if success else {"error": {"message": text + " call error"}}),
            }
        ],
        "toolExecutions": [
            {
                "toolCallId": "t1",
                "toolName": text + " tool",
                "input": {"q": text},
                "output": text + " output",
                "outputTruncated": False,
                "durationMs": 10,
                "llmCallId": f"{trace_id}-llm-0",
            }
        ],
        "outcome": outcome,
        "logs": [
            {"offsetMs": 1, "level": "debug", "message": text + " debug", "data": {"x": text}},
            {"offsetMs": 2, "level": "info", "message": text + " info"},
            {"offsetMs": 3, "level": "warn", "message": text + " warn"},
            {"offsetMs": 4, "level": "error", "message": text + " error log"},
            {"offsetMs": 5, "level": "fatal", "message": text + " fatal"},
            {"offsetMs": 6, "level": "trace", "message": text + " trace"},
        ],
        "durationMs": 2345,
        "config": {
            "name": bot,
            "mode": text,
            "continuation_model": text + " model",
            "temperature": 1,
            "system_prompt": text,
        },
    }


def write_tree(logs: Path, traces: list[tuple[dict[str, Any], str | None]]) -> None:
    """Write trace files (in `traces/<bot>/`, or the legacy root when the folder name is unusable) and index lines."""
    tdir = logs / "traces"
    tdir.mkdir(parents=True, exist_ok=True)
    for d in ("llm-requests", "llm-responses", "membrane-requests", "membrane-responses"):
        (logs / d).mkdir(exist_ok=True)
    lines = []
    for trace, folder in traces:
        fname = f"{trace['channelId']}-{trace['traceId']}-{trace['timestamp'][:19].replace(':', '-')}-{trace['timestamp'][20:23]}Z.json"
        target = (tdir / folder) if folder else tdir
        target.mkdir(exist_ok=True)
        (target / fname).write_text(json.dumps(trace, indent=2))
        lines.append(json.dumps(index_entry(trace, fname)))
    with open(tdir / "index.jsonl", "a") as fh:
        fh.write("\n".join(lines) + "\n")


def xss_tree(logs: Path, now: datetime | None = None) -> list[str]:
    """One trace per payload, every field carrying it; returns the trace ids."""
    now = now or datetime.now(UTC)
    items: list[tuple[dict[str, Any], str | None]] = []
    ids = []
    for i, p in enumerate(XSS_PAYLOADS):
        tid = f"{0xABC000 + i:08x}"
        req = f"request-xss-{i}.json"
        resp = f"response-xss-{i}.json"
        trace = make_trace(
            tid, now - timedelta(minutes=i), bot=p, text=p, success=i % 2 == 0, req_ref=req, resp_ref=resp
        )
        items.append((trace, None))
        ids.append(tid)
    write_tree(logs, items)
    for i, p in enumerate(XSS_PAYLOADS):
        (logs / "llm-requests" / f"request-xss-{i}.json").write_text(
            json.dumps(
                {
                    "model": p,
                    "system": p,
                    "max_tokens": 10,
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": p},
                                {"type": "tool_use", "id": p, "name": p, "input": {"k": p}},
                            ],
                        }
                    ],
                    "tools": [{"name": p, "description": p}],
                    p: p,
                }
            )
        )
        (logs / "llm-responses" / f"response-xss-{i}.json").write_text(
            json.dumps(
                {
                    "id": p,
                    "type": "message",
                    "model": p,
                    "stop_reason": p,
                    "content": [{"type": "text", "text": p}],
                    "usage": {"input_tokens": 1, p: p},
                }
            )
        )
    return ids
