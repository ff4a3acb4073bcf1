"""The full-text table behind `text=`, the bot+failed index, schema upgrades and `remove_external`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.gen_traces import generate_tree
from chapterx.trace import index as ix
from chapterx.trace.prune import prune_store
from chapterx.trace.store import TraceStore

pytestmark = pytest.mark.skipif(not ix.fts_supported(), reason="SQLite without the trigram tokenizer")

# previews with the characters FTS5 gives meaning to, quotes, LIKE wildcards, unicode and case
ODD_PREVIEWS = [
    ('he said "hello" to NEAR(a b)', 'AND OR NOT * ^ : + - ( ) {col}'),
    ("100% sure_thing \\ back\\slash", "it's a 'quote' and a \"double\""),
    ("École ÉCOLE école Straße STRASSE", "emoji 🦋🦋 moth 🦋 and 中文字符测试"),
    ("naïve café CAFÉ", "tab\there, new\nline"),
    ("MiXeD CaSe Moths", None),
    (None, "only a response about rovers"),
    ("trigger_preview: col:value", "response_preview:x"),
]

QUERIES = [
    "moth", "MOTH", "Moths", "moths and rovers", "message 1", "message 12", "reply 3", "answer is 99",
    '"hello"', '"', '""', "'quote'", "it's", "NEAR(a b)", "NEAR", "AND OR", "OR", "*", "* ^", "^ :",
    "( )", "{col}", "col:value", "trigger_preview:", "100%", "%", "_", "sure_thing", "e_t", "\\",
    "back\\slash", "École", "école", "ÉCOLE", "cole", "Straße", "strasse", "🦋", "🦋🦋", "moth 🦋",
    "中文", "中文字", "字符测试", "naïve", "CAFÉ", "café", "tab\th", "new\nline", "mixed case",
    "a", "ab", "zz", "nothing matches this", "rovers", "reply", "<@Gamma>", "0af7651916cd43dd8448eb211c80319c",
]


def _ascii_fold(s: str) -> str:
    """SQLite's LIKE folds ASCII letters only: the reference the index must agree with."""
    return "".join(c.lower() if c.isascii() else c for c in s)


def _write_odd(logs: Path, start: int) -> list[dict[str, Any]]:
    out = []
    for i, (trig, resp) in enumerate(ODD_PREVIEWS):
        e: dict[str, Any] = {"traceId": f"{0xdead0000 + i:08x}{i:024x}", "timestamp": f"2027-01-01T00:00:{i:02d}.000Z",
                             "channelId": "77", "triggeringMessageId": str(start + i), "botName": "Odd",
                             "success": i % 2 == 0, "contextMessageIds": [str(start + 100 + i)],
                             "sentMessageIds": [], "filename": f"77-x{i}.json"}
        if trig is not None:
            e["triggerPreview"] = trig
        if resp is not None:
            e["responsePreview"] = resp
        out.append(e)
    with open(logs / "traces" / "index.jsonl", "a", encoding="utf-8") as fh:
        for e in out:
            fh.write(json.dumps(e, ensure_ascii=False) + "\n")
    return out


def _reference(entries: list[dict[str, Any]], q: str) -> set[str]:
    fq = _ascii_fold(q)
    return {e["traceId"] for e in entries
            if fq in _ascii_fold(e.get("triggerPreview") or "") or fq in _ascii_fold(e.get("responsePreview") or "")
            or e["traceId"] == q}


def _all_ids(store: TraceStore, **kw: Any) -> tuple[int, list[str]]:
    out: list[str] = []
    offset = 0
    total = -1
    while True:
        page = store.list_traces(limit=200, offset=offset, **kw)
        total = page["total"]
        out.extend(t["traceId"] for t in page["traces"])
        offset += 200
        if offset >= total:
            return total, out


def _fts_consistent(store: TraceStore) -> None:
    """FTS5's own check of the index against the content table (raises when out of step)."""
    store.conn.execute("INSERT INTO traces_fts(traces_fts, rank) VALUES ('integrity-check', 1)")


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    logs = tmp_path / "logs"
    generate_tree(logs, 1500, files=5, seed=3, context=10)
    odd = _write_odd(logs, 9_000_000)
    entries = [json.loads(line) for line in (logs / "traces" / "index.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(entries) == 1500 + len(odd)
    return logs, entries


def test_text_filter_uses_index_and_matches_the_scan(tree: tuple[Path, list[dict[str, Any]]],
                                                      make_store: Callable[..., TraceStore]) -> None:
    logs, entries = tree
    store = make_store(logs)
    store.refresh()
    assert ix.has_fts(store.conn)
    scan = make_store(logs)
    scan._fts_hits = lambda fts: False  # type: ignore[method-assign]  # the scan: LIKE over every preview
    queries = [*QUERIES, entries[10]["traceId"]]
    for q in queries:
        expected = _reference(entries, q)
        total, ids = _all_ids(store, text=q)
        assert set(ids) == expected, q
        assert total == len(expected) == len(ids), q
        assert _all_ids(scan, text=q) == (total, ids), q  # same order and totals as the scan
    # with other filters and paging
    for q in ("moth", "reply 1", "école"):
        a = store.list_traces(text=q, failed=True, bot="Odd", limit=3, offset=1)
        b = scan.list_traces(text=q, failed=True, bot="Odd", limit=3, offset=1)
        assert a == b
    # the plan really goes through the FTS table for >= 3 characters
    plan = " ".join(str(r) for r in store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM traces WHERE id IN (SELECT rowid FROM traces_fts "
        "WHERE traces_fts MATCH ? UNION ALL SELECT id FROM traces WHERE trace_id = ?)",
        (ix.fts_query("moth"), "moth")))
    assert "VIRTUAL TABLE INDEX" in plan and "traces_fts" in plan


def test_fts_query_quotes_every_term() -> None:
    assert ix.fts_query("ab") is None
    assert ix.fts_query('a"b') == '"a""b"'
    q = ix.fts_query("x" * 3 + "".join(chr(0x4E00 + i) for i in range(60)))
    assert q is not None and q.count(" AND ") == ix.FTS_MAX_TERMS - 1
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(a, tokenize='trigram', detail='none')")
    for text in ('"', 'NEAR(', "a:b", "*^", "-x", "AND", "(((", '""x""'):
        fq = ix.fts_query(text * 3)
        assert fq is not None
        conn.execute("SELECT * FROM f WHERE f MATCH ?", (fq,)).fetchall()  # never a syntax error


def test_fts_follows_prune_reindex_and_external(tree: tuple[Path, list[dict[str, Any]]],
                                                make_store: Callable[..., TraceStore]) -> None:
    logs, entries = tree
    store = make_store(logs)
    store.refresh()
    _fts_consistent(store)
    assert store.list_traces(text="moths")["total"] == len(_reference(entries, "moths")) == 1501
    # prune removes the old rows (the generated 2026 ones; the odd 2027 ones stay): FTS follows
    prune_store(store, timedelta(days=0), dry_run=False)
    _fts_consistent(store)
    assert [t["traceId"] for t in store.list_traces(text="moths")["traces"]] == [entries[1504]["traceId"]]
    # reindex rebuilds from index.jsonl (rewritten by the prune: nothing left but what is new)
    with open(logs / "traces" / "index.jsonl", "w", encoding="utf-8") as fh:
        for e in entries[:40]:
            fh.write(json.dumps(e, ensure_ascii=False) + "\n")
    store.add_external([{"traceId": "c2" * 16, "timestamp": "2027-02-01T00:00:00.000Z", "botName": "wren",
                         "channelId": "5", "triggerPreview": "a chapter2 moth", "success": True}])
    store.reindex()
    _fts_consistent(store)
    assert store.list_traces(text="moths")["total"] == 40
    assert store.list_traces(text="école")["total"] == 0
    assert {t["traceId"] for t in store.list_traces(text="chapter2 moth")["traces"]} == {"c2" * 16}
    store.remove_external(["c2" * 16])
    _fts_consistent(store)
    assert store.list_traces(text="chapter2 moth")["total"] == 0


def _ext(tid: str, trigger: str, context: list[str], sent: list[str], text: str) -> dict[str, Any]:
    return {"traceId": tid, "timestamp": "2027-03-01T00:00:00.000Z", "channelId": "900", "botName": "ch2-wren",
            "triggeringMessageId": trigger, "contextMessageIds": context, "sentMessageIds": sent,
            "triggerPreview": text, "responsePreview": "ok", "success": True, "framework": "chapter2",
            "detail": {"traceId": tid, "spans": []}}


def _assoc(store: TraceStore) -> int:
    """(message, trace, role) pairs stored: trigger/sent rows plus every trace's context ids."""
    return int(store.conn.execute("SELECT (SELECT COUNT(*) FROM messages) + "
                                  "(SELECT COALESCE(SUM(n), 0) FROM ctx)").fetchone()[0])


def test_remove_external_rows_messages_and_reindex(tmp_path: Path, make_store: Callable[..., TraceStore]) -> None:
    logs = tmp_path / "logs"
    generate_tree(logs, 50, files=2, seed=5, context=10)
    store = make_store(logs)
    store.refresh()
    rows_before = _assoc(store)
    a = _ext("a" * 32, "111", ["110", "rm_x_109"], ["112"], "first chapter2 reply")
    b = _ext("b" * 32, "211", ["110"], [], "second chapter2 reply")
    assert store.add_external([a, b]) == 2
    assert store.external_ids() == {"a" * 32, "b" * 32}
    assert [r["traceId"] for r in store.search("110")["results"]] == ["b" * 32, "a" * 32] or \
        {r["traceId"] for r in store.search("110")["results"]} == {"a" * 32, "b" * 32}
    assert _assoc(store) == rows_before + 6
    # replacing an entry does not leave its old message rows behind
    store.add_external([a])
    assert _assoc(store) == rows_before + 6

    assert store.remove_external(["a" * 32, "not-there", "a" * 32]) == 1
    listed = {t["traceId"] for t in store.list_traces(framework="chapter2")["traces"]}
    assert listed == {"b" * 32}
    assert store.search("111")["total"] == 0 and store.search("109")["total"] == 0
    assert [r["traceId"] for r in store.search("110")["results"]] == ["b" * 32]
    assert _assoc(store) == rows_before + 2
    assert store.list_traces(text="first chapter2")["total"] == 0
    assert store.get_trace("a" * 32) is None
    assert {c["id"]: c["count"] for c in store.channels()["channels"]}["900"] == 1
    # reindex re-reads index.jsonl only: the removed reply stays gone, the other one stays
    store.reindex()
    assert {t["traceId"] for t in store.list_traces(framework="chapter2")["traces"]} == {"b" * 32}
    assert store.list_traces(framework="chapterx")["total"] == 50
    # rows read from index.jsonl are never removed by it
    cx = store.list_traces(framework="chapterx", limit=1)["traces"][0]["traceId"]
    assert store.remove_external([cx]) == 0 and store.list_traces(framework="chapterx")["total"] == 50
    assert store.remove_external([]) == 0


def test_remove_external_of_rows_added_without_keys(tmp_path: Path, make_store: Callable[..., TraceStore]) -> None:
    """Rows added by the previous version carry no message keys: the message table is scanned."""
    logs = tmp_path / "logs"
    (logs / "traces").mkdir(parents=True)
    store = make_store(logs)
    store.add_external([_ext("c" * 32, "311", ["310"], ["312"], "old")])
    store.conn.execute("UPDATE traces SET extra = json_remove(extra, '$.keys')")
    assert store.search("310")["total"] == 1
    assert store.remove_external(["c" * 32]) == 1
    assert _assoc(store) == 0


def _downgrade_to_v1(path: Path) -> None:
    """What the previous version left on disk: no FTS table, no bot+failed index, schema 1."""
    conn = sqlite3.connect(str(path))
    for name in ix._FTS_TRIGGERS:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE traces_fts")
    conn.execute("DROP INDEX traces_bot_fail_ts")
    conn.execute("DELETE FROM meta WHERE key='fts'")
    conn.execute("UPDATE meta SET value='1' WHERE key='schema'")
    conn.commit()
    conn.close()


def test_v1_index_is_upgraded_on_open(tree: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    logs, entries = tree
    path = tmp_path / "old.sqlite"
    store = TraceStore([logs], index_path=path, auto_refresh_interval=0.0)
    store.refresh()
    store.close()
    _downgrade_to_v1(path)
    store = TraceStore([logs], index_path=path, auto_refresh_interval=0.0)
    try:
        assert ix.has_fts(store.conn)
        assert store.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(ix.SCHEMA_VERSION)
        _fts_consistent(store)
        for q in ("École", "moths and rovers", '"hello"', "100%"):
            assert set(_all_ids(store, text=q)[1]) == _reference(entries, q), q
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "traces_bot_fail_ts" in names
        # the upgrade did not re-read index.jsonl: rows kept their ids
        assert store.refresh().lines == 0
    finally:
        store.close()


def test_unknown_schema_is_rebuilt(tree: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    logs, entries = tree
    path = tmp_path / "future.sqlite"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema', '99')")
    conn.execute("CREATE TABLE traces(id INTEGER PRIMARY KEY, weird TEXT)")
    conn.commit()
    conn.close()
    store = TraceStore([logs], index_path=path, auto_refresh_interval=0.0)
    try:
        assert store.list_traces()["total"] == len(entries)
        assert store.list_traces(text="école")["total"] == len(_reference(entries, "école"))
    finally:
        store.close()


def test_bot_failed_count_uses_its_index(tree: tuple[Path, list[dict[str, Any]]],
                                         make_store: Callable[..., TraceStore]) -> None:
    logs, entries = tree
    store = make_store(logs)
    page = store.list_traces(bot="Gamma", failed=True)
    expected = [e for e in entries if e.get("botName") == "Gamma" and not e["success"]]
    assert page["total"] == len(expected) > 0
    plan = " ".join(str(r) for r in store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM traces WHERE bot = ? AND success = 0", ("Gamma",)))
    assert "traces_bot_fail_ts" in plan


def test_first_build_fills_fts_once_and_recovers_from_a_stop(tree: tuple[Path, list[dict[str, Any]]],
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big first build drops the FTS triggers and rebuilds once at the end; a build that died
    half way (triggers gone, table marked not ready) is repaired by the next open."""
    logs, entries = tree
    monkeypatch.setattr(ix, "BULK_BYTES", 1000)
    monkeypatch.setattr(ix, "CHUNK", 64 * 1024)
    monkeypatch.setattr(ix, "BULK_WORKERS", 1)  # sequential: no worker processes in the test
    path = tmp_path / "bulk.sqlite"
    store = TraceStore([logs], index_path=path, auto_refresh_interval=0.0)
    try:
        seen: list[bool] = []
        real = ix._read_chunk

        def spy(conn: sqlite3.Connection, *a: Any) -> Any:
            seen.append(ix.has_fts(conn))
            return real(conn, *a)

        monkeypatch.setattr(ix, "_read_chunk", spy)
        store.refresh()
        assert len(seen) > 1 and not any(seen)  # no trigger work while the rows went in
        assert ix.has_fts(store.conn)
        _fts_consistent(store)
        assert set(_all_ids(store, text="École")[1]) == _reference(entries, "École")
        # a build that stopped after suspending: text filters still answer (by scanning) ...
        store.conn.execute("BEGIN IMMEDIATE")
        ix.suspend_fts(store.conn)
        store.conn.execute("COMMIT")
        store.conn.execute("DELETE FROM traces WHERE bot = 'Odd' AND success = 1")  # no trigger
        kept = [e for e in entries if not (e.get("botName") == "Odd" and e["success"])]
        assert set(_all_ids(store, text="École")[1]) == _reference(kept, "École")
        assert set(_all_ids(store, text="école")[1]) == _reference(kept, "école")
    finally:
        store.close()
    # ... and the next open rebuilds the table and puts the triggers back
    store = TraceStore([logs], index_path=path, auto_refresh_interval=3600)
    try:
        assert ix.has_fts(store.conn)
        _fts_consistent(store)
        odd = [e for e in entries if not (e.get("botName") == "Odd" and e["success"])]
        assert set(_all_ids(store, text="École")[1]) == _reference(odd, "École")
    finally:
        store.close()
