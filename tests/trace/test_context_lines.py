"""Schema 4: plain index lines are indexed from their bytes, and a context row points at its line
(offset, length) instead of storing its ids. Answers must be those of one row per id, on the
sequential and the parallel (first build) paths, after a prune moved the lines, when a file
changed under the index, and after the upgrade from schema 3."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from chapterx.trace import ctxids
from chapterx.trace import index as ix
from chapterx.trace.ids import message_key
from chapterx.trace.store import TraceStore
from tests.trace.test_context_ranges import _answers, _reference

BASE = 1_400_000_000_000_000_000


def _lines(n: int = 160, seed: int = 11, *, spaced: bool = False, start_day: int = 1) -> list[dict[str, Any]]:
    """Realistic lines: each context is the last messages of its channel (ids increasing), some
    bots write relay ids, positions identity / listed / absent, a few odd lines."""
    rng = random.Random(seed)
    hist: dict[str, list[int]] = {"700": [], "701": [], "702": []}
    seq = 0
    out = []
    for i in range(n):
        chan = rng.choice(list(hist))
        for _ in range(1 + rng.randrange(3)):
            seq += 1
            hist[chan].append(BASE + seq * 1000 + rng.randrange(1000))
        del hist[chan][:-12]
        bot = rng.choice(["plain", "relay", "plain2"])
        ids = [f"rm_box7_{k}" if bot == "relay" else str(k) for k in hist[chan]]
        if i % 37 == 5:
            ids.append(ids[0])  # a repeat: not increasing, general path; its first position wins
        if i % 41 == 7:
            ids.insert(1, f"rm_other_{hist[chan][-1]}")  # two relay spellings in one line
        e: dict[str, Any] = {
            "traceId": f"{i:08x}{'ab' * 12}", "timestamp": f"2026-01-{start_day + i // 1440:02d}T"
                                                          f"{(i // 60) % 24:02d}:{i % 60:02d}:00.000Z",
            "channelId": chan, "botName": bot, "success": i % 13 != 0,
            "triggeringMessageId": ids[-1], "contextMessageIds": ids,
            "sentMessageIds": [str(BASE + seq * 1000 + 999)] if i % 3 else [],
        }
        kind = i % 4
        if kind == 0:
            e["contextPositions"] = list(range(len(ids)))
        elif kind == 1:
            e["contextPositions"] = [rng.randrange(0, 50) for _ in ids]
        elif kind == 2:
            e["contextPositions"] = [0]  # wrong length: no positions
        out.append(e)
    return out


def _write(logs: Path, entries: list[dict[str, Any]], *, spaced: bool = False) -> None:
    (logs / "traces").mkdir(parents=True, exist_ok=True)
    seps = (", ", ": ") if spaced else (",", ":")
    (logs / "traces" / "index.jsonl").write_text("".join(json.dumps(e, separators=seps) + "\n" for e in entries))


def _queries(entries: list[dict[str, Any]]) -> list[str]:
    qs = {str(message_key(c)) for e in entries for c in e["contextMessageIds"]}
    qs |= {"rm_box7_" + q for q in list(qs)[:20]}
    return [*sorted(qs), str(BASE - 1), "not-an-id"]


def _check(store: TraceStore, entries: list[dict[str, Any]]) -> None:
    for q in _queries(entries):
        key = q.rsplit("_", 1)[-1] if q.startswith("rm_") else q
        assert _answers(store, q) == _reference(entries, key), q
    assert _answers(store, str(message_key(entries[-1]["contextMessageIds"][0])), bot="relay") == \
        _reference(entries, str(message_key(entries[-1]["contextMessageIds"][0])), bot="relay")


def _pairs(entries: list[dict[str, Any]]) -> set[tuple[int, str]]:
    return {(k, e["channelId"]) for e in entries for c in e["contextMessageIds"]
            if isinstance(k := message_key(c), int)}


@pytest.mark.parametrize("mode", ["tail", "tail-spaced", "bulk"])
def test_plain_lines_answer_as_one_row_per_id(tmp_path: Path, make_store: Any, monkeypatch: pytest.MonkeyPatch,
                                              mode: str) -> None:
    entries = _lines()
    logs = tmp_path / "logs"
    _write(logs, entries, spaced=mode == "tail-spaced")
    if mode == "bulk":  # the first-build path: worker processes, many blocks
        monkeypatch.setattr(ix, "BULK_BYTES", 1000)
        monkeypatch.setattr(ix, "BULK_BLOCK", 9000)
    store = make_store(logs)
    store.refresh()
    c = store.conn
    in_line = c.execute("SELECT COUNT(*) FROM ctx WHERE ids = ?", (ctxids.IN_LINE,)).fetchone()[0]
    assert in_line >= len(entries) * 0.8  # most lines take the byte path
    assert c.execute("SELECT COUNT(*) FROM ctx WHERE ids <> ?", (ctxids.IN_LINE,)).fetchone()[0] >= 3
    # every (id, channel) pair is there, though only ids new to their channel were written
    assert set(c.execute("SELECT key, chan FROM msgchan").fetchall()) == _pairs(entries)
    _check(store, entries)
    assert store.stats()["messageRows"] == sum(
        len({message_key(x) for x in e["contextMessageIds"]}) + 1 + len(e["sentMessageIds"]) for e in entries)


def test_cut_line_takes_only_the_plain_shape() -> None:
    prev: dict[str, ctxids.ChanState] = {}
    ok = b'{"traceId":"a","channelId":"5","contextMessageIds":["1200","1300"],"contextPositions":[0,1]}'
    got = ctxids.cut_line(ok, prev)
    assert got is not None and got[1] is not None
    assert (got[1].lo, got[1].hi, got[1].n, got[1].new, got[1].pos) == (1200, 1300, 2, [1200, 1300], ctxids.IDENTITY)
    nxt = ctxids.cut_line(ok.replace(b'["1200","1300"]', b'["1300","1400"]'), prev)
    assert nxt is not None and nxt[1] is not None and nxt[1].new == [1400]  # only the new id
    for odd in (b'["1200","0130"]', b'["1200",1300]', b'["1200","13\\u0030"]', b'["120","1300"]',
                b'["1200","x300"]', b'["9999999999999999999","9999999999999999998"]', b'["1200","1300"'):
        assert ctxids.cut_line(ok.replace(b'["1200","1300"]', odd), {}) is None, odd
    # a key spelt inside a string is not the key
    tricky = b'{"traceId":"a","x":"\\"contextMessageIds\\":[\\"9\\"]","contextMessageIds":["1200"]}'
    got = ctxids.cut_line(tricky, {})
    assert got is not None and got[0]["x"] == '"contextMessageIds":["9"]' and got[1] is not None
    assert got[1].lo == 1200
    assert ctxids.cut_line(b'{"contextMessageIds":["1"],"contextMessageIds":["2"]}', {}) is None
    assert ctxids.cut_line(b'{"traceId":"a","contextMessageIds":["1200"],"contextPositions":[true]}', {}) is None


def test_prune_moves_lines_and_answers_stay(tmp_path: Path, make_store: Any) -> None:
    old = _lines(60, seed=3, start_day=1)
    new = _lines(80, seed=4, start_day=20)
    for e in new:
        e["traceId"] = "f" + e["traceId"][1:]
    logs = tmp_path / "logs"
    # old and new lines interleaved: the kept lines move back by different amounts
    mixed = [e for pair in zip(old, new[:60], strict=True) for e in pair] + new[60:]
    _write(logs, mixed)
    store = make_store(logs)
    store.refresh()
    # what `prune_store` does with the index under its lock (its cutoff is relative to now)
    from chapterx.trace import prune as pr

    cutoff = ix.parse_iso("2026-01-10T00:00:00.000Z")
    assert cutoff is not None
    index_file = logs / "traces" / "index.jsonl"
    moves: list[tuple[int, int, int]] = []
    removed, kept, _frag = pr._rewrite_index(index_file, cutoff, False, moves)
    assert (removed, kept) == (60, 80) and len(moves) > 1
    pr._update_db(store, index_file, cutoff, pr._whole_lines(moves), moves)
    assert pr._whole_lines(moves) == index_file.stat().st_size  # every kept line, nothing appended since
    c = store.conn
    assert c.execute("SELECT COUNT(*) FROM ctx WHERE ids = ?", (ctxids.IN_LINE,)).fetchone()[0] >= 60
    gen = ix.generation(c)
    _check(store, new)
    assert c.execute("SELECT inode FROM sources").fetchone()[0] != -1  # not marked: no re-read
    assert ix.generation(c) == gen


def test_line_changed_under_the_index_is_read_again(tmp_path: Path, make_store: Any) -> None:
    entries = _lines(50, seed=8)
    logs = tmp_path / "logs"
    _write(logs, entries)
    store = make_store(logs)
    store.refresh()
    # rewritten in place: same inode, same size, same first bytes, but lines 10..19 reordered
    path = logs / "traces" / "index.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[10:20] = lines[10:20][::-1]
    with open(path, "r+b") as fh:
        fh.write(b"".join(lines))
    store._last_refresh = float("inf")
    rows_before = store.conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
    _check(store, entries)  # the same traces: the first search sees the moved lines and re-reads
    assert store.conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == rows_before
    assert store.conn.execute("SELECT inode FROM sources").fetchone()[0] == path.stat().st_ino


def test_background_store_never_answers_from_a_changed_line(tmp_path: Path) -> None:
    entries = _lines(30, seed=9)
    logs = tmp_path / "logs"
    _write(logs, entries)
    path = tmp_path / "idx.sqlite"
    builder = TraceStore([logs], index_path=path, auto_refresh_interval=0.0)
    builder.refresh()
    builder.close()
    raw = (logs / "traces" / "index.jsonl").read_bytes().splitlines(keepends=True)
    other = _lines(30, seed=10)
    for e in other:
        e["traceId"] = "9" + e["traceId"][1:]
    body = b"".join(raw[:2]) + "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in other[2:]).encode()
    (logs / "traces" / "index.jsonl").write_bytes(body)  # same inode and head, other lines
    store = TraceStore([logs], index_path=path, auto_refresh_interval=30.0, background=True)
    try:
        store._worker.wait_for_pass(10)  # type: ignore[union-attr]
        q = str(message_key(other[-1]["contextMessageIds"][0]))
        want = {t for t, _r, _p in _reference([*entries[:2], *other[2:]], q)}
        assert want and want != {t for t, _r, _p in _reference(entries, q)}
        first = {t for t, _r, _p in _answers(store, q)}
        assert first <= want  # rows whose line moved are left out, never answered from
        deadline = time.monotonic() + 20
        while {t for t, _r, _p in _answers(store, q)} != want and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker reads the file again (woken by the search)
        assert {t for t, _r, _p in _answers(store, q)} == want
    finally:
        store.close()


def _to_schema_3(path: Path) -> None:
    conn = sqlite3.connect(str(path))
    conn.execute("ALTER TABLE ctx DROP COLUMN src_off")
    conn.execute("ALTER TABLE ctx DROP COLUMN src_len")
    conn.execute("UPDATE meta SET value='3' WHERE key='schema'")
    conn.commit()
    conn.close()


def test_schema_3_is_upgraded_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = _lines(80, seed=12)
    logs = tmp_path / "logs"
    _write(logs, entries[:50])
    path = tmp_path / "v3.sqlite"
    with monkeypatch.context() as m:  # schema 3 stored every id list
        m.setattr(ctxids, "cut_line", lambda raw, prev: None)
        store = TraceStore([logs], index_path=path, auto_refresh_interval=0.0)
        store.refresh()
        store.close()
    _to_schema_3(path)
    with open(logs / "traces" / "index.jsonl", "a") as fh:
        fh.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries[50:]))
    store = TraceStore([logs], index_path=path, auto_refresh_interval=0.0)
    try:
        c = store.conn
        assert c.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(ix.SCHEMA_VERSION)
        assert ix.has_fts(c)
        store.refresh()
        kinds = dict(c.execute("SELECT ids = ?, COUNT(*) FROM ctx GROUP BY 1", (ctxids.IN_LINE,)).fetchall())
        assert kinds[0] >= 50 and kinds[1] >= 20  # old rows kept as they were, new ones point at lines
        _check(store, entries)
    finally:
        store.close()


def test_list_totals_from_a_time_on_match_a_count(tmp_path: Path, make_store: Any) -> None:
    """The viewer's default list has a retention floor (`since`): its total is the kept count less
    the rows before the floor. It must equal counting the matching lines, for every filter it serves."""
    entries = _lines(300, seed=21)
    logs = tmp_path / "logs"
    _write(logs, entries)
    store = make_store(logs)
    store.refresh()
    stamps = sorted({e["timestamp"] for e in entries})
    for since in (stamps[0], stamps[1], stamps[len(stamps) // 3], stamps[-1], "2027-01-01T00:00:00.000Z"):
        for filt in ({}, {"bot": "relay"}, {"bot": "nobody"}, {"channel": "701"}):
            expected = sum(1 for e in entries if e["timestamp"] >= since
                           and all(e[{"bot": "botName", "channel": "channelId"}[k]] == v for k, v in filt.items()))
            got = store.list_traces(since=since, limit=1, **filt)["total"]
            assert got == expected, (since, filt)


def test_a_worker_reads_its_block_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build worker reads its block a piece at a time: the rows are those of the whole block
    at once, lines longer than a piece included, and a block that is not there any more is None."""
    entries = _lines(60)
    entries[7]["triggerPreview"] = "x" * 2000  # longer than a piece
    logs = tmp_path / "logs"
    _write(logs, entries)
    path = logs / "traces" / "index.jsonl"
    block = path.read_bytes()
    monkeypatch.setattr(ix, "PIECE", 300)
    got = ix.prepare_bulk_at(str(path), 0, len(block), block.count(b"\n"), 1, 1)
    heads: dict[str, list[int]] = {}
    tails: dict[str, list[int]] = {}
    whole = ix.prepare_block(block, 1, 1, 0, heads, tails)
    assert got is not None
    assert (got[0], got[1], got[3], got[4]) == (whole[0], whole[1], heads, tails)
    assert len(got[0][0]) == len(entries)
    # the block no longer holds the lines its bounds were cut for
    assert ix.prepare_bulk_at(str(path), 0, len(block), block.count(b"\n") + 1, 1, 1) is None
    path.write_bytes(block[: len(block) // 2])
    assert ix.prepare_bulk_at(str(path), 0, len(block), block.count(b"\n"), 1, 1) is None
