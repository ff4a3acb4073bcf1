"""Background ingestion (the viewer's mode): readers answer from what is committed while a big
catch-up runs, report "building" progress, and still see a few new lines at once; the CLI's
reindex progress bar."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from bench.gen_traces import generate_tree
from chapterx.cli import main as cli_main
from chapterx.trace import store as store_mod
from chapterx.trace.store import TraceStore


def _wait_for(pred: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_readers_answer_while_a_build_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = tmp_path / "logs"
    tree = generate_tree(logs, 600, files=2, channels=4, context=200)
    idx = logs / "traces" / "index.jsonl"
    lines = idx.read_bytes().splitlines(keepends=True)
    idx.write_bytes(b"".join(lines[:300]))
    db = tmp_path / "i.sqlite"
    monkeypatch.setattr(store_mod, "BUILDING_BYTES", 64 * 1024)  # handed to the worker process
    store = TraceStore([logs], index_path=db, auto_refresh_interval=0.05, background=True)
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        _wait_for(lambda: store.list_traces(limit=1)["total"] == 300)  # the first half is indexed
        # another writer holds the database: the worker's next catch-up cannot commit until it lets go
        blocker.execute("BEGIN IMMEDIATE")
        with open(idx, "ab") as fh:
            fh.write(b"".join(lines[300:]))
        # the worker's next pass (the first one was a "build" too, and may just be ending at 100%)
        _wait_for(lambda: store.index_progress().building and store.index_progress().percent < 100)
        page = store.list_traces(limit=10)  # answered from what is committed, not waiting for the worker
        assert page["total"] == 300
        assert page["indexing"] == {"building": True, "percent": store.index_progress().percent}
        assert 0 < page["indexing"]["percent"] < 100
        assert store.search(tree.sample_message_ids[0])["messageId"] == tree.sample_message_ids[0]
        blocker.execute("ROLLBACK")
        _wait_for(lambda: store.list_traces(limit=1)["total"] == 600 and not store.index_progress().building)
        assert "indexing" not in store.list_traces(limit=1)  # the usual (upstream) shape once caught up
        assert store.search(tree.sample_message_ids[-1])["total"] >= 1
    finally:
        blocker.close()
        store.close()
    assert not store._worker._proc.is_alive()  # type: ignore[union-attr]


def test_a_few_new_lines_are_seen_at_once(tmp_path: Path) -> None:
    idx = tmp_path / "traces" / "index.jsonl"
    idx.parent.mkdir(parents=True)
    idx.write_text("")
    store = TraceStore([tmp_path], index_path=tmp_path / "i.sqlite", auto_refresh_interval=0.5, background=True)
    try:
        for n in range(15):
            with open(idx, "a") as fh:
                fh.write(json.dumps({"traceId": f"{n:032x}", "timestamp": f"2026-01-01T00:00:{n:02d}.000Z",
                                     "channelId": "1", "botName": "B", "success": True,
                                     "contextMessageIds": [str(100 + n)]}) + "\n")
            assert store.list_traces(limit=1)["total"] == n + 1
            assert store.search(str(100 + n))["total"] == 1
        # a trailing fragment (a line being written) is not a backlog to wait for
        with open(idx, "a") as fh:
            fh.write('{"traceId": "half')
        assert store.list_traces(limit=1)["total"] == 15
    finally:
        store.close()


def test_reindex_draws_a_progress_bar(tmp_path: Path, capsys: Any) -> None:
    logs = tmp_path / "logs"
    generate_tree(logs, 200, files=1, channels=3, context=20)
    assert cli_main(["traces", "reindex", "--progress", "--logs-dir", str(logs),
                     "--index", str(tmp_path / "i.sqlite")]) == 0
    captured = capsys.readouterr()
    assert "building index: [" in captured.err and "100%" in captured.err
    assert "reindexed 200 lines" in captured.out


def test_a_dead_worker_falls_back_to_inline_catch_up(tmp_path: Path) -> None:
    idx = tmp_path / "traces" / "index.jsonl"
    idx.parent.mkdir(parents=True)
    idx.write_text("")
    store = TraceStore([tmp_path], index_path=tmp_path / "i.sqlite", auto_refresh_interval=0.0, background=True)
    try:
        proc = store._worker._proc  # type: ignore[union-attr]
        proc.kill()
        proc.join(10)
        with open(idx, "a") as fh:
            fh.write(json.dumps({"traceId": "ab" * 16, "timestamp": "2026-01-01T00:00:00.000Z",
                                 "channelId": "1", "botName": "B", "success": True}) + "\n")
        assert store.list_traces(limit=1)["total"] == 1
        assert store._worker is None
    finally:
        store.close()
