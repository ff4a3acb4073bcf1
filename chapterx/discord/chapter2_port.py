"""discord.py behind the chapter2 runtime's port (`chapterx_compat.chapter2.runtime.port.Chapter2Port`).

A second, small connector: chapter2's Discord interface runs its own client with chapter2's intents
(the defaults plus message content and members, DMs included), hands every incoming message to
`on_message` as a `C2Message`, and serves the lookups and REST calls of the port. Kept apart from
`connector.py` because the ChapterX runtime's batching, pins cache and webhooks do not apply here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from chapterx.discord.connector import connect_client
from chapterx_compat.chapter2.runtime.port import C2Attachment, C2Channel, C2Message, C2User

log = logging.getLogger(__name__)


def _intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = True
    intents.members = True
    intents.typing = False
    return intents


class Chapter2Connector:
    """discord.Client + the chapter2 port over its cache and REST calls."""

    def __init__(self, *, on_message: Callable[[C2Message], Awaitable[None]], api_base: str | None = None,
                 avatar: bytes | None = None) -> None:
        self.on_message = on_message
        self.avatar = avatar  # chapter2 uploads ems/<em>/discord_avatar on every ready
        self.api_base = api_base.rstrip("/") if api_base else None
        self.client = discord.Client(intents=_intents(), chunk_guilds_at_startup=False,
                                     allowed_mentions=discord.AllowedMentions(everyone=False, roles=False))
        self.ready = asyncio.Event()
        self._channels: dict[int, Any] = {}
        # pinned messages per channel, oldest pin first; dropped when Discord says the pins changed
        self._pins: dict[int, list[C2Message]] = {}
        self._register()

    async def start(self, token: str) -> None:
        await connect_client(self.client, token, self.api_base)

    async def close(self) -> None:
        await self.client.close()

    def _register(self) -> None:
        client = self.client

        @client.event
        async def on_ready() -> None:
            log.info("connected to Discord as %s (%s)", client.user, client.user.id if client.user else "?")
            if client.user is not None:  # chapter2 prints the invite link with the permissions it needs
                perms = discord.Permissions(add_reactions=True, manage_messages=True, manage_webhooks=True)
                log.info("invite link: %s", discord.utils.oauth_url(client.user.id, permissions=perms))
                if self.avatar:
                    try:
                        await client.user.edit(avatar=self.avatar)
                    except (discord.HTTPException, ValueError) as exc:
                        log.warning("could not set the avatar from discord_avatar: %s", type(exc).__name__)
            self.ready.set()

        @client.event
        async def on_message(m: discord.Message) -> None:
            self._channels[m.channel.id] = m.channel
            if m.pinned:
                self._pins.pop(m.channel.id, None)
            await self.on_message(self.convert(m))

        @client.event
        async def on_guild_channel_pins_update(channel: Any, _last_pin: Any) -> None:
            self._pins.pop(channel.id, None)

        @client.event
        async def on_private_channel_pins_update(channel: Any, _last_pin: Any) -> None:
            self._pins.pop(channel.id, None)

        @client.event
        async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
            self._forget_pin(payload.channel_id, payload.message_id, bool(payload.data.get("pinned")))

        @client.event
        async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
            self._forget_pin(payload.channel_id, payload.message_id, False)

    def _forget_pin(self, channel_id: int, message_id: int, pinned_now: bool) -> None:
        """An edit or delete of a pinned message (or a message becoming pinned) refreshes that channel's pins."""
        cached = self._pins.get(channel_id)
        if cached is not None and (pinned_now or any(p.id == message_id for p in cached)):
            del self._pins[channel_id]

    # ------------------------------------------------------------------ conversion
    def convert(self, m: discord.Message) -> C2Message:
        ref = m.reference
        atts = tuple(C2Attachment(a.filename, a.content_type or "", a.url, a.proxy_url, a.width, a.height, a.size)
                     for a in m.attachments)
        return C2Message(
            id=m.id, channel_id=m.channel.id, author_id=m.author.id, content=m.content, type=m.type.name,
            mentions=tuple(u.id for u in m.mentions), role_mentions=tuple(m.raw_role_mentions),
            mention_everyone=m.mention_everyone,
            reply_to=ref.message_id if ref is not None and ref.message_id else None,
            reply_to_channel=ref.channel_id if ref is not None else None, pinned=m.pinned, attachments=atts,
            system_content=m.system_content if m.is_system() else None,
        )

    @staticmethod
    def _user(u: Any) -> C2User:
        return C2User(u.id, u.name, getattr(u, "global_name", None), getattr(u, "nick", None), bool(u.bot))

    def _get_channel(self, channel_id: int) -> Any:
        return self.client.get_channel(channel_id) or self._channels.get(channel_id)

    def _messageable(self, channel_id: int) -> Any:
        ch = self._get_channel(channel_id)
        if ch is None:
            ch = self.client.get_partial_messageable(channel_id)
        return ch

    # ------------------------------------------------------------------ Chapter2Port
    @property
    def bot_user(self) -> C2User:
        me = self.client.user
        return C2User(me.id, me.name, getattr(me, "global_name", None), None, True) if me else C2User(0, "")

    def user(self, user_id: int) -> C2User | None:
        for guild in self.client.guilds:
            member = guild.get_member(user_id)
            if member is not None:
                return self._user(member)
        u = self.client.get_user(user_id)
        return self._user(u) if u is not None else None

    def role_name(self, role_id: int) -> str | None:
        for guild in self.client.guilds:
            role = guild.get_role(role_id)
            if role is not None:
                return role.name
        return None

    def channel(self, channel_id: int) -> C2Channel | None:
        ch = self._get_channel(channel_id)
        if ch is None:
            return None
        if isinstance(ch, discord.Thread):
            kind = "private_thread" if ch.type == discord.ChannelType.private_thread else "public_thread"
            return C2Channel(ch.id, ch.name, kind, ch.parent_id, None, ch.guild.id)
        if isinstance(ch, discord.DMChannel):
            rid = ch.recipient.id if ch.recipient is not None else None
            return C2Channel(ch.id, "dm", "dm", None, None, None, rid)
        guild = getattr(ch, "guild", None)
        return C2Channel(ch.id, str(getattr(ch, "name", ch.id)), "text", None, getattr(ch, "topic", None),
                         guild.id if guild is not None else None)

    def emoji_id(self, name: str, guild_id: int | None) -> int | None:
        guild = self.client.get_guild(guild_id) if guild_id is not None else None
        emoji = discord.utils.get(guild.emojis, name=name) if guild is not None else None
        return emoji.id if emoji is not None else None

    def can_send(self, channel_id: int) -> bool:
        ch = self._get_channel(channel_id)
        guild = getattr(ch, "guild", None)
        if ch is None or guild is None or not hasattr(ch, "permissions_for"):
            return True
        return bool(ch.permissions_for(guild.me).send_messages)

    async def history(self, channel_id: int, *, before: int | None = None, limit: int = 100) -> list[C2Message]:
        ch = self._messageable(channel_id)
        marker = discord.Object(before) if before is not None else None
        return [self.convert(m) async for m in ch.history(limit=limit, before=marker)]

    async def fetch_message(self, channel_id: int, message_id: int) -> C2Message | None:
        try:
            return self.convert(await self._messageable(channel_id).fetch_message(message_id))
        except (discord.NotFound, discord.Forbidden):
            return None

    async def pins(self, channel_id: int) -> list[C2Message]:
        """Cached per channel (chapter2 refreshes its pin cache on pin updates, edits and deletes too)."""
        cached = self._pins.get(channel_id)
        if cached is None:
            pinned = await self._messageable(channel_id).pins()  # newest pin first
            cached = self._pins[channel_id] = [self.convert(m) for m in reversed(pinned)]
        return list(cached)

    async def download(self, url: str) -> bytes:
        return bytes(await self.client.http.get_from_cdn(url))

    async def send(self, channel_id: int, content: str) -> int:
        sent = await self._messageable(channel_id).send(content)
        return int(sent.id)

    async def react(self, channel_id: int, message_id: int, emoji: str) -> None:
        await self._messageable(channel_id).get_partial_message(message_id).add_reaction(emoji)

    async def delete(self, channel_id: int, message_id: int) -> None:
        try:
            await self._messageable(channel_id).get_partial_message(message_id).delete()
        except discord.NotFound:
            pass

    async def typing(self, channel_id: int) -> None:
        await self._messageable(channel_id).typing()
