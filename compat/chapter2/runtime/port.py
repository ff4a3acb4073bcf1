"""What the chapter2 runtime needs from Discord, as plain records and one protocol.

chapter2's Discord interface reads more than the ChapterX pipeline does (channel topics, thread names
and parents, the send permission, pins in pin order with their attachments, the users a message
mentions), so its port is this superset. `chapterx_compat.chapter2.runtime.memory` implements it for the
golden cases and `chapterx replay`; `chapterx.discord.chapter2_port` implements it over discord.py.
Ids are ints, as Discord snowflakes are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class C2User:
    id: int
    username: str
    global_name: str | None = None
    nick: str | None = None  # server nickname (guild member display name)
    bot: bool = False

    @property
    def display_name(self) -> str:
        return self.nick or self.global_name or self.username


@dataclass(frozen=True)
class C2Channel:
    id: int
    name: str
    kind: str = "text"  # "text" | "public_thread" | "private_thread" | "dm"
    parent_id: int | None = None
    topic: str | None = None
    guild_id: int | None = None
    recipient_id: int | None = None  # dm only

    @property
    def is_thread(self) -> bool:
        return self.kind in ("public_thread", "private_thread")


@dataclass(frozen=True)
class C2Attachment:
    filename: str
    content_type: str
    url: str
    proxy_url: str
    width: int | None = None
    height: int | None = None
    size: int = 0  # bytes, as Discord reports it

    @property
    def is_image(self) -> bool:
        return self.width is not None or self.content_type.startswith("image/")


MAX_ATTACHMENT_BYTES = 1_000_000  # larger text attachments are not downloaded (history or config)


@dataclass(frozen=True)
class C2Message:
    """One Discord message with raw markup in `content`."""

    id: int
    channel_id: int
    author_id: int
    content: str
    type: str = "default"  # default | reply | thread_starter_message | pins_add | channel_name_change | ...
    mentions: tuple[int, ...] = ()
    role_mentions: tuple[int, ...] = ()
    mention_everyone: bool = False
    reply_to: int | None = None  # referenced message id
    reply_to_channel: int | None = None
    pinned: bool = False
    attachments: tuple[C2Attachment, ...] = field(default_factory=tuple)
    system_content: str | None = None  # Discord's text for system messages (pins_add, ...)

    @property
    def timestamp(self) -> float:
        """Creation time from the snowflake (epoch seconds)."""
        return ((self.id >> 22) + 1420070400000) / 1000.0


class Chapter2Port(Protocol):
    """Discord as chapter2's interface sees it: cached lookups, then async REST calls."""

    @property
    def bot_user(self) -> C2User: ...

    def user(self, user_id: int) -> C2User | None: ...

    def role_name(self, role_id: int) -> str | None: ...

    def channel(self, channel_id: int) -> C2Channel | None: ...

    def emoji_id(self, name: str, guild_id: int | None) -> int | None: ...

    def can_send(self, channel_id: int) -> bool:
        """Whether the bot may send messages in a (non-thread) guild channel."""
        ...

    async def history(self, channel_id: int, *, before: int | None = None, limit: int = 100) -> list[C2Message]:
        """Up to `limit` messages older than `before` (or the newest), newest first."""
        ...

    async def fetch_message(self, channel_id: int, message_id: int) -> C2Message | None: ...

    async def pins(self, channel_id: int) -> list[C2Message]:
        """The channel's pinned messages, oldest pin first."""
        ...

    async def download(self, url: str) -> bytes: ...

    async def send(self, channel_id: int, content: str) -> int: ...

    async def react(self, channel_id: int, message_id: int, emoji: str) -> None: ...

    async def delete(self, channel_id: int, message_id: int) -> None: ...

    async def typing(self, channel_id: int) -> None: ...
