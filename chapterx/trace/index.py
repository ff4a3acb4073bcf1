"""The derived SQLite index over one or more `traces/index.jsonl` files.

`index.jsonl` stays the source of truth (upstream tools and bots append to it); this database is a
cache that can be thrown away and rebuilt (`chapterx traces reindex`). It is updated incrementally
by tailing each `index.jsonl`: only new bytes are read, a trailing fragment without a newline waits
for the writer to finish it, malformed lines are counted and skipped, and a file that shrank or was
replaced (truncation, rotation, prune) is re-read from the start.

Several processes may refresh the same database: ingestion runs in `BEGIN IMMEDIATE` transactions
and re-reads the stored offset inside the transaction, so two refreshers never insert a line twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chapterx.trace.ids import message_key, parse_iso

SCHEMA_VERSION = 1
CHUNK = 4 * 1024 * 1024
HEAD_BYTES = 256
ROLE_CODES = {"trigger": 0, "context": 1, "sent": 2}
ROLE_NAMES = {v: k for k, v in ROLE_CODES.items()}

# source_id values for rows that do not come from an index.jsonl
EXTERNAL_SOURCE = -1
MARKER_SOURCE = -2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sources(
  id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, base TEXT NOT NULL,
  dev INTEGER, inode INTEGER, offset INTEGER NOT NULL DEFAULT 0, head TEXT,
  lines INTEGER NOT NULL DEFAULT 0, malformed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS traces(
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL,
  trace_id TEXT NOT NULL,
  ts REAL NOT NULL,
  timestamp TEXT,
  channel_id TEXT,
  trigger_id TEXT,
  bot TEXT,
  channel_name TEXT,
  reason TEXT,
  trigger_preview TEXT,
  response_preview TEXT,
  is_thread INTEGER,
  parent_channel_id TEXT,
  success INTEGER NOT NULL,
  duration_ms INTEGER,
  llm_calls INTEGER,
  tool_execs INTEGER,
  total_tokens INTEGER,
  filename TEXT,
  status TEXT,
  model TEXT,
  guild_id TEXT,
  cost REAL,
  error TEXT,
  framework TEXT NOT NULL DEFAULT 'chapterx',
  extra TEXT);
CREATE TABLE IF NOT EXISTS messages(
  key NOT NULL, trace_row INTEGER NOT NULL, role INTEGER NOT NULL, position INTEGER,
  PRIMARY KEY(key, trace_row, role)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channel_names(channel_id TEXT PRIMARY KEY, name TEXT NOT NULL, seq INTEGER);
"""

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS traces_ts ON traces(ts DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS traces_bot_ts ON traces(bot, ts DESC)",
    "CREATE INDEX IF NOT EXISTS traces_chan_ts ON traces(channel_id, ts DESC)",
    "CREATE INDEX IF NOT EXISTS traces_fail_ts ON traces(success, ts DESC)",
    "CREATE INDEX IF NOT EXISTS traces_tid ON traces(trace_id)",
    "CREATE INDEX IF NOT EXISTS traces_source ON traces(source_id, ts)",
    "CREATE INDEX IF NOT EXISTS messages_row ON messages(trace_row)",
)

TRACE_COLUMNS = (
    "source_id", "trace_id", "ts", "timestamp", "channel_id", "trigger_id", "bot", "channel_name",
    "reason", "trigger_preview", "response_preview", "is_thread", "parent_channel_id", "success",
    "duration_ms", "llm_calls", "tool_execs", "total_tokens", "filename", "status", "model",
    "guild_id", "cost", "error", "framework", "extra",
)
_INSERT_TRACE = f"INSERT INTO traces({','.join(TRACE_COLUMNS)}) VALUES ({','.join('?' * len(TRACE_COLUMNS))})"
_INSERT_MSG = "INSERT OR IGNORE INTO messages(key, trace_row, role, position) VALUES (?,?,?,?)"


@dataclass
class IngestStats:
    lines: int = 0
    malformed: int = 0
    resets: int = 0


def connect(path: Path) -> sqlite3.Connection:
    """Open (and create) the index database in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=60000")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.executescript(_SCHEMA)
    row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is None:
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', '0')")
    for stmt in _INDEXES:
        conn.execute(stmt)
    return conn


def generation(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
    return int(row[0]) if row else 0


def bump_generation(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)


def _int_or_none(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        return int(v)
    return None


def entry_row(entry: dict[str, Any], source_id: int, framework: str = "chapterx",
              extra: str | None = None) -> tuple[Any, ...] | None:
    """The `traces` row of one index line / summary, or None if it lacks the minimum fields."""
    trace_id = entry.get("traceId")
    ts = parse_iso(entry.get("timestamp"))
    if not isinstance(trace_id, str) or not trace_id or ts is None:
        return None
    cost = entry.get("cost")
    return (
        source_id, trace_id, ts, entry.get("timestamp"), _str_or_none(entry.get("channelId")),
        _str_or_none(entry.get("triggeringMessageId")), _str_or_none(entry.get("botName")),
        _str_or_none(entry.get("channelName")), _str_or_none(entry.get("activationReason")),
        _str_or_none(entry.get("triggerPreview")), _str_or_none(entry.get("responsePreview")),
        None if "isThread" not in entry else int(bool(entry["isThread"])),
        _str_or_none(entry.get("parentChannelId")), int(bool(entry.get("success"))),
        _int_or_none(entry.get("durationMs")), _int_or_none(entry.get("llmCallCount")),
        _int_or_none(entry.get("toolExecutionCount")), _int_or_none(entry.get("totalTokens")),
        _str_or_none(entry.get("filename")), _str_or_none(entry.get("status")),
        _str_or_none(entry.get("model")), _str_or_none(entry.get("guildId")),
        float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        _str_or_none(entry.get("error")), str(entry.get("framework") or framework), extra,
    )


def message_rows(entry: dict[str, Any], row_id: int) -> Iterator[tuple[Any, ...]]:
    """(key, row, role, position) for the trigger, every context id and every sent id."""
    key = message_key(_str_or_none(entry.get("triggeringMessageId")))
    if key is not None:
        yield (key, row_id, 0, None)
    ids = entry.get("contextMessageIds") or []
    positions = entry.get("contextPositions")
    have_pos = isinstance(positions, list) and len(positions) == len(ids)
    if isinstance(ids, list):
        for i, mid in enumerate(ids):
            k = message_key(_str_or_none(mid))
            if k is not None:
                pos = positions[i] if have_pos and isinstance(positions[i], int) else None  # type: ignore[index]
                yield (k, row_id, 1, pos)
    sent = entry.get("sentMessageIds") or []
    if isinstance(sent, list):
        for mid in sent:
            k = message_key(_str_or_none(mid))
            if k is not None:
                yield (k, row_id, 2, None)


def insert_entries(conn: sqlite3.Connection, entries: Iterable[dict[str, Any]], source_id: int,
                   *, framework: str = "chapterx", extras: Iterable[str | None] | None = None) -> int:
    """Insert index entries (inside the caller's transaction); returns how many were kept."""
    cur = conn.cursor()
    kept = 0
    names: dict[str, str] = {}
    msgs: list[tuple[Any, ...]] = []
    extra_iter = iter(extras) if extras is not None else None
    for entry in entries:
        extra = next(extra_iter) if extra_iter is not None else None
        row = entry_row(entry, source_id, framework, extra)
        if row is None:
            continue
        cur.execute(_INSERT_TRACE, row)
        row_id = cur.lastrowid
        assert row_id is not None
        msgs.extend(message_rows(entry, row_id))
        if entry.get("channelName") and entry.get("channelId"):
            names[str(entry["channelId"])] = str(entry["channelName"])
        kept += 1
        if len(msgs) > 50000:
            cur.executemany(_INSERT_MSG, msgs)
            msgs.clear()
    if msgs:
        cur.executemany(_INSERT_MSG, msgs)
    if names:
        seq = time.time_ns()
        cur.executemany(
            "INSERT INTO channel_names(channel_id, name, seq) VALUES (?,?,?) "
            "ON CONFLICT(channel_id) DO UPDATE SET name=excluded.name, seq=excluded.seq",
            [(cid, name, seq) for cid, name in names.items()],
        )
    return kept


def delete_rows(conn: sqlite3.Connection, where: str, params: tuple[Any, ...] = ()) -> int:
    """Delete trace rows (and their message rows) matching a WHERE clause."""
    conn.execute(f"DELETE FROM messages WHERE trace_row IN (SELECT id FROM traces WHERE {where})", params)
    cur = conn.execute(f"DELETE FROM traces WHERE {where}", params)
    return cur.rowcount


def _head(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha1(fh.read(HEAD_BYTES)).hexdigest()


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def tail_source(conn: sqlite3.Connection, index_file: Path, base: Path, stats: IngestStats) -> bool:
    """Bring one index.jsonl up to date. Returns True when rows changed."""
    key = str(index_file)
    try:
        st = os.stat(index_file)
    except OSError:
        st = None
    row = conn.execute("SELECT id, dev, inode, offset, head FROM sources WHERE path=?", (key,)).fetchone()
    if st is None:
        if row is None:
            return False
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = delete_rows(conn, "source_id=?", (row[0],))
            conn.execute("UPDATE sources SET offset=0, inode=NULL, head=NULL, lines=0 WHERE id=?", (row[0],))
            if n:
                bump_generation(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return n > 0
    if row is not None and row[1] == st.st_dev and row[2] == st.st_ino and row[3] == st.st_size:
        return False  # fast path: nothing new
    changed = False
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT id, dev, inode, offset, head FROM sources WHERE path=?", (key,)).fetchone()
        if row is None:
            cur = conn.execute("INSERT INTO sources(path, base, offset) VALUES (?,?,0)", (key, str(base)))
            source_id = cur.lastrowid
            assert source_id is not None
            offset = 0
        else:
            source_id, dev, inode, offset, head = row
            reset = (dev != st.st_dev or inode != st.st_ino or st.st_size < offset
                     or (offset > 0 and head is not None and _head(index_file) != head))
            if reset:
                stats.resets += 1
                if delete_rows(conn, "source_id=?", (source_id,)):
                    changed = True
                conn.execute("UPDATE sources SET lines=0, malformed=0 WHERE id=?", (source_id,))
                offset = 0
        new_offset, lines, malformed = _read_new(conn, index_file, offset, source_id)
        stats.lines += lines
        stats.malformed += malformed
        head_now = _head(index_file) if new_offset > 0 else None
        conn.execute(
            "UPDATE sources SET dev=?, inode=?, offset=?, head=?, lines=lines+?, malformed=malformed+? "
            "WHERE id=?",
            (st.st_dev, st.st_ino, new_offset, head_now, lines, malformed, source_id),
        )
        if lines:
            changed = True
        if changed:
            bump_generation(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return changed


def _read_new(conn: sqlite3.Connection, index_file: Path, offset: int, source_id: int) -> tuple[int, int, int]:
    """Read complete lines after `offset`; returns (new offset, lines kept, malformed lines)."""
    kept = malformed = 0
    with open(index_file, "rb") as fh:
        fh.seek(offset)
        pending = b""
        pos = offset
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            data = pending + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            complete, pending = data[:cut], data[cut + 1:]
            entries = []
            for raw in complete.split(b"\n"):
                if not raw.strip():
                    continue
                obj = _parse_line(raw)
                if obj is None:
                    malformed += 1
                else:
                    entries.append(obj)
            n = insert_entries(conn, entries, source_id)
            kept += n
            malformed += len(entries) - n
            pos += len(complete) + 1
        if pending.strip():
            # A last piece without newline: accepted only if it is a whole JSON object (a writer that
            # crashed after writing it); otherwise it is a line still being appended: wait for it.
            obj = _parse_line(pending)
            if obj is not None and insert_entries(conn, [obj], source_id):
                kept += 1
                pos += len(pending)
    return pos, kept, malformed
