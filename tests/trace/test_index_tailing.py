"""Incremental tailing of index.jsonl and the message table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.trace.helpers import new_writer, write_activation


def _line(tid: str, ts: str, **extra: Any) -> str:
    entry = {"traceId": tid, "timestamp": ts, "channelId": "10", "triggeringMessageId": f"rm_c_{tid}0",
             "botName": "B", "success": True, "durationMs": 1, "llmCallCount": 1, "toolExecutionCount": 0,
             "totalTokens": 5, "contextMessageIds": [], "sentMessageIds": [], "filename": f"10-{tid}-x.json"}
    entry.update(extra)
    return json.dumps(entry)


def _index(base: Path) -> Path:
    p = base / "traces" / "index.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def test_partial_line_waits_then_completes(tmp_path: Path, make_store: Any) -> None:
    idx = _index(tmp_path)
    full = _line("aaaa1111", "2026-01-01T00:00:01.000Z")
    idx.write_text(_line("aaaa0000", "2026-01-01T00:00:00.000Z") + "\n" + full[:40])
    store = make_store(tmp_path)
    assert store.list_traces()["total"] == 1
    with open(idx, "a") as fh:
        fh.write(full[40:] + "\n")
    listing = store.list_traces()
    assert listing["total"] == 2 and listing["traces"][0]["traceId"] == "aaaa1111"


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path, make_store: Any) -> None:
    idx = _index(tmp_path)
    idx.write_text("not json\n" + _line("bbbb0000", "2026-01-01T00:00:00.000Z") + "\n[1,2]\n{\"x\":1}\n\n")
    store = make_store(tmp_path)
    stats = store.refresh()
    assert store.list_traces()["total"] == 1
    assert stats.malformed == 3


def test_truncation_and_rotation_are_detected(tmp_path: Path, make_store: Any) -> None:
    idx = _index(tmp_path)
    idx.write_text("".join(_line(f"cccc000{i}", f"2026-01-01T00:00:0{i}.000Z") + "\n" for i in range(5)))
    store = make_store(tmp_path)
    assert store.list_traces()["total"] == 5
    idx.write_text(_line("dddd0000", "2026-01-02T00:00:00.000Z") + "\n")  # truncated + rewritten
    assert [t["traceId"] for t in store.list_traces()["traces"]] == ["dddd0000"]
    rotated = idx.with_suffix(".new")
    rotated.write_text("".join(_line(f"eeee000{i}", f"2026-01-03T00:00:0{i}.000Z") + "\n" for i in range(3)))
    os.replace(rotated, idx)  # rotation to a *larger* file (upstream misses this one)
    assert {t["traceId"] for t in store.list_traces()["traces"]} == {"eeee0000", "eeee0001", "eeee0002"}
    assert store.channels()["channels"] == [{"id": "10", "name": "10", "count": 3}]
    assert store.bots()["bots"] == ["B"]
    idx.unlink()
    assert store.list_traces()["total"] == 0
    assert store.channels()["channels"] == [] and store.bots()["bots"] == []


def test_many_bases_and_incremental_updates(tmp_path: Path, make_store: Any) -> None:
    prod, staging = tmp_path / "prod", tmp_path / "staging"
    wp, ws = new_writer(prod, background=False), new_writer(staging, background=False)
    a = write_activation(wp, bot="ProdBot", trigger="111", context=["110", "111"], sent=["112"])
    b = write_activation(ws, bot="StageBot", trigger="rm_relay_110", context=["rm_relay_110"])
    store = make_store(prod, staging)
    assert store.bots() == {"bots": ["ProdBot", "StageBot"]}
    res = store.search("https://discord.com/channels/9/10/110")["results"]
    assert {(r["traceId"], r["role"]) for r in res} == {(a, "context"), (b, "trigger")}
    assert [r["position"] for r in res if r["role"] == "context"] == [0]
    assert store.search("112")["results"][0]["role"] == "sent"
    c = write_activation(wp, bot="ProdBot", trigger="113")
    assert store.list_traces()["traces"][0]["traceId"] == c
    assert store.get_trace(a)["botId"] == "ProdBot" and store.get_trace(b)["botId"] == "StageBot"
    channels = store.channels()["channels"]
    assert channels == [{"id": "1000", "name": "general", "count": 3}]


def test_non_bot_folders_are_not_bots(tmp_path: Path, make_store: Any) -> None:
    w = new_writer(tmp_path, background=False)
    write_activation(w, bot="Real Bot")
    (tmp_path / "traces" / "bodies").mkdir()
    (tmp_path / "traces" / "misc").mkdir()
    (tmp_path / "traces" / "misc" / "notes.txt").write_text("x")
    assert make_store(tmp_path).bots() == {"bots": ["Real Bot"]}


def test_external_chapter2_entries(tmp_path: Path, make_store: Any) -> None:
    w = new_writer(tmp_path, background=False)
    write_activation(w, bot="CxBot")
    store = make_store(tmp_path)
    n = store.add_external([{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "timestamp": "2030-01-01T00:00:00.000Z",
        "channelId": "77", "triggeringMessageId": "7001", "botName": "em-one", "channelName": "c2",
        "success": True, "durationMs": 10, "llmCallCount": 1, "toolExecutionCount": 0, "totalTokens": 9,
        "responsePreview": "hi", "sentMessageIds": ["7002"], "detail": {"prompt": "P", "continuation": "C"},
    }])
    assert n == 1
    first = store.list_traces()["traces"][0]
    assert first["framework"] == "chapter2" and first["botName"] == "em-one"
    assert store.list_traces(framework="chapter2")["total"] == 1
    assert store.list_traces(framework="chapterx")["total"] == 1
    assert store.search("7002")["results"][0]["framework"] == "chapter2"
    assert store.get_trace("0af7651916cd43dd8448eb211c80319c")["prompt"] == "P"
    store.add_external([{"traceId": "0af7651916cd43dd8448eb211c80319c", "timestamp": "2030-01-01T00:00:00.000Z",
                         "channelId": "77", "success": False}])
    assert store.list_traces(framework="chapter2")["traces"][0]["success"] is False  # replaced, not duplicated
    assert store.list_traces(framework="chapter2")["total"] == 1


def test_body_refs_and_ids_are_validated(tmp_path: Path, make_store: Any) -> None:
    w = new_writer(tmp_path / "logs", background=False)
    tid = write_activation(w)
    (tmp_path / "secret.json").write_text("{}")
    store = make_store(tmp_path / "logs")
    good = store.body_path("request", f"request-{tid}-0.json")
    assert good is not None and good.is_file()
    for ref in ("../secret.json", "..%2Fsecret.json", "/etc/passwd", ".hidden.json", "a/b.json", "",
                "request-x.json\x00", "..", "request-" + tid + "-0.json/../../secret.json"):
        assert store.body_path("request", ref) is None, ref
    assert store.body_path("nonsense", f"request-{tid}-0.json") is None
    for bad in ("../x", "a/b", "", "x" * 65, "id with space"):
        assert store.get_trace(bad) is None
    assert store.get_trace(tid[:8]) is None  # a prefix is not the id
    assert store.get_trace(tid)["traceId"] == tid


def test_bot_names_that_are_not_folder_names(tmp_path: Path, make_store: Any) -> None:
    w = new_writer(tmp_path, background=False)
    tid = write_activation(w, bot="../evil/Bot")
    folders = [p for p in (tmp_path / "traces").iterdir() if p.is_dir()]
    assert len(folders) == 1 and not folders[0].name.startswith(".") and "evil" in folders[0].name
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()
    store = make_store(tmp_path)
    assert store.get_trace(tid)["botId"] == "../evil/Bot"
    assert store.list_traces()["traces"][0]["botName"] == "../evil/Bot"


def test_index_falls_back_to_temp_without_a_cache_folder(tmp_path: Path, monkeypatch: Any) -> None:
    from chapterx.trace.store import TraceStore

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # mkdir below a file fails
    w = new_writer(tmp_path / "logs", background=False)
    tid = write_activation(w)
    store = TraceStore([tmp_path / "logs"])
    try:
        assert not str(store.index_path).startswith(str(blocker))
        assert store.list_traces()["traces"][0]["traceId"] == tid
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(store.index_path) + suffix).unlink(missing_ok=True)


def test_bulk_first_build_gives_the_same_answers(tmp_path: Path, monkeypatch: Any) -> None:
    """A big first build drops the secondary indexes, loads in chunks and recreates them."""
    import sys

    from chapterx.trace import index as ix
    from chapterx.trace.store import TraceStore

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.gen_traces import generate_tree

    tree = generate_tree(tmp_path / "logs", 3000, files=20, channels=5, context=10)
    import concurrent.futures as cf

    class NoPool:
        def __init__(self, *a: Any, **k: Any) -> None:
            raise OSError("no semaphores here")

    answers = []
    # incremental; bulk with worker processes; bulk in one process; bulk whose pool cannot start
    for n, (bulk_bytes, workers, broken) in enumerate(((10**12, 2, False), (1, 2, False), (1, 1, False),
                                                       (1, 2, True))):
        monkeypatch.setattr(ix, "BULK_BYTES", bulk_bytes)
        monkeypatch.setattr(ix, "BULK_WORKERS", workers)
        monkeypatch.setattr(ix, "CHUNK", 64 * 1024)
        if broken:
            monkeypatch.setattr(cf, "ProcessPoolExecutor", NoPool)
        store = TraceStore([tmp_path / "logs"], index_path=tmp_path / f"i{n}.sqlite")
        store.refresh()
        indexes = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert set(ix._INDEX_NAMES) <= indexes
        answers.append((
            store.list_traces(limit=200, offset=100),
            store.list_traces(bot=tree.bots[1], channel=tree.channels[2]),
            [store.search(m, limit=200) for m in tree.sample_message_ids[:20]],
            store.channels(), store.bots(),
        ))
        store.close()
    assert answers[0] == answers[1] == answers[2] == answers[3]
    assert answers[0][0]["total"] == 3000


def test_one_logs_folder_under_two_spellings_is_indexed_once(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`logs` (a cron job's relative path) and `/abs/logs` (the unit's) are one source: every trace
    once, whichever spelling built the index (an index built before paths were canonical included)."""
    import sqlite3

    from chapterx.trace.store import TraceStore

    logs = tmp_path / "logs"
    writer = new_writer(logs, background=False)
    for i in range(3):
        write_activation(writer, trigger=str(7000 + i))
    writer.flush()
    index = tmp_path / "shared-index.sqlite"
    monkeypatch.chdir(tmp_path)
    for spelling in (Path("logs"), logs, Path("./logs/../logs")):
        store = TraceStore([spelling, logs], index_path=index, auto_refresh_interval=0.0)
        store.refresh()
        assert store.list_traces()["total"] == 3, spelling
        store.close()
    # an index written by an older version under the relative spelling: adopted, not doubled
    with sqlite3.connect(index) as conn:
        conn.execute("UPDATE sources SET path='logs/traces/index.jsonl', base='logs'")
    write_activation(writer, trigger="7100")
    writer.flush()
    store = TraceStore([logs], index_path=index, auto_refresh_interval=0.0)
    store.refresh()
    assert store.list_traces()["total"] == 4
    store.close()


def test_another_refresher_during_a_first_build_duplicates_nothing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes may keep one index (the viewer's worker and a `chapterx traces list`). When
    the other one catches up while this one's parallel first build is half way, the build stops
    at the offset the other committed instead of inserting those lines a second time."""
    import sys

    from chapterx.trace import index as ix
    from chapterx.trace.store import IndexProgress, TraceStore

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.gen_traces import generate_tree

    tree = generate_tree(tmp_path / "logs", 2000, files=10, channels=4, context=8)
    monkeypatch.setattr(ix, "BULK_BYTES", 1)
    monkeypatch.setattr(ix, "BULK_BLOCK", 64 * 1024)
    monkeypatch.setattr(ix, "CHUNK", 64 * 1024)
    index_path = tmp_path / "index.sqlite"
    other = TraceStore([tmp_path / "logs"], index_path=index_path)
    calls = []

    def meanwhile(p: IndexProgress) -> None:
        calls.append(p.done_bytes)
        if len(calls) == 3:  # a few blocks in: the other process reads everything that is left
            monkeypatch.setattr(ix, "BULK_BYTES", 10**12)
            other.refresh()
            monkeypatch.setattr(ix, "BULK_BYTES", 1)

    store = TraceStore([tmp_path / "logs"], index_path=index_path)
    store.refresh(progress=meanwhile)
    assert len(calls) > 3
    ids = [r[0] for r in store.conn.execute("SELECT trace_id FROM traces")]
    assert len(ids) == len(set(ids)) == tree.lines
    assert store.list_traces(limit=1)["total"] == tree.lines
    assert store.stats()["traces"] == tree.lines
    store.close()
    other.close()
