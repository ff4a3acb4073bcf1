"""The fleet page's data: aggregates from `chapterx.trace.aggregates` shaped for charts.

Pure functions over an open store. Every series covers the whole bucket grid of the chosen range
(empty buckets are zeros, or null for durations), so a chart of N buckets always has N points and
bots line up on the same x axis. Buckets are aligned to whole hours / UTC days.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from chapterx.trace import aggregates

HOUR = 3600
DAY = 86400
MAX_RANGE_S = 90 * DAY
_RANGE_RE = re.compile(r"^(\d{1,4})([hd])$")


@dataclass(frozen=True)
class Window:
    """The buckets of one chart: [since, until) in steps of `bucket_seconds`."""

    since: float
    until: float
    bucket_seconds: int

    @property
    def count(self) -> int:
        return round((self.until - self.since) / self.bucket_seconds)

    def starts(self) -> list[float]:
        return [self.since + k * self.bucket_seconds for k in range(self.count)]


def parse_range(raw: str | None) -> int:
    """`24h`, `7d`, `30d`... -> seconds (default 24h); ValueError with a message for anything else."""
    raw = (raw or "24h").strip().lower()
    m = _RANGE_RE.match(raw)
    if not m or int(m.group(1)) == 0:
        raise ValueError("Invalid range: use hours or days like 24h, 7d, 30d")
    seconds = int(m.group(1)) * (HOUR if m.group(2) == "h" else DAY)
    if seconds > MAX_RANGE_S:
        raise ValueError("Invalid range: at most 90d")
    return seconds


def window(range_s: int, bucket_seconds: int, now: float) -> Window:
    """The grid ending with the bucket that holds `now`, long enough to cover `range_s`."""
    until = math.floor(now / bucket_seconds) * bucket_seconds + bucket_seconds
    n = max(1, math.ceil(range_s / bucket_seconds))
    return Window(float(until - n * bucket_seconds), float(until), bucket_seconds)


def _series_key(b: aggregates.BucketStats) -> tuple[str, str]:
    return (b.bot, b.framework)


def hourly(store: Any, w: Window, *, bot: str | None = None, framework: str | None = None) -> dict[str, Any]:
    """Activations, failures, failure rate and p50/p95 duration per bot and bucket."""
    stats = aggregates.bucket_stats(store, since=w.since, until=w.until, bucket_seconds=w.bucket_seconds,
                                    bot=bot, framework=framework)
    n = w.count
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for b in stats:
        s = series.get(_series_key(b))
        if s is None:
            s = series[_series_key(b)] = {
                "bot": b.bot, "framework": b.framework, "activations": [0] * n, "failures": [0] * n,
                "failureRate": [None] * n, "p50Ms": [None] * n, "p95Ms": [None] * n}
        k = round((b.bucket_start - w.since) / w.bucket_seconds)
        if not 0 <= k < n:
            continue
        s["activations"][k] = b.activations
        s["failures"][k] = b.failures
        s["failureRate"][k] = round(b.failures / b.activations, 4) if b.activations else None
        s["p50Ms"][k] = b.p50_ms
        s["p95Ms"][k] = b.p95_ms
    return _doc(w, [series[k] for k in sorted(series)])


def daily(store: Any, w: Window, *, bot: str | None = None, framework: str | None = None) -> dict[str, Any]:
    """Input/output tokens and cost per bot and day."""
    stats = aggregates.bucket_stats(store, since=w.since, until=w.until, bucket_seconds=w.bucket_seconds,
                                    bot=bot, framework=framework)
    n = w.count
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for b in stats:
        s = series.get(_series_key(b))
        if s is None:
            s = series[_series_key(b)] = {
                "bot": b.bot, "framework": b.framework, "activations": [0] * n,
                "inputTokens": [0] * n, "outputTokens": [0] * n, "costUsd": [0.0] * n}
        k = round((b.bucket_start - w.since) / w.bucket_seconds)
        if not 0 <= k < n:
            continue
        s["activations"][k] = b.activations
        s["inputTokens"][k] = b.input_tokens
        s["outputTokens"][k] = b.output_tokens
        s["costUsd"][k] = b.cost_usd
    return _doc(w, [series[k] for k in sorted(series)])


def _doc(w: Window, series: list[dict[str, Any]]) -> dict[str, Any]:
    return {"since": w.since * 1000, "until": w.until * 1000, "bucketSeconds": w.bucket_seconds,
            "buckets": [t * 1000 for t in w.starts()], "series": series}


def bots(store: Any, since: float, until: float, *, framework: str | None = None) -> dict[str, Any]:
    """One row per bot over the range (idle bots too), with its failure rate."""
    rows = []
    for s in aggregates.bot_summaries(store, since=since, until=until):
        if framework is not None and s.framework != framework:
            continue
        rows.append({
            "bot": s.bot, "framework": s.framework, "activations": s.activations, "failures": s.failures,
            "failureRate": round(s.failures / s.activations, 4) if s.activations else None,
            "costUsd": s.cost_usd,
            "lastActivation": s.last_activation * 1000 if s.last_activation is not None else None,
        })
    return {"since": since * 1000, "until": until * 1000, "bots": rows}


def failures(store: Any, since: float, *, bot: str | None = None, limit: int = 20) -> dict[str, Any]:
    """The newest failed activations, each with the id the trace page opens."""
    rows = aggregates.latest_failures(store, since=since, limit=limit, bot=bot)
    return {"failures": [
        {"traceId": r.trace_id, "bot": r.bot, "framework": r.framework, "timestamp": r.timestamp * 1000,
         "channelId": r.channel_id, "error": r.error} for r in rows]}
