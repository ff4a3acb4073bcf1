"""Benchmark the fleet page's aggregate queries at scale.

    python bench/bench_fleet.py [--lines 1000000] [--dir /tmp/chapterx-fleet-bench] [--reuse] [--runs 20]

Generates a tree with `bench/gen_traces.py` (one activation every ~5 s over ~58 days, 6 bots, 3 %
failures), builds the SQLite index, then times exactly what each `/api/fleet/*` route runs
(`chapterx.viewer.fleet`, over `chapterx.trace.aggregates`) for the ranges the page offers, with the
grid ending at the newest trace: the bot table, the hourly charts (activations, failure rate,
p50/p95 duration: one query), the daily charts (tokens, cost: one query) and the latest failures.

Three figures per chart: `cold` (the first view after the viewer started: the per-hour rollup is
filled from `aggregates.bucket_stats`), `warm` (repeated views, nothing changed) and `live` (new traces arrived since the previous view:
the rollup syncs with the index and recomputes the current hour).
`--direct` also times the aggregates API without the rollup.
Target (issue 15): every chart's query p50 < 50 ms at 1M traces.

`--aggregates-only` times `aggregates.bucket_stats` itself (issue 14: < 50 ms at 1M) for 24 h
hourly, 7 d and 30 d daily windows, on whole hours and on a window starting mid-hour, with the
number of activations each window held, checks the histogram percentiles against the exact ones
(the documented 2% + 0.5 ms), and times the upgrade of an index with the old `hourly` table
(columns dropped, counts version 3: the roll-ups recounted from `traces` on open).
`--logs DIR` reuses a tree made by `bench/bench_trace_index.py --generate-only`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_traces import generate_tree
from chapterx.trace import aggregates
from chapterx.trace.store import TraceStore
from chapterx.viewer import fleet


def _time(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    fn()  # warm the page cache and SQLite's statement cache, as a viewer that has served once
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    s = sorted(out)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95))]


def _call(fn: Callable[..., Any], rollup: fleet.Rollup, **kwargs: Any) -> Any:
    w = kwargs.pop("w")
    return fn(rollup, w, **kwargs)


def _failures(store: TraceStore, since: float, _rollup: fleet.Rollup) -> Any:
    return fleet.failures(store, since, limit=20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/chapterx-fleet-bench"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--reuse", action="store_true", help="reuse an existing generated tree and index")
    ap.add_argument("--direct", action="store_true", help="also time the aggregates API without the rollup")
    ap.add_argument("--aggregates-only", action="store_true",
                    help="time bucket_stats windows, their precision and the hourly upgrade only")
    ap.add_argument("--logs", type=Path, help="an existing logs tree (default: DIR/logs, generated)")
    args = ap.parse_args(argv)
    logs = args.logs or args.dir / "logs"
    index_path = args.dir / "index.sqlite"
    results: dict[str, Any] = {"lines": args.lines, "loadavg_start": os.getloadavg()}
    if args.logs is None and not (args.reuse and (logs / "traces" / "index.jsonl").exists()):
        tree = generate_tree(logs, args.lines, files=100)
        results["generate_s"] = round(tree.seconds, 1)
        for suffix in ("", "-wal", "-shm"):
            Path(str(index_path) + suffix).unlink(missing_ok=True)
    store = TraceStore([logs], index_path=index_path, auto_refresh_interval=3600)
    t = time.perf_counter()
    store.refresh()
    results["index_build_s"] = round(time.perf_counter() - t, 1)
    newest = float(store.query("SELECT MAX(ts) AS t FROM traces")[0]["t"])
    results["traces_in_index"] = int(store.query("SELECT COUNT(*) AS n FROM traces")[0]["n"])

    if args.aggregates_only:
        results.update(_aggregates(store, index_path, logs, newest, args.runs))  # closes the store
        results["loadavg_end"] = os.getloadavg()
        print(json.dumps(results, indent=1))
        return 0

    rows = []
    # earlier runs of an older version of this script appended lines to the newest hour; end the
    # grid an hour earlier so every hour has the generated density (~720 traces an hour)
    newest -= 3600

    def new_traces_arrived(rollup: fleet.Rollup, w: fleet.Window) -> None:
        """What a view finds after bots wrote traces: the window's current hour is stale and the
        index generation moved (the next call syncs, then recomputes that hour)."""
        rollup._hours.pop(int(w.until // 3600) - 1, None)
        rollup._gen = object()

    for label in ("24h", "7d", "30d"):
        range_s = fleet.parse_range(label)
        hw = fleet.window(range_s, fleet.HOUR, newest)
        dw = fleet.window(range_s, fleet.DAY, newest)
        in_range = int(store.query("SELECT COUNT(*) AS n FROM traces WHERE ts >= ? AND ts < ?",
                                   (hw.since, hw.until))[0]["n"])
        cases: list[tuple[str, Callable[[fleet.Rollup], Any]]] = [
            ("bots", partial(_call, fleet.bots, w=hw)),
            ("hourly (activations, failure rate, p50/p95)", partial(_call, fleet.hourly, w=hw)),
            ("hourly, one bot", partial(_call, fleet.hourly, w=hw, bot="Gamma")),
            ("daily (tokens, cost)", partial(_call, fleet.daily, w=dw)),
            ("latest failures", partial(_failures, store, newest - range_s)),
        ]
        for name, fn in cases:
            rollup = fleet.Rollup(store)
            t = time.perf_counter()
            fn(rollup)
            cold = (time.perf_counter() - t) * 1000
            p50, p95 = _time(partial(fn, rollup), args.runs)
            live = []
            for _ in range(max(3, args.runs // 2)):
                new_traces_arrived(rollup, hw)
                t = time.perf_counter()
                fn(rollup)
                live.append((time.perf_counter() - t) * 1000)
            live_p50 = statistics.median(live)
            row = {"range": label, "traces_in_range": in_range, "query": name, "cold_ms": round(cold, 1),
                   "p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "live_p50_ms": round(live_p50, 1)}
            if args.direct and name != "latest failures":
                direct: Callable[[], Any]
                if name == "bots":
                    direct = partial(aggregates.bot_summaries, store, since=newest - range_s, until=newest)
                else:
                    w = dw if name.startswith("daily") else hw
                    direct = partial(aggregates.bucket_stats, store, since=w.since, until=w.until,
                                     bucket_seconds=w.bucket_seconds, bot="Gamma" if "one bot" in name else None)
                row["direct_p50_ms"] = round(_time(direct, 3)[0], 1)
            rows.append(row)
            print(f"{label:>4} {in_range:>7} {name:<45} cold {cold:8.1f}  warm p50 {p50:6.1f} p95 {p95:6.1f}"
                  f"  live p50 {live_p50:6.1f} ms" + (f"  direct p50 {row['direct_p50_ms']:8.1f} ms"
                                                      if "direct_p50_ms" in row else ""), flush=True)
    # the viewer's start-up warm-up: 30 one-day steps on the store thread (a request arriving
    # meanwhile waits for at most one step)
    rollup = fleet.Rollup(store)
    last = int(newest // 3600) + 1
    steps = []
    for day in range(30):
        t = time.perf_counter()
        rollup.warm(last - day * 24 - 24, last - day * 24)
        steps.append((time.perf_counter() - t) * 1000)
    results["warmup"] = {"total_s": round(sum(steps) / 1000, 1), "step_p50_ms": round(statistics.median(steps), 1),
                         "step_max_ms": round(max(steps), 1)}
    print(f"warm-up of 30 days: {sum(steps) / 1000:.1f} s in 30 steps, step p50 {statistics.median(steps):.0f} ms,"
          f" max {max(steps):.0f} ms", flush=True)
    store.close()
    results["queries"] = rows
    results["loadavg_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    return 0


def _exact(store: TraceStore, since: float, until: float, width: int) -> dict[tuple[str, int], tuple[int, int]]:
    """Exact nearest-rank p50/p95 per (bot, bucket) from every row (the reference)."""
    groups: dict[tuple[str, int], list[int]] = {}
    for bot, ts, dur in store.query(
            "SELECT COALESCE(bot, ''), ts, duration_ms FROM traces WHERE ts >= ? AND ts < ? "
            "AND duration_ms IS NOT NULL AND COALESCE(status, '') <> 'running'", (since, until), raw=True):
        groups.setdefault((bot, int((ts - since) // width)), []).append(dur)
    out = {}
    for key, d in groups.items():
        d.sort()
        out[key] = (d[max(1, math.ceil(len(d) * 0.5)) - 1], d[max(1, math.ceil(len(d) * 0.95)) - 1])
    return out


def _aggregates(store: TraceStore, index_path: Path, logs: Path, newest: float, runs: int) -> dict[str, Any]:
    """The `--aggregates-only` figures; closes `store` (the upgrade reopens the index)."""
    hour_end = math.floor(newest / 3600) * 3600
    out: dict[str, Any] = {"bucket_stats": []}
    windows = [("24h hourly, whole hours", hour_end - 86400, hour_end, 3600),
               ("24h hourly, any window", newest - 86400, newest + 1, 3600),
               ("7d daily, whole hours", hour_end - 7 * 86400, hour_end, 86400),
               ("7d daily, from mid-hour", hour_end - 7 * 86400 + 1800, hour_end + 1800, 86400),
               ("30d daily, whole hours", hour_end - 30 * 86400, hour_end, 86400),
               ("30d daily, from mid-hour", hour_end - 30 * 86400 + 1800, hour_end + 1800, 86400),
               ("30d hourly, whole hours", hour_end - 30 * 86400, hour_end, 3600)]
    for name, since, until, width in windows:
        n = int(store.query("SELECT COUNT(*) AS n FROM traces WHERE ts >= ? AND ts < ?", (since, until))[0]["n"])
        call = partial(aggregates.bucket_stats, store, since=since, until=until, bucket_seconds=width)
        p50, p95 = _time(call, runs)
        exact_p50, _ = _time(partial(call, exact_max=10**12), 3)
        ref = _exact(store, since, until, width)
        worst = 0.0
        for b in call():
            e50, e95 = ref[(b.bot, int((b.bucket_start - since) // width))]
            for got, want in ((b.p50_ms, e50), (b.p95_ms, e95)):
                assert got is not None
                worst = max(worst, (abs(got - want) - 0.5) / want if want else 0.0)
        row = {"window": name, "activations": n, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1),
               "all_rows_p50_ms": round(exact_p50, 1), "worst_rel_error": round(max(worst, 0.0), 4)}
        out["bucket_stats"].append(row)
        print(f"{name:<28} {n:>7} activations  p50 {p50:6.1f} p95 {p95:6.1f} ms  (every row: {exact_p50:7.1f} ms)"
              f"  worst error {row['worst_rel_error']:.2%}", flush=True)
    t = time.perf_counter()
    aggregates.bot_summaries(store, since=newest - 86400)
    out["bot_summaries_24h_ms"] = round((time.perf_counter() - t) * 1000, 1)
    store.close()
    # the upgrade: an index with the old hourly table (no priced/min/max/hist, counts version 3)
    conn = sqlite3.connect(index_path)
    for col in ("priced", "dmin", "dmax", "hist"):
        conn.execute(f"ALTER TABLE hourly DROP COLUMN {col}")
    conn.execute("UPDATE meta SET value='3' WHERE key='counts_version'")
    conn.commit()
    conn.close()
    t = time.perf_counter()
    again = TraceStore([logs], index_path=index_path, auto_refresh_interval=3600)
    opened = time.perf_counter() - t
    again.bot_names()  # the first read recounts (one transaction)
    out["upgrade_open_s"] = round(opened, 2)
    out["upgrade_recount_s"] = round(time.perf_counter() - t - opened, 2)
    print(f"upgrade from the old hourly table: open {opened:.2f} s, recount {out['upgrade_recount_s']:.2f} s",
          flush=True)
    again.close()
    return out


if __name__ == "__main__":
    raise SystemExit(main())
