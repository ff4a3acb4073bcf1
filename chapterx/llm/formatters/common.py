"""Pieces shared by the three formatters: cache markers, sampling parameters, tool text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chapterx.context import options as opt
from chapterx.context.types import ContentBlock, ParticipantMessage
from chapterx.llm.types import ChatMessage, ProviderRequest

CLI_SYSTEM_PROMPT = (
    "The assistant is in CLI simulation mode, and responds to the user's CLI commands only with the "
    "output of the command."
)
CLI_FIRST_USER = "<cmd>cat untitled.txt</cmd>"
START_USER = "[Start]"


def cache_control(config: Mapping[str, Any]) -> dict[str, str]:
    """`{"type": "ephemeral"}`, with `ttl` when `cache_ttl` is set (e.g. "1h")."""
    cc = {"type": "ephemeral"}
    ttl = config.get("cache_ttl")
    if ttl:
        cc["ttl"] = str(ttl)
    return cc


def context_prefix_turns(config: Mapping[str, Any], cc: Mapping[str, str] | None) -> list[ChatMessage]:
    """`context_prefix` as the opening assistant turn (chat and prefill); `cc` marks it cached."""
    prefix = config.get("context_prefix")
    if not prefix:
        return []
    block: ContentBlock = {"type": "text", "text": str(prefix)}
    if cc is not None:
        block["cache_control"] = dict(cc)
    return [ChatMessage("assistant", [block])]


def has_content(message: ParticipantMessage) -> bool:
    """False for a message with nothing to send (only empty text blocks, e.g. the completion placeholder)."""
    return any(b.get("type") != "text" or b.get("text") for b in message.content)


def base_request(config: Mapping[str, Any], model: str) -> ProviderRequest:
    """Sampling parameters and pass-through options common to every mode (§3.1)."""
    req = ProviderRequest(model=model)
    req.max_tokens = int(opt.get_or(config, "max_tokens", 4096))
    temp = config.get("temperature")
    req.temperature = _number(1 if temp is None else temp)
    for key in ("top_p", "top_k", "presence_penalty", "frequency_penalty"):
        if config.get(key) is not None:
            setattr(req, key, config[key])
    if config.get("repetition_penalty") is not None:
        req.repetition_penalty = float(config["repetition_penalty"])
    req.stream = config.get("streaming") is not False
    if config.get("llm_retries") is not None:
        req.llm_retries = int(config["llm_retries"])
    params = config.get("provider_params")
    if isinstance(params, Mapping):
        req.extra = dict(params)
    gen = config.get("generate_images")
    if gen is not None:
        req.response_modalities = ["TEXT", "IMAGE"] if gen is True else ["TEXT"]
    return req


def _number(value: Any) -> float:
    """Integral values stay ints so bodies serialise like upstream's JSON (`1`, not `1.0`)."""
    f = float(value)
    return int(f) if f.is_integer() else f


def thinking_param(config: Mapping[str, Any], mode: str) -> dict[str, Any] | None:
    """The API thinking request (§3.1): chat mode with prefill_thinking/debug_thinking/thinking_type.

    Prefill requests never carry it (they end in a prefill; membrane drops it there).
    """
    if mode != "chat":
        return None
    if not (config.get("prefill_thinking") is True or config.get("debug_thinking") is True or config.get("thinking_type")):
        return None
    kind = str(config.get("thinking_type") or "enabled")
    out: dict[str, Any] = {"type": kind}
    if kind == "adaptive":
        if config.get("debug_thinking") is True:
            out["display"] = "summarized"
    else:
        out["budget_tokens"] = int(opt.get_or(config, "thinking_budget", 10000))
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
