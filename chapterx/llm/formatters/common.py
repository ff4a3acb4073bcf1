"""Pieces shared by the three formatters: cache markers, sampling parameters, tool text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.context import options as opt
from chapterx.context.types import ContentBlock, ParticipantMessage
from chapterx.llm.types import ChatMessage, ProviderRequest

CLI_SYSTEM_PROMPT = (
    "The assistant is in CLI simulation mode, and responds to the user's CLI commands only with the "
    "output of the command."
)
CLI_FIRST_USER = "<cmd>cat untitled.txt</cmd>"
START_USER = "[Start]"


def cache_control(config: ConfigLike) -> dict[str, str]:
    """`{"type": "ephemeral"}`, with `ttl` when `cache_ttl` is set (e.g. "1h")."""
    cc = {"type": "ephemeral"}
    ttl = as_bot_config(config).cache_ttl
    if ttl:
        cc["ttl"] = str(ttl)
    return cc


def context_prefix_turns(config: ConfigLike, cc: Mapping[str, str] | None) -> list[ChatMessage]:
    """`context_prefix` as the opening assistant turn (chat and prefill); `cc` marks it cached."""
    prefix = as_bot_config(config).context_prefix
    if not prefix:
        return []
    block: ContentBlock = {"type": "text", "text": str(prefix)}
    if cc is not None:
        block["cache_control"] = dict(cc)
    return [ChatMessage("assistant", [block])]


def has_content(message: ParticipantMessage) -> bool:
    """False for a message with nothing to send (only empty text blocks, e.g. the completion placeholder)."""
    return any(b.get("type") != "text" or b.get("text") for b in message.content)


def base_request(config: ConfigLike, model: str) -> ProviderRequest:
    """Sampling parameters and pass-through options common to every mode (§3.1)."""
    cfg = as_bot_config(config)
    req = ProviderRequest(model=model)
    req.max_tokens = int(cfg.max_tokens or opt.DEFAULTS.max_tokens)
    req.temperature = _number(cfg.temperature)
    req.top_p = cfg.top_p
    req.presence_penalty = cfg.presence_penalty
    req.frequency_penalty = cfg.frequency_penalty
    # `top_k` is no bot-config key (the resolver drops it); a hand-written config in the vectors sets it.
    if cfg.raw.get("top_k") is not None:
        req.top_k = cfg.raw["top_k"]
    if cfg.repetition_penalty is not None:
        req.repetition_penalty = float(cfg.repetition_penalty)
    req.stream = cfg.streaming is not False
    # Absent and 0 differ here: absent leaves the provider's own retry default (hand-written configs),
    # while the resolver always fills the schema's 0; so read the mapping as given.
    if cfg.raw.get("llm_retries") is not None:
        req.llm_retries = int(cfg.raw["llm_retries"])
    params = cfg.provider_params
    if isinstance(params, Mapping):
        req.extra = dict(params)
    gen = cfg.generate_images
    if gen is not None:
        req.response_modalities = ["TEXT", "IMAGE"] if gen is True else ["TEXT"]
    return req


def _number(value: Any) -> float:
    """Integral values stay ints so bodies serialise like upstream's JSON (`1`, not `1.0`)."""
    f = float(value)
    return int(f) if f.is_integer() else f


def thinking_param(config: ConfigLike, mode: str) -> dict[str, Any] | None:
    """The API thinking request (§3.1): chat mode with prefill_thinking/debug_thinking/thinking_type.

    Prefill requests never carry it (they end in a prefill; membrane drops it there).
    """
    if mode != "chat":
        return None
    cfg = as_bot_config(config)
    if not (cfg.prefill_thinking is True or cfg.debug_thinking is True or cfg.thinking_type):
        return None
    kind = str(cfg.thinking_type or "enabled")
    out: dict[str, Any] = {"type": kind}
    if kind == "adaptive":
        if cfg.debug_thinking is True:
            out["display"] = "summarized"
    else:
        out["budget_tokens"] = int(cfg.thinking_budget or opt.THINKING_BUDGET)
    return out


def tool_definitions(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """API tool definitions with schemas reduced to `{type, properties, required}`."""
    out = []
    for t in tools:
        schema = t.get("input_schema") or t.get("inputSchema") or {}
        reduced: dict[str, Any] = {"type": "object", "properties": schema.get("properties", {})}
        if "required" in schema and isinstance(schema["required"], list):  # an empty list is kept (upstream sends it)
            reduced["required"] = list(schema["required"])
        out.append({"name": t["name"], "description": t.get("description", ""), "input_schema": reduced})
    return out


def _xml_text(text: str) -> str:
    """Tool descriptions are escaped for the XML catalogue as upstream does (`"` -> `&quot;`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def xml_tools_text(tools: Sequence[Mapping[str, Any]]) -> str:
    """The tool catalogue injected into the prefill transcript in XML tool mode (§5.2)."""
    lines = ["", "<available_tools>", "<tools>"]
    for t in tools:
        schema = t.get("input_schema") or t.get("inputSchema") or {}
        required = set(schema.get("required") or [])
        lines.append(f'<tool name="{t["name"]}">')
        lines.append(f"<description>{_xml_text(str(t.get('description', '')))}</description>")
        lines.append("<parameters>")
        for pname, pschema in (schema.get("properties") or {}).items():
            ptype = pschema.get("type", "string") if isinstance(pschema, Mapping) else "string"
            req = ' required="true"' if pname in required else ""
            lines.append(f'<parameter name="{pname}" type="{ptype}"{req}>')
            desc = pschema.get("description", "") if isinstance(pschema, Mapping) else ""
            lines.append(_xml_text(str(desc)))
            lines.append("</parameter>")
        lines.append("</parameters>")
        lines.append("</tool>")
    lines += [
        "</tools>",
        "</available_tools>",
        "",
        "When you want to use a tool, output:",
        "<function_calls>",
        '<invoke name="tool_name">',
        '<parameter name="param_name">value</parameter>',
        "</invoke>",
        "</function_calls>",
    ]
    return "\n".join(lines)
