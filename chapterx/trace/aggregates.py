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


def bucket_stats(store: TraceStore, *, since: float, until: float, bucket_seconds: int,
                 bot: str | None = None, framework: str | None = None) -> list[BucketStats]:
    """Per bot and bucket over [since, until); buckets start at `since` + k * bucket_seconds.
    Only buckets with at least one activation are returned, ordered by bot, framework, time.
    p50/p95 are nearest-rank (a measured duration, never an interpolation), read from the rows'
    durations; for buckets of whole hours (`since` on the hour, `bucket_seconds` a multiple of
    3600) the counts, tokens and cost come from the hourly roll-ups."""
    if bucket_seconds <= 0:
        raise ValueError("bucket_seconds must be positive")
    hourly = since % HOUR == 0 and bucket_seconds % HOUR == 0
    acc = _Acc()
    width = bucket_seconds
    if hourly:
        whole_end = max(since, math.floor(until / HOUR) * HOUR) if math.isfinite(until) else until
        _add_hourly(store, acc, since, whole_end, since, width, bot, framework)
        raw_from = whole_end
    else:
        raw_from = since
    if raw_from < until:
        _add_raw(store, acc, raw_from, until, lambda ts: int((ts - since) // width), bot, framework)
    if hourly:  # the roll-ups hold no durations: those are read for the whole hours here
        _add_durations(store, acc, since, raw_from, since, width, bot, framework)
    out = []
    for (b, fw, k), g in sorted(acc.groups.items()):
        if g[0] <= 0:
            continue
        p50, p95 = acc.percentiles((b, fw, k))
        out.append(BucketStats(
            bot=b, framework=fw, bucket_start=since + k * bucket_seconds, activations=int(g[0]),
            failures=int(g[1]), p50_ms=p50, p95_ms=p95, input_tokens=int(g[2]), output_tokens=int(g[3]),
            cost_usd=round(float(g[4]), 8)))
    return out


HOUR = 3600


class _Acc:
    """Sums [n, failures, input, output, cost] and durations per group."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, int], list[float]] = {}
        self.exact: dict[tuple[str, str, int], list[int]] = {}

    def add(self, key: tuple[str, str, int], n: int, fail: int, tin: int, tout: int, cost: float) -> None:
        g = self.groups.setdefault(key, [0, 0, 0, 0, 0.0])
        g[0] += n
        g[1] += fail
        g[2] += tin
        g[3] += tout
        g[4] += cost

    def percentiles(self, key: tuple[str, str, int]) -> tuple[float | None, float | None]:
        d = sorted(self.exact.get(key) or [])
        if not d:
            return None, None
        return (float(d[max(1, math.ceil(len(d) * 0.5)) - 1]), float(d[max(1, math.ceil(len(d) * 0.95)) - 1]))


def _filters(bot: str | None, framework: str | None, params: dict[str, Any], bot_col: str) -> str:
    sql = ""
    if bot is not None:
        sql += f" AND {bot_col} = :bot"
        params["bot"] = bot
    if framework is not None:
        sql += " AND framework = :framework"
        params["framework"] = framework
    return sql


def _add_hourly(store: TraceStore, acc: _Acc, start: float, end: float, origin: float, width: float,
                bot: str | None, framework: str | None) -> None:
    """Whole hours [start, end) from the roll-ups, summed per bucket (origin + k * width) in SQLite."""
    store.bot_names()  # brings the kept counts and roll-ups up to date (an upgraded index recounts)
    params: dict[str, Any] = {"h0": int(start // HOUR), "h1": end / HOUR if math.isfinite(end) else 2**62,
                              "origin": origin, "width": width}
    extra = _filters(bot, framework, params, "bot")
    k = "CAST((hour * 3600 - :origin) / :width AS INTEGER)"
    where = f"hour >= :h0 AND hour < :h1{extra}"
    for b, fw, kk, n, fail, tin, tout, cost in store.query(
            f"SELECT bot, framework, {k}, SUM(n), SUM(fail), SUM(tin), SUM(tout), SUM(cost) FROM hourly "
            f"WHERE {where} GROUP BY 1, 2, 3", params, raw=True):
        acc.add((b, fw, kk), n, fail, tin, tout, cost)


def _add_durations(store: TraceStore, acc: _Acc, start: float, end: float, origin: float, width: float,
                   bot: str | None, framework: str | None) -> None:
    """The durations of the rows with start <= ts < end (the covering index: no row lookups)."""
    if start >= end:
        return
    params: dict[str, Any] = {"since": start, "until": end, "origin": origin, "width": width}
    extra = _filters(bot, framework, params, "COALESCE(bot, '')")
    for b, fw, k, dur in store.query(
            "SELECT COALESCE(bot, ''), framework, CAST((ts - :origin) / :width AS INTEGER), duration_ms "
            f"FROM traces WHERE ts >= :since AND ts < :until AND duration_ms IS NOT NULL AND {_FINISHED}{extra}",
            params, raw=True):
        acc.exact.setdefault((b, fw, k), []).append(dur)


def _add_raw(store: TraceStore, acc: _Acc, start: float, end: float, bucket_of_ts: Any,
             bot: str | None, framework: str | None) -> None:
    """Rows with start <= ts < end, read one by one (through the covering index)."""
    params: dict[str, Any] = {"since": start, "until": end}
    extra = _filters(bot, framework, params, "COALESCE(bot, '')")
    for b, fw, ts, success, dur, tin, tout, cost in store.query(
            "SELECT COALESCE(bot, ''), framework, ts, success, duration_ms, COALESCE(input_tokens, total_tokens, 0), "
            f"COALESCE(output_tokens, 0), COALESCE(cost, 0.0) FROM traces WHERE ts >= :since AND ts < :until "
            f"AND {_FINISHED}{extra}", params, raw=True):
        key = (b, fw, bucket_of_ts(ts))
        acc.add(key, 1, 0 if success else 1, tin, tout, cost)
        if dur is not None:
            acc.exact.setdefault(key, []).append(int(dur))


def bot_summaries(store: TraceStore, *, since: float, until: float | None = None) -> list[BotSummary]:
    """Every bot the index knows (idle ones too, with zero counts), sorted by bot then framework.
    The whole hours of the window come from the hourly roll-ups, its ragged ends from the rows."""
    end = math.inf if until is None else until
    acc = _Acc()
    first_hour = math.ceil(since / HOUR) * HOUR
    last_hour = math.floor(end / HOUR) * HOUR if math.isfinite(end) else math.inf
    if first_hour < last_hour:
        _add_raw(store, acc, since, first_hour, lambda ts: 0, None, None)
        _add_hourly(store, acc, first_hour, last_hour, first_hour, math.inf, None, None)
        if math.isfinite(last_hour):
            _add_raw(store, acc, last_hour, end, lambda ts: 0, None, None)
    else:
        _add_raw(store, acc, since, end, lambda ts: 0, None, None)
    found: dict[tuple[str, str], BotSummary] = {}
    for (b, fw, _k), g in acc.groups.items():
        if g[0] <= 0:
            continue
        found[(b, fw)] = BotSummary(bot=b, framework=fw, last_activation=_last(store, b, fw, end),
                                    activations=int(g[0]), failures=int(g[1]), cost_usd=round(float(g[4]), 8))
    seen = {b for b, _ in found}
    params: dict[str, Any] = {"until": end}
    for name in store.bot_names():
        if name in seen:
            continue
        # idle in the window: its newest activation before `until` (the bot+time index, one row)
        last = store.query(
            "SELECT framework, ts FROM traces WHERE bot = :bot AND ts < :until "
            f"AND {_FINISHED} ORDER BY ts DESC LIMIT 1", {**params, "bot": name})
        if last:
            found[(name, last[0]["framework"])] = BotSummary(
                bot=name, framework=last[0]["framework"], last_activation=last[0]["ts"],
                activations=0, failures=0, cost_usd=0.0)
    return [found[k] for k in sorted(found)]


def _last(store: TraceStore, bot: str, framework: str, until: float) -> float | None:
    rows = store.query(
        "SELECT ts FROM traces WHERE bot IS :bot AND framework = :fw AND ts < :until "
        f"AND {_FINISHED} ORDER BY ts DESC LIMIT 1", {"bot": bot or None, "fw": framework, "until": until},
        raw=True)
    return float(rows[0][0]) if rows else None


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
