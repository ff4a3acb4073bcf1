"""`config`: the model reads its own config (secrets redacted) and asks for changes by posting and
pinning a `.config` message, which applies from the next activation (reference §5.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chapterx.tools.base import CallContext, Plugin, ToolOutcome, js_json, tool

SENSITIVE = ("api_key", "token", "secret", "password", "perplexity_api_key")
FORBIDDEN = ("api_key", "token", "secret", "password", "mcp_servers", "tool_plugins")


def _sensitive(key: str) -> bool:
    return any(s in key.lower() for s in SENSITIVE)


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: (v[:4] + "...[redacted]" if _sensitive(str(k)) and isinstance(v, str) else _redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _show(key: str, value: Any) -> str:
    if _sensitive(key) and isinstance(value, str):
        return value[:4] + "...[redacted]"
    if isinstance(value, Mapping | list):
        return js_json(_redact(value), indent=2)
    return js_json(value)


class ConfigPlugin(Plugin):
    name = "config"
    tools = (
        tool("list_config", "List current bot configuration values",
             {"filter": {"type": "string", "description": "Optional filter - only show keys containing this string"}}),
        tool("set_config", "Change bot configuration by pinning a YAML .config message.",
             {"key": {"type": "string", "description": "Config key to set (e.g. system_prompt, temperature)"},
              "value": {"type": "string", "description": "Value to set. For multiline, use actual newlines."}},
             ["key", "value"]),
    )

    async def call(self, tool_name: str, args: Mapping[str, Any], ctx: CallContext) -> ToolOutcome:
        if tool_name == "list_config":
            needle = str(args.get("filter") or "").lower()
            # The tool result lists the resolved mapping exactly as upstream's (its keys, order and values).
            rows = [f"{k}: {_show(str(k), v)}" for k, v in ctx.config.raw.items()
                    if not needle or needle in str(k).lower()]
            return ToolOutcome("\n".join(rows))
        if tool_name == "set_config":
            key, value = args.get("key"), args.get("value")
            if not key or value is None:
                return ToolOutcome("Error: key and value are required")
            key = str(key)
            if any(f in key.lower() for f in FORBIDDEN):
                return ToolOutcome(f"Error: Cannot change sensitive key: {key}")
            text = value if isinstance(value, str) else js_json(value)
            if isinstance(value, str) and "\n" in value:
                text = "|\n" + "\n".join(f"  {line}" for line in value.split("\n"))
            ids = await ctx.send(f".config {ctx.bot_id}\n---\n{key}: {text}")
            if ids:
                await ctx.pin(ids[0])
            return ToolOutcome(f"Config change pinned. {key} will update on next message.")
        return await super().call(tool_name, args, ctx)


PLUGIN = ConfigPlugin()
