"""The discord.py `DiscordPort` against the fake Discord: every port call over real REST/gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chapterx.agent.queue import Event
from chapterx.discord.connector import DiscordConnector, GuildPort
from chapterx.discord.port import OutgoingFile
from tests.fakes.discord_server import FakeDiscord

TOKEN = "MTIzNDU2Nzg5.fake-discord-TOKEN.port"
BOT = {"id": "730000000000000001", "username": "aria-bot"}
ALICE = {"id": "750000000000000001", "username": "alice", "global_name": "Alice A"}
CH = "710000000000000001"
THREAD = "710000000000000002"


@pytest.fixture
async def live() -> AsyncIterator[tuple[FakeDiscord, GuildPort, list[Event]]]:
    events: list[Event] = []
    async with FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE], roles=[{"id": "740000000000000001", "name": "aria"}],
                           bot_role_ids=["740000000000000001"], emojis=[{"id": "780000000000000001", "name": "wave"}],
                           channels=[{"id": CH, "name": "general"},
                                     {"id": THREAD, "name": "side", "type": 11, "parent_id": CH}]) as fake:
        conn = DiscordConnector(on_event=events.append, api_base=fake.api_base)
        task = asyncio.create_task(conn.start(TOKEN))
        await asyncio.wait_for(conn.ready.wait(), 30)
        try:
            yield fake, conn.port_for(fake.guild_id), events
        finally:
            await conn.close()
            task.cancel()
            with contextlib.suppress(BaseException):  # the cancelled client task ends however it ends
                await task


async def _until(cond: Any, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not cond():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


async def test_lookups_history_and_events(live: tuple[FakeDiscord, GuildPort, list[Event]]) -> None:
    fake, port, events = live
    assert port.bot_user_id == BOT["id"]
    me = port.member(BOT["id"])
    assert me is not None and me.role_ids == ("740000000000000001",)
    assert port.role("740000000000000001").name == "aria"  # type: ignore[union-attr]
    assert [e.name for e in port.emojis()] == ["wave"]
    assert port.channel(CH).type == "text"  # type: ignore[union-attr]
    thread = port.channel(THREAD)
    assert thread is not None and thread.type == "thread" and thread.parent_id == CH
    first = await fake.user_message(CH, ALICE["id"], "hello there")
    second = await fake.user_message(CH, ALICE["id"], f"<@{BOT['id']}> ping", reply_to=first["id"])
    role = await fake.user_message(CH, ALICE["id"], "<@&740000000000000001> roles")
    await _until(lambda: len(events) >= 3)
    assert [e.type for e in events] == ["message"] * 3
    assert [e.mentions_bot for e in events] == [False, True, True]
    assert events[1].message is not None and events[1].message.reply_to == first["id"]
    assert port.user(ALICE["id"]).global_name == "Alice A"  # type: ignore[union-attr]
    history = await port.fetch_messages(CH, limit=10)
    assert [m.id for m in history] == [role["id"], second["id"], first["id"]]
    older = await port.fetch_messages(CH, before=second["id"], limit=10)
    assert [m.id for m in older] == [first["id"]]
    got = await port.fetch_message(CH, first["id"])
    assert got is not None and got.content == "hello there" and got.author_id == ALICE["id"]
    assert await port.fetch_message(CH, "710000000000009999") is None


async def test_actions(live: tuple[FakeDiscord, GuildPort, list[Event]]) -> None:
    fake, port, _events = live
    fake.pin(CH, ALICE["id"], ".config\n---\nmax_tokens: 5")
    pins = await port.fetch_pins(CH)
    assert [p.content for p in pins] == [".config\n---\nmax_tokens: 5"]
    msg = await fake.user_message(CH, ALICE["id"], "question")
    await port.typing(CH)
    sent = await port.send(CH, "answer", reply_to=msg["id"], files=[OutgoingFile("notes.txt", b"file body")])
    ghost = await port.send(CH, "to nobody", reply_to="710000000000009999")
    await port.react(CH, msg["id"], "👍")
    await port.delete(CH, msg["id"])
    hook_id = await port.webhook_send(CH, "tool output", username="Aria (tools)")
    again = await port.webhook_send(CH, "more", username="Aria (tools)")
    kinds = [a["type"] for a in fake.actions if a["type"] != "pins"]
    assert kinds == ["typing", "send", "send", "reaction", "delete", "webhook_create", "webhook", "webhook"]
    sends = [a for a in fake.actions if a["type"] == "send"]
    assert sends[0] == {"type": "send", "channel_id": CH, "content": "answer", "reply_to": msg["id"],
                        "message_id": sent, "files": [{"name": "notes.txt", "content": "file body"}],
                        "allowed_mentions": {"parse": ["users"], "replied_user": False}, "pinged": []}
    assert sends[1]["reply_to"] is None and sends[1]["message_id"] == ghost
    assert next(a for a in fake.actions if a["type"] == "reaction")["emoji"] == "👍"
    hooks = [a for a in fake.actions if a["type"] == "webhook"]
    assert [h["message_id"] for h in hooks] == [hook_id, again] and hooks[0]["username"] == "Aria (tools)"
