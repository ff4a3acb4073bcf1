"""chapter2 OTLP ingest next to readers (issue 14): a reader never waits for a chapter2 write, a
read's refresh never takes over an ingest's line, and a big post's details (built in the decode
worker, carried as JSON text) are what the viewer serves."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from chapterx.trace.store import TraceStore
from chapterx.viewer.chapter2 import PROCESS_DECODE_BYTES, Chapter2Source, append_line, request_line
from chapterx_compat.chapter2 import otlp
from tests.security.otlpgen import linked_spans, request
from tests.viewer.conftest import INGEST_TOKEN, RunningViewer

TOKEN = INGEST_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _ext(i: int, **more: Any) -> dict[str, Any]:
    return {"traceId": f"{i:032x}", "timestamp": f"2030-01-01T00:00:{i % 60:02d}.000Z", "channelId": "20",
            "botName": "wren", "success": True, "triggeringMessageId": str(1_300_000_000_000_000_000 + i),
            **more}


class _Held:
    """Turned into text by `json.dumps(default=str)` inside the store's write transaction: holds
    that transaction open until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __str__(self) -> str:
        self.entered.set()
        self.release.wait(8)
        return "held"


def test_a_reader_does_not_wait_for_an_open_chapter2_write(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "traces").mkdir(parents=True)
    store = TraceStore([logs], index_path=tmp_path / "i.sqlite", background=True)
    try:
        store.add_external([_ext(1, detail={"n": 1})])
        held = _Held()
        writer = threading.Thread(target=store.add_external, args=([_ext(2, detail={"n": held})],))
        writer.start()
        assert held.entered.wait(30)  # the write transaction is open (its BEGIN IMMEDIATE ran)
        t = time.monotonic()
        listed = store.list_traces(limit=10)
        found = store.search(str(1_300_000_000_000_000_001))
        waited = time.monotonic() - t
        held.release.set()
        writer.join(30)
        # the last committed state, at once (before: the reader queued on the writer's lock)
        assert [x["traceId"] for x in listed["traces"]] == [f"{1:032x}"] and listed["total"] == 1
        assert [r["traceId"] for r in found["results"]] == [f"{1:032x}"]
        assert waited < 5  # (before: until the write let go, 8 s)
        assert store.list_traces(limit=10)["total"] == 2  # and the write landed once released
        landed = store.get_trace(f"{2:032x}")
        assert landed is not None and landed["n"] == "held"
    finally:
        held.release.set()
        store.close()


def test_a_detail_given_as_json_text_is_stored_as_is_and_removed_with_its_row(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "traces").mkdir(parents=True)
    store = TraceStore([logs], index_path=tmp_path / "i.sqlite")
    try:
        detail = {"prompt": "héllo", "tree": [{"name": "a", "ms": 1.5}], "none": None}
        assert store.add_external([_ext(3, detailJson=json.dumps(detail), contextMessageIds=["311", "312"])]) == 1
        got = store.get_trace(f"{3:032x}")
        assert got is not None and {k: got[k] for k in detail} == detail and got["framework"] == "chapter2"
        assert [r["traceId"] for r in store.search("312")["results"]] == [f"{3:032x}"]
        assert store.remove_external([f"{3:032x}"]) == 1
        assert store.search("312")["results"] == [] and store.get_trace(f"{3:032x}") is None
    finally:
        store.close()


def test_a_refresh_never_reads_an_ingest_line_before_the_ingest_has_grouped_it(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    source = Chapter2Source([folder], min_interval_s=0)
    doc = request(linked_spans(20, seed=3))
    spans = otlp.parse_request(doc)
    with source.ingesting():
        path, start, end = append_line(folder, request_line(doc))
        seen: list[list[dict[str, Any]]] = []
        reader = threading.Thread(target=lambda: seen.append(source.refresh()))
        reader.start()
        reader.join(30)
        # the read's refresh answered at once with nothing: the line is the ingest's to group
        assert seen == [[]] and source.entries() == []
        pending = source.add_ingested(path, start, end, spans)
    assert len(pending) == len(otlp.group_replies(spans)) == len(source.entries())
    assert source.refresh() == []  # nothing left to read: the line is not grouped twice


def test_a_big_post_is_listed_and_served_with_the_details_built_by_the_decode_worker(
        ingest_viewer: RunningViewer) -> None:
    base = time.time_ns() - 3600 * 10**9
    n = 500
    body = json.dumps(request(linked_spans(n, seed=11, base=base))).encode()
    while len(body) <= PROCESS_DECODE_BYTES:  # big enough for the decode worker process
        n *= 2
        body = json.dumps(request(linked_spans(n, seed=11, base=base))).encode()
    r = ingest_viewer.request("POST", "/v1/traces", {**AUTH, "Content-Type": "application/json"}, body)
    assert r.status == 200, r.body
    replies = otlp.group_replies(otlp.parse_request(json.loads(body)))
    listed = ingest_viewer.request("GET", "/api/traces?framework=chapter2&limit=1", AUTH).json()
    assert listed["total"] == len(replies)
    for reply in replies[:: max(1, len(replies) // 5)]:
        d = ingest_viewer.request("GET", f"/api/trace/{reply.trace_id}", AUTH)
        assert d.status == 200
        want = json.loads(json.dumps(otlp.reply_detail(reply), default=str))
        assert {k: d.json()[k] for k in want} == want


def test_a_list_page_read_in_one_step_is_the_page_row_by_row(tmp_path: Path) -> None:
    """The page comes back as one JSON array (one SQLite step): same rows, same order (ties on the
    time broken by id), exact floats, text as written."""
    logs = tmp_path / "logs"
    (logs / "traces").mkdir(parents=True)
    store = TraceStore([logs], index_path=tmp_path / "i.sqlite")
    try:
        entries = [_ext(i, timestamp=f"2030-01-01T00:00:0{i % 3}.123Z", cost=0.1 * i + 0.2,
                        durationMs=1234.5 + i, triggerPreview=f"é \"q\" \\ {i} ☃", success=i % 4 != 0)
                   for i in range(40)]
        store.add_external(entries)
        from chapterx.trace import store as store_mod

        sql = (f"SELECT {store_mod._LIST_SQL} FROM traces WHERE ts >= ? "  # noqa: S608 - the store's own columns
               "ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?")
        for offset in (0, 7):
            with store.locked():
                one_step = store._select_page(sql, [0, 25, offset])
                by_row = store._select(sql, [0, 25, offset])
            assert one_step == by_row and len(one_step) == 25
        page = store.list_traces(limit=40)["traces"]
        assert [t["cost"] for t in page] == [e["cost"] for e in sorted(
            entries, key=lambda e: (e["timestamp"], int(e["traceId"], 16)), reverse=True)]
    finally:
        store.close()
