"""Benchmark the trace store's SQLite index at scale.

    python bench/bench_trace_index.py [--lines 1000000] [--dir /tmp/cx-bench] [--reuse] [--reads-only] [--cost-split]

Generates a tree with `bench/gen_traces.py`, builds the index from `index.jsonl` (rate in lines/s),
then measures p50/p95 of `list_traces` (first page; page filtered by bot + channel; failed only)
and `search` by message id, a cold open of the persisted index, tailing of new lines, the first
(uncached) count of a bot + failed filter, and the `text=` filter for rare, medium, absent,
everywhere and 2-character queries (full-text candidates recomputed every run).
Also (issue 14): the first build in a child process (lines/s and its peak RSS), the index size
against `index.jsonl`, `stats()` and the fleet aggregates, and the catch-up stall: a background
store (the viewer's mode) answering list/search while another process appends 10k lines at full
speed (p50/p99/max per request, and how long until a search sees the last line).
Lines carry 200 context ids by default (`--context`), the size real activations write.
Targets (issue 4): search p50 < 10 ms and list p50 < 20 ms at 1M lines.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_traces import generate_tree
from chapterx.trace.store import TraceStore


def _percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95))]


def _time(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return _percentiles(out)


def _build(logs: Path, index_path: Path, out: Any) -> None:
    """Child process: the first build, as `chapterx traces reindex` or a first viewer start runs it."""
    store = TraceStore([logs], index_path=index_path, auto_refresh_interval=3600)
    t = time.perf_counter()
    stats = store.refresh()
    out.put((stats.lines, time.perf_counter() - t))
    store.close()


def _append(idx: Path, lines: list[bytes]) -> None:
    """Child process: a bot fleet writing as fast as it can (one write per line, like the writer)."""
    with open(idx, "ab", buffering=0) as fh:
        for line in lines:
            fh.write(line)


def fresh_lines(idx: Path, n_lines: int) -> tuple[list[bytes], str]:
    """The last `n_lines` of `idx` again, with new trace ids, the last one carrying a new message id
    (returned: a search for it tells when the appended lines are in)."""
    with open(idx, "rb") as src:
        src.seek(max(0, idx.stat().st_size - (n_lines + 10) * 12_000))
        tail = src.read().split(b"\n")[1:-1][-n_lines:]
    marker = str(random.randrange(10**17, 9 * 10**17))  # new every run (trees are reused)
    fresh = []
    for i, raw in enumerate(tail):
        e = json.loads(raw)
        e["traceId"] = f"feed{random.getrandbits(64):016x}{i:012x}"
        if i == len(tail) - 1:
            e["contextMessageIds"] = [*e.get("contextMessageIds", []), marker]
        fresh.append((json.dumps(e, separators=(",", ":")) + "\n").encode())
    return fresh, marker


def _catch_up(logs: Path, index_path: Path, samples: list[str], n_lines: int) -> dict[str, object]:
    idx = logs / "traces" / "index.jsonl"
    fresh, marker = fresh_lines(idx, n_lines)
    store = TraceStore([logs], index_path=index_path, auto_refresh_interval=0.5, background=True)
    before = store.list_traces(limit=1)["total"]
    rng = random.Random(3)
    lat: list[float] = []
    ctx = mp.get_context("spawn")
    writer = ctx.Process(target=_append, args=(idx, fresh))
    t0 = time.perf_counter()
    writer.start()
    seen_at = None
    while time.perf_counter() - t0 < 600:
        for call in (lambda: store.list_traces(limit=50), lambda: store.search(rng.choice(samples))):
            t = time.perf_counter()
            call()
            lat.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        hit = store.search(marker)["total"]
        lat.append((time.perf_counter() - t) * 1000)
        if hit:
            seen_at = time.perf_counter() - t0
            break
    writer.join()
    deadline = time.perf_counter() + 600
    while store.list_traces(limit=1)["total"] < before + len(fresh) and time.perf_counter() < deadline:
        time.sleep(0.2)
    all_in = time.perf_counter() - t0
    total = store.list_traces(limit=1)["total"]
    store.close()
    lat.sort()
    return {"catchup_lines": len(fresh), "catchup_rows_added": total - before,
            "catchup_all_rows_in_s": round(all_in, 1),
            "catchup_until_search_sees_last_s": None if seen_at is None else round(seen_at, 2),
            "catchup_requests": len(lat),
            "catchup_request_ms_p50_p99_max": (round(statistics.median(lat), 2),
                                               round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
                                               round(lat[-1], 2))}


def cost_split(index_file: Path, db: Path, block_mb: int = 16) -> dict[str, object]:
    """Where a first build's CPU goes, per line, in one process (CPU time, so other work on the
    box changes it less than it changes wall time): parsing a block as a build worker does, the
    round trip of its rows to the inserting process (pickle), the inserts, then the secondary
    indexes and the FTS table. The SQLite part runs on one connection (one writer), so it bounds
    the build rate whatever the parsing costs."""
    import pickle

    from chapterx.trace import index as ix

    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    conn = ix.connect(db)
    conn.execute(f"PRAGMA cache_size=-{ix.BULK_CACHE_KB}")
    for name in ix._INDEX_NAMES:
        if name not in ix._KEPT_IN_BULK:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
    ix.suspend_fts(conn)
    spent = dict.fromkeys(("parse", "transfer", "insert", "indexes", "fts"), 0.0)
    lines = 0
    next_id = 1
    offset = 0
    clock = time.process_time
    with open(index_file, "rb") as fh:
        while True:
            data = os.pread(fh.fileno(), block_mb << 20, offset)
            cut = data.rfind(b"\n")
            if cut < 0:
                break
            n = data.count(b"\n", 0, cut + 1)
            t0 = clock()
            got = ix.prepare_bulk_at(str(index_file), offset, cut + 1, n, 1, next_id)
            if got is None:
                raise SystemExit(f"{index_file} changed while it was measured")
            prepared, _bad, summary, heads, _tails = got
            t1 = clock()
            # what a worker's result costs to cross to the inserting process (bytes we made just now)
            prepared, summary = pickle.loads(pickle.dumps((prepared, summary), protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301
            t2 = clock()
            prepared[4].extend((k, chan) for chan, keys in heads.items() for k in keys)
            with ix.transaction(conn):
                ix.insert_prepared(conn, prepared, next_id + n, summary)
            t3 = clock()
            spent["parse"] += t1 - t0
            spent["transfer"] += t2 - t1
            spent["insert"] += t3 - t2
            lines += n
            next_id += n
            offset += cut + 1
    conn.execute("PRAGMA temp_store=FILE")
    t0 = clock()
    with ix.transaction(conn):
        for stmt in ix._INDEXES:
            conn.execute(stmt)
    t1 = clock()
    with ix.transaction(conn):
        ix.resume_fts(conn)
    spent["indexes"] = t1 - t0
    spent["fts"] = clock() - t1
    conn.close()
    us = {k: round(v / max(1, lines) * 1e6, 1) for k, v in spent.items()}
    sqlite_us = us["insert"] + us["indexes"] + us["fts"]
    total_us = sum(us.values())
    return {"lines": lines, "cpu_us_per_line": us, "sqlite_us_per_line": round(sqlite_us, 1),
            "ceiling_one_writer_lines_per_s": int(1e6 / sqlite_us),
            "ceiling_two_cores_lines_per_s": int(2e6 / total_us), "loadavg": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/chapterx-trace-bench"))
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--reuse", action="store_true", help="reuse an existing generated tree")
    ap.add_argument("--context", type=int, default=200, help="context ids per generated line")
    ap.add_argument("--catch-up-lines", type=int, default=10_000)
    ap.add_argument("--generate-only", action="store_true", help="only write the tree (reused with --reuse)")
    ap.add_argument("--catch-up-only", action="store_true",
                    help="with --reuse and a built index: only the catch-up measurement")
    ap.add_argument("--reads-only", action="store_true",
                    help="with --reuse: keep an index built by an earlier run (no build figures)")
    ap.add_argument("--cost-split", action="store_true",
                    help="with --reuse: the first build's CPU per line by stage, in one process")
    args = ap.parse_args(argv)
    logs = args.dir / "logs"
    index_path = args.dir / "index.sqlite"
    meta_path = args.dir / "meta.json"
    results: dict[str, object] = {"lines": args.lines}

    if args.reuse and meta_path.exists():
        meta = json.loads(meta_path.read_text())
    else:
        tree = generate_tree(logs, args.lines, files=1000, context=args.context)
        meta = {"samples": tree.sample_message_ids, "bots": tree.bots, "channels": tree.channels,
                "files": tree.trace_ids_with_files, "gen_seconds": tree.seconds}
        meta_path.write_text(json.dumps(meta))
        results["generate_s"] = round(tree.seconds, 1)
    results["index_jsonl_mb"] = round((logs / "traces" / "index.jsonl").stat().st_size / 1e6, 1)
    if args.generate_only:
        print(json.dumps(results))
        return 0
    if args.catch_up_only:
        print(json.dumps(_catch_up(logs, index_path, meta["samples"], args.catch_up_lines)))
        print("loadavg", os.getloadavg())
        return 0
    if args.cost_split:
        print(json.dumps(cost_split(logs / "traces" / "index.jsonl", args.dir / "cost-split.sqlite")))
        return 0
    if not (args.reads_only and index_path.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(str(index_path) + suffix).unlink(missing_ok=True)
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        child = ctx.Process(target=_build, args=(logs, index_path, q))
        child.start()
        lines, build = q.get()
        child.join()
        results["build_s"] = round(build, 1)
        results["build_lines_per_s"] = int(lines / build)
        results["build_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    results["index_db_mb"] = round(sum(Path(str(index_path) + s).stat().st_size for s in ("", "-wal")
                                       if Path(str(index_path) + s).exists()) / 1e6, 1)
    results["index_size_ratio"] = round(results["index_db_mb"] / results["index_jsonl_mb"], 3)  # type: ignore[operator]
    results["loadavg_after_build"] = os.getloadavg()

    t = time.perf_counter()
    store = TraceStore([logs], index_path=index_path, auto_refresh_interval=0.0)
    first = store.list_traces(limit=50)
    results["cold_open_first_list_ms"] = round((time.perf_counter() - t) * 1000, 1)
    assert first["total"] >= args.lines, first["total"]

    rng = random.Random(1)
    bots, channels, samples = meta["bots"], meta["channels"], meta["samples"]
    # auto_refresh_interval=0: every call also stats index.jsonl, as a live viewer would
    results["list_first_page_ms"] = _time(lambda: store.list_traces(limit=50), args.runs)
    results["list_filtered_page_ms"] = _time(lambda: store.list_traces(
        bot=rng.choice(bots), channel=rng.choice(channels), limit=50, offset=50), args.runs)
    def uncached_filtered() -> object:
        store._cache.clear()  # the total (COUNT) recomputed, as after every index change
        return store.list_traces(bot=rng.choice(bots), channel=rng.choice(channels), limit=50)

    results["list_filtered_uncached_ms"] = _time(uncached_filtered, args.runs)
    def uncached_first() -> object:
        store._cache.clear()
        return store.list_traces(limit=50)

    results["list_first_page_uncached_ms"] = _time(uncached_first, max(20, args.runs // 5))
    results["list_failed_page_ms"] = _time(lambda: store.list_traces(failed=True, limit=50), args.runs)

    def uncached_bot_failed() -> object:
        store._cache.clear()
        return store.list_traces(bot=rng.choice(bots), failed=True, limit=50)

    results["list_bot_failed_uncached_ms"] = _time(uncached_bot_failed, max(20, args.runs // 5))

    def text(query: Callable[[], str]) -> Callable[[], object]:
        def run() -> object:
            store._cache.clear()  # total recomputed
            store._fts_last = None  # full-text candidates looked up again
            return store.list_traces(text=query(), limit=50)
        return run

    text_runs = max(5, args.runs // 30)
    # generated previews: "<@Bot> message N about moths and rovers" / "reply N: the answer is K"
    results["text_rare_ms"] = _time(text(lambda: f"message {rng.randrange(args.lines // 10, args.lines)} "),
                                    text_runs)
    results["text_1pct_ms"] = _time(text(lambda: "answer is 99"), text_runs)
    results["text_absent_ms"] = _time(text(lambda: "moth rope"), text_runs)
    results["text_every_row_ms"] = _time(text(lambda: "moths"), text_runs)
    results["text_2_chars_scan_ms"] = _time(text(lambda: "zq"), text_runs)
    results["list_deep_offset_ms"] = _time(lambda: store.list_traces(limit=50, offset=500_000 % args.lines),
                                           max(20, args.runs // 10))
    results["search_message_id_ms"] = _time(lambda: store.search(rng.choice(samples)), args.runs)
    results["search_relay_id_ms"] = _time(lambda: store.search("rm_hollow7_" + rng.choice(samples)), args.runs)
    results["get_trace_ms"] = _time(lambda: store.get_trace(rng.choice(meta["files"])), args.runs)
    results["channels_ms"] = _time(store.channels, 5)
    hits = store.search(samples[len(samples) // 2])
    results["search_hits_example"] = hits["total"]

    # tailing: append the last ~400 KB of lines again (new rows), time the refresh that picks them up
    idx = logs / "traces" / "index.jsonl"
    with open(idx, "rb") as src:
        src.seek(max(0, idx.stat().st_size - 400_000))
        tail = src.read()
    tail = tail[tail.index(b"\n") + 1:]
    before = store.list_traces()["total"]
    with open(idx, "ab") as dst:
        dst.write(tail)
    t = time.perf_counter()
    added = store.refresh().lines
    results["tail_refresh_ms"] = round((time.perf_counter() - t) * 1000, 1)
    results["tail_lines"] = added
    assert store.list_traces()["total"] == before + added
    from chapterx.trace import aggregates as ag

    newest = store.query("SELECT MAX(ts) AS t FROM traces")[0]["t"]
    results["stats_ms"] = _time(store.stats, 5)
    results["agg_bucket_stats_24h_hourly_ms"] = _time(
        lambda: ag.bucket_stats(store, since=newest - 86400, until=newest + 1, bucket_seconds=3600), 20)
    results["agg_bucket_stats_7d_daily_ms"] = _time(
        lambda: ag.bucket_stats(store, since=newest - 7 * 86400, until=newest + 1, bucket_seconds=86400), 5)
    hour_end = (int(newest) // 3600 + 1) * 3600  # what a dashboard asks: whole hours (the roll-ups)
    results["agg_bucket_stats_24h_hourly_aligned_ms"] = _time(
        lambda: ag.bucket_stats(store, since=hour_end - 86400, until=hour_end, bucket_seconds=3600), 20)
    results["agg_bucket_stats_30d_daily_aligned_ms"] = _time(
        lambda: ag.bucket_stats(store, since=hour_end - 30 * 86400, until=hour_end, bucket_seconds=86400), 20)
    results["agg_bot_summaries_24h_ms"] = _time(lambda: ag.bot_summaries(store, since=newest - 86400), 20)
    results["agg_latest_failures_ms"] = _time(lambda: ag.latest_failures(store, since=newest - 7 * 86400), 20)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    store.close()
    results.update(_catch_up(logs, index_path, samples, args.catch_up_lines))
    results["loadavg_end"] = os.getloadavg()
    for k, v in results.items():
        if k.startswith(("loadavg", "catchup_request")):
            print(f"{k:28s} {v}")
        elif isinstance(v, tuple):
            print(f"{k:28s} p50 {v[0]:8.2f}  p95 {v[1]:8.2f}")
        else:
            print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
