"""MCP servers over stdio with the official `mcp` SDK (reference §5.1), isolated from the bot.

Each configured server runs under its own supervisor task: it starts the process, lists tools and
resources, and keeps the session open until shutdown. A server that fails to start or dies loses
its tools (one warning) and is restarted with exponential backoff; every call has a timeout, and a
call that times out restarts the server. `aclose()` stops every server: the SDK terminates the
process group, so no child outlives the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chapterx.tools.base import ToolDef, ToolOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class McpServerConfig:
    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None


def parse_servers(raw: Any, *, cwd: str | None = None) -> tuple[list[McpServerConfig], list[str]]:
    """`mcp_servers` from a config: the usable entries and one warning per unusable one."""
    out: list[McpServerConfig] = []
    warnings: list[str] = []
    for i, item in enumerate(raw if isinstance(raw, list | tuple) else []):
        if not isinstance(item, Mapping) or not item.get("command"):
            warnings.append(f"mcp_servers[{i}]: needs at least a command; skipped")
            continue
        args = item.get("args") or []
        env = item.get("env")
        out.append(McpServerConfig(str(item.get("name") or f"server{i}"), str(item["command"]),
                                   tuple(str(a) for a in (args if isinstance(args, list) else [])),
                                   {str(k): str(v) for k, v in env.items()} if isinstance(env, Mapping) else None,
                                   cwd))
    return out, warnings


@dataclass
class _Server:
    config: McpServerConfig
    session: Any = None
    tools: list[ToolDef] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restart: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    failures: int = 0
    last_error: str | None = None


def flatten(content: Sequence[Any]) -> tuple[str, list[dict[str, str]]]:
    """MCP content blocks -> (text joined by newlines, images as {data, mimeType})."""
    texts: list[str] = []
    images: list[dict[str, str]] = []
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind == "image":
            images.append({"data": block.data, "mimeType": block.mimeType})
        elif kind == "resource":
            res = block.resource
            texts.append(getattr(res, "text", None) or f"[Binary resource: {res.uri}]")
    return "\n".join(texts), images


class McpManager:
    """All MCP servers of one bot process."""

    def __init__(self, configs: Sequence[McpServerConfig], *, call_timeout: float = 60.0,
                 start_timeout: float = 20.0, backoff: Sequence[float] = (1, 2, 5, 15, 60),
                 warn: Callable[[str], None] | None = None, ping_interval: float = 5.0) -> None:
        self.ping_interval = ping_interval
        self.servers = {c.name: _Server(c) for c in configs}
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self.backoff = tuple(backoff)
        self.warn = warn or log.warning
        self._stopping = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every server and wait (bounded) until each is up or has failed once."""
        for srv in self.servers.values():
            if srv.task is None:
                srv.task = asyncio.create_task(self._supervise(srv), name=f"mcp:{srv.config.name}")
        waits = [asyncio.wait_for(s.ready.wait(), self.start_timeout) for s in self.servers.values()]
        for w in waits:
            with contextlib.suppress(TimeoutError):
                await w

    async def aclose(self) -> None:
        self._stopping.set()
        for srv in self.servers.values():
            srv.restart.set()
        tasks = [s.task for s in self.servers.values() if s.task is not None]
        for t in tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(t, 10)
        for s in self.servers.values():
            s.task = None

    async def _supervise(self, srv: _Server) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        cfg = srv.config
        while not self._stopping.is_set():
            env = {**os.environ, **cfg.env} if cfg.env else None
            if shutil.which(cfg.command, path=(env or os.environ).get("PATH")) is None and \
                    not (cfg.cwd and shutil.which(os.path.join(cfg.cwd, cfg.command))):
                srv.last_error = f"command not found: {cfg.command}"
                if not await self._backoff(srv):
                    break
                continue
            params = StdioServerParameters(command=cfg.command, args=list(cfg.args), env=env, cwd=cfg.cwd)
            try:
                with open(os.devnull, "w") as errlog:  # noqa: ASYNC230 - opening /dev/null never blocks
                    async with stdio_client(params, errlog=errlog) as (read, write), \
                            ClientSession(read, write) as session:
                        await asyncio.wait_for(session.initialize(), self.start_timeout)
                        listed = await asyncio.wait_for(session.list_tools(), self.start_timeout)
                        srv.tools = [ToolDef(t.name, t.description or "", t.inputSchema, cfg.name)
                                     for t in listed.tools]
                        srv.resources = await self._list_resources(session)
                        srv.session = session
                        srv.failures = 0
                        srv.ready.set()
                        srv.restart.clear()
                        await self._watch(session, srv)
            except BaseException as exc:  # isolate every failure of the server
                if isinstance(exc, asyncio.CancelledError) and self._stopping.is_set():
                    raise
                srv.last_error = _describe(exc)
            finally:
                srv.session = None
                srv.tools = []
                srv.resources = []
            if not await self._backoff(srv):
                break

    async def _backoff(self, srv: _Server) -> bool:
        """Warn, wait the next backoff step; False when shutting down."""
        if self._stopping.is_set():
            return False
        delay = self.backoff[min(srv.failures, len(self.backoff) - 1)] if self.backoff else 1.0
        srv.failures += 1
        self.warn(f"MCP server {srv.config.name} is down ({srv.last_error or 'exited'}); its tools are unavailable; "
                  f"restarting in {delay:g}s")
        srv.ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        return not self._stopping.is_set()

    async def _watch(self, session: Any, srv: _Server) -> None:
        """Return when a restart is asked for or the server stops answering pings (crash, hang)."""
        while not srv.restart.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.restart.wait(), self.ping_interval)
                return
            try:
                await asyncio.wait_for(session.send_ping(), self.call_timeout)
            except Exception as exc:  # noqa: BLE001 - any failure means the server is gone
                srv.last_error = _describe(exc) or "no answer to ping"
                return

    async def _list_resources(self, session: Any) -> list[dict[str, Any]]:
        try:
            listed = await asyncio.wait_for(session.list_resources(), self.start_timeout)
        except Exception:  # noqa: BLE001 - a server without resources is fine
            return []
        return [{"uri": str(r.uri), "name": r.name, "description": r.description, "mimeType": r.mimeType}
                for r in listed.resources]

    # -- use ---------------------------------------------------------------------------------
    def tools(self) -> list[ToolDef]:
        return [t for s in self.servers.values() for t in s.tools]

    def resources(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, r) for name, s in self.servers.items() for r in s.resources]

    def _server_for(self, tool_name: str) -> _Server | None:
        for s in self.servers.values():
            if any(t.name == tool_name for t in s.tools):
                return s
        # Upstream sends an unknown tool to the first server (it answers with its own error).
        return next((s for s in self.servers.values() if s.session is not None), None)

    async def call(self, tool_name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        srv = self._server_for(tool_name)
        if srv is None or srv.session is None:
            return ToolOutcome(None, f"No MCP client found for tool: {tool_name}")
        try:
            result = await asyncio.wait_for(
                srv.session.call_tool(tool_name, dict(arguments),
                                      read_timeout_seconds=timedelta(seconds=self.call_timeout)),
                self.call_timeout + 1)
        except TimeoutError:
            self.warn(f"MCP tool {tool_name} on {srv.config.name} timed out after {self.call_timeout:g}s; "
                      "restarting the server")
            srv.restart.set()
            return ToolOutcome(None, f"MCP tool {tool_name} timed out after {self.call_timeout:g}s")
        except Exception as exc:  # noqa: BLE001 - JSON-RPC errors and broken pipes become tool errors
            from mcp.shared.exceptions import McpError

            if not isinstance(exc, McpError) or _transport_lost(exc):
                srv.restart.set()  # transport broken or server stuck: start it again
            if "timed out" in _describe(exc).lower():
                self.warn(f"MCP tool {tool_name} on {srv.config.name} timed out after {self.call_timeout:g}s; "
                          "restarting the server")
                return ToolOutcome(None, f"MCP tool {tool_name} timed out after {self.call_timeout:g}s")
            return ToolOutcome(None, _describe(exc))
        text, images = flatten(result.content)
        if result.isError:
            return ToolOutcome(text, text or "MCP tool reported an error", images)
        return ToolOutcome(text, None, images)

    async def read_resource(self, server: str, uri: str) -> Any:
        srv = self.servers.get(server)
        if srv is None or srv.session is None:
            raise LookupError(f"MCP server not available: {server}")
        from pydantic import AnyUrl

        return await asyncio.wait_for(srv.session.read_resource(AnyUrl(uri)), self.call_timeout)


def _transport_lost(exc: BaseException) -> bool:
    """The SDK's own errors for a dead or stuck server (not an error the server answered with)."""
    error = getattr(exc, "error", None)
    message = str(getattr(error, "message", "") or "").lower()
    return message == "connection closed" or "timed out" in message


def _describe(exc: BaseException) -> str:
    inner = exc
    while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
        inner = inner.exceptions[0]
    error = getattr(inner, "error", None)
    if error is not None and getattr(error, "message", None):
        code = getattr(error, "code", None)
        return f"MCP error {code}: {error.message}" if code is not None else str(error.message)
    return str(inner) or type(inner).__name__
