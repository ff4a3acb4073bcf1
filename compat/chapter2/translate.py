"""One loaded chapter2 em -> a ChapterX bot config, with a verdict for every chapter2 key.

Every key the em configures (in any layer) ends up in exactly one of:
  mapped        the ChapterX (or chapterx-extension) key carries the same behaviour,
  approximated  carried over, but behaviour changes (the note says how),
  unsupported   no equivalent; kept in the report and in a comment block of the bot file.
chapter2 defaults that differ from ChapterX defaults are written explicitly so the bot behaves as
before ("defaults carried"). The chapterx-only keys emitted here are listed in docs/chapter2.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chapterx_compat.chapter2 import models as m
from chapterx_compat.chapter2.load import LoadResult
from chapterx_compat.chapter2.vendors import chapter2_kind, pick_vendor

Status = Literal["mapped", "approximated", "unsupported"]

# chapterx extension key: chapter2's prompt assembly, honoured by chapterx's runtime.
CHAPTER2_PROMPT_KEY = "chapter2_prompt"
PROMPT_KEYS = (
    "message_history_format",
    "message_history_header",
    "message_history_separator",
    "message_history_footer",
    "message_history_operator",
    "message_history_max_tokens",
    "total_max_tokens",
    "name_prefix",
    "name_prefix_optional",
    "split_message",
    "scene_break",
    "prevent_gpt_topic_change",
    "mufflers",
    "trim_final_incomplete_sentence",
    "ensembles",
)
CHARS_PER_TOKEN = 4  # rough; ChapterX budgets are characters, chapter2's are tokens


@dataclass(frozen=True)
class Outcome:
    """What happened to one chapter2 key of one em."""

    key: str
    status: Status
    target: str | None
    note: str = ""
    value: Any = None  # only kept for unsupported keys (the comment block); secrets masked

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "status": self.status, "target": self.target, "note": self.note}


@dataclass
class Translation:
    """A chapter2 em as a ChapterX bot: the bot file's keys plus everything migrate must report."""

    sysname: str
    bot: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)
    defaults_carried: list[str] = field(default_factory=list)
    token: str | None = None
    chr_dirs: list[str] = field(default_factory=list)  # folder names inside the em folder
    other_files: list[str] = field(default_factory=list)  # em files that are not carried
    vendors: dict[str, dict[str, Any]] = field(default_factory=dict)  # chapter2 vendors (raw)
    vendor_choice: str | None = None
    warnings: list[str] = field(default_factory=list)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isinf(v))


def _plain(v: Any) -> Any:
    """Make a value YAML/JSON friendly (inf stays float inf; YAML writes `.inf`)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


SECRET_KEYS = frozenset(
    {"api_token", "vendors", "exa_search_api_key", "novelai_api_key", "discord_token", "discord_proxy_url",
     "end_to_end_test_discord_token"}
)


def scrub(value: Any) -> Any:
    """Mask secrets nested anywhere (an airtable token, a sim faculty's em vendors, ...)."""
    if isinstance(value, dict):
        return {k: ("**********" if k in SECRET_KEYS and v not in (None, {}, "") else scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _as_written(kv: dict[str, Any], key: str, index: int, model: Any) -> Any:
    """Item `index` of list `key` as the operator wrote it (secrets masked), else the loaded value."""
    raw = kv.get(key)
    if raw is None and isinstance(kv.get("em"), dict):
        raw = kv["em"].get(key)
    if isinstance(raw, list) and index < len(raw):
        return scrub(_plain(raw[index]))
    return scrub(_plain(model.model_dump(mode="python")))


def _normalised_kv(res: LoadResult) -> dict[str, Any]:
    inverse = {old: new for new, old in res.renamed.items()}
    return {inverse.get(k, k): v for k, v in res.kv.items()}


# Faculties without a tool plugin: what a migrated bot can use instead (docs/tools.md).
_FACULTY_HINTS = {
    "exa_search": "; nearest: an MCP search server under mcp_servers",
    "metaphor_search": "; nearest: an MCP search server under mcp_servers",
    "airtable_notes": "; nearest: the notes plugin (notes the model writes itself; Airtable rows are not imported)",
    "history": "; it is broken in chapter2 itself (wrong argument order) and had no effect",
    "sim": "; nested ems are not simulated by chapterx",
}


def translate(res: LoadResult) -> Translation:
    """Translate a loaded em (pure: no file access)."""
    em = res.config.em
    data = res.data["em"]
    ifaces = res.config.interfaces
    discord = next((i for i in ifaces if isinstance(i, m.DiscordInterfaceConfig)
                    and not isinstance(i, m.InfraInterfaceConfig)), None)
    t = Translation(sysname=res.sysname, bot={})
    bot = t.bot
    outs = t.outcomes
    kv = _normalised_kv(res)
    configured_em = set(res.configured_em_keys) | {k for k in kv if k in m.EM_KEYS}

    def out(key: str, status: Status, target: str | None, note: str = "", value: Any = None) -> None:
        outs.append(Outcome(key, status, target, note, value if status == "unsupported" else None))

    # --- identity and model
    name = em.name.strip()
    bot["name"] = name
    if "name" in configured_em and res.origins.get("name") != res.em_dir:
        out("name", "mapped", "name")
    else:
        t.defaults_carried.append("name (chapter2 default: the folder name)")
    model = em.continuation_model.strip()
    base_model = re.split(r"[\^@]", model, maxsplit=1)[0]
    bot["continuation_model"] = base_model
    if "continuation_model" in configured_em:
        if base_model != model:
            out("continuation_model", "approximated", "continuation_model",
                f"intermodel suffix dropped ('{model}' -> '{base_model}'): the ^tokenizer/@context part "
                "only changed token counting and the context length")
        else:
            out("continuation_model", "mapped", "continuation_model")
    else:
        t.defaults_carried.append(f"continuation_model: {base_model} (chapter2 default; ChapterX requires it)")

    t.vendors = {k: _plain(v) for k, v in data["vendors"].items()}
    t.vendor_choice = pick_vendor(t.vendors, model)
    kind = chapter2_kind(t.vendor_choice) if t.vendor_choice else None
    if kind == "anthropic":
        bot["mode"] = "prefill"
    elif kind == "openai":
        api_base = str(((t.vendors.get(t.vendor_choice or "") or {}).get("config") or {}).get("api_base") or "")
        bot["mode"] = "chat" if (not api_base or "api.openai.com" in api_base) and base_model.startswith(
            ("gpt-3.5", "gpt-4", "gpt4", "o1")) else "base-model"
    if t.vendor_choice is None:
        t.warnings.append(f"no chapter2 vendor serves model '{base_model}': chapter2 could not run this em")

    # --- sampling
    bot["max_tokens"] = em.continuation_max_tokens
    if "continuation_max_tokens" in configured_em:
        note = "ChapterX treats 0 as 4096" if em.continuation_max_tokens == 0 else ""
        out("continuation_max_tokens", "approximated" if note else "mapped", "max_tokens", note)
    else:
        t.defaults_carried.append("max_tokens: 120 (chapter2 default; ChapterX 4096)")
    temperature = em.temperature
    if temperature > 2:
        bot["temperature"] = 2.0
        out("temperature", "approximated", "temperature", f"{temperature} clamped to ChapterX's maximum 2")
    else:
        bot["temperature"] = temperature
        if "temperature" in configured_em:
            out("temperature", "mapped", "temperature")
        else:
            t.defaults_carried.append("temperature: 0.95 (chapter2 default; ChapterX 1.0)")
    if "top_p" in configured_em:
        out("top_p", "approximated", None, "not written: chapter2 validated top_p but never sent it, so "
            "leaving it unset keeps the requests identical")
    for key in ("frequency_penalty", "presence_penalty"):
        if key in configured_em:
            if getattr(em, key):
                bot[key] = getattr(em, key)
            out(key, "mapped", key)
    if em.stop_sequences:
        bot["stop_sequences"] = list(em.stop_sequences)
    if "stop_sequences" in configured_em:
        out("stop_sequences", "approximated", "stop_sequences",
            "chapter2 sent at most 3 stops (user stops first, then author stops); ChapterX sends all of them "
            "plus its own participant stops")
    bot["recency_window_messages"] = em.recency_window
    if "recency_window" in configured_em:
        out("recency_window", "mapped", "recency_window_messages")
    else:
        t.defaults_carried.append("recency_window_messages: 35 (chapter2 recency_window default)")
    budget = em.total_max_tokens
    if _finite(em.message_history_max_tokens):
        budget = min(budget, em.message_history_max_tokens)
    if _finite(budget):
        bot["recency_window_characters"] = int(budget) * CHARS_PER_TOKEN
    for key in ("total_max_tokens", "message_history_max_tokens"):
        if key in configured_em:
            out(key, "approximated", f"recency_window_characters, {CHAPTER2_PROMPT_KEY}.{key}",
                f"token budget; ChapterX counts characters (~{CHARS_PER_TOKEN} per token). The exact token "
                f"budget is kept in {CHAPTER2_PROMPT_KEY} for chapterx's chapter2 prompt mode")

    # --- chapter2 prompt assembly (chapterx extension)
    prompt: dict[str, Any] = {k: scrub(_plain(data[k])) for k in PROMPT_KEYS}
    prompt["folder"] = res.sysname
    # the full intermodel string: its ^tokenizer/@context parts still drive chapter2's token budgets
    prompt["continuation_model"] = model
    bot[CHAPTER2_PROMPT_KEY] = prompt
    for key in PROMPT_KEYS:
        if key in configured_em and key not in ("total_max_tokens", "message_history_max_tokens", "ensembles"):
            note = "honoured by chapterx's chapter2 prompt mode (upstream ChapterX has no equivalent)"
            if key in ("message_history_header", "message_history_footer") and "{" in str(getattr(em, key)):
                note += "; {now:...}/{hostname} templating is rendered on every prompt, as in chapter2"
            out(key, "mapped", f"{CHAPTER2_PROMPT_KEY}.{key}", note)
    t.defaults_carried.append(
        f"{CHAPTER2_PROMPT_KEY}: chapter2's prompt layout (format {em.message_history_format.name}) so prompts "
        "stay byte-identical under chapterx"
    )

    # --- ensembles
    if "ensembles" in configured_em and not em.ensembles:
        out("ensembles", "mapped", f"{CHAPTER2_PROMPT_KEY}.ensembles", "no faculties")
    for i, fac in enumerate(em.ensembles):
        label = f"ensembles.{i} ({fac.faculty})"
        if isinstance(fac, m.CharacterFacultyConfig):
            chr_name = (fac.name or name).strip()
            t.chr_dirs.append(f"{chr_name}.chr")
            bot.setdefault("tool_plugins", [])
            if "character" not in bot["tool_plugins"]:
                bot["tool_plugins"].append("character")
            bot.setdefault("plugin_config", {})["character"] = {
                "chr_path": f"{res.sysname}/{chr_name}.chr",
                "index_path": f"{res.sysname}/{chr_name}.chr.index",
                "embed_model": em.representation_model,
                "recent_messages": int(fac.recent_message_attention)
                if _finite(fac.recent_message_attention) else 7,
            }
            out(label, "mapped", f"{CHAPTER2_PROMPT_KEY}.ensembles, plugin_config.character",
                f"the '{chr_name}.chr' texts are copied next to the bot file; chapterx's chapter2 prompt mode "
                "renders this faculty with its layers. ChapterX's own character plugin (also configured) needs "
                "embed_url and a pre-built index before it injects anything")
        else:
            hint = _FACULTY_HINTS.get(str(fac.faculty), "")
            out(label, "unsupported", None,
                f"the '{fac.faculty}' faculty has no ChapterX equivalent (it stays in {CHAPTER2_PROMPT_KEY}.ensembles "
                f"for reference; chapterx skips it){hint}", _as_written(kv, "ensembles", i, fac))
    if "representation_model" in configured_em:
        if any(isinstance(f, m.CharacterFacultyConfig) for f in em.ensembles):
            out("representation_model", "mapped", "plugin_config.character.embed_model")
        else:
            out("representation_model", "unsupported", None, "only used by the character faculty",
                em.representation_model)

    # --- em keys with no equivalent
    nothing = {
        "prevent_scene_break": "no ChapterX equivalent (logit bias on the scene break)",
        "logit_bias": "chapter2 applied it only with prevent_scene_break; no ChapterX key",
        "best_of": "dropped by chapter2's pinned intermodel anyway",
        "continuation_options": "dropped by chapter2's pinned intermodel anyway (nearest: provider_params)",
        "continuation_model_local_tokenization": "no ChapterX equivalent",
        "exa_search_api_key": "only used by the exa_search faculty",
        "novelai_api_key": "only used by the generate_avatar add-on",
    }
    secret = {"exa_search_api_key", "novelai_api_key"}
    for key, why in nothing.items():
        if key in configured_em:
            value = "**********" if key in secret else _plain(data[key])
            out(key, "unsupported", None, why, value)
    if "vendors" in configured_em or em.vendors:
        out("vendors", "mapped", "shared.yaml vendors",
            "consolidated into shared.yaml (see the vendor table for renames and provides translation)")

    # --- interface keys
    _translate_interfaces(res, discord, bot, out, t, base_model)

    # --- top-level keys chapter2 itself ignores
    for key in kv:
        if key in ("em", "interfaces", "folder", "sysname") or key in m.EM_KEYS or key in m.ALL_INTERFACE_KEYS:
            continue
        note = "ignored by chapter2 too"
        if key == "legacy":
            note = "had no effect in chapter2"
        elif key == "character_faculty_recent_message_attention":
            key = "lookup_msg_cache"
            note = "had no effect in chapter2 (dead alias)"
        out(key, "unsupported", None, note, _plain(kv.get(key)))
    return t


def _translate_interfaces(
    res: LoadResult, discord: m.DiscordInterfaceConfig | None, bot: dict[str, Any], out: Any,
    t: Translation, base_model: str,
) -> None:
    kv = _normalised_kv(res)
    flat = {k for k in kv if k in m.ALL_INTERFACE_KEYS and k not in m.EM_KEYS}
    explicit = kv.get("interfaces") if isinstance(kv.get("interfaces"), list) else None
    for i, iface in enumerate(res.config.interfaces):
        if iface is discord:
            continue
        label = f"interfaces.{i} ({iface.name})"
        out(label, "unsupported", None,
            f"the '{iface.name}' interface has no ChapterX equivalent", _as_written(kv, "interfaces", i, iface))
    if discord is None:
        t.warnings.append("no discord interface: the migrated bot has nothing to connect to")
        for key in sorted(flat):
            out(key, "unsupported", None, "the em has no discord interface", _plain(kv.get(key)))
        return
    idx = res.config.interfaces.index(discord)
    set_here = set(flat)
    if explicit is not None and idx < len(explicit) and isinstance(explicit[idx], dict):
        set_here |= {k for k in explicit[idx] if k != "name"}

    d = discord
    # defaults that differ from ChapterX's
    rr = d.reply_on_random
    bot["reply_on_random"] = 1 if rr is True else 0 if rr is False else int(rr)
    if "reply_on_random" in set_here:
        out("reply_on_random", "mapped", "reply_on_random", "same 1/N semantics (false -> 0, true -> 1)")
    else:
        t.defaults_carried.append("reply_on_random: 53 (chapter2 default; ChapterX 500)")
    bot["reply_on_name"] = d.reply_on_name
    if "reply_on_name" in set_here:
        out("reply_on_name", "approximated", "reply_on_name",
            "chapter2 replied when its name started or ended a message; upstream ChapterX never reads this key")
    if d.discord_token:
        t.token = d.discord_token.strip()
    if "discord_token" in set_here:
        out("discord_token", "mapped", f"bots/{res.sysname}_discord_token", "token file, mode 0600")
    if "may_speak" in set_here:
        if d.may_speak:
            bot["may_speak"] = list(dict.fromkeys(d.may_speak))
        out("may_speak", "approximated", "may_speak",
            "chapter2 matched the Discord username or sysname exactly; ChapterX matches the bot id or name, "
            "case-insensitively")
    if "max_queued_replies" in set_here:
        bot["max_queued_replies"] = d.max_queued_replies
        out("max_queued_replies", "approximated", "max_queued_replies", "upstream ChapterX never reads it")
    if "ignore_dotted_messages" in set_here:
        bot["ignore_dotted_messages"] = d.ignore_dotted_messages
        out("ignore_dotted_messages", "mapped", "ignore_dotted_messages")
    inc = d.include_images
    if inc == "auto":
        bot["include_images"] = base_model.startswith("claude-")
        if "include_images" in set_here:
            out("include_images", "approximated", "include_images",
                "chapter2's 'auto' meant only for claude-* model names; resolved for this model")
        else:
            t.defaults_carried.append(f"include_images: {bot['include_images']} (chapter2 'auto')")
    else:
        bot["include_images"] = bool(inc)
        if "include_images" in set_here:
            out("include_images", "mapped", "include_images")
    if "image_limits" in set_here:
        bot["max_images"] = d.image_limits.max_images
        out("image_limits", "approximated", "max_images",
            "chapter2 ignored max_images and only downscaled by width/height; ChapterX uses max_images")
    if "use_nicknames" in set_here:
        bot["use_display_names_humans"] = d.use_nicknames
        out("use_nicknames", "mapped", "use_display_names_humans")
    if "threads_inherit_history" in set_here:
        if d.threads_inherit_history:
            out("threads_inherit_history", "mapped", None, "ChapterX threads always inherit the parent context")
        else:
            out("threads_inherit_history", "unsupported", None, "ChapterX threads always inherit history", False)
    if "reply_on_ping" in set_here:
        if d.reply_on_ping:
            out("reply_on_ping", "mapped", None, "ChapterX always replies to pings")
        else:
            out("reply_on_ping", "unsupported", None, "ChapterX always replies to pings", False)
    noop_when = {"mute": False, "thread_mute": False, "send_typing": True, "end_to_end_test": False}
    for key, harmless in noop_when.items():
        if key in set_here:
            value = getattr(d, key)
            if value == harmless:
                out(key, "mapped", None, f"{key}: {value} is ChapterX's behaviour")
            else:
                hint = " (nearest: a .sleep pin)" if key == "mute" else ""
                out(key, "unsupported", None, f"no ChapterX equivalent{hint}", value)
    unsupported = {
        "nicknames": ("extra names for reply_on_name; no ChapterX equivalent", lambda: list(dict.fromkeys(d.nicknames))),
        "reply_on_sim": ("next-speaker prediction has no ChapterX equivalent",
                         lambda: _plain(d.reply_on_sim if d.reply_on_sim is False else d.reply_on_sim.model_dump())),
        "reply_on_regex": ("no ChapterX equivalent", lambda: d.reply_on_regex),
        "discord_user_whitelist": ("no ChapterX equivalent", lambda: list(dict.fromkeys(d.discord_user_whitelist))),
        "addons": ("the generate_avatar add-on has no ChapterX equivalent",
                   lambda: [_plain(a.model_dump()) for a in d.addons]),
        "discord_proxy_url": ("no ChapterX equivalent", lambda: "**********"),
        "airtable": ("unused by chapter2 at interface level", lambda: "**********"),
        "end_to_end_test_discord_token": ("CI only", lambda: "**********"),
        "end_to_end_test_discord_channel_id": ("CI only", lambda: d.end_to_end_test_discord_channel_id),
        "port": ("only for completions interfaces", lambda: kv.get("port")),
        "default_name": ("only for completions interfaces", lambda: kv.get("default_name")),
    }
    for key, (why, value) in unsupported.items():
        if key in set_here:
            out(key, "unsupported", None, why, value())
