"""History gathering of chapter2's Discord interface (chapter2.md §5.6.5).

Walks newest first from a message (inclusive), hides invisible messages, applies `.history` splices
and clears, and continues into the parent channel for threads (`new:` inherits nothing,
`past:<id>` inherits from that message). Returns Discord messages; conversion happens afterwards.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from chapterx_compat.chapter2.runtime.channel_config import yaml_window
from chapterx_compat.chapter2.runtime.convert import is_invisible, mentioned_in, parse_command
from chapterx_compat.chapter2.runtime.port import C2Message, Chapter2Port

_LINK_RE = re.compile(r"/channels/(?:@me|\d+)/(\d+)/(\d+)")
PAGE = 100


@dataclass(frozen=True)
class WalkOptions:
    limit: int
    ignore_dotted: bool
    bot_id: int
    names: tuple[str, str]  # bot username, sysname
    threads_inherit: bool


async def _channel_from(port: Chapter2Port, channel_id: int, start: C2Message | None,
                        start_id: int | None = None) -> AsyncIterator[C2Message]:
    """Messages of one channel from `start` (inclusive) or from the message `start_id` (inclusive), backwards."""
    before: int | None
    if start is not None:
        yield start
        before = start.id
    elif start_id is not None:
        first = await port.fetch_message(channel_id, start_id)
        if first is not None:
            yield first
        before = start_id
    else:
        before = None
    while True:
        page = await port.history(channel_id, before=before, limit=PAGE)
        for msg in page:
            yield msg
        if len(page) < PAGE:
            return
        before = page[-1].id


async def _walk(port: Chapter2Port, channel_id: int, start: C2Message | None, start_id: int | None,
                opts: WalkOptions) -> AsyncIterator[C2Message]:
    """The channel, then (for a thread) its parent from the starter message."""
    async for msg in _channel_from(port, channel_id, start, start_id):
        yield msg
    channel = port.channel(channel_id)
    if channel is None or not channel.is_thread or not opts.threads_inherit or channel.parent_id is None:
        return
    if channel.name.startswith("new:"):
        return
    from_id = channel.id
    past = re.match(r"past:(\d+)", channel.name)
    if past:
        from_id = int(past.group(1))
    async for msg in _channel_from(port, channel.parent_id, None, from_id):
        yield msg


def _link(value: object) -> tuple[int, int] | None:
    m = _LINK_RE.search(str(value or ""))
    return (int(m.group(1)), int(m.group(2))) if m else None


async def message_history(port: Chapter2Port, channel_id: int, start: C2Message | None, opts: WalkOptions,
                          start_id: int | None = None) -> list[C2Message]:
    """Up to `opts.limit` visible messages, newest first."""
    out: list[C2Message] = []
    async for msg in _walk(port, channel_id, start, start_id, opts):
        if len(out) >= opts.limit:
            break
        cmd = parse_command(msg.content)
        if cmd is not None and cmd[0] == "history":
            targets = cmd[1]
            if targets and not any(t in opts.names for t in targets) and not mentioned_in(msg, opts.bot_id):
                continue
            spec = yaml_window(msg.content)
            last = _link(spec.get("last"))
            if last is not None:
                first = _link(spec.get("first"))
                async for old in _channel_from(port, last[0], None, last[1]):
                    if len(out) >= opts.limit:
                        break
                    if not is_invisible(old, opts.ignore_dotted):
                        out.append(old)
                    if first is not None and old.id <= first[1]:
                        break
            if not spec.get("passthrough"):
                break
            continue
        if is_invisible(msg, opts.ignore_dotted):
            continue
        out.append(msg)
    return out
