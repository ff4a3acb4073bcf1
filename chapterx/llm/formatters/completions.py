"""Base-model mode (reference §3.5): the conversation as one completion prompt.

With an `openaicompletion*` vendor the prompt is what upstream's completions adapter rebuilds
(its own end-of-turn token, no system prompt, its participant stops first), so requests stay
byte-identical for migrated bots; see docs/differences.md#pipeline for the quirks kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chapterx.config.model import BotConfig
from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.context.types import ParticipantMessage
from chapterx.llm.formatters.common import base_request
from chapterx.llm.types import ProviderRequest

DEFAULT_EOT = "<|eot|>"


def render_completions(
    messages: Sequence[ParticipantMessage],
    config: ConfigLike,
    *,
    model: str,
    stop_sequences: Sequence[str],
    vendor: Any = None,
    continue_last: bool = False,
    continuation: str | None = None,
) -> ProviderRequest:
    config = as_bot_config(config)
    name = config.name
    req = base_request(config, model)
    req.formatter = "completions"
    formatter_eot = str(config.turn_end_token or DEFAULT_EOT)
    msgs = [m for m in messages if m.text()]
    adapter = vendor is not None and getattr(vendor, "kind", None) == "openai-completions"
    if adapter:
        vcfg = getattr(vendor, "config", {}) or {}
        ccfg = getattr(vendor, "completions_config", None) or {}
        eot = vcfg.get("eot_token")
        if eot is None:
            eot = ccfg.get("eot_token")
        eot = DEFAULT_EOT if eot is None else str(eot)
        # upstream's adapter rebuilds the prompt without the system prompt
        prompt = _transcript([], msgs, config, name, eot, continue_last, continuation)
        seen: list[str] = []
        for m in msgs:
            if m.participant != name and m.participant not in seen:
                seen.append(m.participant)
        stops: list[str] = []
        for p in seen:
            stops += [f"\n\n{p}:", f"\n{p}:"]
        if eot:
            stops.append(eot)
        stops += [formatter_eot, *stop_sequences]
    else:
        head = [str(config.system_prompt)] if config.system_prompt else []
        prompt = _transcript(head, msgs, config, name, formatter_eot, continue_last, continuation)
        stops = [formatter_eot, *stop_sequences]
    req.prompt = prompt
    req.stop_sequences = stops
    return req


def _transcript(head: list[str], msgs: Sequence[ParticipantMessage], config: BotConfig, name: str,
                eot: str, continue_last: bool, continuation: str | None) -> str:
    """`head`, then `Name: text<eot>` turns (context prefix first) and the bot's open turn label,
    separated by blank lines; a continued last bot message gets neither end token nor new label."""
    parts = list(head)
    if config.context_prefix:
        parts.append(f"{name}: {config.context_prefix}{eot}")
    for i, m in enumerate(msgs):
        last_raw = continue_last and i == len(msgs) - 1 and m.participant == name
        parts.append(f"{m.participant}: {m.text()}" + ("" if last_raw else eot))
    if not (continue_last and msgs and msgs[-1].participant == name):
        parts.append(f"{name}:" + (continuation or ""))
    return "\n\n".join(parts)
