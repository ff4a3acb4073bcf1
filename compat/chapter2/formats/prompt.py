"""chapter2 prompt assembly from the `chapter2_prompt` bot config key (chapter2.md §5.2, §5.3).

`chapter2_prompt` holds chapter2's prompt keys verbatim (what `chapterx migrate` carries over):
`message_history_format`, `message_history_header`, `message_history_footer`, `message_history_separator`,
`message_history_operator`, `message_history_max_tokens`, `recency_window`, `ensembles`, `name_prefix`,
`name_prefix_optional`, `split_message`, `trim_final_incomplete_sentence`, `stop_sequences`,
`continuation_max_tokens`, `total_max_tokens` (or `prompt_max_tokens`), `continuation_model` (only its
`@N` context-length suffix is used here) or `context_length`, `scene_break`, `prevent_gpt_topic_change`,
`mufflers`, and `chr_dir` or `folder` (folder holding `<name>.chr/`, relative to `base_dir`, normally the
bot file's folder; default: `base_dir` itself). `chapter2_prompt_from_bot_config` fills the keys that
`migrate` writes at the ChapterX level (`recency_window_messages`, `max_tokens`, `stop_sequences`,
`continuation_model`) when `chapter2_prompt` does not repeat them.

History is given **oldest first** (as ChapterX builds context); chapter2 itself takes it newest first,
and the reversal happens here.

Token budgets count with `count_tokens` (default: whitespace-separated words, which is also what the
chapter2 golden vectors use). Pass the model's tokenizer for exact budgets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pydantic

from chapterx_compat.chapter2.formats.character import Ranker, character_chunks, lexical_ranker
from chapterx_compat.chapter2.formats.formats import IRCMessageFormat, MessageFormat, load_format
from chapterx_compat.chapter2.formats.messages import Author, Message
from chapterx_compat.chapter2.formats.templating import render_template, template_context

INF = float("inf")
DEFAULT_MUFFLERS = ["has_url", "has_pump_fun_ca", "has_img_url_token"]

Item = Message | Sequence[Message]
CountTokens = Callable[[str], int]
# (faculty config with defaults applied, history newest first) -> the faculty's items, or None to skip it.
FacultyItems = Callable[[dict[str, Any], list[Message]], Sequence[Item] | None]


def whitespace_tokens(text: str) -> int:
    """Token count stand-in: maximal runs of non-whitespace."""
    return len(text.split())


def _number(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lower() in {"inf", "infinity", ".inf", "+inf"}:
        return INF
    return float(value)


class LayerOfEnsembleFormat(pydantic.BaseModel):
    """One level of an ensemble's formatting (chapter2.md §3.2.2)."""

    format: Any
    separator: str = "###\n"
    max_tokens: float = INF
    max_items: float = INF
    header: str = ""
    footer: str = "###\n"
    operator: Literal["prepend", "append"] = "append"

    @pydantic.field_validator("format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        return load_format(value)

    @pydantic.field_validator("max_tokens", "max_items", mode="before")
    @classmethod
    def _inf(cls, value: Any) -> float:
        return _number(value, INF)


def _layer(**kwargs: Any) -> LayerOfEnsembleFormat:
    return LayerOfEnsembleFormat(**kwargs)


def default_layers(faculty: str) -> list[LayerOfEnsembleFormat]:
    """chapter2's default `ensemble_format` for each faculty kind."""
    if faculty in ("exa_search", "metaphor_search"):
        return [_layer(format={"name": "web_document"}, max_tokens=4000)]
    if faculty == "history":
        return [_layer(format={"name": "irc"}, operator="prepend", separator="", footer="")]
    if faculty == "airtable_notes":
        return []
    return [
        _layer(format={"name": "irc"}, operator="prepend"),
        _layer(format={"name": "irc"}, separator="", footer=""),
    ]


FACULTY_ATTENTION = {"character": 7, "exa_search": 5, "metaphor_search": 5, "sim": INF, "history": 0}


@dataclass
class PromptSettings:
    """The prompt-affecting chapter2 keys with chapter2's defaults."""

    message_history_format: MessageFormat = field(default_factory=IRCMessageFormat)
    message_history_header: str = ""
    message_history_footer: str = ""
    message_history_separator: str = ""
    message_history_operator: Literal["prepend", "append"] = "prepend"
    message_history_max_tokens: float = INF
    recency_window: float = 35
    total_max_tokens: float = 31_900
    continuation_max_tokens: int = 120
    context_length: float = INF
    ensembles: list[dict[str, Any]] = field(default_factory=list)
    name_prefix: bool = True
    name_prefix_optional: bool = True
    split_message: bool = True
    trim_final_incomplete_sentence: bool = False
    stop_sequences: list[str] = field(default_factory=list)
    scene_break: str = "###\n"
    prevent_gpt_topic_change: bool = True
    mufflers: list[str] = field(default_factory=lambda: list(DEFAULT_MUFFLERS))
    chr_dir: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptSettings:
        s = cls()
        if "message_history_format" in data:
            s.message_history_format = load_format(data["message_history_format"] or {})
        for key in ("message_history_header", "message_history_footer", "message_history_separator"):
            if data.get(key) is not None:
                setattr(s, key, str(data[key]))
        if data.get("message_history_operator") in ("prepend", "append"):
            s.message_history_operator = data["message_history_operator"]
        s.message_history_max_tokens = _number(data.get("message_history_max_tokens"), INF)
        s.recency_window = _number(data.get("recency_window"), 35)
        total = data.get("total_max_tokens", data.get("prompt_max_tokens"))
        s.total_max_tokens = _number(total, 31_900)
        s.continuation_max_tokens = int(data.get("continuation_max_tokens", 120))
        model = str(data.get("continuation_model") or "")
        suffix = re.search(r"@(\d+)$", model)
        s.context_length = float(suffix.group(1)) if suffix else _number(data.get("context_length"), INF)
        s.ensembles = [dict(e) for e in data.get("ensembles") or []]
        for key in ("name_prefix", "name_prefix_optional", "split_message", "trim_final_incomplete_sentence",
                    "prevent_gpt_topic_change"):
            if key in data:
                setattr(s, key, bool(data[key]))
        s.stop_sequences = [str(x) for x in data.get("stop_sequences") or []]
        if data.get("scene_break") is not None:
            s.scene_break = str(data["scene_break"])
        if data.get("mufflers") is not None:
            s.mufflers = [str(x) for x in data["mufflers"]]
        s.chr_dir = data.get("chr_dir") or data.get("folder")
        return s

    @property
    def max_prompt_tokens(self) -> float:
        return min(self.context_length, self.total_max_tokens) - self.continuation_max_tokens

    def completion_prefix(self, em_name: str) -> str:
        """The text the prompt ends with and the completion continues (`<name>` for IRC), or ""."""
        if not self.name_prefix:
            return ""
        return self.message_history_format.name_prefix(em_name) or ""


_BOT_LEVEL_FALLBACKS = {
    "recency_window_messages": "recency_window",
    "max_tokens": "continuation_max_tokens",
    "stop_sequences": "stop_sequences",
    "continuation_model": "continuation_model",
}


def chapter2_prompt_from_bot_config(config: dict[str, Any]) -> dict[str, Any]:
    """The effective chapter2 prompt keys of a bot: `chapter2_prompt`, completed from the ChapterX-level
    keys migrate maps them to (the values inside `chapter2_prompt` win)."""
    merged = {c2: config[cx] for cx, c2 in _BOT_LEVEL_FALLBACKS.items() if config.get(cx) is not None}
    merged.update(config.get("chapter2_prompt") or {})
    return merged


def messages_from_turns(turns: Sequence[Any]) -> list[Message]:
    """chapter2 messages from ChapterX participant messages (anything with `.participant`, `.text()`,
    and optionally `.message_id` / `.timestamp` as ISO text), oldest first."""
    out: list[Message] = []
    for turn in turns:
        stamp = getattr(turn, "timestamp", None)
        seconds = 0.0
        if stamp:
            try:
                seconds = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
            except ValueError:
                seconds = 0.0
        out.append(Message(Author(turn.participant), turn.text(), timestamp=seconds,
                           id=getattr(turn, "message_id", None)))
    return out


def format_ensemble(
    items: Sequence[Item],
    layers: Sequence[LayerOfEnsembleFormat],
    context: dict[str, Any],
    count_tokens: CountTokens = whitespace_tokens,
) -> str:
    """chapter2's `format_ensemble`: join rendered items with the layer's separator and operator, stop at
    the first item that would exceed `max_tokens` (header and footer included), wrap in header/footer."""
    layer = layers[0]
    header = render_template(layer.header, context)
    footer = render_template(layer.footer, context)
    acc: str | None = None
    for index, item in enumerate(items):
        if index >= layer.max_items:
            break
        if isinstance(item, Message):
            text = layer.format.render(item)
        else:
            text = format_ensemble(item, layers[1:], context, count_tokens)
        if acc is None:
            new = text
        elif layer.operator == "prepend":
            new = text + layer.separator + acc
        else:
            new = acc + layer.separator + text
        if count_tokens(header + new + footer) > layer.max_tokens:
            break
        acc = new
    return "" if acc is None else header + acc + footer


@dataclass
class PromptResult:
    prompt: str
    completion_prefix: str
    history_section: str
    sections: list[str]
    warnings: list[str] = field(default_factory=list)
    character_retrieval: list[dict[str, Any]] = field(default_factory=list)


def _faculty_layers(config: dict[str, Any]) -> list[LayerOfEnsembleFormat]:
    kind = str(config.get("faculty"))
    given = config.get("ensemble_format")
    layers = [LayerOfEnsembleFormat(**layer) for layer in given] if given else default_layers(kind)
    if kind in ("character", "sim") and len(layers) == 1:
        # chapter2 crashes with IndexError here (golden character-single-layer-crash); use the default
        # inner layer instead.
        layers.append(default_layers(kind)[1])
    return layers


def build_prompt(
    chapter2_prompt: dict[str, Any] | PromptSettings,
    history: Sequence[Message],
    *,
    em_name: str,
    now: datetime,
    base_dir: Path,
    hostname: str | None = None,
    count_tokens: CountTokens = whitespace_tokens,
    ranker: Ranker = lexical_ranker,
    faculty_items: FacultyItems | None = None,
) -> PromptResult:
    """The full prompt and the pieces the pipeline needs (completion prefix, warnings, retrieval)."""
    s = chapter2_prompt if isinstance(chapter2_prompt, PromptSettings) else PromptSettings.from_dict(chapter2_prompt)
    ctx = template_context(now, hostname)
    newest_first = list(history)[::-1]
    max_prompt = s.max_prompt_tokens
    prefix = s.completion_prefix(em_name)
    history_layer = _layer(
        format=s.message_history_format,
        max_items=s.recency_window,
        max_tokens=min(max_prompt, s.message_history_max_tokens),
        operator=s.message_history_operator,
        separator=s.message_history_separator,
        footer=s.message_history_footer,
        header="",
    )
    history_section = (
        render_template(s.message_history_header, ctx)
        + format_ensemble(newest_first, [history_layer], ctx, count_tokens)
        + prefix
    )
    result = PromptResult("", prefix, history_section, [])
    used = count_tokens(history_section)  # tokens of the history and the sections so far (counted once each)
    for config in s.ensembles:
        kind = str(config.get("faculty"))
        layers = _faculty_layers(config)
        items: Sequence[Item] | None
        if kind == "character":
            name = config.get("name") or em_name
            root = base_dir / s.chr_dir if s.chr_dir else base_dir
            corpus = root if root.name == f"{name}.chr" else root / f"{name}.chr"
            input_format = load_format(config.get("input_format") or {})
            attention = _number(config.get("recent_message_attention"), FACULTY_ATTENTION["character"])
            items, query, ranking = character_chunks(
                corpus, input_format, newest_first, chunk_size=int(config.get("chunk_size", 3)),
                attention=attention, ranker=ranker,
            )
            result.character_retrieval.append({"query": query, "ranking": ranking})
            if not ranking:
                result.warnings.append(f"character faculty: no chunks in {corpus}")
        else:
            full = {"recent_message_attention": FACULTY_ATTENTION.get(kind, 0), **config}
            items = faculty_items(full, newest_first) if faculty_items is not None else None
            if items is None:
                result.warnings.append(f"faculty {kind!r} skipped: no source for its items")
                continue
        if not layers:
            result.warnings.append(f"faculty {kind!r} skipped: no ensemble_format")
            continue
        budget = min(max_prompt - used, layers[0].max_tokens)
        layers = [layers[0].model_copy(update={"max_tokens": budget}), *layers[1:]]
        section = format_ensemble(items, layers, ctx, count_tokens)
        result.sections.append(section)
        used += count_tokens(section)
    result.prompt = "".join([*result.sections, history_section])
    return result


def assemble_prompt(
    chapter2_prompt: dict[str, Any],
    history: list[Message],
    *,
    em_name: str,
    now: datetime,
    base_dir: Path,
    **options: Any,
) -> str:
    """The exact chapter2 prompt for `history` (oldest first); options as in `build_prompt`."""
    return build_prompt(chapter2_prompt, history, em_name=em_name, now=now, base_dir=base_dir, **options).prompt
