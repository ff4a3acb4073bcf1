"""The TTS relay client (config §4.13): a websocket to a speech relay, only when `tts_relay.enabled`.

The bot authenticates with `{type: auth, botId, token}` and then streams `activation_start`,
`block_start`, `chunk`, `block_complete` and `activation_end` messages. Sending never blocks an
activation: messages go into a bounded queue that a background task drains; while the relay is
down they are dropped (speech of a past moment is useless) and the connection is retried every
`reconnect_interval_ms` (default 5000; upstream reconnects in a tight loop when it is unset).
The relay may send `interruption` (`{channelId, spokenText, reason}`), passed to `on_interruption`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from chapterx.config.typed import ConfigLike, as_bot_config

log = logging.getLogger(__name__)


def tts_settings(config: ConfigLike) -> dict[str, Any] | None:
    relay = as_bot_config(config).tts_relay
    if not isinstance(relay, Mapping) or relay.get("enabled") is not True or not relay.get("url"):
        return None
    interval = relay.get("reconnect_interval_ms")
    return {"url": str(relay["url"]), "token": str(relay.get("token") or ""),
            "reconnect_s": (float(interval) if isinstance(interval, int | float) and interval > 0 else 5000.0) / 1000}


class TtsRelay:
    def __init__(self, url: str, token: str, bot_id: str, *, reconnect_s: float = 5.0, queue_size: int = 256,
                 on_interruption: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.url, self.token, self.bot_id = url, token, bot_id
        self.reconnect_s = reconnect_s
        self.on_interruption = on_interruption
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self.connected = asyncio.Event()
        self.authenticated = False
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tts-relay")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def send(self, message: Mapping[str, Any]) -> bool:
        """Queue one message; False (and dropped) when the relay is down or the queue is full."""
        if not self.connected.is_set():
            self.dropped += 1
            return False
        try:
            self.queue.put_nowait(dict(message))
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    # convenience for the activation
    def activation_start(self, channel_id: str) -> bool:
        return self.send({"type": "activation_start", "botId": self.bot_id, "channelId": channel_id})

    def chunk(self, channel_id: str, text: str) -> bool:
        return self.send({"type": "chunk", "botId": self.bot_id, "channelId": channel_id, "text": text})

    def activation_end(self, channel_id: str) -> bool:
        return self.send({"type": "activation_end", "botId": self.bot_id, "channelId": channel_id})

    async def _run(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.ws_connect(self.url, heartbeat=30) as ws:
                        await ws.send_json({"type": "auth", "botId": self.bot_id, "token": self.token})
                        self.connected.set()
                        log.info("TTS relay connected: %s", self.url)
                        await self._pump(ws)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the relay is optional; retry later
                    log.warning("TTS relay %s unavailable (%s); retrying in %gs", self.url, exc, self.reconnect_s)
                finally:
                    self.connected.clear()
                    self.authenticated = False
                    while not self.queue.empty():  # stale speech is not replayed after a reconnect
                        self.queue.get_nowait()
                        self.dropped += 1
                await asyncio.sleep(self.reconnect_s)

    async def _pump(self, ws: Any) -> None:
        import aiohttp

        async def reader() -> None:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if data.get("type") == "auth_ok":
                    self.authenticated = True
                elif data.get("type") == "auth_error":
                    log.error("TTS relay refused the token: %s", data.get("message") or data)
                elif data.get("type") == "interruption" and self.on_interruption is not None:
                    self.on_interruption(data)

        read = asyncio.create_task(reader())
        try:
            while not read.done():
                get = asyncio.create_task(self.queue.get())
                done, _ = await asyncio.wait({get, read}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    await ws.send_json(get.result())
                else:
                    get.cancel()
        finally:
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read
