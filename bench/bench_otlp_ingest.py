"""chapter2 OTLP ingest: a 32 MB POST must not delay concurrent `/api/traces` reads by > 100 ms,
and 1M chapter2 spans (~30k traces per file) are grouped incrementally at a steady rate.

    python bench/bench_otlp_ingest.py [--mb 32] [--spans 1000000]

Part 1 starts the real viewer (worker thread + worker process for the decode), posts one OTLP JSON
body of about --mb megabytes of linked chapter2 traces, and meanwhile reads `/api/traces` every
20 ms; it prints the read latencies during the ingest (p50/p99/max) and the ingest time.
Part 2 feeds --spans spans to `otlp.ReplyGrouper` in file-sized chunks and prints the rate per
chunk (flat = linear; the old grouping got slower with every chunk).
Part 3 (issue 14, `--fleet-spans 1000000`): posts that many spans to the viewer in file-sized
bodies (`--per-post` spans, ~30k traces a file) one after another, while `/api/traces` and
`/api/search` are read in turn every 20 ms; prints their p50/p99/max during the whole ingest, the
ingest time and the index size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chapterx_compat.chapter2 import otlp
from tests.security.otlpgen import linked_spans, request

TOKEN = "bench-token-0123456789abcdef"
_SLOW: list[tuple[float, float, str, float]] = []  # part 3: (ms, started at, which, wall time) of every read


def _body(mb: float) -> tuple[bytes, int]:
    n = 1000
    base = time.time_ns() - 3600 * 10**9  # recent, so no retention window hides them
    one = len(json.dumps(request(linked_spans(n, seed=7, base=base))))
    n = int(n * mb * 1_000_000 / one)
    body = json.dumps(request(linked_spans(n, seed=7, base=base))).encode()
    return body, n


async def _chapter2_total(port: int) -> int:
    """How many chapter2 traces the viewer lists now."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{port}/api/traces?limit=1&framework=chapter2",
            headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        return int((await r.json())["total"])


async def _start_viewer(tmp: Path, logs: Path, port: int) -> asyncio.subprocess.Process:
    """`chapterx traces serve` as its own process (chapter2 OTLP ingest into `tmp/in`), once it answers."""
    import os
    import subprocess

    env = {**os.environ, "AUTH_TOKEN": TOKEN, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    # --probe: the same command through bench/_viewer_probe.py (gc, grouping, store calls and loop
    # lag over 50 ms, with wall times, to stderr -> tmp/probe.log)
    probe = "--probe" in sys.argv
    launcher = [str(Path(__file__).resolve().parent / "_viewer_probe.py")] if probe else ["-m", "chapterx"]
    # stderr to a file, never an unread pipe (a full pipe would block the viewer's next log line)
    stderr: Any = (tmp / "probe.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *launcher, "traces", "serve", "--port", str(port), "--logs-dir", str(logs),
        "--chapter2-logs-dir", str(tmp / "in"), "--index", str(tmp / "index.sqlite"),
        env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    await _wait_up(port, proc)
    return proc


async def _reads(port: int, stop: threading.Event, out: list[float], search: list[float] | None = None) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        n = 0
        while not stop.is_set():
            n += 1
            t = time.perf_counter()
            url = f"http://127.0.0.1:{port}/api/traces?limit=50"
            if search is not None and n % 2 == 0:
                url = f"http://127.0.0.1:{port}/api/search?q={1_300_000_000_000_000_000 + n}"
            async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                await r.read()
                assert r.status == 200
            (search if search is not None and n % 2 == 0 else out).append((time.perf_counter() - t) * 1000)
            if search is not None:
                _SLOW.append(((time.perf_counter() - t) * 1000, t, url.split("?")[0].rsplit("/", 1)[1],
                              time.time() - (time.perf_counter() - t)))
            await asyncio.sleep(0.02)


async def _wait_up(port: int, proc: asyncio.subprocess.Process) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if proc.returncode is not None:
                raise SystemExit("viewer exited")
            try:
                async with http.get(f"http://127.0.0.1:{port}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def part1(mb: float) -> None:
    """The viewer is a separate process (`chapterx traces serve`), as in production."""
    import socket

    import aiohttp

    body, n = _body(mb)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        (Path(tmp) / "in").mkdir()
        proc = await _start_viewer(Path(tmp), logs, port)
        try:
            stop = threading.Event()
            lat: list[float] = []
            reader = asyncio.create_task(_reads(port, stop, lat))
            await asyncio.sleep(1.0)
            idle = list(lat)
            lat.clear()
            t = time.perf_counter()
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json"}) as r:
                    assert r.status == 200, await r.text()
            ingest_s = time.perf_counter() - t
            busy = list(lat)
            hwm = [ln for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if ln.startswith("VmHWM")]
            stop.set()
            await reader
            total = await _chapter2_total(port)
        finally:
            proc.terminate()
            await proc.wait()
    q = statistics.quantiles(busy, n=100) if len(busy) > 2 else busy
    print(f"ingest: {len(body) / 1e6:.1f} MB, {n} replies generated, {total} listed, {ingest_s:.2f} s")
    print(f"viewer process peak RSS (VmHWM, the decode worker excluded): {hwm[0].split(':')[1].strip()}")
    print(f"/api/traces idle: p50 {statistics.median(idle):.1f} ms ({len(idle)} reads)")
    print(f"/api/traces during ingest: {len(busy)} reads, p50 {statistics.median(busy):.1f} ms, "
          f"p99 {q[-1]:.1f} ms, max {max(busy):.1f} ms")


async def part3(total_spans: int, per_post: int) -> None:
    """1M chapter2 spans ingested as a fleet writes them (file-sized bodies, one after another)
    while the list and the search are read."""
    import socket

    import aiohttp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    replies_per_post = max(1, int(per_post / 2.6))  # ~2.6 spans a reply in the generator
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        (Path(tmp) / "in").mkdir()
        # The bodies are made before the clock starts: making one takes ~1 s of this process's loop,
        # which would show up as a stalled read here (it did: every post's end looked like a 1 s stall)
        bodies: list[tuple[Path, int]] = []
        base = time.time_ns() - 20 * 86400 * 10**9
        made = 0
        while made < total_spans:
            n = len(bodies) + 1
            spans = linked_spans(replies_per_post, seed=n, base=base + n * 10**15 // 1000)
            path = Path(tmp) / f"body-{n}.json"
            path.write_bytes(json.dumps(request(spans)).encode())
            bodies.append((path, len(spans)))
            made += len(spans)
        proc = await _start_viewer(Path(tmp), logs, port)
        try:
            stop = threading.Event()
            lat: list[float] = []
            srch: list[float] = []
            reader = asyncio.create_task(_reads(port, stop, lat, srch))
            sent = posts = 0
            t0 = time.perf_counter()
            post_s: list[float] = []
            marks: list[tuple[float, float]] = []
            async with aiohttp.ClientSession() as http:
                for path, count in bodies:
                    posts += 1
                    body = path.read_bytes()
                    t = time.perf_counter()
                    async with http.post(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                         headers={"Authorization": f"Bearer {TOKEN}",
                                                  "Content-Type": "application/json"}) as r:
                        assert r.status == 200, await r.text()
                    post_s.append(time.perf_counter() - t)
                    marks.append((t, time.perf_counter()))
                    sent += count
            ingest_s = time.perf_counter() - t0
            stop.set()
            await reader
            total = await _chapter2_total(port)
            size = sum(p.stat().st_size for p in Path(tmp).glob("index.sqlite*"))
        finally:
            proc.terminate()
            await proc.wait()
            probe_file = Path(tmp) / "probe.log"
            probe_lines = [ln for ln in probe_file.read_text(errors="replace").splitlines()
                           if ln.startswith("probe ") and len(ln.split()) == 4] if probe_file.exists() else []
            if probe_lines:  # kept for a closer look after the run
                shutil.copy(probe_file, Path(tempfile.gettempdir()) / "bench-otlp-probe.log")
    for name, xs in (("/api/traces", lat), ("/api/search", srch)):
        xs.sort()
        print(f"{name} during the ingest: {len(xs)} reads, p50 {statistics.median(xs):.1f} ms, "
              f"p99 {xs[min(len(xs) - 1, int(len(xs) * 0.99))]:.1f} ms, max {xs[-1]:.1f} ms")
    if "--verbose" in sys.argv:
        print("posts (start, end) s:", [(round(a - t0, 2), round(b - t0, 2)) for a, b in marks])
        print("slowest reads (ms, at s, which):",
              [(round(ms), round(at - t0, 2), w) for ms, at, w, _ in sorted(_SLOW, reverse=True)[:12]])
    if "--probe" in sys.argv:
        # the viewer's probe lines (wall time, what, ms) around each slow read: what it waited for
        for ms, _at, w, wall in sorted(_SLOW, reverse=True)[:6]:
            near = [ln for ln in probe_lines if wall - 0.2 <= float(ln.split()[1]) <= wall + ms / 1000 + 0.2]
            print(f"read {w} {ms:.0f} ms at {wall:.3f}:", *near[:15], sep="\n    ")
        kinds: dict[str, list[float]] = {}
        for ln in probe_lines:
            kinds.setdefault(ln.split()[2], []).append(float(ln.split()[3]))
        print("probe totals (what: count, max ms):",
              {k: (len(v), round(max(v))) for k, v in sorted(kinds.items())})
    print(f"fleet ingest: {sent:,} spans in {posts} posts, {total:,} chapter2 traces listed, {ingest_s:.1f} s "
          f"({sent / ingest_s:,.0f} spans/s; first post {post_s[0]:.2f} s, last {post_s[-1]:.2f} s); "
          f"index {size / 1e6:.0f} MB")


def part2(total: int) -> None:
    g = otlp.ReplyGrouper()
    done, chunk_no = 0, 0
    t0 = time.perf_counter()
    while done < total:
        chunk_no += 1
        spans = otlp.parse_request(request(linked_spans(12_000, seed=chunk_no % 60000,
                                                        base=1_700_000_000_000_000_000 + chunk_no * 10**15)))
        t = time.perf_counter()
        g.add(spans)
        dt = time.perf_counter() - t
        done += len(spans)
        if chunk_no == 1 or done >= total or chunk_no % 10 == 0:
            print(f"  chunk {chunk_no}: {len(spans)} spans grouped in {dt * 1000:.0f} ms "
                  f"({len(spans) / dt:,.0f} spans/s), {done:,} spans, {len(g.replies()):,} replies so far")
    print(f"grouped {done:,} spans in {time.perf_counter() - t0:.1f} s including generation")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=32)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--fleet-spans", type=int, default=0, help="part 3 only: spans to ingest into the viewer")
    ap.add_argument("--per-post", type=int, default=80_000, help="part 3: spans a post (~30k traces)")
    ap.add_argument("--verbose", action="store_true", help="part 3: the post times and the slowest reads")
    ap.add_argument("--probe", action="store_true",
                    help="part 3: run the viewer under bench/_viewer_probe.py and show what it did at the slowest reads")
    a = ap.parse_args()
    print("load average:", Path("/proc/loadavg").read_text().strip())
    if a.fleet_spans:
        asyncio.run(part3(a.fleet_spans, a.per_post))
        print("load average:", Path("/proc/loadavg").read_text().strip())
        return
    asyncio.run(part1(a.mb))
    part2(a.spans)
    print("load average:", Path("/proc/loadavg").read_text().strip())


if __name__ == "__main__":
    main()
