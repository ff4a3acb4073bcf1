"""The derived SQLite index over one or more `traces/index.jsonl` files.

`index.jsonl` stays the source of truth (upstream tools and bots append to it); this database is a
cache that can be thrown away and rebuilt (`chapterx traces reindex`). It is updated incrementally
by tailing each `index.jsonl`: only new bytes are read, a trailing fragment without a newline waits
for the writer to finish it, malformed lines are counted and skipped, and a file that shrank or was
replaced (truncation, rotation, prune) is re-read from the start.

Several processes may refresh the same database: ingestion runs in `BEGIN IMMEDIATE` transactions
and re-reads the stored offset inside the transaction, so two refreshers never insert a line twice.

The `text=` filter is served by `traces_fts`, an FTS5 trigram table over the two previews, kept in
step with `traces` by triggers (so every insert and delete path maintains it). It only narrows the
candidates: the caller re-checks each candidate with the same `LIKE` as the scan, so answers are
identical with or without it. A database written by an older schema is upgraded in place on open.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import stat
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chapterx.trace import ctxids, durhist
from chapterx.trace.ids import message_key, parse_iso

log = logging.getLogger(__name__)
SCHEMA_VERSION = 4
# trigram tokenizer (substring matching) appeared in SQLite 3.34
FTS_MIN_SQLITE = (3, 34, 0)
FTS_MIN_CHARS = 3  # a trigram index cannot answer shorter substrings: those scan
FTS_MAX_TERMS = 16
CHUNK = 4 * 1024 * 1024
HEAD_BYTES = 256
BULK_BYTES = 64 * 1024 * 1024
BULK_WORKERS = 2
# a worker's block: each channel's first context in a block is written whole (see prepare_block)
BULK_BLOCK = 8 * 1024 * 1024
CACHE_KB = 65536  # page cache of a reader/tailer
BULK_CACHE_KB = 65536  # first build's page cache (the build's peak RSS is bounded: <= 300 MB)
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
  extra TEXT,
  input_tokens INTEGER,
  output_tokens INTEGER);
CREATE TABLE IF NOT EXISTS messages(
  key NOT NULL, trace_row INTEGER NOT NULL, role INTEGER NOT NULL, position INTEGER,
  PRIMARY KEY(key, trace_row, role)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ctx(
  trace_row INTEGER PRIMARY KEY, chan TEXT NOT NULL, lvl INTEGER NOT NULL, min_id INTEGER NOT NULL, max_id INTEGER NOT NULL,
  n INTEGER NOT NULL, ids BLOB NOT NULL, pos BLOB, src_off INTEGER, src_len INTEGER);
CREATE TABLE IF NOT EXISTS msgchan(key INTEGER NOT NULL, chan TEXT NOT NULL, PRIMARY KEY(key, chan)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts(kind TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY(kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channel_names(channel_id TEXT PRIMARY KEY, name TEXT NOT NULL, seq INTEGER);
CREATE TABLE IF NOT EXISTS hourly(hour INTEGER NOT NULL, bot TEXT NOT NULL, framework TEXT NOT NULL,
  n INTEGER NOT NULL, fail INTEGER NOT NULL, tin INTEGER NOT NULL, tout INTEGER NOT NULL, cost REAL NOT NULL,
  priced INTEGER NOT NULL DEFAULT 0, dmin INTEGER, dmax INTEGER, hist BLOB,
  PRIMARY KEY(hour, bot, framework)) WITHOUT ROWID;
"""

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS traces_ts ON traces(ts DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS traces_bot_ts ON traces(bot, ts DESC)",
    "CREATE INDEX IF NOT EXISTS traces_chan_ts ON traces(channel_id, ts DESC)",
    "CREATE INDEX IF NOT EXISTS traces_fail_ts ON traces(success, ts DESC)",
    "CREATE INDEX IF NOT EXISTS traces_tid ON traces(trace_id)",
    "CREATE INDEX IF NOT EXISTS traces_bot_chan_ts ON traces(bot, channel_id, ts DESC)",
    # bot + failed: the count (and the page) read only that bot's failures, not all its rows
    "CREATE INDEX IF NOT EXISTS traces_bot_fail_ts ON traces(bot, success, ts DESC)",
    # the fleet aggregates read only this (a covering index): no row lookups over a time window
    "CREATE INDEX IF NOT EXISTS traces_agg ON traces(ts, bot, framework, success, status, duration_ms, "
    "input_tokens, output_tokens, total_tokens, cost)",
    # markers and external rows are few: a partial index keeps replacing them cheap at 1M rows
    "CREATE INDEX IF NOT EXISTS traces_special ON traces(source_id, trace_id) WHERE source_id < 0",
    # a trace's context ids as one id range: a search reads, in each channel the id was seen in,
    # the ranges of each span class (lvl) that can contain it, then checks each candidate's id list
    "CREATE INDEX IF NOT EXISTS ctx_range ON ctx(chan, lvl, min_id, max_id)",
)

_INDEX_NAMES = tuple(stmt.split()[5] for stmt in _INDEXES)
_KEPT_IN_BULK = ("traces_ts", "ctx_range")  # ctx_range: searches keep working during a first build

TRACE_COLUMNS = (
    "source_id", "trace_id", "ts", "timestamp", "channel_id", "trigger_id", "bot", "channel_name",
    "reason", "trigger_preview", "response_preview", "is_thread", "parent_channel_id", "success",
    "duration_ms", "llm_calls", "tool_execs", "total_tokens", "filename", "status", "model",
    "guild_id", "cost", "error", "framework", "extra", "input_tokens", "output_tokens",
)
# columns added after the first release: an older database gets them by ALTER TABLE on open
_ADDED_COLUMNS = (("input_tokens", "INTEGER"), ("output_tokens", "INTEGER"))
# schema 4: where a context row's line is (its ids are checked there, not stored); schema 3 rows
# keep their stored id lists and stay valid as they are
_ADDED_CTX_COLUMNS = (("src_off", "INTEGER"), ("src_len", "INTEGER"))
# counts v4: activations with a known cost (`priced`), exact min/max duration and a duration
# histogram (`chapterx.trace.durhist`) per hour; filled from `traces` by the recount COUNTS_VERSION forces
_ADDED_HOURLY_COLUMNS = (("priced", "INTEGER NOT NULL DEFAULT 0"), ("dmin", "INTEGER"), ("dmax", "INTEGER"),
                         ("hist", "BLOB"))
_ROW = {name: i + 1 for i, name in enumerate(TRACE_COLUMNS)}  # position in a prepared row (id first)
# counts kept since this version: an older database recounts once (see `counts`)
COUNTS_VERSION = "4"
_INSERT_TRACE = (f"INSERT INTO traces(id,{','.join(TRACE_COLUMNS)}) "
                 f"VALUES ({','.join('?' * (len(TRACE_COLUMNS) + 1))})")
_INSERT_MSG = "INSERT OR IGNORE INTO messages(key, trace_row, role, position) VALUES (?,?,?,?)"
_INSERT_CTX = ("INSERT INTO ctx(trace_row, chan, lvl, min_id, max_id, n, ids, pos, src_off, src_len) "
               "VALUES (?,?,?,?,?,?,?,?,?,?)")
_INSERT_MSGCHAN = "INSERT OR IGNORE INTO msgchan(key, chan) VALUES (?,?)"
# above this many context rows an old index is re-read from index.jsonl rather than converted in memory
UPGRADE_IN_PLACE_MAX = 1_000_000


@dataclass
class IngestStats:
    lines: int = 0
    malformed: int = 0
    resets: int = 0


# Previews only (detail=none: rowids, no positions) keep the table small; phrase matching is
# replaced by AND-ing the query's trigrams plus the caller's LIKE re-check. External content: the
# text itself stays in `traces` only.
_FTS_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS traces_fts USING fts5(trigger_preview, response_preview, "
    "content='traces', content_rowid='id', tokenize='trigram', detail='none')",
    "CREATE TRIGGER IF NOT EXISTS traces_fts_ai AFTER INSERT ON traces "
    "WHEN new.trigger_preview IS NOT NULL OR new.response_preview IS NOT NULL BEGIN "
    "INSERT INTO traces_fts(rowid, trigger_preview, response_preview) "
    "VALUES (new.id, new.trigger_preview, new.response_preview); END",
    "CREATE TRIGGER IF NOT EXISTS traces_fts_ad AFTER DELETE ON traces "
    "WHEN old.trigger_preview IS NOT NULL OR old.response_preview IS NOT NULL BEGIN "
    "INSERT INTO traces_fts(traces_fts, rowid, trigger_preview, response_preview) "
    "VALUES ('delete', old.id, old.trigger_preview, old.response_preview); END",
    "CREATE TRIGGER IF NOT EXISTS traces_fts_au AFTER UPDATE OF trigger_preview, response_preview ON traces "
    "BEGIN "
    "INSERT INTO traces_fts(traces_fts, rowid, trigger_preview, response_preview) "
    "SELECT 'delete', old.id, old.trigger_preview, old.response_preview "
    "WHERE old.trigger_preview IS NOT NULL OR old.response_preview IS NOT NULL; "
    "INSERT INTO traces_fts(rowid, trigger_preview, response_preview) "
    "SELECT new.id, new.trigger_preview, new.response_preview "
    "WHERE new.trigger_preview IS NOT NULL OR new.response_preview IS NOT NULL; END",
)
_FTS_TRIGGERS = ("traces_fts_ai", "traces_fts_ad", "traces_fts_au")


def fts_supported() -> bool:
    return sqlite3.sqlite_version_info >= FTS_MIN_SQLITE


def _create_fts(conn: sqlite3.Connection) -> bool:
    """Create the FTS table and its triggers and fill it from `traces` (inside the caller's
    transaction). False when this SQLite lacks FTS5 or the trigram tokenizer: text filters scan."""
    if not fts_supported():
        return False
    try:
        for stmt in _FTS_SCHEMA:
            conn.execute(stmt)
    except sqlite3.OperationalError as exc:  # FTS5 not compiled in
        log.warning("trace index: no full-text table (%s); the text filter will scan", exc)
        return False
    _rebuild_fts(conn)
    return True


def _rebuild_fts(conn: sqlite3.Connection) -> None:
    """Refill from `traces`, then merge into one segment: a rebuild leaves segments whose
    incremental merging cost ~170 ms on every later small insert at 1M rows (2.5 s once here)."""
    conn.execute("INSERT INTO traces_fts(traces_fts) VALUES ('rebuild')")
    conn.execute("INSERT INTO traces_fts(traces_fts) VALUES ('optimize')")


def _statements(script: str) -> list[str]:
    return [stmt.strip() for stmt in script.split(";") if stmt.strip()]


def connect(path: Path) -> sqlite3.Connection:
    """Open (and create) the index database in WAL mode, upgrading an older schema in place (v1
    lacked the FTS table and the bot+failed index) and rebuilding one it does not know."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=60000")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KB}")
    conn.execute("PRAGMA temp_store=MEMORY")
    with transaction(conn):  # several processes may open (and upgrade) the same file at once
        for stmt in _statements(_SCHEMA):
            conn.execute(stmt)
        _add_missing_columns(conn)
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        version = row[0] if row else None
        if version is not None and version not in ("1", "2", "3", str(SCHEMA_VERSION)):
            # written by a version we do not know: derived data, so start over
            log.warning("trace index %s has schema %s; rebuilding it", path, version)
            _wipe(conn)
            # a fresh generation number, so no other process keeps answers cached from before
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(time.time_ns()),))
        elif version is None:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', '0')")
        if version in ("1", "2"):
            _upgrade_context(conn)
        if version == "3":
            # schema 3 rows (stored id lists) stay valid; new lines are indexed the schema 4 way
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            bump_generation(conn)
        elif version != str(SCHEMA_VERSION):
            fts = _create_fts(conn)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('fts', ?)", ("1" if fts else "0",))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            if version is not None:
                bump_generation(conn)
        elif not has_fts(conn) and fts_supported():
            # a first build that stopped half way (see suspend_fts), or a newer SQLite than before
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('fts', ?)", ("1" if _create_fts(conn) else "0",))
        for stmt in _INDEXES:
            conn.execute(stmt)
        kinds = conn.execute("SELECT value FROM meta WHERE key='counts_version'").fetchone()
        if kinds is None or kinds[0] != COUNTS_VERSION:
            # a new (or wiped) database keeps its counts from the first row on: no recount (it
            # was ~3 s on the first list after a 1M-line build)
            empty = all(conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() is None
                        for t in ("traces", "counts", "hourly"))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('counts_dirty', ?)", ("0" if empty else "1",))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('counts_version', ?)", (COUNTS_VERSION,))
    return conn


def _upgrade_context(conn: sqlite3.Connection) -> None:
    """Schema 2 kept one message row per context id. A small index is converted in place; a big
    one drops the rows read from index.jsonl (and markers, re-read from their files) and reads
    the files again from the start, by the background worker with its progress (a viewer shows
    "building index"). chapter2 rows exist only here, so theirs are always converted."""
    n = int(conn.execute("SELECT COUNT(*) FROM messages WHERE role=1 AND typeof(key)='integer'").fetchone()[0])
    if n > UPGRADE_IN_PLACE_MAX:
        for name in _FTS_TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute("DROP TABLE IF EXISTS traces_fts")
        conn.execute("UPDATE meta SET value='0' WHERE key='fts'")
        # plain delete: the counts and hourly roll-ups are recounted below (counts_dirty), and
        # RETURNING a million rows would hold them all in memory
        conn.execute("DELETE FROM traces WHERE source_id <> ?", (EXTERNAL_SOURCE,))
        conn.execute("DELETE FROM sources")
        conn.execute("DELETE FROM channel_names")
        keep = "trace_row IN (SELECT id FROM traces)"
        sql = "SELECT key, trace_row, position FROM messages WHERE role=1 AND typeof(key)='integer' AND " + keep
    else:
        sql = "SELECT key, trace_row, position FROM messages WHERE role=1 AND typeof(key)='integer'"
    by_row: dict[int, dict[int, int | None]] = {}
    for key, trace_row, position in conn.execute(sql):
        by_row.setdefault(trace_row, {})[key] = position
    rows = []
    pairs: set[tuple[int, str]] = set()
    chans = dict(conn.execute("SELECT id, COALESCE(channel_id, '') FROM traces").fetchall()) if by_row else {}
    for trace_row, seen in by_row.items():
        ids = sorted(seen)
        chan = chans.get(trace_row, "")
        pairs.update((k, chan) for k in ids)
        rows.append((trace_row, chan, ctxids.span_level(ids[0], ids[-1]), ids[0], ids[-1], len(ids),
                     ctxids.encode_ids(ids), ctxids.encode_positions([seen[k] for k in ids]), None, None))
    conn.execute("DELETE FROM ctx")
    conn.executemany(_INSERT_CTX, rows)
    conn.executemany(_INSERT_MSGCHAN, sorted(pairs))
    if n > UPGRADE_IN_PLACE_MAX:
        conn.execute("CREATE TEMP TABLE keep_msgs AS SELECT * FROM messages WHERE (role<>1 OR "
                     "typeof(key)<>'integer') AND " + keep)
        conn.execute("DROP TABLE messages")
        for stmt in _statements(_SCHEMA):
            conn.execute(stmt)
        conn.execute("INSERT INTO messages SELECT * FROM temp.keep_msgs")
        conn.execute("DROP TABLE temp.keep_msgs")
    else:
        conn.execute("DELETE FROM messages WHERE role=1 AND typeof(key)='integer'")
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('counts_dirty', '1')")


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Columns added since a database was created (NULL in its old rows: read as unknown)."""
    for table, added in (("traces", _ADDED_COLUMNS), ("ctx", _ADDED_CTX_COLUMNS),
                         ("hourly", _ADDED_HOURLY_COLUMNS)):
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in added:
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def _wipe(conn: sqlite3.Connection) -> None:
    for name in _FTS_TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("DROP TABLE IF EXISTS traces_fts")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'traces_fts%'").fetchall():
        conn.execute(f'DROP TABLE IF EXISTS "{name}"')
    for stmt in _statements(_SCHEMA):
        conn.execute(stmt)


def has_fts(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT value FROM meta WHERE key='fts'").fetchone()
    return bool(row) and row[0] == "1"


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression whose matches include every row whose previews contain `text`
    (case-insensitive): the AND of its trigrams, each a quoted string so no character of the
    query is FTS syntax. Overlapping trigrams: fewer terms were measured slower, because the
    looser match sends more candidates to the LIKE re-check. None when the index cannot help
    (fewer than 3 characters, a NUL)."""
    if len(text) < FTS_MIN_CHARS or "\x00" in text:
        return None
    grams = list(dict.fromkeys(text[i:i + 3] for i in range(len(text) - 2)))
    if len(grams) > FTS_MAX_TERMS:  # a superset is enough (LIKE re-checks)
        step = (len(grams) - 1) / (FTS_MAX_TERMS - 1)
        grams = list(dict.fromkeys(grams[round(i * step)] for i in range(FTS_MAX_TERMS)))
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


def suspend_fts(conn: sqlite3.Connection) -> None:
    """First build of a big index: one FTS insert per row (the triggers) made it ~50% slower than
    one `rebuild` at the end. The table is marked not ready (text filters scan) until
    `resume_fts`; if this process dies before that, the next `connect` rebuilds it. Another
    process may put the triggers back meanwhile: harmless, `resume_fts` rebuilds anyway."""
    if has_fts(conn):
        for name in _FTS_TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute("UPDATE meta SET value='0' WHERE key='fts'")


def resume_fts(conn: sqlite3.Connection) -> None:
    """Triggers back and the table refilled from `traces` (inside the caller's transaction)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name='traces_fts'").fetchone() is None:
        return
    for stmt in _FTS_SCHEMA[1:]:
        conn.execute(stmt)
    _rebuild_fts(conn)
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('fts', '1')")


def delete_many(conn: sqlite3.Connection, where: str, params: tuple[Any, ...] = ()) -> int:
    """`delete_rows(..., sweep=True)` for deletes of most of the table (reindex): the FTS triggers
    are left out and the FTS table is rebuilt from what remains, instead of one FTS delete per row.
    Inside the caller's transaction, so no other connection ever sees the triggers missing."""
    if not has_fts(conn):
        return delete_rows(conn, where, params, sweep=True)
    for name in _FTS_TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    n = delete_rows(conn, where, params, sweep=True)
    for stmt in _FTS_SCHEMA[1:]:
        conn.execute(stmt)
    _rebuild_fts(conn)
    return n


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
        _int_or_none(entry.get("inputTokens")), _int_or_none(entry.get("outputTokens")),
    )


def _id_text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return None


def message_rows(entry: dict[str, Any], row_id: int) -> list[tuple[Any, ...]]:
    """(key, row, role, position) for the trigger, every context id and every sent id. This runs
    for every id of every line during a build, so it is kept flat."""
    out: list[tuple[Any, ...]] = []
    mk = message_key
    t = _id_text(entry.get("triggeringMessageId"))
    if t is not None and (k := mk(t)) is not None:
        out.append((k, row_id, 0, None))
    ids = entry.get("contextMessageIds")
    if isinstance(ids, list):
        positions = entry.get("contextPositions")
        if not (isinstance(positions, list) and len(positions) == len(ids)):
            positions = [None] * len(ids)
        for mid, pos in zip(ids, positions, strict=True):
            text = mid if isinstance(mid, str) else _id_text(mid)
            if text is not None and (k := mk(text)) is not None:
                out.append((k, row_id, 1, pos if isinstance(pos, int) and not isinstance(pos, bool) else None))
    sent = entry.get("sentMessageIds")
    if isinstance(sent, list):
        for mid in sent:
            text = _id_text(mid)
            if text is not None and (k := mk(text)) is not None:
                out.append((k, row_id, 2, None))
    return out


def split_rows(entry: dict[str, Any], row_id: int,
               chan: str = "") -> tuple[list[tuple[Any, ...]], tuple[Any, ...] | None]:
    """`message_rows` as stored: context ids that are snowflakes go into one `ctx` row (id range +
    compact id list, first position per id); trigger, sent and non-numeric ids stay message rows.
    A build runs this for every line: the common shape (all ids strings, all snowflakes) takes a
    path of C-level calls, anything else the general loop."""
    raw = entry.get("contextMessageIds")
    if isinstance(raw, list) and raw and set(map(type, raw)) == {str}:
        keys: list[Any] = list(map(message_key, raw))
        try:
            arr: array[int] | None = array("q", keys)  # TypeError unless every key is an int snowflake
        except TypeError:
            arr = None
        if arr is not None:
            out = message_rows({**entry, "contextMessageIds": None}, row_id)
            positions = entry.get("contextPositions")
            if not (isinstance(positions, list) and len(positions) == len(raw)):
                pos: list[Any] = [None] * len(raw)
            elif set(map(type, positions)) == {int}:
                pos = positions
            else:
                pos = [_pos_or_none(p) for p in positions]
            if len(set(keys)) != len(keys):  # repeated ids: the first position of each wins
                first = dict(zip(reversed(keys), reversed(pos), strict=True))
                keys, pos = list(first), list(first.values())
                arr = array("q", keys)
            lo, hi = int(min(arr)), int(max(arr))
            return out, (row_id, chan, ctxids.span_level(lo, hi), lo, hi, len(keys), ctxids.encode_array(arr),
                         ctxids.encode_positions(pos), keys)
    out = []
    ctx: tuple[Any, ...] | None = None
    seen: dict[int, int | None] = {}
    for row in message_rows(entry, row_id):
        key = row[0]
        if row[2] == 1 and isinstance(key, int):
            if key not in seen:  # first position per id wins (as INSERT OR IGNORE did)
                seen[key] = row[3]
        else:
            out.append(row)
    if seen:
        ids = list(seen)
        lo, hi = min(ids), max(ids)
        ctx = (row_id, chan, ctxids.span_level(lo, hi), lo, hi, len(ids), ctxids.encode_ids(ids),
               ctxids.encode_positions([_pos_or_none(p) for p in seen.values()]), ids)
    return out, ctx


Prepared = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, str], list[tuple[Any, ...]],
                 list[tuple[int, str]]]


def prepare_entries(entries: Iterable[dict[str, Any]], source_id: int, first_id: int, *,
                    framework: str = "chapterx", extras: Iterable[str | None] | None = None) -> Prepared:
    """Rows for `traces` (ids from `first_id` on), for `messages`, channel names and `ctx` rows.
    Pure, so a big first build can run it in worker processes."""
    rows: list[tuple[Any, ...]] = []
    msgs: list[tuple[Any, ...]] = []
    ctxs: list[tuple[Any, ...]] = []
    pairs: list[tuple[int, str]] = []
    # (id, channel) pairs for `msgchan`: each channel's previous context is mostly the same ids,
    # so only ids new since it are written (the rest were written by this call already)
    prev: dict[str, set[int]] = {}
    names: dict[str, str] = {}
    next_id = first_id
    extra_iter = iter(extras) if extras is not None else None
    for entry in entries:
        extra = next(extra_iter) if extra_iter is not None else None
        row = entry_row(entry, source_id, framework, extra)
        if row is None:
            continue
        rows.append((next_id, *row))
        chan = row[4] or ""
        m, c = split_rows(entry, next_id, chan)
        msgs.extend(m)
        if c is not None:
            ctxs.append((*c[:8], None, None))
            keys = set(c[8])
            pairs.extend((k, chan) for k in keys - prev.get(chan, set()))
            prev[chan] = keys
        next_id += 1
        name = entry.get("channelName")
        if name and entry.get("channelId"):
            names[str(entry["channelId"])] = str(name)
    return rows, msgs, names, ctxs, pairs


def _next_row(conn: sqlite3.Connection) -> int:
    # ids come from a counter that never goes back, so message rows left behind by deleted traces
    # (swept lazily, see delete_rows) can never attach to a new trace
    row = conn.execute("SELECT value FROM meta WHERE key='next_row'").fetchone()
    return max(int(row[0]) if row else 1,
               int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM traces").fetchone()[0]) + 1)


HourlyDelta = list[Any]  # [n, fail, tin, tout, cost, priced, dmin, dmax, {duration bucket: count}]
Summary = tuple[dict[tuple[str, str], float], dict[tuple[int, str, str], HourlyDelta]]


def summarise(rows: list[tuple[Any, ...]]) -> Summary:
    """Count deltas and hourly roll-up sums of prepared trace rows (pure: a build's workers do it)."""
    c = _ROW
    tally = _tally((r[c["channel_id"]], r[c["bot"]], r[c["framework"]], r[c["status"]], r[c["success"]],
                    r[c["total_tokens"]], r[c["cost"]]) for r in rows)
    sums = hourly_sums([(r[c["ts"]], r[c["bot"]], r[c["framework"]], r[c["status"]], r[c["success"]],
                         r[c["duration_ms"]], r[c["input_tokens"]], r[c["output_tokens"]], r[c["total_tokens"]],
                         r[c["cost"]]) for r in rows], 1)
    return tally, sums


def insert_prepared(conn: sqlite3.Connection, prepared: Prepared, next_row: int,
                    summary: Summary | None = None) -> int:
    """Write prepared rows (inside the caller's transaction); `next_row` = first unused id after."""
    rows, msgs, names, ctxs, pairs = prepared
    cur = conn.cursor()
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('next_row', ?)", (str(next_row),))
    # counts kept up to date so /api/channels, /api/bots and `stats` stay O(channels), not O(rows)
    tally, sums = summary if summary is not None else summarise(rows)
    tally = dict(tally)
    apply_hourly(conn, sums)
    cur.executemany(_INSERT_TRACE, rows)
    cur.executemany(_INSERT_MSG, msgs)
    tally[("total", "messages")] = max(0, cur.rowcount) + sum(c[5] for c in ctxs)
    cur.executemany(_INSERT_CTX, ctxs)
    cur.executemany(_INSERT_MSGCHAN, pairs)
    add_counts(conn, tally)
    if names:
        seq = time.time_ns()
        cur.executemany(
            "INSERT INTO channel_names(channel_id, name, seq) VALUES (?,?,?) "
            "ON CONFLICT(channel_id) DO UPDATE SET name=excluded.name, seq=excluded.seq",
            [(cid, name, seq) for cid, name in names.items()],
        )
    return len(rows)


def insert_entries(conn: sqlite3.Connection, entries: Iterable[dict[str, Any]], source_id: int,
                   *, framework: str = "chapterx", extras: Iterable[str | None] | None = None) -> int:
    """Insert index entries (inside the caller's transaction); returns how many were kept."""
    first = _next_row(conn)
    prepared = prepare_entries(entries, source_id, first, framework=framework, extras=extras)
    return insert_prepared(conn, prepared, first + len(prepared[0]))


def prepare_block(block: bytes, source_id: int, first_id: int, base_offset: int = 0,
                  heads: dict[str, list[int]] | None = None,
                  tails: dict[str, list[int]] | None = None) -> tuple[Prepared, int]:
    """`prepare_lines` of a block of complete lines that starts at file offset `base_offset`."""
    return prepare_lines(_block_lines(block, base_offset), source_id, first_id, heads, tails)


def _block_lines(block: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    for raw in block.split(b"\n"):
        yield offset, raw
        offset += len(raw) + 1


PIECE = 1 << 20  # a worker reads its block in pieces that stay in the CPU cache while parsed


def _file_lines(fd: int, offset: int, size: int, counted: list[int]) -> Iterator[tuple[int, bytes]]:
    """The complete lines of the `size` bytes at `offset`, read a piece at a time (each line
    once from memory: reading 8 MB at once and splitting it went through memory three times);
    `counted` gets the bytes and newlines seen."""
    end = offset + size
    want = PIECE
    while offset < end:
        data = os.pread(fd, min(want, end - offset), offset)
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) < want:
                return  # the block's end, or the file changed under it: the caller sees the count differ
            want *= 2  # a line longer than a piece
            continue
        want = PIECE
        lines = data.split(b"\n")
        lines.pop()  # after the last newline: read again with the next piece
        counted[0] += cut + 1
        counted[1] += len(lines)
        for raw in lines:
            yield offset, raw
            offset += len(raw) + 1


def prepare_lines(lines: Iterable[tuple[int, bytes]], source_id: int, first_id: int,
                  heads: dict[str, list[int]] | None = None,
                  tails: dict[str, list[int]] | None = None) -> tuple[Prepared, int]:
    """Rows of complete index lines, given with their file offsets, and how many lines were
    malformed (pure but for reading: a first build runs it in worker processes). Lines in the
    plain shape are cut as bytes (`ctxids.cut_line`): their context row keeps the line's offset
    and length instead of an id list, and only ids new to their channel get a `msgchan` pair.
    Any other line is parsed fully and stored as `prepare_entries` does. With `heads`, the ids of
    each channel's first context in the block go there instead of into the pairs (the caller
    filters them against the channel's context before the block), and `tails` gets each
    channel's last context."""
    rows: list[tuple[Any, ...]] = []
    msgs: list[tuple[Any, ...]] = []
    ctxs: list[tuple[Any, ...]] = []
    pairs: list[tuple[int, str]] = []
    names: dict[str, str] = {}
    prev: dict[tuple[str, bytes], ctxids.ChanState] = {}
    malformed = 0
    next_id = first_id
    span_level = ctxids.span_level
    in_line = ctxids.IN_LINE
    for start, raw in lines:
        if not raw or raw.isspace():
            continue
        cut = ctxids.cut_line(raw, prev)
        if cut is None:
            entry = _parse_line(raw)
            if entry is None:
                malformed += 1
                continue
            lc = None
        else:
            entry, lc = cut
        row = entry_row(entry, source_id)
        if row is None:
            malformed += 1
            if lc is not None:  # its new ids are not written: the channel's next line starts over
                chan = row_chan(entry)
                for key in [k for k in prev if k[0] == chan]:
                    del prev[key]
            continue
        rid = next_id
        next_id += 1
        rows.append((rid, *row))
        chan = row[4] or ""
        if cut is None:
            m, c = split_rows(entry, rid, chan)
            msgs.extend(m)
            if c is not None:
                ctxs.append((*c[:8], None, None))
                pairs.extend((k, chan) for k in set(c[8]))
        else:
            msgs.extend(message_rows(entry, rid))
            if lc is not None:
                ctxs.append((rid, chan, span_level(lc.lo, lc.hi), lc.lo, lc.hi, lc.n, in_line, lc.pos,
                             start, len(raw)))
                if heads is not None and lc.whole and chan not in heads:
                    heads[chan] = lc.new
                else:
                    pairs.extend((k, chan) for k in lc.new)
        name = entry.get("channelName")
        if name and entry.get("channelId"):
            names[str(entry["channelId"])] = str(name)
    if tails is not None:
        for (chan, _p), state in prev.items():
            tails.setdefault(chan, []).extend(ctxids.state_ids(state))
    return (rows, msgs, names, ctxs, pairs), malformed


BulkResult = tuple[Prepared, int, "Summary", dict[str, list[int]], dict[str, list[int]]]


def prepare_bulk_at(path: str, offset: int, size: int, lines: int, source_id: int,
                    first_id: int) -> BulkResult | None:
    """A first build worker's block: the rows of the `size` bytes at `offset` of a file, which the
    caller found to hold `lines` complete lines, their summary, and each channel's first context
    (to filter) and last one (to filter the next block's against); None when the lines are not
    there any more (the file was replaced)."""
    heads: dict[str, list[int]] = {}
    tails: dict[str, list[int]] = {}
    counted = [0, 0]
    with open(path, "rb") as fh:
        prepared, malformed = prepare_lines(_file_lines(fh.fileno(), offset, size, counted), source_id, first_id,
                                            heads, tails)
    if counted != [size, lines]:
        return None
    return prepared, malformed, summarise(prepared[0]), heads, tails


def row_chan(entry: dict[str, Any]) -> str:
    """The channel a trace row and its context row are filed under."""
    return _str_or_none(entry.get("channelId")) or ""


def delete_rows(conn: sqlite3.Connection, where: str, params: tuple[Any, ...] = (),
                *, sweep: bool = False) -> int:
    """Delete trace rows matching a WHERE clause. Their message rows stay until a sweep (they no
    longer join to any trace, so searches ignore them); `sweep=True` removes every such orphan,
    which scans the message table: prune and reindex do it, the hot paths do not."""
    gone = conn.execute(f"DELETE FROM traces WHERE {where} RETURNING channel_id, bot, framework, status, "
                        "success, total_tokens, cost, ts, duration_ms, input_tokens, output_tokens, id",
                        params).fetchall()
    if not sweep:  # the context rows go now (a sweep takes every orphan at once)
        ctx_gone = 0
        for i in range(0, len(gone), 500):
            ids = [g[11] for g in gone[i:i + 500]]
            ctx_gone += sum(r[0] for r in conn.execute(
                f"DELETE FROM ctx WHERE trace_row IN ({','.join('?' * len(ids))}) RETURNING n", ids).fetchall())
        add_counts(conn, {("total", "messages"): -ctx_gone})
    add_counts(conn, {k: -n for k, n in _tally(g[:7] for g in gone).items()})
    add_hourly(conn, [(ts, bot, fw, status, success, dur, tin, tout, tot, cost)
                      for _c, bot, fw, status, success, tot, cost, ts, dur, tin, tout, _id in gone], -1)
    if sweep:
        sweep_orphans(conn)
    return len(gone)


def status_key(status: str | None, success: Any) -> str:
    """The status a row is counted under (upstream lines carry none: their success decides)."""
    return status or ("success" if success else "failed")


def _tally(rows: Iterable[tuple[Any, ...]]) -> dict[tuple[str, str], float]:
    """Count deltas of rows given as (channel_id, bot, framework, status, success, tokens, cost)."""
    tally: dict[tuple[str, str], float] = {}
    n = 0
    tokens = 0
    cost = 0.0
    priced = 0
    for channel_id, bot, framework, status, success, tok, cst in rows:
        n += 1
        tokens += tok or 0
        if cst is not None:
            cost += cst
            priced += 1
        for key in (("channel", channel_id), ("bot", bot), ("framework", framework),
                    ("status", status_key(status, success))):
            if key[1] is not None:
                tally[key] = tally.get(key, 0) + 1
    if n:
        tally[("total", "rows")] = n
        tally[("total", "tokens")] = tokens
        tally[("total", "cost")] = cost
        tally[("total", "priced")] = priced
    return tally


def add_hourly(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], sign: int) -> None:
    """Add (sign 1) or take back (-1) rows given as (ts, bot, framework, status, success,
    duration_ms, input_tokens, output_tokens, total_tokens, cost) in the hourly roll-ups that
    the fleet aggregates read. A running activation is not counted (see `chapterx.trace.aggregates`)."""
    apply_hourly(conn, hourly_sums(rows, sign))


def hourly_sums(rows: list[tuple[Any, ...]], sign: int) -> dict[tuple[int, str, str], HourlyDelta]:
    """Roll-up deltas per (hour, bot, framework) of rows given as in `add_hourly` (pure)."""
    sums: dict[tuple[int, str, str], HourlyDelta] = {}
    log, inv = math.log, durhist.INV  # `durhist.bucket` inlined: a build's workers run this per line
    for ts, bot, fw, status, success, dur, tin, tout, tot, cost in rows:
        if status == "running":
            continue
        key = (int(ts // 3600), bot or "", fw)
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0, 0, 0, 0, 0.0, 0, None, None, {}]
        acc[0] += sign
        acc[1] += 0 if success else sign
        acc[2] += sign * (tin if tin is not None else (tot or 0))
        acc[3] += sign * (tout or 0)
        if cost is not None:
            acc[4] += sign * cost
            acc[5] += sign
        if dur is not None:
            hist = acc[8]
            k = int(log(dur) * inv) if dur >= 1 else -1
            hist[k] = hist.get(k, 0) + sign
            if acc[6] is None or dur < acc[6]:
                acc[6] = dur
            if acc[7] is None or dur > acc[7]:
                acc[7] = dur
    return sums


_HOURLY_COLS = "n, fail, tin, tout, cost, priced, dmin, dmax, hist"
_HOURLY_KEY = "hour = ? AND bot = ? AND framework = ?"


def apply_hourly(conn: sqlite3.Connection, sums: dict[tuple[int, str, str], HourlyDelta]) -> None:
    """Add roll-up deltas (inside the caller's transaction). Histograms merge by adding counts; a
    delete that took an hour's smallest or largest duration reads that hour's new min/max back
    from `traces` (its rows are gone by then)."""
    if not sums:
        return
    out = []
    recheck = []
    for key, (n, fail, tin, tout, cost, priced, dmin, dmax, hist) in sums.items():
        deleting = n < 0  # a delta is all inserts or all deletes (`hourly_sums` takes one sign)
        old = conn.execute(f"SELECT {_HOURLY_COLS} FROM hourly WHERE {_HOURLY_KEY}", key).fetchone()
        h = durhist.Dense()
        if old is not None:
            n += old[0]
            fail += old[1]
            tin += old[2]
            tout += old[3]
            cost += old[4]
            priced += old[5]
            h.add_blob(old[8])
            if dmin is None:  # the delta has no durations
                dmin, dmax = old[6], old[7]
            elif deleting:  # did it take the hour's smallest or largest one?
                if old[6] is not None and (dmin <= old[6] or dmax >= old[7]):
                    recheck.append(key)
                dmin, dmax = old[6], old[7]
            elif old[6] is not None:
                dmin, dmax = min(dmin, old[6]), max(dmax, old[7])
        h.add_dict(hist)
        blob = h.blob()
        if blob is None:
            dmin = dmax = None
        if not priced:
            cost = 0.0  # no float dust left from sums of costs that all went away
        out.append((*key, n, fail, tin, tout, cost, priced, dmin, dmax, blob))
    conn.executemany(f"INSERT OR REPLACE INTO hourly(hour, bot, framework, {_HOURLY_COLS}) "
                     "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", out)
    for hour, bot, fw in recheck:
        conn.execute(
            f"UPDATE hourly SET (dmin, dmax) = (SELECT MIN(duration_ms), MAX(duration_ms) FROM traces "
            "WHERE ts >= ? AND ts < ? AND COALESCE(bot, '') = ? AND framework = ? AND duration_ms IS NOT NULL "
            f"AND COALESCE(status, '') <> 'running') WHERE {_HOURLY_KEY}",
            (hour * 3600, (hour + 1) * 3600, bot, fw, hour, bot, fw))


def add_hourly_cost(conn: sqlite3.Connection, rows: list[tuple[float, str | None, str, float | None, float | None]]
                    ) -> None:
    """A cost learnt later (from the trace file) for rows given as (ts, bot, framework, cost before,
    cost now): the cost changes by the difference, and `priced` when one of the two is unknown."""
    conn.executemany(
        f"UPDATE hourly SET cost = cost + ?, priced = priced + ? WHERE {_HOURLY_KEY}",
        [((new or 0.0) - (old or 0.0), (new is not None) - (old is not None), int(ts // 3600), bot or "", fw)
         for ts, bot, fw, old, new in rows if old != new])


def add_counts(conn: sqlite3.Connection, deltas: dict[tuple[str, str], float]) -> None:
    """Apply count deltas (inside the caller's transaction)."""
    conn.executemany("INSERT INTO counts(kind, key, n) VALUES (?,?,?) "
                     "ON CONFLICT(kind, key) DO UPDATE SET n = n + excluded.n",
                     [(k, v, n) for (k, v), n in deltas.items() if n])


def counts(conn: sqlite3.Connection, kind: str) -> list[tuple[str, Any]]:
    """(key, traces) for `channel`, `bot`, `framework` or `status`, most first (`total`: rows,
    tokens, cost, rows with a cost (`priced`), messages). Kept up to date by inserts and deletes;
    setting meta `counts_dirty` to 1 forces a full recount (a repair tool, not a hot path)."""
    dirty = conn.execute("SELECT value FROM meta WHERE key='counts_dirty'").fetchone()
    if dirty and dirty[0] == "1":
        with transaction(conn):
            conn.execute("DELETE FROM counts")
            conn.execute("INSERT INTO counts SELECT 'channel', channel_id, COUNT(*) FROM traces "
                         "WHERE channel_id IS NOT NULL GROUP BY channel_id")
            conn.execute("INSERT INTO counts SELECT 'bot', bot, COUNT(*) FROM traces "
                         "WHERE bot IS NOT NULL GROUP BY bot")
            conn.execute("INSERT INTO counts SELECT 'framework', framework, COUNT(*) FROM traces "
                         "GROUP BY framework")
            conn.execute("INSERT INTO counts SELECT 'status', COALESCE(status, CASE WHEN success THEN "
                         "'success' ELSE 'failed' END), COUNT(*) FROM traces GROUP BY 2")
            conn.execute("INSERT INTO counts SELECT 'total', 'rows', COUNT(*) FROM traces")
            conn.execute("INSERT INTO counts SELECT 'total', 'tokens', COALESCE(SUM(total_tokens), 0) FROM traces")
            conn.execute("INSERT INTO counts SELECT 'total', 'cost', COALESCE(SUM(cost), 0.0) FROM traces")
            conn.execute("INSERT INTO counts SELECT 'total', 'priced', COUNT(cost) FROM traces")
            conn.execute("INSERT INTO counts SELECT 'total', 'messages', (SELECT COUNT(*) FROM messages) + "
                         "(SELECT COALESCE(SUM(n), 0) FROM ctx)")
            conn.execute("DELETE FROM hourly")
            for start in range(0, _max_id(conn) + 1, 50_000):
                add_hourly(conn, conn.execute(
                    "SELECT ts, bot, framework, status, success, duration_ms, input_tokens, output_tokens, "
                    "total_tokens, cost FROM traces WHERE id >= ? AND id < ?", (start, start + 50_000)).fetchall(), 1)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('counts_dirty', '0')")
    return [(k, n) for k, n in conn.execute(
        "SELECT key, n FROM counts WHERE kind=? AND n > 0 ORDER BY n DESC, key", (kind,)).fetchall()]


def _max_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM traces").fetchone()[0])


def counts_ready(conn: sqlite3.Connection) -> None:
    """Recount now if the kept counts (and hourly roll-ups) are marked stale."""
    counts(conn, "total")


def context_hits(conn: sqlite3.Connection, key: int, stale: set[int] | None = None) -> dict[int, int | None]:
    """{trace row: position or None} of the traces whose context holds message id `key`: in each
    channel whose traces had it in context (`msgchan`), per span class present, the ranges that can
    contain it (an index range scan), each checked against its id list, or against its line in
    `index.jsonl` (one read each). A line that is no longer the one indexed (its file rewritten
    under the index) is not answered from: its source id goes into `stale` (the caller has it
    read again). Only rows of existing traces are returned."""
    hits: dict[int, int | None] = {}
    lines = _LineReader(conn)
    try:
        for (chan,) in conn.execute("SELECT chan FROM msgchan WHERE key = ?", (key,)).fetchall():
            lvl = -1
            while True:
                row = conn.execute("SELECT lvl FROM ctx WHERE chan = ? AND lvl > ? ORDER BY lvl LIMIT 1",
                                   (chan, lvl)).fetchone()
                if row is None:
                    break
                lvl = int(row[0])
                lower = max(key - (1 << lvl) + 1, -(2 ** 63))
                for trace_row, ids, pos, off, size, source_id, trace_id in conn.execute(
                        "SELECT c.trace_row, c.ids, c.pos, c.src_off, c.src_len, t.source_id, t.trace_id "
                        "FROM ctx c JOIN traces t ON t.id = c.trace_row WHERE c.chan = ? AND c.lvl = ? "
                        "AND c.min_id BETWEEN ? AND ? AND c.max_id >= ?", (chan, lvl, lower, key, key)).fetchall():
                    if ids != ctxids.IN_LINE:
                        at = ctxids.find_id(ids, key)
                        if at >= 0:
                            hits[trace_row] = ctxids.position_at(pos, at)
                        continue
                    line = lines.read(source_id, off, size, trace_id)
                    if line is None:
                        if stale is not None:
                            stale.add(source_id)
                        continue
                    try:
                        found, position = ctxids.line_find(line, key, pos)
                    except ValueError:
                        if stale is not None:
                            stale.add(source_id)
                        continue
                    if found:
                        hits[trace_row] = position
    finally:
        lines.close()
    return hits


class _LineReader:
    """Reads indexed lines back from their `index.jsonl` (one pread each, files opened once)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.fds: dict[int, int | None] = {}

    def read(self, source_id: int, off: int | None, size: int | None, trace_id: str) -> bytes | None:
        """The line, or None when it is gone or is not the line of `trace_id` any more."""
        if off is None or size is None:
            return None
        if source_id not in self.fds:
            row = self.conn.execute("SELECT path FROM sources WHERE id=?", (source_id,)).fetchone()
            fd = None
            if row is not None:
                try:
                    fd = os.open(row[0], os.O_RDONLY)
                except OSError:
                    fd = None
            self.fds[source_id] = fd
        fd = self.fds[source_id]
        if fd is None:
            return None
        try:
            line = os.pread(fd, size, off)
        except OSError:
            return None
        if len(line) != size:
            return None
        tid = json.dumps(trace_id).encode()
        if b'"traceId":' + tid in line or b'"traceId": ' + tid in line:
            return line
        entry = _parse_line(line)  # spelt another way (escapes): compare the values
        return line if entry is not None and entry.get("traceId") == trace_id else None

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)


def line_context(conn: sqlite3.Connection, trace_row: int) -> tuple[list[int], list[int | None]] | None:
    """The snowflake context ids of a trace whose context row is checked against its line, with
    their first positions, read from the line (None when the line is gone or changed)."""
    row = conn.execute("SELECT c.src_off, c.src_len, t.source_id, t.trace_id, COALESCE(t.channel_id, '') "
                       "FROM ctx c JOIN traces t ON t.id = c.trace_row WHERE c.trace_row = ?", (trace_row,)).fetchone()
    if row is None:
        return None
    lines = _LineReader(conn)
    try:
        line = lines.read(row[2], row[0], row[1], row[3])
    finally:
        lines.close()
    entry = _parse_line(line) if line is not None else None
    if entry is None:
        return None
    _m, c = split_rows(entry, trace_row, row[4])
    if c is None:
        return None
    ids = list(c[8])
    return ids, ctxids.decode_positions(c[7], len(ids))


MOVE_RUNS_MAX = 64  # more runs of moved lines than this: the file is read again instead


def move_lines(conn: sqlite3.Connection, source_id: int, moves: list[tuple[int, int, int]]) -> None:
    """Lines of a source were moved back (a prune rewrote its file): context rows that point at
    their line follow, given (start, end, bytes moved back) runs of old offsets. Too many runs:
    the source is marked to be read again from the start (inside the caller's transaction)."""
    moves = [m for m in moves if m[2]]
    if len(moves) > MOVE_RUNS_MAX:
        conn.execute("UPDATE sources SET inode=-1 WHERE id=?", (source_id,))
        return
    for start, end, back in moves:
        conn.execute("UPDATE ctx SET src_off = src_off - ? WHERE src_off >= ? AND src_off < ? AND trace_row IN "
                     "(SELECT id FROM traces WHERE source_id = ?)", (back, start, end, source_id))


def set_context_positions(conn: sqlite3.Connection, trace_row: int, positions: dict[Any, Any]) -> None:
    """Fill the unknown context positions of one trace from {key: position} (read from its trace
    file; upstream index lines carry none). Non-numeric ids are message rows. A row checked
    against its line gets its id list stored, with the positions."""
    row = conn.execute("SELECT ids, pos FROM ctx WHERE trace_row=?", (trace_row,)).fetchone()
    if row is not None:
        if row[0] == ctxids.IN_LINE:
            got = line_context(conn, trace_row)
            if got is None:
                return
            ids, old = got
            blob = ctxids.encode_ids(ids)
        else:
            ids = ctxids.decode_ids(row[0])
            old = ctxids.decode_positions(row[1], len(ids))
            blob = row[0]
        # as the per-id rows did: an id found in the file takes the file's position
        new = [_pos_or_none(positions[k]) if k in positions else o for k, o in zip(ids, old, strict=True)]
        if new != old or blob != row[0]:
            conn.execute("UPDATE ctx SET ids=?, pos=?, src_off=NULL, src_len=NULL WHERE trace_row=?",
                         (blob, ctxids.encode_positions(new), trace_row))
    conn.executemany("UPDATE messages SET position=? WHERE key=? AND trace_row=? AND role=1",
                     [(p, k, trace_row) for k, p in positions.items() if not isinstance(k, int)])


def _pos_or_none(p: Any) -> int | None:
    return p if isinstance(p, int) and not isinstance(p, bool) and -(2 ** 63) < p < 2 ** 63 else None


def sweep_orphans(conn: sqlite3.Connection) -> int:
    cur = conn.execute("DELETE FROM messages WHERE NOT EXISTS (SELECT 1 FROM traces t WHERE t.id = trace_row)")
    n = cur.rowcount
    n += int(conn.execute("SELECT COALESCE(SUM(n), 0) FROM ctx WHERE NOT EXISTS "
                          "(SELECT 1 FROM traces t WHERE t.id = trace_row)").fetchone()[0])
    conn.execute("DELETE FROM ctx WHERE NOT EXISTS (SELECT 1 FROM traces t WHERE t.id = trace_row)")
    # (id, channel) pairs below every remaining context can no longer lead anywhere
    floor = conn.execute("SELECT MIN(min_id) FROM ctx").fetchone()[0]
    if floor is None:
        conn.execute("DELETE FROM msgchan")
    else:
        conn.execute("DELETE FROM msgchan WHERE key < ?", (floor,))
    add_counts(conn, {("total", "messages"): -n})
    return n


def file_head(path: Path) -> str:
    """Digest of a file's first bytes: tells a rewritten or replaced index.jsonl from a grown one."""
    with open(path, "rb") as fh:
        return hashlib.sha1(fh.read(HEAD_BYTES), usedforsecurity=False).hexdigest()


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = ctxids.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def tail_source(conn: sqlite3.Connection, index_file: Path, base: Path, stats: IngestStats,
                progress: Callable[[int], None] | None = None) -> bool:
    """Bring one index.jsonl up to date, one committed transaction per chunk (so a big first
    build never blocks other readers or writers for long); `progress(offset)` after each commit.
    Returns True when rows changed."""
    key = str(index_file)
    try:
        st = os.stat(index_file)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        # a FIFO or device would block the reader forever; leave whatever was indexed from it
        log.warning("%s is not a regular file; not reading it", index_file)
        return False
    row = conn.execute("SELECT id, dev, inode, offset, head FROM sources WHERE path=?", (key,)).fetchone()
    if row is None and st is not None:
        # the same file indexed under another spelling of its path (an index built before paths were
        # canonical, or a moved logs folder): adopt that source instead of indexing the file twice
        same = conn.execute("SELECT id FROM sources WHERE dev=? AND inode=? AND path<>?",
                            (st.st_dev, st.st_ino, key)).fetchone()
        if same is not None:
            with transaction(conn):
                conn.execute("UPDATE sources SET path=?, base=? WHERE id=?", (key, str(base), same[0]))
            row = conn.execute("SELECT id, dev, inode, offset, head FROM sources WHERE path=?", (key,)).fetchone()
    if st is None:
        if row is None or row[2] is None:
            return False
        with transaction(conn):
            n = delete_rows(conn, "source_id=?", (row[0],))
            conn.execute("UPDATE sources SET offset=0, inode=NULL, head=NULL, lines=0 WHERE id=?", (row[0],))
            bump_generation(conn)
        return n > 0
    if row is not None and row[1] == st.st_dev and row[2] == st.st_ino and row[3] == st.st_size:
        return False  # fast path: nothing new
    changed = False
    bulk = False
    first = True
    parallel_done = False
    full_head: str | None = None  # once the file holds HEAD_BYTES, its head is read once per call

    def head_now() -> str:
        nonlocal full_head
        if full_head is not None:
            return full_head
        h = file_head(index_file)
        if st.st_size >= HEAD_BYTES:
            full_head = h
        return h

    while True:
        with transaction(conn):
            row = conn.execute("SELECT id, dev, inode, offset, head FROM sources WHERE path=?", (key,)).fetchone()
            if row is None:
                cur = conn.execute("INSERT INTO sources(path, base, offset) VALUES (?,?,0)", (key, str(base)))
                source_id = cur.lastrowid
                if source_id is None:  # an INSERT always yields a row id; never carry on without one
                    raise sqlite3.DatabaseError("no row id for a new source")
                offset = 0
            else:
                source_id, dev, inode, offset, head = row
                if first and (dev != st.st_dev or inode != st.st_ino or st.st_size < offset
                              or (offset > 0 and head is not None and head_now() != head)):
                    stats.resets += 1
                    if delete_rows(conn, "source_id=?", (source_id,)):
                        changed = True
                    conn.execute("UPDATE sources SET lines=0, malformed=0 WHERE id=?", (source_id,))
                    offset = 0
            if first and offset == 0 and st.st_size > BULK_BYTES:
                bulk = True  # first build of a big index: fill tables, then build the indexes once
                conn.execute(f"PRAGMA cache_size=-{BULK_CACHE_KB}")
                for name in _INDEX_NAMES:
                    # the time index stays (rows arrive in time order: cheap), so a viewer serving
                    # during the build pages the newest rows without sorting the table
                    if name not in _KEPT_IN_BULK:
                        conn.execute(f"DROP INDEX IF EXISTS {name}")
                suspend_fts(conn)
            first = False
            new_offset, lines, malformed, eof = _read_chunk(conn, index_file, offset, source_id)
            stats.lines += lines
            stats.malformed += malformed
            conn.execute(
                "UPDATE sources SET dev=?, inode=?, offset=?, head=?, lines=lines+?, malformed=malformed+? "
                "WHERE id=?",
                (st.st_dev, st.st_ino, new_offset, head_now() if new_offset > 0 else None,
                 lines, malformed, source_id),
            )
            if lines:
                changed = True
            if changed and (eof or not bulk):
                bump_generation(conn)
        if progress is not None:
            progress(new_offset)
        if eof:
            break
        if bulk and not parallel_done:
            parallel_done = True
            if _bulk_parallel(conn, index_file, source_id, stats, progress):
                changed = True
    if bulk:
        # the index sorts spill to temporary files: in memory they took the build's RSS to
        # 1.1 GB at 10M lines
        conn.execute("PRAGMA temp_store=FILE")
        try:
            with transaction(conn):
                for stmt in _INDEXES:
                    conn.execute(stmt)
                resume_fts(conn)
                bump_generation(conn)
        finally:
            conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KB}")
    return changed


class _Overtaken(Exception):
    """Another process committed lines or row ids a first build had counted on."""


def _bulk_parallel(conn: sqlite3.Connection, index_file: Path, source_id: int, stats: IngestStats,
                   progress: Callable[[int], None] | None = None) -> bool:
    """First build of a big index: worker processes parse blocks of lines and prepare rows while
    this process inserts them, in file order, one committed transaction per block. Lines after
    the last newline are left to the normal tail loop. Returns True when rows were added."""
    import concurrent.futures as cf

    workers = min(BULK_WORKERS, os.cpu_count() or 1)
    if workers < 2:
        return False
    offset = int(conn.execute("SELECT offset FROM sources WHERE id=?", (source_id,)).fetchone()[0])
    next_id = _next_row(conn)
    try:
        return _bulk_parallel_run(conn, index_file, source_id, stats, workers, offset, next_id, progress)
    except _Overtaken:
        return True
    except (OSError, cf.process.BrokenProcessPool) as exc:
        # no worker processes here (sandbox, no /dev/shm): the sequential loop carries on from the
        # last committed block
        log.warning("parallel index build unavailable (%s); continuing in one process", exc)
        return False


def _bulk_parallel_run(conn: sqlite3.Connection, index_file: Path, source_id: int, stats: IngestStats,
                       workers: int, offset: int, next_id: int,
                       progress: Callable[[int], None] | None = None) -> bool:
    import concurrent.futures as cf
    import multiprocessing as mp
    from collections import deque

    added = 0
    in_flight: deque[tuple[cf.Future[BulkResult | None], int, int, int]] = deque()
    last: dict[str, set[int]] = {}  # each channel's last context so far: its ids have pairs
    # spawn, not fork: the caller may have threads (viewer, writer) that fork would copy mid-lock
    with open(index_file, "rb") as fh, cf.ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn")) as pool:
        read_at = offset  # file offset of the next block
        want = BULK_BLOCK
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < workers + 1:
                # only the block's bounds and line count here: the worker reads the bytes itself
                # (no copy of the block and no 8 MB through a pipe in the inserting process)
                data = os.pread(fh.fileno(), want, read_at)
                cut = data.rfind(b"\n")
                if cut < 0:
                    if len(data) < want:  # no complete line left: the tail loop takes the rest
                        exhausted = True
                    else:
                        want *= 2  # a line longer than a block
                    continue
                want = BULK_BLOCK
                n = data.count(b"\n", 0, cut + 1)
                in_flight.append((pool.submit(prepare_bulk_at, str(index_file), read_at, cut + 1, n, source_id,
                                              next_id), cut + 1, next_id + n, n))
                read_at += cut + 1
                next_id += n
            if not in_flight:
                break
            future, size, next_after, size_lines = in_flight.popleft()
            result = future.result()
            if result is None:
                raise OSError(f"{index_file} changed while it was being indexed")
            prepared, bad, summary, heads, tails = result
            pairs = prepared[4]
            for chan, keys in heads.items():
                seen = last.get(chan, set())
                pairs.extend((k, chan) for k in keys if k not in seen)
            last.update((chan, set(keys)) for chan, keys in tails.items())
            with transaction(conn):
                stored = conn.execute("SELECT offset FROM sources WHERE id=?", (source_id,)).fetchone()
                if stored is None or stored[0] != offset or _next_row(conn) > next_after - size_lines:
                    # another process (a second viewer, `chapterx traces list`) read these lines or
                    # took these row ids meanwhile: the sequential loop goes on from what it committed
                    raise _Overtaken
                kept = insert_prepared(conn, prepared, next_after, summary)
                offset += size
                conn.execute("UPDATE sources SET offset=?, lines=lines+?, malformed=malformed+? WHERE id=?",
                             (offset, kept, bad, source_id))
            stats.lines += kept
            stats.malformed += bad
            added += kept
            if progress is not None:
                progress(offset)
    return added > 0


class transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _read_chunk(conn: sqlite3.Connection, index_file: Path, offset: int,
                source_id: int) -> tuple[int, int, int, bool]:
    """Ingest the complete lines of the next chunk after `offset`. Returns (new offset, lines kept,
    malformed lines, reached end of file)."""
    with open(index_file, "rb") as fh:
        fh.seek(offset)
        data = fh.read(CHUNK)
        while data and b"\n" not in data[-CHUNK:]:  # a line longer than a chunk
            more = fh.read(CHUNK)
            if not more:
                break
            data += more
        eof = fh.read(1) == b""
    cut = data.rfind(b"\n")
    complete = data[: cut + 1] if cut >= 0 else b""
    rest = data[cut + 1:] if cut >= 0 else data
    first = _next_row(conn)
    prepared, malformed = prepare_block(complete, source_id, first, offset)
    kept = insert_prepared(conn, prepared, first + len(prepared[0]))
    pos = offset + len(complete)
    if eof and rest.strip():
        # A last piece without newline: accepted only if it is a whole JSON object (a writer that
        # crashed after writing it); otherwise it is a line still being appended: wait for it.
        obj = _parse_line(rest)
        if obj is not None and insert_entries(conn, [obj], source_id):
            kept += 1
            pos += len(rest)
    return pos, kept, malformed, eof or not complete
