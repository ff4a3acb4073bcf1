"""`inject`: fixed context injections from `plugin_config.inject.injections` (no tools)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chapterx.context.build import Injection
from chapterx.tools.base import CallContext, Plugin


class InjectPlugin(Plugin):
    name = "inject"

    async def injections(self, ctx: CallContext) -> list[Injection]:
        return self.static(ctx.plugin_config, ctx.warn)

    @staticmethod
    def static(pconf: Mapping[str, Any], warn: Callable[[str], None] | None = None) -> list[Injection]:
        out: list[Injection] = []
        for item in pconf.get("injections") or []:
            if not isinstance(item, dict) or not item.get("content") or not item.get("id"):
                if warn is not None:
                    warn("warn: Skipping injection with missing id or content")
                continue
            depth = int(item.get("depth") or 0)
            if item.get("anchor") == "earliest":
                depth = -(depth + 1)
            out.append(Injection(str(item["content"]), depth, int(item.get("priority") or 0),
                                 bool(item.get("as_system", False))))
        return out


PLUGIN = InjectPlugin()
