"""The trace collector bound to the current activation.

Code anywhere in the bot calls `current()` and records into the returned collector (or does nothing
when it is None). `start_activation(...)` binds a new collector in a contextvar, so concurrent
activations in one asyncio loop each see their own. Differences from upstream (ChapterX):

- one `llmCalls` entry per HTTP round trip, each with its own usage, stop reason, body refs and
  cost; tool executions link to the round trip that asked for them (upstream: one entry per
  `stream()` call and tool `llmCallId` often "unknown");
- errors are recorded with the phase the activation was really in (upstream: always `llm_call`);
- log capture is capped in count and bytes, serialises exceptions, survives circular data, and
  records the level threshold used;
- a `status` field (success, failed, deferred, skipped, aborted, no_outcome) next to `outcome`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chapterx.trace import otel_export
from chapterx.trace.cost import call_cost, trace_cost
from chapterx.trace.ids import iso_now, new_trace_id
from chapterx.trace.redact import exception_info, secrets_in
from chapterx.trace.writer import TraceWriter, get_writer

_current: contextvars.ContextVar[TraceCollector | None] = contextvars.ContextVar("chapterx_trace", default=None)

MAX_LOG_ENTRIES = 1000
MAX_LOG_BYTES = 512 * 1024
TOOL_OUTPUT_PREVIEW = 1000
_TRACE_ORDER = (
    "traceId", "timestamp", "channelId", "guildId", "triggeringMessageId", "isThread", "parentChannelId",
    "botId", "botUserId", "activation", "rawDiscordMessages", "contextBuild", "llmCalls", "toolExecutions",
    "outcome", "logs", "durationMs", "config",
)
CHECKPOINT_INTERVAL = 1.0
PHASES = ("activation", "context_build", "llm_call", "tool_execution", "discord_send")


def current() -> TraceCollector | None:
    """The collector of the activation running in this context, or None."""
    return _current.get()


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def normalize_usage(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """Anthropic / OpenAI / Gemini / camelCase usage → upstream's `tokenUsage`."""
    u = dict(usage or {})
    out = {
        "inputTokens": int(_first(u, "inputTokens", "input_tokens", "prompt_tokens", "promptTokenCount") or 0),
        "outputTokens": int(_first(u, "outputTokens", "output_tokens", "completion_tokens",
                                   "candidatesTokenCount") or 0),
    }
    cw = _first(u, "cacheCreationTokens", "cache_creation_input_tokens")
    cr = _first(u, "cacheReadTokens", "cache_read_input_tokens", "cachedContentTokenCount")
    if cr is None and isinstance(u.get("prompt_tokens_details"), Mapping):
        cr = u["prompt_tokens_details"].get("cached_tokens")
    if cw is not None:
        out["cacheCreationTokens"] = int(cw)
    if cr is not None:
        out["cacheReadTokens"] = int(cr)
    return out


def _text_len(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(b.get("text") or "") for b in content if isinstance(b, Mapping) and b.get("type") == "text")
    return 0


def summarize_request(body: Mapping[str, Any] | None) -> dict[str, Any]:
    """Upstream's request summary, from an Anthropic, OpenAI or Gemini request body."""
    b = dict(body or {})
    messages = _first(b, "messages", "contents") or []
    system = b.get("system")
    if system is None and isinstance(b.get("systemInstruction"), Mapping):
        system = b["systemInstruction"].get("parts")
    if system is None and isinstance(messages, list):
        system = next((m.get("content") for m in messages if isinstance(m, Mapping) and m.get("role") == "system"), "")
    tools = b.get("tools") or []
    out: dict[str, Any] = {
        "messageCount": len(messages) if isinstance(messages, list) else 0,
        "systemPromptLength": _text_len(system) if not isinstance(system, list)
        else sum(len(p.get("text") or "") for p in system if isinstance(p, Mapping)),
        "hasTools": bool(tools),
        "toolCount": len(tools) if isinstance(tools, list) else 0,
    }
    raw_gen = b.get("generationConfig")
    gen: Mapping[str, Any] = raw_gen if isinstance(raw_gen, Mapping) else {}
    temp = _first(b, "temperature") if "temperature" in b else gen.get("temperature")
    if temp is not None:
        out["temperature"] = temp
    max_tokens = _first(b, "max_tokens", "max_completion_tokens", "max_output_tokens") or gen.get("maxOutputTokens")
    if max_tokens is not None:
        out["maxTokens"] = max_tokens
    stops = _first(b, "stop_sequences", "stop") or gen.get("stopSequences")
    if stops is not None:
        out["stopSequences"] = [stops] if isinstance(stops, str) else list(stops)
    return out


def summarize_response(body: Mapping[str, Any] | None, stop_reason: str | None) -> dict[str, Any]:
    """Upstream's response summary (content blocks, text length, tool uses) for any vendor shape."""
    b = dict(body or {})
    blocks: list[Any] = []
    text_len = tools = 0
    if isinstance(b.get("content"), list):  # Anthropic
        blocks = b["content"]
        for blk in blocks:
            if isinstance(blk, Mapping):
                if blk.get("type") == "text":
                    text_len += len(blk.get("text") or "")
                elif blk.get("type") == "tool_use":
                    tools += 1
    elif isinstance(b.get("choices"), list) and b["choices"]:  # OpenAI
        msg = b["choices"][0].get("message") or {}
        text_len = len(msg.get("content") or "") if isinstance(msg.get("content"), str) else 0
        tools = len(msg.get("tool_calls") or [])
        blocks = [1] * ((1 if text_len else 0) + tools)
    elif isinstance(b.get("candidates"), list) and b["candidates"]:  # Gemini
        parts = ((b["candidates"][0] or {}).get("content") or {}).get("parts") or []
        blocks = parts
        text_len = sum(len(p.get("text") or "") for p in parts if isinstance(p, Mapping))
        tools = sum(1 for p in parts if isinstance(p, Mapping) and ("functionCall" in p or "function_call" in p))
    reason = stop_reason or _first(b, "stop_reason", "stopReason") or "end_turn"
    return {"stopReason": reason, "contentBlocks": len(blocks), "textLength": text_len, "toolUseCount": tools}


def _error_dict(error: Any) -> dict[str, Any]:
    if isinstance(error, BaseException):
        d: dict[str, Any] = {"message": f"{type(error).__name__}: {error}"}
        code = getattr(error, "status_code", None) or getattr(error, "code", None)
        if code is not None:
            d["code"] = str(code)
    elif isinstance(error, Mapping):
        d = dict(error)
        d.setdefault("message", "error")
    else:
        d = {"message": str(error)}
    d.setdefault("retryCount", 0)
    return d


class TraceCollector:
    """Records one activation; finished traces go to a `TraceWriter`."""

    def __init__(self, channel_id: str, triggering_message_id: str | None, bot_id: str, *,
                 channel_name: str | None = None, guild_id: str | None = None,
                 writer: TraceWriter | None = None, trace_id: str | None = None,
                 log_level: int = logging.DEBUG, max_log_entries: int = MAX_LOG_ENTRIES,
                 max_log_bytes: int = MAX_LOG_BYTES) -> None:
        self.writer = writer or get_writer()
        self._t0 = time.monotonic()
        self.phase = "activation"
        self.max_log_entries = max_log_entries
        self.max_log_bytes = max_log_bytes
        self._log_bytes = 0
        self._finished = False
        self._last_checkpoint = time.monotonic()
        self.trace: dict[str, Any] = {
            "traceId": trace_id or new_trace_id(),
            "timestamp": iso_now(),
            "channelId": str(channel_id),
        }
        if guild_id:
            self.trace["guildId"] = str(guild_id)
        self.trace["triggeringMessageId"] = None if triggering_message_id is None else str(triggering_message_id)
        self.trace["botId"] = bot_id
        if channel_name:
            self.trace["channelName"] = channel_name
        self.trace["activation"] = {"reason": "mention", "triggerEvents": []}
        self.trace["llmCalls"] = []
        self.trace["toolExecutions"] = []
        self.trace["logs"] = []
        self.trace["logCapture"] = {"level": logging.getLevelName(log_level).lower(),
                                    "maxEntries": max_log_entries, "maxBytes": max_log_bytes, "dropped": 0}

    @property
    def trace_id(self) -> str:
        return str(self.trace["traceId"])

    def _offset_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    def _checkpoint(self) -> None:
        """Refresh the in-progress marker so a crash keeps what was recorded so far; at most once a
        second, so short activations cost one marker write, not one per step."""
        if time.monotonic() - self._last_checkpoint >= CHECKPOINT_INTERVAL:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Rewrite the in-progress marker now (e.g. before a long tool call)."""
        if not self._finished:
            self._last_checkpoint = time.monotonic()
            self.writer.write_marker(self.trace, self.phase)

    # ------------------------------------------------------------------ setters
    def set_phase(self, phase: str) -> None:
        self.phase = phase

    @contextlib.contextmanager
    def in_phase(self, phase: str) -> Iterator[None]:
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous if self.phase == phase else self.phase

    def set_guild_id(self, guild_id: str) -> None:
        self.trace["guildId"] = str(guild_id)

    def set_bot_user_id(self, user_id: str) -> None:
        self.trace["botUserId"] = str(user_id)

    def set_thread_info(self, is_thread: bool, parent_channel_id: str | None = None,
                        channel_name: str | None = None) -> None:
        self.trace["isThread"] = bool(is_thread)
        if parent_channel_id:
            self.trace["parentChannelId"] = str(parent_channel_id)
        if channel_name:
            self.trace["channelName"] = channel_name

    def set_config(self, config: Mapping[str, Any]) -> None:
        """The resolved bot config; its secret values are redacted here and everywhere else."""
        self.writer.redactor.add_secrets(secrets_in(config))
        self.trace["config"] = self.writer.redactor.obj(dict(config))

    def record_activation(self, reason: str, trigger_events: Sequence[Mapping[str, Any]] = ()) -> None:
        events = []
        for ev in trigger_events:
            e = {k: v for k, v in dict(ev).items() if v is not None}
            if "contentPreview" in e:
                e["contentPreview"] = str(e["contentPreview"]).strip()[:100]
            events.append(e)
        self.trace["activation"] = {"reason": reason, "triggerEvents": events}
        self._checkpoint()

    def record_discord_messages(self, messages: Sequence[Any]) -> None:
        """The fetched history before any transformation (dicts in upstream's shape, or discord.py
        message objects)."""
        self.trace["rawDiscordMessages"] = [m if isinstance(m, Mapping) else _raw_message(m) for m in messages]

    def record_context(self, info: Mapping[str, Any] | None = None, **fields: Any) -> None:
        build = dict(self.trace.get("contextBuild") or {})
        build.update(dict(info or {}))
        build.update(fields)
        self.trace["contextBuild"] = build
        self._checkpoint()

    # ------------------------------------------------------------------ LLM round trips and tools
    def record_llm_call(self, request_body: Mapping[str, Any] | None, response_body: Mapping[str, Any] | None, *,
                        model: str | None, usage: Mapping[str, Any] | None, stop_reason: str | None,
                        duration_ms: float, error: Any = None,
                        membrane_request: Any = None, membrane_response: Any = None) -> int:
        """One HTTP round trip; writes its bodies and returns its number (0-based)."""
        n = len(self.trace["llmCalls"])
        started = datetime.now(UTC).timestamp() - duration_ms / 1000.0
        call: dict[str, Any] = {
            "callId": f"{self.trace_id}-llm-{n}",
            "depth": n,
            "startedAt": iso_now(datetime.fromtimestamp(started, UTC)),
            "durationMs": int(duration_ms),
            "model": model or (request_body or {}).get("model") or "unknown",
            "request": summarize_request(request_body),
        }
        if request_body is not None:
            ref = self.writer.write_body("request", self.trace_id, n, request_body)
            call["requestBodyRef"] = ref
            call["requestBodyRefs"] = [ref]
        if response_body is not None:
            ref = self.writer.write_body("response", self.trace_id, n, response_body)
            call["responseBodyRef"] = ref
            call["responseBodyRefs"] = [ref]
        if membrane_request is not None:
            call["membraneRequestRef"] = self.writer.write_body("membrane-request", self.trace_id, n,
                                                                membrane_request)
        if membrane_response is not None:
            call["membraneResponseRef"] = self.writer.write_body("membrane-response", self.trace_id, n,
                                                                 membrane_response)
        if error is not None:
            call["response"] = {"stopReason": stop_reason or "error", "contentBlocks": 0, "textLength": 0,
                                "toolUseCount": 0}
        else:
            call["response"] = summarize_response(response_body, stop_reason)
        call["tokenUsage"] = normalize_usage(usage if usage is not None else (response_body or {}).get("usage"))
        if error is not None:
            call["error"] = _error_dict(error)
        call["cost"] = call_cost(call["model"], call["tokenUsage"])
        self.trace["llmCalls"].append(call)
        self._checkpoint()
        return n

    def record_tool(self, tool_call_id: str, tool_name: str, input: Mapping[str, Any] | None, output: Any, *,
                    duration_ms: float, error: Any = None, sent_to_discord: bool = False,
                    image_count: int | None = None, llm_call_id: str | None = None) -> None:
        """A tool execution, linked to the round trip that requested it (the latest one)."""
        text = output if isinstance(output, str) else json.dumps(output, default=str, ensure_ascii=False)
        if error is not None:
            text = f"[ERROR] {error}"
        calls = self.trace["llmCalls"]
        entry: dict[str, Any] = {
            "llmCallId": llm_call_id or (calls[-1]["callId"] if calls else "unknown"),
            "toolCallId": tool_call_id,
            "toolName": tool_name,
            "input": dict(input or {}),
            "output": text[:TOOL_OUTPUT_PREVIEW] + ("..." if len(text) > TOOL_OUTPUT_PREVIEW else ""),
            "outputTruncated": len(text) > TOOL_OUTPUT_PREVIEW,
            "fullOutputLength": len(text),
            "durationMs": int(duration_ms),
            "sentToDiscord": bool(sent_to_discord),
        }
        if image_count is not None:
            entry["imageCount"] = image_count
        if error is not None:
            entry["error"] = str(error)
        self.trace["toolExecutions"].append(entry)

    # ------------------------------------------------------------------ outcome
    def set_outcome(self, success: bool = True, response_text: str = "", sent_message_ids: Sequence[str] = (),
                    *, state_updates: Mapping[str, Any] | None = None, hit_max_tool_depth: bool = False,
                    status: str | None = None) -> None:
        self.trace["outcome"] = {
            "success": bool(success),
            "responseText": response_text,
            "responseLength": len(response_text),
            "sentMessageIds": [str(s) for s in sent_message_ids],
            "messagesSent": len(sent_message_ids),
            "maxToolDepth": len(self.trace["llmCalls"]),
            "hitMaxToolDepth": hit_max_tool_depth,
            "stateUpdates": dict(state_updates or {"cacheMarkerUpdated": False, "messageCountReset": False}),
        }
        self.trace["status"] = status or ("success" if success else "failed")

    def set_status(self, status: str) -> None:
        """deferred / skipped activations end without an outcome but with a reason."""
        self.trace["status"] = status

    def set_error(self, phase: str | None, exc: BaseException | str) -> None:
        """Mark the activation failed in `phase` (default: the phase it was in)."""
        info = exception_info(exc) if isinstance(exc, BaseException) else {"type": "Error", "message": str(exc)}
        previous = self.trace.get("outcome") or {}
        sent = list(previous.get("sentMessageIds") or [])
        error = {"message": info["message"], "phase": phase or self.phase, "type": info["type"]}
        if info.get("stack"):
            error["stack"] = info["stack"]
        self.trace["outcome"] = {
            "success": False, "responseText": previous.get("responseText", ""),
            "responseLength": len(previous.get("responseText", "")), "sentMessageIds": sent,
            "messagesSent": len(sent), "maxToolDepth": len(self.trace["llmCalls"]), "hitMaxToolDepth": False,
            "error": error,
            "stateUpdates": previous.get("stateUpdates") or {"cacheMarkerUpdated": False, "messageCountReset": False},
        }
        self.trace["status"] = "failed"

    # ------------------------------------------------------------------ logs
    def log(self, level: str, message: str, data: Any = None) -> None:
        cap = self.trace["logCapture"]
        if len(self.trace["logs"]) >= self.max_log_entries:
            cap["dropped"] += 1
            return
        entry: dict[str, Any] = {"offsetMs": self._offset_ms(), "level": level, "message": str(message)[:4000]}
        if data is not None:
            entry["data"] = self.writer.redactor.obj(data)
        size = len(json.dumps(entry, default=str))
        if self._log_bytes + size > self.max_log_bytes:
            cap["dropped"] += 1
            return
        self._log_bytes += size
        self.trace["logs"].append(entry)

    # ------------------------------------------------------------------ finish
    def finalize(self) -> dict[str, Any]:
        self.trace["durationMs"] = self._offset_ms()
        if "status" not in self.trace:
            self.trace["status"] = "no_outcome"
        self.trace["cost"] = trace_cost(self.trace)
        self._finished = True
        # upstream's key order first, our extensions after
        ordered = {k: self.trace[k] for k in _TRACE_ORDER if k in self.trace}
        ordered.update({k: v for k, v in self.trace.items() if k not in ordered})
        self.trace = ordered
        return self.trace


def _raw_message(msg: Any) -> dict[str, Any]:
    """A discord.py Message in upstream's `rawDiscordMessages` shape."""
    author = getattr(msg, "author", None)
    created = getattr(msg, "created_at", None)
    out: dict[str, Any] = {
        "id": str(getattr(msg, "id", "")),
        "author": {"id": str(getattr(author, "id", "")), "username": str(getattr(author, "name", "")),
                   "displayName": str(getattr(author, "display_name", getattr(author, "name", ""))),
                   "bot": bool(getattr(author, "bot", False))},
        "content": str(getattr(msg, "content", "")),
        "timestamp": iso_now(created) if isinstance(created, datetime) else str(created or ""),
        "attachments": [
            {"url": str(getattr(a, "url", "")), "contentType": getattr(a, "content_type", None),
             "filename": getattr(a, "filename", None) or "unknown", "size": getattr(a, "size", 0) or 0}
            for a in getattr(msg, "attachments", []) or []
        ],
    }
    ref = getattr(msg, "reference", None)
    if ref is not None and getattr(ref, "message_id", None):
        out["replyTo"] = str(ref.message_id)
    return out


@contextlib.contextmanager
def start_activation(channel_id: str, triggering_message_id: str | None, bot_id: str, *,
                     channel_name: str | None = None, guild_id: str | None = None,
                     writer: TraceWriter | None = None, config: Mapping[str, Any] | None = None,
                     trace_id: str | None = None) -> Iterator[TraceCollector]:
    """Bind a collector for one activation; the trace is written when the block ends, whether it
    returns or raises (the exception is recorded with the phase it happened in, then re-raised)."""
    collector = TraceCollector(channel_id, triggering_message_id, bot_id, channel_name=channel_name,
                               guild_id=guild_id, writer=writer, trace_id=trace_id,
                               log_level=logging.getLogger().getEffectiveLevel())
    if config is not None:
        collector.set_config(config)
    collector.writer.write_marker(collector.trace, collector.phase)
    token = _current.set(collector)
    try:
        yield collector
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            collector.log("error", f"Activation failed: {exc}", {"error": exc})
            collector.set_error(None, exc)
        raise
    finally:
        _current.reset(token)
        collector.writer.write_trace(collector.finalize())
        otel_export.export_trace(collector.trace, collector.writer.redactor.text)


_LEVELS = ((logging.CRITICAL, "fatal"), (logging.ERROR, "error"), (logging.WARNING, "warn"),
           (logging.INFO, "info"), (logging.DEBUG, "debug"))
_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def level_name(levelno: int) -> str:
    for threshold, name in _LEVELS:
        if levelno >= threshold:
            return name
    return "trace"


class TraceLogHandler(logging.Handler):
    """Copies log records made during an activation into its trace (all loggers, child loggers
    included, since it sits on the root logger)."""

    def emit(self, record: logging.LogRecord) -> None:
        collector = _current.get()
        if collector is None or record.name.startswith("chapterx.trace"):
            return
        try:
            data: dict[str, Any] = {k: v for k, v in vars(record).items() if k not in _STD_ATTRS}
            if record.exc_info and record.exc_info[1] is not None:
                data["error"] = exception_info(record.exc_info[1])
            if record.name and record.name != "root":
                data.setdefault("logger", record.name)
            collector.log(level_name(record.levelno), record.getMessage(), data or None)
        except Exception:  # noqa: BLE001 - logging must never break the activation
            self.handleError(record)


_handler: TraceLogHandler | None = None


def install_log_handler(logger: logging.Logger | None = None) -> TraceLogHandler:
    """Attach the capture handler once (idempotent)."""
    global _handler
    target = logger or logging.getLogger()
    if _handler is None:
        _handler = TraceLogHandler(level=logging.NOTSET)
    if _handler not in target.handlers:
        target.addHandler(_handler)
    return _handler
