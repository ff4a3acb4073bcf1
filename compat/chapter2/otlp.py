"""Read chapter2's OpenTelemetry spans (OTLP-JSON, as the Collector's file exporter writes them).

chapter2 has no trace files of its own: with telemetry on, its `@trace` decorator emits spans that a
collector can write as one `ExportTraceServiceRequest` JSON object per line. This module turns those
lines into plain data the viewer can list, search and show next to ChapterX traces:

- `read_spans` / `parse_request`: OTLP-JSON (hex or base64 ids, int64 as strings) -> `Span` objects;
- `summarize_trace`: one OTLP trace -> the digest the golden `*.summary.json` files describe;
- `group_replies`: OTLP traces joined through span links into one group per reply (an async generator's
  iterations can land in separate OTLP traces, linked to their creation span);
- `reply_entry` / `reply_detail`: one reply -> a list entry (the `/api/traces` slim shape plus
  `framework: "chapter2"`) and a detail document (ActivationTrace-like plus a `chapter2` section with
  prompt, continuation and the span tree).

Everything here is pure (no I/O) except `read_file` / `iter_files`, which only read.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Name of the span that wraps the whole handling of one Discord message.
ROOT_DISCORD = "DiscordInterface.handle_exceptions"
#: Span names that, alone in a trace, carry nothing about a reply.
NOISE_ROOTS = frozenset({"DiscordInterface.get_config", "DiscordInterface.start"})
#: Discord ids `handle_exceptions` records as int attributes (in the order summaries list them).
DISCORD_ID_KEYS = ("message.id", "channel.id", "thread.id", "guild.id")

_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")
_HISTORY_ID_RE = re.compile(r"\bid='(\d+)'")
_PREVIEW_CHARS = 100


# --------------------------------------------------------------------------------------------- model


@dataclass
class Span:
    """One span with OTLP's JSON wrappers removed (attribute values are plain Python values)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    status_code: int = 0
    status_message: str = ""
    dropped_attributes_count: int = 0
    service_name: str = ""
    scope: str = ""

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6

    @property
    def is_error(self) -> bool:
        return self.status_code == 2


# ------------------------------------------------------------------------------------------- parsing


def normalize_id(value: Any) -> str:
    """Hex (OTLP/JSON) or base64 (protobuf `MessageToDict`) id -> lower-case hex; '' when empty."""
    if not value or not isinstance(value, str):
        return ""
    if _HEX_RE.match(value) and len(value) in (16, 32):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value.lower() if _HEX_RE.match(value) else ""
    return raw.hex() if len(raw) in (8, 16) else ""


def any_value(v: Any) -> Any:
    """Unwrap an OTLP `AnyValue` ({"stringValue": ...}, {"intValue": "12"}, ...)."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return v["intValue"]
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "doubleValue" in v:
        try:
            return float(v["doubleValue"])
        except (TypeError, ValueError):
            return v["doubleValue"]
    if "arrayValue" in v:
        return [any_value(x) for x in (v["arrayValue"] or {}).get("values", []) or []]
    if "kvlistValue" in v:
        return attributes_of((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attributes_of(items: Any) -> dict[str, Any]:
    """OTLP `[{"key", "value"}]` list -> dict (later duplicates win, as in the SDK)."""
    out: dict[str, Any] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = any_value(item.get("value"))
    return out


def _int(v: Any, default: int = 0) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _enum(v: Any, names: dict[str, int]) -> int:
    if isinstance(v, str) and v in names:
        return names[v]
    return _int(v)


def parse_request(doc: Any) -> list[Span]:
    """One `ExportTraceServiceRequest` (dict) -> spans; malformed parts are skipped, never raised."""
    spans: list[Span] = []
    if not isinstance(doc, dict):
        return spans
    for rs in _list(doc.get("resourceSpans")):
        if not isinstance(rs, dict):
            continue
        res = rs.get("resource")
        resource = attributes_of(res.get("attributes") if isinstance(res, dict) else None)
        service = str(resource.get("service.name") or "")
        for ss in _list(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans")):
            if not isinstance(ss, dict):
                continue
            scope = ss.get("scope") or ss.get("instrumentationLibrary") or {}
            scope_name = str(scope.get("name") or "") if isinstance(scope, dict) else ""
            for s in _list(ss.get("spans")):
                span = _parse_span(s, service, scope_name)
                if span is not None:
                    spans.append(span)
    return spans


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _parse_span(s: Any, service: str, scope: str) -> Span | None:
    if not isinstance(s, dict):
        return None
    trace_id = normalize_id(s.get("traceId"))
    span_id = normalize_id(s.get("spanId"))
    if not trace_id or not span_id:
        return None
    status = s.get("status") or {}
    events = []
    for e in _list(s.get("events")):
        if isinstance(e, dict):
            events.append(
                {
                    "name": str(e.get("name") or ""),
                    "timeUnixNano": _int(e.get("timeUnixNano")),
                    "attributes": attributes_of(e.get("attributes")),
                }
            )
    links = []
    for link in _list(s.get("links")):
        if isinstance(link, dict):
            lt, ls = normalize_id(link.get("traceId")), normalize_id(link.get("spanId"))
            if lt and ls:
                links.append((lt, ls))
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=normalize_id(s.get("parentSpanId")),
        name=str(s.get("name") or ""),
        kind=_enum(s.get("kind"), _KIND_NAMES),
        start_ns=_int(s.get("startTimeUnixNano")),
        end_ns=_int(s.get("endTimeUnixNano")),
        attributes=attributes_of(s.get("attributes")),
        events=events,
        links=links,
        status_code=_enum(status.get("code"), _STATUS_NAMES) if isinstance(status, dict) else 0,
        status_message=str(status.get("message") or "") if isinstance(status, dict) else "",
        dropped_attributes_count=_int(s.get("droppedAttributesCount")),
        service_name=service,
        scope=scope,
    )


def iter_lines(text_lines: Iterable[str]) -> Iterator[Span]:
    """Spans from file-exporter lines (one JSON request per line); bad or partial lines are skipped."""
    for line in text_lines:
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        yield from parse_request(doc)


def read_file(path: Path) -> list[Span]:
    """All spans in one OTLP-JSON file (JSON lines, or a single pretty-printed request)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    spans = list(iter_lines(text.splitlines()))
    if not spans and text.strip().startswith("{"):
        try:
            spans = parse_request(json.loads(text))
        except ValueError:
            spans = []
    return spans


def iter_files(folder: Path) -> Iterator[Path]:
    """OTLP-JSON files in a chapter2 logs folder (`*.json`/`*.jsonl`, sorted, not recursive)."""
    if not folder.is_dir():
        return
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in (".json", ".jsonl") and not p.name.endswith(".summary.json"):
            yield p


def looks_like_otlp_file(path: Path) -> bool:
    """Cheap sniff: does the file start with an OTLP export request?"""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(200)
    except OSError:
        return False
    return '"resourceSpans"' in head


# ----------------------------------------------------------------------------------------- per trace


def group_by_trace(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans by OTLP trace id, each list in start order (dict in order of first start)."""
    by: dict[str, list[Span]] = {}
    for s in spans:
        by.setdefault(s.trace_id, []).append(s)
    for lst in by.values():
        lst.sort(key=lambda s: (s.start_ns, s.end_ns))
    return dict(sorted(by.items(), key=lambda kv: kv[1][0].start_ns))


def root_of(spans: list[Span]) -> Span | None:
    """The trace's root: a span whose parent is absent from the trace (earliest first)."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]
    if not roots:
        return spans[0] if spans else None
    discord = [s for s in roots if s.name == ROOT_DISCORD]
    return discord[0] if discord else min(roots, key=lambda s: s.start_ns)


def parse_sent(value: Any) -> str | None:
    """Text of a `send_message` event: its `value` is the repr of the call's argument tuple."""
    if not isinstance(value, str):
        return None
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value
    if isinstance(parsed, tuple):
        return str(parsed[0]) if parsed else ""
    return str(parsed)


def llm_calls(spans: Iterable[Span]) -> list[dict[str, Any]]:
    """`prompt`/`continuation` of each `get_replies` iteration that carries a prompt (start order)."""
    out = []
    for s in spans:
        if s.name == "get_replies" and "prompt" in s.attributes:
            cont = s.attributes.get("continuation")
            out.append({"prompt": s.attributes["prompt"], "continuation": cont})
    return out


def error_of(spans: list[Span], root: Span | None) -> str | None:
    """The error status message: the root's, else the first failing span's."""
    if root is not None and root.is_error:
        return root.status_message or _exception_text(root) or "error"
    for s in spans:
        if s.is_error:
            return s.status_message or _exception_text(s) or "error"
    return None


def _exception_text(span: Span) -> str:
    for e in span.events:
        if e["name"] == "exception":
            a = e["attributes"]
            typ, msg = a.get("exception.type"), a.get("exception.message")
            if typ or msg:
                return f"{typ}: {msg}" if typ and msg else str(typ or msg)
    return ""


def summarize_trace(spans: list[Span]) -> dict[str, Any]:
    """Digest of one OTLP trace, the shape of the golden `otlp/*.summary.json` entries."""
    root = root_of(spans)
    out: dict[str, Any] = {
        "traceId": spans[0].trace_id if spans else "",
        "service.name": (root or spans[0]).service_name if spans else "",
        "root": root.name if root else "",
        "span_count": len(spans),
        "span_names": sorted({s.name for s in spans}),
    }
    if root is not None and root.name == ROOT_DISCORD:
        for key in DISCORD_ID_KEYS:
            if key in root.attributes and root.attributes[key] is not None:
                out[key] = str(root.attributes[key])
        sent = [parse_sent(e["attributes"].get("value")) for e in root.events if e["name"] == "send_message"]
        if sent:
            out["sent_messages"] = [s for s in sent if s is not None]
    calls = llm_calls(spans)
    if calls:
        out["llm_calls"] = calls
    err = error_of(spans, root)
    if err:
        out["error"] = err
    return out


def _sent_texts(root: Span | None) -> list[str]:
    """The texts the bot sent, from the `send_message` events of a Discord root span (none otherwise)."""
    if root is None or root.name != ROOT_DISCORD:
        return []
    texts = (parse_sent(e["attributes"].get("value")) for e in root.events if e["name"] == "send_message")
    return [t for t in texts if t is not None]


def summarize_spans(spans: Iterable[Span]) -> list[dict[str, Any]]:
    """`summarize_trace` for every OTLP trace, ordered by start."""
    return [summarize_trace(lst) for lst in group_by_trace(spans).values()]


# ------------------------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """Spans of one reply: one or more OTLP traces joined by links; `trace_id` is the main one."""

    trace_id: str
    spans: list[Span]
    traces: list[str]

    @property
    def root(self) -> Span | None:
        main = [s for s in self.spans if s.trace_id == self.trace_id]
        return root_of(main)


def group_replies(spans: Iterable[Span]) -> list[Reply]:
    """Join OTLP traces linked to each other (generator iterations -> creation span) into replies.

    A Discord reply is normally one trace rooted at `handle_exceptions`; a direct `generate_response`
    call (rehearsal, other interfaces) is spread over a creation trace plus one trace per iteration.
    Traces that are only noise (a lone `get_config`, `start`) are dropped.
    """
    grouper = ReplyGrouper()
    grouper.add(spans)
    return grouper.replies()


class ReplyGrouper:
    """`group_replies`, incrementally: `add(spans)` regroups only the traces the new spans touch.

    Traces are indexed by id and links kept as an undirected adjacency, so one ingest costs time in
    proportion to the traces it touches (plus their linked components), never to the history.
    A link joins two traces unless either is a Discord handling trace (complete on its own).
    """

    def __init__(self) -> None:
        self.traces: dict[str, list[Span]] = {}
        self._seq: dict[str, int] = {}  # first-seen order, the tie-break of the start order
        self._span_home: dict[str, str] = {}
        self._edges: dict[str, set[str]] = {}
        self._roots: dict[str, Span | None] = {}
        self._comp: dict[str, str] = {}  # trace id -> id of its component (its reply id, or a dropped one)
        self._members: dict[str, list[str]] = {}
        self._replies: dict[str, Reply] = {}
        #: traces visited by the last `add` (what an ingest cost; tests check it stays local)
        self.last_work = 0

    def replies(self) -> list[Reply]:
        return sorted(self._replies.values(), key=lambda r: r.spans[0].start_ns)

    def reply_of(self, trace_id: str) -> Reply | None:
        comp = self._comp.get(trace_id)
        return self._replies.get(comp) if comp is not None else None

    def _discord(self, tid: str) -> bool:
        root = self._roots.get(tid)
        return root is not None and root.name == ROOT_DISCORD

    def add(self, spans: Iterable[Span]) -> tuple[list[Reply], list[str]]:
        """Add spans; returns (replies new or changed, reply ids that no longer exist)."""
        touched: set[str] = set()
        new_links: list[tuple[str, list[tuple[str, str]]]] = []
        for s in spans:
            lst = self.traces.get(s.trace_id)
            if lst is None:
                lst = self.traces[s.trace_id] = []
                self._seq[s.trace_id] = len(self._seq)
            lst.append(s)
            self._span_home.setdefault(s.span_id, s.trace_id)
            touched.add(s.trace_id)
            if s.links:
                new_links.append((s.trace_id, s.links))
        for tid, links in new_links:
            for lt, ls in links:
                home = self._span_home.get(ls, lt)
                if home != tid:
                    self._edges.setdefault(tid, set()).add(home)
                    self._edges.setdefault(home, set()).add(tid)
        for tid in touched:
            lst = self.traces[tid]
            lst.sort(key=lambda x: (x.start_ns, x.end_ns))
            self._roots[tid] = root_of(lst)
        # The region to regroup: touched traces, everything linked to them, and every old component
        # any of those belonged to (a component may split when a trace turns out to be a Discord one).
        region: set[str] = set()
        old_comps: set[str] = set()
        stack = list(touched)
        while stack:
            tid = stack.pop()
            if tid in region or tid not in self.traces:
                continue
            region.add(tid)
            comp = self._comp.get(tid)
            if comp is not None and comp not in old_comps:
                old_comps.add(comp)
                stack.extend(self._members.get(comp, ()))
            if not self._discord(tid):
                stack.extend(o for o in self._edges.get(tid, ()) if o in self.traces and not self._discord(o))
        self.last_work = len(region)
        old_replies = {c: self._replies.pop(c) for c in old_comps if c in self._replies}
        for c in old_comps:
            self._members.pop(c, None)
        changed: list[Reply] = []
        seen: set[str] = set()
        for start in sorted(region, key=lambda t: self._seq[t]):
            if start in seen:
                continue
            tids: list[str] = []
            stack = [start]
            while stack:
                tid = stack.pop()
                if tid in seen:
                    continue
                seen.add(tid)
                tids.append(tid)
                if not self._discord(tid):
                    stack.extend(o for o in self._edges.get(tid, ())
                                 if o in region and o not in seen and not self._discord(o))
            tids.sort(key=lambda t: (self.traces[t][0].start_ns, self._seq[t]))
            main = next((t for t in tids if self._discord(t)), tids[0])
            for t in tids:
                self._comp[t] = main
            self._members[main] = tids
            all_spans = sorted((x for t in tids for x in self.traces[t]), key=lambda x: (x.start_ns, x.end_ns))
            reply = Reply(trace_id=main, spans=all_spans, traces=tids)
            if _is_noise(reply):
                continue
            self._replies[main] = reply
            changed.append(reply)
        removed = sorted(c for c in old_replies if c not in self._replies)
        return changed, removed


def _is_noise(reply: Reply) -> bool:
    names = {s.name for s in reply.spans}
    return names <= NOISE_ROOTS


# ------------------------------------------------------------------------------------ summary mapping


def em_name(service_name: str, spans: Iterable[Span] = ()) -> str:
    """The em: `service.name` without the `prod-`/`ENV-` daemon prefix, else `arg.em.name`."""
    name = service_name or ""
    if name and not name.startswith("unknown_service"):
        return name[5:] if name.startswith("prod-") else name
    for s in spans:
        for key in ("arg.em.sysname", "arg.em.name"):
            v = _repr_value(s.attributes.get(key))
            if isinstance(v, str) and v:
                return v
    return name or "chapter2"


def _repr_value(v: Any) -> Any:
    """chapter2 flattens argument leaves with `repr()`; turn `'bob'`/`0.95`/`None` back into values."""
    if not isinstance(v, str):
        return v
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return v


def iso_from_ns(ns: int) -> str:
    """Nanoseconds since the epoch -> ChapterX-style ISO timestamp (milliseconds, `Z`)."""
    dt = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _preview(text: str | None) -> str | None:
    if not text:
        return None
    return text[:_PREVIEW_CHARS]


def _first_attr(spans: Iterable[Span], prefix: str) -> dict[str, Any]:
    """The first span's flattened `prefix*` attributes (e.g. `arg.em.`), repr values decoded."""
    best: dict[str, Any] = {}
    for s in spans:
        found = {k[len(prefix) :]: _repr_value(v) for k, v in s.attributes.items() if k.startswith(prefix)}
        if len(found) > len(best):
            best = found
    return best


def _history(spans: Iterable[Span]) -> str | None:
    for s in spans:
        h = s.attributes.get("arg.history")
        if isinstance(h, str):
            return h
    return None


def _trigger_text(history: str | None) -> str | None:
    """The newest history message's content (chapter2 passes history newest first)."""
    if not history:
        return None
    m = re.search(r"content=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", history)
    if not m:
        return None
    v = _repr_value(m.group(1))
    return v if isinstance(v, str) else None


def reply_entry(reply: Reply) -> dict[str, Any]:
    """The list/search entry of one reply: upstream's slim `/api/traces` shape + chapter2 extras.

    Extra keys beyond the slim shape (`framework`, `cost`, `guildId`, `contextMessageIds`,
    `sentMessageIds`, `error`) are for the store's search table and filters.
    """
    root = reply.root
    spans = reply.spans
    attrs = root.attributes if root is not None and root.name == ROOT_DISCORD else {}
    channel = attrs.get("channel.id")
    thread = attrs.get("thread.id")
    calls = llm_calls(spans)
    sent = _sent_texts(root)
    error = error_of(spans, root)
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    response_text = (
        "\n".join(sent)
        if sent
        else next((c["continuation"] for c in reversed(calls) if c["continuation"]), None)
    )
    history = _history(spans)
    history_ids = _HISTORY_ID_RE.findall(history or "")
    trigger_id = str(attrs["message.id"]) if attrs.get("message.id") is not None else None
    em = em_name((root or spans[0]).service_name, spans)
    channel_id = str(thread) if thread is not None else (str(channel) if channel is not None else None)
    return {
        "traceId": reply.trace_id,
        "timestamp": iso_from_ns(start),
        "channelId": channel_id,
        "triggeringMessageId": trigger_id,
        "botName": em,
        "channelName": None,
        "activationReason": None,
        "triggerPreview": _preview(_trigger_text(history)),
        "responsePreview": _preview(response_text),
        "isThread": thread is not None,
        "parentChannelId": str(channel) if thread is not None and channel is not None else None,
        "success": error is None,
        "durationMs": round((end - start) / 1e6),
        "llmCallCount": len(calls),
        "toolExecutionCount": 0,
        "totalTokens": 0,
        "framework": "chapter2",
        "cost": None,
        "guildId": str(attrs["guild.id"]) if attrs.get("guild.id") is not None else None,
        "contextMessageIds": [i for i in history_ids if i != trigger_id],
        "sentMessageIds": [],
        "error": error,
    }


def span_tree(spans: list[Span]) -> list[dict[str, Any]]:
    """Nested span tree (children in start order); spans whose parent is missing become roots."""
    nodes: dict[str, dict[str, Any]] = {}
    base = min((s.start_ns for s in spans), default=0)
    for s in spans:
        nodes[s.span_id] = {
            "spanId": s.span_id,
            "traceId": s.trace_id,
            "name": s.name,
            "startOffsetMs": round((s.start_ns - base) / 1e6, 3),
            "durationMs": round(s.duration_ms, 3),
            "status": "error" if s.is_error else ("ok" if s.status_code == 1 else "unset"),
            "statusMessage": s.status_message or None,
            "attributes": {k: v for k, v in s.attributes.items()},
            "events": [{"name": e["name"], "attributes": e["attributes"]} for e in s.events],
            "links": [{"traceId": t, "spanId": i} for t, i in s.links],
            "droppedAttributesCount": s.dropped_attributes_count,
            "children": [],
        }
    roots: list[dict[str, Any]] = []
    for s in spans:
        node = nodes[s.span_id]
        parent = nodes.get(s.parent_span_id) if s.parent_span_id else None
        if parent is not None and parent is not node:
            parent["children"].append(node)
        else:
            roots.append(node)
    return roots


def reply_detail(reply: Reply) -> dict[str, Any]:
    """Detail document of one reply, ActivationTrace-like so the viewer's detail view can show it.

    Fields chapter2 does not record (token usage, stop reason, activation reason, logs) are absent or
    null; the `chapter2` section holds what only chapter2 has (prompt, continuation, span tree).
    """
    entry = reply_entry(reply)
    spans = reply.spans
    em_cfg = _first_attr(spans, "arg.em.")
    calls = []
    replies_spans = [s for s in spans if s.name == "get_replies" and "prompt" in s.attributes]
    for i, s in enumerate(replies_spans):
        creation = _linked_creation(s, spans)
        stops = [
            v
            for k, v in sorted((creation.attributes if creation else {}).items())
            if k.startswith("arg.stop_sequences.")
        ]
        calls.append(
            {
                "callId": f"{reply.trace_id}-llm-{i}",
                "depth": i,
                "timestamp": iso_from_ns(s.start_ns),
                "model": em_cfg.get("continuation_model"),
                "request": {
                    "temperature": em_cfg.get("temperature"),
                    "maxTokens": em_cfg.get("continuation_max_tokens"),
                    "stopSequences": [_repr_value(v) for v in stops],
                },
                "durationMs": round(s.duration_ms),
                "prompt": s.attributes.get("prompt"),
                "continuation": s.attributes.get("continuation"),
                "error": {"message": s.status_message or _exception_text(s)} if s.is_error else None,
            }
        )
    sent = entry["responsePreview"]
    root = reply.root
    sent_texts = _sent_texts(root)
    detail: dict[str, Any] = {
        "traceId": reply.trace_id,
        "timestamp": entry["timestamp"],
        "channelId": entry["channelId"],
        "guildId": entry["guildId"],
        "triggeringMessageId": entry["triggeringMessageId"],
        "botId": entry["botName"],
        "isThread": entry["isThread"],
        "parentChannelId": entry["parentChannelId"],
        "framework": "chapter2",
        "activation": {"reason": None, "triggerEvents": []},
        "llmCalls": calls,
        "toolExecutions": [],
        "config": em_cfg or None,
        "logs": [],
        "durationMs": entry["durationMs"],
        "outcome": {
            "success": entry["success"],
            "responseText": "\n".join(sent_texts) if sent_texts else (sent or ""),
            "sentMessageIds": [],
            "sentMessages": sent_texts,
            **({"error": {"phase": "chapter2", "message": entry["error"]}} if entry["error"] else {}),
        },
        "chapter2": {
            "serviceName": (root or spans[0]).service_name,
            "otlpTraceIds": reply.traces,
            "prompt": calls[-1]["prompt"] if calls else None,
            "continuation": calls[-1]["continuation"] if calls else None,
            "history": _history(spans),
            "spanCount": len(spans),
            "spans": span_tree(spans),
        },
    }
    return detail


def _linked_creation(span: Span, spans: list[Span]) -> Span | None:
    ids = {s.span_id: s for s in spans}
    for _t, sid in span.links:
        if sid in ids:
            return ids[sid]
    return None


def read_replies(paths: Iterable[Path]) -> list[Reply]:
    """All replies in the given OTLP-JSON files (spans of one reply may span files)."""
    spans: list[Span] = []
    for p in paths:
        spans.extend(read_file(p))
    return group_replies(spans)
