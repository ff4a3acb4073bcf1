"""Collector and writer: what lands on disk for an activation."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chapterx.paths import SCHEMAS_DIR
from chapterx.trace.collector import current, install_log_handler, start_activation
from chapterx.trace.ids import TRACE_FILE_RE, new_trace_id
from tests.trace.helpers import new_writer, write_activation


def _schema(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS_DIR / name).read_text()))


def _only_trace(logs: Path) -> dict[str, Any]:
    files = [p for p in (logs / "traces").rglob("*.json") if ".inprogress" not in p.parts]
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_ids_are_long_unique_and_time_sortable() -> None:
    ids = [new_trace_id() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    early, late = new_trace_id(now_ms=1_700_000_000_000), new_trace_id(now_ms=1_800_000_000_000)
    assert early < late


def test_activation_writes_schema_valid_trace_and_index_line(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    w = new_writer(logs, background=True)
    tid = write_activation(w, context=["4999", None, "5000"], sent=["5001"], calls=2)
    w.flush()
    trace = _only_trace(logs)
    _schema("trace.schema.json").validate(trace)
    assert trace["traceId"] == tid and len(tid) > 8
    path = next((logs / "traces" / "TestBot").glob("*.json"))
    assert TRACE_FILE_RE.match(path.name) and tid in path.name
    lines = (logs / "traces" / "index.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    _schema("trace-index-line.schema.json").validate(entry)
    assert entry["contextMessageIds"] == ["4999", "5000"] and entry["contextPositions"] == [0, 2]
    assert entry["filename"] == path.name and entry["totalTokens"] == 220
    # one llmCalls entry per round trip, bodies named by trace id + round trip number
    calls = trace["llmCalls"]
    assert [c["callId"] for c in calls] == [f"{tid}-llm-0", f"{tid}-llm-1"]
    for n, c in enumerate(calls):
        assert c["requestBodyRefs"] == [f"request-{tid}-{n}.json"]
        assert (logs / "llm-requests" / c["requestBodyRef"]).is_file()
        assert (logs / "llm-responses" / c["responseBodyRef"]).is_file()
        assert c["cost"] == pytest.approx((100 * 3.0 + 10 * 15.0) / 1e6)
    assert trace["cost"] == pytest.approx(2 * (100 * 3.0 + 10 * 15.0) / 1e6)
    assert not list((logs / "traces" / "TestBot" / ".inprogress").glob("*.json"))


def test_tools_link_to_their_round_trip_and_errors_keep_their_phase(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    w = new_writer(logs, background=False)
    with pytest.raises(RuntimeError), start_activation("1", "2", "Bot", writer=w) as c:
        assert current() is c
        c.record_llm_call({"messages": []}, {"content": [{"type": "tool_use", "id": "t", "name": "dice",
                                                          "input": {}}]},
                          model="claude-haiku-4-5", usage={"input_tokens": 1, "output_tokens": 1},
                          stop_reason="tool_use", duration_ms=1)
        c.record_tool("t", "dice", {"sides": 6}, "x" * 1500, duration_ms=2)
        c.record_llm_call({"messages": []}, {"content": [{"type": "text", "text": "ok"}]},
                          model="claude-haiku-4-5", usage={"input_tokens": 1, "output_tokens": 1},
                          stop_reason="end_turn", duration_ms=1)
        c.set_phase("discord_send")
        raise RuntimeError("Missing Permissions")
    assert current() is None
    trace = _only_trace(logs)
    tool = trace["toolExecutions"][0]
    assert tool["llmCallId"] == trace["llmCalls"][0]["callId"]
    assert tool["outputTruncated"] and tool["fullOutputLength"] == 1500 and len(tool["output"]) == 1003
    assert trace["llmCalls"][0]["response"]["toolUseCount"] == 1
    assert trace["outcome"]["success"] is False
    assert trace["outcome"]["error"]["phase"] == "discord_send"
    assert "Missing Permissions" in trace["outcome"]["error"]["message"]
    assert trace["status"] == "failed"
    assert any(e["level"] == "error" and "Activation failed" in e["message"] for e in trace["logs"])


def test_failed_call_is_marked_not_faked(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    w = new_writer(logs, background=False)
    with start_activation("1", "2", "Bot", writer=w) as c:
        c.record_llm_call({"messages": []}, None, model="claude-sonnet-4-5", usage=None, stop_reason=None,
                          duration_ms=3, error=RuntimeError("529 overloaded"))
        c.set_status("deferred")
    trace = _only_trace(logs)
    call = trace["llmCalls"][0]
    assert call["response"]["stopReason"] == "error" and "529" in call["error"]["message"]
    assert "responseBodyRef" not in call and call["requestBodyRefs"]
    assert trace["status"] == "deferred" and "outcome" not in trace


def test_log_capture_is_capped_and_survives_bad_data(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    w = new_writer(logs, background=False)
    install_log_handler()
    logger = logging.getLogger("some.plugin")
    logger.setLevel(logging.DEBUG)
    circular: dict[str, Any] = {}
    circular["self"] = circular
    with start_activation("1", "2", "Bot", writer=w) as c:
        c.max_log_entries = 50
        logger.debug("circular", extra={"payload": circular})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("with exception")
        for i in range(100):
            logger.info("line %d", i)
    trace = _only_trace(logs)
    assert len(trace["logs"]) == 50
    assert trace["logCapture"]["dropped"] == 52
    first = trace["logs"][0]
    assert first["level"] == "debug" and first["data"]["payload"]["self"] == "[CIRCULAR]"
    exc = trace["logs"][1]
    assert exc["level"] == "error" and exc["data"]["error"]["type"] == "ValueError"
    assert "boom" in exc["data"]["error"]["stack"]


def test_base64_images_are_replaced_by_a_size_marker(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    w = new_writer(logs, background=False)
    b64 = "iVBORw0KGgo" + "A" * 4000
    with start_activation("1", "2", "Bot", writer=w) as c:
        c.record_llm_call(
            {"system": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}}],
             "messages": [{"role": "user", "content": [
                 {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}},
                 {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}}]}],
             "contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": b64}}]}]},
            {"content": [{"type": "text", "text": "a cat"}]}, model="m", usage=None, stop_reason=None,
            duration_ms=1)
    body = next((logs / "llm-requests").glob("*.json")).read_text()
    assert b64[:200] not in body
    assert body.count(f"[BASE64_DATA_{len(b64)}_BYTES]") == 4


async def test_concurrent_activations_in_one_loop_keep_their_own_trace(tmp_path: Path) -> None:
    import asyncio

    logs = tmp_path / "logs"
    w = new_writer(logs, background=True)
    install_log_handler()
    logger = logging.getLogger("chapterx.agent.concurrent")
    logger.setLevel(logging.INFO)

    async def activation(name: str, delay: float) -> str:
        with start_activation("1", name, "Bot", writer=w) as c:
            for i in range(3):
                await asyncio.sleep(delay)
                logger.info("step %s of %s", i, name)
                await asyncio.create_task(asyncio.sleep(0))  # child tasks inherit the context
            c.set_outcome(True, name, [])
            return c.trace_id

    ids = await asyncio.gather(activation("100", 0.003), activation("200", 0.002))
    w.flush()
    for tid, name in zip(ids, ("100", "200"), strict=True):
        trace = json.loads(next((logs / "traces" / "Bot").glob(f"*{tid}*.json")).read_text())
        assert [e["message"] for e in trace["logs"]] == [f"step {i} of {name}" for i in range(3)]
        assert trace["outcome"]["responseText"] == name


def test_secret_key_classification() -> None:
    from chapterx.trace.redact import Redactor, key_is_secret, secrets_from_env

    secret = ["discord_token", "token", "SEARCH_API_KEY", "apiKey", "api_key", "client_secret", "password",
              "AWS_SECRET_ACCESS_KEY", "Authorization", "x-api-key", "AUTH_TOKEN", "accessToken"]
    plain = ["max_tokens", "tokenUsage", "inputTokens", "cache_key", "key", "tokenEstimate", "stop_sequences",
             "keyboard", "monkey", "tokens", "secretary_name"]
    assert [k for k in secret if not key_is_secret(k)] == []
    assert [k for k in plain if key_is_secret(k)] == []
    env = {"OPENAI_API_KEY": "sk-abcdef123", "PATH": "/usr/bin:/bin", "DISCORD_TOKEN": "x"}
    assert secrets_from_env(env) == ["sk-abcdef123"]  # "x" is too short to scrub safely
    r = Redactor(["sk-abcdef123"], include_env=False)
    assert r.obj({"note": "key=sk-abcdef123!", "max_tokens": 5, "nested": [{"password": 1}]}) == {
        "note": "key=[REDACTED]!", "max_tokens": 5, "nested": [{"password": "[REDACTED]"}]}


def test_malformed_context_build_still_gets_an_index_line(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    w = new_writer(logs, background=False)
    with start_activation("1", "2", "Bot", writer=w) as c:
        c.record_context({"messages": 7, "messagesIncluded": 7})  # a count where a list belongs
        c.trace["activation"] = None  # type: ignore[assignment]
        c.set_outcome(True, "ok", ["3"])
    lines = (logs / "traces" / "index.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["contextMessageIds"] == [] and entry["sentMessageIds"] == ["3"] and w.errors == 0
