"""Discord messages to chapter2 messages and back (chapter2.md §5.6.1, outbound formatting of §5.6.2).

Pure functions over `port` records: `to_chapter2` renders one Discord message the way chapter2's
interface feeds it to the prompt (mentions as `@name`, roles, channels, emoji, attachments, system
text), `format_outgoing` turns a reply's `@name` and `:emoji:` back into Discord markup.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chapterx_compat.chapter2.formats.messages import Author, Message
from chapterx_compat.chapter2.runtime.port import (
    MAX_ATTACHMENT_BYTES,
    C2Attachment,
    C2Channel,
    C2Message,
    C2User,
)

ZWSP = "\u200b"
_USER_RE = re.compile(r"<@!?(\d+)>")
_ROLE_RE = re.compile(r"<@&(\d+)>")
_CHANNEL_RE = re.compile(r"<#(\d+)>")
_EMOJI_RE = re.compile(r"<a?:(\w+):\d+>")
_EVERYONE_RE = re.compile(r"@(everyone|here)")
_COMMAND_RE = re.compile(r"^\.(\w+)(?:[\s|\.]+(.+))?$")
_DOTTED_RE = re.compile(r"^[.,](?!\.\.)")
INVISIBLE_TYPES = frozenset({"thread_starter_message", "thread_created", "pins_add", "channel_name_change"})


def message_hash(snowflake: int) -> str:
    """chapter2's message id: sha256 of the 64-byte big-endian snowflake."""
    return hashlib.sha256(snowflake.to_bytes(64, "big")).hexdigest()


def parse_command(content: str) -> tuple[str, list[str]] | None:
    """`.name [targets]` on the first line: the command and its targets (split on space, `|`, `.`)."""
    first = content.split("\n", 1)[0]
    m = _COMMAND_RE.match(first)
    if m is None:
        return None
    targets = [t for t in re.split(r"[\s|.]+", m.group(2) or "") if t]
    return m.group(1), targets


def is_dotted(content: str) -> bool:
    return bool(_DOTTED_RE.match(content))


def is_continue(content: str) -> bool:
    s = content.strip()
    return s == "/continue" or s.startswith("m continue")


def is_mu(content: str) -> bool:
    s = content.strip()
    return s == "/mu" or s.startswith("m mu")


def is_invisible(msg: C2Message, ignore_dotted: bool) -> bool:
    """Hidden from history: commands always; with `ignore_dotted_messages`, dotted and some system types."""
    if is_continue(msg.content) or is_mu(msg.content):
        return True
    return ignore_dotted and (is_dotted(msg.content) or msg.type in INVISIBLE_TYPES)


def mentioned_in(msg: C2Message, bot_id: int) -> bool:
    """discord.py's `ClientUser.mentioned_in`: @everyone/@here, or the bot in `mentions` (a reply with
    ping puts the replied-to author there); role mentions do not count."""
    return msg.mention_everyone or bot_id in msg.mentions


@dataclass(frozen=True)
class Naming:
    """How people are named: the em's own messages use `em_name`; others the username or, with
    `use_nicknames`, the display name."""

    bot_id: int
    em_name: str
    use_nicknames: bool = False

    def author(self, user: C2User | None, user_id: int) -> str:
        if user_id == self.bot_id:
            return self.em_name
        if user is None:
            return "deleted-user"
        return user.display_name if self.use_nicknames else user.username


def _attachment_text(raw: bytes) -> str:
    """chapter2 evaluates Python escapes in text attachments (`\\t` becomes a tab)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        value = ast.literal_eval('"""' + text.replace('"""', '\\"\\"\\"') + ' """')
        text = str(value)[:-1]
    except (SyntaxError, ValueError):
        pass
    return text.strip()


def image_url(att: C2Attachment, max_width: int, max_height: int) -> str:
    """The proxy URL, with a downscaled `width`/`height` when the image exceeds the limits."""
    url = att.proxy_url
    w, h = att.width, att.height
    if w and h and (w > max_width or h > max_height):
        scale = min(max_width / w, max_height / h)
        url += f"&width={int(w * scale)}&height={int(h * scale)}"
    return url


def attachment_skipped(att: C2Attachment, ignore_dotted: bool) -> bool:
    """With `ignore_dotted_messages`, config/history attachments and dotted file names stay out of history."""
    if not ignore_dotted:
        return False
    if att.filename.startswith("."):
        return True
    m = re.match(r"(\w+)", att.filename)
    return bool(m) and m.group(1) in ("config", "history")  # type: ignore[union-attr]


@dataclass(frozen=True)
class ConvertOptions:
    naming: Naming
    include_images: bool
    ignore_dotted: bool
    max_width: int = 1568
    max_height: int = 1568


def convert_content(
    msg: C2Message,
    opts: ConvertOptions,
    *,
    user: Callable[[int], C2User | None],
    role_name: Callable[[int], str | None],
    channel: Callable[[int], C2Channel | None],
) -> str:
    """Raw Discord markup → the text chapter2 puts in the prompt (before attachments)."""
    if msg.system_content is not None and msg.type not in ("default", "reply"):
        return msg.system_content

    def user_repl(m: re.Match[str]) -> str:
        uid = int(m.group(1))
        if uid == opts.naming.bot_id:
            return "@" + opts.naming.em_name
        u = user(uid)
        if u is None:
            return "@deleted-user"
        return "@" + (u.display_name if opts.naming.use_nicknames else u.username)

    def role_repl(m: re.Match[str]) -> str:
        name = role_name(int(m.group(1)))
        return "@" + name if name is not None else "@deleted-role"

    def channel_repl(m: re.Match[str]) -> str:
        ch = channel(int(m.group(1)))
        return "#" + ch.name if ch is not None else "#deleted-channel"

    text = _EVERYONE_RE.sub(lambda m: "@" + ZWSP + m.group(1), msg.content)
    text = _USER_RE.sub(user_repl, text)
    text = _ROLE_RE.sub(role_repl, text)
    text = _CHANNEL_RE.sub(channel_repl, text)
    return _EMOJI_RE.sub(lambda m: f":{m.group(1)}:", text)


async def to_chapter2(
    msg: C2Message,
    opts: ConvertOptions,
    *,
    user: Callable[[int], C2User | None],
    role_name: Callable[[int], str | None],
    channel: Callable[[int], C2Channel | None],
    download: Callable[[str], object],
) -> Message:
    """One Discord message as the chapter2 `Message` its interface builds."""
    content = convert_content(msg, opts, user=user, role_name=role_name, channel=channel)
    for att in msg.attachments:
        if attachment_skipped(att, opts.ignore_dotted):
            continue
        if att.is_image:
            if opts.include_images:
                content += f"<|begin_of_img_url|>{image_url(att, opts.max_width, opts.max_height)}<|end_of_img_url|>"
            else:
                content += "<|image|>"
        elif att.size > MAX_ATTACHMENT_BYTES:
            content += f"\n<|begin_of_attachment|>[{att.filename}: too large to include]<|end_of_attachment|>"
        elif att.content_type.startswith("text/") or att.content_type == "":
            raw = await download(att.url)  # type: ignore[misc]
            content += f"\n<|begin_of_attachment|>{_attachment_text(raw)}<|end_of_attachment|>"
    return Message(
        Author(opts.naming.author(user(msg.author_id), msg.author_id)),
        content.strip(),
        timestamp=msg.timestamp,
        id=message_hash(msg.id),
        reply_to=message_hash(msg.reply_to) if msg.reply_to is not None else None,
    )


def format_outgoing(
    text: str,
    people: Iterable[C2User],
    emoji_id: Callable[[str], int | None],
) -> str:
    """A reply line as sent: `@username`/`@display name` of people in the window become `<@!id>`,
    `:name:` of the guild's custom emoji becomes `<:name:id>`."""
    for person in people:
        for name in dict.fromkeys([person.username, person.display_name]):
            if name:
                text = text.replace("@" + name, f"<@!{person.id}>")

    def emoji(m: re.Match[str]) -> str:
        eid = emoji_id(m.group(1))
        return f"<:{m.group(1)}:{eid}>" if eid is not None else m.group(0)

    return re.sub(r"(?<![<\w]):(\w+):(?!\d)", emoji, text)
