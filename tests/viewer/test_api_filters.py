"""Our additions to /api/traces and /api/search: time range, text, framework, search paging, retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.viewer.conftest import RunningViewer, make_settings
from tests.viewer.treegen import make_trace, write_tree


def _all(viewer: Any) -> list[dict[str, Any]]:
    return viewer.request("GET", "/api/traces?limit=200").json()["traces"]


def test_time_range(viewer: Any) -> None:
    everything = _all(viewer)
    cut = "2026-06-11T00:00:00.000Z"
    end = "2026-06-12T00:00:00.000Z"
    got = viewer.request("GET", f"/api/traces?limit=200&since={cut}&until={end}").json()
    expected = [t["traceId"] for t in everything if cut <= t["timestamp"] <= end]
    assert expected and [t["traceId"] for t in got["traces"]] == expected
    assert got["total"] == len(expected)
    ms = int(datetime(2026, 6, 11, tzinfo=UTC).timestamp() * 1000)
    by_ms = viewer.request("GET", f"/api/traces?limit=200&since={ms}").json()
    assert by_ms["total"] == len([t for t in everything if t["timestamp"] >= cut])
    assert viewer.request("GET", "/api/traces?since=yesterday-ish").status == 400


def test_text_filter(viewer: Any) -> None:
    everything = _all(viewer)
    word = "rover"
    got = viewer.request("GET", f"/api/traces?limit=200&text={word}").json()["traces"]
    expected = [
        t["traceId"]
        for t in everything
        if word in (t.get("triggerPreview") or "").lower() or word in (t.get("responsePreview") or "").lower()
    ]
    assert expected and sorted(t["traceId"] for t in got) == sorted(expected)
    # an exact trace id works too
    assert [t["traceId"] for t in viewer.request("GET", "/api/traces?text=b1155862").json()["traces"]] == [
        "b1155862"
    ]


def test_search_paging(viewer: Any) -> None:
    q = "/api/search?q=1513498958717124635"
    full = viewer.request("GET", q).json()
    assert full["total"] == len(full["results"]) > 3
    page = viewer.request("GET", q + "&limit=2&offset=1").json()
    assert page["results"] == full["results"][1:3] and page["total"] == full["total"]
    assert viewer.request("GET", "/api/search").status == 400
    assert viewer.request("GET", q + "&limit=x").status == 400


@pytest.fixture(scope="module")
def recent_viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningViewer]:
    tmp = tmp_path_factory.mktemp("ret")
    logs = tmp / "logs"
    now = datetime.now(UTC)
    write_tree(
        logs,
        [
            (make_trace("0000aaa1", now - timedelta(days=1), bot="R", text="fresh"), "R"),
            (make_trace("0000aaa2", now - timedelta(days=10), bot="R", text="older"), "R"),
            (make_trace("0000aaa3", now - timedelta(days=40), bot="R", text="ancient"), "R"),
        ],
    )
    v = RunningViewer(make_settings(tmp, [logs], retention_days=30)).start()
    yield v
    v.stop()


def test_retention_and_relative_since(recent_viewer: RunningViewer) -> None:
    ids = [t["traceId"] for t in recent_viewer.request("GET", "/api/traces").json()["traces"]]
    assert ids == ["0000aaa1", "0000aaa2"]  # 40 days old is past INDEX_RETENTION_DAYS=30
    week = [t["traceId"] for t in recent_viewer.request("GET", "/api/traces?since=7d").json()["traces"]]
    assert week == ["0000aaa1"]
    s = recent_viewer.request("GET", "/api/search?q=1500000000000000001").json()
    assert sorted(r["traceId"] for r in s["results"]) == ["0000aaa1", "0000aaa2"]
    # the file is still readable directly: retention hides, never deletes
    assert recent_viewer.request("GET", "/api/trace/0000aaa3").status == 200
    assert Path(recent_viewer.settings.logs_dirs[0] / "traces" / "R").is_dir()
