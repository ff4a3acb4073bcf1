"""Issue 9 items 5 and 12: every auth path is rate limited per client (X-Forwarded-For honoured only
from a configured trusted proxy); `--insecure` really serves other host names; short tokens are
refused on a non-loopback bind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from chapterx.api.server import create_app as create_bot_api
from chapterx.discord.memory import MemoryDiscord
from chapterx.errors import UsageError
from chapterx.viewer.app import create_app
from chapterx.viewer.security import client_address
from chapterx.viewer.settings import ViewerSettings
from tests.discord.test_api import TOKEN as BOT_TOKEN
from tests.discord.test_api import WORLD, MemoryBackend
from tests.viewer.conftest import RunningViewer, make_settings

TOKEN = "limits-test-token-0123456789"


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[RunningViewer]:
    (tmp_path / "logs").mkdir()
    v = RunningViewer(make_settings(tmp_path, [tmp_path / "logs"], auth_token=TOKEN,
                                    trusted_proxies=["127.0.0.1"])).start()
    yield v
    v.stop()


def _get(v: RunningViewer, token: str, xff: str | None = None, path: str = "/api/bots") -> int:
    headers = {"Authorization": f"Bearer {token}"}
    if xff:
        headers["X-Forwarded-For"] = xff
    return v.request("GET", path, headers).status


def test_bearer_guesses_on_api_are_limited_per_client(limited: RunningViewer) -> None:
    v = limited
    statuses = [_get(v, f"wrong-{i}", "203.0.113.7") for i in range(8)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert _get(v, TOKEN, "203.0.113.7") == 429  # the guesser stays locked out for the window
    assert _get(v, TOKEN, "198.51.100.9") == 200  # everyone else behind the same proxy is not
    ingest = v.request("POST", "/v1/traces", {"Authorization": "Bearer nope", "X-Forwarded-For": "203.0.113.7",
                                               "Content-Type": "application/json"}, b"{}")
    assert ingest.status == 429


def test_ingest_guesses_are_limited(limited: RunningViewer) -> None:
    v = limited
    codes = [v.request("POST", "/v1/traces", {"Authorization": f"Bearer w{i}", "X-Forwarded-For": "192.0.2.1",
                                              "Content-Type": "application/json"}, b"{}").status for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[-1] == 429


def test_forwarded_for_is_ignored_without_a_trusted_proxy() -> None:
    assert client_address("10.0.0.5", "203.0.113.7", []) == "10.0.0.5"
    assert client_address("10.0.0.5", "203.0.113.7, 10.0.0.9", ["10.0.0.0/8"]) == "203.0.113.7"
    assert client_address("10.0.0.5", "1.1.1.1, 203.0.113.7", ["10.0.0.5"]) == "203.0.113.7"  # rightmost untrusted
    assert client_address("10.0.0.5", "garbage", ["10.0.0.5"]) == "10.0.0.5"


async def test_insecure_serves_other_host_names(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()

    class _NoStore:
        def bots(self) -> list[str]:
            return []

        def close(self) -> None:
            pass

    for insecure, expected in ((True, 200), (False, 403)):
        s = make_settings(tmp_path, [tmp_path / "logs"], host="0.0.0.0", insecure=insecure)
        server = TestServer(create_app(s, _NoStore()), host="127.0.0.1")  # type: ignore[arg-type]
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(str(server.make_url("/health")), headers={"Host": "traces.lan:3847"}) as r:
                    assert r.status == expected, insecure
        finally:
            await server.close()


def test_short_token_refused_on_public_bind() -> None:
    with pytest.raises(UsageError, match="16"):
        ViewerSettings(host="0.0.0.0", auth_token="short-token").check_bind()
    ViewerSettings(host="0.0.0.0", auth_token="x" * 16).check_bind()
    ViewerSettings(host="127.0.0.1", auth_token="short").check_bind()


@pytest.fixture
async def bot_api() -> AsyncIterator[str]:
    server = TestServer(create_bot_api(MemoryBackend(MemoryDiscord(WORLD)), BOT_TOKEN), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url(""))
    await server.close()


async def test_bot_api_guesses_are_limited(bot_api: str) -> None:
    async with aiohttp.ClientSession() as http:
        codes = []
        for i in range(7):
            async with http.get(bot_api + "/api/channels?since=2000-01-01", headers={"Authorization": f"Bearer g{i}"}) as r:
                codes.append(r.status)
        assert codes[:5] == [403] * 5 and codes[-1] == 429


def test_deeply_nested_login_body_is_400(limited: RunningViewer) -> None:
    r = limited.request("POST", "/login", {"Content-Type": "application/json", "X-Forwarded-For": "192.0.2.99"},
                        b"[" * 100_000 + b"]" * 100_000)
    assert r.status == 400
