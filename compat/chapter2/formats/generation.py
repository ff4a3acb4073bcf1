"""chapter2's generation side, as pure functions (chapter2.md §5.5, §3.5).

Stop sequences for the request, the completion parsed back into reply messages (scene break,
`name_prefix_optional`, `split_message` + merge), mufflers, `trim_final_incomplete_sentence`, the
`logit_bias` rules, and the exa-search helpers (query text, results → messages). The LLM call itself is
the pipeline's; `generate_replies` runs chapter2's muffler retry loop around any async `complete()`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from chapterx_compat.chapter2.formats.formats import MessageFormat, load_format
from chapterx_compat.chapter2.formats.messages import Author, Message
from chapterx_compat.chapter2.formats.prompt import PromptSettings, build_prompt

MAX_STOP_SEQUENCES = 3
MUFFLER_TRIES = 3


def build_stop_sequences(settings: PromptSettings, history: Sequence[Message], em_name: str) -> list[str]:
    """User stops, then `\\n<name prefix>` of each other author in the recency window (newest first),
    de-duplicated; only the first 3 are sent. Without a completion prefix the stops lose the `\\n`."""
    newline = "\n" if settings.completion_prefix(em_name) else ""
    window = settings.recency_window
    recent = list(history)[::-1][: None if window == float("inf") else int(window)]
    stops = list(settings.stop_sequences)
    for msg in recent:
        if msg.author is None or msg.author.name == em_name:
            continue
        prefix = settings.message_history_format.name_prefix(str(msg.author.name))
        if prefix is not None:
            stops.append(newline + prefix)
    return list(dict.fromkeys(stops))[:MAX_STOP_SEQUENCES]


def trim_final_incomplete_sentence(text: str) -> str:
    """Drop a trailing unfinished sentence (used when the completion hit max_tokens).

    chapter2 uses NLTK's punkt tokenizer; this cuts after the last sentence-ending punctuation (with any
    closing quotes or brackets) and keeps the text unchanged when there is none.
    """
    matches = list(re.finditer(r"[.!?…][\"'”’)\]]*(?=\s|$)", text))
    if not matches:
        return text
    return text[: matches[-1].end()]


def parse_replies(
    settings: PromptSettings, completion: str, em_name: str, *, finish_reason: str | None = None
) -> list[Message]:
    """The completion (after the completion prefix) as the em's reply messages, in order."""
    if settings.trim_final_incomplete_sentence and finish_reason == "length":
        completion = trim_final_incomplete_sentence(completion)
    fmt = settings.message_history_format
    accepted: list[Message] = []
    for message in fmt.parse(settings.completion_prefix(em_name) + completion):
        if settings.prevent_gpt_topic_change and message.content.strip() == settings.scene_break.strip():
            break
        if settings.name_prefix_optional or message.author is None or message.author.name == em_name:
            accepted.append(message)
        else:
            break
    if not settings.split_message:
        accepted = list(fmt.merge(accepted))
    author = Author(em_name)
    return [replace(m, author=author) for m in accepted]


_DISCORD_URL_RE = re.compile(r"https://(cdn\.)?discord(app)?\.com/")


def _has_url(text: str) -> bool:
    return bool(re.match(r"https?://", text)) and not _DISCORD_URL_RE.match(text)


MUFFLERS: dict[str, Callable[[str], bool]] = {
    "has_url": _has_url,
    "has_pump_fun_ca": lambda text: bool(re.match(r"[a-zA-Z0-9]{40}pump", text)),
    "has_img_url_token": lambda text: text.startswith("<begin_of_img_url>"),
}


def muffled_by(text: str, mufflers: Sequence[str]) -> list[str]:
    """The names of the mufflers that reject a reply line (all anchored at the start of the line).

    `context_sentence_repetition` needs NLTK sentence splitting and is not available; unknown names are
    ignored here (chapter2 fails only when a reply is generated).
    """
    return [name for name in mufflers if name in MUFFLERS and MUFFLERS[name](text)]


async def generate_replies(
    settings: PromptSettings,
    em_name: str,
    complete: Callable[[], Awaitable[tuple[str, str | None]]],
) -> list[Message]:
    """chapter2's muffler loop around `complete() -> (text, finish_reason)`: a completion with a muffled
    line is retried, up to 3 tries in all.

    Unlike chapter2 (golden `completion-muffled-retry`), clean lines of a rejected try are not sent
    again on every retry: only the accepted try's lines are returned (on the last try, minus the muffled
    lines).
    """
    replies: list[Message] = []
    for attempt in range(1, MUFFLER_TRIES + 1):
        text, finish = await complete()
        replies = parse_replies(settings, text, em_name, finish_reason=finish)
        clean = [m for m in replies if not muffled_by(m.content, settings.mufflers)]
        if len(clean) == len(replies) or attempt == MUFFLER_TRIES:
            return clean
    return replies


def build_logit_bias(
    logit_bias: Mapping[Any, float],
    *,
    prevent_scene_break: bool,
    scene_break: str,
    tokenize: Callable[[str], list[Any]],
) -> dict[Any, float]:
    """chapter2 keeps `logit_bias` only with `prevent_scene_break` (then adds -100 on the scene break's
    first token); string keys must be exactly one token."""
    if not prevent_scene_break:
        return {}
    out: dict[Any, float] = {}
    for key, bias in logit_bias.items():
        if isinstance(key, str):
            tokens = tokenize(key)
            if len(tokens) != 1:
                raise ValueError(f"logit_bias key {key!r} is not exactly one token")
            out[tokens[0]] = bias
        else:
            out[key] = bias
    out[tokenize(scene_break.strip("\n"))[0]] = -100
    return out


def exa_query(
    history: Sequence[Message],
    em_name: str,
    input_format: MessageFormat | Mapping[str, Any] | None = None,
    *,
    attention: int = 5,
    max_words: int = 1000,
) -> str:
    """The exa_search query: the last messages rendered with the faculty's input format plus the name
    prefix, whitespace-normalised and cut to the last `max_words` tokens."""
    fmt = input_format if hasattr(input_format, "render") else load_format(input_format or {})
    recent = list(history)[-attention:] if attention else []
    text = "".join(fmt.render(m) for m in recent) + (fmt.name_prefix(em_name) or "")  # type: ignore[union-attr]
    return " ".join(text.split()[-max_words:])


def exa_results_to_messages(results: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Exa search results → web_document messages: highlights joined by newlines, line indentation
    stripped, runs of blank lines squeezed, the published date as timestamp."""
    out: list[Message] = []
    for result in results:
        text = "\n".join(str(h) for h in result.get("highlights") or [])
        text = "\n".join(line.lstrip() for line in text.split("\n"))
        text = re.sub(r"\n{3,}", "\n\n", text)
        published = str(result.get("published_date") or "")
        timestamp: float | None = None
        if published:
            # a bare date is midnight UTC (not local time)
            iso = published.replace("Z", "+00:00") if "T" in published else f"{published}T00:00:00+00:00"
            timestamp = datetime.fromisoformat(iso).timestamp()
        out.append(Message(Author(str(result.get("url"))), text, timestamp=timestamp))
    return out


@dataclass
class Chapter2Request:
    """What the pipeline sends for a chapter2-prompt bot (base-model completion) and needs afterwards."""

    prompt: str
    stop_sequences: list[str]
    max_tokens: int
    completion_prefix: str
    settings: PromptSettings
    warnings: list[str] = field(default_factory=list)


def prepare_request(
    chapter2_prompt: dict[str, Any],
    history: Sequence[Message],
    *,
    em_name: str,
    now: datetime,
    base_dir: Path,
    **options: Any,
) -> Chapter2Request:
    """Prompt, stop list (first 3, as chapter2 sends) and max_tokens for `history` (oldest first)."""
    settings = PromptSettings.from_dict(chapter2_prompt)
    built = build_prompt(settings, history, em_name=em_name, now=now, base_dir=base_dir, **options)
    return Chapter2Request(
        prompt=built.prompt,
        stop_sequences=build_stop_sequences(settings, history, em_name),
        max_tokens=settings.continuation_max_tokens,
        completion_prefix=built.completion_prefix,
        settings=settings,
        warnings=built.warnings,
    )
