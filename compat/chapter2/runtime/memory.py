"""An in-memory Discord for the chapter2 runtime, built from a `discord-runtime.json` case input.

Used by the golden tests and `chapterx replay`: channels, users, roles, emojis, messages, pins (in pin
order) and attachment texts come from the case; sends, reactions and deletes change the world and are
counted. Sent messages get ids from 1350300000000000000 in steps of 1<<22, as in the vectors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from chapterx_compat.chapter2.runtime.port import C2Attachment, C2Channel, C2Message, C2User

FIRST_SENT_ID = 1350300000000000000
_TYPES = {"default", "reply", "thread_starter_message", "pins_add", "channel_name_change", "thread_created"}


def _system_content(kind: str, author: str, content: str) -> str | None:
    """discord.py's `Message.system_content` for the system types the cases use."""
    if kind == "pins_add":
        return f"{author} pinned a message to this channel."
    if kind == "channel_name_change":
        return f"{author} changed the channel name: **{content}**"
    if kind == "thread_created":
        return f"{author} started a thread: **{content}**. See all **threads**."
    return None


class MemoryWorld:
    """`Chapter2Port` over plain dicts."""

    def __init__(self, inp: Mapping[str, Any]) -> None:
        b = inp["bot_user"]
        self._bot = C2User(int(b["id"]), str(b["username"]), b.get("global_name"), None, True)
        self.users: dict[int, C2User] = {self._bot.id: self._bot}
        for u in inp.get("users") or []:
            self.users[int(u["id"])] = C2User(int(u["id"]), str(u["username"]), u.get("global_name"), u.get("nick"),
                                              bool(u.get("bot")))
        guild = inp.get("guild") or {}
        self.guild_id = int(guild["id"]) if guild.get("id") is not None else None
        self.roles = {int(r["id"]): str(r["name"]) for r in guild.get("roles") or []}
        self.emojis = {str(e["name"]): int(e["id"]) for e in guild.get("emojis") or []}
        self.channels: dict[int, C2Channel] = {}
        self.denied: dict[int, set[str]] = {}
        for c in inp.get("channels") or []:
            kind = c.get("type", "text")
            self.channels[int(c["id"])] = C2Channel(
                int(c["id"]), str(c.get("name") or ""), kind,
                int(c["parent_id"]) if c.get("parent_id") is not None else None, c.get("topic"),
                None if kind == "dm" else self.guild_id,
                int(c["recipient_id"]) if c.get("recipient_id") is not None else None)
            self.denied[int(c["id"])] = set(c.get("deny_bot") or [])
        self.files: dict[str, bytes] = {}
        self.messages: dict[int, list[C2Message]] = {cid: [] for cid in self.channels}
        raw = list(inp.get("messages") or [])
        by_id = {int(x["id"]): x for x in raw}
        for x in raw:
            self._add(x, by_id)
        for msgs in self.messages.values():
            msgs.sort(key=lambda x: x.id)
        order = {int(k): [int(i) for i in v] for k, v in (inp.get("pin_order") or {}).items()}
        self.pin_order: dict[int, list[int]] = {}
        for cid, msgs in self.messages.items():
            self.pin_order[cid] = order.get(cid) or [x.id for x in msgs if x.pinned]
        self.next_id = FIRST_SENT_ID
        self.typing_count = 0
        self.actions: list[dict[str, Any]] = []

    def _add(self, x: Mapping[str, Any], by_id: Mapping[int, Mapping[str, Any]]) -> None:
        mid, cid = int(x["id"]), int(x["channel_id"])
        author = int(x["author_id"])
        mentions = [int(i) for i in x.get("mentions") or []]
        reply = x.get("reply_to") or None
        reply_id = reply_channel = None
        kind = str(x.get("type") or "default")
        if reply:
            reply_id = int(reply["message_id"])
            reply_channel = int(reply.get("channel_id") or cid)
            if kind == "default":
                kind = "reply"
            ref = by_id.get(reply_id)
            if reply.get("ping") and ref is not None and int(ref["author_id"]) not in mentions:
                mentions.append(int(ref["author_id"]))
        atts = []
        for a in x.get("attachments") or []:
            url = f"https://cdn.discordapp.com/attachments/{cid}/{mid}/{a['filename']}"
            proxy = f"https://media.discordapp.net/attachments/{cid}/{mid}/{a['filename']}?ex=1"
            if "text" in a:
                self.files[url] = str(a["text"]).encode()
            atts.append(C2Attachment(str(a["filename"]), str(a.get("content_type") or ""), url, proxy,
                                     a.get("width"), a.get("height"), len(str(a.get("text") or "").encode())))
        user = self.users.get(author)
        system = _system_content(kind, user.username if user else "deleted-user", str(x.get("content") or ""))
        msg = C2Message(mid, cid, author, str(x.get("content") or ""), kind if kind in _TYPES else "default",
                        tuple(mentions), tuple(int(i) for i in x.get("mention_roles") or []),
                        bool(x.get("mention_everyone")), reply_id, reply_channel, bool(x.get("pinned")),
                        tuple(atts), system)
        self.messages.setdefault(cid, []).append(msg)

    def message(self, message_id: int) -> C2Message | None:
        for msgs in self.messages.values():
            for x in msgs:
                if x.id == message_id:
                    return x
        return None

    # ---------------------------------------------------------------- Chapter2Port
    @property
    def bot_user(self) -> C2User:
        return self._bot

    def user(self, user_id: int) -> C2User | None:
        return self.users.get(user_id)

    def role_name(self, role_id: int) -> str | None:
        return self.roles.get(role_id)

    def channel(self, channel_id: int) -> C2Channel | None:
        return self.channels.get(channel_id)

    def emoji_id(self, name: str, guild_id: int | None) -> int | None:
        return self.emojis.get(name) if guild_id is not None else None

    def can_send(self, channel_id: int) -> bool:
        return "send_messages" not in self.denied.get(channel_id, set())

    async def history(self, channel_id: int, *, before: int | None = None, limit: int = 100) -> list[C2Message]:
        msgs = [x for x in self.messages.get(channel_id, []) if before is None or x.id < before]
        return msgs[::-1][:limit]

    async def fetch_message(self, channel_id: int, message_id: int) -> C2Message | None:
        for x in self.messages.get(channel_id, []):
            if x.id == message_id:
                return x
        return None

    async def pins(self, channel_id: int) -> list[C2Message]:
        out = []
        for mid in self.pin_order.get(channel_id, []):
            x = await self.fetch_message(channel_id, mid)
            if x is not None:
                out.append(x)
        return out

    async def download(self, url: str) -> bytes:
        if url not in self.files:
            raise FileNotFoundError(url)
        return self.files[url]

    async def send(self, channel_id: int, content: str) -> int:
        await asyncio.sleep(0)  # a REST call: other messages' handlers run meanwhile
        mid = self.next_id
        self.next_id += 1 << 22
        self.messages.setdefault(channel_id, []).append(C2Message(mid, channel_id, self._bot.id, content))
        self.actions.append({"type": "send", "channel_id": channel_id, "content": content})
        return mid

    async def react(self, channel_id: int, message_id: int, emoji: str) -> None:
        self.actions.append({"type": "reaction", "channel_id": channel_id, "message_id": message_id, "emoji": emoji})

    async def delete(self, channel_id: int, message_id: int) -> None:
        self.messages[channel_id] = [x for x in self.messages.get(channel_id, []) if x.id != message_id]
        self.pin_order[channel_id] = [i for i in self.pin_order.get(channel_id, []) if i != message_id]
        self.actions.append({"type": "delete", "channel_id": channel_id, "message_id": message_id})

    async def typing(self, channel_id: int) -> None:
        self.typing_count += 1
