"""`/api/fleet/*` over a real viewer and store, on a mixed fleet with known numbers (fleetgen)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chapterx.trace.ids import iso_now
from chapterx.trace.writer import TraceWriter
from tests.viewer.conftest import RunningViewer, make_settings
from tests.viewer.fleetgen import HOUR, Fleet, make_fleet


@pytest.fixture(scope="module")
def fleet_viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningViewer, Fleet]]:
    tmp = tmp_path_factory.mktemp("fleet-api")
    fleet = make_fleet(tmp, time.time())
    v = RunningViewer(make_settings(tmp, [fleet.logs], chapter2_dirs=[fleet.chapter2])).start()
    yield v, fleet
    v.stop()


def _get(v: RunningViewer, path: str) -> Any:
    r = v.request("GET", path)
    assert r.status == 200, r.body
    return r.json()


def _series(doc: dict[str, Any], bot: str) -> dict[str, Any]:
    return next(s for s in doc["series"] if s["bot"] == bot)


def test_hourly_grid_and_numbers(fleet_viewer: tuple[RunningViewer, Fleet]) -> None:
    v, fleet = fleet_viewer
    until_ms = int(fleet.until * 1000)
    doc = _get(v, f"/api/fleet/hourly?range=24h&until={until_ms}")
    assert doc["bucketSeconds"] == HOUR and len(doc["buckets"]) == 24
    assert doc["buckets"][-1] <= until_ms < doc["buckets"][-1] + HOUR * 1000
    assert {(s["bot"], s["framework"]) for s in doc["series"]} == {
        ("aria", "chapterx"), ("beacon", "chapterx"), ("wren", "chapter2")}
    aria = _series(doc, "aria")
    assert all(len(aria[k]) == 24 for k in ("activations", "failures", "failureRate", "p50Ms", "p95Ms"))
    # hours ago -> bucket index from the end (the last bucket holds `until`)
    assert aria["activations"][23] == 2 and aria["activations"][22] == 2 and aria["activations"][18] == 1
    assert sum(aria["activations"]) == 5  # the one 30 h ago is outside the range
    assert aria["failures"][22] == 1 and aria["failureRate"][22] == 0.5
    assert aria["p50Ms"][22] == 900 and aria["p95Ms"][22] == 3000
    assert aria["failureRate"][0] is None and aria["p50Ms"][0] is None  # no data is not "0 ms"
    beacon = _series(doc, "beacon")
    assert beacon["activations"][21] == 3 and beacon["failures"][21] == 1
    assert beacon["p50Ms"][21] == 500
    wren = _series(doc, "wren")
    assert wren["framework"] == "chapter2" and wren["activations"][20] == 2 and wren["failures"][20] == 1
    only = _get(v, f"/api/fleet/hourly?range=24h&until={until_ms}&framework=chapter2")
    assert [s["bot"] for s in only["series"]] == ["wren"]
    one = _get(v, f"/api/fleet/hourly?range=24h&until={until_ms}&bot=beacon")
    assert [s["bot"] for s in one["series"]] == ["beacon"]


def test_daily_tokens_and_cost(fleet_viewer: tuple[RunningViewer, Fleet]) -> None:
    v, fleet = fleet_viewer
    doc = _get(v, f"/api/fleet/daily?range=7d&until={int(fleet.until * 1000)}")
    assert doc["bucketSeconds"] == 86400 and len(doc["buckets"]) == 7
    assert all(b % 86_400_000 == 0 for b in doc["buckets"])  # whole UTC days
    aria = _series(doc, "aria")
    assert sum(aria["activations"]) == 6
    assert sum(aria["inputTokens"]) == 9500 and sum(aria["outputTokens"]) == 900
    assert sum(aria["costUsd"]) == pytest.approx(0.095)
    assert sum(aria["pricedActivations"]) == 6
    # wren (chapter2 spans) reports no cost: its day is unknown (null), not $0; idle days cost 0
    wren = _series(doc, "wren")
    day = next(i for i, n in enumerate(wren["activations"]) if n)
    assert wren["costUsd"][day] is None and wren["pricedActivations"][day] == 0
    assert all(c == 0.0 for i, c in enumerate(wren["costUsd"]) if i != day)


def test_bots_and_failures(fleet_viewer: tuple[RunningViewer, Fleet]) -> None:
    v, fleet = fleet_viewer
    until_ms = int(fleet.until * 1000)
    bots = {(b["bot"], b["framework"]): b for b in _get(v, f"/api/fleet/bots?range=24h&until={until_ms}")["bots"]}
    assert bots[("aria", "chapterx")]["activations"] == 5 and bots[("aria", "chapterx")]["failures"] == 1
    assert bots[("aria", "chapterx")]["failureRate"] == 0.2
    assert bots[("beacon", "chapterx")]["costUsd"] == pytest.approx(0.006)
    assert bots[("beacon", "chapterx")]["pricedActivations"] == 3  # one of them cost a known $0
    assert (bots[("wren", "chapter2")]["costUsd"], bots[("wren", "chapter2")]["pricedActivations"]) == (None, 0)
    assert bots[("wren", "chapter2")]["failures"] == 1
    fails = _get(v, f"/api/fleet/failures?range=24h&until={until_ms}")["failures"]
    assert [f["traceId"] for f in fails] == fleet.failures
    assert fails[0]["timestamp"] > fails[-1]["timestamp"]
    aria_fail = next(f for f in fails if f["bot"] == "aria")
    assert "upstream overloaded" in (aria_fail["error"] or "")
    assert _get(v, f"/api/trace/{aria_fail['traceId']}")["traceId"] == aria_fail["traceId"]
    limited = _get(v, f"/api/fleet/failures?range=24h&until={until_ms}&limit=1&bot=beacon")["failures"]
    assert len(limited) == 1 and limited[0]["bot"] == "beacon"


@pytest.mark.parametrize("path, status", [
    ("/api/fleet/hourly?range=0h", 400),
    ("/api/fleet/hourly?range=1y", 400),
    ("/api/fleet/hourly?range=365d", 400),
    ("/api/fleet/daily?framework=x", 400),
    ("/api/fleet/bots?until=yesterday-ish", 400),
    ("/api/fleet/failures?limit=-1", 400),
    ("/api/fleet/nope", 404),
    ("/api/fleet", 404),
    ("/api/fleet/hourly/extra", 404),
])
def test_bad_input_is_a_4xx(fleet_viewer: tuple[RunningViewer, Fleet], path: str, status: int) -> None:
    v, _fleet = fleet_viewer
    r = v.request("GET", path)
    assert r.status == status
    assert "error" in r.json() and "Traceback" not in r.body.decode()


def test_fleet_needs_auth_and_the_page_is_served(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    v = RunningViewer(make_settings(tmp_path, [logs], auth_token="fleet-token-1")).start()
    try:
        assert v.request("GET", "/api/fleet/hourly").status == 401
        ok = v.request("GET", "/api/fleet/hourly", {"Authorization": "Bearer fleet-token-1"})
        assert ok.status == 200 and ok.json()["series"] == [] and len(ok.json()["buckets"]) == 24
        page = v.request("GET", "/fleet")
        assert page.status == 200 and b"/static/app.js" in page.body
        assert "script-src 'self'" in page.headers["content-security-policy"]
    finally:
        v.stop()


def test_retention_hint_counts_hidden_traces(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    writer = TraceWriter(logs_dir=logs, background=False)
    now = datetime.now(UTC)
    for i, age in enumerate((timedelta(hours=1), timedelta(days=3), timedelta(days=4), timedelta(days=40))):
        writer.write_trace({"traceId": f"{i:08x}" + "0" * 24, "timestamp": iso_now(now - age), "channelId": "1",
                            "botId": "aria" if i < 3 else "old", "outcome": {"success": True}, "durationMs": 5})
    v = RunningViewer(make_settings(tmp_path, [logs], retention_days=2)).start()
    try:
        doc = _get(v, "/api/traces")
        assert doc["total"] == 1 and doc["hiddenByRetention"] == 3 and doc["retentionDays"] == 2
        assert _get(v, "/api/traces?bot=aria")["hiddenByRetention"] == 2
        # a filter that starts inside the window hides nothing, so no hint
        assert "hiddenByRetention" not in _get(v, "/api/traces?since=1h")
    finally:
        v.stop()
    json.dumps(doc)


def test_the_rollup_is_warm_before_the_first_fleet_view(tmp_path: Path) -> None:
    """After start the viewer fills the last 30 days of hours in small steps by itself."""
    from chapterx.viewer.app import FLEET_WARM_DAYS, VIEWER_KEY

    fleet = make_fleet(tmp_path, time.time())
    v = RunningViewer(make_settings(tmp_path, [fleet.logs], chapter2_dirs=[fleet.chapter2])).start()
    try:
        viewer = v._runner.app[VIEWER_KEY]
        deadline = time.monotonic() + 30
        while len(viewer.fleet_rollup._hours) < FLEET_WARM_DAYS * 24 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(viewer.fleet_rollup._hours) >= FLEET_WARM_DAYS * 24
        assert viewer.warm_task is not None and viewer.warm_task.done()
        # and what it computed is what a view shows
        doc = _get(v, f"/api/fleet/hourly?range=24h&until={int(fleet.until * 1000)}")
        assert sum(_series(doc, "aria")["activations"]) == 5
    finally:
        v.stop()
