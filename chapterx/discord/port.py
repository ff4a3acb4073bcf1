"""The narrow Discord port the activation pipeline talks to.

The pipeline never imports discord.py: it reads history, pins, members and emojis and performs
sends, reactions, deletes and webhook posts through this protocol. Tests and `chapterx replay`
use the in-memory implementation (`chapterx.discord.memory`); production wraps discord.py.
Records are plain dataclasses so context building stays pure and cheap to test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

MESSAGE_TYPE_DEFAULT = 0
MESSAGE_TYPE_REPLY = 19


@dataclass(frozen=True)
class User:
    id: str
    username: str
    global_name: str | None = None
    bot: bool = False


@dataclass(frozen=True)
class Member:
    user_id: str
    nickname: str | None = None
    role_ids: tuple[str, ...] = ()
    joined_at: str = ""


@dataclass(frozen=True)
class Role:
    id: str
    name: str


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    type: str = "text"  # "text" | "thread" | "dm"
    parent_id: str | None = None


@dataclass(frozen=True)
class Emoji:
    id: str
    name: str
    animated: bool = False


@dataclass(frozen=True)
class Attachment:
    id: str
    filename: str
    content_type: str
    size: int
    url: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Reaction:
    emoji: str
    count: int = 1


@dataclass
class Message:
    """One Discord message as the gateway/REST layer hands it over (raw markup in `content`)."""

    id: str
    channel_id: str
    author_id: str | None
    content: str
    type: int = MESSAGE_TYPE_DEFAULT
    reply_to: str | None = None
    timestamp: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    system: bool = False
    mention_everyone: bool = False
    reply_ping: bool = True


@dataclass(frozen=True)
class Pin:
    id: str
    content: str
    author_id: str
    author_bot: bool = False
    mentioned_role_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutgoingFile:
    name: str
    data: bytes


class DiscordPort(Protocol):
    """What one activation needs from Discord; lookups are cache reads, the rest is async I/O."""

    @property
    def bot_user_id(self) -> str: ...

    @property
    def guild_id(self) -> str: ...

    def user(self, user_id: str) -> User | None: ...

    def member(self, user_id: str) -> Member | None: ...

    def role(self, role_id: str) -> Role | None: ...

    def channel(self, channel_id: str) -> Channel | None: ...

    def emojis(self) -> list[Emoji]: ...

    def members(self) -> list[Member]: ...

    async def search_members(self, query: str, limit: int = 10) -> list[tuple[User, Member]]:
        """Guild members whose username, nickname or global name starts with `query` (Discord's search)."""
        ...

    async def fetch_messages(
        self, channel_id: str, *, before: str | None = None, limit: int = 100
    ) -> list[Message]:
        """Up to `limit` messages older than `before` (or the newest), newest first."""
        ...

    async def fetch_message(self, channel_id: str, message_id: str) -> Message | None: ...

    async def fetch_pins(self, channel_id: str) -> list[Pin]: ...

    async def fetch_attachment(self, url: str) -> bytes: ...

    async def send(
        self,
        channel_id: str,
        content: str,
        *,
        reply_to: str | None = None,
        files: list[OutgoingFile] | None = None,
    ) -> str:
        """Post one message; returns its id. A vanished reply target sends without reference."""
        ...

    async def react(self, channel_id: str, message_id: str, emoji: str) -> None: ...

    async def delete(self, channel_id: str, message_id: str) -> None: ...

    async def webhook_send(
        self, channel_id: str, content: str, *, username: str, avatar_url: str | None = None
    ) -> str: ...

    async def typing(self, channel_id: str) -> None: ...
