"""Context ids stored as one id range + compact id list per trace (schema 3): searches answer
exactly as one row per id did, upgrades from schema 2 keep every answer, deletes leave no rows."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from chapterx.trace import ctxids
from chapterx.trace import index as ix
from chapterx.trace.ids import message_key
from chapterx.trace.store import TraceStore

BASE = 1_300_000_000_000_000_000


def _entries(seed: int = 7, n: int = 120) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        chan = rng.choice(["500", "501", "502"])
        span = rng.choice([0, 5, 1 << 20, 1 << 40, 1 << 60])  # many span classes, one very wide
        ctx: list[Any] = [BASE + rng.randrange(0, span + 1) for _ in range(rng.randrange(0, 12))]
        ctx += [BASE + rng.randrange(0, 40)]  # ids shared by many traces
        ctx = [str(c) for c in ctx]
        if i % 5 == 0:
            ctx.append(ctx[0])  # a duplicate: its first position wins
        if i % 7 == 0:
            ctx.append(f"rm_box_{BASE + 3}")  # relay ids match their snowflake
        if i % 11 == 0:
            ctx += ["not-a-snowflake", BASE + 7, str(2 ** 63 - 1), "0"]  # text key, JSON number, extremes
        entry: dict[str, Any] = {
            "traceId": f"{i:032x}", "timestamp": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z",
            "channelId": chan, "botName": rng.choice(["a", "b"]), "success": i % 9 != 0,
            "triggeringMessageId": str(BASE + rng.randrange(0, 40)),
            "contextMessageIds": ctx, "sentMessageIds": [str(BASE + rng.randrange(0, 40))] if i % 3 else [],
        }
        if i % 4 == 0:
            entry["contextPositions"] = list(range(len(ctx)))
        elif i % 4 == 1:
            entry["contextPositions"] = [rng.randrange(0, 400) for _ in ctx]
        elif i % 4 == 2:
            entry["contextPositions"] = [0]  # wrong length: no positions
        out.append(entry)
    return out


def _write(logs: Path, entries: list[dict[str, Any]]) -> None:
    (logs / "traces").mkdir(parents=True, exist_ok=True)
    (logs / "traces" / "index.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


def _reference(entries: list[dict[str, Any]], query: str, bot: str | None = None) -> list[tuple[Any, ...]]:
    """What one (key, trace, role) row per id answered: best role per trace, newest first."""
    key = message_key(query)
    found = []
    for e in entries:
        if bot and e["botName"] != bot:
            continue
        best = None
        if message_key(e["triggeringMessageId"]) == key:
            best = ("trigger", None)
        else:
            ids = e["contextMessageIds"]
            pos = e.get("contextPositions")
            pos = pos if isinstance(pos, list) and len(pos) == len(ids) else [None] * len(ids)
            for mid, p in zip(ids, pos, strict=True):
                if message_key(str(mid)) == key:
                    best = ("context", p)
                    break
            if best is None and any(message_key(s) == key for s in e["sentMessageIds"]):
                best = ("sent", None)
        if best is not None:
            found.append((e["timestamp"], e["traceId"], *best))
    found.sort(reverse=True)
    return [(tid, role, pos) for _ts, tid, role, pos in found]


def _answers(store: TraceStore, query: str, bot: str | None = None) -> list[tuple[Any, ...]]:
    res = store.search(query, bot=bot, limit=500)
    assert res["total"] == len(res["results"])
    return [(r["traceId"], r["role"], r.get("position")) for r in res["results"]]


def _queries(entries: list[dict[str, Any]]) -> list[str]:
    qs = {str(BASE + k) for k in range(45)} | {"not-a-snowflake", str(2 ** 63 - 1), "0", f"rm_other_{BASE + 3}",
                                                str(BASE - 1), "https://discord.com/channels/1/500/" + str(BASE + 7)}
    for e in entries[:30]:
        qs.update(str(c) for c in e["contextMessageIds"])
    return sorted(qs)


def test_search_matches_one_row_per_id(tmp_path: Path, make_store: Any) -> None:
    entries = _entries()
    logs = tmp_path / "logs"
    _write(logs, entries)
    store = make_store(logs)
    store.refresh()
    assert store.conn.execute("SELECT COUNT(DISTINCT lvl) FROM ctx").fetchone()[0] >= 4
    for q in _queries(entries):
        want = _reference(entries, q.rsplit("/", 1)[-1])
        assert _answers(store, q) == want, q
        assert _answers(store, q, bot="b") == _reference(entries, q.rsplit("/", 1)[-1], bot="b"), q
    assert _answers(store, str(BASE + 3))  # found through relay ids too
    # paging keeps the order and the total
    page = store.search(str(BASE + 5), limit=3, offset=2)
    assert [r["traceId"] for r in page["results"]] == [t for t, _r, _p in _reference(entries, str(BASE + 5))][2:5]


def test_blob_round_trip() -> None:
    ids = [BASE + 9, 0, 2 ** 63 - 1, BASE, BASE + 1]
    blob = ctxids.encode_ids(ids)
    assert ctxids.decode_ids(blob) == ids
    assert [ctxids.find_id(blob, k) for k in ids] == [0, 1, 2, 3, 4]
    assert ctxids.find_id(blob, BASE + 2) == -1
    # a key whose bytes appear at an unaligned offset is not found
    raw = ctxids.decode_raw(ctxids.encode_ids([0x0102030405060708, 0x1112131415161718]))
    assert ctxids.find_id(ctxids.encode_ids([0x0102030405060708, 0x1112131415161718]),
                          int.from_bytes(raw[4:12], "little", signed=True)) == -1
    assert ctxids.encode_positions([None, None]) is None
    assert ctxids.encode_positions([0, 1, 2]) == b""
    pos = ctxids.encode_positions([3, None, -4])
    assert [ctxids.position_at(pos, i) for i in range(3)] == [3, None, -4]


def _to_schema_2(path: Path) -> None:
    """What schema 2 left on disk: one message row per context id, no ctx table."""
    conn = sqlite3.connect(str(path))
    rows = []
    for trace_row, ids, pos in conn.execute("SELECT trace_row, ids, pos FROM ctx").fetchall():
        if ids == ctxids.IN_LINE:  # schema 4: read from the line
            got = ix.line_context(conn, trace_row)
            assert got is not None
            keys, positions = got
        else:
            keys = ctxids.decode_ids(ids)
            positions = ctxids.decode_positions(pos, len(keys))
        for k, p in zip(keys, positions, strict=True):
            rows.append((k, trace_row, 1, p))
    conn.executemany("INSERT INTO messages VALUES (?,?,?,?)", rows)
    conn.execute("DROP TABLE ctx")  # (schema 2 had no src columns either)
    conn.execute("DROP TABLE msgchan")
    conn.execute("UPDATE meta SET value='2' WHERE key='schema'")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("in_place", [True, False])
def test_schema_2_is_upgraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_place: bool) -> None:
    entries = _entries(seed=3, n=60)
    logs = tmp_path / "logs"
    _write(logs, entries)
    path = tmp_path / "old.sqlite"
    store = TraceStore([logs], index_path=path, auto_refresh_interval=0.0)
    ext = {"traceId": "e" * 32, "timestamp": "2026-02-01T00:00:00.000Z", "channelId": "900", "botName": "c2",
           "triggeringMessageId": "77", "contextMessageIds": [str(BASE + 1), "76"], "sentMessageIds": [],
           "success": True}
    store.add_external([ext])
    store.refresh()
    queries = [*_queries(entries), "76"]
    before = {q: _answers(store, q) for q in queries}
    assert any(r[0] == "e" * 32 for r in before[str(BASE + 1)])
    stats_before = store.stats()["messageRows"]
    store.close()
    _to_schema_2(path)
    if not in_place:  # a big old index is read again from index.jsonl
        monkeypatch.setattr(ix, "UPGRADE_IN_PLACE_MAX", 0)
    store = TraceStore([logs], index_path=path, auto_refresh_interval=0.0)
    try:
        c = store.conn
        assert c.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(ix.SCHEMA_VERSION)
        assert c.execute("SELECT COUNT(*) FROM messages WHERE role=1 AND typeof(key)='integer'").fetchone()[0] == 0
        if not in_place:
            assert c.execute("SELECT COUNT(*) FROM traces WHERE source_id >= 0").fetchone()[0] == 0
        store.refresh()
        assert {q: _answers(store, q) for q in queries} == before
        assert store.stats()["messageRows"] == stats_before
        assert ix.has_fts(c) and store.list_traces(text="nothing at all")["total"] == 0
    finally:
        store.close()


def test_deletes_leave_no_context_rows(tmp_path: Path, make_store: Any) -> None:
    entries = _entries(seed=5, n=40)
    logs = tmp_path / "logs"
    _write(logs, entries)
    store = make_store(logs)
    store.refresh()
    orphans = "SELECT COUNT(*) FROM ctx WHERE trace_row NOT IN (SELECT id FROM traces)"
    assert store.conn.execute("SELECT COUNT(*) FROM ctx").fetchone()[0] == 40
    _write(logs, entries[:10])  # rewritten shorter (a prune, a rotation): read again from the start
    store.refresh()
    assert store.conn.execute(orphans).fetchone()[0] == 0
    assert store.conn.execute("SELECT COUNT(*) FROM ctx").fetchone()[0] == 10
    assert _answers(store, str(BASE + 2)) == _reference(entries[:10], str(BASE + 2))
    store.reindex()
    assert store.conn.execute(orphans).fetchone()[0] == 0
    assert store.conn.execute("SELECT COUNT(*) FROM ctx").fetchone()[0] == 10


def test_prune_sweeps_context_rows_and_unreachable_pairs(tmp_path: Path, make_store: Any) -> None:
    entries = _entries(seed=9, n=30)
    for e in entries[:20]:  # old traces whose contexts sit below every newer one
        e["contextMessageIds"] = [str(BASE - 10_000 - int(c) % 1000) for c in e["contextMessageIds"]
                                  if str(c).isdigit()]
    for e in entries[20:]:
        e["contextMessageIds"] = [c for c in e["contextMessageIds"] if str(c) != "0"]
    logs = tmp_path / "logs"
    _write(logs, entries)
    store = make_store(logs)
    store.refresh()
    old_key = str(entries[0]["contextMessageIds"][0])
    assert _answers(store, old_key)
    with store.write_transaction() as conn:
        ix.delete_rows(conn, "ts < ?", (ix.parse_iso(entries[20]["timestamp"]),), sweep=True)
    c = store.conn
    assert c.execute("SELECT COUNT(*) FROM ctx").fetchone()[0] == 10
    assert c.execute("SELECT COUNT(*) FROM msgchan WHERE key < ?", (BASE,)).fetchone()[0] == 0
    assert _answers(store, old_key) == []
    for q in _queries(entries[20:]):
        assert _answers(store, q) == _reference(entries[20:], q.rsplit("/", 1)[-1]), q
