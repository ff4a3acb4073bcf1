"""Errors of the LLM layer: one clear line each, never carrying a secret."""

from __future__ import annotations

from chapterx.errors import UserError


class NoVendorError(UserError):
    """No configured vendor serves the requested model (a config problem the operator can fix)."""

    def __init__(self, model: str, tried: list[str]) -> None:
        tried_text = "; ".join(tried) if tried else "none configured"
        super().__init__(
            f'No adapter found for model "{model}". Vendors tried: {tried_text}. '
            "Check the vendors' provides patterns and the model name.",
            exit_code=1,
        )
        self.model = model
        self.tried = tried


class NoAdaptersError(UserError):
    """Startup failure: no vendor could be turned into a provider (no keys at all)."""


class ProviderError(Exception):
    """A provider call failed after all retries (or with a non-retryable error).

    `message` mirrors the upstream wording (`529 {...body...}`, `OpenAI API error: 529 {...}`) so
    traces read the same; `error_name` is the name upstream reported (`MembraneError`).
    """

    error_name = "MembraneError"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        partial_text: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.partial_text = partial_text
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message


def scrub(text: str, secrets: list[str]) -> str:
    """Remove secret values (API keys, AWS secrets) from text that may reach logs or users."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return text
