"""chapter2's message model: `Message(author, content, ...)` with `Author(name)`.

`author=None` (no Author object) and `Author(None)` are different on purpose: the IRC format renders the
first as raw content and the second as `<None> ...`, exactly as chapter2 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Author:
    name: str | None


@dataclass(frozen=True)
class Message:
    author: Author | None
    content: str
    timestamp: float | None = 0
    type: str | None = None
    id: str | None = None
    reply_to: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """From the vectors' JSON shape `{author: null | {name}, content, timestamp, type, id, reply_to}`."""
        author = data.get("author")
        return cls(
            author=None if author is None else Author(author.get("name")),
            content=data.get("content", ""),
            timestamp=data.get("timestamp", 0),
            type=data.get("type"),
            id=data.get("id"),
            reply_to=data.get("reply_to"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "author": None if self.author is None else {"name": self.author.name},
            "content": self.content,
            "timestamp": self.timestamp,
            "type": self.type,
            "id": self.id,
            "reply_to": self.reply_to,
        }
