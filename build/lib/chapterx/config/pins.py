"""Pinned `.config` messages: recognition and the connector-side targeting (reference section 3).

Phase 1 (here): which pins are configs, their order, and whether the header target names this bot's
Discord identity (then the pin applies bare) or not (then `target: <text>` is prepended so phase 2,
in the loader, can match it against the bot id and the bot file's name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_WRAPPER = re.compile(r"^<@[!&]?([^>]*)>$")  # a user or role mention (phase 1)
_USER_MENTION = re.compile(r"^<@!?([^>]*)>$")  # a user mention only (phase 2, `target:` keys)


@dataclass(frozen=True)
class BotIdentity:
    """What the Discord side knows about the bot (all optional)."""

    discord_user_id: str | None = None
    discord_username: str | None = None
    discord_global_name: str | None = None
    own_role_ids: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def coerce(cls, value: BotIdentity | Mapping[str, Any] | None) -> BotIdentity:
        if value is None:
            return cls()
        if isinstance(value, BotIdentity):
            return value
        return cls(
            discord_user_id=_opt(value.get("discord_user_id")),
            discord_username=_opt(value.get("discord_username")),
            discord_global_name=_opt(value.get("discord_global_name")),
            own_role_ids=tuple(str(r) for r in value.get("own_role_ids") or ()),
        )


def _opt(v: Any) -> str | None:
    return None if v is None else str(v)


@dataclass(frozen=True)
class PinnedConfig:
    """A recognised `.config` pin: its target text (may be empty) and YAML body."""

    message_id: str
    target: str
    body: str


def parse_pin(content: str, message_id: str = "") -> PinnedConfig | None:
    """A pin is a config when it starts with `.config`, has >2 lines and line 2 is exactly `---`."""
    if not content.startswith(".config"):
        return None
    lines = content.split("\n")
    if len(lines) <= 2 or lines[1] != "---":
        return None
    return PinnedConfig(message_id, lines[0][len(".config"):].strip(), "\n".join(lines[2:]))


def _strip_wrapper(text: str) -> str:
    m = _WRAPPER.match(text)
    if m:
        return m.group(1)
    return text[1:] if text.startswith("@") else text


def addresses_bot(target: str, identity: BotIdentity, mentioned_role_ids: Iterable[str] = (),
                  mentioned_persona_ids: Iterable[str] = ()) -> bool:
    """Phase 1: does the header (or a mention in the pin) name this bot's Discord identity?"""
    roles = [str(r) for r in mentioned_role_ids]
    personas = [str(p) for p in mentioned_persona_ids]
    if not target and not roles and not personas:
        return True
    if any(r in identity.own_role_ids for r in roles):
        return True
    if identity.discord_user_id and identity.discord_user_id in personas:
        return True
    if target:
        bare = _strip_wrapper(target).lower()
        for form in (identity.discord_username, identity.discord_global_name, identity.discord_user_id):
            if form and bare == form.lower():
                return True
    return False


def extract_config_pins(pins: Iterable[Any], bot_identity: BotIdentity | Mapping[str, Any] | None = None) -> list[str]:
    """Pinned messages -> the YAML strings to pass to the loader as `channel_configs`, in apply order.

    `pins` items are dicts (`id`, `content`, optional `mentioned_role_ids`, `mentioned_persona_ids`)
    or plain content strings (kept in the given order). Ids are ordered as strings, like upstream.
    """
    identity = BotIdentity.coerce(bot_identity)
    found: list[tuple[str, int, str]] = []
    for index, pin in enumerate(pins):
        if isinstance(pin, str):
            content, mid, roles, personas = pin, "", [], []
        else:
            content = str(pin.get("content") or "")
            mid = str(pin.get("id") or "")
            roles = list(pin.get("mentioned_role_ids") or [])
            personas = list(pin.get("mentioned_persona_ids") or [])
        parsed = parse_pin(content, mid)
        if parsed is None:
            continue
        if addresses_bot(parsed.target, identity, roles, personas):
            text = parsed.body
        else:
            text = f"target: {parsed.target}\n{parsed.body}" if parsed.target else parsed.body
        found.append((mid, index, text))
    found.sort(key=lambda t: (t[0], t[1]))
    return [t[2] for t in found]


def target_matches(target: Any, bot_id: str | None, file_name: str | None) -> bool:
    """Phase 2: a `target:` key matches the bot id or the bot file's name (case-insensitive)."""
    text = _strip_wrapper_mention(str(target)).lower()
    return any(c and text == c.lower() for c in (bot_id, file_name))


def _strip_wrapper_mention(text: str) -> str:
    m = _USER_MENTION.match(text)
    return m.group(1) if m else text
