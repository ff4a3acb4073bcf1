"""The bot's REST API over an in-memory world, through a real HTTP client on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from chapterx.api.server import create_app
from chapterx.discord.memory import MemoryDiscord
from chapterx.discord.port import DiscordPort

TOKEN = "api-test-bearer-token"
BOT = "900"
WORLD = {
    "guild_id": "1", "channel_id": "1300000000000000000", "channel_name": "general", "bot_user_id": BOT,
    "users": [{"id": BOT, "username": "aria-bot", "bot": True}, {"id": "100", "username": "alice",
                                                                  "global_name": "Alice A"}],
    "members": [{"user_id": "100", "nickname": "Ally", "role_ids": ["5"]}],
    "roles": [{"id": "5", "name": "mods"}],
    "messages": [
        {"id": "1300000000000000001", "author_id": "100", "content": "one"},
        {"id": "1300000000000000002", "author_id": BOT, "content": "two"},
        {"id": "1300000000000000003", "author_id": BOT, "content": "three"},
        {"id": "1300000000000000004", "author_id": "100", "content": "four <@900>"},
    ],
}
CH = "1300000000000000000"


class MemoryBackend:
    def __init__(self, world: MemoryDiscord) -> None:
        self.world = world

    def channels(self) -> list[dict[str, Any]]:
        return [{"id": CH, "name": "general", "guildId": "1", "guildName": "G", "type": "text", "isThread": False,
                 "parentId": None, "lastMessageId": "1300000000000000004"}]

    def port_for_channel(self, channel_id: str) -> DiscordPort | None:
        return self.world if self.world.channel(channel_id) is not None else None

    async def user_info(self, user_id: str, guild_id: str | None) -> dict[str, Any] | None:
        u = self.world.user(user_id)
        if u is None:
            return None
        return {"id": u.id, "username": u.username, "displayName": u.global_name or u.username,
                "discriminator": "0", "bot": u.bot, "avatarUrl": f"https://cdn.example/{u.id}.png?size=128"}

    def config_for(self, guild_id: str) -> Mapping[str, Any]:
        return {"name": "Aria", "continuation_model": "claude-x", "mode": "prefill", "system_prompt": "S" * 300}


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    server = TestServer(create_app(MemoryBackend(MemoryDiscord(WORLD)), TOKEN), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield str(server.make_url("")), http
    await server.close()


async def test_auth_and_health(api: tuple[str, aiohttp.ClientSession]) -> None:
    base, _http = api
    async with aiohttp.ClientSession() as anon:
        async with anon.get(base + "/health") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with anon.get(base + "/api/channels?since=2000-01-01") as r:
            assert r.status == 401 and await r.json() == {"error": "Missing or invalid authorization header"}
        async with anon.get(base + "/api/channels?since=2000-01-01", headers={"Authorization": "Basic x"}) as r:
            assert r.status == 401
        async with anon.get(base + "/api/channels?since=2000-01-01", headers={"Authorization": "Bearer no"}) as r:
            assert r.status == 403 and await r.json() == {"error": "Invalid bearer token"}
        async with anon.options(base + "/api/channels") as r:
            assert "Access-Control-Allow-Origin" not in r.headers  # no CORS unless API_CORS_ORIGIN is set


async def test_channels_and_latest(api: tuple[str, aiohttp.ClientSession]) -> None:
    base, http = api
    async with http.get(base + "/api/channels") as r:
        assert r.status == 400
    async with http.get(base + "/api/channels?since=2000-01-01T00:00:00Z") as r:
        body = await r.json()
    assert [c["id"] for c in body["channels"]] == [CH]
    # (1300000000000000004 >> 22) + Discord epoch
    assert body["channels"][0]["lastActivityAt"] == "2024-10-27T07:35:52.832Z"
    async with http.get(base + "/api/channels?since=2030-01-01T00:00:00Z") as r:
        assert (await r.json())["channels"] == []
    async with http.get(base + "/api/channels/abc/latest") as r:
        assert r.status == 400
    async with http.get(base + f"/api/channels/{CH}/latest?messages=2") as r:
        latest = await r.json()
    assert [m["id"] for m in latest["messages"]] == ["1300000000000000003", "1300000000000000004"]
    assert latest["metadata"]["requestedCount"] == 2


async def test_export_merges_bot_runs_and_context_build(api: tuple[str, aiohttp.ClientSession]) -> None:
    base, http = api
    link = f"https://discord.com/channels/1/{CH}/1300000000000000004"
    async with http.post(base + "/api/messages/export", json={"last": link}) as r:
        body = await r.json()
    assert [m["id"] for m in body["messages"]] == ["1300000000000000001", "1300000000000000003",
                                                   "1300000000000000004"]
    assert body["messages"][1]["content"] == "two\nthree"
    assert body["messages"][0]["author"]["displayName"] == "Ally"
    assert body["metadata"]["truncated"] is False
    first = f"https://discord.com/channels/1/{CH}/1300000000000000002"
    async with http.post(base + "/api/messages/export", json={"last": link, "first": first}) as r:
        assert [m["id"] for m in (await r.json())["messages"]] == ["1300000000000000003", "1300000000000000004"]
    async with http.post(base + "/api/messages/export", json={"last": link, "recencyWindow": {"messages": 1}}) as r:
        body = await r.json()
    assert [m["id"] for m in body["messages"]] == ["1300000000000000004"] and body["metadata"]["truncated"]
    async with http.post(base + "/api/messages/export", json={"first": link}) as r:
        assert r.status == 400 and set(await r.json()) == {"error", "message", "details"}
    async with http.post(base + "/api/messages/export",
                         json={"last": f"https://discord.com/channels/1/{CH}/1399999999999999999"}) as r:
        assert r.status == 404
    async with http.post(base + "/api/context/build", json={"channel": CH, "messages": 3}) as r:
        built = await r.json()
    assert [m["participant"] for m in built["messages"]][-1] == "alice"
    assert built["metadata"]["botName"] == "Aria" and len(built["metadata"]["systemPrompt"]) == 200
    assert built["metadata"]["requestedLimit"] == 3
