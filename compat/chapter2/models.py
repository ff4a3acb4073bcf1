"""The shape of a chapter2 em config after loading, as pydantic models.

chapter2 validates with pydantic v2 in lax mode, so we do too: the same coercions ("200\\n" -> 200,
"31_000" -> 31000), the same defaults, discriminated unions and error locations. These models are
written from the reference's description of each field (not from upstream code). They are also the
source of `schemas/chapter2-em.schema.json` (see `chapterx_compat.chapter2.schema`).

Secrets are plain strings here (chapter2 wraps them in SecretStr); `chapterx_compat.chapter2.load` knows
which paths are secret and masks them whenever a config is shown.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

INF = math.inf


class _Model(BaseModel):
    # chapter2's models ignore unknown keys at every level (pydantic's default); we warn separately.
    model_config = ConfigDict(extra="ignore")


# --------------------------------------------------------------------------- message formats


class IRCMessageFormat(_Model):
    """`<name> text` lines (the default format)."""

    name: Literal["irc"] = Field(default="irc", description="Selects the IRC format: `<name> text`.")
    include_id: bool = Field(default=False, description="Render message ids next to names.")
    separate_lines: bool = Field(default=True, description="Prefix every line of a message with the name.")


class ColonMessageFormat(_Model):
    """`name: text` blocks."""

    name: Literal["colon"] = Field(default="colon", description="Selects the colon format: `name: text`.")
    suffix: str = Field(default="\n", description="Appended after each rendered message.")
    separate_lines: bool = Field(default=False, description="Prefix every line of a message with the name.")
    strip: bool = Field(default=False, description="Strip whitespace from parsed message content.")


class WebDocumentMessageFormat(_Model):
    """Web search results (used by the exa_search faculty)."""

    name: Literal["web_document"] = Field(default="web_document", description="Selects the web document format.")


class PythonREPLMessageFormat(_Model):
    """`>>> code` lines; the author `interpreter` has no prefix."""

    name: Literal["python_repl"] = Field(default="python_repl", description="Selects the Python REPL format.")


class InfrastructMessageFormat(_Model):
    """`[name](#message)` blocks."""

    name: Literal["infrastruct"] = Field(default="infrastruct", description="Selects the infrastruct format.")
    type: str = Field(default="message", description="The `#fragment` written after each name.")


class ChatMessageFormat(_Model):
    """Chat-template style turns (`role_start` + role + `role_end` + name + text + `turn_end`)."""

    name: Literal["chat"] = Field(default="chat", description="Selects the chat-template format.")
    assistant_name: str = Field(description="The author rendered with the assistant role.")
    name_format: str = Field(default="<{}>", description="Template for the author name after the role.")
    role_start: str = Field(description="Text before the role word.")
    role_end: str = Field(description="Text after the role word.")
    turn_end: str = Field(description="Text after each message.")


# A plain ("smart") union, as in chapter2: `{}` is IRC, `{suffix: ...}` picks colon.
MessageFormat = Union[  # noqa: UP007 - a runtime alias used inside annotations and TypeAdapters
    IRCMessageFormat,
    ColonMessageFormat,
    WebDocumentMessageFormat,
    PythonREPLMessageFormat,
    InfrastructMessageFormat,
    ChatMessageFormat,
]


def _irc() -> IRCMessageFormat:
    return IRCMessageFormat()


# --------------------------------------------------------------------------- ensembles


class LayerOfEnsembleFormat(_Model):
    """One level of an ensemble's layout (level 0 formats the items, level k+1 nested items)."""

    format: MessageFormat = Field(description="Message format used at this level.")
    separator: str = Field(default="###\n", description="Placed between items (not templated).")
    max_tokens: int | float = Field(default=INF, description="Token budget for header + items + footer; an int or .inf.")
    max_items: int | float = Field(default=INF, description="Maximum number of items at this level.")
    header: str = Field(default="", description="Before the items; `str.format` with `now` and `hostname`.")
    footer: str = Field(default="###\n", description="After the items; `str.format` with `now` and `hostname`.")
    operator: Literal["prepend", "append"] = Field(
        default="append", description="How each new item joins the ones already there."
    )

    @field_validator("max_tokens")
    @classmethod
    def _int_or_inf(cls, value: int | float) -> int | float:
        if isinstance(value, int) or value == INF:
            return value
        raise ValueError('Value must be an integer or float("inf")')


def _layers(*layers: dict[str, Any]) -> list[LayerOfEnsembleFormat]:
    return [LayerOfEnsembleFormat.model_validate(layer) for layer in layers]


def _nested_default() -> list[LayerOfEnsembleFormat]:
    return _layers(
        {"format": {"name": "irc"}, "operator": "prepend"},
        {"format": {"name": "irc"}, "max_items": INF, "separator": "", "footer": ""},
    )


class ChunkerConfig(_Model):
    """How .chr texts are cut into chunks (only `fixed`; chapter2 actually uses `chunk_size`)."""

    name: Literal["fixed"] = Field(default="fixed", description="Chunker kind (only `fixed`).")
    n_lines: int = Field(default=3, description="Lines per chunk (unused: `chunk_size` decides).")


class RetrieverConfig(_Model):
    """Character retrieval settings (only `ranking_metric` is used)."""

    chunker: ChunkerConfig = Field(default_factory=ChunkerConfig, description="Unused by chapter2.")
    representation_model: str = Field(
        default="mixedbread-ai/mxbai-embed-large-v1",
        description="Unused: the em's `representation_model` is used instead.",
    )
    ranking_metric: Literal["knn", "svm"] = Field(default="knn", description="How chunks are ranked.")


class CharacterFacultyConfig(_Model):
    """Retrieves chunks of `<folder>/<name>.chr/*.txt` similar to the recent conversation."""

    faculty: Literal["character"] = Field(description="Faculty kind.")
    input_format: MessageFormat = Field(default_factory=_irc, description="Parses the .chr texts.")
    ensemble_format: list[LayerOfEnsembleFormat] = Field(
        default_factory=_nested_default,
        description="Layout layers; needs at least 2 (chunks are nested ensembles).",
    )
    recent_message_attention: int | float = Field(default=7, description="Recent messages used as the query.")
    name: str | None = Field(default=None, description="Corpus folder is `<name>.chr`; default the em name.")
    chunk_size: int = Field(default=3, description="Lines per chunk inside `---` sections.")
    retriever: RetrieverConfig = Field(default_factory=RetrieverConfig, description="Ranking settings.")


class ExaOutputConfig(_Model):
    """What each Exa search result contributes."""

    highlights_per_url: int = Field(default=3, description="Highlights per search result.")
    sentences_per_highlight: int = Field(default=3, description="Sentences per highlight.")


def _exa_default() -> list[LayerOfEnsembleFormat]:
    return _layers({"format": {"name": "web_document"}, "max_tokens": 4000, "footer": "###\n"})


class ExaSearchFacultyConfig(_Model):
    """Web search through the Exa API (`metaphor_search` is the deprecated name)."""

    faculty: Literal["exa_search", "metaphor_search"] = Field(description="Faculty kind.")
    input_format: MessageFormat = Field(default_factory=_irc, description="Renders the search query.")
    ensemble_format: list[LayerOfEnsembleFormat] = Field(
        default_factory=_exa_default, description="Layout of the results."
    )
    recent_message_attention: int | float = Field(default=5, description="Recent messages used as the query.")
    include_domains: list[str] | None = Field(default=None, description="Only search these domains.")
    exclude_domains: list[str] | None = Field(default=None, description="Never return these domains.")
    max_results: int = Field(default=20, description="Maximum number of results.")
    use_autoprompt: bool = Field(default=False, description="Let Exa rewrite the query.")
    output: ExaOutputConfig = Field(default_factory=ExaOutputConfig, description="Highlight settings.")
    start_crawl_date: str | None = Field(default=None, description='Humanized date, e.g. "365 days ago".')
    end_crawl_date: str | None = Field(default=None, description="Humanized date.")
    start_published_date: str | None = Field(default=None, description="Humanized date.")
    end_published_date: str | None = Field(default=None, description="Humanized date.")
    ignored_urls: list[str] = Field(default_factory=list, description="Results with these URLs are dropped.")
    impl_hint_initial_num_results: int = Field(default=10, description="First request size (grows by 10).")


def _history_default() -> list[LayerOfEnsembleFormat]:
    return _layers(
        {"format": {"name": "irc"}, "operator": "prepend", "max_items": INF, "separator": "", "footer": ""}
    )


class HistoryFacultyConfig(_Model):
    """Replays `history.txt` (broken at chapter2 HEAD: always fails at prompt time)."""

    faculty: Literal["history"] = Field(description="Faculty kind.")
    input_format: MessageFormat = Field(default_factory=_irc, description="Parses history.txt.")
    ensemble_format: list[LayerOfEnsembleFormat] = Field(
        default_factory=_history_default, description="Layout (forced to the em's history format)."
    )
    recent_message_attention: int | float = Field(default=0, description="Unused.")
    filename: str = Field(default="history.txt", description="File in the em folder.")
    nickname: str | None = Field(default=None, description="Lines by this author become the em.")
    nicknames: dict[str, str] = Field(default_factory=dict, description="Map old author -> new author.")


class AirtableConfig(_Model):
    """An Airtable table (base, table and token)."""

    base_id: str = Field(description="Airtable base id.")
    table_id: str = Field(description="Airtable table id.")
    api_token: str = Field(description="Airtable API token (secret).")


class AirtableNotesFacultyConfig(_Model):
    """Every row's `Note` field of an Airtable table (contrib)."""

    faculty: Literal["airtable_notes"] = Field(description="Faculty kind.")
    input_format: MessageFormat = Field(default_factory=_irc, description="Unused.")
    ensemble_format: list[LayerOfEnsembleFormat] = Field(description="Layout (required: no default).")
    recent_message_attention: int | float = Field(default=0, description="Unused.")
    airtable: AirtableConfig = Field(description="Table to read.")


class SimFacultyConfig(_Model):
    """Runs a nested em and uses what it says as this section."""

    faculty: Literal["sim"] = Field(description="Faculty kind.")
    input_format: MessageFormat = Field(default_factory=_irc, description="Unused.")
    ensemble_format: list[LayerOfEnsembleFormat] = Field(
        default_factory=_nested_default, description="Layout layers (at least 2)."
    )
    recent_message_attention: int | float = Field(default=INF, description="History passed to the nested em.")
    em: EmConfig = Field(description="A full em config (name, sysname and folder are required).")


Faculty = Annotated[
    CharacterFacultyConfig | ExaSearchFacultyConfig | HistoryFacultyConfig | SimFacultyConfig | AirtableNotesFacultyConfig,
    Field(discriminator="faculty"),
]


# --------------------------------------------------------------------------- em


class SingleVendorConfig(_Model):
    """One LLM vendor; the vendor's *name* (its key) selects the kind (openai*, anthropic*, ...)."""

    config: dict[str, Any] = Field(default_factory=dict, description="Merged into every request's kwargs.")
    provides: list[str] = Field(
        default_factory=list, description="Python regexes, `re.fullmatch`ed against the model name."
    )


DEFAULT_MUFFLERS = ["has_url", "has_pump_fun_ca", "has_img_url_token"]


class EmConfig(_Model):
    """The em (character) itself: model, prompt layout, sampling, vendors."""

    name: str = Field(description="Name in the prompt and on Discord; defaults to the folder name.")
    sysname: str = Field(description="The em folder's name (forced; configuring it has no effect).")
    continuation_model: str = Field(
        default="meta-llama/Llama-3.1-405B", description="Model, with optional `^tokenizer` and `@context_len`."
    )
    continuation_max_tokens: int = Field(default=120, ge=0, description="max_tokens of each completion.")
    representation_model: str = Field(
        default="mixedbread-ai/mxbai-embed-large-v1", description="Embedding model of the character faculty."
    )
    message_history_max_tokens: int | float = Field(default=INF, description="Token cap of the history section.")
    message_history_format: MessageFormat = Field(
        default_factory=_irc, description="Format of history, completion prefix, stops and parsing."
    )
    message_history_header: str = Field(default="", description="Before the history; `str.format` templated.")
    message_history_separator: str = Field(default="", description="Between history messages.")
    message_history_footer: str = Field(default="", description="After the history; `str.format` templated.")
    message_history_operator: Literal["prepend", "append"] = Field(
        default="prepend", description="`prepend` gives chronological order (history is newest first)."
    )
    scene_break: str = Field(default="###\n", description="A reply line equal to this ends the reply.")
    recency_window: int = Field(default=35, gt=0, description="History messages fetched and rendered.")
    ensembles: list[Faculty] = Field(default_factory=list, description="Prompt sections before the history.")
    prevent_scene_break: bool = Field(default=False, description="Bias against scene_break; keeps logit_bias.")
    prevent_gpt_topic_change: bool = Field(default=True, description="Stop the reply at a scene_break line.")
    total_max_tokens: int | float = Field(default=31900, description="Cap on prompt + completion tokens.")
    name_prefix: bool = Field(default=True, description="End the prompt with the em's name prefix.")
    name_prefix_optional: bool = Field(default=True, description="Accept every parsed line as the em's.")
    split_message: bool = Field(default=True, description="Send each reply line as its own Discord message.")
    mufflers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MUFFLERS), description=(
            "Reply filters: a muffled line is dropped and the whole reply retried (3 tries). Known: has_url, "
            "has_pump_fun_ca, has_img_url_token, context_sentence_repetition; unknown names fail at reply time."
        ),
    )
    trim_final_incomplete_sentence: bool = Field(default=False, description="Trim a cut-off final sentence.")
    temperature: float = Field(default=0.95, ge=0, description="Sampling temperature.")
    top_p: float = Field(default=0.995, gt=0, le=1, description="Validated but never sent to the API.")
    frequency_penalty: float = Field(default=0.0, description="Passed to the API.")
    presence_penalty: float = Field(default=0.0, description="Passed to the API.")
    stop_sequences: list[str] = Field(default_factory=list, description="User stops (first 3 sent, with author stops).")
    logit_bias: dict[int | str, float] = Field(
        default_factory=dict, description="Only applied when prevent_scene_break is true."
    )
    best_of: int | None = Field(default=None, description="Dropped by the pinned intermodel.")
    continuation_model_local_tokenization: bool = Field(default=False, description="Send token ids, not text.")
    continuation_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra completion kwargs (dropped by the pinned intermodel)."
    )
    vendors: dict[str, SingleVendorConfig] = Field(
        default_factory=dict, description="LLM vendors (secret); first `provides` match wins."
    )
    exa_search_api_key: str | None = Field(default=None, description="Exa API key (secret).")
    novelai_api_key: str | None = Field(default=None, description="NovelAI key for generate_avatar (secret).")
    folder: Path = Field(description="The em folder (forced by the loader).")


# --------------------------------------------------------------------------- interfaces


class ReplyOnSimConfig(_Model):
    """Reply when a small model predicts this em speaks next."""

    em_overrides: dict[str, Any] = Field(
        default_factory=lambda: {
            "continuation_model": "google/gemma-2-2b",
            "name_prefix": False,
            "name_prefix_optional": False,
            "ensembles": [],
            "continuation_max_tokens": 15,
            "prompt_max_tokens": 8000,
        },
        description="Overlaid on the em to predict the next speaker.",
    )
    match: Literal["predict_username"] = Field(default="predict_username", description="Prediction mode.")


class ImageLimits(_Model):
    """Image size limits for Discord attachments."""

    max_width: int = Field(default=1568, description="Larger images are downscaled.")
    max_height: int = Field(default=1568, description="Larger images are downscaled.")
    max_images: int = Field(default=5, description="Unused by chapter2.")


class GenerateAvatarAddon(_Model):
    """Generates a Discord avatar when the bot has none."""

    name: Literal["generate_avatar"] = Field(description="Add-on kind.")
    image_vendor: Literal["novelai", "openai"] = Field(default="novelai", description="Image generator.")
    image_model: str = Field(default="auto", description="Forced from image_vendor.")
    prompt: str = Field(description="Image prompt.")
    regenerate_every: float | None = Field(default=None, description="Seconds between regenerations.")
    scale: float = Field(default=5.0, description="NovelAI guidance scale.")

    @model_validator(mode="after")
    def _force_model(self) -> GenerateAvatarAddon:
        self.image_model = "nai-diffusion-3" if self.image_vendor == "novelai" else "dall-e-3"
        return self


class _SharedInterface(_Model):
    mute: bool = Field(default=False, description="Never reply.")
    reply_on_ping: bool = Field(default=True, description="Reply when mentioned.")
    reply_on_random: int | bool = Field(default=53, description="Reply with probability 1/N; false/0 disables.")
    reply_on_name: bool = Field(default=True, description="Reply when the name starts or ends a message.")
    nicknames: list[str] = Field(default_factory=list, description="Extra names for reply_on_name.")
    reply_on_sim: ReplyOnSimConfig | Literal[False] = Field(
        default=False, description="Predict the next speaker with a small model; `{}` enables."
    )
    reply_on_regex: str | None = Field(default=None, description="re.fullmatch against the message content.")
    ignore_dotted_messages: bool = Field(default=True, description="Hide and ignore `.`-messages.")
    end_to_end_test: bool = Field(default=False, description="Set by --end-to-end-test.")


class DiscordInterfaceConfig(_SharedInterface):
    """The Discord bot."""

    name: Literal["discord"] = Field(default="discord", description="Interface kind.")
    discord_token: str | None = Field(default=None, description="Bot token (secret); usually the key-file.")
    addons: list[GenerateAvatarAddon] = Field(default_factory=list, description="Add-ons.")
    discord_proxy_url: str | None = Field(default=None, description="http(s) or socks proxy (secret).")
    threads_inherit_history: bool = Field(default=True, description="Threads continue into the parent channel.")
    max_queued_replies: int = Field(default=2, description="Per-author queue limit.")
    thread_mute: bool = Field(default=False, description="Never reply in public threads.")
    send_typing: bool = Field(default=True, description="Show the typing indicator.")
    end_to_end_test_discord_token: str | None = Field(default=None, description="CI tester token.")
    end_to_end_test_discord_channel_id: int | None = Field(default=None, description="CI channel.")
    discord_user_whitelist: list[int] = Field(default_factory=list, description="Only these authors trigger.")
    may_speak: list[str] = Field(default_factory=list, description="Reply only if username/sysname listed.")
    include_images: bool | Literal["auto"] = Field(default="auto", description="`auto`: only for claude-* models.")
    image_limits: ImageLimits = Field(default_factory=ImageLimits, description="Image downscaling.")
    airtable: AirtableConfig | None = Field(default=None, description="Unused at interface level.")
    use_nicknames: bool = Field(default=False, description="Label other authors by display name.")


class InfraInterfaceConfig(DiscordInterfaceConfig):
    """Admin bot with slash commands (never chats)."""

    name: Literal["infra"] = Field(default="infra", description="Interface kind.")  # type: ignore[assignment]


class CompletionsInterfaceConfig(_SharedInterface):
    """OpenAI-style /completions server (crashes on start at chapter2 HEAD)."""

    name: Literal["completions"] = Field(default="completions", description="Interface kind.")
    default_name: str = Field(default="user", description="Author name for unnamed input.")
    port: int | None = Field(default=None, description="TCP port; otherwise the UNIX socket `<folder>/socket`.")


class ChatCompletionsInterfaceConfig(_SharedInterface):
    """OpenAI-style /chat/completions server."""

    name: Literal["chatcompletions"] = Field(default="chatcompletions", description="Interface kind.")
    default_name: str = Field(default="user", description="Author name for unnamed input.")
    port: int | None = Field(default=None, description="TCP port; otherwise the UNIX socket `<folder>/socket`.")


class RpcInterfaceConfig(_SharedInterface):
    """RPC interface (no extra keys)."""

    name: Literal["rpc"] = Field(default="rpc", description="Interface kind.")


Interface = Annotated[
    DiscordInterfaceConfig | InfraInterfaceConfig | CompletionsInterfaceConfig | ChatCompletionsInterfaceConfig | RpcInterfaceConfig,
    Field(discriminator="name"),
]


class Config(_Model):
    """A chapter2 em after loading: the em plus its interfaces."""

    em: EmConfig = Field(description="The em.")
    interfaces: list[Interface] = Field(description="Where the em is reachable (default: one discord).")


SimFacultyConfig.model_rebuild()
Config.model_rebuild()

# ------------------------------------------------------------------- key sets used for routing

EM_KEYS = frozenset(EmConfig.model_fields)
SHARED_INTERFACE_KEYS = frozenset(_SharedInterface.model_fields) | {"name"}
INTERFACE_CLASSES: dict[str, type[BaseModel]] = {
    "discord": DiscordInterfaceConfig,
    "infra": InfraInterfaceConfig,
    "completions": CompletionsInterfaceConfig,
    "chatcompletions": ChatCompletionsInterfaceConfig,
    "rpc": RpcInterfaceConfig,
}
ALL_INTERFACE_KEYS = frozenset(k for cls in INTERFACE_CLASSES.values() for k in cls.model_fields)
ALIASES: dict[str, str] = {
    # alias -> target, applied in this order (chapter2's working and broken aliases)
    "NAME": "name",
    "engines.complete": "continuation_model",
    "sampling": "",  # broken upstream (nested target): always an error
    "chat.context": "message_history_header",
    "lookup_msg_cache": "character_faculty_recent_message_attention",  # dead target
    "metaphor_search_api_key": "exa_search_api_key",
    "prompt_max_tokens": "total_max_tokens",
}
VALID_FILE_KEYS = frozenset({"em", "interfaces"}) | frozenset(ALIASES) | EM_KEYS | SHARED_INTERFACE_KEYS | ALL_INTERFACE_KEYS
SECRET_EM_KEYS = ("vendors", "exa_search_api_key", "novelai_api_key")
SECRET_INTERFACE_KEYS = ("discord_token", "discord_proxy_url")
