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
"""

from __future__ import annotations

import argparse
import json
import os
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
    args = ap.parse_args(argv)
    logs = args.dir / "logs"
    index_path = args.dir / "index.sqlite"
    results: dict[str, Any] = {"lines": args.lines, "loadavg_start": os.getloadavg()}
    if not (args.reuse and (logs / "traces" / "index.jsonl").exists()):
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


if __name__ == "__main__":
    raise SystemExit(main())
