"""Discord message -> context message: the exact markup rewrites of reference §2.2.

Order matters and follows upstream: user mentions, custom emoji, channel mentions, role mentions,
then the oblique-webhook author rewrite and the `<reply:@name>` tag for human replies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from chapterx.context.types import Author, ContextMessage
from chapterx.discord.port import DiscordPort, Message

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_CUSTOM_EMOJI = re.compile(r"<a?:(\w+):\d+>")
_CHANNEL_MENTION = re.compile(r"<#(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_OBLIQUE = re.compile(r"^(.*)\[oblique:[^\]]*\]$", re.S)


def oblique_name(username: str) -> str | None:
    """`name[oblique:...]` webhook authors are bridged humans; returns `name` or None."""
    m = _OBLIQUE.match(username)
    return m.group(1) if m else None


def resolve_author(port: DiscordPort, author_id: str) -> Author:
    user = port.user(author_id)
    username = user.username if user else author_id
    bot = user.bot if user else False
    obl = oblique_name(username)
    if obl is not None:
        return Author(author_id, obl, obl, False)
    member = port.member(author_id)
    display = (member.nickname if member else None) or (user.global_name if user else None) or username
    return Author(author_id, username, display, bot)


def rewrite_markup(content: str, port: DiscordPort) -> str:
    """Rewrite raw Discord markup into the names the model reads."""
    if "<" not in content:
        return content

    def user_sub(m: re.Match[str]) -> str:
        user = port.user(m.group(1))
        return f"<@{user.username}>" if user else "@unknown-user"

    def channel_sub(m: re.Match[str]) -> str:
        ch = port.channel(m.group(1))
        return f"#{ch.name}" if ch else "#unknown-channel"

    def role_sub(m: re.Match[str]) -> str:
        role = port.role(m.group(1))
        if role is None:
            return "@unknown-role"
        name = role.name[len("portal-"):] if role.name.startswith("portal-") else role.name
        return f"@{name}"

    content = _USER_MENTION.sub(user_sub, content)
    content = _CUSTOM_EMOJI.sub(lambda m: f":{m.group(1)}:", content)
    content = _CHANNEL_MENTION.sub(channel_sub, content)
    return _ROLE_MENTION.sub(role_sub, content)


def convert_message(msg: Message, port: DiscordPort, window: Mapping[str, Message]) -> ContextMessage:
    """Convert one fetched message; `window` holds every fetched message by id (reply targets)."""
    author = resolve_author(port, msg.author_id or "")
    content = rewrite_markup(msg.content, port)
    if msg.reply_to and not author.bot:
        target = window.get(msg.reply_to)
        if target is not None and target.author_id is not None:
            target_name = resolve_author(port, target.author_id).username
        else:
            target_name = "someone"
        content = f"<reply:@{target_name}> {content}"
    member = port.member(author.id)
    roles = []
    if member is not None:
        for rid in member.role_ids:
            role = port.role(rid)
            if role is not None:
                roles.append(role.name)
    return ContextMessage(
        id=msg.id,
        channel_id=msg.channel_id,
        content=content,
        author=author,
        timestamp=msg.timestamp,
        attachments=list(msg.attachments),
        reactions=[(r.emoji, r.count) for r in msg.reactions],
        author_roles=roles,
        mentions=[uid for uid in _USER_MENTION.findall(msg.content) if port.user(uid) is not None]
        if "<@" in msg.content else [],
        referenced_message=msg.reply_to,
    )
