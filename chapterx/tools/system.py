"""The process-wide tool system: plugin state root, the timer scheduler and the MCP servers.

One `ToolSystem` per bot process (reference §0: MCP servers start once per process, timers live in
`CACHE_PATH/timers.json`). Each activation gets a `PluginHost` bound to its channel from `host()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chapterx.tools.mcp import McpManager, McpServerConfig, parse_servers
from chapterx.tools.timers import Timer, TimerScheduler

log = logging.getLogger(__name__)


class ToolSystem:
    def __init__(self, cache_path: Path, *, now: Callable[[], float] = time.time,
                 on_timer: Callable[[Timer], None] | None = None, timer_suffix: Callable[[], str] | None = None,
                 base_dir: Path | None = None, mcp_call_timeout: float = 60.0,
                 mcp_backoff: tuple[float, ...] = (1, 2, 5, 15, 60),
                 http_get: Callable[..., Any] | None = None) -> None:
        self.cache_path = Path(cache_path)
        self.state_root = self.cache_path / "plugins"
        self.now = now
        self.base_dir = base_dir
        self.timers = TimerScheduler(self.cache_path / "timers.json", now=now, on_fire=on_timer, suffix=timer_suffix)
        self.mcp: McpManager | None = None
        self._mcp_key: tuple[McpServerConfig, ...] | None = None
        self.mcp_call_timeout = mcp_call_timeout
        self.mcp_backoff = mcp_backoff
        self.http_get = http_get
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("%s", message)

    async def ensure_mcp(self, config: Mapping[str, Any]) -> McpManager | None:
        """Start the configured MCP servers once per process (from the first config that names them)."""
        if self.mcp is not None:
            return self.mcp
        servers, problems = parse_servers(config.get("mcp_servers"),
                                          cwd=str(self.base_dir) if self.base_dir else None)
        for p in problems:
            self.warn(p)
        if not servers:
            return None
        self.mcp = McpManager(servers, call_timeout=self.mcp_call_timeout, backoff=self.mcp_backoff, warn=self.warn)
        await self.mcp.start()
        return self.mcp

    async def aclose(self) -> None:
        if self.mcp is not None:
            await self.mcp.aclose()
