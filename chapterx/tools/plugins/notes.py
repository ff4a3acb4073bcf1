"""`notes`: notes the model saves, shown in context at a depth that ages toward 10 (reference §5.1).

State `{notes: [{id, content, createdAt, createdByMessageId}], lastModifiedMessageId}` under the
configured scope. Tool texts are upstream's (they are request bytes). Unlike upstream, a second
note saved in the same millisecond gets a distinct id instead of a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chapterx.context.build import Injection
from chapterx.tools.base import CallContext, Plugin, ToolFailure, ToolOutcome, tool
from chapterx.tools.state import iso


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _clip(text: str, n: int) -> str:
    return text[:n] + ("..." if len(text) > n else "")


def _full(note: Mapping[str, Any]) -> str:
    return f"**Note [{note.get('id')}]** (created {note.get('createdAt')}):\n\n{note.get('content')}"


class NotesPlugin(Plugin):
    name = "notes"
    tools = (
        tool("save_note", "Save a note. Notes are visible in the context and age toward a stable position.",
             {"content": {"type": "string", "description": "The note content to save"}}, ["content"]),
        tool("list_notes", "List all saved notes with their IDs and full content"),
        tool("read_note", "Read a specific note by ID or search by title/content",
             {"id": {"type": "string", "description": "The note ID (e.g., note_abc123)"},
              "search": {"type": "string", "description": "Search term to find notes by title or content"}}),
        tool("delete_note", "Delete a note by ID",
             {"id": {"type": "string", "description": "The ID of the note to delete"}}, ["id"]),
    )

    @staticmethod
    def _state(ctx: CallContext) -> dict[str, Any] | None:
        raw = ctx.state.get() if ctx.state is not None else None
        if not isinstance(raw, dict) or not isinstance(raw.get("notes"), list):
            return None
        return raw

    async def call(self, tool_name: str, args: Mapping[str, Any], ctx: CallContext) -> ToolOutcome:
        content = args.get("content")
        if tool_name == "save_note":
            if not isinstance(content, str):
                # Upstream's handler dies slicing `undefined`; the model sees the same text.
                raise ToolFailure("Cannot read properties of undefined (reading 'slice')")
            state = self._state(ctx) or {"notes": [], "lastModifiedMessageId": None}
            taken = {n.get("id") for n in state["notes"] if isinstance(n, dict)}
            ms = int(ctx.now() * 1000)
            nid = f"note_{_base36(ms)}"
            bump = 1
            while nid in taken:  # upstream would store a duplicate id (same millisecond)
                nid = f"note_{_base36(ms)}_{bump}"
                bump += 1
            state["notes"].append({"id": nid, "content": content, "createdAt": iso(ctx.now()),
                                   "createdByMessageId": ctx.trigger_id})
            state["lastModifiedMessageId"] = ctx.trigger_id
            self._save(ctx, state)
            return ToolOutcome(f'Note will be saved: "{_clip(content, 50)}"')
        if tool_name == "delete_note":
            current = self._state(ctx)
            target = args.get("id")
            idx = next((i for i, n in enumerate(current["notes"]) if n.get("id") == target), None) if current else None
            if current is None or idx is None:
                # upstream says "will be deleted" for an id that does not exist; the model would believe it
                return ToolOutcome(f"Note not found: {target}")
            current["notes"].pop(idx)
            current["lastModifiedMessageId"] = ctx.trigger_id
            self._save(ctx, current)
            return ToolOutcome(f"Note {target} will be deleted")
        if tool_name == "list_notes":
            listed = self._state(ctx)
            if not listed or not listed["notes"]:
                return ToolOutcome("No notes saved yet. Use save_note to create one.")
            lines = [f"{i}. [{n.get('id')}] {n.get('content')}" for i, n in enumerate(listed["notes"], 1)]
            return ToolOutcome(f"**{len(listed['notes'])} notes:**\n\n" + "\n\n".join(lines))
        if tool_name == "read_note":
            wanted, search = args.get("id"), args.get("search")
            if not wanted and not search:
                return ToolOutcome("Please provide either an id or search term")
            stored = self._state(ctx)
            if not stored or not stored["notes"]:
                return ToolOutcome("No notes saved yet.")
            if wanted:
                note = next((n for n in stored["notes"] if n.get("id") == wanted), None)
                return ToolOutcome(_full(note) if note else f"Note not found: {wanted}")
            term = str(search).lower()
            hits = [n for n in stored["notes"] if term in str(n.get("content", "")).lower()]
            if not hits:
                return ToolOutcome(f'No notes found matching: "{search}"')
            if len(hits) == 1:
                return ToolOutcome(_full(hits[0]))
            return ToolOutcome(f'Found {len(hits)} notes matching "{search}":\n\n' + "\n".join(
                f"- [{n.get('id')}] {_clip(str(n.get('content', '')), 100)}" for n in hits))
        return await super().call(tool_name, args, ctx)

    @staticmethod
    def _save(ctx: CallContext, state: dict[str, Any]) -> None:
        if ctx.state is not None:
            ctx.state.set(state, ctx.trigger_id, ctx.now())

    async def injections(self, ctx: CallContext) -> list[Injection]:
        if ctx.plugin_config.get("inject_into_context") is False:
            return []
        state = self._state(ctx)
        if not state or not state["notes"]:
            return []
        text = "\n".join(["## 📝 Saved Notes", "",
                          *(f"{i}. [{n.get('id')}] {n.get('content')}" for i, n in enumerate(state["notes"], 1)),
                          "", "_Use save_note/delete_note to manage notes._"])
        since = ctx.messages_since(state.get("lastModifiedMessageId"))
        return [Injection(text, 10, 100, False, messages_since_modified=since)]


PLUGIN = NotesPlugin()
