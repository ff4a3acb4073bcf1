"""A chapter2 OTLP file deleted from a CHAPTER2_LOGS_DIRS folder: its replies leave /api/traces and
/api/search after the next refresh, a reindex does not bring them back, and a viewer started after
the deletion drops what an earlier run had indexed."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from chapterx.trace.store import TraceStore
from chapterx_compat.chapter2 import otlp
from tests.viewer.conftest import OTLP_DIR, RunningViewer, make_settings

QUILL = "ch2-quill-generate-response"
WREN = "ch2-wren-discord"


def _replies(name: str) -> list[otlp.Reply]:
    return otlp.group_replies(otlp.read_file(OTLP_DIR / f"{name}.jsonl"))


def _chapter2_ids(v: RunningViewer) -> set[str]:
    body = v.request("GET", "/api/traces?framework=chapter2&limit=200").json()
    return {t["traceId"] for t in body["traces"]}


def _wait_for(check: Any, timeout: float = 15.0) -> None:
    """The viewer re-reads chapter2 folders at most every couple of seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.3)


def _search_ids(v: RunningViewer, message_id: str) -> set[str]:
    return {r["traceId"] for r in v.request("GET", f"/api/search?q={quote(message_id)}").json()["results"]}


@pytest.fixture()
def setup(tmp_path: Path, sample_logs: Path) -> tuple[Path, Path, Any]:
    if not OTLP_DIR.is_dir():
        pytest.skip("golden chapter2 otlp files not present")
    ch2 = tmp_path / "ems" / "logs"
    ch2.mkdir(parents=True)
    for name in (QUILL, WREN):
        shutil.copy(OTLP_DIR / f"{name}.jsonl", ch2 / f"{name}.jsonl")
    return tmp_path, ch2, make_settings(tmp_path, [sample_logs], chapter2_dirs=[ch2])


def test_deleted_otlp_file_leaves_list_search_and_stays_gone(setup: tuple[Path, Path, Any],
                                                            sample_logs: Path) -> None:
    tmp, ch2, settings = setup
    quill = {r.trace_id for r in _replies(QUILL)}
    wren = {r.trace_id for r in _replies(WREN)}
    assert quill and wren and not quill & wren
    # a message id of a quill reply, for the search check
    quill_msgs = [mid for r in _replies(QUILL) for mid in [otlp.reply_entry(r).get("triggeringMessageId")]
                  if mid]
    wren_msgs = [mid for r in _replies(WREN) for mid in [otlp.reply_entry(r).get("triggeringMessageId")] if mid]
    quill_text: str = next(str(otlp.reply_entry(r)["triggerPreview"]) for r in _replies(QUILL)
                           if otlp.reply_entry(r).get("triggerPreview"))
    v = RunningViewer(settings).start()
    try:
        assert quill | wren <= _chapter2_ids(v)
        if quill_msgs:
            assert _search_ids(v, quill_msgs[0]) & quill
        texted = v.request("GET", "/api/traces?text=" + quote(quill_text[:20])).json()
        assert {t["traceId"] for t in texted["traces"]} & quill
        cx_total = v.request("GET", "/api/traces?framework=chapterx&limit=1").json()["total"]

        (ch2 / f"{QUILL}.jsonl").unlink()
        _wait_for(lambda: not _chapter2_ids(v) & quill)
        assert wren <= _chapter2_ids(v)
        for mid in quill_msgs:
            assert not _search_ids(v, mid) & quill
        if wren_msgs:
            assert _search_ids(v, wren_msgs[0]) & wren
        texted = v.request("GET", "/api/traces?text=" + quote(quill_text[:20])).json()
        assert not {t["traceId"] for t in texted["traces"]} & quill
        for tid in quill:
            assert v.request("GET", f"/api/trace/{tid}").status == 404

        # `chapterx traces reindex` on the same index (another process in real life)
        other = TraceStore([sample_logs], index_path=settings.index_path)
        try:
            other.reindex()
            assert not other.external_ids() & quill
        finally:
            other.close()
        assert not _chapter2_ids(v) & quill and wren <= _chapter2_ids(v)
        assert v.request("GET", "/api/traces?framework=chapterx&limit=1").json()["total"] == cx_total
    finally:
        v.stop()


def test_file_deleted_while_viewer_stopped(setup: tuple[Path, Path, Any]) -> None:
    tmp, ch2, settings = setup
    quill = {r.trace_id for r in _replies(QUILL)}
    wren = {r.trace_id for r in _replies(WREN)}
    v = RunningViewer(settings).start()
    try:
        assert quill | wren <= _chapter2_ids(v)
    finally:
        v.stop()
    (ch2 / f"{QUILL}.jsonl").unlink()
    # the persisted index still holds the quill rows until a viewer sees the folder again
    store = TraceStore(settings.logs_dirs, index_path=settings.index_path)
    try:
        assert quill <= store.external_ids()
    finally:
        store.close()
    v = RunningViewer(settings).start()
    try:
        ids = _chapter2_ids(v)
        assert not ids & quill and wren <= ids
    finally:
        v.stop()
