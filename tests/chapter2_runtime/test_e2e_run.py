"""End to end: `chapterx run --ems DIR --bot wren` on a chapter2 em runs chapter2's rules against the fake
Discord (discord.py over REST + gateway) and the fake LLM server (OpenAI SDK, /v1/completions).

One process covers: the startup line naming the rule set, a name trigger, channel config from the topic
and from a pinned `.config` with a `config-wren.yaml` attachment, one Discord message per reply line,
`m mu`, a thread inheriting its parent's history, ⚠ on a provider error, and the traces in the store as
`framework: chapter2` with the chapter2 fields.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from chapterx.llm.fake import FakeLLMServer
from tests.conftest import REPO_DIR
from tests.fakes.discord_server import FakeDiscord
from tests.procs import start_chapterx, stop

TOKEN = "MTIzNDU2Nzg5.fake-chapter2-TOKEN.e2e-secret-value"
KEY = "sk-c2rt-SECRET-KEY-0003"
BOT = {"id": "730000000000000021", "username": "wren_keeper"}
ALICE = {"id": "750000000000000001", "username": "alice", "global_name": "Alice A"}
HARBOUR = "710000000000000001"
# @everyone may view, read history, send (also in threads), react and manage messages
PERMISSIONS = str(1024 | 65536 | 2048 | (1 << 38) | 64 | 8192)


def _em(tmp: Path) -> Path:
    ems = tmp / "ems"
    (ems / "wren").mkdir(parents=True)
    (ems / "config.yaml").write_text(
        "vendors:\n  openai-local:\n    config:\n      openai_api_key: " + KEY + "\n"
        "      api_base: http://127.0.0.1:9/v1\n    provides: ['.*']\n", encoding="utf-8")
    (ems / "wren" / "config.yaml").write_text(
        "name: wren\ncontinuation_model: meta-llama/Llama-3.1-405B\ncontinuation_max_tokens: 60\n"
        "recency_window: 12\nreply_on_random: false\n", encoding="utf-8")
    (ems / "wren" / "discord_token").write_text(TOKEN + "\n", encoding="utf-8")
    (ems / "wren" / "discord_avatar").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    return ems


def _body(llm: FakeLLMServer, i: int) -> dict[str, Any]:
    return dict(llm.requests[i]["body"])


async def test_chapter2_rules_end_to_end(tmp_path: Path) -> None:
    ems = _em(tmp_path)
    channels = [{"id": HARBOUR, "name": "harbour", "topic": "Harbour talk\n---\ncontinuation_max_tokens: 33\n---"}]
    responses = [{"text": " high tide at nine\nlow tide at three", "stream_usage": True,
                  "usage": {"input_tokens": 120}}, {"text": " nine fifteen"},
                 {"text": " thick until noon"}, {"http_status": 400, "error_body": {"error": {"message": "bad"}}},
                 {"text": " calm"}]
    async with FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE], channels=channels,
                           everyone_permissions=PERMISSIONS) as discord, \
            FakeLLMServer(responses) as llm:
        discord.pin(HARBOUR, ALICE["id"], ".config wren", attachments=[
            {"filename": "config-wren.yaml", "text": "temperature: 0.4\n"}])
        starter = discord.post(HARBOUR, ALICE["id"], "the fog rolls in")
        thread = starter["id"]  # a thread started from a message has that message's id
        discord.channels[thread] = {"id": thread, "name": "fog watch", "type": 11, "parent_id": HARBOUR,
                                    "topic": None}
        discord.messages[thread], discord.pins[thread] = [], []
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update({"LOGS_DIR": str(tmp_path / "logs"), "CHAPTERX_DISCORD_API": discord.api_base,
                    "CHAPTERX_LLM_BASE_URL": llm.base_url, "PYTHONPATH": str(REPO_DIR), "LOG_LEVEL": "info"})
        proc = await start_chapterx(["run", "--ems", str(ems), "--bot", "wren"], env, tmp_path)
        try:
            await asyncio.wait_for(discord.identified.wait(), 60)
            await asyncio.sleep(0.5)
            # name trigger, topic + pinned attachment config, one message per line
            first = await discord.user_message(HARBOUR, ALICE["id"], "wren, when is high tide?")
            sends = await discord.wait_for("send", count=2, timeout=60)
            # m mu: the two lines are deleted, the reply regenerated, the command deleted
            mu = await discord.user_message(HARBOUR, ALICE["id"], f"m mu <@{BOT['id']}>")
            await discord.wait_for("send", count=3, timeout=60)
            deletes = await discord.wait_for("delete", count=3, timeout=60)
            # a thread inherits the parent channel's history
            await discord.user_message(thread, ALICE["id"], f"<@{BOT['id']}> fog?")
            await discord.wait_for("send", count=4, timeout=60)
            # a provider error: ⚠ on the triggering message, nothing sent
            failing = await discord.user_message(HARBOUR, ALICE["id"], f"<@{BOT['id']}> and tomorrow?")
            reactions = await discord.wait_for("reaction", count=1, timeout=60)
            pin_fetches = [a for a in discord.actions if a["type"] == "pins" and a["channel_id"] == HARBOUR]
            # a new pin (MESSAGE_UPDATE + CHANNEL_PINS_UPDATE) refreshes the cached pins: temperature 0.7 applies
            note = discord.post(HARBOUR, ALICE["id"], ".config\n---\ntemperature: 0.7")
            await discord.pin_message(HARBOUR, note["id"])
            await asyncio.sleep(0.3)
            await discord.user_message(HARBOUR, ALICE["id"], "wren, and the wind?")
            await discord.wait_for("send", count=5, timeout=60)
            await discord.wait_for("avatar", timeout=60)  # uploaded from discord_avatar once ready
            await asyncio.sleep(0.3)
        finally:
            _code, stderr = await stop(proc)
    assert proc.returncode == 0, stderr
    assert "chapter2 activation rules" in stderr
    assert TOKEN not in stderr and KEY not in stderr
    all_sends = [a for a in discord.actions if a["type"] == "send"]
    assert [a["content"] for a in sends[:2]] == ["high tide at nine", "low tide at three"]
    assert all(a["reply_to"] is None for a in all_sends)  # chapter2 never replies with a reference
    body = _body(llm, 0)
    assert body["max_tokens"] == 33 and body["temperature"] == 0.4  # topic, then the pinned attachment
    assert body["prompt"].endswith("<alice> the fog rolls in\n<alice> wren, when is high tide?\n<wren>")
    assert ".config" not in body["prompt"]
    assert {d["message_id"] for d in deletes} == {sends[0]["message_id"], sends[1]["message_id"], mu["id"]}
    assert all_sends[2]["content"] == "nine fifteen"
    assert _body(llm, 1)["prompt"].endswith("<alice> wren, when is high tide?\n<wren>")
    assert all_sends[3]["channel_id"] == thread and all_sends[3]["content"] == "thick until noon"
    assert "<alice> the fog rolls in\n" in _body(llm, 2)["prompt"]  # inherited from the parent
    assert _body(llm, 2)["prompt"].endswith("<alice> @wren fog?\n<wren>")
    assert reactions[0]["message_id"] == failing["id"] and reactions[0]["emoji"] in ("⚠", "%E2%9A%A0")
    assert len(all_sends) == 5 and all_sends[4]["content"] == "calm"
    assert [a["data_uri_prefix"] for a in discord.actions if a["type"] == "avatar"] == ["data:image/png;base64,"]
    assert len(pin_fetches) == 1  # three messages in #harbour, one pins request: the pins are cached
    assert _body(llm, 4)["temperature"] == 0.7

    from chapterx.trace.store import TraceStore

    store = TraceStore([tmp_path / "logs"])
    try:
        listed = store.list_traces(framework="chapter2", limit=50)["traces"]
        by_msg = {t["triggeringMessageId"]: t for t in listed}
        assert {first["id"], failing["id"]} <= set(by_msg)
        ok = store.get_trace(by_msg[first["id"]]["traceId"])
        assert ok is not None and ok["framework"] == "chapter2"
        c2 = ok["chapter2"]
        assert c2["trigger"] == "name"
        assert c2["channelConfig"] == {"continuation_max_tokens": 33, "temperature": 0.4}
        assert [m["content"] for m in c2["historyNewestFirst"]][:2] == ["wren, when is high tide?", "the fog rolls in"]
        assert c2["requests"][0]["max_tokens"] == 33 and [a["type"] for a in c2["actions"]] == ["send", "send"]
        # the vendor's token counts reach the trace and the index (they were recorded as 0 before)
        usage = ok["llmCalls"][0]["tokenUsage"]
        assert usage["inputTokens"] == 120 and usage["outputTokens"] > 0
        assert by_msg[first["id"]]["totalTokens"] == 120 + usage["outputTokens"]
        # a vendor that reports nothing leaves the counts out: unknown is not zero
        second = next(t for t in listed if t["traceId"] != ok["traceId"] and t.get("success"))
        calls = (store.get_trace(second["traceId"]) or {})["llmCalls"]
        assert calls and all("tokenUsage" not in c and "cost" not in c for c in calls)
        bad = store.get_trace(by_msg[failing["id"]]["traceId"])
        assert bad is not None and bad["outcome"]["success"] is False
        assert by_msg[failing["id"]].get("success") is False
    finally:
        store.close()
    _viewer_shows_chapter2(tmp_path, first["id"])
    assert KEY not in json.dumps([p.read_text() for p in (tmp_path / "logs").rglob("*.json*")])


def _viewer_shows_chapter2(tmp_path: Path, message_id: str) -> None:
    """The viewer's API lists the traces as chapter2 and serves the chapter2 fields its detail view renders."""
    from tests.viewer.conftest import RunningViewer, make_settings

    (tmp_path / "viewer").mkdir()
    v = RunningViewer(make_settings(tmp_path / "viewer", [tmp_path / "logs"])).start()
    try:
        listed = v.request("GET", "/api/traces?framework=chapter2").json()["traces"]
        assert listed and all(t["framework"] == "chapter2" for t in listed)
        tid = next(t["traceId"] for t in listed if t["triggeringMessageId"] == message_id)
        trace = v.request("GET", f"/api/trace/{tid}").json()
        assert trace["framework"] == "chapter2" and trace["activation"]["reason"] == "name"
        c2 = trace["chapter2"]
        assert c2["prompt"].endswith("<wren>") and c2["continuation"] == " high tide at nine\nlow tide at three"
        assert c2["spans"][0]["name"] == "DiscordInterface.handle_exceptions"
        assert json.loads(c2["spans"][0]["attributes"]["channel_config"])["temperature"] == 0.4
        assert [m["participant"] for m in trace["contextBuild"]["messages"]][-1] == "alice"
    finally:
        v.stop()


async def test_migrated_bot_keeps_chapter2_rules(tmp_path: Path) -> None:
    """`chapterx migrate` then `chapterx run --config` on the bot file: `activation_rules: chapter2` makes
    the migrated em answer its name (a ChapterX bot would not) through the ChapterX tree's vendors."""
    from chapterx.cli import main

    ems = _em(tmp_path)
    out = tmp_path / "migrated"
    assert main(["migrate", str(ems), "--out", str(out)]) == 0
    async with FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE], everyone_permissions=PERMISSIONS) as discord, \
            FakeLLMServer([{"text": " the tide turns at nine"}]) as llm:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update({"LOGS_DIR": str(tmp_path / "logs"), "CHAPTERX_DISCORD_API": discord.api_base,
                    "CHAPTERX_LLM_BASE_URL": llm.base_url, "PYTHONPATH": str(REPO_DIR), "LOG_LEVEL": "info"})
        proc = await start_chapterx(["run", "--config", str(out / "config" / "bots" / "wren.yaml")], env, tmp_path)
        try:
            await asyncio.wait_for(discord.identified.wait(), 60)
            await asyncio.sleep(0.5)
            await discord.user_message(HARBOUR, ALICE["id"], "wren, when does the tide turn?")
            sends = await discord.wait_for("send", timeout=60)
        finally:
            _code, stderr = await stop(proc)
    assert proc.returncode == 0, stderr
    assert "chapter2 activation rules" in stderr
    assert sends[0]["content"] == "the tide turns at nine" and sends[0]["reply_to"] is None
    assert "<alice> wren, when does the tide turn?" in json.dumps(llm.requests[0]["body"])
    assert KEY not in stderr and TOKEN not in stderr
