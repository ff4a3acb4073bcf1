"""discord.py connector: the production `DiscordPort` and the gateway event handlers (reference §1.1).

The only module that imports discord.py. `DiscordConnector` owns the `discord.Client` (intents:
guilds, guild messages, message content, guild reactions; no DMs, like upstream), turns gateway
events into runtime `Event`s, and hands out a per-guild `GuildPort` for activations. Users seen in
messages are kept in a plain dict, because discord.py's own user cache is weak-referenced.

`api_base` points discord.py at another Discord-compatible API (a local fake in tests); the
gateway URL is then taken from that API's `/gateway/bot` answer.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Mapping
from typing import Any

import discord

from chapterx.agent.queue import Event
from chapterx.config.secrets import scrub_outbound
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

log = logging.getLogger(__name__)


def _intents(allow_dms: bool = False) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    intents.guild_reactions = True
    # discord.py keeps guild emojis only with this (unprivileged) intent; the pipeline needs them to
    # turn `:name:` into custom emoji markup (discord.js caches them from GUILD_CREATE regardless).
    intents.emojis_and_stickers = True
    # Direct messages only when the bot opted in (`allow_dms`): without the intent Discord sends none.
    intents.dm_messages = allow_dms
    return intents


# discord.py waits this long after the last GUILD_CREATE before READY (its default, 2 s, was most of
# the start-up time); guilds arriving later are still cached when their GUILD_CREATE comes.
GUILD_READY_TIMEOUT = 0.3
MEMBER_SEARCH_TTL = 60.0


def _emoji_name(emoji: Any) -> str:
    if isinstance(emoji, str):
        return emoji
    return str(getattr(emoji, "name", None) or emoji)


def connection_failure_message(exc: BaseException, intents: str = "Message Content intent") -> str | None:
    """One operator-facing line for discord.py's login/intent refusals (None: not one of those);
    `intents` names the privileged intents this kind of bot asks for."""
    if isinstance(exc, discord.LoginFailure):
        return "Discord rejected the token (login failed)"
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return (f"Discord refused the {intents}: enable it for this bot in the "
                "Discord developer portal (Bot > Privileged Gateway Intents)")
    return None


async def connect_client(client: discord.Client, token: str, api_base: str | None) -> None:
    """Log in and connect `client`, against `api_base` (CHAPTERX_DISCORD_API: another Discord-compatible
    REST base whose `/gateway/bot` names the gateway) when given; returns when the connection ends."""
    if api_base:
        from discord.http import Route

        Route.BASE = api_base  # type: ignore[misc]
    await client.login(token)
    if api_base:
        import yarl
        from discord.gateway import DiscordWebSocket

        _shards, url, _limits = await client.http.get_bot_gateway()
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)  # type: ignore[misc]
    await client.connect(reconnect=True)


class DiscordConnector:
    """Runs a discord.py client and feeds `on_event` with queue events."""

    def __init__(self, *, on_event: Callable[[Event], None],
                 on_pin: Callable[[str, str, Pin | None, str], None] | None = None,
                 api_base: str | None = None, allow_dms: bool = False) -> None:
        self.on_event = on_event
        self.on_pin = on_pin  # (guild_id, channel_id, pin or None when unpinned/deleted, message_id)
        self.api_base = api_base.rstrip("/") if api_base else None
        self.allow_dms = allow_dms
        # replied_user=False: a reply never pings its target (upstream sends repliedUser: false).
        self.client = discord.Client(intents=_intents(allow_dms), chunk_guilds_at_startup=False,
                                     guild_ready_timeout=GUILD_READY_TIMEOUT,
                                     allowed_mentions=discord.AllowedMentions(everyone=False, roles=False,
                                                                              replied_user=False))
        self.users: dict[str, User] = {}
        self.member_search_cache: dict[tuple[str, str], tuple[float, list[tuple[User, Member]]]] = {}
        self.ready = asyncio.Event()
        self._register()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, token: str) -> None:
        """Log in and connect (returns when the connection ends)."""
        await connect_client(self.client, token, self.api_base)

    async def close(self) -> None:
        await self.client.close()

    @property
    def bot_user_id(self) -> str:
        return str(self.client.user.id) if self.client.user else ""

    @property
    def bot_username(self) -> str | None:
        return self.client.user.name if self.client.user else None

    def port_for(self, guild_id: str) -> GuildPort:
        return GuildPort(self, guild_id)

    # ------------------------------------------------------------------ conversion
    def remember(self, user: Any) -> User:
        rec = User(str(user.id), str(user.name), getattr(user, "global_name", None), bool(user.bot))
        self.users[rec.id] = rec
        return rec

    def convert(self, m: discord.Message) -> Message:
        self.remember(m.author)
        ref = m.reference.message_id if m.reference is not None and m.reference.message_id else None
        reply_ping = True
        if ref is not None:
            resolved = m.reference.resolved if m.reference is not None else None
            ref_author = getattr(getattr(resolved, "author", None), "id", None)
            if ref_author is not None:
                reply_ping = any(u.id == ref_author for u in m.mentions)
        return Message(
            id=str(m.id), channel_id=str(m.channel.id), author_id=str(m.author.id), content=m.content,
            type=int(m.type.value), reply_to=str(ref) if ref is not None else None,
            timestamp=m.created_at.isoformat().replace("+00:00", "Z"),
            attachments=[Attachment(str(a.id), a.filename, a.content_type or "", a.size, a.url, a.width, a.height)
                         for a in m.attachments],
            reactions=[Reaction(_emoji_name(r.emoji), r.count) for r in m.reactions],
            system=m.is_system(), mention_everyone=m.mention_everyone, reply_ping=reply_ping,
        )

    def mentions_bot(self, m: discord.Message) -> bool:
        """discord.js `mentions.has(bot)`: direct, @everyone/@here, a held role, a pinging reply."""
        me = self.client.user
        if me is None:
            return False
        if m.mention_everyone or any(u.id == me.id for u in m.mentions):
            return True
        member = m.guild.me if m.guild is not None else None
        held = {r.id for r in getattr(member, "roles", [])}
        return any(r.id in held for r in m.role_mentions)

    @staticmethod
    def pin_of(m: discord.Message) -> Pin:
        return Pin(str(m.id), m.content, str(m.author.id), bool(m.author.bot),
                   tuple(str(r.id) for r in m.role_mentions))

    # ------------------------------------------------------------------ gateway handlers
    def _register(self) -> None:
        client = self.client

        @client.event
        async def on_ready() -> None:
            log.info("connected to Discord as %s (%s)", self.bot_username, self.bot_user_id)
            if client.user is not None:
                self.remember(client.user)
            self.ready.set()

        @client.event
        async def on_message(m: discord.Message) -> None:
            if m.guild is None:
                if not self.allow_dms or not isinstance(m.channel, discord.DMChannel):
                    return
                # A DM is addressed to the bot: the partner's message counts as a mention.
                me = client.user
                self.on_event(Event("message", str(m.channel.id), "", self.convert(m),
                                    mentions_bot=me is not None and m.author.id != me.id and not m.author.bot))
                return
            if m.pinned and self.on_pin is not None:
                self.on_pin(str(m.guild.id), str(m.channel.id), self.pin_of(m), str(m.id))
            self.on_event(Event("message", str(m.channel.id), str(m.guild.id), self.convert(m),
                                mentions_bot=self.mentions_bot(m)))

        @client.event
        async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
            if payload.guild_id is None:
                return
            m = payload.message
            if self.on_pin is not None:
                self.on_pin(str(payload.guild_id), str(payload.channel_id), self.pin_of(m) if m.pinned else None,
                            str(m.id))
            self.on_event(Event("edit", str(payload.channel_id), str(payload.guild_id), self.convert(m)))

        @client.event
        async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
            if payload.guild_id is None:
                return
            if self.on_pin is not None:
                self.on_pin(str(payload.guild_id), str(payload.channel_id), None, str(payload.message_id))
            cached = payload.cached_message
            self.on_event(Event("delete", str(payload.channel_id), str(payload.guild_id),
                                data={"message_id": str(payload.message_id),
                                      "author_id": str(cached.author.id) if cached is not None else None}))

        @client.event
        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            if payload.guild_id is None:
                return
            author = str(payload.message_author_id) if payload.message_author_id else None
            if author is None:  # a partial: fetch the message, as upstream does
                m = await self.port_for(str(payload.guild_id)).fetch_message(
                    str(payload.channel_id), str(payload.message_id))
                author = m.author_id if m is not None else None
            self.on_event(Event("reaction", str(payload.channel_id), str(payload.guild_id), data={
                "message_id": str(payload.message_id), "emoji": _emoji_name(payload.emoji),
                "user_id": str(payload.user_id), "message_author_id": author,
            }))


class GuildPort:
    """`DiscordPort` over the connector for one guild (lookups from discord.py's cache)."""

    def __init__(self, connector: DiscordConnector, guild_id: str) -> None:
        self.c = connector
        self._guild_id = guild_id
        self._webhooks: dict[int, discord.Webhook] = {}  # channel id -> the bot's tool webhook

    @property
    def client(self) -> discord.Client:
        return self.c.client

    @property
    def guild(self) -> discord.Guild | None:
        return self.client.get_guild(int(self._guild_id)) if self._guild_id else None

    @property
    def bot_user_id(self) -> str:
        return self.c.bot_user_id

    @property
    def guild_id(self) -> str:
        return self._guild_id

    def user(self, user_id: str) -> User | None:
        if user_id in self.c.users:
            return self.c.users[user_id]
        u = self.client.get_user(int(user_id)) if user_id.isdigit() else None
        return self.c.remember(u) if u is not None else None

    def _member(self, m: discord.Member) -> Member:
        self.c.remember(m)
        return Member(str(m.id), m.nick, tuple(str(r.id) for r in m.roles if not r.is_default()),
                      m.joined_at.isoformat().replace("+00:00", "Z") if m.joined_at else "")

    def member(self, user_id: str) -> Member | None:
        g = self.guild
        m = g.get_member(int(user_id)) if g is not None and user_id.isdigit() else None
        return self._member(m) if m is not None else None

    def members(self) -> list[Member]:
        g = self.guild
        return [self._member(m) for m in g.members] if g is not None else []

    async def search_members(self, query: str, limit: int = 10) -> list[tuple[User, Member]]:
        """Discord's guild member search (`GET /guilds/{id}/members/search`), cached for a minute.

        The member cache is empty with the bot's intents, so `<@name>` for anyone outside the
        context window needs this REST call (reference §3.7 resolves names the same way).
        """
        if not self._guild_id or not query:
            return []
        key = (self._guild_id, query.lower())
        now = asyncio.get_running_loop().time()
        hit = self.c.member_search_cache.get(key)
        if hit is not None and now - hit[0] < MEMBER_SEARCH_TTL:
            return hit[1]
        from discord.http import Route

        route = Route("GET", "/guilds/{guild_id}/members/search", guild_id=int(self._guild_id))
        try:
            data = await self.client.http.request(route, params={"query": query, "limit": limit})
        except discord.HTTPException as exc:
            log.warning("member search for %r failed: %s", query, exc)
            return []
        found: list[tuple[User, Member]] = []
        for raw in data or []:
            u = raw.get("user") or {}
            user = User(str(u.get("id")), str(u.get("username")), u.get("global_name"), bool(u.get("bot")))
            self.c.users.setdefault(user.id, user)
            found.append((user, Member(user.id, raw.get("nick"), tuple(str(r) for r in raw.get("roles") or ()),
                                       str(raw.get("joined_at") or ""))))
        if len(self.c.member_search_cache) > 1024:
            self.c.member_search_cache.clear()
        self.c.member_search_cache[key] = (now, found)
        return found

    def role(self, role_id: str) -> Role | None:
        g = self.guild
        r = g.get_role(int(role_id)) if g is not None and role_id.isdigit() else None
        return Role(str(r.id), r.name) if r is not None else None

    def channel(self, channel_id: str) -> Channel | None:
        ch = self.client.get_channel(int(channel_id)) if channel_id.isdigit() else None
        if ch is None:
            # DM channels are not cached by discord.py; traces name them "DM".
            return Channel(channel_id, "DM", "dm") if not self._guild_id and channel_id.isdigit() else None
        if isinstance(ch, discord.Thread):
            return Channel(str(ch.id), ch.name, "thread", str(ch.parent_id) if ch.parent_id else None)
        if isinstance(ch, discord.DMChannel):
            return Channel(str(ch.id), "DM", "dm")
        return Channel(str(ch.id), str(getattr(ch, "name", "")), "text")

    def emojis(self) -> list[Emoji]:
        g = self.guild
        return [Emoji(str(e.id), e.name, e.animated) for e in g.emojis] if g is not None else []

    def _messageable(self, channel_id: str) -> Any:
        ch: Any = self.client.get_channel(int(channel_id))
        if ch is None:
            ch = self.client.get_partial_messageable(int(channel_id), guild_id=int(self._guild_id or 0) or None)
        return ch

    async def fetch_messages(self, channel_id: str, *, before: str | None = None, limit: int = 100) -> list[Message]:
        ch = self._messageable(channel_id)
        kwargs: dict[str, Any] = {"limit": limit}
        if before is not None:
            kwargs["before"] = discord.Object(int(before))
        return [self.c.convert(m) async for m in ch.history(**kwargs)]

    async def fetch_message(self, channel_id: str, message_id: str) -> Message | None:
        try:
            m = await self._messageable(channel_id).fetch_message(int(message_id))
        except (discord.NotFound, discord.Forbidden):
            return None
        return self.c.convert(m)

    async def fetch_pins(self, channel_id: str) -> list[Pin]:
        pins = [m async for m in self._messageable(channel_id).pins(limit=None)]
        return [DiscordConnector.pin_of(m) for m in pins]

    async def fetch_attachment(self, url: str) -> bytes:
        return await self.client.http.get_from_cdn(url)

    async def send(self, channel_id: str, content: str, *, reply_to: str | None = None,
                   files: list[OutgoingFile] | None = None) -> str:
        ch = self._messageable(channel_id)
        kwargs: dict[str, Any] = {}
        if reply_to is not None:
            kwargs["reference"] = discord.MessageReference(message_id=int(reply_to), channel_id=int(channel_id),
                                                           fail_if_not_exists=False)
        if files:
            kwargs["files"] = [discord.File(io.BytesIO(f.data), filename=f.name) for f in files]
        sent = await ch.send(scrub_outbound(content) or None, mention_author=False, **kwargs)
        return str(sent.id)

    async def react(self, channel_id: str, message_id: str, emoji: str) -> None:
        await self._messageable(channel_id).get_partial_message(int(message_id)).add_reaction(emoji)

    async def delete(self, channel_id: str, message_id: str) -> None:
        await self._messageable(channel_id).get_partial_message(int(message_id)).delete()

    async def pin(self, channel_id: str, message_id: str) -> None:
        """Pin a message (the `sleep` and `config` tool plugins pin what they post)."""
        await self._messageable(channel_id).get_partial_message(int(message_id)).pin()

    async def webhook_send(self, channel_id: str, content: str, *, username: str,
                           avatar_url: str | None = None) -> str:
        ch = self.client.get_channel(int(channel_id))
        target = ch.parent if isinstance(ch, discord.Thread) else ch
        if not isinstance(target, discord.TextChannel):
            raise RuntimeError(f"channel {channel_id} cannot take webhook posts")
        hook = self._webhooks.get(target.id)
        if hook is None:  # found or created once per channel (§5.4: `Chapter3-Tools`)
            hooks = [h for h in await target.webhooks() if h.user is not None and str(h.user.id) == self.bot_user_id]
            hook = hooks[0] if hooks else await target.create_webhook(name="Chapter3-Tools")
            self._webhooks[target.id] = hook
        kwargs: dict[str, Any] = {"username": username, "wait": True}
        if avatar_url:
            kwargs["avatar_url"] = avatar_url
        if isinstance(ch, discord.Thread):
            kwargs["thread"] = ch
        msg = await hook.send(scrub_outbound(content), **kwargs)
        return str(msg.id)

    async def typing(self, channel_id: str) -> None:
        """Fire and forget, as upstream: a refused typing indicator never fails an activation."""
        try:
            await self._messageable(channel_id).typing()
        except discord.HTTPException as exc:
            log.warning("typing indicator in %s failed: %s", channel_id, exc)


class ConnectorApiBackend:
    """What the REST API (`chapterx.api.server`) reads from discord.py's cache."""

    def __init__(self, connector: DiscordConnector,
                 config_for: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        self.c = connector
        self._config_for = config_for

    def config_for(self, guild_id: str) -> Mapping[str, Any]:
        return self._config_for(guild_id) if self._config_for is not None else {}

    def channels(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for g in self.c.client.guilds:
            chans: list[discord.TextChannel | discord.Thread] = [*g.text_channels, *g.threads]
            for ch in chans:
                thread = isinstance(ch, discord.Thread)
                out.append({"id": str(ch.id), "name": ch.name, "guildId": str(g.id), "guildName": g.name,
                            "type": "thread" if thread else "text", "isThread": thread,
                            "parentId": str(ch.parent_id) if isinstance(ch, discord.Thread) and ch.parent_id else None,
                            "lastMessageId": str(ch.last_message_id) if ch.last_message_id else None})
        return out

    def port_for_channel(self, channel_id: str) -> GuildPort | None:
        ch = self.c.client.get_channel(int(channel_id))
        guild = getattr(ch, "guild", None)
        return self.c.port_for(str(guild.id)) if guild is not None else None

    async def user_info(self, user_id: str, guild_id: str | None) -> dict[str, Any] | None:
        if not user_id.isdigit():
            return None
        client = self.c.client
        user: Any = client.get_user(int(user_id))
        if user is None:
            try:
                user = await client.fetch_user(int(user_id))
            except discord.NotFound:
                return None
        out: dict[str, Any] = {"id": str(user.id), "username": user.name, "displayName": user.display_name,
                               "discriminator": user.discriminator, "bot": user.bot,
                               "avatarUrl": user.display_avatar.replace(size=128, format="png").url}
        guild = client.get_guild(int(guild_id)) if guild_id and guild_id.isdigit() else None
        member = guild.get_member(int(user_id)) if guild is not None else None
        if member is not None:
            out["roles"] = [{"id": str(r.id), "name": r.name} for r in member.roles if not r.is_default()]
        return out
