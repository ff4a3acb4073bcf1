"""Export finished ChapterX activations as OpenTelemetry spans over OTLP/HTTP, when configured.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and not
disabled by `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`). Everything else (headers,
timeout, compression, service name, resource attributes, batch sizes, queue size) comes from the
standard `OTEL_*` variables, read by the official SDK itself.

Why after the fact: the trace collector already records every phase with its timing, so the spans
are built from the finished trace dict (`plan_spans`, pure) instead of threading OTel contexts
through the runtime. The span tree is activation → context build → LLM call(s) → tool executions →
Discord sends. The OTel trace id is the ChapterX trace id (both are 32 hex), so one id finds the
activation in Jaeger/Tempo, in the viewer and in the trace files.

Never blocking, never failing an activation: spans go to the SDK's `BatchSpanProcessor` (bounded
queue, `OTEL_BSP_MAX_QUEUE_SIZE`, background thread; a full queue drops spans) and every call here
swallows and logs its own errors.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

#: Instrumentation scope of our spans; the viewer's receiver recognises ChapterX spans by it.
SCOPE_NAME = "chapterx"
ROOT_SPAN = "chapterx.activation"
CONTEXT_SPAN = "chapterx.context_build"
LLM_SPAN = "chapterx.llm_call"
TOOL_SPAN = "chapterx.tool_execution"
SEND_SPAN = "chapterx.discord_send"

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


# ------------------------------------------------------------------------------------ the span plan


@dataclass
class SpanPlan:
    """One span to emit: name, absolute times (ns since epoch), attributes, error text, children."""

    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: str | None = None
    children: list[SpanPlan] = field(default_factory=list)


def _ns(iso: Any) -> int | None:
    if not isinstance(iso, str) or not iso:
        return None
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000) * 1000


def _ms(value: Any) -> int:
    try:
        return max(0, int(float(value) * 1_000_000))
    except (TypeError, ValueError):
        return 0


def _attrs(**values: Any) -> dict[str, Any]:
    """OTel attribute values must be str/bool/int/float (or lists of one): drop None, stringify ids."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        name = key.replace("__", ".")
        if isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif isinstance(value, (list, tuple)):
            out[name] = [str(v) for v in value]
        else:
            out[name] = str(value)
    return out


def _error_text(err: Any) -> str | None:
    if err is None:
        return None
    if isinstance(err, Mapping):
        return str(err.get("message") or "error")
    return str(err)


def plan_spans(trace: Mapping[str, Any], redact: Callable[[str], str] | None = None) -> SpanPlan | None:
    """The span tree of one finished ChapterX trace (None when it has no usable start time).
    `redact` (the trace writer's redactor) is applied to every string that leaves the process."""
    root = _plan(trace)
    if root is not None and redact is not None:
        _redact(root, redact)
    return root


def _redact(plan: SpanPlan, redact: Callable[[str], str]) -> None:
    plan.attributes = {k: redact(v) if isinstance(v, str) else v for k, v in plan.attributes.items()}
    if plan.error is not None:
        plan.error = redact(plan.error)
    for child in plan.children:
        _redact(child, redact)


def _plan(trace: Mapping[str, Any]) -> SpanPlan | None:
    start = _ns(trace.get("timestamp"))
    if start is None or not trace.get("traceId"):
        return None
    end = start + _ms(trace.get("durationMs"))
    outcome = _mapping(trace.get("outcome"))
    activation = _mapping(trace.get("activation"))
    calls = [c for c in trace.get("llmCalls") or [] if isinstance(c, Mapping)]
    tools = [t for t in trace.get("toolExecutions") or [] if isinstance(t, Mapping)]
    usage_in = sum(int((c.get("tokenUsage") or {}).get("inputTokens") or 0) for c in calls)
    usage_out = sum(int((c.get("tokenUsage") or {}).get("outputTokens") or 0) for c in calls)
    status = str(trace.get("status") or ("success" if outcome.get("success") else "failed"))
    channel = str(trace.get("channelId") or "")
    error = outcome.get("error") if isinstance(outcome.get("error"), Mapping) else None
    root = SpanPlan(
        ROOT_SPAN, start, end,
        _attrs(
            chapterx__trace_id=str(trace["traceId"]), chapterx__bot=trace.get("botId"),
            chapterx__bot_user_id=trace.get("botUserId"),
            discord__channel__id=channel or None, discord__channel__name=trace.get("channelName"),
            discord__guild__id=trace.get("guildId"), discord__message__id=trace.get("triggeringMessageId"),
            discord__thread=trace.get("isThread"), discord__parent_channel__id=trace.get("parentChannelId"),
            chapterx__activation__reason=activation.get("reason"),
            chapterx__outcome=status, chapterx__success=bool(outcome.get("success")),
            chapterx__error__phase=(error or {}).get("phase"),
            chapterx__response_length=outcome.get("responseLength"),
            chapterx__cost_usd=trace.get("cost") if isinstance(trace.get("cost"), (int, float)) else None,
            gen_ai__usage__input_tokens=usage_in, gen_ai__usage__output_tokens=usage_out,
            chapterx__llm_call_count=len(calls), chapterx__tool_count=len(tools),
        ),
        error=_error_text(error) if status == "failed" or error else None,
    )
    first_call = min((s for s in (_ns(c.get("startedAt")) for c in calls) if s is not None), default=end)
    root.children.append(SpanPlan(
        CONTEXT_SPAN, start, max(start, min(first_call, end)),
        _attrs(**{k.replace(".", "__"): v for k, v in _context_attrs(trace).items()}),
    ))
    call_ends: dict[str, int] = {}
    cursor = start
    for c in calls:
        c_start = _ns(c.get("startedAt")) or cursor
        c_end = c_start + _ms(c.get("durationMs"))
        usage = _mapping(c.get("tokenUsage"))
        response = _mapping(c.get("response"))
        root.children.append(SpanPlan(
            LLM_SPAN, c_start, c_end,
            _attrs(
                chapterx__llm__call_id=c.get("callId"), chapterx__llm__depth=c.get("depth"),
                gen_ai__request__model=c.get("model"),
                gen_ai__usage__input_tokens=int(usage.get("inputTokens") or 0),
                gen_ai__usage__output_tokens=int(usage.get("outputTokens") or 0),
                gen_ai__usage__cache_creation_input_tokens=usage.get("cacheCreationTokens"),
                gen_ai__usage__cache_read_input_tokens=usage.get("cacheReadTokens"),
                gen_ai__response__finish_reasons=[response["stopReason"]] if response.get("stopReason") else None,
                chapterx__cost_usd=c.get("cost") if isinstance(c.get("cost"), (int, float)) else None,
            ),
            error=_error_text(c.get("error")),
        ))
        call_ends[str(c.get("callId"))] = c_end
        cursor = c_end
    tool_cursor: dict[str, int] = {}
    for t in tools:
        parent = str(t.get("llmCallId"))
        t_start = tool_cursor.get(parent, call_ends.get(parent, cursor))
        t_end = t_start + _ms(t.get("durationMs"))
        tool_cursor[parent] = t_end
        root.children.append(SpanPlan(
            TOOL_SPAN, t_start, t_end,
            _attrs(
                gen_ai__tool__name=t.get("toolName"), gen_ai__tool__call__id=t.get("toolCallId"),
                chapterx__llm__call_id=t.get("llmCallId"), chapterx__tool__sent_to_discord=t.get("sentToDiscord"),
                chapterx__tool__output_length=t.get("fullOutputLength"),
            ),
            error=_error_text(t.get("error")),
        ))
    send_at = max([cursor, *tool_cursor.values()])
    send_at = min(send_at, end)
    for mid in outcome.get("sentMessageIds") or []:
        root.children.append(SpanPlan(
            SEND_SPAN, send_at, end, _attrs(discord__message__id=str(mid), discord__channel__id=channel or None),
        ))
    return root


def _mapping(value: Any) -> Mapping[str, Any]:
    """A nested object of the trace, or an empty one (a trace file is outside input)."""
    return value if isinstance(value, Mapping) else {}


def _context_attrs(trace: Mapping[str, Any]) -> dict[str, Any]:
    build = _mapping(trace.get("contextBuild"))
    out: dict[str, Any] = {}
    messages = build.get("messages")
    if isinstance(messages, list):
        out["chapterx.context.messages"] = len(messages)
    for key in ("messagesConsidered", "messagesIncluded", "imagesIncluded", "estimatedTokens",
                "didTruncate", "cacheMarker"):
        value = build.get(key)
        if isinstance(value, (bool, int, float, str)):
            out[f"chapterx.context.{key}"] = value
    return out


# ------------------------------------------------------------------------------------------ exporter


def configured(env: Mapping[str, str] | None = None) -> bool:
    """True when the standard variables ask for trace export."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(k, "").strip() for k in _ENDPOINT_VARS)


_forced_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("chapterx_otel_tid", default=None)


class OtelExporter:
    """An SDK `TracerProvider` with a batch processor and the OTLP/HTTP exporter, emitting plans."""

    def __init__(self, span_exporter: Any = None, *, resource_attributes: Mapping[str, Any] | None = None,
                 schedule_delay_millis: float | None = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        class _ChapterxIds(RandomIdGenerator):
            """The OTel trace id is the activation's trace id when it is 32 hex (ours always are)."""

            def generate_trace_id(self) -> int:
                forced = _forced_trace_id.get()
                return forced if forced else super().generate_trace_id()

        detected = Resource.create(dict(resource_attributes or {}))
        attrs = dict(detected.attributes)
        if str(attrs.get("service.name", "")).startswith("unknown_service"):
            attrs["service.name"] = "chapterx"
        attrs.setdefault("host.name", socket.gethostname())
        self.resource = Resource(attrs)
        if span_exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_* vars
        self.provider = TracerProvider(resource=self.resource, id_generator=_ChapterxIds())
        kwargs: dict[str, Any] = {}
        if schedule_delay_millis is not None:
            kwargs["schedule_delay_millis"] = schedule_delay_millis
        self.processor = BatchSpanProcessor(span_exporter, **kwargs)
        self.provider.add_span_processor(self.processor)
        from chapterx import __version__

        self.tracer = self.provider.get_tracer(SCOPE_NAME, __version__)

    def export(self, trace: Mapping[str, Any], redact: Callable[[str], str] | None = None) -> bool:
        """Queue the spans of one finished trace; False when there was nothing to send."""
        plan = plan_spans(trace, redact)
        if plan is None:
            return False
        tid = str(trace.get("traceId") or "")
        forced = int(tid, 16) if len(tid) == 32 and all(c in "0123456789abcdefABCDEF" for c in tid) else None
        token = _forced_trace_id.set(forced or None)
        try:
            self._emit(plan, None)
        finally:
            _forced_trace_id.reset(token)
        return True

    def _emit(self, plan: SpanPlan, parent: Any) -> None:
        from opentelemetry import trace as otel_trace
        from opentelemetry.trace import Status, StatusCode

        ctx = otel_trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(plan.name, context=ctx, attributes=plan.attributes,
                                      start_time=plan.start_ns)
        # children end before their parent, so a receiver sees the root last (it may then convert)
        for child in plan.children:
            self._emit(child, span)
        if plan.error is not None:
            span.set_status(Status(StatusCode.ERROR, plan.error[:500]))
        span.end(end_time=max(plan.end_ns, plan.start_ns))

    def flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.provider.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self.provider.shutdown()


_lock = threading.Lock()
_exporter: OtelExporter | None = None
_decided = False


def get_exporter() -> OtelExporter | None:
    """The process-wide exporter, built on first use from the environment (None when off)."""
    global _exporter, _decided
    if _decided:
        return _exporter
    with _lock:
        if not _decided:
            _decided = True
            if configured():
                try:
                    _exporter = OtelExporter()
                    import atexit

                    atexit.register(_exporter.shutdown)  # flush what is queued when the bot stops
                    log.info("OpenTelemetry export on (OTLP/HTTP)")
                except Exception:
                    log.warning("OpenTelemetry export disabled: cannot set up the exporter", exc_info=True)
                    _exporter = None
    return _exporter


def set_exporter(exporter: OtelExporter | None) -> None:
    """Install (or remove, with None) the process-wide exporter; for tests and embedding."""
    global _exporter, _decided
    with _lock:
        _exporter, _decided = exporter, True


def reset() -> None:
    """Forget the decision so the next activation reads the environment again."""
    global _exporter, _decided
    with _lock:
        _exporter, _decided = None, False


def export_trace(trace: Mapping[str, Any], redact: Callable[[str], str] | None = None) -> None:
    """Hook for the trace collector: queue the activation's spans; never raises, never blocks."""
    try:
        exporter = get_exporter()
        if exporter is not None:
            exporter.export(trace, redact)
    except Exception:
        log.debug("OpenTelemetry export of a trace failed", exc_info=True)
