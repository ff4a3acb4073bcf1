"""The provider-neutral request and response that sit between rendering and the vendors.

Rendering (prefill / chat / completions formatters) produces a `ProviderRequest`; a provider turns
it into one vendor's HTTP request through that vendor's official SDK and returns a
`ProviderResponse`. Content blocks use the Anthropic shape (`{"type": "text", "text": ...}`,
`image`, `tool_use`, `tool_result`, optional `cache_control`) because it is the richest; providers
for other vendors translate from it. Fields may be added; existing ones keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ContentBlock = dict[str, Any]


@dataclass
class ChatMessage:
    role: str  # "user" | "assistant" (| "system" for vendors that take it inline)
    content: str | list[ContentBlock]
    name: str | None = None


@dataclass
class ProviderRequest:
    model: str
    messages: list[ChatMessage] = field(default_factory=list)
    system: str | list[ContentBlock] | None = None
    prompt: str | None = None  # base-model (completions) mode: the whole prompt as text
    max_tokens: int = 1000
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop_sequences: list[str] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    thinking: dict[str, Any] | None = None
    stream: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # vendor-specific pass-through
    # added by the providers helper:
    llm_retries: int | None = None  # total attempts bound (`llm_retries`); None = provider default
    # Added by the pipeline (formatters):
    repetition_penalty: float | None = None
    response_modalities: list[str] | None = None  # Gemini `generate_images`: ["TEXT", "IMAGE"] / ["TEXT"]
    formatter: str | None = None  # "prefill" | "chat" | "completions": which formatter built this request


@dataclass
class ProviderResponse:
    text: str
    content: list[ContentBlock] = field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: dict[str, int] = field(default_factory=dict)  # input_tokens, output_tokens, cache_*_input_tokens
    model: str | None = None
    raw: dict[str, Any] | None = None
