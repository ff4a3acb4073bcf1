#!/usr/bin/env python3
"""Benchmark the trace viewer over HTTP against a generated 1,000,000-trace logs tree.

Measures, with the server as a separate process (`chapterx traces serve`):
  - index build: first start on a fresh index: the first /api/traces answer (served while the
    index builds in the background), then until the build is complete (build rate, peak RSS);
  - catch-up stall: p50/p99/max of /api/traces and /api/search while another process appends
    10k lines at full speed, and how long until a search sees the last one;
  - cold start with the index persisted: process spawn -> first /api/traces answer;
  - p50/p95 latency of list (first page, filtered pages, a deep page) and search (id, link);
  - peak RSS of the server process (VmHWM).

Usage: .venv/bin/python bench/bench_viewer.py [--traces 1000000] [--dir /tmp/cx-viewer-bench] [--runs 200]
The tree is reused when it already has the requested size (generation takes a while).
It uses bench/gen_traces.py (the trace store's generator) when that exposes `generate(logs_dir, n)`,
otherwise its own generator of upstream-format index lines.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
BOTS = [f"Bot{i:02d}" for i in range(20)]
GUILD = "1217880720932995072"
WORDS = "moth rope sugar lantern rover tide ferry note battery thread lab count night trap wing".split()


def _snowflake(ts: datetime, seq: int) -> str:
    ms = int(ts.timestamp() * 1000) - 1420070400000
    return str((ms << 22) | (seq & 0x3FFFFF))


def generate(logs: Path, n: int, seed: int = 7) -> None:
    """n upstream-format index lines (newest last), 20 bots, 200 channels, ~5% failed, 90 days."""
    rng = random.Random(seed)
    tdir = logs / "traces"
    tdir.mkdir(parents=True, exist_ok=True)
    for b in BOTS:
        (tdir / b).mkdir(exist_ok=True)
    channels = [str(1300000000000000000 + i * 7919) for i in range(200)]
    start = datetime.now(UTC) - timedelta(days=90)
    step = timedelta(days=90) / n
    history: dict[str, list[str]] = {c: [] for c in channels}
    tmp = tdir / "index.jsonl.tmp"
    with open(tmp, "w") as fh:
        buf = []
        for i in range(n):
            ts = start + step * i
            ch = channels[rng.randrange(len(channels))]
            trig = _snowflake(ts, i)
            hist = history[ch]
            hist.append(trig)
            if len(hist) > 30:
                del hist[:-30]
            ctx = hist[-15:]
            ok = rng.random() > 0.05
            sent = [_snowflake(ts + timedelta(seconds=3), i + 1)] if ok else []
            if ok:
                hist.append(sent[0])
            bot = BOTS[rng.randrange(len(BOTS))]
            tid = f"{rng.getrandbits(64):016x}{i:016x}"
            entry = {
                "traceId": tid,
                "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
                "channelId": ch,
                "triggeringMessageId": trig,
                "botName": bot,
                "channelName": f"chan-{channels.index(ch)}",
                "activationReason": rng.choice(["mention", "reply", "random", "m_command"]),
                "triggerPreview": " ".join(rng.choice(WORDS) for _ in range(8)),
                "responsePreview": " ".join(rng.choice(WORDS) for _ in range(14)) if ok else None,
                "isThread": False,
                "success": ok,
                "durationMs": rng.randrange(800, 9000),
                "llmCallCount": 1,
                "toolExecutionCount": 0,
                "totalTokens": rng.randrange(200, 9000),
                "contextMessageIds": ctx,
                "sentMessageIds": sent,
                "filename": f"{ch}-{tid}-x.json",
                "guildId": GUILD,
            }
            if entry["responsePreview"] is None:
                del entry["responsePreview"]
            buf.append(json.dumps(entry, separators=(",", ":")))
            if len(buf) >= 10000:
                fh.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            fh.write("\n".join(buf) + "\n")
    os.replace(tmp, tdir / "index.jsonl")


def ensure_tree(logs: Path, n: int) -> tuple[dict[str, Any], float]:
    """The tree and what queries need (bots, sample message ids, traces with files); reused if present."""
    meta_file = logs / ".bench-meta.json"
    if (logs / "traces" / "index.jsonl").exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("lines") == n:
            return meta, 0.0
    t = time.perf_counter()
    try:
        sys.path.insert(0, str(REPO))
        from bench.gen_traces import generate_tree  # the trace store's generator

        tree = generate_tree(logs, n)
        meta = {
            "generator": "bench/gen_traces.py",
            "lines": n,
            "bots": list(tree.bots),
            "samples": list(tree.sample_message_ids),
            "files": list(tree.trace_ids_with_files),
        }
    except ImportError:
        generate(logs, n)
        meta = {
            "generator": "bench_viewer.generate",
            "lines": n,
            "bots": BOTS,
            "samples": _sample_ids(logs, 2000),
            "files": [],
        }
    meta_file.write_text(json.dumps(meta))
    return meta, time.perf_counter() - t


def _week_before_end(logs: Path) -> str:
    """ISO time 7 days before the newest index line (trees are generated in the past)."""
    with (logs / "traces" / "index.jsonl").open("rb") as fh:
        fh.seek(max(0, os.fstat(fh.fileno()).st_size - 20000))
        last = [ln for ln in fh.read().splitlines() if ln.strip()][-1]
    end = datetime.fromisoformat(json.loads(last)["timestamp"].replace("Z", "+00:00"))
    return (end - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sample_ids(logs: Path, count: int) -> list[str]:
    rng = random.Random(1)
    out: list[str] = []
    with (logs / "traces" / "index.jsonl").open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        while len(out) < count:
            fh.seek(rng.randrange(max(1, size - 10000)))
            fh.readline()
            e = json.loads(fh.readline())
            out.append(rng.choice([e["triggeringMessageId"], *e.get("contextMessageIds", [])]))
    return out


class Server:
    def __init__(self, logs: Path, index: Path) -> None:
        env = dict(os.environ, INDEX_RETENTION_DAYS="0", PYTHONUNBUFFERED="1")
        env.pop("AUTH_TOKEN", None)
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chapterx",
                "traces",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--logs-dir",
                str(logs),
                "--index",
                str(index),
            ],
            cwd=REPO,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stderr is not None
        self.port = 0
        for line in self.proc.stderr:
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                break
        if not self.port:
            raise SystemExit("server did not start")
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
        r = self.conn.getresponse()
        return r.status, r.read()

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(600)


def first_list(srv: Server) -> float:
    status, _ = srv.get("/api/traces")
    assert status == 200, status
    return time.perf_counter() - srv.t0


def timed(srv: Server, paths: list[str]) -> tuple[float, float]:
    times = []
    for p in paths:
        t = time.perf_counter()
        status, _ = srv.get(p)
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200, (p, status)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/cx-viewer-bench")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--catch-up-lines", type=int, default=10_000)
    args = ap.parse_args()
    root = Path(args.dir)
    logs = root / "logs"
    meta, gen_s = ensure_tree(logs, args.traces)
    if gen_s:
        print(f"generated {args.traces:,} index lines with {meta['generator']} in {gen_s:.1f}s")
    bots = meta["bots"]
    index = root / "index.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)

    srv = Server(logs, index)
    first_s = first_list(srv)
    while True:  # the index builds in the background; the list says how far it is
        _, raw = srv.get("/api/traces?limit=1")
        page = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        if "indexing" not in page and page["total"] >= args.traces:
            break
        time.sleep(0.5)
    build_s = time.perf_counter() - srv.t0
    rss_build = srv.peak_rss_mb()
    t = time.perf_counter()
    srv.stop()
    print(f"first start on a fresh index: first /api/traces answer after {first_s:.2f}s (served while building)")
    print(f"first start, index built from scratch: {build_s:.1f}s = {args.traces / build_s:,.0f} lines/s "
          f"(peak RSS {rss_build:.0f} MB); index {_db_mb(index):.0f} MB = "
          f"{_db_mb(index) / ((logs / 'traces' / 'index.jsonl').stat().st_size / 1e6):.2f} of index.jsonl")
    print(f"graceful stop (WAL checkpoint): {time.perf_counter() - t:.1f}s")

    srv = Server(logs, index)
    cold_s = first_list(srv)
    print(f"cold start with persisted index -> first list: {cold_s:.2f}s")
    rng = random.Random(1)
    sample_ids = [rng.choice(meta["samples"]) for _ in range(args.runs)]
    n = args.runs
    cases = {
        "list first page": ["/api/traces"] * n,
        "list ?bot=": [f"/api/traces?bot={quote(rng.choice(bots))}" for _ in range(n)],
        "list ?failed=true": ["/api/traces?failed=true"] * n,
        "list ?bot=&failed=true&offset=100": [
            f"/api/traces?bot={quote(rng.choice(bots))}&failed=true&offset=100" for _ in range(n)
        ],
        "list page 200 (offset 10000)": ["/api/traces?offset=10000"] * n,
        "list ?since=<last 7 days>": [f"/api/traces?since={_week_before_end(logs)}"] * n,
        "search by id": [f"/api/search?q={i}" for i in sample_ids],
        "search by link": [
            "/api/search?q=" + quote(f"https://discord.com/channels/{GUILD}/1/{i}", safe="")
            for i in sample_ids
        ],
        **(
            {
                "trace detail (file read)": [f"/api/trace/{rng.choice(meta['files'])}" for _ in range(n)],
                "request body": [
                    f"/api/request/request-{rng.choice(meta['files'])}-0.json" for _ in range(n)
                ],
            }
            if meta["files"]
            else {}
        ),
        # text=: full-text index, LIKE re-check; the scan for < 3 characters or > 50,000 candidates
        "list ?text= two random words (no match)": [
            f"/api/traces?text={rng.choice(WORDS)}%20{rng.choice(WORDS)}" for _ in range(max(5, n // 20))
        ],
        "list ?text= rare (`message <random n> `)": [
            f"/api/traces?text=message%20{rng.randrange(args.traces // 10, args.traces)}%20"
            for _ in range(max(5, n // 20))
        ],
        "list ?text=moths (every trace: scan; count cached after 1st)": ["/api/traces?text=moths"] * max(5, n // 20),
        "list ?text=zq (2 characters: scan; count cached after 1st)": ["/api/traces?text=zq"] * max(5, n // 20),
    }
    print(f"\n| request ({n} runs, keep-alive, gzip) | p50 ms | p95 ms |\n|---|---:|---:|")
    for name, paths in cases.items():
        p50, p95 = timed(srv, paths)
        print(f"| {name} | {p50:.1f} | {p95:.1f} |")
    print(f"\npeak RSS (serving, persisted index): {srv.peak_rss_mb():.0f} MB")
    catch_up(srv, logs, sample_ids, args.catch_up_lines)
    srv.stop()
    print(f"load average at the end: {os.getloadavg()}")
    return 0


def _db_mb(index: Path) -> float:
    return sum(Path(str(index) + s).stat().st_size for s in ("", "-wal") if Path(str(index) + s).exists()) / 1e6


def catch_up(srv: Server, logs: Path, sample_ids: list[str], n_lines: int) -> None:
    """Another process appends `n_lines` at full speed while this one keeps asking the server."""
    import multiprocessing as mp

    sys.path.insert(0, str(REPO))
    from bench.bench_trace_index import _append, fresh_lines

    idx = logs / "traces" / "index.jsonl"
    fresh, marker = fresh_lines(idx, n_lines)
    writer = mp.get_context("spawn").Process(target=_append, args=(idx, fresh))
    lat: list[float] = []
    t0 = time.perf_counter()
    writer.start()
    seen = None
    rng = random.Random(5)
    while time.perf_counter() - t0 < 600:
        for path in ("/api/traces", f"/api/search?q={rng.choice(sample_ids)}", f"/api/search?q={marker}"):
            t = time.perf_counter()
            status, raw = srv.get(path)
            lat.append((time.perf_counter() - t) * 1000)
            assert status == 200, (path, status)
        body = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        if body["total"]:
            seen = time.perf_counter() - t0
            break
    writer.join()
    lat.sort()
    print(f"\ncatch-up: {len(fresh):,} lines appended at full speed by another process; "
          f"{len(lat)} requests meanwhile: p50 {statistics.median(lat):.1f} ms, "
          f"p99 {lat[min(len(lat) - 1, int(len(lat) * 0.99))]:.1f} ms, max {lat[-1]:.1f} ms; "
          f"a search saw the last line after {seen if seen is None else round(seen, 2)} s")


if __name__ == "__main__":
    sys.exit(main())
