"""The fleet page's per-hour rollup answers exactly what a fresh computation answers, after every
kind of index change: new traces, a chapter2 reply rewritten, a reply removed, in-progress markers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from chapterx.trace.ids import iso_now
from chapterx.trace.store import TraceStore
from chapterx.trace.writer import TraceWriter
from chapterx.viewer import fleet
from tests.viewer.fleetgen import HOUR, make_fleet


def _views(rollup: fleet.Rollup, until: float) -> dict[str, Any]:
    hw = fleet.window(7 * 86400, fleet.HOUR, until)
    dw = fleet.window(7 * 86400, fleet.DAY, until)
    return {"hourly": fleet.hourly(rollup, hw), "daily": fleet.daily(rollup, dw),
            "bots": fleet.bots(rollup, hw), "one": fleet.hourly(rollup, hw, bot="aria")}


def _ext(tid: str, ts: float, ok: bool, bot: str = "wren") -> dict[str, Any]:
    from datetime import UTC, datetime

    return {"traceId": tid, "timestamp": iso_now(datetime.fromtimestamp(ts, UTC)), "channelId": "9",
            "triggeringMessageId": None, "botName": bot, "success": ok, "durationMs": 1234,
            "framework": "chapter2", "llmCallCount": 0, "toolExecutionCount": 0, "totalTokens": 0}


def test_rollup_matches_a_fresh_computation_after_changes(tmp_path: Path) -> None:
    f = make_fleet(tmp_path, time.time())
    store = TraceStore([f.logs], index_path=tmp_path / "index.sqlite", auto_refresh_interval=0.0)
    try:
        cached = fleet.Rollup(store)

        def check(label: str) -> dict[str, Any]:
            got = _views(cached, f.until)
            assert got == _views(fleet.Rollup(store), f.until), label
            return got

        first = check("initial")
        assert sum(first["hourly"]["series"][0]["activations"]) == 6  # aria over 7 days
        # a bot writes two more traces in the newest hour
        writer = TraceWriter(logs_dir=f.logs, background=False)
        for i in range(2):
            writer.write_trace({"traceId": f"{i:08x}" + "a" * 24, "timestamp": iso_now(), "channelId": "1",
                                "botId": "aria", "outcome": {"success": i == 0}, "durationMs": 50})
        got = check("appended")
        assert cached.resets == 0 and len(cached._hours) > 100  # kept its hours, recomputed one
        assert sum(s for s in got["hourly"]["series"][0]["activations"]) == 8
        # a chapter2 reply added, then rewritten (re-added under its id, in another hour, now failed)
        store.add_external([_ext("c2" + "0" * 30, f.until - 5 * HOUR, True)])
        check("external added")
        store.add_external([_ext("c2" + "0" * 30, f.until - 2 * HOUR, False)])
        got = check("external rewritten")
        assert cached.resets == 0
        wren = next(s for s in got["hourly"]["series"] if s["bot"] == "wren")
        assert wren["activations"][-6] == 0 and wren["failures"][-3] == 1
        # the reply's file went away: a plain deletion drops the cache
        store.remove_external(["c2" + "0" * 30])
        check("external removed")
        assert cached.resets == 1
        # an in-progress activation (marker) is not counted; once aborted it counts as a failure
        writer.write_marker({"traceId": "b" * 32, "timestamp": iso_now(), "channelId": "1", "botId": "aria"})
        check("marker")
        writer.write_trace({"traceId": "b" * 32, "timestamp": iso_now(), "channelId": "1", "botId": "aria",
                            "outcome": {"success": True}, "durationMs": 70})
        got = check("marker resolved")
        assert cached.resets == 1
        assert sum(got["hourly"]["series"][0]["activations"]) == 9
    finally:
        store.close()


def test_rollup_memory_is_bounded(tmp_path: Path) -> None:
    f = make_fleet(tmp_path, time.time())
    store = TraceStore([f.logs], index_path=tmp_path / "index.sqlite", auto_refresh_interval=0.0)
    try:
        rollup = fleet.Rollup(store)
        for years_back in range(1, 6):  # five 90-day windows far in the past
            w = fleet.window(90 * 86400, fleet.HOUR, f.until - years_back * 365 * 86400)
            fleet.hourly(rollup, w)
        assert len(rollup._hours) <= fleet.MAX_CACHED_HOURS
        doc = fleet.hourly(rollup, fleet.window(86400, fleet.HOUR, f.until))
        assert sum(next(s for s in doc["series"] if s["bot"] == "aria")["activations"]) == 5
    finally:
        store.close()
