"""Provider kinds (the adapter a vendor entry selects) and the base-URL override, shared by routing
and the provider factory without either importing the other's module."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

ANTHROPIC = "anthropic"
BEDROCK = "bedrock"
GEMINI = "gemini"
OPENROUTER = "openrouter"
OPENAI = "openai"
OPENAI_COMPATIBLE = "openai-compatible"
OPENAI_COMPLETIONS = "openai-completions"
OPENAI_RESPONSES = "openai-responses"


def override_base_url(real: str, override: str | None) -> str:
    """Swap scheme and host of `real` for those of `override`, keeping the path (tests, replay)."""
    if not override:
        return real
    parts = urlsplit(real)
    over = urlsplit(override)
    return urlunsplit((over.scheme, over.netloc, parts.path, parts.query, parts.fragment))
