"""The bot served in-process (`chapterx.app.serve`) with the real discord.py connector against the fake
Discord and the real pipeline against the fake LLM server: the issue-10 bugs and the behaviour that goes
past upstream (docs/differences.md, "Bot runtime"), each observed on the wire.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from chapterx.app import prepare_bot, serve
from chapterx.llm.fake import FakeLLMServer
from tests.conftest import FIXTURES_DIR
from tests.fakes.discord_server import DIRECT_MESSAGES_INTENT, FakeDiscord

TOKEN = "MTIzNDU2Nzg5.fake-discord-TOKEN.live-behaviour"
BOT = {"id": "730000000000000001", "username": "aria-bot"}
ALICE = {"id": "750000000000000001", "username": "alice", "global_name": "Alice A"}
BEX = {"id": "750000000000000002", "username": "bex", "global_name": "Bex"}
BOB = {"id": "750000000000000003", "username": "bob"}
GENERAL = "710000000000000001"
OFFTOPIC = "710000000000000009"
THIRD = "710000000000000007"
CHANNELS = [{"id": GENERAL, "name": "general"}, {"id": OFFTOPIC, "name": "off-topic"},
            {"id": THIRD, "name": "third"}]


@asynccontextmanager
async def live_bot(tmp_path: Path, discord: FakeDiscord, llm_url: str, extra_yaml: str = "") -> AsyncIterator[None]:
    """Serve the fixture bot (`aria`, reply_on_random 0) until the block ends."""
    root = tmp_path / "deploy"
    shutil.copytree(FIXTURES_DIR / "discord" / "tree", root)
    bot_file = root / "config" / "bots" / "aria.yaml"
    bot_file.write_text(bot_file.read_text(encoding="utf-8") + "llm_retries: 1\n" + extra_yaml, encoding="utf-8")
    (tmp_path / "token").write_text(TOKEN, encoding="utf-8")
    env = {"DISCORD_TOKEN_FILE": str(tmp_path / "token"), "LOGS_DIR": str(tmp_path / "logs"),
           "CACHE_PATH": str(tmp_path / "cache"), "TOOLS_PATH": str(tmp_path / "tools"),
           "CHAPTERX_DISCORD_API": discord.api_base, "CHAPTERX_LLM_BASE_URL": llm_url}
    plan = prepare_bot(bot_file=bot_file, env=env)
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(plan, stop=stop, handle_signals=False, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _fake(**kw: Any) -> FakeDiscord:
    return FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE, BEX, BOB], channels=CHANNELS, **kw)


def _sends(discord: FakeDiscord) -> list[dict[str, Any]]:
    return [a for a in discord.actions if a["type"] == "send"]


async def _until(cond: Any, timeout: float = 20.0) -> None:
    async def wait() -> None:
        while not cond():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


async def test_reply_does_not_ping_and_names_resolve_through_member_search(tmp_path: Path) -> None:
    """Bugs 1 and 2: the reply carries `replied_user: false` (Alice is not pinged), and `<@bex>`/`<@bob>`,
    who are not in the context, are resolved by the REST member search."""
    async with _fake() as discord, FakeLLMServer([{"text": "<@bex> and <@bob> should weigh in"}]) as llm, \
            live_bot(tmp_path, discord, llm.base_url):
        trigger = await discord.user_message(GENERAL, ALICE["id"], f"<@{BOT['id']}> who else?")
        (send,) = await discord.wait_for("send")
    assert send["reply_to"] == trigger["id"]
    assert send["allowed_mentions"]["replied_user"] is False
    assert send["content"] == f"<@{BEX['id']}> and <@{BOB['id']}> should weigh in"
    assert send["pinged"] == [BEX["id"], BOB["id"]]  # not ALICE: the reply itself pings nobody
    assert [a["query"] for a in discord.actions if a["type"] == "member_search"] == ["bex", "bob"]
    assert not discord.identify_intents[-1] & DIRECT_MESSAGES_INTENT  # no DM intent without allow_dms


async def test_config_pinned_in_an_untracked_channel_applies_at_once(tmp_path: Path) -> None:
    """Bug 3: a `.config` pinned where the bot never answered (`reply_on_random: 1`) is loaded from REST on
    the pin event, so the next plain message there activates the bot."""
    async with _fake() as discord, FakeLLMServer([{"text": "I can join in."}]) as llm, \
            live_bot(tmp_path, discord, llm.base_url):
        pin = await discord.user_message(THIRD, ALICE["id"], ".config\n---\nreply_on_random: 1")
        await discord.pin_message(THIRD, pin["id"])
        await _until(lambda: any(a["type"] == "pins" and a["channel_id"] == THIRD for a in discord.actions))
        plain = await discord.user_message(THIRD, ALICE["id"], "anyone around?")
        (send,) = await discord.wait_for("send")
    assert send["channel_id"] == THIRD and send["reply_to"] == plain["id"]
    assert send["content"] == "I can join in."


async def test_batches_are_per_channel_and_own_message_is_never_the_trigger(tmp_path: Path) -> None:
    """One poll holds a plain #off-topic message, the bot's own post in #general and a mention in #general
    (the loop is held by a slow pins fetch meanwhile): the mention is answered in #general, replying to
    the mention (upstream: answered in #off-topic, or replying to its own post)."""
    async with _fake() as discord, FakeLLMServer([{"text": "Here is the summary."}]) as llm, \
            live_bot(tmp_path, discord, llm.base_url):
        pin = await discord.user_message(THIRD, ALICE["id"], ".config\n---\nmax_tokens: 50")
        discord.pins_delay = 1.0
        await discord.pin_message(THIRD, pin["id"])
        await discord.user_message(THIRD, ALICE["id"], "holding the loop")  # its batch fetches pins (slow)
        await asyncio.sleep(0.3)
        await discord.user_message(OFFTOPIC, BOB["id"], "anyone up for lunch?")
        own = await discord.bot_message(GENERAL, "my earlier answer")
        mention = await discord.user_message(GENERAL, ALICE["id"], f"<@{BOT['id']}> can you summarise?")
        (send,) = await discord.wait_for("send")
    assert send["channel_id"] == GENERAL
    assert send["reply_to"] == mention["id"] != own["id"]
    assert len(llm.requests) == 1


async def test_mention_during_a_long_activation_is_answered_afterwards(tmp_path: Path) -> None:
    """A trigger that arrives while the channel is busy is queued and answered once the first ends."""
    async with _fake() as discord, FakeLLMServer([{"text": "First answer.", "gate": "slow"},
                                                  {"text": "Second answer."}]) as llm, \
            live_bot(tmp_path, discord, llm.base_url):
        first = await discord.user_message(GENERAL, ALICE["id"], f"<@{BOT['id']}> first question")
        await _until(lambda: len(llm.requests) == 1)
        second = await discord.user_message(GENERAL, BOB["id"], f"<@{BOT['id']}> second question")
        await asyncio.sleep(0.5)  # decided (queued) while the first request is held
        llm.release("slow")
        sends = await discord.wait_for("send", count=2)
    assert [(s["content"], s["reply_to"]) for s in sends] == [("First answer.", first["id"]),
                                                             ("Second answer.", second["id"])]
    assert "second question" in json.dumps(llm.requests[1]["body"])
    assert "First answer." in json.dumps(llm.requests[1]["body"])  # fresh context after the first reply


async def test_provider_down_shows_a_warning_reaction(tmp_path: Path) -> None:
    """Every provider attempt fails (nothing listens at the LLM URL): the trigger gets ⚠️, not silence."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    async with _fake() as discord, live_bot(tmp_path, discord, dead):
        trigger = await discord.user_message(GENERAL, ALICE["id"], f"<@{BOT['id']}> are you there?")
        (reaction,) = await discord.wait_for("reaction", timeout=60)
    assert reaction["message_id"] == trigger["id"]
    assert reaction["emoji"] in ("⚠️", "%E2%9A%A0%EF%B8%8F")
    assert _sends(discord) == []


async def test_direct_message_with_allow_dms(tmp_path: Path) -> None:
    """`allow_dms: true`: the DM intent is requested, a DM is answered in the DM channel, the partner is
    the only human in the prompt, and the trace names the channel "DM"."""
    async with _fake() as discord, FakeLLMServer([{"text": "Hi Alice, just us here."}]) as llm, \
            live_bot(tmp_path, discord, llm.base_url, "allow_dms: true\n"):
        assert discord.identify_intents[-1] & DIRECT_MESSAGES_INTENT
        await discord.user_message(GENERAL, BOB["id"], "bob talks in general")
        dm = await discord.user_dm(ALICE["id"], "hello, privately")
        (send,) = await discord.wait_for("send")
    assert send["channel_id"] == dm["channel_id"] and send["content"] == "Hi Alice, just us here."
    body = json.dumps(llm.requests[0]["body"])
    assert "hello, privately" in body and "bob" not in body
    traces = list((tmp_path / "logs" / "traces").rglob("*.json"))
    assert len(traces) == 1
    assert json.loads(traces[0].read_text(encoding="utf-8"))["channelName"] == "DM"
