"""The built-in tool plugins the pipeline needs for prompts: `notes` and `inject` (reference §5.1).

Only what shapes requests and tool results is here: tool definitions (names, descriptions,
schemas exactly as upstream declares them), a per-channel in-memory note store, and the `inject`
plugin's context injections. Other plugins are absent (their tools are not offered).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chapterx.context.build import Injection

NOTES_TOOLS: list[dict[str, Any]] = [
    {
        "name": "save_note",
        "description": "Save a note. Notes are visible in the context and age toward a stable position.",
        "input_schema": {
            "type": "object",
            "properties": {"content": {"type": "string", "description": "The note content to save"}},
            "required": ["content"],
        },
    },
    {
        "name": "list_notes",
        "description": "List all saved notes with their IDs and full content",
        "input_schema": {"type": "object", "properties": {}},
    },
    {
        "name": "read_note",
        "description": "Read a specific note by ID or search by title/content",
        "input_schema": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "description": "The note ID (e.g., note_abc123)"},
                "search": {"type": "string", "description": "Search term to find notes by title or content"},
            },
        },
    },
    {
        "name": "delete_note",
        "description": "Delete a note by ID",
        "input_schema": {
            "type": "object",
            "properties": {"id": {"type": "string", "description": "The ID of the note to delete"}},
            "required": ["id"],
        },
    },
]


@dataclass
class ToolOutcome:
    output: Any
    error: str | None = None
    images: list[dict[str, str]] = field(default_factory=list)


@dataclass
class PluginHost:
    """Enabled plugins for one bot config, with their tools and state."""

    config: Mapping[str, Any]
    notes: dict[str, str] = field(default_factory=dict)

    def enabled(self) -> list[str]:
        names = self.config.get("tool_plugins") or []
        pconf = self.config.get("plugin_config") or {}
        out = []
        for n in names:
            scope = (pconf.get(n) or {}).get("state_scope") if isinstance(pconf, Mapping) else None
            if scope != "off":
                out.append(str(n))
        return out

    def tools(self) -> list[dict[str, Any]]:
        if self.config.get("tools_enabled") is False:
            return []
        out: list[dict[str, Any]] = []
        if "notes" in self.enabled():
            out.extend(NOTES_TOOLS)
        return out

    def injections(self) -> list[Injection]:
        out: list[Injection] = []
        if "inject" in self.enabled():
            pconf = (self.config.get("plugin_config") or {}).get("inject") or {}
            for item in pconf.get("injections") or []:
                depth = int(item.get("depth") or 0)
                if item.get("anchor") == "earliest":
                    depth = -(depth + 1)
                out.append(Injection(str(item.get("content") or ""), depth, int(item.get("priority") or 0),
                                     bool(item.get("as_system", False))))
        return out

    async def execute(self, name: str, tool_input: Mapping[str, Any]) -> ToolOutcome:
        if name == "save_note" and "notes" in self.enabled():
            content = str(tool_input.get("content", ""))
            self.notes[f"note_{secrets.token_hex(3)}"] = content
            return ToolOutcome(f'Note will be saved: "{content}"')
        if name == "list_notes" and "notes" in self.enabled():
            return ToolOutcome(json.dumps([{"id": k, "content": v} for k, v in self.notes.items()]))
        if name == "read_note" and "notes" in self.enabled():
            nid = tool_input.get("id")
            if nid and nid in self.notes:
                return ToolOutcome(self.notes[str(nid)])
            term = str(tool_input.get("search") or "").lower()
            hits = [v for v in self.notes.values() if term and term in v.lower()]
            return ToolOutcome("\n".join(hits) if hits else "No matching note")
        if name == "delete_note" and "notes" in self.enabled():
            removed = self.notes.pop(str(tool_input.get("id")), None)
            return ToolOutcome("Deleted" if removed is not None else "", None if removed is not None else "Note not found")
        return ToolOutcome("", f"Unknown tool: {name}")
