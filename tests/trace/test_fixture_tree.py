"""Upstream's edge cases on the hand-written tree in tests/fixtures/traces/mini-logs (no ../shared
needed): legacy file, relay ids, null ids, deleted file, malformed and torn index lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from chapterx.cli import main as cli_main
from chapterx.trace.store import TraceStore
from tests.conftest import FIXTURES_DIR


def _must(trace: dict[str, Any] | None) -> dict[str, Any]:
    assert trace is not None
    return trace


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    dest = tmp_path / "logs"
    shutil.copytree(FIXTURES_DIR / "traces" / "mini-logs" / "logs", dest)
    return dest


@pytest.fixture
def store(logs: Path, make_store: Any) -> TraceStore:
    s: TraceStore = make_store(logs)
    return s


def test_listing(store: TraceStore) -> None:
    listing = store.list_traces()
    assert [t["traceId"] for t in listing["traces"]] == ["5e6f7a8b", "1a2b3c4d", "0badc0de"]
    assert listing["total"] == 3
    legacy = listing["traces"][2]
    assert "botName" not in legacy and legacy["channelName"] == "greenhouse"  # name learnt from other lines
    assert store.refresh().malformed == 0  # counted on the first read, not again
    assert store.stats()["sources"][0]["malformed"] == 1
    assert store.bots() == {"bots": ["Relay Bot"]}  # bodies/ is not a bot
    assert store.channels() == {"channels": [{"id": "3000000000000000001", "name": "greenhouse", "count": 3}]}


def test_search_edge_cases(store: TraceStore) -> None:
    # the relay trigger is found by its bare snowflake, and vice versa across bots/eras
    r = store.search("https://discord.com/channels/3000000000000000000/3000000000000000001/3200000000000000003")
    assert [(x["traceId"], x["role"]) for x in r["results"]] == [("1a2b3c4d", "trigger")]
    assert r["results"][0]["responsePreview"] == "relay reply"
    # a context message after a null discordMessageId: position from the trace file (gaps kept)
    r = store.search("3200000000000000002")
    assert [(x["traceId"], x["role"], x.get("position")) for x in r["results"]] == [
        ("5e6f7a8b", "context", None), ("1a2b3c4d", "context", 2)]  # the first's file is gone
    # legacy: context across relay/bare ids, trigger preview read from its file
    r = store.search("rm_pod9_3100000000000000000")
    assert [(x["traceId"], x["role"], x.get("position")) for x in r["results"]] == [
        ("1a2b3c4d", "context", 0), ("0badc0de", "context", 0)]
    r = store.search("3100000000000000001")
    assert r["results"][0]["role"] == "trigger" and r["results"][0]["responsePreview"] == "legacy reply"
    assert store.search("rm_pod9_3200000000000000004")["results"][0]["role"] == "sent"
    # torn last line: not searchable, still found by exact id
    assert store.search("3400000000000000001")["results"] == []
    assert _must(store.get_trace("9c0d1e2f"))["outcome"]["error"]["message"] == "boom"
    assert store.get_trace("5e6f7a8b") is None
    assert _must(store.get_trace("0badc0de"))["traceId"] == "0badc0de"


def test_torn_line_completed_later(logs: Path, store: TraceStore) -> None:
    idx = logs / "traces" / "index.jsonl"
    data = idx.read_bytes()
    torn = data[data.rfind(b"\n") + 1:]
    assert torn and not torn.endswith(b"\n")
    # the writer finishes its line: the rest of the original entry plus the newline
    trace = json.loads((logs / "traces" / "Relay Bot").glob("*9c0d1e2f*").__next__().read_text())
    assert store.list_traces()["total"] == 3
    full = json.dumps({"traceId": "9c0d1e2f", "timestamp": trace["timestamp"], "channelId": trace["channelId"],
                       "triggeringMessageId": trace["triggeringMessageId"], "botName": "Relay Bot",
                       "success": False, "durationMs": 1, "llmCallCount": 1, "toolExecutionCount": 0,
                       "totalTokens": 1, "contextMessageIds": [], "sentMessageIds": [],
                       "filename": "x.json"}).encode()
    idx.write_bytes(data[: data.rfind(b"\n") + 1] + full + b"\n")
    assert store.list_traces()["traces"][0]["traceId"] == "9c0d1e2f"


def test_cli_on_the_tree(logs: Path, capsys: Any) -> None:
    assert cli_main(["traces", "request", "1a2b3c4d", "--logs-dir", str(logs)]) == 0
    assert json.loads(capsys.readouterr().out)["max_tokens"] == 500
    assert cli_main(["traces", "request", "0badc0de", "--logs-dir", str(logs)]) == 1
    assert "not found" in capsys.readouterr().err
    assert cli_main(["traces", "search", "3200000000000000002", "--logs-dir", str(logs)]) == 0
    out = capsys.readouterr().out
    assert "1a2b3c4d" in out and "5e6f7a8b" in out
