"""The plugin registry: every `tool_plugins` name this runtime knows, one module each."""

from __future__ import annotations

import importlib

from chapterx.tools.base import Plugin

# name in `tool_plugins` -> module under chapterx.tools.plugins
MODULES: dict[str, str] = {
    "config": "config",
    "notes": "notes",
    "inject": "inject",
    "timer": "timer",
    "sleep": "sleep",
    "upload": "upload",
    "share-image": "share_image",
    "character": "character",
    "mcp-resources": "mcp_resources",
}


def known_names() -> list[str]:
    return sorted(MODULES)


def available() -> dict[str, Plugin]:
    """The plugins whose module is importable (a missing one is reported, never fatal)."""
    out: dict[str, Plugin] = {}
    for name, module in MODULES.items():
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ImportError:
            continue
        plugin = getattr(mod, "PLUGIN", None)
        if isinstance(plugin, Plugin):
            out[name] = plugin
    return out


def load(name: str) -> Plugin | None:
    module = MODULES.get(name)
    if module is None:
        return None
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ImportError:
        return None
    plugin = getattr(mod, "PLUGIN", None)
    return plugin if isinstance(plugin, Plugin) else None
