"""Retention: remove old traces, their bodies and their index lines together.

Upstream leaves this to a cron job that deletes files by age and notes that cleaning the index is a
TODO, so its index grows forever and keeps pointing at deleted files. Here one pass, per logs base:
1. take the exclusive index lock (writers wait), catch the SQLite index up;
2. pick trace files whose start time (from the file name) is older than the cutoff, and the body
   files their round trips reference; orphan body files and streaming logs older than the cutoff;
   in-progress markers older than the cutoff;
3. rewrite `index.jsonl` without the old lines (temp file + rename, still under the lock);
4. delete the files and the matching SQLite rows in one transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chapterx.trace import index as ix
from chapterx.trace.ids import iso_now, parse_iso, parse_trace_file_name
from chapterx.trace.paths import BODY_DIRS, BODY_REF_RE

if TYPE_CHECKING:
    from chapterx.trace.store import TraceStore

_REF_KEYS = ("requestBodyRef", "responseBodyRef", "membraneRequestRef", "membraneResponseRef")
_REFS_KEYS = {"requestBodyRefs": "request", "responseBodyRefs": "response"}
_SINGLE_KIND = {"requestBodyRef": "request", "responseBodyRef": "response",
                "membraneRequestRef": "membrane-request", "membraneResponseRef": "membrane-response"}


def _stamp_ts(stamp: str) -> float | None:
    # 2026-06-11T12-34-56-789Z -> 2026-06-11T12:34:56.789Z
    date, _, rest = stamp.partition("T")
    parts = rest.rstrip("Z").split("-")
    if len(parts) != 4:
        return None
    return parse_iso(f"{date}T{parts[0]}:{parts[1]}:{parts[2]}.{parts[3]}Z")


def _body_refs(trace_file: Path, base: Path) -> list[Path]:
    try:
        trace = json.loads(trace_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out: list[Path] = []
    for call in trace.get("llmCalls") or []:
        if not isinstance(call, dict):
            continue
        refs: list[tuple[str, Any]] = [(_SINGLE_KIND[k], call.get(k)) for k in _REF_KEYS]
        for key, kind in _REFS_KEYS.items():
            refs.extend((kind, r) for r in call.get(key) or [])
        for kind, ref in refs:
            if isinstance(ref, str) and BODY_REF_RE.match(ref):
                p = base / BODY_DIRS[kind] / ref
                if p not in out:
                    out.append(p)
    return out


def _mtime(entry: os.DirEntry[str]) -> float:
    """mtime of a regular file, or +inf when it vanished meanwhile (writers run concurrently)."""
    try:
        return entry.stat().st_mtime if entry.is_file() else float("inf")
    except OSError:
        return float("inf")


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def prune_store(store: TraceStore, older_than: timedelta, dry_run: bool = False) -> dict[str, Any]:
    """One retention pass over every base of `store` (holding the store's lock throughout)."""
    with store.locked():
        return _prune(store, older_than, dry_run)


def _prune(store: TraceStore, older_than: timedelta, dry_run: bool) -> dict[str, Any]:
    cutoff = time.time() - older_than.total_seconds()
    report: dict[str, Any] = {
        "cutoff": iso_now(datetime.fromtimestamp(cutoff, UTC)), "dryRun": dry_run,
        "traceFiles": 0, "bodyFiles": 0, "indexLinesRemoved": 0, "indexLinesKept": 0,
        "markers": 0, "otherFiles": 0, "bytes": 0,
    }
    for base in store.bases:
        tdir = base / "traces"
        if not tdir.is_dir():
            continue
        index_file = tdir / "index.jsonl"
        has_index = index_file.is_file()
        # the writers' lock lives on index.jsonl itself; a read-only descriptor is enough for flock
        lock_fd = os.open(index_file, os.O_RDONLY) if has_index else None
        try:
            if lock_fd is not None:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            store.refresh()
            doomed: list[Path] = []
            folders = [tdir] + [Path(e.path) for e in os.scandir(tdir) if e.is_dir() and not e.name.startswith(".")]
            for folder in folders:
                for e in os.scandir(folder):
                    parsed = parse_trace_file_name(e.name)
                    if not parsed or not e.is_file():
                        continue
                    ts = _stamp_ts(parsed[2])
                    if ts is not None and ts < cutoff:
                        doomed.append(Path(e.path))
                        report["traceFiles"] += 1
                        for body in _body_refs(Path(e.path), base):
                            if body.is_file() and body not in doomed:
                                doomed.append(body)
                                report["bodyFiles"] += 1
                mdir = folder / ".inprogress"
                if mdir.is_dir():
                    for e in os.scandir(mdir):
                        if not e.name.startswith(".") and _mtime(e) < cutoff:
                            doomed.append(Path(e.path))
                            report["markers"] += 1
            # orphan bodies (e.g. failed calls no trace points to) and streaming metrics
            for folder_name in BODY_DIRS.values():
                bdir = base / folder_name
                if bdir.is_dir():
                    for e in os.scandir(bdir):
                        p = Path(e.path)
                        # dot files are a writer's temporary files: never touch them
                        if not e.name.startswith(".") and p not in doomed and _mtime(e) < cutoff:
                            doomed.append(p)
                            report["otherFiles"] += 1
            sdir = base / "streaming"
            if sdir.is_dir():
                for p in sdir.glob("*/*.jsonl"):
                    day = parse_iso(p.stem + "T23:59:59.999Z")
                    if day is not None and day < cutoff:
                        doomed.append(p)
                        report["otherFiles"] += 1
            report["bytes"] += sum(_size(p) for p in doomed)
            moves: list[tuple[int, int, int]] = []
            removed, kept, _fragment = _rewrite_index(index_file, cutoff, dry_run, moves) if has_index else (0, 0, 0)
            report["indexLinesRemoved"] += removed
            report["indexLinesKept"] += kept
            if not dry_run:
                for p in doomed:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                if has_index:
                    _update_db(store, index_file, cutoff, _whole_lines(moves), moves)
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
    if not dry_run:
        with store.write_transaction() as conn:
            ix.delete_rows(conn, "source_id < 0 AND source_id = ? AND ts < ?", (ix.MARKER_SOURCE, cutoff))
            ix.bump_generation(conn)
        store.forget_markers()
        store.refresh()
    return report


def _rewrite_index(index_file: Path, cutoff: float, dry_run: bool,
                   moves: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Copy the lines to keep into a temp file and rename it over the index (caller holds the
    lock). Returns (lines removed, lines kept, bytes of a trailing unfinished fragment kept);
    `moves` gets (start, end, bytes moved back) for each run of kept lines (the index keeps
    where each line is)."""
    removed = kept = 0
    fragment = 0
    at = 0  # offset in the old file
    dropped = 0  # bytes dropped before `at`
    tmp = index_file.parent / f".{index_file.name}.prune.{os.getpid()}.tmp"
    out = None if dry_run else open(tmp, "wb")  # noqa: SIM115 - closed (or removed) in the finally below
    try:
        with open(index_file, "rb") as fh:
            for raw in fh:
                start = at
                at += len(raw)
                if not raw.endswith(b"\n"):
                    fragment = len(raw)  # a line still being written by a writer that ignores our lock
                    if out:
                        out.write(raw)
                    continue
                if not raw.strip():
                    dropped += len(raw)
                    continue
                try:
                    obj = json.loads(raw)
                    ts = parse_iso(obj.get("timestamp")) if isinstance(obj, dict) else None
                except ValueError:
                    removed += 1  # malformed lines are dropped
                    dropped += len(raw)
                    continue
                if ts is not None and ts < cutoff:
                    removed += 1
                    dropped += len(raw)
                    continue
                kept += 1
                if moves and moves[-1][1] == start and moves[-1][2] == dropped:
                    moves[-1] = (moves[-1][0], at, dropped)
                else:
                    moves.append((start, at, dropped))
                if out:
                    out.write(raw)
        if out:
            out.flush()
            os.fsync(out.fileno())
            out.close()
            out = None
            os.replace(tmp, index_file)
    finally:
        if out:
            out.close()
        if dry_run is False and tmp.exists():
            tmp.unlink()
    return removed, kept, fragment


def _whole_lines(moves: list[tuple[int, int, int]]) -> int:
    """Bytes of whole lines in the rewritten file: where its last kept run ends, moved back."""
    return moves[-1][1] - moves[-1][2] if moves else 0


def _update_db(store: TraceStore, index_file: Path, cutoff: float, written: int,
               moves: list[tuple[int, int, int]]) -> None:
    """Drop the pruned rows and point the tail state at the rewritten file (no full re-read).

    The tail resumes at the end of the whole lines prune wrote, not at the file's size now: a writer
    that opened `index.jsonl` after the rename locks the new file, not the one prune holds locked,
    and may already have appended a line, which the tail must still read."""
    st = os.stat(index_file)
    with store.write_transaction() as conn:
        row = conn.execute("SELECT id FROM sources WHERE path=?", (str(index_file),)).fetchone()
        if row is not None:
            ix.delete_rows(conn, "source_id=? AND ts < ?", (row[0], cutoff), sweep=True)
            conn.execute(
                "UPDATE sources SET dev=?, inode=?, offset=?, head=? WHERE id=?",
                (st.st_dev, st.st_ino, written, ix.file_head(index_file) if written > 0 else None, row[0]))
            ix.move_lines(conn, row[0], moves)
            ix.bump_generation(conn)
