"""chapter2 OTLP ingest: a 32 MB POST must not delay concurrent `/api/traces` reads by > 100 ms,
and 1M chapter2 spans (~30k traces per file) are grouped incrementally at a steady rate.

    python bench/bench_otlp_ingest.py [--mb 32] [--spans 1000000]

Part 1 starts the real viewer (worker thread + worker process for the decode), posts one OTLP JSON
body of about --mb megabytes of linked chapter2 traces, and meanwhile reads `/api/traces` every
20 ms; it prints the read latencies during the ingest (p50/p99/max) and the ingest time.
Part 2 feeds --spans spans to `otlp.ReplyGrouper` in file-sized chunks and prints the rate per
chunk (flat = linear; the old grouping got slower with every chunk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chapterx_compat.chapter2 import otlp  # noqa: E402
from tests.security.otlpgen import linked_spans, request  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"


def _body(mb: float) -> tuple[bytes, int]:
    n = 1000
    base = time.time_ns() - 3600 * 10**9  # recent, so no retention window hides them
    one = len(json.dumps(request(linked_spans(n, seed=7, base=base))))
    n = int(n * mb * 1_000_000 / one)
    body = json.dumps(request(linked_spans(n, seed=7, base=base))).encode()
    return body, n


async def _reads(port: int, stop: threading.Event, out: list[float]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            t = time.perf_counter()
            async with http.get(f"http://127.0.0.1:{port}/api/traces?limit=50",
                                headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                await r.read()
                assert r.status == 200
            out.append((time.perf_counter() - t) * 1000)
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
    import os
    import socket
    import subprocess

    import aiohttp

    body, n = _body(mb)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        (Path(tmp) / "in").mkdir()
        env = {**os.environ, "AUTH_TOKEN": TOKEN, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chapterx", "traces", "serve", "--port", str(port), "--logs-dir", str(logs),
            "--chapter2-logs-dir", str(Path(tmp) / "in"), "--index", str(Path(tmp) / "index.sqlite"),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await _wait_up(port, proc)
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
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/api/traces?limit=1&framework=chapter2",
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                    total = (await r.json())["total"]
        finally:
            proc.terminate()
            await proc.wait()
    q = statistics.quantiles(busy, n=100) if len(busy) > 2 else busy
    print(f"ingest: {len(body) / 1e6:.1f} MB, {n} replies generated, {total} listed, {ingest_s:.2f} s")
    print(f"viewer process peak RSS (VmHWM, the decode worker excluded): {hwm[0].split(':')[1].strip()}")
    print(f"/api/traces idle: p50 {statistics.median(idle):.1f} ms ({len(idle)} reads)")
    print(f"/api/traces during ingest: {len(busy)} reads, p50 {statistics.median(busy):.1f} ms, "
          f"p99 {q[-1]:.1f} ms, max {max(busy):.1f} ms")


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
    a = ap.parse_args()
    print("load average:", Path("/proc/loadavg").read_text().strip())
    asyncio.run(part1(a.mb))
    part2(a.spans)
    print("load average:", Path("/proc/loadavg").read_text().strip())


if __name__ == "__main__":
    main()
