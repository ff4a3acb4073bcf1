"""The activation trace model, field for field with upstream's `ActivationTrace`, and the index
line derived from it.

The trace itself stays a plain JSON-ready dict (it is written and read as JSON, and readers must
keep unknown fields from other writers); these TypedDicts document the shape for type checkers and
`schemas/trace.schema.json` is the checked contract. Fields marked "extension" are ours: upstream
readers ignore them.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

ActivationReason = Literal["mention", "reply", "random", "m_command", "reaction", "timer"]
ErrorPhase = Literal["activation", "context_build", "llm_call", "tool_execution", "discord_send"]
# Extension (upstream has only `success ?? false`).
TraceStatus = Literal["success", "failed", "no_outcome", "deferred", "skipped", "aborted", "running"]


class TriggerEvent(TypedDict, total=False):
    type: str  # "message" | "timer" | "reaction"
    messageId: str
    authorId: str
    authorName: str
    contentPreview: str


class Activation(TypedDict):
    reason: str
    triggerEvents: list[TriggerEvent]


class RawAuthor(TypedDict):
    id: str
    username: str
    displayName: str
    bot: bool


class RawAttachment(TypedDict, total=False):
    url: str
    contentType: str
    filename: str
    size: int


class RawDiscordMessage(TypedDict):
    id: str
    author: RawAuthor
    content: str
    timestamp: str
    attachments: list[RawAttachment]
    replyTo: NotRequired[str]


class ContextMessageInfo(TypedDict, total=False):
    position: int
    discordMessageId: str | None
    participant: str
    contentPreview: str
    contentLength: int
    tokenEstimate: int
    transformations: list[str]
    isTrigger: bool
    hasImages: bool
    imageCount: int
    hasCacheControl: bool
    discordTimestamp: str


class ContextBuildInfo(TypedDict, total=False):
    messagesConsidered: int
    messagesIncluded: int
    messages: list[ContextMessageInfo]
    imagesIncluded: int
    imageDetails: list[dict[str, Any]]
    toolCacheEntries: int
    toolCacheDetails: list[dict[str, Any]]
    didTruncate: bool
    truncateReason: str
    messagesRolledOff: int
    cacheMarker: str
    previousCacheMarker: str
    stopSequences: list[str]
    tokenEstimates: dict[str, int]
    configSnapshot: dict[str, Any]


class TokenUsage(TypedDict, total=False):
    inputTokens: int
    outputTokens: int
    cacheCreationTokens: int
    cacheReadTokens: int


class LLMCallInfo(TypedDict, total=False):
    callId: str
    depth: int
    startedAt: str
    durationMs: int
    model: str
    request: dict[str, Any]
    requestBodyRef: str
    requestBodyRefs: list[str]
    responseBodyRef: str
    responseBodyRefs: list[str]
    membraneRequestRef: str
    membraneResponseRef: str
    response: dict[str, Any]
    tokenUsage: TokenUsage
    error: dict[str, Any]
    cost: float | None  # extension: USD for this round trip, None when the model has no price


class ToolExecution(TypedDict, total=False):
    llmCallId: str
    toolCallId: str
    toolName: str
    input: dict[str, Any]
    output: str
    outputTruncated: bool
    fullOutputLength: int
    durationMs: int
    sentToDiscord: bool
    imageCount: int
    error: str


class Outcome(TypedDict, total=False):
    success: bool
    responseText: str
    responseLength: int
    sentMessageIds: list[str]
    messagesSent: int
    maxToolDepth: int
    hitMaxToolDepth: bool
    error: dict[str, Any]
    stateUpdates: dict[str, Any]


class LogEntry(TypedDict, total=False):
    offsetMs: int
    level: str
    message: str
    data: Any


class ActivationTrace(TypedDict, total=False):
    traceId: str
    timestamp: str
    channelId: str
    guildId: str
    triggeringMessageId: str
    isThread: bool
    parentChannelId: str
    botId: str
    botUserId: str
    activation: Activation
    rawDiscordMessages: list[RawDiscordMessage]
    contextBuild: ContextBuildInfo
    llmCalls: list[LLMCallInfo]
    toolExecutions: list[ToolExecution]
    outcome: Outcome
    logs: list[LogEntry]
    durationMs: int
    config: dict[str, Any]
    # extensions
    channelName: str
    status: str
    cost: float | None
    logsDropped: int
    framework: str


# The fields of a list entry, in upstream's order (`/api/traces`).
SLIM_FIELDS: tuple[str, ...] = (
    "traceId", "timestamp", "channelId", "triggeringMessageId", "botName", "channelName",
    "activationReason", "triggerPreview", "responsePreview", "isThread", "parentChannelId",
    "success", "durationMs", "llmCallCount", "toolExecutionCount", "totalTokens",
)


def trace_status(trace: dict[str, Any]) -> str:
    """success / failed / no_outcome (upstream: a trace without outcome counts as a failure)."""
    if trace.get("status"):
        return str(trace["status"])
    outcome = trace.get("outcome")
    if not isinstance(outcome, dict):
        return "no_outcome"
    return "success" if outcome.get("success") else "failed"


def index_entry(trace: dict[str, Any], filename: str) -> dict[str, Any]:
    """The index line upstream's writer appends for a trace, plus our extensions at the end
    (`status`, `model`, `guildId`, `cost`, `contextPositions` so search needs no trace file)."""
    outcome = trace.get("outcome") if isinstance(trace.get("outcome"), dict) else None
    calls = [c for c in trace.get("llmCalls") or [] if isinstance(c, dict)]
    raw_activation = trace.get("activation")
    activation: dict[str, Any] = raw_activation if isinstance(raw_activation, dict) else {}
    events = [e for e in activation.get("triggerEvents") or [] if isinstance(e, dict)]
    entry: dict[str, Any] = {
        "traceId": trace["traceId"],
        "timestamp": trace["timestamp"],
        "channelId": trace["channelId"],
        "triggeringMessageId": trace.get("triggeringMessageId"),
        "botName": trace.get("botId"),
    }
    if trace.get("channelName"):
        entry["channelName"] = trace["channelName"]
    if activation.get("reason"):
        entry["activationReason"] = activation["reason"]
    preview = (events[0].get("contentPreview") or "")[:100] if events else ""
    if preview:
        entry["triggerPreview"] = preview
    response = ((outcome or {}).get("responseText") or "")[:100]
    if response:
        entry["responsePreview"] = response
    if "isThread" in trace:
        entry["isThread"] = trace["isThread"]
    if trace.get("parentChannelId"):
        entry["parentChannelId"] = trace["parentChannelId"]
    entry["success"] = bool(outcome and outcome.get("success"))
    entry["durationMs"] = trace.get("durationMs", 0)
    entry["llmCallCount"] = len(calls)
    entry["toolExecutionCount"] = len(trace.get("toolExecutions") or [])
    usages = [u for u in (c.get("tokenUsage") or {} for c in calls) if isinstance(u, dict)]
    input_tokens = sum(int(u.get("inputTokens") or 0) for u in usages)
    output_tokens = sum(int(u.get("outputTokens") or 0) for u in usages)
    entry["totalTokens"] = input_tokens + output_tokens
    ids: list[str] = []
    positions: list[int] = []
    build = trace.get("contextBuild")
    messages = build.get("messages") if isinstance(build, dict) else None
    # tolerant of malformed input: a bad contextBuild must not cost the trace its index line
    for m in messages if isinstance(messages, list) else []:
        if isinstance(m, dict) and m.get("discordMessageId") is not None:
            pos = m.get("position")
            ids.append(str(m["discordMessageId"]))
            positions.append(pos if isinstance(pos, int) and not isinstance(pos, bool) else len(positions))
    entry["contextMessageIds"] = ids
    entry["sentMessageIds"] = list((outcome or {}).get("sentMessageIds") or [])
    entry["filename"] = filename
    # extensions
    entry["status"] = trace_status(trace)
    models = sorted({str(c.get("model")) for c in calls if c.get("model")})
    if models:
        entry["model"] = models[0] if len(models) == 1 else ",".join(models)
    if trace.get("guildId"):
        entry["guildId"] = trace["guildId"]
    if "cost" in trace:
        entry["cost"] = trace["cost"]
    err = (outcome or {}).get("error")
    if isinstance(err, dict) and err.get("message"):
        entry["error"] = str(err["message"])[:200]
    entry["contextPositions"] = positions
    entry["framework"] = "chapter2" if trace.get("framework") == "chapter2" else "chapterx"
    # the split of totalTokens, for the fleet's per-bot token figures
    entry["inputTokens"] = input_tokens
    entry["outputTokens"] = output_tokens
    return entry
