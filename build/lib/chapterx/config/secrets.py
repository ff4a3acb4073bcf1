"""Masking secrets for display: `config show` must never print API keys or tokens."""

from __future__ import annotations

import re
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
    return value
