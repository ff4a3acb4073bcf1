"""From one completion to the ordered Discord actions of an activation (pure; no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chapterx.postprocess.text import (
    THINKING_OPEN,
    Segment,
    extract_thinking_blocks,
    parse_segments,
    replace_known_mentions,
    resolve_emojis,
    resolve_mentions,
    split_message,
    starts_with_participant,
    strip_reply_tag,
    truncate_at_participants,
)

DEBUG_THINKING_PREFIX = ".💭 "
DEBUG_THINKING_MAX = 1900
DEBUG_THINKING_FILE = "thinking.md"
MAX_DEPTH_NOTE = "\n[Max tool depth reached]"
WARN_START_HALLUCINATION = "warn: Response starts with another participant - complete hallucination, discarding"
WARN_REFUSAL = "warn: LLM refused to complete request"

# Refusal reaction by `stop_details.category`; anything else gets 🛑.
REFUSAL_EMOJI = {
    "bio": "☣️",
    "chem": "🧪",
    "nuclear": "☢️",
    "cyber": "💻",
    "reasoning_extraction": "🧠",
}
DEFAULT_REFUSAL_EMOJI = "🛑"


@dataclass(frozen=True)
class Completion:
    """What the provider returned for the bot's turn.

    `text` is the raw completion text (prefill / base-model: everything after the prefill, tool markup
    and literal `<thinking>` blocks included; chat: the text blocks joined). `thinking` holds native
    (API) thinking blocks, e.g. chat mode with extended thinking.
    """

    text: str
    thinking: Sequence[str] = ()
    stop_reason: str | None = None
    stop_sequence: str | None = None
    refusal_category: str | None = None
    streaming: bool = True


@dataclass(frozen=True)
class PostprocessContext:
    """Everything post-processing needs to know about the activation, as plain values.

    - `participants`: author names of the fetched context (same display-name policy as the prompt),
      without the bot; a completion starting with `Name:` is a hallucinated turn, `\\nName:` ends it.
    - `stop_sequences`: the request's stop list before any provider cap.
    - `human_usernames`: username → user id of the human authors in the context (`replaceMentions`).
    - `member_search`: the guild member search for the `<@name>` left over (None: leave them).
    - `emoji_lookup`: `name` → `<:name:id>` markup for the guild's emojis (None: leave `:name:`).
    - `reply_to`: the trigger message id the first visible chunk replies to (None: no reply, e.g. the
      pre-tool text already replied).
    """

    bot_name: str
    participants: Sequence[str] = ()
    stop_sequences: Sequence[str] = ()
    mode: Literal["prefill", "chat", "base-model"] = "prefill"
    prefill_thinking: bool = False
    debug_thinking: bool = False
    human_usernames: Mapping[str, str] = field(default_factory=dict)
    member_search: Callable[[str], str | None] | None = None
    emoji_lookup: Callable[[str], str | None] | None = None
    reply_to: str | None = None
    max_depth_reached: bool = False
    split_limit: int = 1800


@dataclass(frozen=True)
class FileAttachment:
    name: str
    content: str


@dataclass(frozen=True)
class SendMessage:
    """One Discord message (one chunk). `role` tells debug-thinking posts from the reply proper."""

    content: str
    reply_to: str | None = None
    files: tuple[FileAttachment, ...] = ()
    role: Literal["reply", "debug_thinking"] = "reply"
    segment_index: int | None = None


@dataclass(frozen=True)
class AddReaction:
    """A reaction on a message this plan sends (`send_index` into the plan's SendMessage actions) or on an
    existing message (`message_id`, e.g. the trigger when nothing was sent)."""

    emoji: str
    send_index: int | None = None
    message_id: str | None = None


DiscordAction = SendMessage | AddReaction


@dataclass
class Plan:
    """The result: actions in order, plus what the pipeline records (segments, warnings, outcome)."""

    actions: list[DiscordAction]
    segments: list[Segment]
    text: str  # the completion after thinking-opener repair and truncation (tool log, activation store)
    warnings: list[str] = field(default_factory=list)
    hallucinated_start: str | None = None  # participant whose turn the completion started with

    @property
    def sends(self) -> list[SendMessage]:
        return [a for a in self.actions if isinstance(a, SendMessage)]


def prepare_text(completion: Completion, ctx: PostprocessContext) -> str:
    """Restore the `<thinking>` opener that sat in the prefill, so the thought is an invisible region.

    Upstream skips this on the raw-text path and leaks the thought (golden
    `pp-prefill-thinking-debug-nonstreaming`); see docs/differences.md#postprocess.
    """
    text = completion.text
    if ctx.prefill_thinking and ctx.mode == "prefill" and not text.lstrip().startswith(THINKING_OPEN):
        text = THINKING_OPEN + text
    return text


def _send_chunks(text: str, ctx: PostprocessContext) -> list[str]:
    """What `sendMessage` does to one text: member search, emoji, split."""
    if ctx.member_search is not None:
        text = resolve_mentions(text, ctx.member_search)
    if ctx.emoji_lookup is not None:
        text = resolve_emojis(text, ctx.emoji_lookup)
    return split_message(text, ctx.split_limit)


def debug_thinking_messages(thoughts: Iterable[str], ctx: PostprocessContext) -> list[SendMessage]:
    """`.💭 <thought>` posts; a thought over 1900 characters is attached as `thinking.md` instead."""
    out: list[SendMessage] = []
    for thought in thoughts:
        body = thought.strip()
        if not body:
            continue
        if len(body) > DEBUG_THINKING_MAX:
            out.append(
                SendMessage(
                    f"{DEBUG_THINKING_PREFIX}thinking trace attached",
                    files=(FileAttachment(DEBUG_THINKING_FILE, body),),
                    role="debug_thinking",
                )
            )
        else:
            for chunk in _send_chunks(f"{DEBUG_THINKING_PREFIX}{body}", ctx):
                out.append(SendMessage(chunk, role="debug_thinking"))
    return out


def segment_messages(segments: Sequence[Segment], ctx: PostprocessContext) -> list[SendMessage]:
    """The Discord messages for the visible segments; the first chunk replies to `ctx.reply_to`."""
    out: list[SendMessage] = []
    reply_to = ctx.reply_to
    for index, seg in enumerate(segments):
        text = replace_known_mentions(seg.text, ctx.human_usernames)
        if index == 0:
            text = strip_reply_tag(text)
        if not text.strip():
            continue
        for chunk in _send_chunks(text, ctx):
            out.append(SendMessage(chunk, reply_to=reply_to, segment_index=index))
            reply_to = None
    return out


def plan_reply_texts(texts: Sequence[str], ctx: PostprocessContext) -> list[SendMessage]:
    """Messages for replies that are already split (chapter2 prompt mode: one Discord message per parsed
    reply line): each text goes through the same mention/emoji/split stages; the first replies."""
    return segment_messages([Segment(t.strip()) for t in texts if t.strip()], ctx)


def refusal_reactions(
    category: str | None, sent: int, trigger_id: str | None, first: int = 0
) -> list[AddReaction]:
    """React to every sent message (`first` is the first one's index among the plan's sends), or to the
    trigger when nothing was sent."""
    emoji = REFUSAL_EMOJI.get(category or "", DEFAULT_REFUSAL_EMOJI)
    if sent:
        return [AddReaction(emoji, send_index=first + i) for i in range(sent)]
    return [AddReaction(emoji, message_id=trigger_id)] if trigger_id else []


def plan_discord_actions(completion: Completion, ctx: PostprocessContext) -> Plan:
    """Turn a completion into the ordered Discord actions (see the package docstring for the stages)."""
    text = prepare_text(completion, ctx)
    hallucinated = starts_with_participant(text, ctx.participants)
    if hallucinated is not None:
        return Plan([], [], "", [WARN_START_HALLUCINATION], hallucinated_start=hallucinated)
    text = truncate_at_participants(text, ctx.participants, ctx.stop_sequences)
    body = text + (MAX_DEPTH_NOTE if ctx.max_depth_reached else "")
    segments = parse_segments(body)

    actions: list[DiscordAction] = []
    warnings: list[str] = []
    if ctx.debug_thinking:
        thoughts = [*completion.thinking, *extract_thinking_blocks(body)]
        actions.extend(debug_thinking_messages(thoughts, ctx))
    first_reply = len(actions)  # debug-thinking posts are all sends, so this is also a send index
    replies = segment_messages(segments, ctx)
    actions.extend(replies)
    if completion.stop_reason == "refusal":
        warnings.append(WARN_REFUSAL)
        actions.extend(refusal_reactions(completion.refusal_category, len(replies), ctx.reply_to, first_reply))
    return Plan(actions, segments, text, warnings)


def actions_as_vector(actions: Sequence[DiscordAction], first_id: int = 1900000000000000001) -> list[dict[str, Any]]:
    """The actions in the golden vectors' `discord_actions` shape, giving sent messages ids in send order.

    (`first_id` is where the plan's first send lands; pass the next free id when earlier sends happened.)
    """
    ids = [str(first_id + i) for i, a in enumerate(a for a in actions if isinstance(a, SendMessage))]
    out: list[dict[str, Any]] = []
    for action in actions:
        if isinstance(action, SendMessage):
            item: dict[str, Any] = {"type": "send", "content": action.content, "reply_to": action.reply_to}
            if action.files:
                item["files"] = [{"name": f.name, "content": f.content} for f in action.files]
            out.append(item)
        else:
            target = ids[action.send_index] if action.send_index is not None else action.message_id
            out.append({"type": "reaction", "message_id": target, "emoji": action.emoji})
    return out
