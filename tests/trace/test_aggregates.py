"""The fleet aggregates API (`chapterx.trace.aggregates`) over a real index: both frameworks,
bucket edges, percentiles, token split, idle bots, markers, an empty store, an older database."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chapterx.trace import aggregates as ag
from chapterx.trace import durhist
from chapterx.trace import index as ix
from chapterx.trace.store import TraceStore
from tests.trace.helpers import new_writer, write_activation

T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()  # an hour boundary
HOUR = 3600


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{round(ts * 1000) % 1000:03d}Z"


_n = 0


def _entry(ts: float, bot: str = "Alpha", *, success: bool = True, duration: int | None = 100,
           cost: float | None = 0.01, tokens: tuple[int, int] | None = (100, 10), total: int | None = None,
           error: str | None = None, channel: str = "10") -> dict[str, Any]:
    global _n
    _n += 1
    tid = f"{_n:032x}"
    e: dict[str, Any] = {"traceId": tid, "timestamp": _iso(ts), "channelId": channel,
                         "triggeringMessageId": str(9000 + _n), "botName": bot, "success": success,
                         "contextMessageIds": [], "sentMessageIds": [], "filename": f"{channel}-{tid}-x.json"}
    if duration is not None:
        e["durationMs"] = duration
    if cost is not None:
        e["cost"] = cost
    if tokens is not None:
        e["inputTokens"], e["outputTokens"] = tokens
        e["totalTokens"] = sum(tokens)
    if total is not None:
        e["totalTokens"] = total
    if error is not None:
        e["error"] = error
    return e


def _write(base: Path, entries: list[dict[str, Any]]) -> None:
    idx = base / "traces" / "index.jsonl"
    idx.parent.mkdir(parents=True, exist_ok=True)
    with open(idx, "a", encoding="utf-8") as fh:
        for e in entries:
            fh.write(json.dumps(e) + "\n")


def test_empty_store_answers_empty(tmp_path: Path, make_store: Any) -> None:
    store = make_store(tmp_path / "nothing")
    assert ag.bucket_stats(store, since=0, until=T0, bucket_seconds=HOUR) == []
    assert ag.bot_summaries(store, since=0) == []
    assert ag.latest_failures(store, since=0) == []
    with pytest.raises(ValueError):
        ag.bucket_stats(store, since=0, until=T0, bucket_seconds=0)


def test_bucket_edges_percentiles_and_tokens(tmp_path: Path, make_store: Any) -> None:
    entries = [
        _entry(T0 - 0.001, duration=999_999),             # just before `since`: left out
        _entry(T0, duration=10),                          # first instant of bucket 0
        _entry(T0 + 1800, duration=20, success=False, cost=None, error="boom"),
        _entry(T0 + HOUR - 0.001, duration=30, tokens=None, total=77),  # no split: total counts as input
        _entry(T0 + HOUR, duration=40),                   # first instant of bucket 1
        _entry(T0 + 2 * HOUR, duration=50),               # == until: left out
        _entry(T0 + 10, bot="Beta", duration=None, cost=0.5),
    ]
    _write(tmp_path, entries)
    store = make_store(tmp_path)
    got = ag.bucket_stats(store, since=T0, until=T0 + 2 * HOUR, bucket_seconds=HOUR)
    assert [(b.bot, b.framework, b.bucket_start, b.activations, b.failures) for b in got] == [
        ("Alpha", "chapterx", T0, 3, 1), ("Alpha", "chapterx", T0 + HOUR, 1, 0),
        ("Beta", "chapterx", T0, 1, 0)]
    first = got[0]
    # nearest rank over [10, 20, 30]: p50 is the 2nd value, p95 the 3rd
    assert (first.p50_ms, first.p95_ms) == (20.0, 30.0)
    assert (first.input_tokens, first.output_tokens) == (100 + 100 + 77, 10 + 10)
    assert first.cost_usd == pytest.approx(0.02)
    assert (got[1].p50_ms, got[1].p95_ms) == (40.0, 40.0)
    assert (got[2].p50_ms, got[2].p95_ms, got[2].cost_usd) == (None, None, 0.5)
    only_beta = ag.bucket_stats(store, since=T0, until=T0 + 2 * HOUR, bucket_seconds=HOUR, bot="Beta")
    assert [b.bot for b in only_beta] == ["Beta"]
    assert ag.bucket_stats(store, since=T0, until=T0 + 2 * HOUR, bucket_seconds=HOUR, framework="chapter2") == []
    # a bucket width that does not divide the window: the last bucket is cut at `until`
    odd = ag.bucket_stats(store, since=T0, until=T0 + HOUR, bucket_seconds=2400, bot="Alpha")
    assert [(b.bucket_start, b.activations) for b in odd] == [(T0, 2), (T0 + 2400, 1)]
    assert (odd[0].p50_ms, odd[0].p95_ms) == (10.0, 20.0)
    # an `until` inside an hour: whole hours from the roll-ups, the rest from the rows
    ragged = ag.bucket_stats(store, since=T0, until=T0 + HOUR + 1, bucket_seconds=2 * HOUR, bot="Alpha")
    assert [(b.activations, b.failures, b.input_tokens) for b in ragged] == [(4, 1, 100 + 100 + 77 + 100)]


def test_both_frameworks_summaries_and_failures(tmp_path: Path, make_store: Any) -> None:
    _write(tmp_path, [
        _entry(T0 - 5 * HOUR, bot="Idle"),                # only before the window
        _entry(T0 + 1, success=False, error="first"),
        _entry(T0 + 2, success=False, error="second", channel="11"),
        _entry(T0 + 3),
    ])
    store = make_store(tmp_path)
    store.add_external([{"traceId": "c2trace0001", "timestamp": _iso(T0 + 4), "channelId": "20",
                         "botName": "em-one", "success": False, "durationMs": 70, "totalTokens": 0,
                         "error": "chapter2 failed"},
                        {"traceId": "c2trace0002", "timestamp": _iso(T0 + 5), "channelId": "20",
                         "botName": "em-one", "success": True, "durationMs": 90, "totalTokens": 0}])
    summaries = ag.bot_summaries(store, since=T0)
    assert [(s.bot, s.framework, s.activations, s.failures) for s in summaries] == [
        ("Alpha", "chapterx", 3, 2), ("Idle", "chapterx", 0, 0), ("em-one", "chapter2", 2, 1)]
    idle = summaries[1]
    assert idle.last_activation == pytest.approx(T0 - 5 * HOUR) and idle.cost_usd == 0.0
    assert summaries[0].last_activation == pytest.approx(T0 + 3)
    assert summaries[0].cost_usd == pytest.approx(0.03)
    # `until` bounds both the window and the last activation
    early = ag.bot_summaries(store, since=T0, until=T0 + 2)
    assert [(s.bot, s.activations, s.last_activation) for s in early if s.bot == "Alpha"] == [
        ("Alpha", 1, pytest.approx(T0 + 1))]
    assert [s.bot for s in early] == ["Alpha", "Idle"]

    fails = ag.latest_failures(store, since=T0)
    assert [(f.bot, f.framework, f.error) for f in fails] == [
        ("em-one", "chapter2", "chapter2 failed"), ("Alpha", "chapterx", "second"), ("Alpha", "chapterx", "first")]
    assert fails[1].channel_id == "11" and fails[1].timestamp == pytest.approx(T0 + 2)
    assert [f.error for f in ag.latest_failures(store, since=T0, limit=1, bot="Alpha")] == ["second"]
    assert ag.latest_failures(store, since=T0 + 10) == []
    c2 = ag.bucket_stats(store, since=T0, until=T0 + HOUR, bucket_seconds=HOUR, framework="chapter2")
    assert [(b.bot, b.activations, b.failures) for b in c2] == [("em-one", 2, 1)]
    assert (c2[0].p50_ms, c2[0].p95_ms) == (70.0, 90.0)


def _marker(base: Path, trace_id: str, ts: float, pid: int) -> None:
    mdir = base / "traces" / "Alpha" / ".inprogress"
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / f"{trace_id}.json").write_text(json.dumps({
        "traceId": trace_id, "timestamp": _iso(ts), "channelId": "10", "botId": "Alpha",
        "_writer": {"pid": pid, "host": socket.gethostname()}}))


def test_running_markers_wait_and_aborted_ones_are_failures(tmp_path: Path, make_store: Any) -> None:
    _write(tmp_path, [_entry(T0 + 1)])
    _marker(tmp_path, "a" * 32, T0 + 2, os.getpid())  # this process: still running
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    _marker(tmp_path, "b" * 32, T0 + 3, dead)  # its writer is gone: aborted
    store = make_store(tmp_path)
    [summary] = ag.bot_summaries(store, since=T0)
    assert (summary.activations, summary.failures) == (2, 1)
    assert [f.trace_id for f in ag.latest_failures(store, since=T0)] == ["b" * 32]
    [bucket] = ag.bucket_stats(store, since=T0, until=T0 + HOUR, bucket_seconds=HOUR)
    assert bucket.activations == 2


def test_written_traces_carry_the_token_split(tmp_path: Path, make_store: Any) -> None:
    writer = new_writer(tmp_path, background=False)
    write_activation(writer, calls=2)
    store = make_store(tmp_path)
    [bucket] = ag.bucket_stats(store, since=0, until=4e9, bucket_seconds=86400)
    assert (bucket.input_tokens, bucket.output_tokens) == (200, 20)
    assert bucket.cost_usd > 0


def test_database_from_before_the_token_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    old_schema = ix._SCHEMA.replace(",\n  input_tokens INTEGER,\n  output_tokens INTEGER", "")
    assert "input_tokens" not in old_schema
    conn.executescript(old_schema)
    conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(ix.SCHEMA_VERSION),))
    conn.commit()
    conn.close()
    _write(tmp_path, [_entry(T0, tokens=(5, 6))])
    store = TraceStore([tmp_path], index_path=db, auto_refresh_interval=0.0)
    try:
        [bucket] = ag.bucket_stats(store, since=T0, until=T0 + 1, bucket_seconds=60)
        assert (bucket.input_tokens, bucket.output_tokens) == (5, 6)
    finally:
        store.close()


def _recount(store: TraceStore) -> dict[str, Any]:
    c = store.conn
    return {
        "traces": c.execute("SELECT COUNT(*) FROM traces").fetchone()[0],
        "byStatus": dict(c.execute("SELECT COALESCE(status, CASE WHEN success THEN 'success' ELSE 'failed' END), "
                                   "COUNT(*) FROM traces GROUP BY 1").fetchall()),
        "byBot": dict(c.execute("SELECT COALESCE(bot, ''), COUNT(*) FROM traces GROUP BY 1").fetchall()),
        "byFramework": dict(c.execute("SELECT framework, COUNT(*) FROM traces GROUP BY 1").fetchall()),
        "totalTokens": c.execute("SELECT COALESCE(SUM(total_tokens), 0) FROM traces").fetchone()[0],
        "cost": pytest.approx(c.execute("SELECT COALESCE(SUM(cost), 0) FROM traces").fetchone()[0], abs=1e-6),
        "pricedActivations": c.execute("SELECT COUNT(cost) FROM traces").fetchone()[0],
        # one per (message, trace, role): trigger/sent rows plus each trace's context ids
        "messageRows": c.execute("SELECT (SELECT COUNT(*) FROM messages) + "
                                 "(SELECT COALESCE(SUM(n), 0) FROM ctx)").fetchone()[0],
    }


def test_stats_come_from_kept_counts_that_match_a_recount(tmp_path: Path, make_store: Any) -> None:
    from datetime import timedelta

    from chapterx.trace.prune import prune_store

    old = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    entries = [_entry(T0 + i, bot=("Alpha", "Beta", None)[i % 3], success=i % 4 != 0,
                      cost=None if i % 5 == 0 else 0.01) for i in range(30)]
    for e in entries[:3]:
        e.pop("cost", None)
        e.pop("status", None)
    entries.append(_entry(old, bot="Gone"))
    for e in entries:
        e["contextMessageIds"] = [str(int(e["triggeringMessageId"]) + k) for k in range(3)]
    _write(tmp_path, entries)
    store = make_store(tmp_path)
    store.add_external([{"traceId": f"c2{i:030x}", "timestamp": _iso(T0 + 100 + i), "channelId": "20",
                         "botName": "em", "success": i % 2 == 0, "contextMessageIds": [str(70000 + i)]}
                        for i in range(4)])
    _marker(tmp_path, "a" * 32, T0 + 500, os.getpid())
    store.list_traces(limit=200)  # enriches upstream-shaped rows (status/cost from files: none here)

    def check() -> None:
        got = store.stats()
        want = _recount(store)
        assert {k: got[k] for k in want} == want

    check()
    store.remove_external([f"c2{1:030x}"])
    check()
    prune_store(store, timedelta(days=365))
    assert "Gone" not in store.stats()["byBot"]
    check()
    # an older database recounts once on open
    store.conn.execute("DELETE FROM counts")
    store.conn.execute("UPDATE meta SET value='1' WHERE key='counts_version'")
    again = TraceStore([tmp_path], index_path=store.index_path, auto_refresh_interval=0.0)
    try:
        assert again.stats()["traces"] == _recount(store)["traces"] > 0
    finally:
        again.close()


def test_hourly_rollups_match_the_rows_after_every_kind_of_change(tmp_path: Path, make_store: Any) -> None:
    from datetime import timedelta

    from chapterx.trace.prune import prune_store

    old = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    entries = [_entry(T0 + i * 617.0, bot=("Alpha", "Beta", None)[i % 3], success=i % 4 != 0,
                      duration=None if i % 7 == 0 else 50 + (i * 37) % 900, cost=0.01 * (i % 3))
               for i in range(60)]
    for e in entries[:5]:  # upstream-shaped: no status, no cost, no token split (enriched on read)
        for k in ("cost", "status", "inputTokens", "outputTokens"):
            e.pop(k, None)
    entries.append(_entry(old, bot="Gone"))
    _write(tmp_path, entries)
    store = make_store(tmp_path)
    store.add_external([{"traceId": f"c2{i:030x}", "timestamp": _iso(T0 + 99 + i * 900), "channelId": "20",
                         "botName": "em", "success": i % 2 == 0, "durationMs": 10 * i} for i in range(6)])
    _marker(tmp_path, "a" * 32, T0 + 500, os.getpid())  # running: not counted
    store.list_traces(limit=200)
    store.remove_external([f"c2{2:030x}"])
    prune_store(store, timedelta(days=365))

    def exact(since: float, until: float) -> dict[tuple[str, str], tuple[int, int, int, int, Any, list[int]]]:
        out: dict[tuple[str, str], Any] = {}
        for r in store.query("SELECT COALESCE(bot, '') AS b, framework AS f, success, duration_ms AS d, "
                             "COALESCE(input_tokens, total_tokens, 0) AS i, COALESCE(output_tokens, 0) AS o, "
                             "cost AS c FROM traces WHERE ts >= ? AND ts < ? "
                             "AND COALESCE(status, '') <> 'running'", (since, until)):
            g = out.setdefault((r["b"], r["f"]), [0, 0, 0, 0, None, []])
            g[0] += 1
            g[1] += 0 if r["success"] else 1
            g[2] += r["i"]
            g[3] += r["o"]
            if r["c"] is not None:  # the cost of the priced ones; None when none was priced
                g[4] = (g[4] or 0.0) + r["c"]
            if r["d"] is not None:
                g[5].append(r["d"])
        return out

    def same_cost(got: float | None, want: float | None) -> bool:
        return got is None if want is None else got == pytest.approx(want, abs=1e-6)

    until = T0 + 12 * HOUR
    want = exact(T0, until)
    assert any(w[4] is None for w in want.values()) and any(w[4] is not None for w in want.values())
    for exact_max in (ag.EXACT_MAX, 0):  # rows read one by one / the hours' histograms
        got = ag.bucket_stats(store, since=T0, until=until, bucket_seconds=12 * HOUR, exact_max=exact_max)
        assert {(b.bot, b.framework) for b in got} == set(want)
        for b in got:
            n, fail, tin, tout, cost, durations = want[(b.bot, b.framework)]
            assert (b.activations, b.failures, b.input_tokens, b.output_tokens) == (n, fail, tin, tout)
            assert same_cost(b.cost_usd, cost)
            d = sorted(durations)
            p50, p95 = d[max(1, -(-len(d) // 2)) - 1], d[max(1, -(-len(d) * 95 // 100)) - 1]
            if exact_max:
                assert (b.p50_ms, b.p95_ms) == (p50, p95)
            else:
                assert b.p50_ms == pytest.approx(p50, rel=0.02, abs=0.5)
                assert b.p95_ms == pytest.approx(p95, rel=0.02, abs=0.5)
    got = ag.bucket_stats(store, since=T0, until=until, bucket_seconds=12 * HOUR, exact_max=0)
    summaries = {(s.bot, s.framework): s for s in ag.bot_summaries(store, since=T0 + 1234.5, until=until - 77)}
    part = exact(T0 + 1234.5, until - 77)
    for key, (n, fail, _i, _o, cost, _d) in part.items():
        s = summaries[key]
        assert (s.activations, s.failures) == (n, fail) and same_cost(s.cost_usd, cost)
    # a database whose roll-ups were never kept (an upgrade) rebuilds them once
    store.conn.execute("DELETE FROM hourly")
    store.conn.execute("UPDATE meta SET value='1' WHERE key='counts_dirty'")
    store._cache.clear()
    again = ag.bucket_stats(store, since=T0, until=until, bucket_seconds=12 * HOUR, exact_max=0)
    assert again == got


# ----------------------------------------------------------------------------- histograms


def _nearest_rank(values: list[int], p: float) -> int:
    d = sorted(values)
    return d[max(1, math.ceil(len(d) * p)) - 1]


def _within(got: float | None, want: int) -> bool:
    """The documented precision of a histogram percentile (`chapterx.trace.durhist`)."""
    return got is not None and abs(got - want) <= durhist.RELATIVE_ERROR * abs(want) + 0.5


_DISTRIBUTIONS: dict[str, Any] = {
    "uniform": lambda r, n: [r.randrange(800, 9800) for _ in range(n)],
    "lognormal": lambda r, n: [int(r.lognormvariate(7.5, 1.2)) for _ in range(n)],
    "heavy tail": lambda r, n: [int(r.paretovariate(1.1) * 300) for _ in range(n)],
    "small ints": lambda r, n: [r.randrange(0, 40) for _ in range(n)],
    "two clusters": lambda r, n: [r.choice((120, 45_000)) + r.randrange(5) for _ in range(n)],
    "all equal": lambda r, n: [5000] * n,
}


@pytest.mark.parametrize("name", sorted(_DISTRIBUTIONS))
def test_histogram_percentiles_within_the_documented_error(name: str) -> None:
    rng = random.Random(name)
    for n in (1, 2, 3, 20, 137, 5000):
        values = _DISTRIBUTIONS[name](rng, n)
        # split over "hours", each stored as a blob, merged back as a read does
        merged = durhist.Dense()
        for part in range(0, n, max(1, n // 7)):
            one: dict[int, int] = {}
            for ms in values[part:part + max(1, n // 7)]:
                durhist.count_into(one, ms)
            h = durhist.Dense()
            h.add_dict(one)
            merged.add_blob(h.blob())
        assert merged.total() == n
        lo, hi = min(values), max(values)
        for p in (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
            want = _nearest_rank(values, p)
            got = merged.percentile(p, lo, hi)
            assert _within(got, want), (name, n, p, got, want)
        assert merged.percentile(1.0, lo, hi) == hi and merged.percentile(1 / (2 * n), lo, hi) == lo
        if lo == hi:  # all equal (and one row): exact
            assert merged.percentile(0.5, lo, hi) == merged.percentile(0.95, lo, hi) == lo


def test_histogram_delete_gives_back_exactly_the_rest() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(7, 1)) for _ in range(500)]
    gone = set(rng.sample(range(500), 200))
    both = durhist.Dense()
    plus: dict[int, int] = {}
    minus: dict[int, int] = {}
    rest: dict[int, int] = {}
    for i, ms in enumerate(values):
        durhist.count_into(plus, ms)
        if i in gone:
            durhist.count_into(minus, ms, -1)
        else:
            durhist.count_into(rest, ms)
    both.add_dict(plus)
    both.add_dict(minus)
    only = durhist.Dense()
    only.add_dict(rest)
    assert both.blob() == only.blob() and both.total() == 300
    emptied = durhist.Dense()
    emptied.add_dict(plus)
    emptied.add_dict({k: -v for k, v in plus.items()})
    assert emptied.blob() is None and emptied.percentile(0.5, None, None) is None
    raced = durhist.Dense()  # a difference across two reads can go below zero: never a negative count
    raced.add_dict({100: 2, 120: 1})
    raced.add_dict({100: -3})
    raced.drop_negative()
    assert raced.total() == 1 and raced.percentile(0.5, None, None) == durhist.value(120)


def _spread(rng: random.Random, bot: str, dist: str, start: float, hours: int, per_hour: int,
            cost: Any = 0.01) -> list[dict[str, Any]]:
    out = []
    for h in range(hours):
        for ms in _DISTRIBUTIONS[dist](rng, per_hour):
            out.append(_entry(start + h * HOUR + rng.uniform(0, HOUR - 1), bot=bot, duration=ms,
                              cost=cost() if callable(cost) else cost, success=rng.random() > 0.1))
    return out


def test_bucket_stats_from_histograms_match_the_rows(tmp_path: Path, make_store: Any) -> None:
    rng = random.Random(14)
    entries = (_spread(rng, "Wide", "lognormal", T0, 30, 40) + _spread(rng, "Flat", "all equal", T0, 30, 5)
               + _spread(rng, "Tail", "heavy tail", T0 + 5 * HOUR, 3, 60)
               + [_entry(T0 + 26 * HOUR + 10, bot="Solo", duration=4321)])
    _write(tmp_path, entries)
    store = make_store(tmp_path)

    def rows(since: float, until: float, bot: str) -> list[int]:
        return [e["durationMs"] for e in entries if e["botName"] == bot
                and since <= datetime.fromisoformat(e["timestamp"]).timestamp() < until]

    # aligned daily buckets; a window starting mid-hour with 5 h buckets (cut hours and ragged
    # ends are read as rows, merged with the whole hours' histograms); hourly buckets on hour
    # edges (one roll-up row each) with a ragged last hour; hours cut near their start / end (the
    # smaller side is read, the rest derived from the hour's roll-up)
    for since, until, width in ((T0, T0 + 2 * 86400, 86400), (T0 + 1800, T0 + 29 * HOUR + 77, 5 * HOUR),
                                (T0, T0 + 26 * HOUR + 600, HOUR), (T0 + 2700, T0 + 29 * HOUR, 3 * HOUR),
                                (T0 + 600, T0 + 20 * HOUR + 600, HOUR)):
        exact = {(b.bot, b.bucket_start): b for b in ag.bucket_stats(
            store, since=since, until=until, bucket_seconds=width)}
        hist = ag.bucket_stats(store, since=since, until=until, bucket_seconds=width, exact_max=0)
        assert {(b.bot, b.bucket_start) for b in hist} == set(exact)
        for b in hist:
            d = rows(b.bucket_start, min(until, b.bucket_start + width), b.bot)
            e = exact[(b.bot, b.bucket_start)]
            assert (b.activations, b.failures, b.priced) == (e.activations, e.failures, e.priced) == (
                len(d), e.failures, len(d))
            assert (b.input_tokens, b.output_tokens) == (e.input_tokens, e.output_tokens)
            assert b.cost_usd == pytest.approx(e.cost_usd, abs=1e-9)
            assert (e.p50_ms, e.p95_ms) == (_nearest_rank(d, 0.5), _nearest_rank(d, 0.95))  # exact mode
            assert _within(b.p50_ms, _nearest_rank(d, 0.5)) and _within(b.p95_ms, _nearest_rank(d, 0.95))
            if b.bot in ("Flat", "Solo"):  # all equal / one row: exact from the histograms too
                assert (b.p50_ms, b.p95_ms) == (e.p50_ms, e.p95_ms)
    # one bot's filter reads only its hours
    [solo] = ag.bucket_stats(store, since=T0, until=T0 + 2 * 86400, bucket_seconds=86400, bot="Solo", exact_max=0)
    assert (solo.activations, solo.p50_ms, solo.p95_ms) == (1, 4321.0, 4321.0)


def _hourly_table(store: TraceStore) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {(h, b, f): (n, fail, tin, tout, round(cost, 6), priced, dmin, dmax, hist)
            for h, b, f, n, fail, tin, tout, cost, priced, dmin, dmax, hist in store.conn.execute(
                "SELECT hour, bot, framework, n, fail, tin, tout, cost, priced, dmin, dmax, hist FROM hourly "
                "WHERE n <> 0")}


def test_deletes_decrement_the_rollups_exactly(tmp_path: Path, make_store: Any) -> None:
    """After inserts, chapter2 rewrites and removals, and a prune that cuts an hour in two (taking
    that hour's smallest and largest durations), the kept roll-ups equal a recount from the rows."""
    from datetime import timedelta

    from chapterx.trace.prune import prune_store

    rng = random.Random(3)
    start = (int(time.time()) // HOUR - 30) * HOUR
    entries = _spread(rng, "Alpha", "lognormal", start, 6, 25,
                      cost=lambda: None if rng.random() < 0.3 else round(rng.random() / 50, 4))
    cut = start + 2 * HOUR + 1800  # the prune's cutoff, mid-hour
    entries += [_entry(cut - 600, duration=1), _entry(cut - 300, duration=10**7),  # that hour's extremes go
                _entry(cut + 600, duration=77)]
    _write(tmp_path, entries)
    store = make_store(tmp_path)
    store.add_external([{"traceId": f"c2{i:030x}", "timestamp": _iso(start + i * 1700), "channelId": "20",
                         "botName": "em", "success": i % 3 > 0, "durationMs": 100 + 37 * i} for i in range(12)])
    store.add_external([{"traceId": f"c2{4:030x}", "timestamp": _iso(start + 5 * HOUR), "channelId": "20",
                         "botName": "em", "success": False, "durationMs": 9}])  # rewritten: moved hour
    store.remove_external([f"c2{7:030x}", f"c2{0:030x}"])
    before_prune = _hourly_table(store)
    prune_store(store, timedelta(seconds=time.time() - cut))
    kept = _hourly_table(store)
    assert kept != before_prune
    hour = int(cut // HOUR)
    assert kept[(hour, "Alpha", "chapterx")][6:8] == (
        store.conn.execute("SELECT MIN(duration_ms), MAX(duration_ms) FROM traces WHERE bot = 'Alpha' "
                           "AND ts >= ? AND ts < ?", (hour * HOUR, (hour + 1) * HOUR)).fetchone())
    store.conn.execute("UPDATE meta SET value='1' WHERE key='counts_dirty'")
    ix.counts_ready(store.conn)
    assert _hourly_table(store) == kept


def test_costs_unknown_known_and_mixed(tmp_path: Path, make_store: Any) -> None:
    """No activation priced: cost None (unknown), not 0; some priced: their cost and how many; a
    cost learnt later from the trace file counts the activation as priced."""
    _write(tmp_path, [_entry(T0 + 10, bot="Unpriced", cost=None), _entry(T0 + 20, bot="Unpriced", cost=None),
                      _entry(T0 + 30, bot="Mixed", cost=0.25), _entry(T0 + 40, bot="Mixed", cost=None),
                      _entry(T0 + 50, bot="Free", cost=0.0)])
    store = make_store(tmp_path)
    for exact_max in (ag.EXACT_MAX, 0):
        got = {b.bot: b for b in ag.bucket_stats(store, since=T0, until=T0 + HOUR, bucket_seconds=HOUR,
                                                 exact_max=exact_max)}
        assert (got["Unpriced"].cost_usd, got["Unpriced"].priced) == (None, 0)
        assert (got["Mixed"].cost_usd, got["Mixed"].priced, got["Mixed"].activations) == (0.25, 1, 2)
        assert (got["Free"].cost_usd, got["Free"].priced) == (0.0, 1)  # known zero stays $0
    sums = {s.bot: s for s in ag.bot_summaries(store, since=T0 - 10)}
    assert (sums["Unpriced"].cost_usd, sums["Mixed"].cost_usd, sums["Mixed"].priced) == (None, 0.25, 1)
    # the fleet page's data: null (unknown) for the table and the day, the count beside a mix
    from chapterx.viewer import fleet

    rollup = fleet.Rollup(store)
    w = fleet.window(86400, fleet.HOUR, T0 + 1800)
    rows = {r["bot"]: r for r in fleet.bots(rollup, w)["bots"]}
    assert (rows["Unpriced"]["costUsd"], rows["Unpriced"]["pricedActivations"]) == (None, 0)
    assert (rows["Mixed"]["costUsd"], rows["Mixed"]["pricedActivations"]) == (0.25, 1)
    assert rows["Free"]["costUsd"] == 0.0
    daily = {s["bot"]: s for s in fleet.daily(rollup, fleet.window(3 * 86400, fleet.DAY, T0 + 1800))["series"]}
    assert daily["Unpriced"]["costUsd"] == [0.0, 0.0, None]  # idle days cost 0, its day is unknown
    assert daily["Mixed"]["costUsd"][-1] == 0.25 and daily["Mixed"]["pricedActivations"][-1] == 1


def test_cost_learnt_from_the_trace_file_counts_as_priced(tmp_path: Path, make_store: Any) -> None:
    writer = new_writer(tmp_path, background=False)
    write_activation(writer, calls=2)
    idx = next(tmp_path.rglob("index.jsonl"))
    lines = [json.loads(line) for line in idx.read_text().splitlines()]
    for e in lines:  # upstream-shaped: the line carries no cost and no status
        e.pop("cost", None)
        e.pop("status", None)
    idx.write_text("".join(json.dumps(e) + "\n" for e in lines))
    store = make_store(tmp_path)
    [before] = ag.bucket_stats(store, since=0, until=4e9, bucket_seconds=86400, exact_max=0)
    assert (before.cost_usd, before.priced) == (None, 0)
    store.list_traces(limit=10)  # reads the file: status and cost kept in the index
    [after] = ag.bucket_stats(store, since=0, until=4e9, bucket_seconds=86400, exact_max=0)
    assert after.priced == 1 and after.cost_usd is not None and after.cost_usd > 0
    kept = _hourly_table(store)
    store.conn.execute("UPDATE meta SET value='1' WHERE key='counts_dirty'")
    ix.counts_ready(store.conn)
    assert _hourly_table(store) == kept


def test_index_with_the_old_hourly_table_is_upgraded_on_open(tmp_path: Path) -> None:
    """An index written before the histograms (counts version 3: no priced/min/max/hist columns)
    gets them filled from its rows on open, once; the answers equal a fresh index's."""
    rng = random.Random(5)
    _write(tmp_path, _spread(rng, "Alpha", "uniform", T0, 5, 30)
           + _spread(rng, "Beta", "lognormal", T0, 5, 30, cost=None))
    db = tmp_path / "old.sqlite"
    store = TraceStore([tmp_path], index_path=db, auto_refresh_interval=0.0)
    want = ag.bucket_stats(store, since=T0, until=T0 + 86400, bucket_seconds=86400, exact_max=0)
    assert {b.bot: b.cost_usd is None for b in want} == {"Alpha": False, "Beta": True}
    store.close()
    conn = sqlite3.connect(db)
    for col in ("priced", "dmin", "dmax", "hist"):
        conn.execute(f"ALTER TABLE hourly DROP COLUMN {col}")
    conn.execute("UPDATE meta SET value='3' WHERE key='counts_version'")
    conn.commit()
    conn.close()
    again = TraceStore([tmp_path], index_path=db, auto_refresh_interval=0.0)
    try:
        cols = {r[1] for r in again.conn.execute("PRAGMA table_info(hourly)")}
        assert {"priced", "dmin", "dmax", "hist"} <= cols
        assert again.conn.execute("SELECT value FROM meta WHERE key='counts_dirty'").fetchone()[0] == "1"
        assert ag.bucket_stats(again, since=T0, until=T0 + 86400, bucket_seconds=86400, exact_max=0) == want
        assert again.conn.execute("SELECT COUNT(*) FROM hourly WHERE hist IS NULL AND n > 0").fetchone()[0] == 0
    finally:
        again.close()
