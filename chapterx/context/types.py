"""Records passed between the context stages (fetch -> convert -> build -> render)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chapterx.discord.port import Attachment

ContentBlock = dict[str, Any]


@dataclass(frozen=True)
class Author:
    id: str
    username: str
    display_name: str
    bot: bool


@dataclass
class ContextMessage:
    """A Discord message after conversion: markup rewritten, author resolved (§2.2)."""

    id: str
    channel_id: str
    content: str
    author: Author
    timestamp: str
    attachments: list[Attachment] = field(default_factory=list)
    reactions: list[tuple[str, int]] = field(default_factory=list)
    author_roles: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    referenced_message: str | None = None


@dataclass
class ImageData:
    """An image for the provider (`data`: re-encoded as upstream, context/images.py) and, for tools that
    post it back to Discord unchanged (`share-image`), the attachment as downloaded."""

    data: bytes
    media_type: str
    width: int | None = None
    height: int | None = None
    original: bytes | None = None
    original_media_type: str | None = None


@dataclass
class Document:
    filename: str
    text: str
    size: int
    truncated: bool = False


@dataclass
class FetchedContext:
    messages: list[ContextMessage]
    images: dict[str, ImageData]  # attachment url -> image
    documents: dict[str, Document]  # attachment url -> text document
    inheritance: dict[str, Any] = field(default_factory=dict)
    did_clear: bool = False
    history_origin_channel_id: str | None = None
    anchor_trimmed: bool = False


@dataclass
class ParticipantMessage:
    """One turn as the formatters see it: a speaker name and content blocks (Anthropic shape)."""

    participant: str
    content: list[ContentBlock]
    message_id: str | None = None
    timestamp: str | None = None
    is_bot: bool = False
    is_character_override: bool = False
    cache_breakpoint: bool = False

    def text(self) -> str:
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text")

    def has_images(self) -> bool:
        return any(b.get("type") == "image" for b in self.content)


@dataclass
class BuiltContext:
    """Output of the context builder: what the formatter renders plus state bookkeeping."""

    messages: list[ParticipantMessage]
    stop_sequences: list[str]
    cache_marker: str | None
    did_roll: bool
    warnings: list[str] = field(default_factory=list)
