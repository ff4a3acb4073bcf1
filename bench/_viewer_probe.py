"""`chapterx traces serve` with timing probes, for `bench_otlp_ingest.py --probe` (evidence for stalls).

    python bench/_viewer_probe.py traces serve ...

Prints one line to stderr (`probe <wall time> <what> <ms>`) for every garbage collection, chapter2
refresh/grouping, store call and event-loop lag longer than PROBE_MS (default 50 ms), so the bench
can line up its slowest reads with what the viewer process was doing then. Bench-only: nothing
here is imported by chapterx.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LIMIT_MS = float(os.environ.get("PROBE_MS", "50"))


def _say(what: str, ms: float) -> None:
    if ms >= LIMIT_MS:
        # one write per line: lines from several threads never interleave
        os.write(2, f"probe {time.time():.3f} {what} {ms:.0f}\n".encode())


def _gc_probe() -> None:
    started: dict[int, float] = {}

    where: dict[int, str] = {}

    def cb(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[info["generation"]] = time.perf_counter()
            if info["generation"] == 2:  # which code's allocation triggered the full collection
                where[2] = ">".join(f.name for f in traceback.extract_stack(limit=7)[:-1])
        else:
            t = started.pop(info["generation"], None)
            if t is not None:
                ms = (time.perf_counter() - t) * 1000
                what = f"gc-gen{info['generation']}[{threading.current_thread().name}]"
                if ms >= LIMIT_MS and info["generation"] == 2:
                    # how much the collection had to walk, and how much was frozen (skipped)
                    what += (f"[live={len(gc.get_objects(2))},collected={info['collected']},"
                             f"frozen={gc.get_freeze_count()},at={where.get(2)}]")
                _say(what, ms)

    gc.callbacks.append(cb)


def _timed(cls: Any, name: str, label: str) -> None:
    fn = getattr(cls, name)

    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            _say(f"{label}[{threading.current_thread().name}]", (time.perf_counter() - t) * 1000)

    setattr(cls, name, wrapper)


def _phases(cls: Any, name: str) -> None:
    """Always log when a coroutine method ends and how long it took (a post's timeline)."""
    fn = getattr(cls, name)

    @functools.wraps(fn)
    async def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return await fn(*a, **k)
        finally:
            os.write(2, f"probe {time.time():.3f} phase-{name} {(time.perf_counter() - t) * 1000:.0f}\n".encode())

    setattr(cls, name, wrapper)


def _loop_lag() -> None:
    """Event-loop lag: a 10 ms sleep that wakes late means the loop was blocked."""
    from chapterx.viewer import app

    orig = app.create_app

    def create_app(*a: Any, **k: Any) -> Any:
        web_app = orig(*a, **k)

        async def lag(_app: Any) -> None:
            async def watch() -> None:
                # the loop thread's run-queue wait (/proc schedstat, ns): a lag made of it is the
                # box's other processes holding the CPUs; the rest is this process (GIL, gc)
                stat = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
                while True:
                    t = time.perf_counter()
                    q0 = int(stat.read_text().split()[1])
                    await asyncio.sleep(0.01)
                    lag = (time.perf_counter() - t) * 1000 - 10
                    if lag >= LIMIT_MS:
                        queued = (int(stat.read_text().split()[1]) - q0) / 1e6
                        _say(f"loop-lag[runqueue={queued:.0f}ms]", lag)

            _app["_probe_lag"] = asyncio.get_running_loop().create_task(watch())

        web_app.on_startup.append(lag)
        return web_app

    app.create_app = create_app
    from chapterx.viewer import server

    server.create_app = create_app


def main() -> None:
    from chapterx.trace.store import TraceStore
    from chapterx.viewer import app as viewer_app
    from chapterx.viewer.chapter2 import Chapter2Source

    _gc_probe()
    for name in ("_refresh_locked", "add_ingested"):
        _timed(Chapter2Source, name, f"chapter2.{name}")
    from chapterx.trace.store import _Worker

    for name in ("add_external", "remove_external", "list_traces", "search", "_auto_refresh", "_count",
                 "_select", "_enrich", "_channel_names", "index_progress"):
        _timed(TraceStore, name, f"store.{name}")
    _timed(_Worker, "wait_for_pass", "worker.wait_for_pass")
    _timed(viewer_app.Viewer, "_push_sync", "viewer._push_sync")
    for name in ("decode", "ingest"):  # a post's phases: decode (worker process), group + push
        _phases(viewer_app.Viewer, name)
    _loop_lag()

    def wal_size() -> None:  # the WAL's size once a second: a WAL that only grows slows every read
        wal = Path(sys.argv[sys.argv.index("--index") + 1] + "-wal")
        while True:
            time.sleep(1.0)
            with contextlib.suppress(OSError):
                os.write(2, f"probe {time.time():.3f} wal-MB {wal.stat().st_size / 1e6:.0f}\n".encode())

    if "--index" in sys.argv:
        threading.Thread(target=wal_size, daemon=True).start()
    from chapterx.cli import main as cli

    sys.argv = ["chapterx", *sys.argv[1:]]
    raise SystemExit(cli())


if __name__ == "__main__":
    main()
