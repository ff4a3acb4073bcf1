"""TraceStore: every read of traces (CLI and viewer) goes through here.

It answers with exactly the JSON shapes of upstream's viewer API (`/api/bots`, `/api/channels`,
`/api/traces`, `/api/search`, `/api/trace/<id>`) plus our additions (`framework`, `cost`,
`status`, search pagination fields). Lists and searches are SQLite index lookups; only a trace's
detail (and, for upstream index lines that lack positions, a context position) opens a trace file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from chapterx.trace.paths import BODY_DIRS
from chapterx.trace.writer import proc_start, safe_folder_name

INPROGRESS_DIR = ".inprogress"
BODY_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$")
# Markers from another host cannot be checked for liveness: after this long they count as aborted.
FOREIGN_MARKER_MAX_AGE = 6 * 3600
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
EXTENSION_FIELDS = ("framework", "status", "cost")
# Above this many full-text candidates, sorting them costs more than the scan (which stops after a
# page, and whose count is no slower): see bench/README.md.
FTS_MAX_CANDIDATES = 50_000

_SLIM_SQL = (
    "id, trace_id, timestamp, channel_id, trigger_id, bot, channel_name, reason, trigger_preview, "
    "response_preview, is_thread, parent_channel_id, success, duration_ms, llm_calls, tool_execs, "
    "total_tokens, framework, status, cost, source_id, filename, extra"
)


def _default_index_path(bases: list[Path]) -> Path:
    """`TRACE_INDEX_PATH`, else a file in the user's cache folder keyed by the logs bases. Never
    inside the logs tree: readers must not need write access there (read-only mounts, golden data)."""
    if os.environ.get("TRACE_INDEX_PATH"):
        return Path(os.environ["TRACE_INDEX_PATH"])
    key = hashlib.sha256("\n".join(str(b.resolve()) for b in bases).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chapterx"
    return cache / f"trace-index-{key}.sqlite"


def _pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
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


def _to_ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    return parse_iso(str(value))


class TraceStore:
    """Read access to the traces under one or more logs bases (`LOGS_DIRS`)."""

    def __init__(self, logs_dirs: list[Path], *, index_path: Path | None = None,
                 auto_refresh_interval: float = 0.5) -> None:
        self.bases = [Path(b) for b in logs_dirs]
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

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ refresh
    def index_files(self) -> list[tuple[Path, Path]]:
        return [(b / "traces" / "index.jsonl", b) for b in self.bases]

    def refresh(self) -> ix.IngestStats:
        """Tail every index.jsonl and rescan in-progress markers."""
        with self._lock:
            stats = ix.IngestStats()
            for index_file, base in self.index_files():
                ix.tail_source(self._conn, index_file, base, stats)
            self._refresh_markers()
            self._last_refresh = time.monotonic()
            self.last_ingest = stats
            return stats

    def _auto_refresh(self) -> None:
        if time.monotonic() - self._last_refresh >= self._auto_interval:
            self.refresh()

    def reindex(self) -> ix.IngestStats:
        """Drop everything read from index.jsonl files and read them again from the start."""
        with self._lock:
            with ix.transaction(self._conn):
                ix.delete_many(self._conn, "source_id >= 0")
                self._conn.execute("DELETE FROM sources")
                self._conn.execute("DELETE FROM channel_names")
                ix.bump_generation(self._conn)
            self._marker_fp = None
            return self.refresh()

    def _scan_markers(self) -> list[tuple[Path, Path, float]]:
        found = []
        for base in self.bases:
            tdir = base / "traces"
            try:
                bots = [e for e in os.scandir(tdir) if e.is_dir() and not e.name.startswith(".")]
            except OSError:
                continue
            for bot in bots:
                mdir = Path(bot.path) / INPROGRESS_DIR
                try:
                    entries = list(os.scandir(mdir))
                except OSError:
                    continue
                for e in entries:
                    if e.name.endswith(".json") and not e.name.startswith("."):
                        try:
                            found.append((Path(e.path), base, e.stat().st_mtime))
                        except OSError:
                            pass
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
            "\n".join(f"{p}|{m}|{s}" for p, _, m, _, s in sorted(markers, key=lambda x: str(x[0]))).encode()
        ).hexdigest()
        if fp == self._marker_fp:
            return
        conn = self._conn
        with ix.transaction(conn):
            ix.delete_rows(conn, "source_id < 0 AND source_id = ?", (ix.MARKER_SOURCE,))
            entries, extras = [], []
            for path, _base, _mtime, data, state in markers:
                if conn.execute("SELECT 1 FROM traces WHERE trace_id=? AND source_id>=0",
                                (data["traceId"],)).fetchone():
                    continue  # the final trace landed; the marker is about to be removed
                entry = index_entry(data, filename=path.name)
                entry["status"] = state
                entry["success"] = False
                entries.append(entry)
                extras.append(json.dumps({"marker": str(path)}))
            ix.insert_entries(conn, entries, ix.MARKER_SOURCE, extras=extras)
            ix.bump_generation(conn)
        self._marker_fp = fp

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
        return self._cached(("names",), lambda: dict(
            self._conn.execute("SELECT channel_id, name FROM channel_names").fetchall()))

    def _slim(self, row: tuple[Any, ...], names: dict[str, str]) -> dict[str, Any]:
        (_rid, trace_id, timestamp, channel_id, trigger_id, bot, _cname, reason, tprev, rprev, is_thread,
         parent, success, duration, llm_calls, tools, tokens, framework, status, cost, _src, _fn, _x) = row
        values = {
            "traceId": trace_id, "timestamp": timestamp, "channelId": channel_id,
            "triggeringMessageId": trigger_id, "botName": bot,
            # upstream resolves names through a cache filled from every line (latest wins)
            "channelName": names.get(channel_id or "") or _cname or channel_id,
            "activationReason": reason, "triggerPreview": tprev, "responsePreview": rprev,
            "isThread": None if is_thread is None else bool(is_thread), "parentChannelId": parent,
            "success": bool(success), "durationMs": duration, "llmCallCount": llm_calls,
            "toolExecutionCount": tools, "totalTokens": tokens,
        }
        out = {k: values[k] for k in SLIM_FIELDS if values[k] is not None}
        out["framework"] = framework or "chapterx"
        out["status"] = status or ("success" if success else "failed")
        out["cost"] = cost
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
                    limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict[str, Any]:
        """`/api/traces`: newest first, filters applied before paging; limit clamped to 1..200."""
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
            total = self._cached(("count", clause, tuple(params)), lambda: self._conn.execute(
                f"SELECT COUNT(*) FROM traces{clause}", params).fetchone()[0])
            rows = self._conn.execute(
                f"SELECT {_SLIM_SQL} FROM traces{clause} ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset]).fetchall()
            names = self._channel_names()
            rows = self._enrich(rows)
            traces = [self._slim(r, names) for r in rows]
        return {"traces": traces, "total": total, "offset": offset, "limit": limit}

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
               offset: int = 0) -> dict[str, Any]:
        """`/api/search`: traces that used a Discord message (link or id; relay ids match their
        snowflake), one role per trace (trigger, else context with position, else sent)."""
        self._auto_refresh()
        limit = max(1, min(MAX_LIMIT, int(limit)))
        offset = max(0, int(offset))
        message_id = message_id_from_query(query or "")
        key = message_key(message_id)
        if key is None:
            return {"messageId": message_id, "results": [], "total": 0, "offset": offset, "limit": limit}
        sql = (f"SELECT m.role, m.position, {', '.join('t.' + c.strip() for c in _SLIM_SQL.split(','))} "
               "FROM messages m JOIN traces t ON t.id = m.trace_row WHERE m.key = ?")
        params: list[Any] = [key]
        if bot:
            sql += " AND t.bot = ?"
            params.append(bot)
        sql += " ORDER BY t.ts DESC, t.id DESC, m.role"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
            names = self._channel_names()
        best: dict[int, tuple[Any, ...]] = {}
        order: list[int] = []
        for r in rows:
            rid = r[2]
            if rid not in best:
                best[rid] = r
                order.append(rid)
        page = order[offset:offset + limit]
        with self._lock:
            enriched = self._enrich([best[rid][2:] for rid in page])
        for rid, slim_row in zip(page, enriched, strict=True):
            best[rid] = (*best[rid][:2], *slim_row)
        results = []
        for rid in page:
            r = best[rid]
            role, position, slim_row = r[0], r[1], r[2:]
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
                if preview is None and slim_row[20] >= 0:
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

    def _enrich(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Upstream index lines carry no status and no cost: read them from the trace file the
        first time such a row is shown, and keep them in the index (a missing file keeps
        the status derived from `success` and no cost)."""
        todo = [i for i, r in enumerate(rows) if r[18] is None and r[20] >= 0]
        if not todo:
            return rows
        out = list(rows)
        updates = []
        for i in todo:
            r = rows[i]
            trace = self._load_row(r)
            if trace is None:
                status, cost = ("success" if r[12] else "failed"), None
            else:
                status = str(trace.get("status") or _outcome_status(trace))
                cost = trace_cost(trace)
            out[i] = (*r[:18], status, cost, *r[20:])
            updates.append((status, cost, r[0]))
        try:
            with ix.transaction(self._conn):
                self._conn.executemany("UPDATE traces SET status=?, cost=? WHERE id=?", updates)
        except sqlite3.Error:
            pass  # only a cache of what we computed: a locked or read-only index keeps its old values
        return out

    def _context_position(self, slim_row: tuple[Any, ...], snowflake: str) -> int | None:
        """Upstream index lines carry no positions: read them from the trace file once and keep
        them in the index."""
        rid = slim_row[0]
        trace = self._load_row(slim_row)
        if trace is None:
            return None
        found = None
        updates = []
        for m in (trace.get("contextBuild") or {}).get("messages") or []:
            k = message_key(m.get("discordMessageId"))
            if k is None:
                continue  # null-safe: synthetic messages (tool results, plugin injections)
            if found is None and snowflake_of(m.get("discordMessageId")) == snowflake:
                found = m.get("position")
            updates.append((m.get("position"), k, rid))
        try:
            with self._lock, ix.transaction(self._conn):
                # first position per id wins (same rule as the search)
                for pos, k, r in reversed(updates):
                    self._conn.execute(
                        "UPDATE messages SET position=? WHERE key=? AND trace_row=? AND role=1", (pos, k, r))
        except sqlite3.Error:
            pass  # only a cache of what we read: a locked or read-only index asks again next time
        return found if isinstance(found, int) else None

    # ------------------------------------------------------------------ API: one trace
    def _row_path(self, slim_row: tuple[Any, ...]) -> Path | None:
        source_id, filename, bot = slim_row[20], slim_row[21], slim_row[5]
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
                path = tdir / folder / filename
                if path.is_file():
                    return path
        path = tdir / filename  # legacy: before per-bot folders
        return path if path.is_file() else None

    def _load_row(self, slim_row: tuple[Any, ...]) -> dict[str, Any] | None:
        source_id, extra = slim_row[20], slim_row[22]
        if source_id == ix.MARKER_SOURCE:
            return self._load_marker(json.loads(extra or "{}").get("marker"), slim_row[18])
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
            rows = self._conn.execute(
                f"SELECT {_SLIM_SQL} FROM traces WHERE trace_id=? ORDER BY ts DESC, id DESC",
                (trace_id,)).fetchall()
            for row in rows:
                trace = self._load_row(row)
                if trace is not None:
                    return self._decorate(trace, row[17] or "chapterx", row[18])
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
            for row in self._conn.execute(f"SELECT {_SLIM_SQL} FROM traces WHERE trace_id=?", (trace_id,)):
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
                                    if e.is_dir() and not e.name.startswith(".")]
            except OSError:
                continue
            for folder in folders:
                listing = self._listing(folder)
                name = listing.get(trace_id)
                if name:
                    return folder / name
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
        `detail` dict returned by `get_trace`."""
        items = [e for e in entries if isinstance(e, dict) and isinstance(e.get("traceId"), str)]
        if not items:
            return 0
        with self._lock:
            conn = self._conn
            with ix.transaction(conn):
                for e in items:
                    _delete_external(conn, "trace_id = ?", (e["traceId"],))
                # the message keys, so removing the row later deletes its message rows by key
                extras = [json.dumps({"detail": e.get("detail"), "source": e.get("source"),
                                      "keys": [[k, role] for k, _r, role, _p in ix.message_rows(e, 0)]},
                                     default=str) for e in items]
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
        with self._lock:
            conn = self._conn
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
        self.refresh()
        with self._lock:
            c = self._conn
            total = c.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
            by_status = dict(c.execute("SELECT COALESCE(status, CASE success WHEN 1 THEN 'success' "
                                       "ELSE 'failed' END), COUNT(*) FROM traces GROUP BY 1").fetchall())
            by_bot = dict(c.execute("SELECT COALESCE(bot, ''), COUNT(*) FROM traces GROUP BY 1").fetchall())
            by_fw = dict(c.execute("SELECT framework, COUNT(*) FROM traces GROUP BY 1").fetchall())
            tokens, cost, oldest, newest = c.execute(
                "SELECT SUM(total_tokens), SUM(cost), MIN(timestamp), MAX(timestamp) FROM traces").fetchone()
            sources = [
                {"path": p, "lines": n, "malformed": m, "offset": o}
                for p, n, m, o in c.execute("SELECT path, lines, malformed, offset FROM sources")
            ]
            messages = c.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        try:
            db_bytes = sum(os.path.getsize(str(self.index_path) + s) for s in ("", "-wal")
                           if os.path.exists(str(self.index_path) + s))
        except OSError:
            db_bytes = 0
        return {
            "traces": total, "byStatus": by_status, "byBot": by_bot, "byFramework": by_fw,
            "totalTokens": tokens or 0, "cost": round(cost, 6) if cost else 0.0,
            "oldest": oldest, "newest": newest, "messageRows": messages, "sources": sources,
            "logsDirs": [str(b) for b in self.bases], "indexPath": str(self.index_path),
            "indexBytes": db_bytes,
        }

    def prune(self, older_than: timedelta, dry_run: bool = False) -> dict[str, Any]:
        from chapterx.trace.prune import prune_store

        with self._lock:
            return prune_store(self, older_than, dry_run)

    def query(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Read-only SQL over the index (after the usual refresh), rows addressed by column name:
        the seam for `chapterx.trace.aggregates` and other reports."""
        self._auto_refresh()
        with self._lock:
            cur = self._conn.cursor()
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
    conn.executemany("DELETE FROM messages WHERE key = ? AND trace_row = ? AND role = ?", by_key)
    if legacy:
        conn.execute(f"DELETE FROM messages WHERE trace_row IN ({','.join('?' * len(legacy))})", legacy)
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
