"""TraceStore: every read of traces (CLI and viewer) goes through here.

It answers with exactly the JSON shapes of upstream's viewer API (`/api/bots`, `/api/channels`,
`/api/traces`, `/api/search`, `/api/trace/<id>`) plus our additions (`framework`, `cost`,
`status`, search pagination fields). Lists and searches are SQLite index lookups; only a trace's
detail (and, for upstream index lines that lack positions, a context position) opens a trace file.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chapterx.procs import pid_alive
from chapterx.trace import index as ix
from chapterx.trace.cost import trace_cost
from chapterx.trace.ids import (
    TRACE_ID_RE,
    message_id_from_query,
    message_key,
    parse_iso,
    parse_trace_file_name,
    snowflake_of,
)
from chapterx.trace.model import SLIM_FIELDS, index_entry
from chapterx.trace.paths import BODY_DIRS, BODY_REF_RE
from chapterx.trace.writer import append_line_locked, proc_start, safe_folder_name

log = logging.getLogger(__name__)
INPROGRESS_DIR = ".inprogress"
# Markers from another host cannot be checked for liveness: after this long they count as aborted.
FOREIGN_MARKER_MAX_AGE = 6 * 3600
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
EXTENSION_FIELDS = ("framework", "status", "cost")
# Above this many full-text candidates, sorting them costs more than the scan (which stops after a
# page, and whose count is no slower): see bench/README.md.
FTS_MAX_CANDIDATES = 50_000

Row = dict[str, Any]  # one index row keyed by column name (never by position)

_SLIM_SQL = (
    "id, trace_id, timestamp, channel_id, trigger_id, bot, channel_name, reason, trigger_preview, "
    "response_preview, is_thread, parent_channel_id, success, duration_ms, llm_calls, tool_execs, "
    "total_tokens, framework, status, cost, source_id, filename, extra, ts"
)

# A list page never needs `extra` (a chapter2 row's whole detail document): leaving it out keeps a
# page's read to the rows' own pages, which mattered while an ingest's commits kept the readers'
# page cache cold (list p99 27-30 ms against 6-7 ms without it, with a writer busy; bench/README.md).
_LIST_SQL = _SLIM_SQL.replace(", extra,", ", CASE WHEN source_id >= 0 THEN extra END AS extra,")
# ... and comes back from SQLite in one step, as one JSON array: fetched a row at a time, each row
# gave the GIL back and waited up to a switch interval to retake it while an ingest was grouping
# on another thread (50 rows: p90 32 ms against 2.5 ms in one step). A REAL comes as
# `[quote(x)]`, its exact text (JSON numbers would keep 15 digits). Only `ts` and `cost` have REAL
# affinity; the other columns hold integers or text (TEXT affinity turns any number into text).
_PAGE_COLS = tuple(c.split()[-1] for c in _LIST_SQL.split(","))
_REAL_COLS = ("ts", "cost")
_PAGE_JSON = "json_group_array(json_array({}))".format(
    ",".join(f"iif(typeof({c})='real', json_array(quote({c})), {c})" if c in _REAL_COLS else c
             for c in _PAGE_COLS))

# list filters whose total is a kept count (`index.counts`): (kind, key when no parameter)
_KEPT_COUNTS: dict[tuple[str, ...], tuple[str, str]] = {
    (): ("total", "rows"), ("bot = ?",): ("bot", ""), ("channel_id = ?",): ("channel", ""),
    ("framework = ?",): ("framework", ""),
}
# ... and those of them with an index on (..., ts): from a time on, the kept count less the rows before
_KEPT_TIME_INDEXED = ((), ("bot = ?",), ("channel_id = ?",))


def _default_index_path(bases: list[Path]) -> Path:
    """`TRACE_INDEX_PATH`, else a file in the user's cache folder keyed by the logs bases. Never
    inside the logs tree: readers must not need write access there (read-only mounts, golden data)."""
    if os.environ.get("TRACE_INDEX_PATH"):
        return Path(os.environ["TRACE_INDEX_PATH"])
    key = hashlib.sha256("\n".join(str(b.resolve()) for b in bases).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chapterx"
    return cache / f"trace-index-{key}.sqlite"


def _pid_alive(pid: int, start: str | None) -> bool:
    if not pid_alive(pid):
        return False
    if start is not None:
        now = proc_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    return True


def marker_state(marker: dict[str, Any], mtime: float) -> str:
    """`running` while the writing process lives, else `aborted` (killed, crashed, host gone)."""
    writer = marker.get("_writer") or {}
    pid = writer.get("pid")
    if writer.get("host") == socket.gethostname() and isinstance(pid, int):
        return "running" if _pid_alive(pid, writer.get("procStart")) else "aborted"
    return "running" if time.time() - mtime < FOREIGN_MARKER_MAX_AGE else "aborted"


def confined_file(path: Path, root: Path) -> Path | None:
    """`path` if it is a regular file whose real location is inside `root` (symlinks that stay in
    the tree are fine; one that leads out of it, a folder, a FIFO or a device is not)."""
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(root.resolve(strict=True)) or not stat.S_ISREG(os.stat(real).st_mode):
            return None
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        return None
    return path


def _to_ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    return parse_iso(str(value))


# a catch-up this far behind is a "build" (the viewer says "building index: N%")
BUILDING_BYTES = 8 * 1024 * 1024
# readers wait for the worker only when this little is new, and never longer than this
SMALL_BACKLOG_BYTES = 64 * 1024
SMALL_BACKLOG_WAIT_S = 2.0


@dataclass(frozen=True)
class IndexProgress:
    """Bytes of the index files already indexed, out of their size at the start of the pass."""

    building: bool = False
    done_bytes: int = 0
    total_bytes: int = 0

    @property
    def percent(self) -> int:
        return 100 if self.total_bytes <= 0 else min(100, int(100 * self.done_bytes / self.total_bytes))


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class _Worker:
    """The background ingestion process and the state it shares with the readers' process."""

    def __init__(self, bases: list[Path], index_path: Path, interval: float) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # the caller has threads (the viewer): never fork them
        self._wake = ctx.Event()
        self._stop = ctx.Event()
        # requested / completed pass tickets, last pass end (monotonic), bytes read to the end,
        # progress (building flag, done, total)
        self._state = ctx.Array("d", 7, lock=True)
        # not a daemon: a first build starts worker processes of its own; stopped at exit instead
        self._proc = ctx.Process(target=_worker_main, name="trace-index", daemon=False, args=(
            [str(b) for b in bases], str(index_path), max(interval, 0.05), BUILDING_BYTES,
            self._wake, self._stop, self._state, os.getpid()))
        self._proc.start()
        atexit.register(self.stop)

    def wake(self) -> None:
        self._wake.set()

    def alive(self) -> bool:
        return self._proc.is_alive()

    def caught_up(self) -> int:
        return int(self._state[3])

    def since_last_pass(self) -> float:
        last = self._state[2]
        return float("inf") if last == 0 else time.monotonic() - last

    def progress(self) -> IndexProgress:
        with self._state.get_lock():
            return IndexProgress(bool(self._state[4]), int(self._state[5]), int(self._state[6]))

    def wait_for_pass(self, timeout: float) -> None:
        """Ask for a pass and wait (at most `timeout`) until one that started after now ends."""
        with self._state.get_lock():
            self._state[0] += 1
            ticket = self._state[0]
        self._wake.set()
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while self._state[1] < ticket and time.monotonic() < deadline and self._proc.is_alive():
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        self._stop.set()
        self._wake.set()
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)


def _worker_main(bases: list[str], index_path: str, interval: float, building_bytes: int, wake: Any,
                 stop: Any, state: Any, parent: int) -> None:
    """The worker process: a foreground store over the same files and database, one pass per wake
    or interval, its progress published in `state`."""
    global BUILDING_BYTES
    # Ctrl-C in a terminal signals the whole process group: the parent stops this worker itself (a
    # KeyboardInterrupt here would only print a traceback over the viewer's clean shutdown).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    BUILDING_BYTES = building_bytes
    store = TraceStore([Path(b) for b in bases], index_path=Path(index_path), auto_refresh_interval=interval)

    def publish(p: IndexProgress) -> None:
        with state.get_lock():
            state[4], state[5], state[6] = float(p.building), float(p.done_bytes), float(p.total_bytes)

    try:
        while not stop.is_set() and os.getppid() == parent:
            wake.wait(timeout=interval)
            wake.clear()
            if stop.is_set():
                break
            ticket = state[0]
            sizes = sum(_size(f) for f, _ in store.index_files())
            try:
                store.refresh(progress=publish)
            except Exception:
                log.exception("trace index: catch-up failed")
                time.sleep(1.0)
            with state.get_lock():
                state[1] = max(state[1], ticket)
                state[2] = time.monotonic()
                # read to the end as the files were at the start of the pass (a trailing fragment
                # without newline waits for its writer: it is not a backlog)
                state[3] = float(sizes)
                state[4] = 0.0
    finally:
        store.close()


class TraceStore:
    """Read access to the traces under one or more logs bases (`LOGS_DIRS`)."""

    def __init__(self, logs_dirs: list[Path], *, index_path: Path | None = None,
                 auto_refresh_interval: float = 0.5, background: bool = False) -> None:
        # One spelling per folder: `logs` and `/opt/chapterx/logs` are the same source, not two (every
        # trace would be listed and counted twice).
        self.bases = list(dict.fromkeys(Path(os.path.realpath(b)) for b in logs_dirs))
        self.index_path = index_path or _default_index_path(self.bases)
        try:
            self._conn = ix.connect(self.index_path)
        except (OSError, sqlite3.OperationalError):
            if index_path is not None:
                raise
            # no writable cache folder (e.g. a service user without a home): a per-user temp file
            fallback = Path(tempfile.gettempdir()) / f"chapterx-{os.getuid()}" / self.index_path.name
            self.index_path = fallback
            self._conn = ix.connect(fallback)
        self._fts_last: tuple[str, int] | None = None
        self._fts_last_ok = False
        self._lock = threading.RLock()
        self._auto_interval = auto_refresh_interval
        self._last_refresh = 0.0
        self._marker_fp: str | None = None
        # parsed markers by path with the mtime they were read at: a refresh re-reads only changed ones
        self._marker_data: dict[Path, tuple[float, Any]] = {}
        self._cache: dict[Any, Any] = {}
        self._cache_gen = -1
        self._dir_cache: dict[Path, tuple[float, dict[str, str]]] = {}
        self.last_ingest = ix.IngestStats()
        # Writes (tailing, markers, caches, external rows) go through `_wconn` under `_wlock`
        # (the readers' connection and lock). In the background mode (the viewer) tailing and
        # markers move to a worker process with its own connection: a catch-up never holds a
        # reader up (no shared lock, no shared interpreter); readers see the last committed
        # state (WAL), and their own cache writes are skipped rather than waited for.
        self._wconn = self._conn
        self._wlock = self._lock
        self._worker: _Worker | None = None
        # External (chapter2) rows in the background mode: their own connection and lock, so a
        # push transaction (and the WAL checkpoint its commit may run) never holds up a reader on
        # `_conn`; the readers keep reading the last committed snapshot meanwhile (WAL).
        self._xconn: sqlite3.Connection | None = None
        self._xlock = threading.Lock()
        self._committed: dict[str, int] = {}  # index file -> offset committed (this process's passes)
        self._progress = IndexProgress()
        if background:
            self.start_background()

    def start_background(self) -> None:
        """Move ingestion to a worker process (idempotent). It reads the same index files into the
        same database and stops with this store (or when this process is gone)."""
        with self._lock:
            if self._worker is None:
                self._worker = _Worker(self.bases, self.index_path, self._auto_interval)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        with self._xlock:
            if self._xconn is not None:
                self._xconn.close()
                self._xconn = None
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _external_writer(self) -> Iterator[sqlite3.Connection]:
        """The connection (under its lock) that writes external rows: the readers' own in the
        foreground (one connection, one lock, as for everything else), a second one in the
        background mode, where readers must never queue behind an ingest's transactions."""
        if self._worker is None:
            with self._wlock:
                yield self._wconn
            return
        with self._xlock:
            if self._xconn is None:
                self._xconn = ix.connect(self.index_path)
            yield self._xconn

    def index_progress(self) -> IndexProgress:
        """How far the index is behind its files (`building` while a big catch-up runs)."""
        return self._worker.progress() if self._worker is not None else self._progress

    # ------------------------------------------------------------------ refresh
    def index_files(self) -> list[tuple[Path, Path]]:
        return [(b / "traces" / "index.jsonl", b) for b in self.bases]

    def refresh(self, progress: Callable[[IndexProgress], None] | None = None) -> ix.IngestStats:
        """Tail every index.jsonl and rescan in-progress markers; `progress` is called after each
        committed chunk (the CLI's progress bar, the worker's shared state)."""
        with self._wlock:
            stats = ix.IngestStats()
            files = self.index_files()
            sizes = {str(f): _size(f) for f, _ in files}
            done = dict(self._committed) if self._committed else {
                p: o for p, o in self._wconn.execute("SELECT path, offset FROM sources")}
            total = sum(sizes.values())
            behind = sum(max(0, sizes[k] - done.get(k, 0)) for k in sizes)
            building = behind >= BUILDING_BYTES
            self._progress = IndexProgress(building, total - behind, total)
            if progress is not None and building:
                progress(self._progress)
            for index_file, base in files:
                key = str(index_file)

                def report(offset: int, key: str = key) -> None:
                    done[key] = offset
                    self._committed[key] = offset
                    self._progress = IndexProgress(building, sum(min(done.get(k, 0), sizes[k]) for k in sizes),
                                                   total)
                    if progress is not None:
                        progress(self._progress)

                ix.tail_source(self._wconn, index_file, base, stats, progress=report)
            self._refresh_markers()
            self._last_refresh = time.monotonic()
            self.last_ingest = stats
            self._progress = IndexProgress(False, total, total)
            return stats

    def _auto_refresh(self) -> None:
        worker = self._worker
        if worker is not None and not worker.alive():
            log.warning("trace index: the background worker is gone; catching up in the requests again")
            self._worker = worker = None
        if worker is None:
            if time.monotonic() - self._last_refresh >= self._auto_interval:
                self.refresh()
            return
        # Background: a big backlog (a first build, a burst) is not waited for: answer from what
        # is committed now. A few new lines are (so what was just written is listed). With nothing
        # new in the index files, a pass overdue (markers) is asked for, not waited for: on a busy
        # box the worker process could take half a second to be scheduled (a read waited 515 ms
        # during a chapter2 ingest), and it passes every `auto_refresh_interval` anyway.
        backlog = sum(_size(f) for f, _ in self.index_files()) - worker.caught_up()
        if backlog > SMALL_BACKLOG_BYTES:
            worker.wake()
        elif backlog > 0:
            worker.wait_for_pass(SMALL_BACKLOG_WAIT_S)
        elif worker.since_last_pass() >= self._auto_interval:
            worker.wake()

    def reindex(self, progress: Callable[[IndexProgress], None] | None = None) -> ix.IngestStats:
        """Drop everything read from index.jsonl files and read them again from the start."""
        with self._wlock:
            with ix.transaction(self._wconn):
                ix.delete_many(self._wconn, "source_id >= 0")
                self._wconn.execute("DELETE FROM sources")
                self._wconn.execute("DELETE FROM channel_names")
                ix.bump_generation(self._wconn)
            self._committed.clear()
            self._marker_fp = None
            stats = self.refresh(progress)
            if self._repair_markers():
                more = self.refresh()
                stats.lines += more.lines
                stats.malformed += more.malformed
                self.last_ingest = stats
            return stats

    def _scan_markers(self) -> list[tuple[Path, Path, float]]:
        found = []
        for base in self.bases:
            tdir = base / "traces"
            try:
                bots = [e for e in os.scandir(tdir)
                        if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
            except OSError:
                continue
            for bot in bots:
                mdir = Path(bot.path) / INPROGRESS_DIR
                try:
                    entries = list(os.scandir(mdir))
                except OSError:
                    continue
                for e in entries:
                    # markers are regular files written by our writer: a symlink is not one
                    if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file(follow_symlinks=False):
                        with contextlib.suppress(OSError):
                            found.append((Path(e.path), base, e.stat().st_mtime))
        return found

    def _read_marker(self, path: Path, mtime: float) -> Any:
        cached = self._marker_data.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # not cached: a marker caught mid-write is read again next time
        self._marker_data[path] = (mtime, data)
        return data

    def _refresh_markers(self) -> None:
        markers = []
        found = self._scan_markers()
        live = {path for path, _, _ in found}
        for gone in [p for p in self._marker_data if p not in live]:
            del self._marker_data[gone]
        for path, base, mtime in found:
            data = self._read_marker(path, mtime)
            if not isinstance(data, dict) or not isinstance(data.get("traceId"), str):
                continue
            markers.append((path, base, mtime, data, marker_state(data, mtime)))
        fp = hashlib.sha1(
            "\n".join(f"{p}|{m}|{s}" for p, _, m, _, s in sorted(markers, key=lambda x: str(x[0]))).encode(),
            usedforsecurity=False,
        ).hexdigest()
        if fp == self._marker_fp:
            return
        conn = self._wconn
        with ix.transaction(conn):
            ix.delete_rows(conn, "source_id < 0 AND source_id = ?", (ix.MARKER_SOURCE,))
            entries, extras = [], []
            for path, base, _mtime, data, state in markers:
                if conn.execute("SELECT 1 FROM traces WHERE trace_id=? AND source_id>=0",
                                (data["traceId"],)).fetchone():
                    continue  # the final trace landed; the marker is about to be removed
                final = self._final_file(path, data["traceId"]) if state == "aborted" else None
                if final is not None:
                    # the writer died between renaming the trace file into place and appending its
                    # index line: the finished trace is the truth, not "aborted"
                    trace, fpath = final
                    entry = index_entry(trace, filename=fpath.name)
                    extras.append(json.dumps({"marker": str(path), "file": str(fpath),
                                              "root": str(base / "traces")}))
                else:
                    entry = index_entry(data, filename=path.name)
                    entry["status"] = state
                    entry["success"] = False
                    extras.append(json.dumps({"marker": str(path)}))
                entries.append(entry)
            ix.insert_entries(conn, entries, ix.MARKER_SOURCE, extras=extras)
            ix.bump_generation(conn)
        self._marker_fp = fp

    def _final_file(self, marker: Path, trace_id: str) -> tuple[dict[str, Any], Path] | None:
        """The finished trace file of a marker's activation, if it is in place (same bot folder)."""
        folder = marker.parent.parent
        name = self._listing(folder).get(trace_id)
        path = confined_file(folder / name, folder.parent) if name else None
        trace = _read_json(path) if path else None
        if path is None or trace is None or trace.get("traceId") != trace_id or "timestamp" not in trace:
            return None
        return trace, path

    def _repair_markers(self) -> int:
        """Reindex: write the index line a killed writer never appended (its trace file is in
        place, see `_final_file`) and remove its marker. Returns how many were repaired."""
        rows = self._wconn.execute("SELECT extra FROM traces WHERE source_id < 0 AND source_id = ?",
                                  (ix.MARKER_SOURCE,)).fetchall()
        n = 0
        for (extra,) in rows:
            info = json.loads(extra or "{}")
            if not info.get("file"):
                continue
            fpath = confined_file(Path(info["file"]), Path(info["root"]))
            trace = _read_json(fpath) if fpath else None
            if fpath is None or trace is None:
                continue
            try:
                append_line_locked(Path(info["root"]) / "index.jsonl",
                                   json.dumps(index_entry(trace, fpath.name), ensure_ascii=False, default=str))
                Path(info["marker"]).unlink(missing_ok=True)
            except OSError as exc:  # a read-only tree: the read-side reconciliation still shows it
                log.warning("cannot repair the index line of %s: %s", fpath, exc)
                continue
            n += 1
        return n

    # ------------------------------------------------------------------ helpers
    def _cached(self, key: Any, compute: Any) -> Any:
        gen = ix.generation(self._conn)
        if gen != self._cache_gen:
            self._cache.clear()
            self._cache_gen = gen
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _channel_names(self) -> dict[str, str]:
        names: dict[str, str] = self._cached(("names",), lambda: {
            str(c): str(n) for c, n in self._conn.execute("SELECT channel_id, name FROM channel_names")})
        return names

    def _select(self, sql: str, params: Any = ()) -> list[Row]:
        """Rows as dicts keyed by column name (caller holds the lock)."""
        cur = self._conn.execute(sql, params)
        rows = cur.fetchall()
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def _select_page(self, sql: str, params: Any) -> list[Row]:
        """`_select` of a list page (`_LIST_SQL` columns) in one SQLite step (caller holds the lock)."""
        try:
            raw = self._conn.execute(f"SELECT {_PAGE_JSON} FROM ({sql})", params).fetchone()[0]
            pages = json.loads(raw)
        except (sqlite3.OperationalError, ValueError):  # a BLOB value, no JSON functions, odd text
            return self._select(sql, params)
        rows = [dict(zip(_PAGE_COLS, values, strict=True)) for values in pages]
        for r in rows:
            for c in _REAL_COLS:
                if type(v := r[c]) is list:
                    r[c] = float(v[0])
        rows.sort(key=lambda r: (-r["ts"], -r["id"]))  # the page's order, whatever the aggregate's
        return rows

    def _slim(self, row: Row, names: dict[str, str]) -> dict[str, Any]:
        channel_id, is_thread, success = row["channel_id"], row["is_thread"], row["success"]
        values = (  # in SLIM_FIELDS order
            row["trace_id"], row["timestamp"], channel_id, row["trigger_id"], row["bot"],
            # upstream resolves names through a cache filled from every line (latest wins)
            names.get(channel_id or "") or row["channel_name"] or channel_id,
            row["reason"], row["trigger_preview"], row["response_preview"],
            None if is_thread is None else bool(is_thread), row["parent_channel_id"],
            bool(success), row["duration_ms"], row["llm_calls"], row["tool_execs"], row["total_tokens"],
        )
        out = {k: v for k, v in zip(SLIM_FIELDS, values, strict=True) if v is not None}
        out["framework"] = row["framework"] or "chapterx"
        out["status"] = row["status"] or ("success" if success else "failed")
        out["cost"] = row["cost"]
        return out

    # ------------------------------------------------------------------ API: bots / channels
    def bots(self) -> dict[str, list[str]]:
        """Bots from the index plus trace folders that hold trace files; folders that hold no
        trace (upstream's empty `bodies/`) are not bots."""
        self._auto_refresh()
        with self._lock:
            names = set(self._cached(("bots",), lambda: [k for k, _ in ix.counts(self._conn, "bot")]))
        for base in self.bases:
            try:
                entries = list(os.scandir(base / "traces"))
            except OSError:
                continue
            for e in entries:
                if e.name in names or e.name.startswith(".") or not e.is_dir():
                    continue
                if self._listing(Path(e.path)):  # cached by folder mtime: no rescan per request
                    names.add(e.name)
        return {"bots": sorted(names)}

    def channels(self) -> dict[str, list[dict[str, Any]]]:
        """Every channel in the index with its trace count, most traces first."""
        self._auto_refresh()
        with self._lock:
            def compute() -> list[dict[str, Any]]:
                names = self._channel_names()
                return [{"id": cid, "name": names.get(cid, cid), "count": n}
                        for cid, n in ix.counts(self._conn, "channel")]
            return {"channels": self._cached(("channels",), compute)}

    # ------------------------------------------------------------------ API: list
    def list_traces(self, *, bot: str | None = None, channel: str | None = None, failed: bool = False,
                    since: Any = None, until: Any = None, text: str | None = None,
                    framework: str | None = None, status: str | None = None, reason: str | None = None,
                    limit: int = DEFAULT_LIMIT, offset: int = 0, count_only: bool = False) -> dict[str, Any]:
        """`/api/traces`: newest first, filters applied before paging; limit clamped to 1..200.
        `count_only`: just the total (no page, no catch-up first), for a second count in the same
        request, such as what a retention floor hides."""
        if not count_only:
            self._auto_refresh()
        limit = max(1, min(MAX_LIMIT, int(limit)))
        offset = max(0, int(offset))
        where: list[str] = []
        params: list[Any] = []
        if failed:
            where.append("success = 0")
        ts_since, ts_until = _to_ts(since), _to_ts(until)
        for test, value in (("bot = ?", bot or None), ("channel_id = ?", channel or None),
                            ("framework = ?", framework or None), ("status = ?", status or None),
                            ("reason = ?", reason or None), ("ts >= ?", ts_since), ("ts <= ?", ts_until)):
            if value is not None:  # an empty filter is no filter
                where.append(test)
                params.append(value)
        with self._lock:  # the lock also guards the connection's temp table of full-text hits
            fts = ix.fts_query(text) if text and ix.has_fts(self._conn) else None
            if fts is not None and not self._fts_hits(fts):
                fts = None  # in most rows anyway: walking the time index with LIKE is faster
            if text:
                if fts is not None:
                    # the trigram index narrows the candidates; the LIKE below keeps the scan's answers
                    where.append("id IN (SELECT id FROM temp.fts_hits "
                                 "UNION ALL SELECT id FROM traces WHERE trace_id = ?)")
                    params.append(text)
                where.append("(trigger_preview LIKE ? ESCAPE '\\' OR response_preview LIKE ? ESCAPE '\\' "
                             "OR trace_id = ?)")
                like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                params.extend([like, like, text])
            clause = (" WHERE " + " AND ".join(where)) if where else ""
            total = self._cached(("count", clause, tuple(params)), lambda: self._count(where, params, clause))
            if count_only:
                return {"traces": [], "total": total, "offset": offset, "limit": limit}
            rows = self._select_page(
                f"SELECT {_LIST_SQL} FROM traces{clause} ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset])
            names = self._channel_names()
            rows = self._enrich(rows)
            traces = [self._slim(r, names) for r in rows]
        out: dict[str, Any] = {"traces": traces, "total": total, "offset": offset, "limit": limit}
        progress = self.index_progress()
        if progress.building:  # only while a big catch-up runs, so the usual shape is upstream's
            out["indexing"] = {"building": True, "percent": progress.percent}
        return out

    def _fts_hits(self, fts: str) -> bool:
        """Fill `temp.fts_hits` with the rows the full-text table offers for `fts` (caller holds
        the lock). False when there are more than FTS_MAX_CANDIDATES: then sorting them would
        cost more than the scan, which stops after a page and counts no slower. The hits are
        kept for the same query and index generation, so paging does not repeat the lookup."""
        gen = ix.generation(self._conn)
        if self._fts_last == (fts, gen):
            return self._fts_last_ok
        ids = self._conn.execute("SELECT rowid FROM traces_fts WHERE traces_fts MATCH ? LIMIT ?",
                                 (fts, FTS_MAX_CANDIDATES + 1)).fetchall()
        ok = len(ids) <= FTS_MAX_CANDIDATES
        self._conn.execute("CREATE TEMP TABLE IF NOT EXISTS fts_hits(id INTEGER PRIMARY KEY)")
        self._conn.execute("DELETE FROM temp.fts_hits")
        if ok:
            self._conn.executemany("INSERT INTO temp.fts_hits(id) VALUES (?)", ids)
        self._fts_last, self._fts_last_ok = (fts, gen), ok
        return ok

    # ------------------------------------------------------------------ API: search
    def search(self, query: str, *, bot: str | None = None, limit: int = DEFAULT_LIMIT,
               offset: int = 0, _again: bool = True) -> dict[str, Any]:
        """`/api/search`: traces that used a Discord message (link or id; relay ids match their
        snowflake), one role per trace (trigger, else context with position, else sent)."""
        self._auto_refresh()
        limit = max(1, min(MAX_LIMIT, int(limit)))
        offset = max(0, int(offset))
        message_id = message_id_from_query(query or "")
        key = message_key(message_id)
        if key is None:
            return {"messageId": message_id, "results": [], "total": 0, "offset": offset, "limit": limit}
        cols = ', '.join('t.' + c.strip() for c in _SLIM_SQL.split(','))
        sql = f"SELECT m.role, m.position, {cols} FROM messages m JOIN traces t ON t.id = m.trace_row WHERE m.key = ?"
        params: list[Any] = [key]
        bot_sql = ""
        if bot:
            bot_sql = " AND t.bot = ?"
            params.append(bot)
        with self._lock:
            rows = self._select(sql + bot_sql, params)
            if isinstance(key, int):
                stale: set[int] = set()
                hits = ix.context_hits(self._conn, key, stale)
                if stale:
                    self._source_changed(stale)
                    if _again and self._worker is None:
                        # read the changed file again now and answer from it
                        self.refresh()
                        return self.search(query, bot=bot, limit=limit, offset=offset, _again=False)
                found = list(hits)
                for i in range(0, len(found), 500):
                    part = found[i:i + 500]
                    for r in self._select(f"SELECT 1 AS role, NULL AS position, {cols} FROM traces t "
                                          f"WHERE t.id IN ({','.join('?' * len(part))}){bot_sql}",
                                          [*part, *params[1:]]):
                        r["position"] = hits[r["id"]]
                        rows.append(r)
            names = self._channel_names()
        rows.sort(key=lambda r: (-r["ts"], -r["id"], r["role"]))
        best: dict[int, Row] = {}
        order: list[int] = []
        for r in rows:
            rid = r["id"]
            if rid not in best:
                best[rid] = r
                order.append(rid)
        page = order[offset:offset + limit]
        with self._lock:
            enriched = self._enrich([best[rid] for rid in page])
        results = []
        for slim_row in enriched:
            role, position = slim_row["role"], slim_row["position"]
            slim = self._slim(slim_row, names)
            item: dict[str, Any] = {"traceId": slim["traceId"], "timestamp": slim["timestamp"],
                                    "role": ix.ROLE_NAMES[role]}
            if role == 1:
                if position is None:
                    position = self._context_position(slim_row, str(snowflake_of(message_id)))
                if position is not None:
                    item["position"] = position
            item["success"] = slim["success"]
            if role == 0:
                preview = slim.get("responsePreview")
                if preview is None and slim_row["source_id"] >= 0:
                    # old index lines carry no preview: take it from the trace, as upstream does
                    trace = self._load_row(slim_row)
                    outcome = (trace or {}).get("outcome")
                    preview = ((outcome.get("responseText") or "")[:100]
                               if isinstance(outcome, dict) else None) or None
                if preview:
                    item["responsePreview"] = preview
            if "botName" in slim:
                item["botName"] = slim["botName"]
            item["channelName"] = slim["channelName"]
            item["framework"] = slim["framework"]
            item["status"] = slim["status"]
            results.append(item)
        return {"messageId": message_id, "results": results, "total": len(order),
                "offset": offset, "limit": limit}

    def _count(self, where: list[str], params: list[Any], clause: str) -> int:
        """A list's total. A COUNT(*) over every matching row after each write took ~50 ms at 1M rows
        while a fleet was ingesting, so what the kept counts answer comes from them: a filter they
        keep, or (the viewer's default list, under a retention floor) one of those from a time on,
        less the rows before it, which are few (old rows get pruned) and counted on a time index."""
        kept = _KEPT_COUNTS.get(tuple(where))
        if kept is not None:
            return int(dict(ix.counts(self._conn, kept[0])).get(params[0] if params else kept[1], 0))
        head = tuple(where[:-1])
        if where and where[-1] == "ts >= ?" and head in _KEPT_TIME_INDEXED:
            kind, key = _KEPT_COUNTS[head]
            every = int(dict(ix.counts(self._conn, kind)).get(params[0] if head else key, 0))
            before = " WHERE " + " AND ".join([*head, "ts < ?"])
            return every - int(self._conn.execute(f"SELECT COUNT(*) FROM traces{before}", params).fetchone()[0])
        return int(self._conn.execute(f"SELECT COUNT(*) FROM traces{clause}", params).fetchone()[0])

    def _source_changed(self, source_ids: set[int]) -> None:
        """An index.jsonl no longer holds the lines indexed from it (rewritten in place): mark
        it so the next refresh reads it again from the start (its rows are replaced then)."""
        marks = [(i,) for i in source_ids]
        self._cache_write(lambda c: c.executemany("UPDATE sources SET inode=-1 WHERE id=?", marks))
        if self._worker is not None:
            self._worker.wake()
        log.warning("trace index: an index.jsonl changed under the index; reading it again")

    def _enrich(self, rows: list[Row]) -> list[Row]:
        """Upstream index lines carry no status and no cost: read them from the trace file the
        first time such a row is shown, and keep them in the index (a missing file keeps
        the status derived from `success` and no cost)."""
        todo = [i for i, r in enumerate(rows) if r["status"] is None and r["source_id"] >= 0]
        if not todo:
            return rows
        out = list(rows)
        updates = []
        for i in todo:
            r = rows[i]
            trace = self._load_row(r)
            if trace is None:  # the line's own cost (if any) stays
                status, cost = ("success" if r["success"] else "failed"), r["cost"]
            else:
                status = str(trace.get("status") or _outcome_status(trace))
                cost = trace_cost(trace)
            out[i] = {**r, "status": status, "cost": cost}
            updates.append((status, cost, r))
        def write(c: sqlite3.Connection) -> None:
            deltas: dict[tuple[str, str], float] = {}
            costs = []
            for status, cost, r in updates:
                if c.execute("UPDATE traces SET status=?, cost=? WHERE id=? AND status IS NULL",
                             (status, cost, r["id"])).rowcount:
                    old = ix.status_key(None, r["success"])
                    deltas[("status", old)] = deltas.get(("status", old), 0) - 1
                    deltas[("status", status)] = deltas.get(("status", status), 0) + 1
                    change = (cost or 0.0) - (r["cost"] or 0.0)  # the row's cost before is replaced
                    deltas[("total", "cost")] = deltas.get(("total", "cost"), 0.0) + change
                    priced = (cost is not None) - (r["cost"] is not None)
                    deltas[("total", "priced")] = deltas.get(("total", "priced"), 0) + priced
                    costs.append((r["ts"], r["bot"], r["framework"], r["cost"], cost))
            ix.add_counts(c, deltas)
            ix.add_hourly_cost(c, costs)

        self._cache_write(write)  # only a cache of what we computed: a locked or read-only index keeps its old values
        return out

    def _cache_write(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        """Keep something we computed from a trace file. Only a cache: when the worker is mid
        transaction (or the index is read-only) it is skipped, never waited for."""
        with self._wlock:
            background = self._worker is not None
            if background:  # the worker may be mid transaction: do not wait for it
                self._wconn.execute("PRAGMA busy_timeout=0")
            try:
                with ix.transaction(self._wconn):
                    fn(self._wconn)
            except sqlite3.Error:
                pass
            finally:
                if background:
                    self._wconn.execute("PRAGMA busy_timeout=60000")

    def _context_position(self, slim_row: Row, snowflake: str) -> int | None:
        """Upstream index lines carry no positions: read them from the trace file once and keep
        them in the index."""
        rid = slim_row["id"]
        trace = self._load_row(slim_row)
        if trace is None:
            return None
        found = None
        first: dict[Any, Any] = {}
        for m in (trace.get("contextBuild") or {}).get("messages") or []:
            k = message_key(m.get("discordMessageId"))
            if k is None:
                continue  # null-safe: synthetic messages (tool results, plugin injections)
            if found is None and snowflake_of(m.get("discordMessageId")) == snowflake:
                found = m.get("position")
            first.setdefault(k, m.get("position"))  # first position per id wins (same rule as the search)
        self._cache_write(lambda c: ix.set_context_positions(c, rid, first))
        return found if isinstance(found, int) else None

    # ------------------------------------------------------------------ API: one trace
    def _row_path(self, slim_row: Row) -> Path | None:
        source_id, filename, bot = slim_row["source_id"], slim_row["filename"], slim_row["bot"]
        if source_id < 0 or not filename or not parse_trace_file_name(filename):
            return None
        base_row = self._conn.execute("SELECT base FROM sources WHERE id=?", (source_id,)).fetchone()
        if base_row is None:
            return None
        tdir = Path(base_row[0]) / "traces"
        if bot:
            for folder in dict.fromkeys((bot, safe_folder_name(bot))):  # as written, or as we sanitise
                if "/" in folder or "\\" in folder or folder in (".", ".."):
                    continue
                path = confined_file(tdir / folder / filename, tdir)
                if path:
                    return path
        return confined_file(tdir / filename, tdir)  # legacy: before per-bot folders

    def _load_row(self, slim_row: Row) -> dict[str, Any] | None:
        source_id, extra = slim_row["source_id"], slim_row["extra"]
        if source_id == ix.MARKER_SOURCE:
            info = json.loads(extra or "{}")
            if info.get("file"):
                path = confined_file(Path(info["file"]), Path(info.get("root") or "/nonexistent"))
                return _read_json(path) if path else None
            return self._load_marker(info.get("marker"), slim_row["status"])
        if source_id == ix.EXTERNAL_SOURCE:
            detail = json.loads(extra or "{}").get("detail")
            return detail if isinstance(detail, dict) else None
        path = self._row_path(slim_row)
        return _read_json(path) if path else None

    @staticmethod
    def _load_marker(path: str | None, state: str | None) -> dict[str, Any] | None:
        data = _read_json(Path(path)) if path else None
        if data is None:
            return None
        data.pop("_writer", None)
        data["status"] = state or "aborted"
        if state == "aborted" and "outcome" not in data:
            data["outcome"] = {
                "success": False, "responseText": "", "responseLength": 0, "sentMessageIds": [],
                "messagesSent": 0, "maxToolDepth": len(data.get("llmCalls") or []), "hitMaxToolDepth": False,
                "error": {"message": "activation aborted: the process ended before the trace was finished",
                          "phase": data.get("_phase") or "activation"},
                "stateUpdates": {"cacheMarkerUpdated": False, "messageCountReset": False},
            }
        data.pop("_phase", None)
        return data

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """`/api/trace/<id>`: exact id match (upstream matched substrings of file names)."""
        if not isinstance(trace_id, str) or not TRACE_ID_RE.match(trace_id):
            return None
        self._auto_refresh()
        with self._lock:
            rows = self._select(
                f"SELECT {_SLIM_SQL} FROM traces WHERE trace_id=? ORDER BY ts DESC, id DESC", (trace_id,))
            for row in rows:
                trace = self._load_row(row)
                if trace is not None:
                    return self._decorate(trace, row["framework"] or "chapterx", row["status"])
        path = self._scan_for(trace_id)
        if path is not None:
            trace = _read_json(path)
            if trace is not None:
                return self._decorate(trace, "chapterx", None)
        return None

    @staticmethod
    def _decorate(trace: dict[str, Any], framework: str, status: str | None) -> dict[str, Any]:
        trace.setdefault("framework", framework)
        if "status" not in trace:
            if status:
                trace["status"] = status
            elif framework == "chapterx":
                trace["status"] = _outcome_status(trace)
        if "cost" not in trace and framework == "chapterx":
            trace["cost"] = trace_cost(trace)
        return trace

    def trace_path(self, trace_id: str) -> Path | None:
        """The file of a trace (for `prune` and tools); None for markers and external traces."""
        if not TRACE_ID_RE.match(trace_id or ""):
            return None
        with self._lock:
            for row in self._select(f"SELECT {_SLIM_SQL} FROM traces WHERE trace_id=?", (trace_id,)):
                p = self._row_path(row)
                if p:
                    return p
        return self._scan_for(trace_id)

    def _scan_for(self, trace_id: str) -> Path | None:
        """Fallback for traces missing from the index (e.g. a torn last index line): exact id match
        on file names, with folder listings cached by folder mtime."""
        for base in self.bases:
            tdir = base / "traces"
            try:
                folders = [tdir] + [Path(e.path) for e in os.scandir(tdir)
                                    if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
            except OSError:
                continue
            for folder in folders:
                listing = self._listing(folder)
                name = listing.get(trace_id)
                if name and (path := confined_file(folder / name, tdir)):
                    return path
        return None

    def _listing(self, folder: Path) -> dict[str, str]:
        try:
            mtime = folder.stat().st_mtime
        except OSError:
            return {}
        cached = self._dir_cache.get(folder)
        if cached and cached[0] == mtime:
            return cached[1]
        found: dict[str, str] = {}
        try:
            with os.scandir(folder) as it:
                for e in it:
                    parsed = parse_trace_file_name(e.name)
                    if parsed and parsed[1] not in found:
                        found[parsed[1]] = e.name
        except OSError:
            return {}
        self._dir_cache[folder] = (mtime, found)
        return found

    def body_path(self, kind: str, ref: str) -> Path | None:
        """A request/response body file by its ref (a bare file name), in the first base that has
        it; refs are whitelisted and the resolved path must stay inside the body folder."""
        folder = BODY_DIRS.get(kind)
        if folder is None or not isinstance(ref, str) or not BODY_REF_RE.match(ref) or ".." in ref:
            return None
        for base in self.bases:
            root = (base / folder).resolve()
            path = (root / ref).resolve()
            if path.parent != root:
                continue
            if path.is_file():
                return path
        return None

    # ------------------------------------------------------------------ external (chapter2)
    def add_external(self, entries: Iterable[dict[str, Any]]) -> int:
        """Add or replace summaries of traces from other frameworks (chapter2). Each entry uses the
        list-entry shape (traceId, timestamp, channelId, triggeringMessageId, botName, ...), may
        carry `contextMessageIds`/`sentMessageIds` for search, `framework` (default chapter2) and a
        `detail` dict returned by `get_trace`, or `detailJson`, the same already as JSON text (kept
        as it is: no parse, no objects)."""
        items = [e for e in entries if isinstance(e, dict) and isinstance(e.get("traceId"), str)]
        if not items:
            return 0
        with self._external_writer() as conn:
            with ix.transaction(conn):
                for e in items:
                    _delete_external(conn, "trace_id = ?", (e["traceId"],))
                # the message keys, so removing the row later deletes its message rows by key
                extras = [_external_extra(e) for e in items]
                for e in items:
                    e.setdefault("framework", "chapter2")
                    if "status" not in e:
                        e["status"] = "success" if e.get("success") else "failed"
                n = ix.insert_entries(conn, items, ix.EXTERNAL_SOURCE, framework="chapter2", extras=extras)
                ix.bump_generation(conn)
            return n

    def external_ids(self) -> set[str]:
        """Trace ids of every external row, so a reader that restarts can drop the ones whose
        source disappeared while it was not running."""
        with self._lock:
            return {r[0] for r in self._conn.execute(
                "SELECT trace_id FROM traces WHERE source_id < 0 AND source_id = ?", (ix.EXTERNAL_SOURCE,))}

    def remove_external(self, trace_ids: Iterable[str]) -> int:
        """Forget external (chapter2) traces, e.g. when their span file was deleted: their rows,
        their message-id rows and their full-text entries. Rows read from index.jsonl are never
        touched. Returns how many rows went."""
        ids = list(dict.fromkeys(t for t in trace_ids if isinstance(t, str) and t))
        if not ids:
            return 0
        with self._external_writer() as conn:
            with ix.transaction(conn):
                n = 0
                for i in range(0, len(ids), 500):
                    batch = ids[i:i + 500]
                    n += _delete_external(conn, f"trace_id IN ({','.join('?' * len(batch))})", tuple(batch))
                if n:
                    ix.bump_generation(conn)
            return n

    # ------------------------------------------------------------------ stats / prune
    def stats(self) -> dict[str, Any]:
        """Totals from the kept counts (no table scan: < 50 ms at any size)."""
        if self._worker is None:
            self.refresh()
        else:
            self._auto_refresh()
        with self._lock:
            c = self._conn
            totals = dict(ix.counts(c, "total"))
            by_status = dict(ix.counts(c, "status"))
            by_bot = dict(ix.counts(c, "bot"))
            unnamed = int(totals.get("rows", 0)) - sum(by_bot.values())
            if unnamed > 0:
                by_bot[""] = unnamed
            by_fw = dict(ix.counts(c, "framework"))
            tokens, cost = int(totals.get("tokens", 0)), float(totals.get("cost", 0.0))
            # how many activations reported a cost, of those that finished (a running one has none yet)
            priced = int(totals.get("priced", 0))
            finished = int(totals.get("rows", 0)) - int(by_status.get("running", 0))
            ends = [c.execute(f"SELECT timestamp FROM traces ORDER BY ts {d}, id {d} "
                              "LIMIT 1").fetchone() for d in ("", "DESC")]
            oldest, newest = (e[0] if e else None for e in ends)
            sources = [
                {"path": p, "lines": n, "malformed": m, "offset": o}
                for p, n, m, o in c.execute("SELECT path, lines, malformed, offset FROM sources")
            ]
            total = int(totals.get("rows", 0))
            messages = int(totals.get("messages", 0))
        try:
            db_bytes = sum(os.path.getsize(str(self.index_path) + s) for s in ("", "-wal")
                           if os.path.exists(str(self.index_path) + s))
        except OSError:
            db_bytes = 0
        return {
            "traces": total, "byStatus": by_status, "byBot": by_bot, "byFramework": by_fw,
            "totalTokens": tokens or 0, "cost": round(cost, 6) if cost else 0.0,
            "pricedActivations": int(priced), "finishedActivations": int(finished),
            "oldest": oldest, "newest": newest, "messageRows": messages, "sources": sources,
            "logsDirs": [str(b) for b in self.bases], "indexPath": str(self.index_path),
            "indexBytes": db_bytes,
        }

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Connection]:
        """The store's lock and one `BEGIN IMMEDIATE` transaction on its connection (committed on
        success, rolled back on error): for maintenance that changes rows (`prune`). Re-entrant
        for the lock, so a maintainer may hold `locked()` around it."""
        with self._wlock, ix.transaction(self._wconn) as conn:
            yield conn

    @contextlib.contextmanager
    def locked(self) -> Iterator[TraceStore]:
        """Hold the store's lock across several calls (a maintainer's consistent pass)."""
        with self._wlock:
            yield self

    def forget_markers(self) -> None:
        """Make the next refresh re-read every in-progress marker (after files were deleted)."""
        with self._wlock:
            self._marker_fp = None

    def query(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = (), *, raw: bool = False) -> list[Any]:
        """Read-only SQL over the index (after the usual refresh), rows addressed by column name
        (`raw=True`: plain tuples, for many rows read in a known order): the seam for
        `chapterx.trace.aggregates` and other reports."""
        self._auto_refresh()
        with self._lock:
            cur = self._conn.cursor()
            if not raw:
                cur.row_factory = sqlite3.Row
            return list(cur.execute(sql, params).fetchall())

    def bot_names(self) -> list[str]:
        """Bots with at least one row in the index (from the kept counts: no table scan)."""
        self._auto_refresh()
        with self._lock:
            return sorted(self._cached(("bots",), lambda: [k for k, _ in ix.counts(self._conn, "bot")]))

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn


def _external_extra(e: dict[str, Any]) -> str:
    """An external row's `extra`: its detail, source and message keys (so removing the row later
    deletes its message rows by key). A detail given as JSON text is spliced in unparsed."""
    rest = json.dumps({"source": e.get("source"),
                       "keys": [[k, role] for k, _r, role, _p in ix.message_rows(e, 0)]}, default=str)
    text = e.pop("detailJson", None)
    if not isinstance(text, str):
        text = json.dumps(e.get("detail"), default=str)
    return '{"detail": ' + text + ", " + rest[1:]


def _delete_external(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> int:
    """Delete external rows matching `where` and their message rows (inside the caller's
    transaction). Message rows are found through the keys kept in `extra`; rows added before
    keys were kept fall back to a scan of the message table."""
    where = f"source_id < 0 AND source_id = ? AND {where}"
    params = (ix.EXTERNAL_SOURCE, *params)
    rows = conn.execute(f"SELECT id, extra FROM traces WHERE {where}", params).fetchall()
    if not rows:
        return 0
    by_key: list[tuple[Any, int, int]] = []
    legacy: list[int] = []
    for rid, extra in rows:
        try:
            keys = json.loads(extra or "{}").get("keys")
        except (ValueError, AttributeError):
            keys = None
        if isinstance(keys, list):
            by_key.extend((k, rid, role) for k, role in keys)
        else:
            legacy.append(rid)
    cur = conn.executemany("DELETE FROM messages WHERE key = ? AND trace_row = ? AND role = ?", by_key)
    gone = max(0, cur.rowcount)
    if legacy:
        gone += conn.execute(f"DELETE FROM messages WHERE trace_row IN ({','.join('?' * len(legacy))})",
                             legacy).rowcount
    ix.add_counts(conn, {("total", "messages"): -gone})
    return ix.delete_rows(conn, where, params)


def _outcome_status(trace: dict[str, Any]) -> str:
    """A finished chapterx trace's status from its outcome (upstream files carry none)."""
    outcome = trace.get("outcome")
    if not isinstance(outcome, dict):
        return "no_outcome"
    return "success" if outcome.get("success") else "failed"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
