"""The context builder (reference §2.4-2.8) as small pure stages.

Input: converted Discord messages plus tool-cache entries, plugin injections, channel state and
config. Output: participant messages (with one cache breakpoint), the stop list, the cache marker
and whether the window rolled. No I/O happens here, so every stage is testable on plain data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chapterx.config.model import BotConfig
from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.context import options as opt
from chapterx.context.types import (
    BuiltContext,
    ContentBlock,
    ContextMessage,
    Document,
    ImageData,
    ParticipantMessage,
)

CACHE_BUFFER = 20
IMAGE_BUDGET_BYTES = 15 * 1024 * 1024
IMAGE_CAP_BYTES = 5 * 1024 * 1024
TOOL_OUTPUT_LIMIT = 2000
TOOL_CACHE_KEEP = 5

EYE_REACTIONS = frozenset({"👁‍🗨", "👁️‍🗨️", "eye_in_speech_bubble"})
HIDE_REACTIONS = frozenset({"🫥", "dotted_line_face"})

_REPLY_TAG = re.compile(r"^<reply:@[^>]*>\s*")
_LEADING_MENTIONS = re.compile(r"^(?:<@[^>]*>\s*|@[\w.-]+\s*)+")
_DOT = re.compile(r"^\.(?!\.)")
_STEER = re.compile(r"^\.steer\b")
_OVERRIDE_LEAD = re.compile(r"^(<reply:@[^>]*>\s*)?(<@[^>]*>\s*)*")
_OVERRIDE = re.compile(r"^~([^:\n]+):\s?")
_STRIP_REPLY = re.compile(r"^(?:<reply:@[^>]*>|\(replying to [^)]*\))\s*")
_STOP_MENTION = re.compile(r"<@(\w+(?:\.\w+)?)>")
_MENTION = re.compile(r"<@([^>]+)>")
_REPLY_MENTION = re.compile(r"<reply:@([^>]+)>")


@dataclass
class ToolCacheEntry:
    """One line of the tool JSONL log (§5.5)."""

    call: dict[str, Any]
    result: dict[str, Any]
    timestamp: str = ""


@dataclass
class Injection:
    """A plugin context injection (§2.4 step 7)."""

    content: str
    depth: int
    priority: int = 0
    as_system: bool = False
    messages_since_modified: int | None = None


@dataclass
class BuildInput:
    messages: list[ContextMessage]
    config: BotConfig  # a mapping passed here is converted once, in __post_init__
    bot_user_id: str
    bot_username: str
    images: Mapping[str, ImageData] = field(default_factory=dict)
    documents: Mapping[str, Document] = field(default_factory=dict)
    tool_cache: Sequence[ToolCacheEntry] = ()
    injections: Sequence[Injection] = ()
    last_cache_marker: str | None = None
    messages_since_roll: int = 0
    thinking_blocks: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config = as_bot_config(self.config)


# -- stage helpers ---------------------------------------------------------------------------


def _is_own(msg: ContextMessage, bot_user_id: str) -> bool:
    # Upstream compares the display name with the username (fails with a nickname); we use the id.
    return msg.author.id == bot_user_id


def _starts_with_dot(content: str) -> bool:
    return content.strip().startswith(".") if content else False


def merge_own_messages(messages: list[ContextMessage], bot_user_id: str) -> list[ContextMessage]:
    """Stage 1: consecutive messages of this bot become one (joined by a space)."""
    out: list[ContextMessage] = []
    for msg in messages:
        if out and _is_own(msg, bot_user_id) and _is_own(out[-1], bot_user_id):
            prev = out[-1]
            if not _starts_with_dot(_REPLY_TAG.sub("", prev.content, 1)) and not _starts_with_dot(
                _REPLY_TAG.sub("", msg.content, 1)
            ):
                out[-1] = ContextMessage(
                    id=prev.id,
                    channel_id=prev.channel_id,
                    content=f"{prev.content} {msg.content}",
                    author=prev.author,
                    timestamp=prev.timestamp,
                    attachments=prev.attachments + msg.attachments,
                    reactions=prev.reactions + msg.reactions,
                    author_roles=prev.author_roles,
                    mentions=prev.mentions + msg.mentions,
                    referenced_message=prev.referenced_message,
                )
                continue
        out.append(msg)
    return out


def is_dot_message(content: str) -> bool:
    if "." not in content:
        return False
    rest = _REPLY_TAG.sub("", content.strip(), 1)
    rest = _LEADING_MENTIONS.sub("", rest, 1)
    return bool(_DOT.match(rest))


def filter_dot_messages(messages: list[ContextMessage], config: ConfigLike) -> list[ContextMessage]:
    """Stage 2: hide dot messages and 🫥-reacted ones unless 👁️‍🗨️ un-hides them."""
    cfg = as_bot_config(config)
    if not cfg.ignore_dotted_messages:
        return messages
    steer_visible = cfg.steer_visible is True
    out = []
    for msg in messages:
        if msg.reactions:
            names = {r[0] for r in msg.reactions}
            if names & EYE_REACTIONS:
                out.append(msg)
                continue
            if names & HIDE_REACTIONS:
                continue
        if is_dot_message(msg.content):
            rest = _LEADING_MENTIONS.sub("", _REPLY_TAG.sub("", msg.content.strip(), 1), 1)
            if not (steer_visible and _STEER.match(rest)):
                continue
        out.append(msg)
    return out


def determine_cache_marker(
    ids: Sequence[str], last: str | None, did_roll: bool, bot_ids: set[str], buffer: int = CACHE_BUFFER
) -> str | None:
    """Where the cached prefix ends: keep the old marker unless rolled, else ~20 from the end."""
    if not ids:
        return None
    if not did_roll and last is not None and last in ids:
        return last
    t = max(0, len(ids) - buffer)
    for off in range(buffer):
        for idx in (t + off, t - off):
            if 0 <= idx < len(ids) and ids[idx] not in bot_ids:
                return ids[idx]
    return ids[t]


def _message_chars(msg: ParticipantMessage) -> int:
    total = 0
    for b in msg.content:
        if b.get("type") == "text":
            total += len(b.get("text", ""))
        elif b.get("type") == "tool_result":
            c = b.get("content")
            total += len(c) if isinstance(c, str) else len(json.dumps(c))
    return total


def truncate_by_chars(messages: list[ParticipantMessage], limit: int) -> list[ParticipantMessage]:
    """Keep the newest messages that fit in `limit` characters.

    The newest message is always kept, even alone over the limit (upstream then sends an empty
    context, reference §8 item 13).
    """
    total = 0
    for i in range(len(messages) - 1, -1, -1):
        total += _message_chars(messages[i])
        if total > limit:
            return messages[i + 1:] if i + 1 < len(messages) else messages[-1:]
    return messages


def apply_limits(
    messages: list[ParticipantMessage], config: ConfigLike, messages_since_roll: int
) -> tuple[list[ParticipantMessage], bool, list[str]]:
    """Recency windows with rolling (§2.5): grow between rolls, snap back when a roll is due."""
    cfg = as_bot_config(config)
    warnings: list[str] = []
    chars = sum(_message_chars(m) for m in messages)
    normal = int(cfg.recency_window_characters or opt.RECENCY_WINDOW_CHARACTERS)
    msg_limit = cfg.recency_window_messages or None
    hard = int(cfg.hard_max_characters or opt.HARD_MAX_CHARACTERS)
    threshold = opt.rolling_threshold(cfg)
    if chars > hard:
        warnings.append("warn: Hard character limit exceeded")
        return truncate_by_chars(messages, normal), True, warnings
    should_roll = messages_since_roll >= threshold
    if not should_roll and cfg.prompt_caching and chars <= normal:
        return messages, False, warnings
    if chars > normal:
        return truncate_by_chars(messages, normal), True, warnings
    if msg_limit is not None and len(messages) > int(msg_limit):
        return messages[-int(msg_limit):], True, warnings
    return messages, False, warnings


def recover_orphan_marker(messages: list[ParticipantMessage], bot_name: str) -> str | None:
    n = len(messages)
    if n == 0:
        return None
    backup: str | None = None
    start = max(0, n - 1 - CACHE_BUFFER)
    stop = max(0, n - 1 - 2 * CACHE_BUFFER)
    for i in range(start, stop - 1, -1):
        m = messages[i]
        if not m.message_id:
            continue
        if m.participant != bot_name:
            return m.message_id
        backup = backup or m.message_id
    return backup or messages[max(0, n - CACHE_BUFFER)].message_id


# -- formatMessages --------------------------------------------------------------------------


def _display_maps(
    messages: Iterable[ContextMessage], config: BotConfig, bot_user_id: str
) -> dict[str, str]:
    """username -> display name for mention rewriting (every author when `mention_format` is set,
    else only authors whose class is shown by display name)."""
    bots_dn = config.use_display_names_bots
    humans_dn = config.use_display_names_humans
    every = bool(config.mention_format)
    mapping: dict[str, str] = {}
    for m in messages:
        if m.author.id == bot_user_id:
            continue
        uses = every or (bots_dn if m.author.bot else humans_dn)
        if uses and m.author.display_name != m.author.username:
            mapping[m.author.username] = m.author.display_name
    return mapping


def participant_name(msg: ContextMessage, config: ConfigLike, bot_user_id: str) -> str:
    cfg = as_bot_config(config)
    if msg.author.id == bot_user_id:
        return cfg.name
    uses = cfg.use_display_names_bots if msg.author.bot else cfg.use_display_names_humans
    return msg.author.display_name if uses else msg.author.username


def normalize_mentions(
    text: str, config: ConfigLike, bot_username: str, display: Mapping[str, str]
) -> str:
    """Rewrite `<@user>` / `<reply:@user>` the way the model should read them (§2.4 step 4)."""
    if "<" not in text:
        return text
    cfg = as_bot_config(config)
    name = cfg.name
    if bot_username and bot_username != name:
        text = text.replace(f"<@{bot_username}>", f"<@{name}>").replace(
            f"<reply:@{bot_username}>", f"<reply:@{name}>"
        )
    template = cfg.mention_format
    if template:
        tpl = str(template)

        def fmt(x: str) -> str:
            shown = x if x == name else display.get(x, x)
            return tpl.replace("{name}", shown)

        text = _REPLY_MENTION.sub(lambda m: f"(replying to {fmt(m.group(1))})", text)
        return _MENTION.sub(lambda m: fmt(m.group(1)), text)
    if cfg.use_display_names_bots or cfg.use_display_names_humans:
        for user, shown in display.items():
            text = text.replace(f"<@{user}>", f"@{shown}").replace(
                f"<reply:@{user}>", f"(replying to @{shown})"
            )
        text = text.replace(f"<@{name}>", f"@{name}").replace(f"<reply:@{name}>", f"(replying to @{name})")
    return text


def document_blocks(doc: Document, config: ConfigLike) -> list[ContentBlock]:
    """One text block per text attachment.

    Upstream renders every attachment twice (a `📎` block plus an `<attachment>` block); we emit
    the `<attachment>` block when it fits `max_text_attachment_kb`, the `📎` form otherwise, and
    nothing when `include_text_attachments` is false.
    """
    cfg = as_bot_config(config)
    if not cfg.include_text_attachments:
        return []
    limit_kb = opt.max_text_attachment_kb(cfg)
    if doc.size <= limit_kb * 1024:
        trunc = " [truncated]" if doc.truncated else ""
        return [{"type": "text", "text": f'<attachment filename="{doc.filename}"{trunc}>\n{doc.text}\n</attachment>'}]
    suffix = "\n[Attachment truncated]" if doc.truncated else ""
    return [{"type": "text", "text": f"📎 {doc.filename}\n{doc.text}{suffix}"}]


def select_image_messages(
    messages: Sequence[ContextMessage], images: Mapping[str, ImageData], marker: str | None, limit: int
) -> set[str]:
    """Tier-2 selection: newest first, down to the cache marker, whole messages at a time."""
    ids = [m.id for m in messages]
    marker_idx = ids.index(marker) if marker in ids else 0
    chosen: set[str] = set()
    count = 0
    budget = 0
    for i in range(len(messages) - 1, marker_idx - 1, -1):
        atts = [a for a in messages[i].attachments if a.url in images]
        if not atts:
            continue
        if count >= limit:
            break
        cost = sum(min((len(images[a.url].data) * 4 + 2) // 3, IMAGE_CAP_BYTES) for a in atts)
        if budget + cost > IMAGE_BUDGET_BYTES:
            break
        chosen.add(messages[i].id)
        count += len(atts)
        budget += cost
    return chosen


def limit_images(messages: list[ParticipantMessage], limit: int) -> None:
    """Drop the oldest image blocks beyond `limit` (upstream's index splicing bug not kept)."""
    positions = [(i, j) for i, m in enumerate(messages) for j, b in enumerate(m.content) if b.get("type") == "image"]
    excess = len(positions) - limit
    if excess <= 0:
        return
    drop: dict[int, set[int]] = {}
    for i, j in positions[:excess]:
        drop.setdefault(i, set()).add(j)
    for i, js in drop.items():
        messages[i].content = [b for j, b in enumerate(messages[i].content) if j not in js]


def image_block(img: ImageData) -> ContentBlock:
    import base64

    return {
        "type": "image",
        "source": {"type": "base64", "media_type": img.media_type, "data": base64.b64encode(img.data).decode("ascii")},
    }


def format_messages(
    messages: Sequence[ContextMessage],
    inp: BuildInput,
    image_marker: str | None,
) -> list[ParticipantMessage]:
    config = inp.config
    display = _display_maps(messages, config, inp.bot_user_id)
    include_images = config.include_images
    limit = opt.max_images(config)
    chosen = select_image_messages(messages, inp.images, image_marker, limit) if include_images else set()
    include_tags = config.include_reply_tags is True
    bot = config.name
    dn_bots = config.use_display_names_bots
    dn_humans = config.use_display_names_humans
    speaker = bot
    out: list[ParticipantMessage] = []
    for msg in messages:
        content = msg.content
        override: str | None = None
        if "~" in content:
            lead = _OVERRIDE_LEAD.match(content)
            lead_text = lead.group(0) if lead else ""
            m = _OVERRIDE.match(content[len(lead_text):])
            if m:
                override = m.group(1).strip()
                content = lead_text + content[len(lead_text) + m.end():]
        content = normalize_mentions(content, config, inp.bot_username, display)
        if not include_tags and (content[:1] == "<" or content[:1] == "("):
            content = _STRIP_REPLY.sub("", content, 1)
        blocks: list[ContentBlock] = []
        if content and not content.isspace():
            blocks.append({"type": "text", "text": content})
        for att in msg.attachments:
            doc = inp.documents.get(att.url)
            if doc is not None:
                blocks.extend(document_blocks(doc, config))
        if chosen and msg.id in chosen:
            for att in msg.attachments:
                img = inp.images.get(att.url)
                if img is not None:
                    blocks.append(image_block(img))
        if not blocks:
            continue
        if override is None:
            author = msg.author
            if author.id == inp.bot_user_id:
                speaker = bot
            else:
                speaker = author.display_name if (dn_bots if author.bot else dn_humans) else author.username
        out.append(
            ParticipantMessage(
                participant=override or speaker,
                content=blocks,
                message_id=msg.id,
                timestamp=msg.timestamp,
                is_bot=msg.author.bot,
                is_character_override=override is not None,
            )
        )
    limit_images(out, limit)
    return out


# -- tool cache, injections, merging ---------------------------------------------------------


def load_tool_cache(entries: Sequence[ToolCacheEntry], existing_ids: set[str] | None) -> list[ToolCacheEntry]:
    """Filter to entries whose bot messages are still in the window, cut outputs, keep 5."""
    kept: list[ToolCacheEntry] = []
    for e in entries:
        if existing_ids is not None:
            ids = e.call.get("botMessageIds")
            if not ids or not any(i in existing_ids for i in ids):
                continue
        result = dict(e.result)
        out = result.get("output")
        text = out if isinstance(out, str) else json.dumps(out)
        if text is not None and len(text) > TOOL_OUTPUT_LIMIT:
            result["output"] = text[:TOOL_OUTPUT_LIMIT] + "\n...[truncated]"
        kept.append(ToolCacheEntry(e.call, result, e.timestamp))
    return kept[-TOOL_CACHE_KEEP:]


def interleave_tools(
    messages: list[ParticipantMessage], entries: Sequence[ToolCacheEntry], bot: str, max_mcp_images: int
) -> list[ParticipantMessage]:
    """Insert each tool call/result pair right after the message that triggered it (§2.4 step 5)."""
    if not entries:
        return messages
    after: dict[str, list[ParticipantMessage]] = {}
    for e in entries:
        anchor = str(e.call.get("messageId") or "")
        out = e.result.get("output")
        text = out if isinstance(out, str) else json.dumps(out, separators=(",", ":"))
        if e.result.get("error") and not text:
            text = f"Error: {e.result['error']}"
        result_blocks: list[ContentBlock] = [{"type": "text", "text": text or ""}]
        for img in e.result.get("images") or []:
            result_blocks.append(
                {"type": "image", "source": {"type": "base64", "media_type": img.get("mimeType", "image/png"), "data": img.get("data", "")}}
            )
        pair = [
            ParticipantMessage(bot, [{"type": "text", "text": str(e.call.get("originalCompletionText") or "")}], anchor),
            ParticipantMessage(f"System<[{e.call.get('name')}]", result_blocks, anchor),
        ]
        after.setdefault(anchor, []).extend(pair)
    out_msgs: list[ParticipantMessage] = []
    for m in messages:
        out_msgs.append(m)
        if m.message_id and m.message_id in after:
            out_msgs.extend(after.pop(m.message_id))
    # keep only the latest MCP images in tool-result messages
    positions = [
        (i, j)
        for i, m in enumerate(out_msgs)
        if m.participant.startswith("System<[")
        for j, b in enumerate(m.content)
        if b.get("type") == "image"
    ]
    excess = len(positions) - max_mcp_images
    for i, j in reversed(positions[: max(0, excess)]):
        del out_msgs[i].content[j]
    return out_msgs


def apply_injections(messages: list[ParticipantMessage], injections: Sequence[Injection]) -> list[ParticipantMessage]:
    if not injections:
        return messages
    n = len(messages)
    placed: list[tuple[int, int, ParticipantMessage]] = []
    for order, inj in enumerate(injections):
        if inj.depth >= 0:
            current = inj.depth
            if inj.messages_since_modified is not None:
                current = min(current, inj.messages_since_modified)
            idx = max(0, n - current)
        else:
            idx = min(n, abs(inj.depth) - 1)
        pm = ParticipantMessage("System" if inj.as_system else "System>[plugin]", [{"type": "text", "text": inj.content}])
        placed.append((idx, -inj.priority * 1000 + order, pm))
    placed.sort(key=lambda t: (t[0], t[1]))
    out: list[ParticipantMessage] = []
    k = 0
    for i in range(n + 1):
        while k < len(placed) and placed[k][0] == i:
            out.append(placed[k][2])
            k += 1
        if i < n:
            out.append(messages[i])
    return out


def reattach_thinking(
    messages: list[ParticipantMessage], stored: Mapping[str, list[dict[str, Any]]], bot_name: str
) -> None:
    """Stage 8: put stored native thinking blocks back in front of the bot turns they came with."""
    if not stored:
        return
    for m in messages:
        blocks = stored.get(m.message_id or "")
        if blocks and m.participant == bot_name and not any(
            b.get("type") in ("thinking", "redacted_thinking") for b in m.content
        ):
            m.content = [dict(b) for b in blocks] + list(m.content)


def merge_bot_turns(messages: list[ParticipantMessage]) -> list[ParticipantMessage]:
    """Stage 9: consecutive turns of the same bot participant become one (text joined by a space)."""
    out: list[ParticipantMessage] = []
    copied: set[int] = set()
    for m in messages:
        if out and m.is_bot and out[-1].is_bot and out[-1].participant == m.participant:
            if id(out[-1]) not in copied:
                p = out[-1]
                out[-1] = ParticipantMessage(p.participant, list(p.content), p.message_id, p.timestamp, p.is_bot,
                                             p.is_character_override, p.cache_breakpoint)
                copied.add(id(out[-1]))
            prev = out[-1]
            blocks = list(m.content)
            new_prev = [dict(b) for b in prev.content]
            if new_prev and blocks and new_prev[-1].get("type") == "text" and blocks[0].get("type") == "text":
                new_prev[-1]["text"] = f"{new_prev[-1]['text']} {blocks[0]['text']}"
                blocks = blocks[1:]
            prev.content = new_prev + blocks
            prev.cache_breakpoint = prev.cache_breakpoint or m.cache_breakpoint
            continue
        out.append(m)
    return out


# -- stop sequences ---------------------------------------------------------------------------


def build_stop_sequences(messages: Sequence[ParticipantMessage], config: ConfigLike) -> list[str]:
    """§3.3: recent speakers (bot first) and mentioned names, then configured and fixed stops."""
    cfg = as_bot_config(config)
    limit = max(opt.recent_participant_count(cfg), 10)
    names: list[str] = []
    for m in reversed(messages):
        if len(names) >= limit:
            break
        candidates = [] if m.is_character_override else [m.participant]
        for b in m.content:
            if b.get("type") == "text" and "<@" in b.get("text", ""):
                candidates.extend(_STOP_MENTION.findall(b["text"]))
        for c in candidates:
            if c and c not in names and len(names) < limit:
                names.append(c)
    stops: list[str] = []
    if cfg.turn_end_token:
        stops.append(str(cfg.turn_end_token))
    if cfg.message_delimiter:
        stops.append(str(cfg.message_delimiter))
    bot = cfg.name
    thinking = cfg.prefill_thinking is True
    for n in names:
        if n.isdigit() or (thinking and n == bot):
            continue
        stops.append(f"\n{n}:")
    configured: Sequence[str] = cfg.stop_sequences or ()
    if isinstance(configured, str):  # a hand-written config may give one string
        configured = [configured]
    stops.extend(str(s) for s in configured)
    stops.extend(["\nSystem:", "<<HUMAN_CONVERSATION_END>>"])
    return stops


# -- the whole builder ------------------------------------------------------------------------


def build_context(inp: BuildInput) -> BuiltContext:
    config = inp.config
    name = config.name
    warnings: list[str] = []
    msgs = merge_own_messages(inp.messages, inp.bot_user_id)
    msgs = filter_dot_messages(msgs, config)
    discord_ids = [m.id for m in msgs]
    bot_ids = {m.id for m in msgs if _is_own(m, inp.bot_user_id)}
    image_marker = inp.last_cache_marker or determine_cache_marker(discord_ids, None, True, bot_ids)
    pms = format_messages(msgs, inp, image_marker)
    pms = interleave_tools(pms, inp.tool_cache, name, opt.max_mcp_images(config))
    pms = apply_injections(pms, inp.injections)
    reattach_thinking(pms, inp.thinking_blocks, name)
    pms = merge_bot_turns(pms)
    pms, did_roll, lw = apply_limits(pms, config, inp.messages_since_roll)
    warnings.extend(lw)
    if lw:
        warnings.append("warn: HARD LIMIT EXCEEDED - Truncating to normal limit and forcing roll")
    marker: str | None = None
    if config.prompt_caching:
        marker = determine_cache_marker(discord_ids, inp.last_cache_marker, did_roll, bot_ids)
        if marker is not None and not any(m.message_id == marker for m in pms):
            warnings.append("warn: Cache marker orphaned - using fallback")
            marker = recover_orphan_marker(pms, name)
        for m in pms:
            if marker is not None and m.message_id == marker:
                m.cache_breakpoint = True
                break
    completion = ParticipantMessage(name, [{"type": "text", "text": ""}])
    stops = build_stop_sequences([*pms, completion], config)
    return BuiltContext(messages=pms, stop_sequences=stops, cache_marker=marker, did_roll=did_roll, warnings=warnings)
