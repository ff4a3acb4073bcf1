"""The tool plugins of one activation: which tools are offered, injections, and call routing.

`PluginHost(config, system)` is what the activation sees. `open()` binds it to the channel, the
trigger and the context window; `tools()` lists enabled plugins' tools then MCP tools;
`execute()` routes a call plugin-first, then to MCP (reference §5.1). Plugins live in
`chapterx.tools.plugins`, process-wide state (timers, MCP, plugin state root) in `ToolSystem`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chapterx.config.model import BotConfig
from chapterx.config.typed import as_bot_config
from chapterx.context.build import Injection
from chapterx.tools import plugins as registry
from chapterx.tools.base import CallContext, Plugin, ToolFailure, ToolOutcome
from chapterx.tools.state import ScopedState

__all__ = ["PluginHost", "ToolOutcome"]

log = logging.getLogger(__name__)


def _scope(pconf: Mapping[str, Any]) -> str:
    scope = pconf.get("state_scope")
    return str(scope) if scope in ("global", "channel", "epic", "off") else "channel"


def _recent_lines(messages: Sequence[Any]) -> list[str]:
    """Context messages (already converted: mentions read `<@username>`) as `username: text`."""
    out = []
    for m in messages:
        author = getattr(m, "author", None)
        text = getattr(m, "content", "")
        if author is not None and text:
            out.append(f"{author.username}: {text}")
    return out


@dataclass
class PluginHost:
    """Enabled plugins for one bot config, bound to one activation by `open()`."""

    config: BotConfig  # a mapping passed here is converted once, in __post_init__
    system: Any = None  # chapterx.tools.system.ToolSystem; None: no persistent state, timers or MCP
    warnings: list[str] = field(default_factory=list)
    _ctx: dict[str, Any] = field(default_factory=dict)
    _injections: list[Injection] = field(default_factory=list)
    _memory: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config = as_bot_config(self.config)

    # -- configuration -----------------------------------------------------------------------
    def _pconf(self, name: str) -> Mapping[str, Any]:
        pconf = self.config.plugin_config
        item = pconf.get(name) if isinstance(pconf, Mapping) else None
        return item if isinstance(item, Mapping) else {}

    def loaded(self) -> list[tuple[str, Plugin]]:
        """Every configured plugin we know (unknown names are warned about once per activation)."""
        out: list[tuple[str, Plugin]] = []
        for raw in self.config.tool_plugins or ():
            name = str(raw)
            plugin = registry.load(name)
            if plugin is None:
                self._warn(f"Plugin not found: {name} (known: {', '.join(registry.known_names())})")
                continue
            if all(n != name for n, _ in out):
                out.append((name, plugin))
        return out

    def enabled(self) -> list[str]:
        return [n for n, _ in self.loaded() if _scope(self._pconf(n)) != "off"]

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning("%s", message)

    # -- binding -----------------------------------------------------------------------------
    async def open(self, *, channel_id: str, guild_id: str, trigger_id: str | None, bot_id: str,
                   context_message_ids: Sequence[str] = (), now: Callable[[], float] | None = None,
                   port: Any = None, base_dir: Path | None = None,
                   images: Sequence[Mapping[str, Any]] = (), messages: Sequence[Any] = ()) -> PluginHost:
        """Bind to one activation: start MCP servers if needed and compute the injections.

        `port` (a DiscordPort) lets plugins post and pin (`sleep`, `config`); pinning needs the
        port's optional `pin(channel_id, message_id)`. `images`: the context's Discord images, newest
        first (`{filename, mime, data}`), for `share-image`."""
        self._memory["context_images"] = list(images)
        self._memory["recent_lines"] = _recent_lines(messages)
        self._memory["mcp_images"] = []
        send: Callable[[str], Awaitable[list[str]]] | None = None
        pin: Callable[[str], Awaitable[None]] | None = None
        react: Callable[[str, str], Awaitable[None]] | None = None
        if port is not None:
            async def send(content: str) -> list[str]:
                return [await port.send(channel_id, content)]

            async def send_file(caption: str, name: str, data: bytes) -> str:
                from chapterx.discord.port import OutgoingFile

                mid: str = await port.send(channel_id, caption, files=[OutgoingFile(name, data)])
                return mid

            self._memory["send_file"] = send_file

            async def react(message_id: str, emoji: str) -> None:
                await port.react(channel_id, message_id, emoji)

            if callable(getattr(port, "pin", None)):
                async def pin(message_id: str) -> None:
                    await port.pin(channel_id, message_id)
        self._ctx = {"channel_id": channel_id, "guild_id": guild_id, "trigger_id": trigger_id or "",
                     "bot_id": bot_id, "context_message_ids": tuple(context_message_ids),
                     "now": now or (self.system.now if self.system is not None else time.time),
                     "send": send, "pin": pin, "react": react,
                     "base_dir": self.system.base_dir if self.system is not None and self.system.base_dir else base_dir}
        if self.system is not None:
            self._memory["http_client_factory"] = self.system.http_client
        if self.system is not None and self.config.mcp_servers:
            await self.system.ensure_mcp(self.config)
        self._injections = []
        for name, plugin in self.loaded():
            if _scope(self._pconf(name)) == "off":
                continue
            try:
                self._injections.extend(await plugin.injections(self._context(name)))
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the activation
                self._warn(f"plugin {name}: context injection failed: {exc}")
        return self

    def _context(self, name: str) -> CallContext:
        c = self._ctx
        pconf = self._pconf(name)
        state = None
        if self.system is not None and c:
            state = ScopedState(self.system.state_root, name, _scope(pconf), c["channel_id"],
                                c["context_message_ids"])
        kwargs: dict[str, Any] = {}
        if c.get("send") is not None:
            kwargs["send"] = c["send"]
        for key in ("pin", "react"):
            if c.get(key) is not None:
                kwargs[key] = c[key]
        return CallContext(
            bot_id=c.get("bot_id", ""), channel_id=c.get("channel_id", ""), guild_id=c.get("guild_id", ""),
            trigger_id=c.get("trigger_id", ""), config=self.config, plugin_config=pconf, state=state,
            context_message_ids=c.get("context_message_ids", ()), now=c.get("now") or time.time,
            timers=self.system.timers if self.system is not None else None,
            mcp=self.system.mcp if self.system is not None else None, warn=self._warn,
            base_dir=c.get("base_dir") or (self.system.base_dir if self.system is not None else None),
            extra=self._memory, **kwargs)

    # -- what the activation uses --------------------------------------------------------------
    def tools(self) -> list[dict[str, Any]]:
        if not self.config.tools_enabled:
            return []
        mcp = self.system.mcp if self.system is not None else None
        # MCP tools first, then plugins' (upstream's catalogue order)
        out: list[dict[str, Any]] = [t.as_dict() for t in mcp.tools()] if mcp is not None else []
        for name, plugin in self.loaded():
            if _scope(self._pconf(name)) != "off":
                plugin_tools = [t.as_dict() for t in plugin.tools]
                taken = {t["name"] for t in plugin_tools}
                out = [t for t in out if t["name"] not in taken] + plugin_tools
        return out

    def handles_calls(self) -> bool:
        """Whether a tool call is answered at all (a disabled plugin's tools still answer)."""
        if not self.config.tools_enabled:
            return False
        return bool(self.loaded()) or (self.system is not None and self.system.mcp is not None)

    def injections(self) -> list[Injection]:
        if not self._ctx:  # not opened (e.g. a caller without tools): inject-only, stateless
            inject = registry.load("inject")
            if inject is not None and "inject" in self.enabled():
                from chapterx.tools.plugins.inject import InjectPlugin

                if isinstance(inject, InjectPlugin):
                    return inject.static(self._pconf("inject"))
        return list(self._injections)

    async def execute(self, name: str, tool_input: Mapping[str, Any]) -> ToolOutcome:
        args = tool_input if isinstance(tool_input, Mapping) else {}
        for pname, plugin in self.loaded():
            if any(t.name == name for t in plugin.tools):
                if _scope(self._pconf(pname)) == "off":
                    return ToolOutcome(f'Plugin "{pname}" is disabled', "Plugin disabled")
                try:
                    return await plugin.call(name, args, self._context(pname))
                except ToolFailure as exc:
                    self._warn("error: Plugin tool execution failed")
                    return ToolOutcome("", str(exc))
                except Exception as exc:  # a failing tool is a tool error, never a crash
                    log.exception("plugin tool %s failed", name)
                    self._warn("error: Plugin tool execution failed")
                    return ToolOutcome("", str(exc) or type(exc).__name__)
        mcp = self.system.mcp if self.system is not None else None
        if mcp is None:
            return ToolOutcome(None, f"No MCP client found for tool: {name}")
        outcome: ToolOutcome = await mcp.call(name, args)
        self._memory.setdefault("mcp_images", []).extend((name, img) for img in outcome.images)
        return outcome
