"""Crash-safe, non-blocking trace writer.

Layout (upstream's, so existing tools keep working):
    LOGS_DIR/traces/<bot>/<channelId>-<traceId>-<start>.json
    LOGS_DIR/traces/index.jsonl                                  one compact line per trace
    LOGS_DIR/llm-requests/request-<traceId>-<n>.json             body of round trip n
    LOGS_DIR/llm-responses/response-<traceId>-<n>.json
Differences from upstream, all for safety: files are written to a hidden temporary name and renamed;
the index line is appended after the trace file is in place, as one `write()` under an exclusive
`flock`, so bot processes sharing one index never interleave; body names contain the trace id and
round-trip number (upstream's millisecond names collide); all I/O runs on one worker thread; and an
in-progress marker (`traces/<bot>/.inprogress/<traceId>.json`) is written when an activation starts
and removed when its trace lands, so a process killed mid-activation leaves evidence that readers
show as `aborted`.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import json
import logging
import os
import queue
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from chapterx.procs import pid_alive
from chapterx.trace.ids import trace_file_name
from chapterx.trace.model import index_entry
from chapterx.trace.paths import BODY_DIRS, logs_dir_from_env, trace_dir_from_env
from chapterx.trace.redact import Redactor

log = logging.getLogger(__name__)
INPROGRESS_DIR = ".inprogress"
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]")


def safe_folder_name(name: str) -> str:
    """A bot name usable as one folder name (names may contain spaces; never `/` or a leading dot)."""
    cleaned = _UNSAFE_NAME.sub("_", name or "unknown").strip()
    cleaned = cleaned.lstrip(".") or "unknown"
    return cleaned[:200]


def proc_start(pid: int) -> str | None:
    """Start time of a process (with the pid it tells a live writer from a reused pid)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


# the writer asks only about itself, whose start time never changes; readers use the uncached one
_own_proc_start = functools.lru_cache(maxsize=8)(proc_start)


def atomic_write(path: Path, text: str, *, fsync: bool = False) -> None:
    """Write a file so readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # a full disk or a bad string: no half-written temporary file stays behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# `.<name>.<pid>.<thread>.tmp` (atomic_write) and `.<name>.prune.<pid>.tmp` (prune)
_TMP_RE = re.compile(r"^\..+\.(?:prune\.(?P<prune_pid>\d+)|(?P<pid>\d+)\.\d+)\.tmp$")




def remove_orphan_temp_files(folders: Iterable[Path]) -> int:
    """Delete temporary files whose writing process is gone (killed between open and rename);
    a live process's files are left alone. Returns how many went."""
    n = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            m = _TMP_RE.match(e.name)
            if not m or not e.is_file(follow_symlinks=False):
                continue
            pid = int(m.group("pid") or m.group("prune_pid"))
            if pid != os.getpid() and not pid_alive(pid):
                try:
                    os.unlink(e.path)
                    n += 1
                except OSError:
                    pass
    return n


def append_line_locked(index_file: Path, line: str) -> None:
    """Append one line with one write() under an exclusive lock. If the file was replaced while we
    waited for the lock (prune rewrites it), reopen the new file and try again."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    index_file.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(20):
        fd = os.open(index_file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if os.fstat(fd).st_ino != os.stat(index_file).st_ino:
                    continue  # replaced under us
            except FileNotFoundError:
                continue
            # a writer killed mid-line left a fragment: start a new line, so only that fragment
            # is malformed and this line is not glued to it
            out = data if size == 0 or os.pread(fd, 1, size - 1) == b"\n" else b"\n" + data
            view = memoryview(out)
            try:
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            except OSError:
                # disk full part way: take the partial line back (we hold the lock), then report
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
            return
        finally:
            os.close(fd)  # closing releases the lock
    raise OSError(f"could not append to {index_file}: it keeps being replaced")


class TraceWriter:
    """Writes traces, bodies and markers on a background thread (or inline when `background=False`,
    which tests and short-lived tools use)."""

    def __init__(self, logs_dir: Path | None = None, trace_dir: Path | None = None, *,
                 redactor: Redactor | None = None, env: Mapping[str, str] | None = None,
                 background: bool = True, fsync: bool = False) -> None:
        self.logs_dir = Path(logs_dir) if logs_dir is not None else logs_dir_from_env(env)
        if trace_dir is not None:
            self.trace_dir = Path(trace_dir)
        elif logs_dir is not None:
            self.trace_dir = self.logs_dir / "traces"
        else:
            self.trace_dir = trace_dir_from_env(env)
        self.index_file = self.trace_dir / "index.jsonl"
        self.redactor = redactor or Redactor(env=env)
        self.fsync = fsync
        self._background = background
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self._host = socket.gethostname()
        self._closed = False
        self.errors = 0
        self._cleaned = False

    # ------------------------------------------------------------------ queue
    def _clean_once(self) -> None:
        """At the first write: temporary files of writers that were killed (in this logs tree)."""
        self._cleaned = True
        folders = [self.trace_dir, *(self.logs_dir / d for d in BODY_DIRS.values())]
        try:
            for e in os.scandir(self.trace_dir):
                if e.is_dir(follow_symlinks=False):
                    folders.extend([Path(e.path), Path(e.path) / INPROGRESS_DIR])
        except OSError:
            pass
        remove_orphan_temp_files(folders)

    def _submit(self, job: Callable[[], None]) -> None:
        if not self._cleaned:
            self._cleaned = True
            self._submit(self._clean_once)
        if not self._background or self._closed:
            self._run(job)
            return
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="trace-writer", daemon=True)
                self._thread.start()
                atexit.register(self.close)
        self._queue.put(job)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._run(job)
            finally:
                self._queue.task_done()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            self.errors += 1
            log.exception("Failed to write trace data")

    def flush(self) -> None:
        """Wait until everything submitted so far is on disk."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)

    # ------------------------------------------------------------------ paths
    def bot_dir(self, bot_id: str) -> Path:
        return self.trace_dir / safe_folder_name(bot_id)

    def marker_path(self, bot_id: str, trace_id: str) -> Path:
        return self.bot_dir(bot_id) / INPROGRESS_DIR / f"{trace_id}.json"

    @staticmethod
    def body_ref(kind: str, trace_id: str, call_number: int) -> str:
        prefix = {"request": "request", "response": "response", "membrane-request": "membrane",
                  "membrane-response": "membrane-response"}[kind]
        return f"{prefix}-{trace_id}-{call_number}.json"

    # ------------------------------------------------------------------ writes
    def write_body(self, kind: str, trace_id: str, call_number: int, body: Any) -> str:
        """Queue a request/response body; returns its ref (file name) at once."""
        ref = self.body_ref(kind, trace_id, call_number)
        path = self.logs_dir / BODY_DIRS[kind] / ref

        def job() -> None:
            atomic_write(path, self.redactor.dumps(body, indent=2), fsync=self.fsync)

        self._submit(job)
        return ref

    def write_marker(self, trace: dict[str, Any], phase: str | None = None) -> None:
        """Queue (re)writing the in-progress marker of a running activation."""
        snapshot = json.loads(json.dumps(trace, default=str))
        snapshot["_writer"] = {"pid": os.getpid(), "host": self._host, "procStart": _own_proc_start(os.getpid())}
        snapshot["_phase"] = phase
        path = self.marker_path(str(trace.get("botId") or "unknown"), str(trace["traceId"]))

        def job() -> None:
            atomic_write(path, self.redactor.dumps(snapshot, indent=2))

        self._submit(job)

    def write_trace(self, trace: dict[str, Any]) -> Path:
        """Queue the final trace: file (temp + rename), then its index line, then drop the marker."""
        bot = str(trace.get("botId") or "unknown")
        name = trace_file_name(str(trace["channelId"]), str(trace["traceId"]), str(trace["timestamp"]))
        path = self.bot_dir(bot) / name
        marker = self.marker_path(bot, str(trace["traceId"]))

        def job() -> None:
            clean = self.redactor.obj(trace)
            atomic_write(path, self.redactor.text(json.dumps(clean, indent=2, ensure_ascii=False)),
                         fsync=self.fsync)
            entry = index_entry(clean, name)
            append_line_locked(self.index_file, self.redactor.dumps(entry))
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()

        self._submit(job)
        return path


_default_writer: TraceWriter | None = None
_default_lock = threading.Lock()


def get_writer() -> TraceWriter:
    """The process-wide writer configured from `LOGS_DIR`."""
    global _default_writer
    with _default_lock:
        if _default_writer is None:
            _default_writer = TraceWriter()
        return _default_writer


def register_secrets(secrets: Iterable[str]) -> None:
    """Add secret strings (vendor API keys, tokens from config files) that must never be written.
    Environment variables with secret-looking names are registered automatically."""
    get_writer().redactor.add_secrets(secrets)


def set_writer(writer: TraceWriter | None) -> None:
    global _default_writer
    with _default_lock:
        _default_writer = writer
