"""What `chapterx validate` says about the tools part of a config (unknown plugins, bad scopes,
unusable `mcp_servers` entries). Warnings only: the runtime skips what it cannot use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chapterx.tools.mcp import parse_servers
from chapterx.tools.plugins import known_names


def tool_warnings(data: Any) -> list[tuple[str, str]]:
    """(message, key) for each problem in a config mapping's tool settings."""
    if not isinstance(data, Mapping):
        return []
    out: list[tuple[str, str]] = []
    names = data.get("tool_plugins")
    if names is not None and not isinstance(names, list):
        out.append(("tool_plugins must be a list of plugin names", "tool_plugins"))
    for name in names if isinstance(names, list) else []:
        if str(name) not in known_names():
            out.append((f"unknown tool plugin {name!r} (ignored at runtime); known plugins: "
                        f"{', '.join(known_names())}", "tool_plugins"))
    pconf = data.get("plugin_config")
    for name, conf in pconf.items() if isinstance(pconf, Mapping) else []:
        scope = conf.get("state_scope") if isinstance(conf, Mapping) else None
        if scope is not None and scope not in ("global", "channel", "epic", "off"):
            out.append((f"plugin_config.{name}.state_scope {scope!r} is not one of global, channel, epic, off "
                        "(channel is used)", "plugin_config"))
    if "mcp_servers" in data:
        _, problems = parse_servers(data.get("mcp_servers"))
        out.extend((p, "mcp_servers") for p in problems)
    return out
