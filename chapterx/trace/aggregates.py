"""Fleet aggregates over the trace index: activations, failures, latency, tokens and cost per bot.

Pure reads of an open `TraceStore` (both frameworks), answered from the index, never from trace
files. Rules shared by every function:
- an activation still running (an in-progress marker whose writer lives) is not counted yet;
  an aborted one (its process died) counts, as a failure;
- a failure is a row whose `success` is false (upstream counts a trace without outcome as failed);
- cost is the sum of known costs, with how many activations had one (`priced`); where there
  were activations and none had one, the cost is None (unknown), never $0: it is never invented;
- index lines without the input/output split (upstream's writer, older ours) count their
  `totalTokens` as input, so input + output always equals the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chapterx.trace import durhist

if TYPE_CHECKING:
    from chapterx.trace.store import TraceStore

_FINISHED = "COALESCE(status, '') <> 'running'"


@dataclass(frozen=True)
class BucketStats:
    """One bot (of one framework), one time bucket [bucket_start, bucket_start + bucket_seconds).
    `cost_usd` sums the known costs of the bucket's `priced` activations; None when none was priced."""

    bot: str
    framework: str
    bucket_start: float  # epoch seconds
    activations: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    priced: int = 0


@dataclass(frozen=True)
class BotSummary:
    """One bot over [since, until); `last_activation` is its newest activation before `until`.
    `cost_usd` as in `BucketStats` (None: it had activations and none reported a cost; a bot
    idle in the window spent 0)."""

    bot: str
    framework: str
    last_activation: float | None
    activations: int
    failures: int
    cost_usd: float | None
    priced: int = 0


@dataclass(frozen=True)
class FailureRow:
    trace_id: str
    bot: str
    framework: str
    timestamp: float
    channel_id: str | None
    error: str | None


#: a window of at most this many activations in whole hours is read row by row (exact p50/p95,
#: ~10 ms); above it the hours' histograms answer
EXACT_MAX = 10_000


def bucket_stats(store: TraceStore, *, since: float, until: float, bucket_seconds: int,
                 bot: str | None = None, framework: str | None = None,
                 exact_max: int = EXACT_MAX) -> list[BucketStats]:
    """Per bot and bucket over [since, until); buckets start at `since` + k * bucket_seconds.
    Only buckets with at least one activation are returned, ordered by bot, framework, time.

    Every whole hour that lies inside one bucket is read from the hourly roll-ups (counts, tokens,
    cost and a duration histogram). An hour cut by a bucket edge: its smaller side is read as
    rows, the other side is the hour's roll-up less those rows. The window's ragged ends, and
    every bucket shorter than an hour, are read as rows. Counts, tokens and cost are exact.
    p50/p95 are nearest-rank: exact (a measured duration) when the window's whole hours hold at
    most `exact_max` activations (then every row is read) or for buckets under an hour; otherwise
    from the merged histograms, within 2% + 0.5 ms of the exact value (`chapterx.trace.durhist`),
    and exact when it is the bucket's smallest or largest duration and no cut hour is in the
    bucket. A month of a big fleet then costs a few thousand roll-up rows, not every activation
    of the month."""
    if bucket_seconds <= 0:
        raise ValueError("bucket_seconds must be positive")
    acc = _Acc()
    width = bucket_seconds
    raw: list[tuple[float, float]] = []
    if width >= HOUR:
        first_h = math.ceil(since / HOUR)
        last_h = math.floor(until / HOUR) if math.isfinite(until) else 2**40
        if first_h < last_h:
            rows = _hourly_rows(store, first_h, last_h, bot, framework)
            if sum(r[3] for r in rows) <= exact_max:  # few: every row, exact
                raw.append((since, until))
            elif width == HOUR and since == first_h * HOUR:  # the fleet page's grid: an hour a bucket
                _add_raw(store, acc, last_h * HOUR, until, since, width, bot, framework)
                out = _finish(acc, since, width) + _hour_stats(rows, since)
                out.sort(key=lambda b: (b.bot, b.framework, b.bucket_start))
                return out
            else:
                raw.append((since, first_h * HOUR))
                _add_split(store, acc, _add_hourly_hist(acc, rows, since, width), since, width, bot, framework)
                raw.append((last_h * HOUR, until))
        else:
            raw.append((since, until))
    else:
        raw.append((since, until))
    for start, end in _merged(raw):
        _add_raw(store, acc, start, end, since, width, bot, framework)
    return _finish(acc, since, width)


def _finish(acc: _Acc, since: float, width: int) -> list[BucketStats]:
    out = []
    for (b, fw, k), g in sorted(acc.groups.items()):
        if g[0] <= 0:
            continue
        p50, p95 = acc.percentiles((b, fw, k))
        out.append(BucketStats(
            bot=b, framework=fw, bucket_start=since + k * width, activations=int(g[0]),
            failures=int(g[1]), p50_ms=p50, p95_ms=p95, input_tokens=int(g[2]), output_tokens=int(g[3]),
            cost_usd=round(float(g[4]), 8) if g[5] > 0 else None, priced=int(g[5])))
    return out


def _hour_stats(rows: list[tuple[Any, ...]], since: float) -> list[BucketStats]:
    """One bucket per roll-up row (hourly buckets on hour edges): no grouping, no merge."""
    out = []
    for hour, b, fw, n, fail, tin, tout, cost, priced, dmin, dmax, hist in rows:
        if n <= 0:
            continue
        if hist:
            arr = durhist.decode(hist)
            p50, p95 = durhist.percentiles(arr[0], arr[1:], (0.5, 0.95), dmin, dmax)
        else:
            p50 = p95 = None
        out.append(BucketStats(
            bot=b, framework=fw, bucket_start=float(hour * HOUR), activations=n, failures=fail, p50_ms=p50,
            p95_ms=p95, input_tokens=tin, output_tokens=tout, cost_usd=round(float(cost), 8) if priced > 0 else None,
            priced=priced))
    return out


HOUR = 3600
_Key = tuple[str, str, int]


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-empty [start, end) spans, sorted, touching ones joined (one query each)."""
    out: list[list[float]] = []
    for start, end in sorted(spans):
        if start >= end:
            continue
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


class _Acc:
    """Sums [n, failures, input, output, cost, priced] per group, with its durations: exact ones
    (from rows) and, for groups holding whole hours, their stored histograms and exact min/max."""

    def __init__(self) -> None:
        self.groups: dict[_Key, list[float]] = {}
        self.exact: dict[_Key, list[int]] = {}
        self.blobs: dict[_Key, list[bytes]] = {}
        self.bounds: dict[_Key, list[float]] = {}
        #: groups whose bounds are an hour's min/max around a part of that hour (not exact)
        self.loose: set[_Key] = set()

    def add(self, key: _Key, n: int, fail: int, tin: int, tout: int, cost: float, priced: int) -> None:
        g = self.groups.get(key)
        if g is None:
            self.groups[key] = [n, fail, tin, tout, cost, priced]
            return
        g[0] += n
        g[1] += fail
        g[2] += tin
        g[3] += tout
        g[4] += cost
        g[5] += priced

    def add_hist(self, key: _Key, blob: bytes | None, dmin: float | None, dmax: float | None) -> None:
        """An hour's stored histogram and its duration bounds (the group then answers from
        histograms, even with none: an hour without durations)."""
        blobs = self.blobs.setdefault(key, [])
        if blob:
            blobs.append(blob)
        if dmin is not None and dmax is not None:
            bd = self.bounds.get(key)
            self.bounds[key] = [min(bd[0], dmin), max(bd[1], dmax)] if bd else [dmin, dmax]

    def percentiles(self, key: _Key) -> tuple[float | None, float | None]:
        exact = self.exact.get(key) or []
        blobs = self.blobs.get(key)
        if blobs is None:  # rows only: exact nearest-rank
            d = sorted(exact)
            if not d:
                return None, None
            return (float(d[max(1, math.ceil(len(d) * 0.5)) - 1]), float(d[max(1, math.ceil(len(d) * 0.95)) - 1]))
        bounds = self.bounds.get(key)
        if exact:  # a ragged end's rows join the hours' histograms
            h = durhist.Dense()
            h.add_dict(durhist.count_many(exact))
            blob = h.blob()
            blobs = [*blobs, blob] if blob else blobs
            lo_ms, hi_ms = min(exact), max(exact)
            bounds = [min(bounds[0], lo_ms), max(bounds[1], hi_ms)] if bounds else [lo_ms, hi_ms]
        if not blobs:
            return None, None
        lo, counts = durhist.merge(blobs)
        p50, p95 = durhist.percentiles(lo, counts, (0.5, 0.95), *(bounds or (None, None)),
                                       exact_bounds=key not in self.loose)
        return p50, p95


def _filters(bot: str | None, framework: str | None, params: dict[str, Any], bot_col: str) -> str:
    sql = ""
    if bot is not None:
        sql += f" AND {bot_col} = :bot"
        params["bot"] = bot
    if framework is not None:
        sql += " AND framework = :framework"
        params["framework"] = framework
    return sql


# a group of rows summed in SQLite: n, failures, input, output, cost, priced, and the durations as
# one text (no Python per row)
_ROW_SUMS = ("COUNT(*), SUM(success = 0), SUM(COALESCE(input_tokens, total_tokens, 0)), "
             "SUM(COALESCE(output_tokens, 0)), COALESCE(SUM(cost), 0.0), COUNT(cost), "
             "group_concat(CAST(duration_ms AS INTEGER))")


def _durations(text: str | None) -> list[int]:
    """The durations `_ROW_SUMS` gives as one text."""
    return list(map(int, text.split(","))) if text else []


def _hourly_rows(store: TraceStore, h0: int, h1: int, bot: str | None, framework: str | None
                 ) -> list[tuple[Any, ...]]:
    """The roll-up rows of hours [h0, h1) (hour numbers), histograms included."""
    store.bot_names()  # brings the kept counts and roll-ups up to date (an upgraded index recounts)
    params: dict[str, Any] = {"h0": h0, "h1": h1}
    extra = _filters(bot, framework, params, "bot")
    return store.query("SELECT hour, bot, framework, n, fail, tin, tout, cost, priced, dmin, dmax, hist FROM hourly "
                       f"WHERE hour >= :h0 AND hour < :h1{extra}", params, raw=True)


def _add_hourly_hist(acc: _Acc, rows: list[tuple[Any, ...]], origin: float, width: float
                     ) -> list[tuple[Any, ...]]:
    """Roll-up rows of hours that lie whole inside their bucket (origin + k * width) summed per
    bucket; returns the rows of the hours cut by a bucket edge (see `_add_split`)."""
    split: list[tuple[Any, ...]] = []
    for hour, b, fw, n, fail, tin, tout, cost, priced, dmin, dmax, hist in rows:
        start = hour * HOUR
        k = int((start - origin) // width)
        if start + HOUR > origin + (k + 1) * width:
            split.append((hour, b, fw, n, fail, tin, tout, cost, priced, dmin, dmax, hist))
            continue
        if n <= 0:
            continue
        key = (b, fw, k)
        acc.add(key, n, fail, tin, tout, cost, priced)
        acc.add_hist(key, hist, dmin, dmax)
    return split


def _add_split(store: TraceStore, acc: _Acc, rows: list[tuple[Any, ...]], origin: float, width: float,
               bot: str | None, framework: str | None) -> None:
    """Hours cut by a bucket edge (width >= an hour: one edge each). The smaller side of the edge
    is read as rows; the other side is the hour's roll-up less those rows (counts exact, the
    histogram exact, its min/max only bounds). Reads at most half of each cut hour."""
    plan: dict[int, tuple[int, int, float, float]] = {}  # hour -> (read bucket, derived bucket, span read)
    for r in rows:
        start = r[0] * HOUR
        k = int((start - origin) // width)
        edge = origin + (k + 1) * width
        plan[r[0]] = (k, k + 1, start, edge) if edge - start <= HOUR / 2 else (k + 1, k, edge, start + HOUR)
    parts: dict[tuple[int, str, str], tuple[Any, ...]] = {}
    for hour, (_k, _k2, start, end) in plan.items():  # a query per cut hour: rows of that hour only
        params: dict[str, Any] = {"since": start, "until": end}
        extra = _filters(bot, framework, params, "COALESCE(bot, '')")
        for b, fw, *sums in store.query(
                f"SELECT COALESCE(bot, ''), framework, {_ROW_SUMS} FROM traces "
                f"WHERE ts >= :since AND ts < :until AND {_FINISHED}{extra} GROUP BY 1, 2", params, raw=True):
            parts[(hour, b, fw)] = tuple(sums)
    for hour, b, fw, n, fail, tin, tout, cost, priced, dmin, dmax, hist in rows:
        k_read, k_rest = plan[hour][:2]
        pn, pfail, ptin, ptout, pcost, ppriced, durs = parts.pop((hour, b, fw), (0, 0, 0, 0, 0.0, 0, None))
        read = _durations(durs)
        if pn:
            acc.add((b, fw, k_read), pn, pfail, ptin, ptout, pcost, ppriced)
            acc.exact.setdefault((b, fw, k_read), []).extend(read)
        if n - pn <= 0:
            continue
        key = (b, fw, k_rest)
        acc.add(key, n - pn, fail - pfail, tin - ptin, tout - ptout, cost - pcost, priced - ppriced)
        h = durhist.Dense()
        h.add_blob(hist)
        h.add_dict({k: -c for k, c in durhist.count_many(read).items()})
        h.drop_negative()  # the rows and the roll-up are two reads: a commit may fall between them
        blob = h.blob()
        acc.add_hist(key, blob, dmin if blob else None, dmax)
        if dmin is not None and blob:
            acc.loose.add(key)
    for (hour, b, fw), (pn, pfail, ptin, ptout, pcost, ppriced, durs) in parts.items():
        # rows without a roll-up row (never: the roll-ups are kept with the rows) still count
        k_read = plan[hour][0]
        acc.add((b, fw, k_read), pn, pfail, ptin, ptout, pcost, ppriced)
        if durs:
            acc.exact.setdefault((b, fw, k_read), []).extend(_durations(durs))


def _add_hourly(store: TraceStore, acc: _Acc, start: float, end: float,
                bot: str | None, framework: str | None) -> None:
    """Whole hours [start, end) from the roll-ups, summed per bot in SQLite (no durations)."""
    store.bot_names()  # brings the kept counts and roll-ups up to date (an upgraded index recounts)
    params: dict[str, Any] = {"h0": int(start // HOUR), "h1": end / HOUR if math.isfinite(end) else 2**62}
    extra = _filters(bot, framework, params, "bot")
    for b, fw, n, fail, tin, tout, cost, priced in store.query(
            "SELECT bot, framework, SUM(n), SUM(fail), SUM(tin), SUM(tout), SUM(cost), SUM(priced) FROM hourly "
            f"WHERE hour >= :h0 AND hour < :h1{extra} GROUP BY 1, 2", params, raw=True):
        acc.add((b, fw, 0), n, fail, tin, tout, cost, priced)


def _add_raw(store: TraceStore, acc: _Acc, start: float, end: float, origin: float, width: float,
             bot: str | None, framework: str | None) -> None:
    """Rows with start <= ts < end (through the covering index), summed per bot and bucket (origin
    + k * width) in SQLite; the durations come back as one text per group (no Python per row)."""
    params: dict[str, Any] = {"since": start, "until": end, "origin": origin,
                              "width": width if math.isfinite(width) else 1e300}
    extra = _filters(bot, framework, params, "COALESCE(bot, '')")
    for b, fw, k, n, fail, tin, tout, cost, priced, durs in store.query(
            f"SELECT COALESCE(bot, ''), framework, CAST((ts - :origin) / :width AS INTEGER), {_ROW_SUMS} "
            f"FROM traces WHERE ts >= :since AND ts < :until AND {_FINISHED}{extra} GROUP BY 1, 2, 3", params, raw=True):
        key = (b, fw, k)
        acc.add(key, n, fail, tin, tout, cost, priced)
        if durs:
            acc.exact.setdefault(key, []).extend(_durations(durs))


def bot_summaries(store: TraceStore, *, since: float, until: float | None = None) -> list[BotSummary]:
    """Every bot the index knows (idle ones too, with zero counts), sorted by bot then framework.
    The whole hours of the window come from the hourly roll-ups, its ragged ends from the rows."""
    end = math.inf if until is None else until
    acc = _Acc()
    first_hour = math.ceil(since / HOUR) * HOUR
    last_hour = math.floor(end / HOUR) * HOUR if math.isfinite(end) else math.inf
    if first_hour < last_hour:
        _add_raw(store, acc, since, first_hour, since, math.inf, None, None)
        _add_hourly(store, acc, first_hour, last_hour, None, None)
        if math.isfinite(last_hour):
            _add_raw(store, acc, last_hour, end, since, math.inf, None, None)
    else:
        _add_raw(store, acc, since, end, since, math.inf, None, None)
    found: dict[tuple[str, str], BotSummary] = {}
    for (b, fw, _k), g in acc.groups.items():
        if g[0] <= 0:
            continue
        found[(b, fw)] = BotSummary(bot=b, framework=fw, last_activation=_last(store, b, fw, end),
                                    activations=int(g[0]), failures=int(g[1]),
                                    cost_usd=round(float(g[4]), 8) if g[5] > 0 else None, priced=int(g[5]))
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
