"""The TTS relay client against a fake relay (aiohttp websocket server on 127.0.0.1): it
authenticates, delivers messages in order, passes interruptions on, never blocks a sender while the
relay is down, and reconnects after the relay drops the connection."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import WSMsgType, web

from chapterx.tools.tts_relay import TtsRelay, tts_settings
from tests.fakes.local_http import local_app


class FakeRelay:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self.sockets: list[web.WebSocketResponse] = []

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.sockets.append(ws)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = msg.json()
                self.received.append(data)
                if data.get("type") == "auth":
                    await ws.send_json({"type": "auth_ok"})
        return ws


async def _until(pred: Any, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.02)


async def test_relay_auth_messages_interruption_and_reconnect() -> None:
    fake = FakeRelay()
    app = web.Application()
    app.router.add_get("/bot", fake.handle)
    async with local_app(app) as port:
        await _relay_session(fake, port)


async def _relay_session(fake: FakeRelay, port: int) -> None:
    interruptions: list[dict[str, Any]] = []
    relay = TtsRelay(f"ws://127.0.0.1:{port}/bot", "tok", "aria", reconnect_s=0.1,
                     on_interruption=interruptions.append)
    try:
        assert relay.chunk("c1", "too early") is False  # not connected: dropped at once, no waiting
        relay.start()
        await asyncio.wait_for(relay.connected.wait(), 10)
        assert relay.activation_start("c1") and relay.chunk("c1", "hello") and relay.activation_end("c1")
        await _until(lambda: len(fake.received) >= 4)
        assert fake.received[0] == {"type": "auth", "botId": "aria", "token": "tok"}
        assert [m["type"] for m in fake.received[1:4]] == ["activation_start", "chunk", "activation_end"]
        await _until(lambda: relay.authenticated)
        await fake.sockets[-1].send_json({"type": "interruption", "channelId": "c1", "spokenText": "hel",
                                          "reason": "user spoke"})
        await _until(lambda: interruptions)
        assert interruptions[0]["spokenText"] == "hel"
        await fake.sockets[-1].close()  # the relay drops us
        await _until(lambda: fake.connections >= 2 and relay.connected.is_set())
        assert relay.chunk("c1", "again")
        await _until(lambda: fake.received[-1].get("text") == "again")
    finally:
        await relay.aclose()


async def test_sending_never_blocks_when_the_relay_is_unreachable() -> None:
    relay = TtsRelay("ws://127.0.0.1:9/none", "", "aria", reconnect_s=0.05)
    relay.start()
    try:
        started = time.monotonic()
        results = [relay.chunk("c1", f"part {i}") for i in range(500)]
        assert time.monotonic() - started < 0.5 and not any(results) and relay.dropped == 500
    finally:
        await relay.aclose()


def test_settings_only_when_enabled() -> None:
    assert tts_settings({"tts_relay": {"enabled": False, "url": "ws://x"}}) is None
    assert tts_settings({}) is None
    got = tts_settings({"tts_relay": {"enabled": True, "url": "ws://x", "token": "t"}})
    assert got == {"url": "ws://x", "token": "t", "reconnect_s": 5.0}  # upstream's unset interval loops tightly


async def test_tool_system_speaks_only_when_enabled(tmp_path: Any) -> None:
    from chapterx.tools.system import ToolSystem

    system = ToolSystem(tmp_path / "cache")
    system.speak({}, "aria", "c1", "hello")
    assert system._tts is None  # not configured: no connection attempt at all
    system.speak({"tts_relay": {"enabled": True, "url": "ws://127.0.0.1:9/none"}}, "aria", "c1", "hello")
    assert system._tts is not None and system._tts.dropped == 3  # relay down: dropped, not awaited
    await system.aclose()
