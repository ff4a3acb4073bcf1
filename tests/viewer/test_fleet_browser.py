"""The fleet page in headless Chromium: it renders under the strict CSP, every chart has one point
(or bar) per bucket and series, its numbers are the API's, a failure link opens the trace, and the
retention hint shows on the list. Screenshots go to the test's tmp dir (and to
$CHAPTERX_SCREENSHOT_DIR when set, for a human to look at)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chapterx.trace.ids import iso_now
from chapterx.trace.writer import TraceWriter
from tests.viewer.conftest import CHROMIUM, RunningViewer, checked_page, make_settings
from tests.viewer.fleetgen import Fleet, make_fleet

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="/usr/bin/chromium not installed"),
]


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    with checked_page(browser, height=1400) as pg:
        yield pg


@pytest.fixture(scope="module")
def fleet_viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningViewer, Fleet]]:
    tmp = tmp_path_factory.mktemp("fleet-ui")
    fleet = make_fleet(tmp, time.time())
    v = RunningViewer(make_settings(tmp, [fleet.logs], chapter2_dirs=[fleet.chapter2])).start()
    yield v, fleet
    v.stop()


def _shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    out = os.environ.get("CHAPTERX_SCREENSHOT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out) / path.name)
    return path


def _counts(page: Any, chart: str, mark: str) -> dict[str, int]:
    """Marks (circle.pt / rect.cbar) per series of one chart, by series label."""
    counts: dict[str, int] = page.eval_on_selector_all(
        f"[data-testid={chart}] g.series",
        f"gs => Object.fromEntries(gs.map(g => [g.dataset.series, g.querySelectorAll('{mark}').length]))")
    return counts


def test_fleet_page_renders_charts_with_one_point_per_bucket(
    page: Any, fleet_viewer: tuple[RunningViewer, Fleet], tmp_path: Path
) -> None:
    v, fleet = fleet_viewer
    until = int(fleet.until * 1000)
    page.goto(f"{v.url}/fleet?until={until}")
    page.wait_for_selector("[data-testid=chart-cost] svg")
    rows = page.locator("[data-testid=fleet-bot-row]")
    assert rows.count() == 3
    assert {rows.nth(i).get_attribute("data-bot") for i in range(3)} == {"aria", "beacon", "wren"}
    assert "chapter2" in page.locator("[data-testid=fleet-bot-row][data-bot=wren]").inner_text()
    # activations: zeros are points too, so every series has exactly 24 (one per hour)
    acts = _counts(page, "chart-activations", "circle.pt")
    assert acts == {"aria (ChapterX)": 24, "beacon (ChapterX)": 24, "wren (chapter2)": 24}
    # the plotted values are the API's numbers
    api = v.request("GET", f"/api/fleet/hourly?range=24h&until={until}").json()
    plotted = page.eval_on_selector_all(
        "[data-testid=chart-activations] g.series[data-series='aria (ChapterX)'] circle.pt",
        "cs => cs.map(c => Number(c.dataset.v))")
    assert plotted == next(s for s in api["series"] if s["bot"] == "aria")["activations"]
    # failure rate and durations: only hours with activations have a point
    rate = _counts(page, "chart-failure-rate", "circle.pt")
    assert rate == {"aria (ChapterX)": 3, "beacon (ChapterX)": 1, "wren (chapter2)": 1}
    dur = _counts(page, "chart-duration", "circle.pt")
    assert dur["aria (ChapterX) p95"] == 3 and dur["aria (ChapterX) p50"] == 3
    # daily bars over 24h: one day per series
    assert set(_counts(page, "chart-tokens", "rect.cbar").values()) == {1}
    assert page.locator("[data-testid=fleet-failure]").count() == len(fleet.failures)
    # cost: wren's spans report none, so its cost is unknown ("—"), never "$0"; a known one is shown
    cost = {b: page.locator(f"[data-testid=fleet-bot-row][data-bot={b}] [data-testid=fleet-cost]").inner_text()
            for b in ("aria", "beacon", "wren")}
    assert cost == {"aria": "$0.06", "beacon": "$0.0060", "wren": "—"}  # aria: $0.055 in 24 h
    unknown = page.locator("[data-testid=chart-cost] g.series[data-series='wren (chapter2)'] rect.cbar.unknown")
    assert unknown.count() == 1 and unknown.first.locator("title").text_content().endswith(": —")
    assert page.locator("[data-testid=chart-cost] rect.cbar.unknown").count() == 1
    _shot(page, tmp_path, "fleet-24h")


def test_range_switch_redraws_and_failure_link_opens_the_trace(
    page: Any, fleet_viewer: tuple[RunningViewer, Fleet], tmp_path: Path
) -> None:
    v, fleet = fleet_viewer
    page.goto(f"{v.url}/fleet?until={int(fleet.until * 1000)}")
    page.wait_for_selector("[data-testid=chart-activations] svg")
    page.select_option("#fleet-range", "7d")
    page.wait_for_url(re.compile(r"range=7d"))
    page.wait_for_function("() => document.querySelector('[data-testid=chart-activations]').dataset.buckets === '168'")
    acts = _counts(page, "chart-activations", "circle.pt")
    assert set(acts.values()) == {168}
    assert set(_counts(page, "chart-cost", "rect.cbar").values()) == {7}
    assert page.locator("[data-testid=fleet-bot-row][data-bot=aria] td").nth(2).inner_text() == "6"
    _shot(page, tmp_path, "fleet-7d")
    # filter to one bot through the table, then open its latest failure
    page.click("[data-testid=fleet-bot-row][data-bot=aria] a")
    page.wait_for_url(re.compile(r"bot=aria"))
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=chart-activations] g.series').length === 1")
    link = page.locator("[data-testid=failure-link]").first
    trace_id = link.get_attribute("data-trace-id")
    assert trace_id in fleet.failures
    link.click()
    page.wait_for_url(re.compile(rf"/trace/{trace_id}$"))
    page.wait_for_selector("main >> text=upstream overloaded")
    assert trace_id in page.locator("main").inner_text()
    _shot(page, tmp_path, "fleet-failure-trace")
    page.go_back()
    page.wait_for_selector("[data-testid=chart-activations] svg")
    assert "bot=aria" in page.url


def test_chapter2_failure_link_opens_its_trace(page: Any, fleet_viewer: tuple[RunningViewer, Fleet]) -> None:
    v, fleet = fleet_viewer
    page.goto(f"{v.url}/fleet?until={int(fleet.until * 1000)}&bot=wren")
    link = page.locator("[data-testid=failure-link]").first
    link.wait_for()
    trace_id = link.get_attribute("data-trace-id")
    link.click()
    page.wait_for_url(re.compile(rf"/trace/{trace_id}$"))
    page.wait_for_function("() => document.querySelector('main').textContent.includes('wren failed')")
    assert "chapter2" in page.locator("main").inner_text()


def test_list_shows_the_retention_hint(page: Any, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    writer = TraceWriter(logs_dir=logs, background=False)
    now = datetime.now(UTC)
    for i, age in enumerate((timedelta(hours=2), timedelta(days=10), timedelta(days=11))):
        writer.write_trace({"traceId": f"{i:08x}" + "0" * 24, "timestamp": iso_now(now - age), "channelId": "1",
                            "botId": "aria", "outcome": {"success": True}, "durationMs": 5})
    v = RunningViewer(make_settings(tmp_path, [logs], retention_days=7)).start()
    try:
        page.goto(v.url + "/")
        hint = page.locator("[data-testid=retention-hint]")
        hint.wait_for()
        assert hint.inner_text() == "2 older traces hidden by retention (INDEX_RETENTION_DAYS=7)"
        assert page.locator("[data-testid=trace-card]").count() == 1
    finally:
        v.stop()


def test_partly_priced_cost_says_how_many_activations_it_covers(page: Any, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    writer = TraceWriter(logs_dir=logs, background=False)
    now = datetime.now(UTC)
    for i, cost in enumerate((0.5, None, 0.25, None)):  # 2 of 4 activations report a cost
        trace: dict[str, Any] = {"traceId": f"{i:08x}" + "c" * 24, "timestamp": iso_now(now - timedelta(minutes=5 + i)),
                                 "channelId": "1", "botId": "kite", "outcome": {"success": True}, "durationMs": 5}
        if cost is not None:
            trace["cost"] = cost
        writer.write_trace(trace)
    v = RunningViewer(make_settings(tmp_path, [logs])).start()
    try:
        page.goto(v.url + "/fleet")
        cell = page.locator("[data-testid=fleet-bot-row][data-bot=kite] [data-testid=fleet-cost]")
        cell.wait_for()
        assert cell.inner_text() == "$0.75 (2 of 4 priced)"
        assert cell.get_attribute("title") == "Cost of the 2 of 4 activations that reported one"
    finally:
        v.stop()


def test_a_trace_received_over_otlp_opens_in_the_ui(
    page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real SDK exporter -> viewer receiver -> the trace page shows it, with its machine."""
    from chapterx.trace import otel_export
    from tests.viewer.test_fleet_otel import TOKEN, _activation, _exporter_to

    logs = tmp_path / "viewer-logs"
    logs.mkdir()
    v = RunningViewer(make_settings(tmp_path, [logs], auth_token=TOKEN)).start()
    otel_export.set_exporter(None)  # the collector's own hook stays off: this test exports explicitly
    try:
        exporter = _exporter_to(v, monkeypatch, "bot-host-9")
        trace = _activation(TraceWriter(logs_dir=tmp_path / "bot-logs", background=False))
        assert exporter.export(trace) and exporter.flush(10_000)
        exporter.shutdown()
        page.goto(v.url + "/")
        page.fill("#login-token", TOKEN)
        page.click("#login-btn")
        card = page.locator(f"[data-testid=trace-card][data-trace-id='{trace['traceId']}']")
        card.wait_for()
        assert "aria" in card.inner_text() and "ChapterX" in card.inner_text()
        card.locator("[data-testid=trace-link]").click()
        page.wait_for_url(re.compile(rf"/trace/{trace['traceId']}$"))
        assert page.locator("[data-testid=machine]").inner_text().endswith("bot-host-9")
        assert "claude-sonnet-4-5-20250929" in page.locator("main").inner_text()
    finally:
        otel_export.reset()
        v.stop()
