"""Redaction of everything written under logs/: secret-looking keys, configured secret strings and
base64 image data.

Upstream removes only `discord_token` from the recorded config (keeping e.g. `soma.token`) and
strips base64 only from message image blocks of requests. We deep-redact any value whose key looks
like a secret, replace every known secret string wherever it appears (log messages, error texts,
URLs), and replace base64 payloads anywhere (image blocks, `system`, data URLs, Gemini inline data,
responses) with upstream's `[BASE64_DATA_<n>_BYTES]` marker.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from chapterx.config.secrets import mask_url_credentials

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 6

_SECRET_LAST_WORDS = {
    "token", "secret", "password", "passwd", "passphrase", "credential", "credentials",
    "apikey", "cookie", "authorization", "bearer", "privatekey", "dsn",
}
_SECRET_KEY_PAIRS = {
    ("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("client", "secret"),
    ("auth", "key"), ("signing", "key"), ("encryption", "key"), ("session", "key"), ("master", "key"),
    ("x", "api-key"),
}
_SECRET_WHOLE_KEYS = {"auth", "x-api-key", "api-key", "key"}
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_B64_RE = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")
_DATA_URL_RE = re.compile(r"data:([\w.+/-]+);base64,([A-Za-z0-9+/=_-]{32,})")
_B64_KEYS = {"data", "b64_json", "bytes", "image_base64", "base64"}


@functools.lru_cache(maxsize=4096)
def key_is_secret(key: str) -> bool:
    """`discord_token`, `soma.token`, `SEARCH_API_KEY`, `apiKey`, `client_secret` are secrets;
    `max_tokens`, `tokenUsage`, `cache_key` are not (the secret word must end the key)."""
    if not isinstance(key, str) or not key:
        return False
    low = key.lower()
    if low in _SECRET_WHOLE_KEYS:
        return low != "key"
    words = [w.lower() for w in _WORD_RE.findall(key)]
    if not words:
        return False
    if words[-1] in _SECRET_LAST_WORDS:
        return True
    return len(words) >= 2 and (words[-2], words[-1]) in _SECRET_KEY_PAIRS


def base64_marker(value: str) -> str:
    return f"[BASE64_DATA_{len(value)}_BYTES]"


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look like secrets (API keys, bot tokens)."""
    env = os.environ if env is None else env
    return [v for k, v in env.items() if key_is_secret(k) and isinstance(v, str) and len(v) >= MIN_SECRET_LEN]


def secrets_in(obj: Any, _depth: int = 0) -> list[str]:
    """Secret strings found under secret-looking keys of a config (so they are scrubbed everywhere)."""
    found: list[str] = []
    if _depth > 40:
        return found
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if key_is_secret(str(k)) and isinstance(v, str) and len(v) >= MIN_SECRET_LEN:
                found.append(v)
            else:
                found.extend(secrets_in(v, _depth + 1))
    elif isinstance(obj, list | tuple):
        for v in obj:
            found.extend(secrets_in(v, _depth + 1))
    return found


def exception_info(exc: BaseException) -> dict[str, Any]:
    """An exception as data (upstream serialises Error objects as `{}`)."""
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "stack": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:],
    }


class Redactor:
    """Scrubs objects and text before they reach the disk. Thread-safe; secrets can be added as
    configs are loaded."""

    def __init__(self, secrets: Iterable[str] = (), *, env: Mapping[str, str] | None = None,
                 include_env: bool = True) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add_secrets(secrets)
        if include_env:
            self.add_secrets(secrets_from_env(env))

    def add_secrets(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN}
        with self._lock:
            if new - self._secrets:
                self._secrets |= new
                forms: set[str] = set()
                for s in self._secrets:
                    forms.add(s)
                    forms.add(json.dumps(s)[1:-1])  # as it appears inside JSON text
                alternation = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
                self._pattern = re.compile(alternation)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def text(self, value: str) -> str:
        """Known secrets replaced, and credentials inside URLs (`https://user:pw@host`) masked."""
        if "@" in value and "://" in value:
            value = mask_url_credentials(value)
        pattern = self._pattern
        if pattern is None or not value:
            return value
        return pattern.sub(REDACTED, value)

    def obj(self, value: Any, *, strip_base64: bool = True) -> Any:
        """A JSON-ready deep copy: secret keys redacted, base64 replaced, non-JSON values made text,
        cycles cut (a bad log argument must never lose the whole trace)."""
        return self._walk(value, strip_base64, set(), 0)

    def _walk(self, value: Any, strip: bool, seen: set[int], depth: int) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            if strip:
                value = _DATA_URL_RE.sub(lambda m: f"data:{m.group(1)};base64,{base64_marker(m.group(2))}", value)
            return self.text(value)
        if depth > 60:
            return "[MAX_DEPTH]"
        if isinstance(value, BaseException):
            return self._walk(exception_info(value), strip, seen, depth + 1)
        if isinstance(value, Mapping):
            if id(value) in seen:
                return "[CIRCULAR]"
            seen.add(id(value))
            out: dict[str, Any] = {}
            is_b64_source = value.get("type") == "base64"
            for k, v in value.items():
                key = str(k)
                if key_is_secret(key) and v is not None and not isinstance(v, bool):
                    out[key] = REDACTED
                elif strip and isinstance(v, str) and (
                    (is_b64_source and key == "data")
                    or (key in _B64_KEYS and len(v) >= 512 and _B64_RE.match(v[:4096]))
                ):
                    out[key] = base64_marker(v)
                else:
                    out[key] = self._walk(v, strip, seen, depth + 1)
            seen.discard(id(value))
            return out
        if isinstance(value, list | tuple | set | frozenset):
            if id(value) in seen:
                return "[CIRCULAR]"
            seen.add(id(value))
            items = [self._walk(v, strip, seen, depth + 1) for v in value]
            seen.discard(id(value))
            return items
        if isinstance(value, bytes | bytearray):
            return base64_marker(value.hex()) if strip else self.text(value.decode("utf-8", "replace"))
        if hasattr(value, "isoformat"):
            try:
                return str(value.isoformat())
            except Exception:  # noqa: BLE001, S110 - any odd object still becomes text (repr below)
                pass
        if hasattr(value, "__dict__") and not isinstance(value, type):
            return self._walk({k: v for k, v in vars(value).items() if not k.startswith("_")},
                              strip, seen, depth + 1)
        return self.text(repr(value))

    def dumps(self, value: Any, *, indent: int | None = None, strip_base64: bool = True) -> str:
        """Redacted JSON text; the secret strings are scrubbed once more on the final text."""
        text = json.dumps(self.obj(value, strip_base64=strip_base64), indent=indent, ensure_ascii=False,
                          separators=(",", ":") if indent is None else None)
        return self.text(text)
