"""The fleet aggregates API (`chapterx.trace.aggregates`) over a real index: both frameworks,
bucket edges, percentiles, token split, idle bots, markers, an empty store, an older database."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chapterx.trace import aggregates as ag
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
