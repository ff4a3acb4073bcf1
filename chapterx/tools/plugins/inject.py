"""`inject`: fixed context injections from `plugin_config.inject.injections` (no tools)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chapterx.context.build import Injection
from chapterx.tools.base import CallContext, Plugin


class InjectPlugin(Plugin):
    name = "inject"

    async def injections(self, ctx: CallContext) -> list[Injection]:
        return self.static(ctx.plugin_config)

    @staticmethod
    def static(pconf: Mapping[str, Any]) -> list[Injection]:
        out: list[Injection] = []
        for item in pconf.get("injections") or []:
            if not isinstance(item, dict) or not item.get("content"):
                continue
            depth = int(item.get("depth") or 0)
            if item.get("anchor") == "earliest":
                depth = -(depth + 1)
            out.append(Injection(str(item["content"]), depth, int(item.get("priority") or 0),
                                 bool(item.get("as_system", False))))
        return out


PLUGIN = InjectPlugin()
