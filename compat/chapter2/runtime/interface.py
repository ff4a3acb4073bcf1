"""chapter2's Discord `on_message` flow on our port (chapter2.md §5.6.2): commands (`m continue`,
`m mu`), the per-author queue, channel config, `should_reply`, history, generation, one Discord message
per reply line, error reactions (⚠ 📵 🌩️ ⚙️) and typing.

Every handled message yields an `EventRecord`: what was decided and done, in the shape of the golden
vectors' `expected.events[]`, plus the chapter2 span names. The record is what the trace writer stores
(`chapterx_compat.chapter2.runtime.traces`) and what `chapterx replay` prints.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from chapterx_compat.chapter2 import models as m
from chapterx_compat.chapter2.formats.messages import Message
from chapterx_compat.chapter2.runtime.activation import Facts, first_trigger
from chapterx_compat.chapter2.runtime.channel_config import Effective, effective_config, pin_kv, topic_kv
from chapterx_compat.chapter2.runtime.convert import (
    ConvertOptions,
    Naming,
    format_outgoing,
    is_continue,
    is_dotted,
    is_mu,
    mentioned_in,
    to_chapter2,
)
from chapterx_compat.chapter2.runtime.faculties import ExaClient, faculty_items_from, prefetch
from chapterx_compat.chapter2.runtime.history import WalkOptions, message_history
from chapterx_compat.chapter2.runtime.llm import (
    C2Request,
    Completer,
    build_request,
    generate_response,
    sim_em,
)
from chapterx_compat.chapter2.runtime.port import C2Channel, C2Message, C2User, Chapter2Port

log = logging.getLogger("chapterx.chapter2")

SPAN_CONFIG = "DiscordInterface.get_config"
SPAN_SHOULD = "DiscordInterface.should_reply"
SPAN_HISTORY = "DiscordInterface.on_message.<locals>.message_history"
SPAN_ROOT = "DiscordInterface.handle_exceptions"


@dataclass
class EventRecord:
    """One incoming message, handled."""

    message_id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content_preview: str
    started: float
    should_reply: bool | None = None
    trigger: str | None = None
    random_rolls: list[float] = field(default_factory=list)
    channel_kv: dict[str, Any] | None = None
    config_changes: dict[str, dict[str, Any]] | None = None
    history: list[Message] = field(default_factory=list)
    history_ids: list[int] = field(default_factory=list)
    requests: list[C2Request] = field(default_factory=list)
    replies: list[Message] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    sent_ids: list[int] = field(default_factory=list)
    typing_count: int = 0
    exception: dict[str, str] | None = None
    spans: list[str] = field(default_factory=list)
    command: str | None = None
    ignored: bool = False  # a command that does not mention the bot: nothing happened at all
    dropped: bool = False  # over the per-author queue limit
    facts: Facts | None = None
    effective: Effective | None = None
    duration_ms: int = 0
    completions: list[str] = field(default_factory=list)
    usages: list[dict[str, int]] = field(default_factory=list)  # per completion; empty when the vendor gave none


def classify_error(exc: BaseException) -> list[str]:
    """The reactions chapter2 puts on a failed message (validation errors only get ⚙️)."""
    from chapterx_compat.chapter2.runtime.channel_config import ChannelConfigError

    if isinstance(exc, (ValidationError, ChannelConfigError)):
        return ["⚙️"]
    out = ["⚠"]
    try:
        import aiohttp

        if isinstance(exc, aiohttp.ClientConnectionError):
            return [*out, "🌩️"]
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        pass
    if isinstance(exc, ConnectionError):
        return [*out, "📵"]
    from chapterx.llm.errors import ProviderError

    if isinstance(exc, ProviderError) and "connection error" in str(exc):
        return [*out, "📵"]
    return out


@dataclass
class InterfaceOptions:
    now: Callable[[], datetime] = datetime.now
    hostname: str | None = None
    roll: Callable[[], float] = random.random
    fix_name_punctuation: bool = False
    on_record: Callable[[EventRecord], None] | None = None
    exa: ExaClient | None = None  # the exa_search faculty's API client
    span_sink: list[str] | None = None  # every span name as it ends, across concurrent messages


class Chapter2Interface:
    """One em on one Discord connection, with chapter2's rules."""

    def __init__(self, port: Chapter2Port, base: m.Config, completer: Completer,
                 options: InterfaceOptions | None = None) -> None:
        self.port = port
        self.base = base
        self.complete = completer
        self.options = options or InterfaceOptions()
        self._queues: dict[int, asyncio.Semaphore] = {}
        self._waiting: dict[int, int] = {}
        self.in_flight = 0

    # ------------------------------------------------------------------ helpers
    @property
    def sysname(self) -> str:
        return self.base.em.sysname

    def _channel(self, channel_id: int) -> C2Channel:
        ch = self.port.channel(channel_id)
        return ch if ch is not None else C2Channel(channel_id, str(channel_id))

    async def _act(self, rec: EventRecord, kind: str, channel_id: int, **kw: Any) -> Any:
        result: Any = None
        if kind == "send":
            result = await self.port.send(channel_id, kw["content"])
            rec.sent_ids.append(int(result))
        elif kind == "reaction":
            await self.port.react(channel_id, kw["message_id"], kw["emoji"])
        elif kind == "delete":
            await self.port.delete(channel_id, kw["message_id"])
        rec.actions.append({"type": kind, "channel_id": channel_id, **kw})
        return result

    def _typing(self, rec: EventRecord, channel_id: int, iface: m.DiscordInterfaceConfig) -> None:
        if not iface.send_typing:
            return
        rec.typing_count += 1
        task = asyncio.ensure_future(self.port.typing(channel_id))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _channel_kv(self, channel: C2Channel) -> dict[str, Any]:
        """Topic YAML (a thread uses its parent's topic) | pinned YAML (the channel's own pins)."""
        topic = channel.topic
        if channel.is_thread and channel.parent_id is not None:
            parent = self.port.channel(channel.parent_id)
            topic = parent.topic if parent is not None else None
        kv = topic_kv(topic)
        pins = await self.port.pins(channel.id)
        kv.update(await pin_kv(pins, bot_id=self.port.bot_user.id, names=(self.port.bot_user.username, self.sysname),
                               download=self.port.download))
        return kv

    def _span(self, rec: EventRecord, *names: str) -> None:
        """chapter2's span names, in the order its spans would end."""
        rec.spans.extend(names)
        if self.options.span_sink is not None:
            self.options.span_sink.extend(names)

    def _recording(self, rec: EventRecord) -> Completer:
        """The completer, keeping each completion text and its token counts in the record (for traces)."""

        async def complete(request: C2Request, usage: dict[str, int] | None = None) -> tuple[str, str | None]:
            counts: dict[str, int] = {}
            text, finish = await self.complete(request, counts)
            rec.completions.append(text)
            rec.usages.append(counts)
            if usage is not None:
                usage.update(counts)
            return text, finish

        return complete

    async def _request(self, em: m.EmConfig, history: list[Message]) -> C2Request:
        """The completion request, after fetching what non-character faculties need (Exa)."""
        now = self.options.now()
        items = faculty_items_from(await prefetch(em, history, exa=self.options.exa, now=now))
        return build_request(em, history, now=now, hostname=self.options.hostname, faculty_items=items)

    def _fix_names(self, kv: dict[str, Any]) -> bool:
        value = kv.get("fix_name_punctuation")
        return bool(value) if value is not None else self.options.fix_name_punctuation

    # ------------------------------------------------------------------ the flow
    async def on_message(self, msg: C2Message) -> EventRecord:
        """Handle one incoming message; never raises (the error is in the record, as reactions on Discord)."""
        loop = asyncio.get_running_loop()
        rec = EventRecord(msg.id, msg.channel_id, None, msg.author_id, msg.content[:100], loop.time())
        channel = self._channel(msg.channel_id)
        rec.guild_id = channel.guild_id
        bot = self.port.bot_user
        command = "continue" if is_continue(msg.content) else "mu" if is_mu(msg.content) else None
        rec.command = command
        if command is not None and not mentioned_in(msg, bot.id):
            rec.ignored = True
            return self._done(rec, loop)
        self.in_flight += 1
        try:
            target = msg
            if command == "mu":
                await self._mu(rec, msg)
            if command is not None:
                before = await self.port.history(msg.channel_id, before=msg.id, limit=1)
                target = before[0] if before else msg
            try:
                try:
                    await self._handle(rec, msg, target, channel, command)
                finally:
                    if command is not None:
                        await self._act(rec, "delete", msg.channel_id, message_id=msg.id)
            except Exception as exc:  # noqa: BLE001 - chapter2 reacts and reports every failure
                rec.exception = {"type": type(exc).__name__, "message": str(exc)}
                for emoji in classify_error(exc):
                    try:
                        await self._act(rec, "reaction", target.channel_id, message_id=target.id, emoji=emoji)
                    except Exception:  # noqa: BLE001 - a failed reaction must not hide the error
                        log.warning("could not react %s on %s", emoji, target.id)
                line = str(exc).splitlines()[0] if str(exc) else ""
                log.warning("chapter2 em %s: message %s failed: %s: %s", self.sysname, msg.id, type(exc).__name__,
                            line[:300])
            self._span(rec, SPAN_ROOT)
        finally:
            self.in_flight -= 1
        return self._done(rec, loop)

    def _done(self, rec: EventRecord, loop: asyncio.AbstractEventLoop) -> EventRecord:
        rec.duration_ms = int((loop.time() - rec.started) * 1000)
        if self.options.on_record is not None and not rec.ignored:
            try:
                self.options.on_record(rec)
            except Exception:  # tracing never breaks a reply
                log.exception("chapter2 trace failed")
        return rec

    async def _mu(self, rec: EventRecord, msg: C2Message) -> None:
        """Delete the bot's consecutive latest messages (dotted ones skipped), stop at anyone else's."""
        before = await self.port.history(msg.channel_id, before=msg.id, limit=100)
        for old in before:
            if old.author_id == self.port.bot_user.id:
                await self._act(rec, "delete", old.channel_id, message_id=old.id)
            elif is_dotted(old.content):
                continue
            else:
                break

    async def _handle(self, rec: EventRecord, msg: C2Message, target: C2Message, channel: C2Channel,
                      command: str | None) -> None:
        self._span(rec, SPAN_CONFIG, SPAN_CONFIG)
        kv = await self._channel_kv(channel)
        rec.channel_kv = kv
        eff = effective_config(self.base, kv)
        rec.effective = eff
        rec.config_changes = eff.changes
        iface = eff.iface
        sem = self._queues.setdefault(msg.author_id, asyncio.Semaphore(1))
        if command is None and self._waiting.get(msg.author_id, 0) > iface.max_queued_replies:
            rec.dropped = True
            return
        self._waiting[msg.author_id] = self._waiting.get(msg.author_id, 0) + 1
        try:
            await sem.acquire()
        finally:
            self._waiting[msg.author_id] -= 1
        try:
            await self._reply(rec, msg, target, channel, eff, fix=self._fix_names(kv))
        finally:
            sem.release()

    def facts(self, msg: C2Message, channel: C2Channel) -> Facts:
        bot = self.port.bot_user
        guild_channel = channel.kind == "text" and channel.guild_id is not None
        return Facts(author_id=msg.author_id, bot_id=bot.id, bot_username=bot.username, sysname=self.sysname,
                     content=msg.content, mentioned=mentioned_in(msg, bot.id), guild_channel=guild_channel,
                     can_send=self.port.can_send(channel.id) if guild_channel else True,
                     public_thread=channel.kind == "public_thread")

    def names(self, eff: Effective) -> list[str]:
        return [eff.em.name, self.port.bot_user.username, *eff.iface.nicknames]

    async def _history(self, target: C2Message, channel: C2Channel, eff: Effective) -> tuple[list[C2Message], list[Message]]:
        bot = self.port.bot_user
        walk = WalkOptions(limit=eff.em.recency_window, ignore_dotted=eff.iface.ignore_dotted_messages, bot_id=bot.id,
                           names=(bot.username, self.sysname), threads_inherit=eff.iface.threads_inherit_history)
        raw = await message_history(self.port, channel.id, target if target.channel_id == channel.id else None, walk,
                                    start_id=None if target.channel_id == channel.id else target.id)
        opts = self.convert_options(eff)
        port = self.port
        converted = [await to_chapter2(x, opts, user=port.user, role_name=port.role_name, channel=port.channel,
                                       download=port.download) for x in raw]
        return raw, converted

    def convert_options(self, eff: Effective) -> ConvertOptions:
        include = eff.iface.include_images
        if include == "auto":
            include = eff.em.continuation_model.startswith("claude-")
        return ConvertOptions(Naming(self.port.bot_user.id, eff.em.name, eff.iface.use_nicknames), bool(include),
                              eff.iface.ignore_dotted_messages, eff.iface.image_limits.max_width,
                              eff.iface.image_limits.max_height)

    async def _sim(self, rec: EventRecord, target: C2Message, channel: C2Channel, eff: Effective) -> bool:
        """`reply_on_sim`: the small model's first predicted message is the em's."""
        if eff.iface.reply_on_sim is False:
            raise RuntimeError("reply_on_sim is off")
        small = sim_em(eff.em, eff.iface.reply_on_sim)
        self._span(rec, "generate_response", "get_prompt", SPAN_HISTORY, SPAN_HISTORY)
        _raw, history = await self._history(target, channel, eff)
        request = await self._request(small, history)
        replies = await generate_response(request, self._recording(rec), rec.requests.append)
        self._span(rec, "get_replies", "get_replies", "generate_response")
        return bool(replies) and replies[0].author is not None and replies[0].author.name == eff.em.name

    async def _reply(self, rec: EventRecord, msg: C2Message, target: C2Message, channel: C2Channel,
                     eff: Effective, *, fix: bool) -> None:
        self._span(rec, SPAN_SHOULD)
        facts = self.facts(msg, channel)
        rec.facts = facts

        def roll() -> float:
            value = self.options.roll()
            rec.random_rolls.append(value)
            return value

        trigger = await first_trigger(facts, eff.iface, self.names(eff), roll=roll,
                                      sim=lambda: self._sim(rec, target, channel, eff), fix_name_punctuation=fix)
        rec.trigger = trigger
        rec.should_reply = trigger is not None
        if trigger is None:
            return
        self._span(rec, SPAN_HISTORY)
        raw, history = await self._history(target, channel, eff)
        rec.history, rec.history_ids = history, [x.id for x in raw]
        people = self._people(raw, channel)
        self._span(rec, "generate_response", "get_prompt", "get_replies")
        self._typing(rec, channel.id, eff.iface)
        request = await self._request(eff.em, history)
        try:
            replies = await generate_response(request, self._recording(rec), rec.requests.append)
        except BaseException:
            self._span(rec, "get_replies", "generate_response")
            raise
        rec.replies = replies
        for index, reply in enumerate(replies):
            self._span(rec, "get_replies", "generate_response")
            if reply.author is None or reply.author.name != eff.em.name or not reply.content.strip():
                continue
            if index > 0:
                self._typing(rec, channel.id, eff.iface)
            text = format_outgoing(reply.content, people, lambda n: self.port.emoji_id(n, channel.guild_id))
            await self._act(rec, "send", channel.id, content=text)
        self._span(rec, "get_replies", "generate_response")

    def _people(self, raw: list[C2Message], channel: C2Channel) -> list[C2User]:
        """Who `@name` may ping: authors and mentioned users of the window (in a DM, both participants)."""
        ids: list[int] = []
        if channel.kind == "dm":
            ids = [self.port.bot_user.id] + ([channel.recipient_id] if channel.recipient_id else [])
        else:
            for x in raw:
                ids += [x.author_id, *x.mentions]
        out: list[C2User] = []
        for uid in dict.fromkeys(ids):
            u = self.port.bot_user if uid == self.port.bot_user.id else self.port.user(uid)
            if u is not None:
                out.append(u)
        return out
