"""`mcp-resources`: list and read the resources of the configured MCP servers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chapterx.tools.base import CallContext, Plugin, ToolDef, ToolOutcome

_NO_ACCESS = "MCP resource access not available."


class McpResourcesPlugin(Plugin):
    name = "mcp-resources"
    tools = (
        ToolDef("list_mcp_resources",
                "List all available MCP resources. Resources are read-only data from connected services (e.g., "
                "robot state, sensor data).",
                {"type": "object", "properties": {"server": {"type": "string",
                                                             "description": "Optional: filter by server name"}},
                 "required": []}),
        ToolDef("read_mcp_resource",
                "Read the content of an MCP resource by URI. Use list_mcp_resources first to discover available "
                "resources.",
                {"type": "object", "properties": {"uri": {"type": "string", "description":
                                                          'The resource URI (e.g., "robot://state/full")'}},
                 "required": ["uri"]}),
    )

    async def call(self, tool_name: str, args: Mapping[str, Any], ctx: CallContext) -> ToolOutcome:
        mcp = ctx.mcp
        if tool_name == "list_mcp_resources":
            if mcp is None:
                return ToolOutcome(_NO_ACCESS)
            server = args.get("server")
            found = [(s, r) for s, r in mcp.resources() if not server or s == server]
            if not found:
                return ToolOutcome(f'No resources found for server "{server}".' if server
                                   else "No MCP resources available.")
            lines = [f"Available MCP Resources ({len(found)}):", ""]
            for srv, r in found:
                desc = f" - {r['description']}" if r.get("description") else ""
                lines.append(f"• {r.get('name') or r['uri']} ({srv})\n  URI: {r['uri']}{desc}\n")
            return ToolOutcome("\n".join(lines).rstrip("\n"))
        if tool_name == "read_mcp_resource":
            if mcp is None:
                return ToolOutcome(_NO_ACCESS)
            uri = str(args.get("uri") or "")
            for srv, r in mcp.resources():
                if r["uri"] == uri:
                    return await self._read(ctx, srv, uri)
            # not listed: ask every server (a server may serve templated URIs)
            for srv in list(mcp.servers):
                outcome = await self._read(ctx, srv, uri)
                if not outcome.output.startswith("Resource not found"):
                    return outcome
            return ToolOutcome(f"Resource not found or could not be read: {uri}")
        return await super().call(tool_name, args, ctx)

    @staticmethod
    async def _read(ctx: CallContext, server: str, uri: str) -> ToolOutcome:
        if ctx.mcp is None:
            raise RuntimeError("MCP resources read without an MCP manager")
        try:
            result = await ctx.mcp.read_resource(server, uri)
        except Exception:  # noqa: BLE001 - an unreadable resource is an answer, not a crash
            return ToolOutcome(f"Resource not found or could not be read: {uri}")
        parts = [getattr(c, "text", None) or f"[Binary resource: {uri}]" for c in result.contents]
        return ToolOutcome("\n".join(parts))


PLUGIN = McpResourcesPlugin()
