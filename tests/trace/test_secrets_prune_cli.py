"""Secrets never reach logs/, prune keeps files and index consistent, and the CLI contract."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chapterx.cli import main as cli_main
from chapterx.trace.collector import install_log_handler, start_activation
from chapterx.trace.ids import iso_now
from chapterx.trace.prune import prune_store
from chapterx.trace.store import TraceStore
from chapterx.trace.writer import TraceWriter
from tests.trace.helpers import new_writer, write_activation

ENV_KEY = "sk-ant-api03-Zq8TESTSECRETxx/+w=="
ENV_TOKEN = "MTI5ODc2.FAKE-discord-token.abcdef"
CONF_SOMA = "FAKE-soma-token-7788"
CONF_SEARCH = "FAKE-search-key-not-real-0000"
VENDOR_KEY = "sk-or-v1-vendorsecret123456"
URL_PASSWORD = "hunter2-URLPASS-9911"  # only inside a URL, under no secret-looking key (issue 9 item 13)
SECRETS = (ENV_KEY, ENV_TOKEN, CONF_SOMA, CONF_SEARCH, VENDOR_KEY, URL_PASSWORD)


def test_no_configured_secret_reaches_any_file_under_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = tmp_path / "logs"
    monkeypatch.setenv("TRACE_INDEX_PATH", str(logs / "traces" / ".index.sqlite"))  # include the index
    env = {"ANTHROPIC_API_KEY": ENV_KEY, "DISCORD_TOKEN": ENV_TOKEN, "HOME": "/root"}
    writer = TraceWriter(logs, env=env, background=True)
    install_log_handler()
    log = logging.getLogger("chapterx.agent.test")
    log.setLevel(logging.DEBUG)
    config = {"name": "Leaky", "discord_token": ENV_TOKEN, "soma": {"token": CONF_SOMA},
              "mcp_servers": [{"name": "s", "env": {"SEARCH_API_KEY": CONF_SEARCH}}],
              "vendors": {"openrouter": {"api_key": VENDOR_KEY, "provides": ["x"]}},
              "tts_relay": {"url": f"wss://relay-user:{URL_PASSWORD}@relay.example/ws"},
              "system_prompt": f"never say {CONF_SEARCH}"}
    with pytest.raises(RuntimeError), start_activation("1", "2", "Leaky", writer=writer, config=config) as c:
        c.record_activation("mention", [{"type": "message", "messageId": "2",
                                         "contentPreview": f"my key is {ENV_KEY}"}])
        c.record_discord_messages([{"id": "2", "author": {"id": "9", "username": "u", "displayName": "u",
                                                          "bot": False},
                                    "content": f"token {ENV_TOKEN}", "timestamp": "t", "attachments": []}])
        log.warning("auth failed with %s", VENDOR_KEY, extra={"headers": {"Authorization": f"Bearer {ENV_KEY}"}})
        c.record_llm_call({"model": "m", "metadata": {"url": f"https://x/?key={CONF_SOMA}"},
                           "messages": [{"role": "user", "content": f"{CONF_SEARCH} {ENV_KEY}"}]},
                          {"content": [{"type": "text", "text": f"echo {VENDOR_KEY}"}]},
                          model="m", usage=None, stop_reason="end_turn", duration_ms=1)
        c.record_tool("t", "leak", {"q": CONF_SOMA}, f"out {ENV_TOKEN}", duration_ms=1)
        c.set_outcome(True, f"here: {CONF_SEARCH}", ["3"])
        c.checkpoint()
        raise RuntimeError(f"401 for key {ENV_KEY} at https://bot:{URL_PASSWORD}@proxy.example/v1")
    writer.write_marker({"traceId": "ff00", "timestamp": iso_now(), "channelId": "1", "botId": "Leaky",
                         "triggeringMessageId": "5", "note": f"{VENDOR_KEY}"})
    writer.flush()
    store = TraceStore([logs])
    store.refresh()
    assert store.list_traces()["total"] == 2
    assert store.search("2")["results"]
    store.close()
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert len(files) >= 6
    redacted_somewhere = False
    for p in files:
        data = p.read_bytes()
        redacted_somewhere |= b"[REDACTED]" in data
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} in {p}"
            assert json.dumps(secret)[1:-1].encode() not in data, f"{secret} in {p}"
    assert redacted_somewhere


def _old_activation(writer: TraceWriter, days: float, trigger: str) -> str:
    with start_activation("1", trigger, "Old Bot", writer=writer) as c:
        c.trace["timestamp"] = iso_now(datetime.fromtimestamp(time.time() - days * 86400, UTC))
        c.record_llm_call({"messages": []}, {"content": []}, model="m", usage=None, stop_reason=None, duration_ms=1)
        c.set_outcome(True, "ok", [])
        return c.trace_id


def test_prune_removes_traces_bodies_and_index_lines_together(tmp_path: Path, make_store: Any) -> None:
    logs = tmp_path / "logs"
    w = new_writer(logs, background=False)
    old = [_old_activation(w, 10, f"10{i}") for i in range(3)]
    new = [_old_activation(w, 1, f"20{i}") for i in range(2)]
    orphan = logs / "llm-requests" / "request-2020-01-01T00-00-00-000Z.json"
    orphan.write_text("{}")
    os.utime(orphan, (time.time() - 20 * 86400,) * 2)
    (logs / "streaming" / "Old Bot").mkdir(parents=True)
    (logs / "streaming" / "Old Bot" / "2020-01-01.jsonl").write_text("{}\n")
    store = make_store(logs)
    assert store.list_traces()["total"] == 5
    before = sorted(p.name for p in logs.rglob("*") if p.is_file())
    dry = prune_store(store, timedelta(days=7), dry_run=True)
    assert dry["traceFiles"] == 3 and dry["bodyFiles"] == 6 and dry["indexLinesRemoved"] == 3
    assert sorted(p.name for p in logs.rglob("*") if p.is_file()) == before
    report = prune_store(store, timedelta(days=7), dry_run=False)
    assert report["traceFiles"] == 3 and report["otherFiles"] == 2
    assert {t["traceId"] for t in store.list_traces()["traces"]} == set(new)
    assert [c["count"] for c in store.channels()["channels"]] == [2]
    lines = [json.loads(x) for x in (logs / "traces" / "index.jsonl").read_text().splitlines()]
    assert {e["traceId"] for e in lines} == set(new)
    remaining = " ".join(p.name for p in logs.rglob("*") if p.is_file())
    assert not any(t in remaining for t in old) and all(t in remaining for t in new)
    assert not orphan.exists()
    # the index keeps tailing the rewritten file without re-reading or duplicating it
    latest = _old_activation(w, 0, "300")
    listing = store.list_traces()
    assert listing["total"] == 3 and listing["traces"][0]["traceId"] == latest
    assert [c["count"] for c in store.channels()["channels"]] == [3]
    assert store.get_trace(old[0]) is None


@pytest.fixture
def cli_logs(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    w = new_writer(logs, background=False)
    write_activation(w, bot="Cli Bot", trigger="rm_c_900", context=["899", "rm_c_900"], sent=["901"], calls=2)
    with start_activation("1000", "950", "Cli Bot", writer=w) as c:
        c.log("debug", "quiet")
        c.log("warn", "careful", {"n": 1})
        c.set_error("context_build", RuntimeError("no history"))
    return logs


def _run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = cli_main(["traces", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_commands(cli_logs: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    d = str(cli_logs)
    code, out, _ = _run(capsys, "list", "--logs-dir", d, "--json")
    listing = json.loads(out)
    assert code == 0 and listing["total"] == 2 and set(listing) == {"traces", "total", "offset", "limit"}
    failed_id = listing["traces"][0]["traceId"]
    ok_id = listing["traces"][1]["traceId"]
    code, out, _ = _run(capsys, "list", "--logs-dir", d, "--failed")
    assert code == 0 and failed_id in out and ok_id not in out
    monkeypatch.setenv("LOGS_DIRS", f"{tmp_missing(cli_logs)},{d}")
    code, out, _ = _run(capsys, "search", "https://discord.com/channels/1/1000/900", "--json")
    res = json.loads(out)
    assert code == 0 and res["messageId"] == "900" and res["results"][0]["role"] == "trigger"
    monkeypatch.delenv("LOGS_DIRS")
    code, out, _ = _run(capsys, "show", ok_id, "--logs-dir", d)
    assert code == 0 and json.loads(out)["traceId"] == ok_id
    code, out, _ = _run(capsys, "request", ok_id, "--call", "1", "--logs-dir", d)
    assert code == 0 and json.loads(out)["max_tokens"] == 100
    code, out, _ = _run(capsys, "response", ok_id, "--logs-dir", d)
    assert code == 0 and json.loads(out)["content"][0]["text"] == "hello back"
    code, out, _ = _run(capsys, "logs", failed_id, "--level", "warn", "--logs-dir", d)
    assert code == 0 and "careful" in out and "quiet" not in out
    code, out, _ = _run(capsys, "show", failed_id, "--logs-dir", d)
    assert json.loads(out)["outcome"]["error"]["phase"] == "context_build"
    code, out, _ = _run(capsys, "stats", "--logs-dir", d, "--json")
    assert code == 0 and json.loads(out)["traces"] == 2
    code, out, _ = _run(capsys, "reindex", "--logs-dir", d, "--json")
    assert code == 0 and json.loads(out)["lines"] == 2
    code, out, _ = _run(capsys, "prune", "--older-than", "7d", "--dry-run", "--logs-dir", d, "--json")
    assert code == 0 and json.loads(out)["traceFiles"] == 0


def tmp_missing(base: Path) -> str:
    return str(base.parent / "does-not-exist")


def test_cli_errors_are_one_line(cli_logs: Path, capsys: Any, tmp_path: Path) -> None:
    d = str(cli_logs)
    code, out, err = _run(capsys, "show", "deadbeef", "--logs-dir", d)
    assert code == 1 and err.strip() == "chapterx: error: trace 'deadbeef' not found"
    code, _, err = _run(capsys, "prune", "--older-than", "soon", "--logs-dir", d)
    assert code == 2 and err.count("\n") == 1 and "invalid duration" in err
    code, _, err = _run(capsys, "list", "--logs-dir", str(tmp_path / "nope"))
    assert code == 2 and "no logs folder" in err
    code, out, _ = _run(capsys, "list", "--logs-dir", d, "--json")
    ok_id = json.loads(out)["traces"][1]["traceId"]
    code, _, err = _run(capsys, "request", ok_id, "--call", "9", "--logs-dir", d)
    assert code == 1 and "out of range" in err
    code, _, err = _run(capsys, "list", "--since", "yesterday-ish", "--logs-dir", d)
    assert code == 2 and "invalid time" in err


def test_prune_while_writers_append_loses_nothing(tmp_path: Path, make_store: Any) -> None:
    import threading

    logs = tmp_path / "logs"
    old_writer = new_writer(logs, background=False)
    for i in range(20):
        _old_activation(old_writer, 30, f"5{i:03d}")
    store = make_store(logs)
    written: list[str] = []

    def write_new() -> None:
        w = new_writer(logs, background=False)
        for i in range(150):
            written.append(write_activation(w, trigger=f"6{i:04d}"))

    threads = [threading.Thread(target=write_new) for _ in range(2)]
    for t in threads:
        t.start()
    reports = [prune_store(store, timedelta(days=7), dry_run=False) for _ in range(3)]
    for t in threads:
        t.join()
    assert sum(r["indexLinesRemoved"] for r in reports) == 20
    lines = [json.loads(x) for x in (logs / "traces" / "index.jsonl").read_text().splitlines()]
    assert sorted(e["traceId"] for e in lines) == sorted(written)
    listing = store.list_traces(limit=200)
    assert listing["total"] == 300
    assert {t["traceId"] for t in store.list_traces(limit=200, offset=200)["traces"]} | {
        t["traceId"] for t in listing["traces"]} == set(written)


def test_prune_without_an_index_file(tmp_path: Path, make_store: Any) -> None:
    logs = tmp_path / "logs"
    w = new_writer(logs, background=False)
    old = _old_activation(w, 10, "700")
    (logs / "traces" / "index.jsonl").unlink()  # e.g. only legacy files, or the index was lost
    store = make_store(logs)
    assert prune_store(store, timedelta(days=7), dry_run=True)["traceFiles"] == 1
    report = prune_store(store, timedelta(days=7), dry_run=False)
    assert report["traceFiles"] == 1 and report["indexLinesRemoved"] == 0
    assert not any(old in p.name for p in logs.rglob("*.json"))
    assert not (logs / "traces" / "index.jsonl").exists()


def test_prune_and_store_do_not_import_each_other() -> None:
    """prune works through the store's public API (write_transaction, locked, forget_markers)."""
    import subprocess
    import sys

    code = ("import sys, chapterx.trace.prune; assert 'chapterx.trace.store' not in sys.modules; "
            "import chapterx.trace.store as s; import inspect; "
            "assert 'trace.prune' not in inspect.getsource(s)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_stats_says_what_it_knows_of_the_cost(tmp_path: Path, capsys: Any) -> None:
    """Activations that reported no cost are not $0: `stats` says how many were priced."""
    idx = tmp_path / "logs" / "traces" / "index.jsonl"
    idx.parent.mkdir(parents=True)

    def line(i: int, cost: float | None) -> str:
        e: dict[str, Any] = {"traceId": f"t{i}", "timestamp": f"2026-03-01T10:0{i}:00.000Z", "botName": "b",
                             "channelId": "1", "success": True, "durationMs": 100}
        if cost is not None:
            e["cost"] = cost
        return json.dumps(e) + "\n"

    for costs, want in (([None, None], "cost: unknown (no activation reported a cost)"),
                        ([0.25, None, None], "cost: $0.2500 (1 of 3 activations priced)"),
                        ([0.25, 0.5], "cost: $0.7500\n")):
        idx.write_text("".join(line(i, c) for i, c in enumerate(costs)))
        code, out, _ = _run(capsys, "stats", "--logs-dir", str(tmp_path / "logs"))
        assert code == 0 and want in out, out
        code, out, _ = _run(capsys, "stats", "--logs-dir", str(tmp_path / "logs"), "--json")
        got = json.loads(out)
        assert (got["pricedActivations"], got["finishedActivations"]) == (sum(c is not None for c in costs),
                                                                          len(costs))
