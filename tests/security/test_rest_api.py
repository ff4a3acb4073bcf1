"""Issue 9 item 11: the bot REST API validates and caps bodies, binds loopback, no CORS by default,
compares tokens in constant time and length."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from chapterx.api.server import create_app, start_api
from chapterx.discord.memory import MemoryDiscord
from tests.discord.test_api import CH, TOKEN, WORLD, MemoryBackend

LINK = f"https://discord.com/channels/1/{CH}/1300000000000000004"


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    server = TestServer(create_app(MemoryBackend(MemoryDiscord(WORLD)), TOKEN), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield str(server.make_url("")), http
    await server.close()


@pytest.mark.parametrize("body", [
    {"last": LINK, "recencyWindow": [1]}, {"last": LINK, "recencyWindow": {"messages": "abc"}},
    {"last": LINK, "recencyWindow": {"messages": 10**9}}, {"last": LINK, "recencyWindow": {"characters": -5}},
    [1], "abc",
])
async def test_export_bad_bodies_are_400(api: tuple[str, aiohttp.ClientSession], body: object) -> None:
    base, http = api
    async with http.post(base + "/api/messages/export", json=body) as r:
        assert r.status == 400, await r.text()


@pytest.mark.parametrize("body", [{"channel": CH, "messages": "abc"}, {"channel": CH, "messages": 10**9}, [1], "x"])
async def test_context_bad_bodies_are_400(api: tuple[str, aiohttp.ClientSession], body: object) -> None:
    base, http = api
    async with http.post(base + "/api/context/build", json=body) as r:
        assert r.status == 400, await r.text()


async def test_avatar_size_is_validated(api: tuple[str, aiohttp.ClientSession]) -> None:
    base, http = api
    async with http.get(base + "/api/users/100/avatar?size=256") as r:
        assert r.status == 200 and (await r.json())["avatarUrl"].endswith("size=256")
    for bad in ("abc", "100", "1&x=y", "99999"):
        async with http.get(base + f"/api/users/100/avatar?size={bad}") as r:
            assert r.status == 400, bad


async def test_no_cors_unless_configured(api: tuple[str, aiohttp.ClientSession]) -> None:
    base, http = api
    async with http.get(base + "/api/channels?since=2000-01-01") as r:
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    server = TestServer(create_app(MemoryBackend(MemoryDiscord(WORLD)), TOKEN, cors_origin="https://ok.example"),
                        host="127.0.0.1")
    await server.start_server()
    try:
        async with http.get(str(server.make_url("/api/channels?since=2000-01-01"))) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    finally:
        await server.close()


async def test_token_prefix_and_longer_token_are_refused(api: tuple[str, aiohttp.ClientSession]) -> None:
    base, _ = api
    async with aiohttp.ClientSession() as anon:
        for guess in (TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
            async with anon.get(base + "/api/channels?since=2000-01-01", headers={"Authorization": f"Bearer {guess}"}) as r:
                assert r.status == 403


def test_default_bind_is_loopback() -> None:
    assert inspect.signature(start_api).parameters["host"].default == "127.0.0.1"
