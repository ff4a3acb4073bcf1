"""Fetching the message window (reference §2.1): paging, `.history` splices, threads, cache anchor.

This is the only context stage that does I/O (through the Discord port); everything after it is
pure. `.history` handling follows upstream: the newest command wins, a bare one clears, a
`first:`/`last:` range splices messages from a linked channel in front of the newer ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chapterx.context.convert import convert_message
from chapterx.context.images import default_cache as image_cache
from chapterx.context.images import image_for_attachment
from chapterx.context.types import Document, FetchedContext, ImageData
from chapterx.discord.port import MESSAGE_TYPE_DEFAULT, MESSAGE_TYPE_REPLY, DiscordPort, Message

MAX_HISTORY_DEPTH = 5
PAGE = 100
ANCHOR_EXTENSION_LIMIT = 500
DISCORD_EPOCH_MS = 1420070400000

_HISTORY_CMD = re.compile(r"^\.history(\s|$)")
_HISTORY_TARGET = re.compile(r"^\.history\s+<@!?(\d+)>")
_MESSAGE_LINK = re.compile(r"/channels/([^/\s]+)/(\d+)/(\d+)")

TEXT_CONTENT_TYPES = (
    "application/json", "application/xml", "application/javascript", "application/typescript",
    "application/x-yaml", "application/yaml", "application/x-sh", "application/x-python",
)
TEXT_EXTENSIONS = frozenset(
    "txt md markdown rst csv tsv json jsonl yaml yml toml ini cfg conf log xml html htm css scss "
    "js mjs cjs ts tsx jsx py rb go rs java kt kts c h cc cpp hpp cs swift php pl lua sh bash zsh "
    "fish ps1 bat sql r m scala hs ex exs erl clj lisp el vim tex bib diff patch env gitignore "
    "dockerfile makefile gradle properties graphql proto svelte vue dart zig nim".split()
)
MAX_TEXT_FETCH = 800 * 1024
MAX_IMAGE_BASE64 = 5 * 1024 * 1024
TEXT_KEEP = 200 * 1024


@dataclass
class _Fetched:
    messages: list[Message]
    did_clear: bool = False
    origin_channel_id: str | None = None
    range_used: bool = False
    seen: dict[str, Message] = field(default_factory=dict)


def snowflake_ms(message_id: str) -> int:
    try:
        return (int(message_id) >> 22) + DISCORD_EPOCH_MS
    except ValueError:
        return 0


def _keep(msg: Message) -> bool:
    return msg.author_id is not None and msg.type in (MESSAGE_TYPE_DEFAULT, MESSAGE_TYPE_REPLY) and not msg.system


async def _fetch_channel(
    port: DiscordPort,
    channel_id: str,
    *,
    start_from: str | None,
    stop_at: str | None,
    budget: int,
    level: int,
    ignore_history: bool = False,
) -> _Fetched:
    """Walk one channel backwards (newest first) until the budget, `stop_at` or a `.history`."""
    if level > MAX_HISTORY_DEPTH:
        return _Fetched([], did_clear=True)
    newest_first: list[Message] = []
    before: str | None = None
    if start_from is not None:
        first = await port.fetch_message(channel_id, start_from)
        if first is not None:
            if _keep(first):
                newest_first.append(first)
            before = first.id
    while len(newest_first) < budget:
        page = await port.fetch_messages(channel_id, before=before, limit=min(PAGE, budget - len(newest_first)))
        if not page:
            break
        for msg in page:
            before = msg.id
            if stop_at is not None and msg.id <= stop_at:
                if msg.id == stop_at and _keep(msg):
                    newest_first.append(msg)
                return _Fetched(list(reversed(newest_first)))
            if not ignore_history and _HISTORY_CMD.match(msg.content or ""):
                result = await _history_command(port, channel_id, msg, newest_first, budget, level)
                if result is not None:
                    return result
                continue
            if _keep(msg):
                newest_first.append(msg)
                if len(newest_first) >= budget:
                    break
        if len(page) < PAGE and before is not None and len(newest_first) < budget:
            # short page: the channel start was reached
            break
    return _Fetched(list(reversed(newest_first)))


async def _history_command(
    port: DiscordPort,
    channel_id: str,
    cmd: Message,
    newer_newest_first: list[Message],
    budget: int,
    level: int,
) -> _Fetched | None:
    """Apply one `.history` message; None means "not for us / malformed: skip it"."""
    content = cmd.content or ""
    target = _HISTORY_TARGET.match(content)
    if target and target.group(1) != port.bot_user_id:
        return None
    newer = list(reversed(newer_newest_first))
    lines = content.split("\n")
    if len(lines) == 1 or all(not ln.strip() for ln in lines[1:]):
        return _Fetched(newer, did_clear=True)
    if lines[1].strip() != "---":
        return None
    first_val: str | None = None
    last_val: str | None = None
    for ln in lines[2:]:
        s = ln.strip()
        if s.startswith("first:"):
            first_val = s[len("first:"):].strip()
        elif s.startswith("last:"):
            last_val = s[len("last:"):].strip()
    if not last_val:
        return _Fetched(newer, did_clear=True)
    link = _MESSAGE_LINK.search(last_val)
    if link is None or port.channel(link.group(2)) is None and not await _channel_exists(port, link.group(2)):
        return _Fetched(newer, did_clear=True)
    target_channel, last_id = link.group(2), link.group(3)
    first_id: str | None = None
    if first_val:
        first_link = _MESSAGE_LINK.search(first_val)
        first_id = first_link.group(3) if first_link else None
    sub = await _fetch_channel(
        port, target_channel, start_from=last_id, stop_at=first_id,
        budget=max(0, budget - len(newer)), level=level + 1,
    )
    return _Fetched(sub.messages + newer, did_clear=True, origin_channel_id=channel_id, range_used=True)


async def _channel_exists(port: DiscordPort, channel_id: str) -> bool:
    return bool(await port.fetch_messages(channel_id, limit=1))


def _is_text_attachment(content_type: str, filename: str) -> bool:
    ct = content_type.split(";")[0].strip().lower()
    if ct.startswith("text/") or ct in TEXT_CONTENT_TYPES:
        return True
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else filename.lower()
    return ext in TEXT_EXTENSIONS


def sniff_image_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def fetch_context(
    port: DiscordPort,
    channel_id: str,
    *,
    depth: int,
    first_message_id: str | None = None,
    max_images: int = 10,
) -> FetchedContext:
    """Fetch, splice and convert the window for one activation (newest `depth` messages)."""
    fetched = await _fetch_channel(port, channel_id, start_from=None, stop_at=None, budget=depth, level=0)
    messages = fetched.messages
    parent_id: str | None = None
    channel = port.channel(channel_id)
    if channel is not None and channel.type == "thread" and channel.parent_id and not fetched.did_clear:
        parent_id = channel.parent_id
        remaining = max(0, depth - len(messages))
        parent = await _fetch_channel(
            port, parent_id, start_from=channel_id, stop_at=None, budget=remaining, level=0
        )
        ids = {m.id for m in parent.messages}
        starter = await port.fetch_message(parent_id, channel_id)
        parent_msgs = parent.messages
        if starter is not None and starter.id not in ids and _keep(starter):
            parent_msgs = parent_msgs + [starter]
        messages = parent_msgs + messages
    anchor_trimmed = False
    if first_message_id and not fetched.did_clear and messages:
        messages, anchor_trimmed = await _apply_anchor(port, messages, first_message_id, channel_id, parent_id)

    window = {m.id: m for m in messages}
    converted = []
    for m in messages:
        cm = convert_message(m, port, window)
        if cm.content == "" and not cm.attachments:
            continue
        converted.append(cm)

    images: dict[str, ImageData] = {}
    documents: dict[str, Document] = {}
    image_count = 0
    for cm in reversed(converted):
        for att in cm.attachments:
            if att.content_type.startswith("image/"):
                if image_count >= max_images or att.url in images:
                    continue
                image = image_cache().by_url(port, att.url)  # upstream's memory tier: URL -> image
                if image is None:
                    try:
                        data = await port.fetch_attachment(att.url)
                    except Exception:  # noqa: BLE001 - a missing image must not fail the activation
                        continue
                    sniffed = sniff_image_type(data)
                    if sniffed is None:
                        continue  # upstream accepts PNG / JPEG / GIF / WEBP magic bytes only
                    # resized / re-encoded as upstream (context/images.py); the download kept as `original`
                    image = await image_for_attachment(data, sniffed, url=att.url, scope=port)
                    if image is None:
                        continue
                images[att.url] = image
                image_count += 1
            elif _is_text_attachment(att.content_type, att.filename):
                if att.size > MAX_TEXT_FETCH or att.url in documents:
                    continue
                try:
                    raw = await port.fetch_attachment(att.url)
                except Exception:  # noqa: BLE001
                    continue
                truncated = len(raw) > TEXT_KEEP
                text = raw[:TEXT_KEEP].decode("utf-8", errors="replace")
                documents[att.url] = Document(att.filename, text, att.size, truncated)

    inheritance = {
        "parentChannelId": parent_id,
        "historyOriginChannelId": fetched.origin_channel_id,
        "historyDidClear": fetched.did_clear,
        "cacheAnchorTrimmed": anchor_trimmed,
    }
    return FetchedContext(
        messages=converted,
        images=images,
        documents=documents,
        inheritance=inheritance,
        did_clear=fetched.did_clear,
        history_origin_channel_id=fetched.origin_channel_id,
        anchor_trimmed=anchor_trimmed,
    )


async def _apply_anchor(
    port: DiscordPort, messages: list[Message], anchor: str, channel_id: str, parent_id: str | None
) -> tuple[list[Message], bool]:
    """Pin the window start to the cache anchor so the cached prefix stays stable (§2.1 stage 3)."""
    ids = [m.id for m in messages]
    if anchor not in ids:
        oldest = messages[0]
        if snowflake_ms(oldest.id) - snowflake_ms(anchor) > 24 * 3600 * 1000:
            return messages, False
        source = oldest.channel_id if parent_id and oldest.channel_id == parent_id else channel_id
        extra: list[Message] = []
        before = oldest.id
        while len(extra) < ANCHOR_EXTENSION_LIMIT:
            page = await port.fetch_messages(source, before=before, limit=PAGE)
            if not page:
                break
            found = False
            for msg in page:
                before = msg.id
                if _keep(msg):
                    extra.append(msg)
                if msg.id == anchor:
                    found = True
                    break
            if found:
                break
        extended = list(reversed(extra)) + messages
        ids = [m.id for m in extended]
        if anchor not in ids:
            return messages, False
        messages = extended
    idx = ids.index(anchor)
    if idx > 0:
        return messages[idx:], True
    return messages, False
