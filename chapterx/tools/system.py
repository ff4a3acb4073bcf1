"""The process-wide tool system: plugin state root, the timer scheduler and the MCP servers.

One `ToolSystem` per bot process (reference §0: MCP servers start once per process, timers live in
`CACHE_PATH/timers.json`). Each activation gets a `PluginHost` bound to its channel from `host()`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.tools.mcp import McpManager, McpServerConfig, parse_servers
from chapterx.tools.timers import Timer, TimerScheduler

log = logging.getLogger(__name__)


class ToolSystem:
    def __init__(self, cache_path: Path, *, now: Callable[[], float] = time.time,
                 on_timer: Callable[[Timer], None] | None = None, timer_suffix: Callable[[], str] | None = None,
                 base_dir: Path | None = None, mcp_call_timeout: float = 60.0,
                 mcp_backoff: tuple[float, ...] = (1, 2, 5, 15, 60),
                 http_client: Any = None, bot_id: str | None = None) -> None:
        self.cache_path = Path(cache_path)
        self.state_root = self.cache_path / "plugins"
        self.now = now
        self.base_dir = base_dir
        self.timers = TimerScheduler(self.cache_path / "timers.json", now=now, on_fire=on_timer, suffix=timer_suffix,
                                     bot_id=bot_id)
        self.mcp: McpManager | None = None
        self._mcp_key: tuple[McpServerConfig, ...] | None = None
        self.mcp_call_timeout = mcp_call_timeout
        self.mcp_backoff = mcp_backoff
        self._http = http_client
        self._soma: Any = None
        self._mcp_lock = asyncio.Lock()
        self._tts: Any = None
        self._own_http = http_client is None
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("%s", message)

    async def ensure_mcp(self, config: ConfigLike) -> McpManager | None:
        """Start the configured MCP servers once per process (from the first config that names them)."""
        if self.mcp is not None:
            return self.mcp
        async with self._mcp_lock:  # two channels' first activations must not start the servers twice
            if self.mcp is not None:
                return self.mcp
            return await self._start_mcp(config)

    async def _start_mcp(self, config: ConfigLike) -> McpManager | None:
        servers, problems = parse_servers(as_bot_config(config).mcp_servers,
                                          cwd=str(self.base_dir) if self.base_dir else None)
        for p in problems:
            self.warn(p)
        if not servers:
            return None
        self.mcp = McpManager(servers, call_timeout=self.mcp_call_timeout, backoff=self.mcp_backoff, warn=self.warn)
        await self.mcp.start()
        return self.mcp

    def soma(self, config: ConfigLike) -> Any:
        """The Soma client, created once from the first config that enables Soma (None: off)."""
        from chapterx.tools.soma import SomaClient, soma_settings

        if self._soma is None:
            settings = soma_settings(config)
            if settings is None:
                return None
            self._soma = SomaClient(settings[0], settings[1], self.http_client())
        elif soma_settings(config) is None:
            return None
        return self._soma

    async def soma_gate(self, port: Any, config: ConfigLike, *, reason: str, channel_id: str,
                        guild_id: str, trigger_id: str | None, bot_id: str) -> Any:
        """Runtime hook before an activation (§1.3 step 11): a `SomaDecision`, allowed when Soma is off."""
        from chapterx.tools.soma import SomaDecision, gate

        client = self.soma(config)
        if client is None:
            return SomaDecision(True)
        return await gate(client, port, reason=reason, channel_id=channel_id, guild_id=guild_id,
                          trigger_id=trigger_id, bot_id=bot_id)

    async def soma_refund(self, decision: Any, reason: str) -> None:
        """A charged activation failed: give the credit back."""
        client = self._soma
        if client is not None and decision.transaction_id:
            await client.refund(decision.transaction_id, reason)

    def speak(self, config: ConfigLike, bot_id: str, channel_id: str, text: str) -> None:
        """Hand an activation's visible text to the TTS relay (never waits; no-op unless enabled).

        The relay starts with the first config that enables it. Text arrives as one chunk per
        activation (upstream's synthesized callbacks for non-streaming calls)."""
        from chapterx.tools.tts_relay import TtsRelay, tts_settings

        settings = tts_settings(config)
        text = _speakable(text)
        if settings is None or not text:
            return
        if self._tts is None:
            self._tts = TtsRelay(settings["url"], settings["token"], bot_id, reconnect_s=settings["reconnect_s"])
            self._tts.start()
        self._tts.activation_start(channel_id)
        self._tts.chunk(channel_id, text)
        self._tts.activation_end(channel_id)

    def http_client(self) -> Any:
        """The shared `httpx.AsyncClient` (created on first use; replays pass their own)."""
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0), follow_redirects=True)
        return self._http

    async def run_timers(self, stop: Any, interval: float = 3.0) -> None:
        """Fire due timers now (missed during downtime) and every `interval` seconds until `stop` is set."""
        import contextlib

        while not stop.is_set():
            try:
                self.timers.check_due()
            except Exception:  # a bad timer must not end the loop
                log.exception("timer check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def aclose(self) -> None:
        """Stop MCP servers, the TTS relay and the HTTP client (the bot calls this on shutdown)."""
        if self.mcp is not None:
            await self.mcp.aclose()
        if self._tts is not None:
            await self._tts.aclose()
        if self._http is not None and self._own_http:
            await self._http.aclose()


_HIDDEN = re.compile(r"<(function_calls|function_results|thinking)>.*?(</\1>|$)", re.S)


def _speakable(text: str) -> str:
    """The completion without tool markup and thinking (what users read is what is spoken)."""
    return re.sub(r"\n{3,}", "\n\n", _HIDDEN.sub("", text or "")).strip()
