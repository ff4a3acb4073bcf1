"""OpenTelemetry export of ChapterX activations, and the viewer receiving them as ChapterX traces.

The round trip is real end to end: `chapterx run` (subprocess, fake Discord, fake LLM) with the
standard `OTEL_EXPORTER_OTLP_*` variables → the official SDK's OTLP/HTTP exporter (protobuf) → the
viewer's `POST /v1/traces` → the same trace in `/api/trace/<id>` and `/api/traces`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chapterx.trace import otel_export
from chapterx.trace.collector import start_activation
from chapterx.trace.writer import TraceWriter
from tests.viewer.conftest import RunningViewer, make_settings

TOKEN = "otlp-receiver-token-5d1e"


@pytest.fixture
def otlp_viewer(tmp_path: Path) -> Iterator[RunningViewer]:
    """A viewer with an empty logs folder of its own (the central machine) and a token."""
    logs = tmp_path / "viewer-logs"
    logs.mkdir()
    v = RunningViewer(make_settings(tmp_path, [logs], auth_token=TOKEN)).start()
    yield v
    v.stop()


@pytest.fixture(autouse=True)
def _no_global_exporter() -> Iterator[None]:
    otel_export.set_exporter(None)
    yield
    otel_export.reset()


def _get(v: RunningViewer, path: str) -> Any:
    r = v.request("GET", path, {"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 200, r.body
    return r.json()


def _wait_trace(v: RunningViewer, trace_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = v.request("GET", f"/api/trace/{trace_id}", {"Authorization": f"Bearer {TOKEN}"})
        if r.status == 200:
            data: dict[str, Any] = r.json()
            return data
        time.sleep(0.2)
    raise AssertionError(f"trace {trace_id} never reached the viewer")


def _exporter_to(v: RunningViewer, monkeypatch: pytest.MonkeyPatch, instance: str) -> otel_export.OtelExporter:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", v.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{TOKEN}")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"service.instance.id={instance}")
    return otel_export.OtelExporter(schedule_delay_millis=50)


def _activation(writer: TraceWriter, *, fail: bool = False) -> dict[str, Any]:
    """One activation through the real collector: context, two round trips, a tool, a send."""
    with pytest.raises(RuntimeError) if fail else _null():
        with start_activation("710000000000000042", "720000000000000001", "aria", guild_id="700000000000000001",
                              writer=writer, channel_name="general") as c:
            c.record_activation("mention", [{"messageId": "720000000000000001", "contentPreview": "hi"}])
            c.record_context(messagesConsidered=12, messagesIncluded=9, didTruncate=False)
            c.set_phase("llm_call")
            c.record_llm_call({"model": "claude-sonnet-4-5-20250929", "messages": []}, {"content": []},
                              model="claude-sonnet-4-5-20250929",
                              usage={"input_tokens": 1200, "output_tokens": 80}, stop_reason="tool_use",
                              duration_ms=420)
            c.record_tool("toolu_1", "search", {"q": "x"}, "found", duration_ms=35)
            c.record_llm_call(None, {"content": []}, model="claude-sonnet-4-5-20250929",
                              usage={"input_tokens": 1300, "output_tokens": 40}, stop_reason="end_turn",
                              duration_ms=300)
            if fail:
                raise RuntimeError("discord send refused")
            c.set_outcome(True, "Hello!", ["730000000000000777"])
    return c.trace


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def test_off_unless_configured() -> None:
    assert otel_export.configured({}) is False
    assert otel_export.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) is True
    assert otel_export.configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x/v1/traces"}) is True
    assert otel_export.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}) is False
    assert otel_export.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}) is False


def test_span_plan_has_every_phase(tmp_path: Path) -> None:
    trace = _activation(TraceWriter(logs_dir=tmp_path, background=False))
    plan = otel_export.plan_spans(trace)
    assert plan is not None and plan.name == "chapterx.activation"
    names = [c.name for c in plan.children]
    assert names == ["chapterx.context_build", "chapterx.llm_call", "chapterx.llm_call",
                     "chapterx.tool_execution", "chapterx.discord_send"]
    assert plan.attributes["chapterx.bot"] == "aria"
    assert plan.attributes["discord.channel.id"] == "710000000000000042"
    assert plan.attributes["gen_ai.usage.input_tokens"] == 2500
    assert plan.attributes["chapterx.outcome"] == "success"
    assert plan.attributes["chapterx.cost_usd"] == pytest.approx(trace["cost"])
    llm = plan.children[1]
    assert llm.attributes["gen_ai.request.model"] == "claude-sonnet-4-5-20250929"
    assert llm.end_ns - llm.start_ns == 420_000_000
    # the tool runs after the round trip that asked for it, inside the activation
    tool = plan.children[3]
    assert tool.start_ns >= llm.end_ns and tool.end_ns - tool.start_ns == 35_000_000
    assert all(c.start_ns <= c.end_ns for c in plan.children)


def test_sdk_export_lands_as_the_same_chapterx_trace(
    tmp_path: Path, otlp_viewer: RunningViewer, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = _exporter_to(otlp_viewer, monkeypatch, "bot-host-7")
    otel_export.set_exporter(exporter)
    writer = TraceWriter(logs_dir=tmp_path / "bot-logs", background=False)
    ok = _activation(writer)
    failed = _activation(writer, fail=True)
    assert exporter.flush(10_000)
    got = _wait_trace(otlp_viewer, ok["traceId"])
    assert got["traceId"] == ok["traceId"]
    assert got["framework"] == "chapterx" and got["machine"] == "bot-host-7"
    for key in ("timestamp", "channelId", "guildId", "triggeringMessageId", "botId", "channelName", "status"):
        assert got[key] == ok[key], key
    assert got["durationMs"] == pytest.approx(ok["durationMs"], abs=1)
    assert [c["model"] for c in got["llmCalls"]] == [c["model"] for c in ok["llmCalls"]]
    assert [c["tokenUsage"] for c in got["llmCalls"]] == [c["tokenUsage"] for c in ok["llmCalls"]]
    assert [c["callId"] for c in got["llmCalls"]] == [c["callId"] for c in ok["llmCalls"]]
    assert [(t["toolName"], t["llmCallId"]) for t in got["toolExecutions"]] == \
        [(t["toolName"], t["llmCallId"]) for t in ok["toolExecutions"]]
    assert got["outcome"]["sentMessageIds"] == ["730000000000000777"]
    assert got["cost"] == pytest.approx(ok["cost"])
    assert got["contextBuild"]["messagesIncluded"] == 9
    bad = _wait_trace(otlp_viewer, failed["traceId"])
    assert bad["status"] == "failed" and bad["outcome"]["success"] is False
    assert "discord send refused" in bad["outcome"]["error"]["message"]
    listing = _get(otlp_viewer, "/api/traces?bot=aria")
    rows = {t["traceId"]: t for t in listing["traces"]}
    assert set(rows) == {ok["traceId"], failed["traceId"]}
    assert rows[ok["traceId"]]["framework"] == "chapterx" and rows[ok["traceId"]]["success"] is True
    assert rows[failed["traceId"]]["success"] is False
    # a retry of the same spans (the exporter retries on timeouts) does not duplicate the trace
    exporter.export(ok)
    assert exporter.flush(10_000)
    time.sleep(0.3)
    assert _get(otlp_viewer, "/api/traces?bot=aria")["total"] == 2
    exporter.shutdown()


def test_export_never_blocks_when_the_collector_is_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "16")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    otel_export.reset()
    writer = TraceWriter(logs_dir=tmp_path, background=False)
    t0 = time.monotonic()
    for _ in range(20):  # more spans than the queue holds: extra spans are dropped, nothing waits
        _activation(writer)
    assert time.monotonic() - t0 < 5.0
    assert otel_export.get_exporter() is not None  # configured from the environment on first use
    assert len((tmp_path / "traces" / "index.jsonl").read_text().splitlines()) == 20
    exporter = otel_export.get_exporter()
    assert exporter is not None
    exporter.shutdown()


def test_receiver_refuses_unsafe_ids_and_keeps_other_spans(otlp_viewer: RunningViewer, tmp_path: Path) -> None:
    """A ChapterX root whose ids would become a path is refused; chapter2 spans in the same request
    still take the existing path; the reply is a normal OTLP success, never a traceback."""
    now = time.time_ns()

    def span(name: str, attrs: dict[str, str], span_id: str, parent: str = "") -> dict[str, Any]:
        return {"traceId": "ab" * 16, "spanId": span_id, "parentSpanId": parent, "name": name,
                "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000),
                "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]}

    doc = {"resourceSpans": [
        {"resource": {"attributes": [{"key": "host.name", "value": {"stringValue": "h"}}]},
         "scopeSpans": [{"scope": {"name": "chapterx"}, "spans": [
             span("chapterx.activation", {"chapterx.trace_id": "../../etc", "discord.channel.id": "1"}, "01" * 8),
            {**span("chapterx.activation", {"discord.channel.id": "1"}, "03" * 8), "traceId": "cd" * 16,
             "startTimeUnixNano": str(10**30)}]}]},
        {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "ch2-wren"}}]},
         "scopeSpans": [{"scope": {"name": "chapter2"}, "spans": [
             span("DiscordInterface.handle_exceptions", {}, "02" * 8)]}]},
    ]}
    r = otlp_viewer.request("POST", "/v1/traces", {"Authorization": f"Bearer {TOKEN}",
                                                   "Content-Type": "application/json"},
                            json.dumps(doc).encode())
    assert r.status == 200
    assert not list((tmp_path / "viewer-logs").rglob("*etc*"))
    assert otlp_viewer.request("GET", "/api/trace/" + "cd" * 16, {"Authorization": f"Bearer {TOKEN}"}).status == 404
    received = list((tmp_path / "otlp-in").glob("*.jsonl"))
    assert len(received) == 1
    kept = json.loads(received[0].read_text().splitlines()[0])
    assert [ss["scope"]["name"] for rs in kept["resourceSpans"] for ss in rs["scopeSpans"]] == ["chapter2"]


def test_bot_to_viewer_round_trip_through_the_sdk(tmp_path: Path, otlp_viewer: RunningViewer) -> None:
    """`chapterx run` with OTEL_EXPORTER_OTLP_ENDPOINT set: its activation appears in the viewer as
    the same ChapterX trace its own trace file holds."""
    from chapterx.llm.fake import FakeLLMServer
    from tests.discord import test_e2e_run as e2e
    from tests.fakes.discord_server import FakeDiscord

    root = e2e._tree(tmp_path)

    async def run() -> str:
        async with FakeDiscord(token=e2e.TOKEN, bot=e2e.BOT, users=[e2e.ALICE]) as discord, \
                FakeLLMServer([{"text": "Hello over OTLP."}]) as llm:
            env = e2e._env(tmp_path, discord, llm.base_url,
                           OTEL_EXPORTER_OTLP_ENDPOINT=otlp_viewer.url,
                           OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{TOKEN}",
                           OTEL_RESOURCE_ATTRIBUTES="service.instance.id=bot-host-a",
                           OTEL_BSP_SCHEDULE_DELAY="100")
            proc = await e2e._start(["run", "--config", str(root / "config" / "bots" / "aria.yaml")], env, tmp_path)
            try:
                await asyncio.wait_for(discord.identified.wait(), 60)
                await asyncio.sleep(0.5)
                trigger = await discord.user_message(e2e.CHANNEL, e2e.ALICE["id"], f"<@{e2e.BOT['id']}> hi")
                await discord.wait_for("send", timeout=60)
            finally:
                code, stderr = await e2e._stop(proc)
            assert code == 0, stderr
            return str(trigger["id"])

    trigger_id = asyncio.run(run())
    files = list((tmp_path / "logs" / "traces").rglob("*.json"))
    assert len(files) == 1
    local = json.loads(files[0].read_text(encoding="utf-8"))
    got = _wait_trace(otlp_viewer, local["traceId"])
    assert got["triggeringMessageId"] == trigger_id == local["triggeringMessageId"]
    assert got["machine"] == "bot-host-a" and got["framework"] == "chapterx"
    for key in ("timestamp", "channelId", "botId", "status"):
        assert got[key] == local[key], key
    assert [c["model"] for c in got["llmCalls"]] == [c["model"] for c in local["llmCalls"]]
    assert [c["tokenUsage"] for c in got["llmCalls"]] == [c["tokenUsage"] for c in local["llmCalls"]]
    assert got["outcome"]["sentMessageIds"] == local["outcome"]["sentMessageIds"]
    assert got["outcome"]["success"] is True


def test_a_trace_the_viewer_cannot_store_is_not_acknowledged(tmp_path: Path) -> None:
    """A write failure answers 503 (OTLP senders retry it); the retry lands once storage is back."""
    logs = tmp_path / "viewer-logs"
    logs.mkdir()
    (logs / "traces").write_text("not a folder")  # trace files cannot be created under it
    v = RunningViewer(make_settings(tmp_path, [logs], auth_token=TOKEN)).start()
    try:
        now = time.time_ns()
        attrs = {"chapterx.trace_id": "ef" * 16, "discord.channel.id": "710000000000000042", "chapterx.bot": "aria",
                 "chapterx.outcome": "success"}
        doc = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "chapterx"}, "spans": [
            {"traceId": "ef" * 16, "spanId": "0a" * 8, "name": "chapterx.activation",
             "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 5_000_000),
             "attributes": [{"key": k, "value": {"stringValue": val}} for k, val in attrs.items()]}]}]}]}
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        r = v.request("POST", "/v1/traces", headers, json.dumps(doc).encode())
        assert r.status == 503 and "Traceback" not in r.body.decode()
        (logs / "traces").unlink()
        r = v.request("POST", "/v1/traces", headers, json.dumps(doc).encode())
        assert r.status == 200
        got = _wait_trace(v, "ef" * 16)
        assert got["botId"] == "aria" and got["durationMs"] == 5
    finally:
        v.stop()
