"""Pure text stages of post-processing: truncation, invisible regions, segments, mentions, emoji, splitting.

Each function takes and returns plain strings so the stages can be tested one by one and reused by the
pipeline (the pre-tool path sends text before a tool runs with the same stages).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

THINKING_OPEN = "<thinking>"
DISCORD_SPLIT_LIMIT = 1800

# Invisible regions, in the order the reference lists them. `antml:` prefixed tool markup is accepted too
# because the inline tool parser accepts it.
_REGION_RE = re.compile(
    r"<thinking>.*?</thinking>"
    r"|<(?:antml:)?function_calls>.*?</(?:antml:)?function_calls>"
    r"|System:\s*<results>.*?</results>"
    r"|<function_results>.*?</function_results>",
    re.DOTALL,
)
# A thinking block the model opened but never closed (max_tokens, or a stop inside it) stays invisible.
_UNCLOSED_THINKING_RE = re.compile(r"<thinking>(?:(?!</thinking>).)*\Z", re.DOTALL)
_THINKING_BLOCK_RE = re.compile(r"<thinking>(.*?)</thinking>", re.DOTALL)
_CODE_RE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
_REPLY_TAG_RE = re.compile(r"^\s*<reply:@[^>\n]*>\s*")
# `<@name>` where name is not a snowflake (`<@123>`, `<@!123>`) and not a role (`<@&123>`).
_NAME_MENTION_RE = re.compile(r"<@(?![!&]?\d+>)([^<>@\n]+?)>")
_EMOJI_RE = re.compile(r"(?<![<\w])(?<!<a):([A-Za-z0-9_]{2,32}):(?!\d+>)")


@dataclass(frozen=True)
class Segment:
    """One visible run of the completion, sent as its own Discord message(s).

    `prefix` is the invisible text (thinking, tool markup) just before it, `suffix` the invisible text
    after the last segment; both are kept for `preserve_thinking_context`.
    """

    text: str
    prefix: str = ""
    suffix: str = ""


def starts_with_participant(text: str, participants: Iterable[str]) -> str | None:
    """The participant whose `Name:` turn the completion starts with (a hallucinated turn), if any.

    Leading whitespace is ignored: a prefill completion usually begins with the space after `Bot:`.
    """
    head = text.lstrip()
    for name in participants:
        if name and head.startswith(f"{name}:"):
            return name
    return None


def truncate_at_participants(text: str, participants: Iterable[str], stop_sequences: Iterable[str]) -> str:
    """Cut the completion at the earliest `\\nName:` of another participant or at any request stop sequence.

    `</function_calls>` is not a cut point here: tool markup is an invisible region handled by segmenting,
    and the inline tool loop stops on it before post-processing sees the text.
    """
    cut = len(text)
    for name in participants:
        if not name:
            continue
        idx = text.find(f"\n{name}:")
        if idx != -1:
            cut = min(cut, idx)
    for stop in stop_sequences:
        if not stop or stop == "</function_calls>":
            continue
        idx = text.find(stop)
        if idx != -1:
            cut = min(cut, idx)
    return text[:cut]


def _code_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _CODE_RE.finditer(text)]


def extract_thinking_blocks(text: str) -> list[str]:
    """The contents of `<thinking>` blocks that are not inside inline code or a code fence (for debug_thinking)."""
    spans = _code_spans(text)
    out: list[str] = []
    for m in _THINKING_BLOCK_RE.finditer(text):
        if any(start <= m.start() < end for start, end in spans):
            continue
        out.append(m.group(1))
    return out


def parse_segments(text: str) -> list[Segment]:
    """Split the completion into visible segments around invisible regions.

    Each visible run is trimmed; empty runs are skipped and their text joins the next prefix. Trailing
    invisible text becomes the last segment's suffix. No visible text gives no segments.
    """
    regions = [(m.start(), m.end()) for m in _REGION_RE.finditer(text)]
    tail = _UNCLOSED_THINKING_RE.search(text, regions[-1][1] if regions else 0)
    if tail is not None:
        regions.append((tail.start(), tail.end()))
    segments: list[Segment] = []
    pending_prefix = ""
    pos = 0
    for start, end in [*regions, (len(text), len(text))]:
        visible = text[pos:start]
        if visible.strip():
            segments.append(Segment(visible.strip(), prefix=pending_prefix))
            pending_prefix = ""
        else:
            pending_prefix += visible
        pending_prefix += text[start:end]
        pos = end
    if segments and pending_prefix.strip():
        last = segments[-1]
        segments[-1] = Segment(last.text, prefix=last.prefix, suffix=pending_prefix)
    return segments


def strip_reply_tag(text: str) -> str:
    """Remove a leading `<reply:@name>` the model copied from the transcript's reply markup."""
    return _REPLY_TAG_RE.sub("", text, count=1)


def replace_known_mentions(text: str, username_ids: Mapping[str, str]) -> str:
    """`<@username>` → `<@id>` for the human authors of the context (case-insensitive on the username)."""
    lowered = {name.lower(): uid for name, uid in username_ids.items()}

    def sub(m: re.Match[str]) -> str:
        uid = lowered.get(m.group(1).lower())
        return f"<@{uid}>" if uid else m.group(0)

    return _NAME_MENTION_RE.sub(sub, text)


def mention_names(text: str) -> list[str]:
    """The names in `<@name>` mentions still unresolved, so an async caller can look them up beforehand."""
    return [m.group(1) for m in _NAME_MENTION_RE.finditer(text)]


def resolve_mentions(text: str, search: Callable[[str], str | None]) -> str:
    """Resolve the remaining `<@name>` through a guild member search; unknown names stay as typed."""

    def sub(m: re.Match[str]) -> str:
        uid = search(m.group(1))
        return f"<@{uid}>" if uid else m.group(0)

    return _NAME_MENTION_RE.sub(sub, text)


def resolve_emojis(text: str, lookup: Callable[[str], str | None]) -> str:
    """`:name:` → the guild's emoji markup (`<:name:id>` / `<a:name:id>`) when the guild has that emoji."""

    def sub(m: re.Match[str]) -> str:
        markup = lookup(m.group(1))
        return markup if markup else m.group(0)

    return _EMOJI_RE.sub(sub, text)


def utf16_len(text: str) -> int:
    """Length as Discord and the reference count it (UTF-16 code units)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _hard_cut(line: str, limit: int) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for ch in line:
        width = 2 if ord(ch) > 0xFFFF else 1
        if size + width > limit:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += width
    if current:
        pieces.append("".join(current))
    return pieces


def split_message(content: str, limit: int = DISCORD_SPLIT_LIMIT) -> list[str]:
    """Split a message for Discord the way the reference does (lines packed into chunks of at most `limit`).

    Lines are packed while `len(chunk) + len(line) + 1 <= limit`; a line longer than `limit` is hard-cut
    into pieces that are chunks of their own. As upstream, a blank line at the start of a chunk is lost
    (golden `pp-split-blank-lines-lost`): the line-packing treats an empty chunk as "no chunk yet".
    """
    if utf16_len(content) <= limit:
        return [content]
    chunks: list[str] = []
    current = ""
    for line in content.split("\n"):
        if utf16_len(line) > limit:
            if current:
                chunks.append(current)
            current = ""
            chunks.extend(_hard_cut(line, limit))
            continue
        if utf16_len(current) + utf16_len(line) + 1 <= limit:
            current = f"{current}\n{line}" if current else line
        else:
            if current:
                chunks.append(current)
            current = line
    if current:
        chunks.append(current)
    return chunks


def emoji_lookup_from(emojis: Sequence[Mapping[str, object]]) -> Callable[[str], str | None]:
    """An emoji lookup over guild emoji records `{id, name, animated}`."""
    table: dict[str, str] = {}
    for e in emojis:
        name = str(e.get("name", ""))
        if name and name not in table:
            table[name] = f"<{'a' if e.get('animated') else ''}:{name}:{e.get('id')}>"
    return table.get
