"""Should this batch activate the bot? (reference §1.4, in upstream's exact order), plus `.sleep` pins (§1.8).

Pure decision logic over a `DecideContext`: the config merged from the channel's *cached* pins,
the bot's identities, the sleep pins and their in-memory counters, the set of message ids this
process sent, a random source and a clock. Discord lookups (reply chains) go through the narrow
port, so the same code runs over discord.py and over the in-memory world.
"""

from __future__ import annotations

import random as _random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chapterx.agent.queue import Event
from chapterx.config.model import BotConfig
from chapterx.config.pins import BotIdentity, addresses_bot
from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.discord.port import DiscordPort, Message, Pin

_LEADING_MENTIONS = re.compile(r"^(<@[!&]?\d+>\s*)+")
_REPLY_TAG = re.compile(r"^<reply:@[^>]*>\s*")
_DOT = re.compile(r"^\.(?!\.)")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_MAY_SPEAK_WRAPPER = re.compile(r"^<@!?([^>]*)>$")
EYE_REACTIONS = frozenset({"👁‍🗨", "👁️‍🗨️", "eye_in_speech_bubble"})


# ---------------------------------------------------------------------------------------- sleep pins
@dataclass(frozen=True)
class SleepPin:
    id: str
    target: str
    started_at: float  # epoch seconds
    duration_seconds: float | None
    messages: int | None
    mentioned_role_ids: tuple[str, ...] = ()


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str) and value.strip():
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    return None


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value > 0 else None


def parse_sleep_pin(pin: Pin) -> SleepPin | None:
    """`.sleep [target]` / `---` / YAML with `started_at` and at least one positive gate."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    lines = pin.content.split("\n")
    if not lines[0].startswith(".sleep") or len(lines) < 3 or lines[1] != "---":
        return None
    try:
        body = YAML(typ="safe").load("\n".join(lines[2:]))
    except YAMLError:
        return None
    if not isinstance(body, Mapping):
        return None
    started = _epoch(body.get("started_at"))
    if started is None:
        return None
    duration = _positive(body.get("duration_seconds"))
    msgs = _positive(body.get("messages"))
    count = int(msgs) if msgs is not None else None
    if duration is None and not count:
        return None
    return SleepPin(pin.id, lines[0][len(".sleep"):].strip(), started, duration, count or None,
                    tuple(pin.mentioned_role_ids))


def _strip_target(text: str) -> str:
    m = re.match(r"^<@[!&]?([^>]*)>$", text)
    if m:
        return m.group(1)
    return text[1:] if text.startswith("@") else text


def sleep_pin_applies(pin: SleepPin, identity: BotIdentity, bot_id: str, name: str | None) -> bool:
    """Upstream's pinAddressesBot: bare pins apply to all; else role, user id or name forms match."""
    if addresses_bot(pin.target, identity, pin.mentioned_role_ids, _persona_ids(pin.target)):
        return True
    bare = _strip_target(pin.target).lower()
    return bool(pin.target) and any(c and bare == c.lower() for c in (bot_id, name))


def _persona_ids(target: str) -> list[str]:
    return re.findall(r"<@!?(\d+)>", target)


def sleep_active(pin: SleepPin, now: float, observed: int) -> bool:
    if now < pin.started_at:
        return False
    if pin.duration_seconds is not None and now - pin.started_at >= pin.duration_seconds:
        return False
    return not (pin.messages is not None and observed >= pin.messages)


# ---------------------------------------------------------------------------------------- mentions
async def mentions_bot(port: DiscordPort, message: Message) -> bool:
    """discord.js `message.mentions.has(botUserId)`: direct mention, @everyone/@here (when allowed),
    a role the bot holds, or a pinging reply to one of the bot's messages."""
    bot = port.bot_user_id
    if message.mention_everyone:
        return True
    if f"<@{bot}>" in message.content or f"<@!{bot}>" in message.content:
        return True
    member = port.member(bot)
    if member is not None and any(r in member.role_ids for r in _ROLE_MENTION.findall(message.content)):
        return True
    if message.reply_to and message.reply_ping:
        target = await port.fetch_message(message.channel_id, message.reply_to)
        if target is not None and target.author_id == bot:
            return True
    return False


async def reply_chain_depth(port: DiscordPort, message: Message) -> int:
    """Bot messages along the reply chain starting at `message` (consecutive same-bot messages count once)."""
    depth = 0
    previous: str | None = None
    current: Message | None = message
    seen: set[str] = set()
    while current is not None and current.id not in seen:
        seen.add(current.id)
        user = port.user(current.author_id) if current.author_id else None
        if user is None or not user.bot:
            break
        if current.author_id != previous:
            depth += 1
            previous = current.author_id
        if not current.reply_to:
            break
        current = await port.fetch_message(current.channel_id, current.reply_to)
    return depth


# ---------------------------------------------------------------------------------------- decision
@dataclass
class DecideContext:
    port: DiscordPort
    config: ConfigLike | None  # None: loading the config failed
    bot_id: str
    sleep_pins: Sequence[SleepPin] = ()
    sleep_counters: dict[str, int] = field(default_factory=dict)  # "<channel>/<pin>" -> count
    sent_ids: set[str] = field(default_factory=set)
    random: Callable[[], float] = _random.random
    now: Callable[[], float] = time.time


@dataclass
class Decision:
    activate: bool = False
    m_command: Event | None = None
    reaction_continue: Event | None = None
    trail: list[dict[str, Any]] = field(default_factory=list)
    reactions: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, message, emoji)
    random_rolls: list[float] = field(default_factory=list)


def _may_speak_allows(config: BotConfig, bot_id: str) -> bool:
    allowed = config.may_speak
    if not isinstance(allowed, tuple):
        return True
    names = {bot_id.lower(), config.name.lower()}
    for entry in allowed:
        text = str(entry).strip()
        m = _MAY_SPEAK_WRAPPER.match(text)
        if m:
            text = m.group(1)
        if text.lower() in names:
            return True
    return False


def is_dot_message(content: str) -> bool:
    rest = _REPLY_TAG.sub("", _LEADING_MENTIONS.sub("", content.strip(), 1), 1)
    return bool(_DOT.match(rest))


async def should_activate(events: Sequence[Event], ctx: DecideContext, channel_id: str) -> Decision:
    """§1.4 in order. `channel_id` is the batch's first event's channel (whose sleep pins count)."""
    d = Decision()
    if ctx.config is None:
        return d
    cfg = as_bot_config(ctx.config)
    # `api_only` is no longer a bot-config key (the resolver drops it); a hand-written config may set it.
    if cfg.raw.get("api_only"):
        return d
    if not _may_speak_allows(cfg, ctx.bot_id):
        d.trail.append({"msg": "may_speak does not include this bot"})
        return d
    bot = ctx.port.bot_user_id
    now = ctx.now()

    def key(pin: SleepPin) -> str:
        return f"{channel_id}/{pin.id}"

    def sleeping() -> bool:
        return any(sleep_active(p, now, ctx.sleep_counters.get(key(p), 0)) for p in ctx.sleep_pins)

    continuation = cfg.continuation_emoji
    for ev in events:
        if ev.type in ("self_activation", "timer"):
            if sleeping():
                d.trail.append({"msg": "Skipping self-activation — bot is sleeping"})
                continue
            d.trail.append({"msg": "Activated by self-activation"})
            d.activate = True
            return d
        if ev.type == "reaction":
            if ev.data.get("user_id") == bot:
                continue
            if continuation and ev.data.get("emoji") == continuation and ev.data.get("message_author_id") == bot:
                d.reaction_continue = ev
                d.trail.append({"msg": "Activated by continuation reaction", "emoji": ev.data.get("emoji")})
                d.activate = True
                return d
            continue
        if ev.type != "message" or ev.message is None:
            continue
        msg = ev.message
        if msg.system:
            continue
        dot = is_dot_message(msg.content)
        asleep = sleeping()
        if not dot:
            for p in ctx.sleep_pins:
                ctx.sleep_counters[key(p)] = ctx.sleep_counters.get(key(p), 0) + 1
        if asleep:
            d.trail.append({"msg": "Skipping activation — bot is sleeping", "message_id": msg.id})
            continue
        if msg.author_id == bot:
            continue
        if dot and cfg.ignore_dotted_messages and not any(
            r.emoji in EYE_REACTIONS for r in msg.reactions
        ):
            continue
        if msg.content.startswith("m "):
            if ev.mentions_bot or (msg.reply_to is not None and msg.reply_to in ctx.sent_ids):
                d.m_command = ev
                d.trail.append({"msg": "Activated by m command addressed to us", "message_id": msg.id})
                d.activate = True
                return d
            d.trail.append({"msg": "m command not addressed to us", "message_id": msg.id})
            return d
        if ev.mentions_bot:
            depth = await reply_chain_depth(ctx.port, msg)
            limit = float(cfg.max_bot_reply_chain_depth)  # a float, as the decision trail always recorded it
            if depth >= limit:
                emote = cfg.bot_reply_chain_depth_emote
                d.reactions.append((msg.channel_id, msg.id, emote))
                d.trail.append({"msg": "Bot reply chain depth limit reached, blocking activation",
                                "message_id": msg.id, "chain_depth": depth, "limit": limit})
                continue
            d.trail.append({"msg": "Activated by mention", "message_id": msg.id, "chain_depth": depth})
            d.activate = True
            return d
        threshold = float(cfg.reply_on_random)
        if threshold > 0:
            roll = ctx.random()
            d.random_rolls.append(roll)
            if roll < 1 / threshold:
                d.trail.append({"msg": "Activated by random", "message_id": msg.id, "roll": roll,
                                "threshold": threshold})
                d.activate = True
                return d
    d.trail.append({"msg": "No activation needed"})
    return d


def applicable_sleep_pins(pins: Sequence[Pin], identity: BotIdentity, bot_id: str, name: str | None) -> list[SleepPin]:
    out = []
    for pin in pins:
        parsed = parse_sleep_pin(pin)
        if parsed is not None and sleep_pin_applies(parsed, identity, bot_id, name):
            out.append(parsed)
    return out
