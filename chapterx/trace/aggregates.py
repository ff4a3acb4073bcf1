"""Fleet aggregates over the trace index: activations, failures, latency, tokens and cost per bot.

Pure reads of an open `TraceStore` (both frameworks), answered from the index, never from trace
files. Rules shared by every function:
- an activation still running (an in-progress marker whose writer lives) is not counted yet;
  an aborted one (its process died) counts, as a failure;
- a failure is a row whose `success` is false (upstream counts a trace without outcome as failed);
- cost is the sum of known costs (an unknown model's cost counts as 0, it is never invented);
- index lines without the input/output split (upstream's writer, older ours) count their
  `totalTokens` as input, so input + output always equals the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chapterx.trace.store import TraceStore

_FINISHED = "COALESCE(status, '') <> 'running'"


@dataclass(frozen=True)
class BucketStats:
    """One bot (of one framework), one time bucket [bucket_start, bucket_start + bucket_seconds)."""

    bot: str
    framework: str
    bucket_start: float  # epoch seconds
    activations: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class BotSummary:
    """One bot over [since, until); `last_activation` is its newest activation before `until`."""

    bot: str
    framework: str
    last_activation: float | None
    activations: int
    failures: int
    cost_usd: float


@dataclass(frozen=True)
class FailureRow:
    trace_id: str
    bot: str
    framework: str
    timestamp: float
    channel_id: str | None
    error: str | None


def _percentile(sorted_values: list[int], q: float) -> float | None:
    """Nearest-rank percentile (a value that was measured, never an interpolation)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def bucket_stats(store: TraceStore, *, since: float, until: float, bucket_seconds: int,
                 bot: str | None = None, framework: str | None = None) -> list[BucketStats]:
    """Per bot and bucket over [since, until); buckets start at `since` + k * bucket_seconds.
    Only buckets with at least one activation are returned, ordered by bot, framework, time."""
    if bucket_seconds <= 0:
        raise ValueError("bucket_seconds must be positive")
    where = ["ts >= :since", "ts < :until", _FINISHED]
    params: dict[str, Any] = {"since": since, "until": until, "width": bucket_seconds}
    if bot is not None:
        where.append("bot = :bot")
        params["bot"] = bot
    if framework is not None:
        where.append("framework = :framework")
        params["framework"] = framework
    rows = store.query(
        "SELECT COALESCE(bot, '') AS bot, framework, CAST((ts - :since) / :width AS INTEGER) AS k, "
        "success, duration_ms, COALESCE(input_tokens, total_tokens, 0) AS tin, "
        "COALESCE(output_tokens, 0) AS tout, COALESCE(cost, 0.0) AS cost "
        f"FROM traces WHERE {' AND '.join(where)}", params)
    groups: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        g = groups.get((r["bot"], r["framework"], r["k"]))
        if g is None:
            g = groups[(r["bot"], r["framework"], r["k"])] = {
                "n": 0, "fail": 0, "durations": [], "in": 0, "out": 0, "cost": 0.0}
        g["n"] += 1
        g["fail"] += 0 if r["success"] else 1
        if r["duration_ms"] is not None:
            g["durations"].append(int(r["duration_ms"]))
        g["in"] += int(r["tin"])
        g["out"] += int(r["tout"])
        g["cost"] += float(r["cost"])
    out = []
    for (b, fw, k), g in sorted(groups.items()):
        durations = sorted(g["durations"])
        out.append(BucketStats(
            bot=b, framework=fw, bucket_start=since + k * bucket_seconds, activations=g["n"],
            failures=g["fail"], p50_ms=_percentile(durations, 0.5), p95_ms=_percentile(durations, 0.95),
            input_tokens=g["in"], output_tokens=g["out"], cost_usd=round(g["cost"], 8)))
    return out


def bot_summaries(store: TraceStore, *, since: float, until: float | None = None) -> list[BotSummary]:
    """Every bot the index knows (idle ones too, with zero counts), sorted by bot then framework."""
    params: dict[str, Any] = {"since": since, "until": math.inf if until is None else until}
    active = store.query(
        "SELECT COALESCE(bot, '') AS bot, framework, COUNT(*) AS n, "
        "SUM(CASE WHEN success THEN 0 ELSE 1 END) AS fail, SUM(COALESCE(cost, 0.0)) AS cost, MAX(ts) AS last "
        f"FROM traces WHERE ts >= :since AND ts < :until AND {_FINISHED} GROUP BY 1, 2", params)
    found = {(r["bot"], r["framework"]): BotSummary(
        bot=r["bot"], framework=r["framework"], last_activation=r["last"], activations=r["n"],
        failures=r["fail"], cost_usd=round(r["cost"] or 0.0, 8)) for r in active}
    seen = {b for b, _ in found}
    for name in store.bot_names():
        if name in seen:
            continue
        # idle in the window: its newest activation before `until` (the bot+time index, one row)
        last = store.query(
            "SELECT framework, ts FROM traces INDEXED BY traces_bot_ts WHERE bot = :bot AND ts < :until "
            f"AND {_FINISHED} ORDER BY ts DESC LIMIT 1", {**params, "bot": name})
        if last:
            found[(name, last[0]["framework"])] = BotSummary(
                bot=name, framework=last[0]["framework"], last_activation=last[0]["ts"],
                activations=0, failures=0, cost_usd=0.0)
    return [found[k] for k in sorted(found)]


def latest_failures(store: TraceStore, *, since: float, limit: int = 20,
                    bot: str | None = None) -> list[FailureRow]:
    """Failed activations at or after `since`, newest first (at most `limit`)."""
    limit = max(0, int(limit))
    params: dict[str, Any] = {"since": since, "limit": limit}
    where = ["success = 0", "ts >= :since", _FINISHED]
    if bot is not None:
        where.append("bot = :bot")
        params["bot"] = bot
    rows = store.query(
        "SELECT trace_id, COALESCE(bot, '') AS bot, framework, ts, channel_id, error "
        f"FROM traces WHERE {' AND '.join(where)} ORDER BY ts DESC, id DESC LIMIT :limit", params)
    return [FailureRow(trace_id=r["trace_id"], bot=r["bot"], framework=r["framework"], timestamp=r["ts"],
                       channel_id=r["channel_id"], error=r["error"]) for r in rows]
