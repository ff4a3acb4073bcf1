"""Provider objects: one per routed adapter, each speaking its vendor's API via the official SDK."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from chapterx.llm import kinds as k
from chapterx.llm.errors import NoAdaptersError
from chapterx.llm.providers.base import Provider, ProviderOptions


class Adapter(Protocol):
    """What the factory reads of a routed adapter (`chapterx.llm.k.Adapter`), without importing
    routing (routing imports this package)."""

    @property
    def kind(self) -> str: ...
    @property
    def vendor_name(self) -> str: ...
    @property
    def settings(self) -> Mapping[str, Any]: ...

__all__ = ["Provider", "ProviderOptions", "make_provider"]


def make_provider(adapter: Adapter, *, base_url_override: str | None = None,
                  options: ProviderOptions | None = None) -> Provider:
    """Build the provider for an adapter; `base_url_override` swaps scheme+host (tests, replay)."""
    real = str(adapter.settings.get("base_url") or "")
    base = k.override_base_url(real, base_url_override)
    common = {"base_url": base, "options": options, "vendor_name": adapter.vendor_name, "real_base_url": real}
    kind = adapter.kind
    if kind == k.ANTHROPIC:
        from chapterx.llm.providers.anthropic import AnthropicProvider

        return AnthropicProvider(adapter.settings, **common)
    if kind == k.BEDROCK:
        from chapterx.llm.providers.anthropic import BedrockProvider

        return BedrockProvider(adapter.settings, **common)
    if kind in (k.OPENAI, k.OPENROUTER, k.OPENAI_COMPATIBLE):
        from chapterx.llm.providers.openai_chat import OpenAIChatProvider

        flavour = {k.OPENAI: "openai", k.OPENROUTER: "openrouter"}.get(kind, "compatible")
        return OpenAIChatProvider(adapter.settings, flavour=flavour, **common)
    if kind == k.OPENAI_COMPLETIONS:
        from chapterx.llm.providers.openai_chat import CompletionsProvider

        return CompletionsProvider(adapter.settings, **common)
    if kind == k.GEMINI:
        from chapterx.llm.providers.gemini import GeminiProvider

        return GeminiProvider(adapter.settings, **common)
    raise NoAdaptersError(f"vendor {adapter.vendor_name}: {kind} vendors are not supported by chapterx")
