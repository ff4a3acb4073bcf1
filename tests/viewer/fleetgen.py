"""A small mixed fleet with known numbers: two ChapterX bots (trace files + index lines written by the
real `TraceWriter`) and one chapter2 em (OTLP-JSON spans as the collector's file exporter writes them).

All times are relative to `until` (epoch seconds, in the middle of an hour), which the tests pass to
`/api/fleet/*` so every bucket index is known in advance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chapterx.trace.ids import iso_now
from chapterx.trace.writer import TraceWriter

HOUR = 3600


@dataclass
class Fleet:
    until: float
    logs: Path
    chapter2: Path
    failures: list[str] = field(default_factory=list)  # trace ids, newest first
    #: (bot, framework) -> {hours_ago: [(success, duration_ms, in_tok, out_tok, cost)]}
    plan: dict[tuple[str, str], dict[int, list[tuple[bool, int, int, int, float]]]] = field(default_factory=dict)

    def total(self, bot: str) -> int:
        return sum(len(v) for (b, _fw), hours in self.plan.items() if b == bot for v in hours.values())


def _until(now: float) -> float:
    return (now // HOUR) * HOUR + HOUR / 2


def make_fleet(root: Path, now: float) -> Fleet:
    until = _until(now)
    fleet = Fleet(until=until, logs=root / "logs", chapter2=root / "ems-logs")
    fleet.plan = {
        ("aria", "chapterx"): {
            0: [(True, 800, 1000, 100, 0.01), (True, 1200, 1000, 100, 0.01)],
            1: [(True, 900, 2000, 200, 0.02), (False, 3000, 500, 0, 0.005)],
            5: [(True, 1000, 1000, 100, 0.01)],
            30: [(True, 1000, 4000, 400, 0.04)],  # yesterday: outside 24h, inside 7d
        },
        ("beacon", "chapterx"): {
            2: [(False, 400, 0, 0, 0.0), (True, 700, 300, 30, 0.003), (True, 500, 300, 30, 0.003)],
        },
        ("wren", "chapter2"): {
            3: [(True, 1500, 0, 0, 0.0), (False, 2500, 0, 0, 0.0)],
        },
    }
    writer = TraceWriter(logs_dir=fleet.logs, background=False)
    failures: list[tuple[float, str]] = []
    n = 0
    ch2_spans: list[dict[str, Any]] = []
    for (bot, fw), hours in fleet.plan.items():
        for ago, items in hours.items():
            for i, (ok, dur, tin, tout, cost) in enumerate(items):
                n += 1
                ts = until - ago * HOUR - 60 - i * 120
                tid = f"{n:08x}" + "f1ee7" + "0" * 19
                if fw == "chapterx":
                    writer.write_trace(_cx_trace(tid, bot, ts, ok, dur, tin, tout, cost))
                else:
                    ch2_spans.append(_ch2_span(tid, ts, ok, dur))
                if not ok:
                    failures.append((ts, tid))
    fleet.chapter2.mkdir(parents=True, exist_ok=True)
    doc = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "wren"}}]},
        "scopeSpans": [{"scope": {"name": "chapter2"}, "spans": ch2_spans}]}]}
    (fleet.chapter2 / "otlp-wren.jsonl").write_text(json.dumps(doc) + "\n", encoding="utf-8")
    fleet.failures = [tid for _ts, tid in sorted(failures, reverse=True)]
    return fleet


def _cx_trace(tid: str, bot: str, ts: float, ok: bool, dur: int, tin: int, tout: int, cost: float) -> dict[str, Any]:
    started = iso_now(datetime.fromtimestamp(ts, UTC))
    outcome: dict[str, Any] = {"success": ok, "responseText": "ok" if ok else "", "responseLength": 2 if ok else 0,
                               "sentMessageIds": ["730000000000000001"] if ok else [], "messagesSent": 1 if ok else 0,
                               "maxToolDepth": 1, "hitMaxToolDepth": False}
    if not ok:
        outcome["error"] = {"message": f"{bot}: upstream overloaded", "phase": "llm_call", "type": "APIError"}
    return {
        "traceId": tid, "timestamp": started, "channelId": "710000000000000042",
        "triggeringMessageId": "720000000000000001", "botId": bot,
        "activation": {"reason": "mention", "triggerEvents": []},
        "llmCalls": [{"callId": f"{tid}-llm-0", "depth": 0, "startedAt": started, "durationMs": dur,
                      "model": "claude-sonnet-4-5-20250929", "request": {}, "response": {},
                      "tokenUsage": {"inputTokens": tin, "outputTokens": tout}, "cost": cost}],
        "toolExecutions": [], "outcome": outcome, "logs": [], "durationMs": dur,
        "status": "success" if ok else "failed", "cost": cost,
    }


def _ch2_span(tid: str, ts: float, ok: bool, dur: int) -> dict[str, Any]:
    start = int(ts * 1e9)
    span: dict[str, Any] = {
        "traceId": tid.ljust(32, "0")[:32], "spanId": tid[:16], "name": "DiscordInterface.handle_exceptions",
        "kind": 1, "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + dur * 1_000_000),
        "attributes": [{"key": "channel.id", "value": {"intValue": "710000000000000099"}},
                       {"key": "message.id", "value": {"intValue": str(720000000000000100 + int(ts) % 1000)}}],
    }
    if not ok:
        span["status"] = {"code": 2, "message": "wren failed"}
    return span
