"""Benchmark the trace store's SQLite index at scale.

    python bench/bench_trace_index.py [--lines 1000000] [--dir /tmp/cx-bench] [--reuse]

Generates a tree with `bench/gen_traces.py`, builds the index from `index.jsonl` (rate in lines/s),
then measures p50/p95 of `list_traces` (first page; page filtered by bot + channel; failed only)
and `search` by message id, a cold open of the persisted index, tailing of new lines, the first
(uncached) count of a bot + failed filter, and the `text=` filter for rare, medium, absent,
everywhere and 2-character queries (full-text candidates recomputed every run).
Targets (issue 4): search p50 < 10 ms and list p50 < 20 ms at 1M lines.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_traces import generate_tree  # noqa: E402
from chapterx.trace.store import TraceStore  # noqa: E402


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/chapterx-trace-bench"))
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--reuse", action="store_true", help="reuse an existing generated tree")
    args = ap.parse_args(argv)
    logs = args.dir / "logs"
    index_path = args.dir / "index.sqlite"
    meta_path = args.dir / "meta.json"
    results: dict[str, object] = {"lines": args.lines}

    if args.reuse and meta_path.exists():
        meta = json.loads(meta_path.read_text())
    else:
        tree = generate_tree(logs, args.lines, files=1000)
        meta = {"samples": tree.sample_message_ids, "bots": tree.bots, "channels": tree.channels,
                "files": tree.trace_ids_with_files, "gen_seconds": tree.seconds}
        meta_path.write_text(json.dumps(meta))
        results["generate_s"] = round(tree.seconds, 1)
    results["index_jsonl_mb"] = round((logs / "traces" / "index.jsonl").stat().st_size / 1e6, 1)
    for suffix in ("", "-wal", "-shm"):
        Path(str(index_path) + suffix).unlink(missing_ok=True)

    store = TraceStore([logs], index_path=index_path, auto_refresh_interval=3600)
    t = time.perf_counter()
    stats = store.refresh()
    build = time.perf_counter() - t
    results["build_s"] = round(build, 1)
    results["build_lines_per_s"] = int(stats.lines / build)
    results["index_db_mb"] = round(sum(Path(str(index_path) + s).stat().st_size for s in ("", "-wal")
                                       if Path(str(index_path) + s).exists()) / 1e6, 1)
    store.close()

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
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    for k, v in results.items():
        if isinstance(v, tuple):
            print(f"{k:28s} p50 {v[0]:8.2f}  p95 {v[1]:8.2f}")
        else:
            print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
