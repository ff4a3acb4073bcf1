"""An in-memory Discord world implementing `DiscordPort`, built from the vectors' `discord` object.

Used by tests and `chapterx replay`: history, pins and attachment bytes come from the case, and
every outgoing call is recorded in `actions` in the vectors' `discord_actions` shape. Sent
messages get ids 1900000000000000001, ... and join the channel history, as on Discord.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from chapterx.discord.port import (
    Attachment,
    Channel,
    Emoji,
    Member,
    Message,
    OutgoingFile,
    Pin,
    Reaction,
    Role,
    User,
)

FIRST_SENT_ID = 1900000000000000001


def _message_from_dict(raw: Mapping[str, Any], channel_id: str) -> tuple[Message, dict[str, bytes]]:
    attachments: list[Attachment] = []
    blobs: dict[str, bytes] = {}
    for a in raw.get("attachments") or []:
        att = Attachment(
            id=str(a["id"]),
            filename=str(a.get("filename", "")),
            content_type=str(a.get("content_type") or ""),
            size=int(a.get("size") or 0),
            url=str(a.get("url") or f"memory://{a['id']}"),
            width=a.get("width"),
            height=a.get("height"),
        )
        attachments.append(att)
        if a.get("data_base64") is not None:
            blobs[att.url] = base64.b64decode(a["data_base64"])
        elif a.get("text") is not None:
            blobs[att.url] = str(a["text"]).encode("utf-8")
    msg = Message(
        id=str(raw["id"]),
        channel_id=channel_id,
        author_id=raw.get("author_id"),
        content=str(raw.get("content") or ""),
        type=int(raw.get("type", 19 if raw.get("reply_to") else 0)),
        reply_to=raw.get("reply_to"),
        timestamp=str(raw.get("timestamp") or ""),
        attachments=attachments,
        reactions=[Reaction(str(r["emoji"]), int(r.get("count", 1))) for r in raw.get("reactions") or []],
        system=bool(raw.get("system", False)),
        mention_everyone=bool(raw.get("mention_everyone", False)),
        reply_ping=bool(raw.get("reply_ping", True)),
    )
    return msg, blobs


class MemoryDiscord:
    """A whole guild in memory; `actions` records what the bot did, in order."""

    def __init__(self, world: Mapping[str, Any]) -> None:
        self._guild_id = str(world.get("guild_id") or "")
        self._bot_user_id = str(world["bot_user_id"])
        self.primary_channel_id = str(world["channel_id"])
        self._users = {
            str(u["id"]): User(str(u["id"]), str(u["username"]), u.get("global_name"), bool(u.get("bot")))
            for u in world.get("users") or []
        }
        self._members = {
            str(m["user_id"]): Member(
                str(m["user_id"]), m.get("nickname"), tuple(m.get("role_ids") or ()), str(m.get("joined_at") or "")
            )
            for m in world.get("members") or []
        }
        self._roles = {str(r["id"]): Role(str(r["id"]), str(r["name"])) for r in world.get("roles") or []}
        self._emojis = [
            Emoji(str(e["id"]), str(e["name"]), bool(e.get("animated"))) for e in world.get("emojis") or []
        ]
        self._channels: dict[str, Channel] = {
            self.primary_channel_id: Channel(self.primary_channel_id, str(world.get("channel_name") or ""))
        }
        self._history: dict[str, list[Message]] = {}
        self._pins: dict[str, list[Pin]] = {}
        self._blobs: dict[str, bytes] = {}
        self._load_channel(self.primary_channel_id, world.get("messages") or [], world.get("pins") or [])
        for ch in world.get("channels") or []:
            cid = str(ch["id"])
            if cid != self.primary_channel_id:
                self._channels[cid] = Channel(
                    cid, str(ch.get("name") or ""), str(ch.get("type") or "text"), ch.get("parent_id")
                )
            else:
                self._channels[cid] = Channel(
                    cid, self._channels[cid].name or str(ch.get("name") or ""),
                    str(ch.get("type") or "text"), ch.get("parent_id"),
                )
            if "messages" in ch or "pins" in ch:
                self._load_channel(cid, ch.get("messages") or [], ch.get("pins") or [])
        self._next_id = FIRST_SENT_ID
        self.actions: list[dict[str, Any]] = []
        self.warnings: list[str] = []  # what a connector would log about sends (vector `warnings`)
        self.record_channel_ids = False

    def _load_channel(self, cid: str, messages: list[Mapping[str, Any]], pins: list[Mapping[str, Any]]) -> None:
        hist = self._history.setdefault(cid, [])
        for raw in messages:
            msg, blobs = _message_from_dict(raw, cid)
            hist.append(msg)
            self._blobs.update(blobs)
        self._pins[cid] = [
            Pin(
                str(p["id"]), str(p.get("content") or ""), str(p.get("author_id") or ""),
                bool(p.get("author_bot", False)), tuple(p.get("mentioned_role_ids") or ()),
            )
            for p in pins
        ]

    def add_message(self, channel_id: str, raw: Mapping[str, Any]) -> Message:
        """A gateway `message_create`: the message joins the channel history."""
        msg, blobs = _message_from_dict(raw, channel_id)
        self._history.setdefault(channel_id, []).append(msg)
        self._blobs.update(blobs)
        return msg

    # -- lookups -------------------------------------------------------------------------------
    @property
    def bot_user_id(self) -> str:
        return self._bot_user_id

    @property
    def guild_id(self) -> str:
        return self._guild_id

    def user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def member(self, user_id: str) -> Member | None:
        return self._members.get(user_id)

    def members(self) -> list[Member]:
        return list(self._members.values())

    async def search_members(self, query: str, limit: int = 10) -> list[tuple[User, Member]]:
        """Discord's member search: a prefix match on username, nickname or global name."""
        q = query.lower()
        found: list[tuple[User, Member]] = []
        for mem in self._members.values():
            user = self.user(mem.user_id)
            if user is None:
                continue
            if any(n and n.lower().startswith(q) for n in (user.username, mem.nickname, user.global_name)):
                found.append((user, mem))
        return found[:limit]

    def role(self, role_id: str) -> Role | None:
        return self._roles.get(role_id)

    def channel(self, channel_id: str) -> Channel | None:
        return self._channels.get(channel_id)

    def emojis(self) -> list[Emoji]:
        return list(self._emojis)

    # -- reads ---------------------------------------------------------------------------------
    async def fetch_messages(
        self, channel_id: str, *, before: str | None = None, limit: int = 100
    ) -> list[Message]:
        hist = sorted(self._history.get(channel_id, []), key=lambda m: int(m.id))
        if before is not None:
            import bisect

            keys = [int(m.id) for m in hist]
            hist = hist[: bisect.bisect_left(keys, int(before))]
        return list(reversed(hist[-limit:])) if limit > 0 else []

    async def fetch_message(self, channel_id: str, message_id: str) -> Message | None:
        for m in self._history.get(channel_id, []):
            if m.id == message_id:
                return m
        return None

    async def fetch_pins(self, channel_id: str) -> list[Pin]:
        return list(self._pins.get(channel_id, []))

    async def fetch_attachment(self, url: str) -> bytes:
        if url not in self._blobs:
            raise FileNotFoundError(url)
        return self._blobs[url]

    # -- writes --------------------------------------------------------------------------------
    def _new_id(self) -> str:
        nid = str(self._next_id)
        self._next_id += 1
        return nid

    def _record(self, action: dict[str, Any], channel_id: str) -> None:
        if self.record_channel_ids:
            action = {"type": action["type"], "channel_id": channel_id, **{k: v for k, v in action.items() if k != "type"}}
        self.actions.append(action)

    async def send(
        self,
        channel_id: str,
        content: str,
        *,
        reply_to: str | None = None,
        files: list[OutgoingFile] | None = None,
    ) -> str:
        if reply_to is not None and await self.fetch_message(channel_id, reply_to) is None:
            reply_to = None  # Discord rejects a reply to a vanished message; send it plain
            self.warnings.append("warn: Reply target deleted, sending without reply")
        mid = self._new_id()
        action: dict[str, Any] = {"type": "send", "content": content, "reply_to": reply_to}
        if files:
            action["files"] = [_file_record(f) for f in files]
        self._record(action, channel_id)
        self._history.setdefault(channel_id, []).append(
            Message(mid, channel_id, self._bot_user_id, content, 19 if reply_to else 0, reply_to)
        )
        return mid

    async def react(self, channel_id: str, message_id: str, emoji: str) -> None:
        self._record({"type": "reaction", "message_id": message_id, "emoji": emoji}, channel_id)

    async def delete(self, channel_id: str, message_id: str) -> None:
        self._record({"type": "delete", "message_id": message_id}, channel_id)
        hist = self._history.get(channel_id, [])
        self._history[channel_id] = [m for m in hist if m.id != message_id]

    async def webhook_send(
        self, channel_id: str, content: str, *, username: str, avatar_url: str | None = None
    ) -> str:
        mid = self._new_id()
        self._record({"type": "webhook", "content": content, "username": username}, channel_id)
        return mid

    async def typing(self, channel_id: str) -> None:
        return None


def _file_record(f: OutgoingFile) -> dict[str, str]:
    try:
        return {"name": f.name, "content": f.data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"name": f.name, "content_base64": base64.b64encode(f.data).decode("ascii")}
