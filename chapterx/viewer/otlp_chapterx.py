"""ChapterX spans received over OTLP/HTTP become ChapterX traces in the viewer.

Bots on other machines export each activation as spans (`chapterx.trace.otel_export`, scope
`chapterx`). The viewer's `POST /v1/traces` hands every request here first: spans of the `chapterx`
scope are taken out and rebuilt into a ChapterX trace document (framework `chapterx`, `machine` from
the resource's `service.instance.id` or `host.name`), which the standard `TraceWriter` writes as a
trace file plus its `index.jsonl` line under the viewer's first logs folder. So received traces are
listed, searched, pruned and aggregated exactly like local ones, and survive a viewer restart. The
rest of the request (chapter2 spans, anything else) goes on to the existing OTLP path untouched.

A trace is converted when its root span (`chapterx.activation`) arrives; the exporter ends children
before the root, so children arrive first or in the same request. Children seen without their root
wait in a bounded buffer for a while; a trace id already known (a retry, or a bot writing to this
same logs folder) is not written twice.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chapterx.trace.ids import iso_now
from chapterx.trace.otel_export import CONTEXT_SPAN, LLM_SPAN, ROOT_SPAN, SCOPE_NAME, SEND_SPAN, TOOL_SPAN
from chapterx.trace.writer import TraceWriter
from chapterx_compat.chapter2 import otlp

log = logging.getLogger(__name__)

#: Ids that end up in file names: the same alphabet the trace reader accepts, nothing path-like.
_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MAX_PENDING_SPANS = 20_000
PENDING_TTL_S = 600.0
RECENT_IDS = 50_000


@dataclass(frozen=True)
class Received:
    """What one request carried for ChapterX: traces written, spans waiting for a root, spans refused."""

    written: list[str]
    pending: int
    rejected: int
    failed: int = 0  # traces that could not be written (the sender should retry)


def split_request(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ChapterX part, the rest) of one ExportTraceServiceRequest, each in the same shape."""
    mine: list[Any] = []
    rest: list[Any] = []
    for rs in doc.get("resourceSpans") or []:
        if not isinstance(rs, dict):
            continue
        scopes = rs.get("scopeSpans") or []
        ours = [ss for ss in scopes if isinstance(ss, dict) and _scope_name(ss) == SCOPE_NAME]
        others = [ss for ss in scopes if not (isinstance(ss, dict) and _scope_name(ss) == SCOPE_NAME)]
        if ours:
            mine.append({**rs, "scopeSpans": ours})
        if others or not scopes:
            rest.append({**rs, "scopeSpans": others} if scopes else rs)
    return {"resourceSpans": mine}, {**doc, "resourceSpans": rest}


def _scope_name(ss: dict[str, Any]) -> str:
    scope = ss.get("scope") or {}
    return str(scope.get("name") or "") if isinstance(scope, dict) else ""


def machine_of(resource_attrs: dict[str, Any]) -> str | None:
    for key in ("service.instance.id", "host.name"):
        value = resource_attrs.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return None


def spans_with_machine(doc: dict[str, Any]) -> list[tuple[otlp.Span, str | None]]:
    out: list[tuple[otlp.Span, str | None]] = []
    for rs in doc.get("resourceSpans") or []:
        res = rs.get("resource")
        machine = machine_of(otlp.attributes_of(res.get("attributes") if isinstance(res, dict) else None))
        for span in otlp.parse_request({"resourceSpans": [rs]}):
            out.append((span, machine))
    return out


def _iso(ns: int) -> str:
    return iso_now(datetime.fromtimestamp(ns / 1e9, UTC))


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def build_trace(root: otlp.Span, children: list[otlp.Span], machine: str | None) -> dict[str, Any] | None:
    """The ChapterX trace document of one activation's spans (None when its ids are unusable)."""
    a = root.attributes
    trace_id = str(a.get("chapterx.trace_id") or root.trace_id)
    channel = str(a.get("discord.channel.id") or "unknown")
    if not _ID_RE.match(trace_id) or not _ID_RE.match(channel):
        return None
    kids = sorted(children, key=lambda s: s.start_ns)
    calls: list[dict[str, Any]] = []
    for s in (k for k in kids if k.name == LLM_SPAN):
        sa = s.attributes
        usage = {"inputTokens": _int(sa.get("gen_ai.usage.input_tokens")),
                 "outputTokens": _int(sa.get("gen_ai.usage.output_tokens"))}
        for src, dst in (("gen_ai.usage.cache_creation_input_tokens", "cacheCreationTokens"),
                         ("gen_ai.usage.cache_read_input_tokens", "cacheReadTokens")):
            if sa.get(src) is not None:
                usage[dst] = _int(sa[src])
        reasons = sa.get("gen_ai.response.finish_reasons")
        stop = reasons[0] if isinstance(reasons, list) and reasons else ("error" if s.is_error else "end_turn")
        call: dict[str, Any] = {
            "callId": _str(sa.get("chapterx.llm.call_id")) or f"{trace_id}-llm-{len(calls)}",
            "depth": _int(sa.get("chapterx.llm.depth", len(calls))),
            "startedAt": _iso(s.start_ns),
            "durationMs": int(s.duration_ms),
            "model": _str(sa.get("gen_ai.request.model")) or "unknown",
            "request": {},
            "response": {"stopReason": str(stop), "contentBlocks": 0, "textLength": 0, "toolUseCount": 0},
            "tokenUsage": usage,
        }
        if s.is_error:
            call["error"] = {"message": s.status_message or "error", "retryCount": 0}
        if isinstance(sa.get("chapterx.cost_usd"), (int, float)):
            call["cost"] = float(sa["chapterx.cost_usd"])
        calls.append(call)
    tools: list[dict[str, Any]] = []
    for s in (k for k in kids if k.name == TOOL_SPAN):
        sa = s.attributes
        tool: dict[str, Any] = {
            "llmCallId": _str(sa.get("chapterx.llm.call_id")) or "unknown",
            "toolCallId": _str(sa.get("gen_ai.tool.call.id")) or "",
            "toolName": _str(sa.get("gen_ai.tool.name")) or "unknown",
            "input": {}, "output": "", "outputTruncated": False,
            "fullOutputLength": _int(sa.get("chapterx.tool.output_length")),
            "durationMs": int(s.duration_ms),
            "sentToDiscord": bool(sa.get("chapterx.tool.sent_to_discord")),
        }
        if s.is_error:
            tool["error"] = s.status_message or "error"
        tools.append(tool)
    sent = [str(k.attributes["discord.message.id"]) for k in kids
            if k.name == SEND_SPAN and k.attributes.get("discord.message.id") is not None]
    status = str(a.get("chapterx.outcome") or ("failed" if root.is_error else "success"))
    success = bool(a.get("chapterx.success", status == "success"))
    trace: dict[str, Any] = {
        "traceId": trace_id,
        "timestamp": _iso(root.start_ns),
        "channelId": channel,
    }
    if a.get("discord.guild.id") is not None:
        trace["guildId"] = str(a["discord.guild.id"])
    trace["triggeringMessageId"] = _str(a.get("discord.message.id"))
    if a.get("discord.thread") is not None:
        trace["isThread"] = bool(a["discord.thread"])
    if a.get("discord.parent_channel.id") is not None:
        trace["parentChannelId"] = str(a["discord.parent_channel.id"])
    trace["botId"] = str(a.get("chapterx.bot") or "unknown")
    if a.get("chapterx.bot_user_id") is not None:
        trace["botUserId"] = str(a["chapterx.bot_user_id"])
    if a.get("discord.channel.name"):
        trace["channelName"] = str(a["discord.channel.name"])
    trace["activation"] = {"reason": str(a.get("chapterx.activation.reason") or "mention"), "triggerEvents": []}
    ctx = next((k for k in kids if k.name == CONTEXT_SPAN), None)
    if ctx is not None:
        trace["contextBuild"] = {k.removeprefix("chapterx.context."): v for k, v in ctx.attributes.items()
                                 if k.startswith("chapterx.context.") and k != "chapterx.context.messages"}
    trace["llmCalls"] = calls
    trace["toolExecutions"] = tools
    outcome: dict[str, Any] = {
        "success": success, "responseText": "", "responseLength": _int(a.get("chapterx.response_length")),
        "sentMessageIds": sent, "messagesSent": len(sent), "maxToolDepth": len(calls),
        "hitMaxToolDepth": False,
        "stateUpdates": {"cacheMarkerUpdated": False, "messageCountReset": False},
    }
    if root.is_error or status == "failed":
        outcome["error"] = {"message": root.status_message or "error",
                            "phase": str(a.get("chapterx.error.phase") or "activation"), "type": "Error"}
    trace["outcome"] = outcome
    trace["logs"] = []
    trace["durationMs"] = int(root.duration_ms)
    trace["status"] = status
    if isinstance(a.get("chapterx.cost_usd"), (int, float)):
        trace["cost"] = float(a["chapterx.cost_usd"])
    trace["framework"] = "chapterx"
    trace["source"] = "otlp"
    if machine:
        trace["machine"] = machine
    return trace


class ChapterxReceiver:
    """Turns received ChapterX spans into trace files under one logs folder (thread-safe)."""

    def __init__(self, logs_dir: Path, exists: Callable[[str], bool] | None = None) -> None:
        self.writer = TraceWriter(logs_dir=logs_dir, background=False)
        self.exists = exists
        self._pending: OrderedDict[str, tuple[float, list[tuple[otlp.Span, str | None]]]] = OrderedDict()
        self._pending_count = 0
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def receive(self, doc: dict[str, Any]) -> tuple[dict[str, Any], Received]:
        """Take the ChapterX spans out of `doc`, write the traces they complete; return the rest."""
        mine, rest = split_request(doc)
        if not mine["resourceSpans"]:
            return rest, Received([], 0, 0)
        written: list[str] = []
        rejected = failed = 0
        with self._lock:
            self._expire()
            by_trace: dict[str, list[tuple[otlp.Span, str | None]]] = {}
            for span, machine in spans_with_machine(mine):
                by_trace.setdefault(span.trace_id, []).append((span, machine))
            for tid, items in by_trace.items():
                roots = [(s, m) for s, m in items if s.name == ROOT_SPAN and not s.parent_span_id]
                if not roots:
                    self._park(tid, items)
                    continue
                root, machine = roots[0]
                waiting = self._pending.pop(tid, (0.0, []))[1]
                self._pending_count -= len(waiting)
                children = [s for s, _m in waiting + items if s is not root and s.parent_span_id == root.span_id]
                try:
                    trace = build_trace(root, children, machine)
                except (ValueError, OverflowError, OSError):  # e.g. a timestamp no calendar holds
                    trace = None
                if trace is None:
                    rejected += 1
                    continue
                if self._known(trace["traceId"]):
                    continue
                errors = self.writer.errors
                self.writer.write_trace(copy.deepcopy(trace))
                if self.writer.errors != errors:  # logged by the writer (e.g. a read-only folder)
                    failed += 1
                    continue
                self._remember(trace["traceId"])
                written.append(trace["traceId"])
            pending = self._pending_count
        return rest, Received(written, pending, rejected, failed)

    def _park(self, tid: str, items: list[tuple[otlp.Span, str | None]]) -> None:
        stamp, spans = self._pending.pop(tid, (time.monotonic(), []))
        spans.extend(items)
        self._pending[tid] = (stamp, spans)
        self._pending_count += len(items)
        while self._pending_count > MAX_PENDING_SPANS and self._pending:
            _tid, (_t, dropped) = self._pending.popitem(last=False)
            self._pending_count -= len(dropped)

    def _expire(self) -> None:
        cut = time.monotonic() - PENDING_TTL_S
        while self._pending:
            tid, (stamp, spans) = next(iter(self._pending.items()))
            if stamp >= cut:
                break
            self._pending.popitem(last=False)
            self._pending_count -= len(spans)

    def _known(self, trace_id: str) -> bool:
        if trace_id in self._recent:
            return True
        try:
            return bool(self.exists and self.exists(trace_id))
        except Exception:  # noqa: BLE001 - a lookup failure must not lose the trace
            log.debug("trace lookup failed for %s", trace_id, exc_info=True)
            return False

    def _remember(self, trace_id: str) -> None:
        self._recent[trace_id] = None
        while len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
