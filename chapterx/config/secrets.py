"""Secrets: masking for display (`config show` never prints keys or tokens) and scrubbing of known
secret values from everything sent to Discord or to a provider."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_SECRET = re.compile(r"(api_?key|secret|password|passwd|access_key|credential|bearer|(^|_)token$|^auth)", re.I)
_NOT_SECRET = {"turn_end_token", "eot_token", "max_tokens"}


def is_secret_key(key: str) -> bool:
    k = key.lower()
    return k not in _NOT_SECRET and bool(_SECRET.search(k))


def mask_secrets(value: Any, key: str = "", *, inside_env: bool = False) -> Any:
    """A copy with secret-looking values replaced by `***` (all values of an `env` mapping too)."""
    if isinstance(value, dict):
        env_like = key == "env"
        return {k: mask_secrets(v, str(k), inside_env=env_like) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key, inside_env=inside_env) for v in value]
    if value in (None, "") or isinstance(value, bool):
        return value
    if inside_env or (key and is_secret_key(key)):
        return MASK
    if isinstance(value, str) and "@" in value:
        return mask_url_credentials(value)
    return value


_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:]*)(:[^/@\s]*)?@")


def mask_url_credentials(text: str) -> str:
    """`https://user:pw@host` -> `https://***@host` (the user name can be a token too)."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", text)


# -- known secret values, scrubbed from everything sent out (Discord posts, provider requests) --------

SCRUBBED = "[redacted]"
MIN_SECRET_LEN = 8  # shorter values would censor ordinary words


def secret_values(value: Any, key: str = "", _depth: int = 0) -> list[str]:
    """The string values under secret-looking keys (vendor keys, `soma.token`, relay tokens)."""
    if _depth > 40:
        return []
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in secret_values(v, str(k), _depth + 1)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in secret_values(v, key, _depth + 1)]
    if isinstance(value, str) and key and is_secret_key(key) and len(value.strip()) >= MIN_SECRET_LEN:
        return [value.strip()]
    return []


def env_secret_values(env: Mapping[str, str]) -> list[str]:
    """Values of environment variables named like secrets (ANTHROPIC_API_KEY, API_BEARER_TOKEN...)."""
    return [v.strip() for k, v in env.items() if isinstance(v, str) and is_secret_key(k) and len(v.strip()) >= MIN_SECRET_LEN]


class KnownSecrets:
    """A process-wide set of secret strings (thread-safe); text leaving the process is scrubbed of them.

    Why a registry: the Discord token, vendor keys and relay tokens are read in different places, and
    the two outbound edges must know all of them without new plumbing through the runtime.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LEN}
        with self._lock:
            if not new - self._values:
                return
            self._values = self._values | new
            forms = set(self._values) | {json.dumps(v)[1:-1] for v in self._values}
            self._pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))

    def clear(self) -> None:
        with self._lock:
            self._values, self._pattern = frozenset(), None

    @property
    def values(self) -> frozenset[str]:
        return self._values

    def found_in(self, text: str) -> bool:
        pattern = self._pattern
        return bool(pattern is not None and text and pattern.search(text))

    def scrub_text(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(SCRUBBED, text)

    def scrub(self, value: Any, _depth: int = 0) -> Any:
        """A copy of a JSON-like value with every known secret replaced in every string."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.scrub_text(value)
        if _depth > 200:
            return value
        if isinstance(value, dict):
            return {k: self.scrub(v, _depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v, _depth + 1) for v in value]
        if isinstance(value, tuple):
            return tuple(self.scrub(v, _depth + 1) for v in value)
        return value


KNOWN = KnownSecrets()


def register_secrets(values: Iterable[str]) -> None:
    """Add secret strings (token, keys) to the process-wide set scrubbed from outbound text."""
    KNOWN.add(values)


def scrub_outbound(value: Any) -> Any:
    """`value` (message text or a provider request body) with every known secret replaced."""
    return KNOWN.scrub(value)
