"""The one small plugin interface every tool plugin implements (reference §5.1).

A plugin offers tool definitions, may add context injections, and answers calls. Everything it
needs from the outside (state, clock, Discord sends and pins, timers, MCP) arrives in a
`CallContext`, so a plugin module is pure logic plus its own state shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chapterx.config.model import BotConfig
from chapterx.context.build import Injection

if TYPE_CHECKING:
    from chapterx.tools.mcp import McpManager
    from chapterx.tools.state import ScopedState
    from chapterx.tools.timers import TimerScheduler


@dataclass(frozen=True)
class ToolDef:
    """A tool as offered to the model (the upstream `input_schema` shape)."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    source: str = ""  # "plugin:<name>" or the MCP server name

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": dict(self.input_schema)}


@dataclass
class ToolOutcome:
    """What a call produced: output (string or JSON-able), an error message, MCP images."""

    output: Any
    error: str | None = None
    images: list[dict[str, str]] = field(default_factory=list)


class ToolFailure(Exception):
    """Raised by a plugin handler: reported as `Error executing <tool>: <message>`."""


async def _no_send(_content: str) -> list[str]:
    return []


async def _no_pin(_message_id: str) -> None:
    # never pretend: a plugin that needs a pin reports that it could not pin
    raise RuntimeError("this Discord connection cannot pin messages")


async def _no_react(_message_id: str, _emoji: str) -> None:
    return None


def js_json(value: Any, *, indent: int | None = None) -> str:
    """`JSON.stringify` as the reference writes it (integral floats without `.0`, no ASCII escaping)."""
    def fix(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {str(k): fix(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [fix(x) for x in v]
        return v
    if indent is None:
        return json.dumps(fix(value), ensure_ascii=False, separators=(",", ":"))
    return json.dumps(fix(value), ensure_ascii=False, indent=indent)


@dataclass
class CallContext:
    """Everything one plugin sees during one activation."""

    bot_id: str
    channel_id: str
    guild_id: str
    trigger_id: str
    config: BotConfig
    plugin_config: Mapping[str, Any]
    state: ScopedState | None = None
    context_message_ids: Sequence[str] = ()
    now: Callable[[], float] = time.time
    send: Callable[[str], Awaitable[list[str]]] = _no_send
    pin: Callable[[str], Awaitable[None]] = _no_pin
    react: Callable[[str, str], Awaitable[None]] = _no_react
    timers: TimerScheduler | None = None
    mcp: McpManager | None = None
    warn: Callable[[str], None] = lambda _m: None
    base_dir: Any = None  # pathlib.Path the em runs in (relative `upload` paths, `character` files)
    extra: dict[str, Any] = field(default_factory=dict)

    def http_client(self) -> Any:
        """The process's shared HTTP client, created only when a plugin first needs one (importing
        httpx and opening a pool costs memory every bot would otherwise pay)."""
        factory = self.extra.get("http_client_factory")
        return factory() if callable(factory) else self.extra.get("http_client")

    def messages_since(self, message_id: str | None) -> int | None:
        """How many context messages are newer than `message_id` (None: not in context)."""
        if not message_id:
            return None
        ids = list(self.context_message_ids)
        if message_id not in ids:
            return None
        return len(ids) - 1 - ids.index(message_id)


class Plugin:
    """Base class: override `tools`, `call` and, if the plugin injects context, `injections`."""

    name: str = ""
    tools: tuple[ToolDef, ...] = ()

    async def call(self, tool: str, args: Mapping[str, Any], ctx: CallContext) -> ToolOutcome:
        raise ToolFailure(f"{self.name} has no tool {tool}")

    async def injections(self, ctx: CallContext) -> list[Injection]:
        return []


def tool(name: str, description: str, properties: Mapping[str, Any] | None = None,
         required: Sequence[str] = ()) -> ToolDef:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties or {})}
    if required:
        schema["required"] = list(required)
    return ToolDef(name, description, schema)
