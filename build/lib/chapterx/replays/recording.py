"""An in-memory world that records actions in the decision vectors' shape (channel id, batch index)."""

from __future__ import annotations

import contextvars
from typing import Any

from chapterx.discord.memory import MemoryDiscord
from chapterx.discord.port import OutgoingFile, Reaction

BATCH: contextvars.ContextVar[int] = contextvars.ContextVar("batch", default=0)


class RecordingWorld(MemoryDiscord):
    """MemoryDiscord plus typing records, reaction counts and the batch that caused each action."""

    def __init__(self, world: Any) -> None:
        super().__init__(world)

    @property
    def batch(self) -> int:
        return BATCH.get()

    @batch.setter
    def batch(self, value: int) -> None:
        BATCH.set(value)

    def _record(self, action: dict[str, Any], channel_id: str) -> None:
        rest = {k: v for k, v in action.items() if k != "type"}
        self.actions.append({"type": action["type"], "channel_id": channel_id, **rest, "batch": self.batch})

    async def typing(self, channel_id: str) -> None:
        self._record({"type": "typing"}, channel_id)

    async def send(self, channel_id: str, content: str, *, reply_to: str | None = None,
                   files: list[OutgoingFile] | None = None) -> str:
        mid = await super().send(channel_id, content, reply_to=reply_to, files=files)
        last = self.actions[-1]
        batch = last.pop("batch")
        last["message_id"] = mid
        last["batch"] = batch
        return mid

    def add_reaction(self, channel_id: str, message_id: str, emoji: str) -> None:
        for m in self._history.get(channel_id, []):
            if m.id == message_id:
                for i, r in enumerate(m.reactions):
                    if r.emoji == emoji:
                        m.reactions[i] = Reaction(emoji, r.count + 1)
                        return
                m.reactions.append(Reaction(emoji, 1))
