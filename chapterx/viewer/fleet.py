"""The fleet page's data: aggregates from `chapterx.trace.aggregates` shaped for charts.

Functions over an open store, through a per-hour `Rollup` so repeated views stay cheap. Every series covers the whole bucket grid of the chosen range
(empty buckets are zeros, or null for durations), so a chart of N buckets always has N points and
bots line up on the same x axis. Buckets are aligned to whole hours / UTC days.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chapterx.trace import aggregates
from chapterx.trace.index import EXTERNAL_SOURCE, MARKER_SOURCE

HOUR = 3600
DAY = 86400
MAX_RANGE_S = 90 * DAY
#: hours kept by the rollup (oldest computed first out); more than the longest range plus the warm-up
MAX_CACHED_HOURS = 200 * 24
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


class Rollup:
    """Per-hour `aggregates.bucket_stats` of one store, kept between requests.

    Aggregating a month of a big fleet reads every row of that month (seconds at a million
    traces); the page asks for the same closed hours again and again. So each hour is computed
    once, by the aggregates API itself, and only hours whose rows changed are recomputed:
    - rows appended since the last look (row ids only grow) dirty their hours;
    - in-progress markers come and go all the time: their hours are always recomputed;
    - a chapter2 reply rewritten in place (deleted and re-added under the same trace id) dirties
      its old and new hour;
    - any other deletion (prune, reindex, a chapter2 file removed) drops the whole cache, noticed
      because the kept per-bot row counts no longer add up.
    Daily sums and the bot table are sums of hours, so every chart reads the same numbers.
    Not thread-safe: the viewer calls it on the store's single worker thread.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._hours: dict[int, list[aggregates.BucketStats]] = {}
        self._gen: Any = None
        self._wm = 0
        self._rows = 0
        self._marker_hours: set[int] = set()
        self._ext: dict[str, int] = {}
        #: how many times the whole cache was dropped (a deletion other than a rewrite)
        self.resets = 0

    def _snapshot(self) -> Any:
        return self.store.query(
            "SELECT (SELECT value FROM meta WHERE key = 'generation') AS gen, "  # noqa: S608 - only integer source-id constants are interpolated
            "(SELECT COALESCE(MAX(id), 0) FROM traces) AS maxid, "
            "(SELECT COALESCE(SUM(n), 0) FROM counts WHERE kind = 'bot') AS nbot, "
            "(SELECT COUNT(*) FROM traces WHERE bot IS NULL) AS nnull, "
            f"(SELECT COUNT(*) FROM traces WHERE source_id < 0 AND source_id = {MARKER_SOURCE}) AS nmark")[0]

    def _marker_hour_set(self) -> set[int]:
        rows = self.store.query(
            f"SELECT ts FROM traces WHERE source_id < 0 AND source_id = {MARKER_SOURCE} AND ts IS NOT NULL")  # noqa: S608 - only integer source-id constants are interpolated
        return {int(r["ts"] // HOUR) for r in rows}

    def _reset(self, snap: Any) -> None:
        self._hours.clear()
        self._wm = int(snap["maxid"])
        self._rows = int(snap["nbot"]) + int(snap["nnull"]) - int(snap["nmark"])
        self._ext = {r["trace_id"]: int(r["ts"] // HOUR) for r in self.store.query(
            f"SELECT trace_id, ts FROM traces WHERE source_id < 0 AND source_id = {EXTERNAL_SOURCE} "  # noqa: S608 - only integer source-id constants are interpolated
            "AND ts IS NOT NULL")}
        self._marker_hours = self._marker_hour_set()

    def sync(self) -> None:
        """Forget the hours whose rows changed since the last call."""
        snap = self._snapshot()
        if snap["gen"] == self._gen and self._gen is not None:
            return
        if self._gen is None:
            self._reset(snap)
            self._gen = snap["gen"]
            return
        new = self.store.query(
            "SELECT id, trace_id, source_id, ts FROM traces WHERE id > :wm AND id <= :maxid "  # noqa: S608 - only integer source-id constants are interpolated
            f"AND source_id <> {MARKER_SOURCE}", {"wm": self._wm, "maxid": snap["maxid"]})
        total = int(snap["nbot"]) + int(snap["nnull"]) - int(snap["nmark"])
        dirty: set[int] = set()
        replaced = 0
        for r in new:
            if r["ts"] is None:
                continue
            hour = int(r["ts"] // HOUR)
            dirty.add(hour)
            if r["source_id"] == EXTERNAL_SOURCE:
                old = self._ext.get(r["trace_id"])
                if old is not None:
                    replaced += 1
                    dirty.add(old)
                self._ext[r["trace_id"]] = hour
        deleted = self._rows + len(new) - total
        if deleted != replaced:
            self.resets += 1
            self._reset(snap)
        else:
            markers = self._marker_hour_set()
            for hour in dirty | markers | self._marker_hours:
                self._hours.pop(hour, None)
            self._marker_hours = markers
            self._wm = max(self._wm, int(snap["maxid"]))
            self._rows = total
        self._gen = snap["gen"]

    def hours(self, first: int, last: int) -> dict[int, list[aggregates.BucketStats]]:
        """Stats of hours [first, last) (hour numbers since the epoch), computing missing runs."""
        k = first
        while k < last:
            if k in self._hours:
                k += 1
                continue
            end = k
            # at most a day per query: one big window sorts far more slowly than 30 small ones
            while end < last and end < k + 24 and end not in self._hours:
                end += 1
            for h in range(k, end):
                self._hours[h] = []
            for b in aggregates.bucket_stats(self.store, since=k * HOUR, until=end * HOUR, bucket_seconds=HOUR):
                self._hours[int(b.bucket_start // HOUR)].append(b)
            k = end
        out = {h: self._hours[h] for h in range(first, last)}
        if len(self._hours) > MAX_CACHED_HOURS:  # bounded: any URL can ask for another window
            for h in [h for h in self._hours if not first <= h < last][: len(self._hours) - MAX_CACHED_HOURS]:
                del self._hours[h]
        return out

    def warm(self, first: int, last: int) -> int:
        """Compute hours [first, last) ahead of any view (the viewer does this in small steps after
        it starts); returns how many hours were computed."""
        self.sync()
        missing = sum(1 for h in range(first, last) if h not in self._hours)
        self.hours(first, last)
        return missing

    def stats(self, w: Window, *, bot: str | None = None, framework: str | None = None
              ) -> list[aggregates.BucketStats]:
        """Hourly stats over the window (hour-aligned), optionally for one bot / framework."""
        self.sync()
        out: list[aggregates.BucketStats] = []
        for items in self.hours(int(w.since // HOUR), int(w.until // HOUR)).values():
            out.extend(b for b in items if (bot is None or b.bot == bot)
                       and (framework is None or b.framework == framework))
        return out


def _per_bot(rollup: Rollup, w: Window, bot: str | None, framework: str | None, fields: dict[str, Any],
             fill: Callable[[dict[str, Any], int, aggregates.BucketStats], None]) -> dict[str, Any]:
    """One series per bot and framework (each field a list with one slot per bucket, starting at its
    value in `fields`); `fill` puts one hour's stats into its slot."""
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for b in rollup.stats(w, bot=bot, framework=framework):
        s = series.get((b.bot, b.framework))
        if s is None:
            s = series[(b.bot, b.framework)] = {"bot": b.bot, "framework": b.framework,
                                                **{k: [v] * w.count for k, v in fields.items()}}
        fill(s, int((b.bucket_start - w.since) // w.bucket_seconds), b)
    return _doc(w, [series[k] for k in sorted(series)])


def hourly(rollup: Rollup, w: Window, *, bot: str | None = None, framework: str | None = None
           ) -> dict[str, Any]:
    """Activations, failures, failure rate and p50/p95 duration per bot and bucket."""

    def fill(s: dict[str, Any], k: int, b: aggregates.BucketStats) -> None:
        s["activations"][k] = b.activations
        s["failures"][k] = b.failures
        if b.activations:
            s["failureRate"][k] = b.failures / b.activations
        s["p50Ms"][k] = b.p50_ms
        s["p95Ms"][k] = b.p95_ms

    fields = {"activations": 0, "failures": 0, "failureRate": None, "p50Ms": None, "p95Ms": None}
    return _per_bot(rollup, w, bot, framework, fields, fill)


def daily(rollup: Rollup, w: Window, *, bot: str | None = None, framework: str | None = None
          ) -> dict[str, Any]:
    """Activations, input/output tokens and cost per bot and day (sums of its hours). `costUsd` is
    the cost of the day's `pricedActivations`; null (unknown, not $0) for a day with activations
    none of which reported a cost."""

    def fill(s: dict[str, Any], k: int, b: aggregates.BucketStats) -> None:
        s["activations"][k] += b.activations
        s["inputTokens"][k] += b.input_tokens
        s["outputTokens"][k] += b.output_tokens
        s["pricedActivations"][k] += b.priced
        if b.cost_usd is not None:
            s["costUsd"][k] = round(s["costUsd"][k] + b.cost_usd, 8)

    fields = {"activations": 0, "inputTokens": 0, "outputTokens": 0, "costUsd": 0.0, "pricedActivations": 0}
    doc = _per_bot(rollup, w, bot, framework, fields, fill)
    for s in doc["series"]:
        s["costUsd"] = [None if n and not p else c
                        for n, p, c in zip(s["activations"], s["pricedActivations"], s["costUsd"], strict=True)]
    return doc


def _doc(w: Window, series: list[dict[str, Any]]) -> dict[str, Any]:
    return {"since": w.since * 1000, "until": w.until * 1000, "bucketSeconds": w.bucket_seconds,
            "buckets": [t * 1000 for t in w.starts()], "series": series}


def bots(rollup: Rollup, w: Window, *, framework: str | None = None) -> dict[str, Any]:
    """One row per bot over the window's hours (idle bots too), with its failure rate; the last
    activation comes from `aggregates.bot_summaries` over the newest hour (an index lookup per
    idle bot)."""
    totals: dict[tuple[str, str], list[float]] = {}
    for b in rollup.stats(w, framework=framework):
        t = totals.setdefault((b.bot, b.framework), [0, 0, 0.0, 0])
        t[0] += b.activations
        t[1] += b.failures
        t[2] += b.cost_usd or 0.0
        t[3] += b.priced
    last = {(s.bot, s.framework): s.last_activation
            for s in aggregates.bot_summaries(rollup.store, since=w.until - HOUR, until=w.until)}
    for key in last:
        if framework is None or key[1] == framework:
            totals.setdefault(key, [0, 0, 0.0, 0])
    rows = []
    for (bot, fw), (n, fails, cost, priced) in sorted(totals.items()):
        stamp = last.get((bot, fw))
        rows.append({
            "bot": bot, "framework": fw, "activations": int(n), "failures": int(fails),
            "failureRate": round(fails / n, 4) if n else None,
            # unknown (null), not $0, when it ran and no activation reported a cost
            "costUsd": None if n and not priced else round(cost, 8), "pricedActivations": int(priced),
            "lastActivation": stamp * 1000 if stamp is not None else None,
        })
    return {"since": w.since * 1000, "until": w.until * 1000, "bots": rows}


def failures(store: Any, since: float, *, bot: str | None = None, limit: int = 20) -> dict[str, Any]:
    """The newest failed activations, each with the id the trace page opens."""
    rows = aggregates.latest_failures(store, since=since, limit=limit, bot=bot)
    return {"failures": [
        {"traceId": r.trace_id, "bot": r.bot, "framework": r.framework, "timestamp": r.timestamp * 1000,
         "channelId": r.channel_id, "error": r.error} for r in rows]}
