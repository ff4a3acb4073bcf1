"""Reading bot-config keys with upstream's defaults (reference §2.3), in one place.

The config loader normally applies defaults already; these accessors repeat them so the pure
stages also work on a hand-written dict (tests, benchmarks). `||`-style defaults (0 counts as
unset) and `??`-style ones (only missing/None is unset) are kept distinct, as upstream has both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Config = Mapping[str, Any]


def get(config: Config, key: str, default: Any = None) -> Any:
    """`config[key] ?? default`."""
    value = config.get(key)
    return default if value is None else value


def get_or(config: Config, key: str, default: Any) -> Any:
    """`config[key] || default`: falsy values (0, "", False) fall back like upstream's `||`."""
    value = config.get(key)
    return value if value else default


def flag(config: Config, key: str, default: bool) -> bool:
    """A boolean key with upstream's strict semantics: only the literal `false` turns it off."""
    value = config.get(key)
    if value is None:
        return default
    if default:
        return value is not False
    return value is True


def bot_name(config: Config) -> str:
    return str(config.get("name") or "")


def use_display_names_bots(config: Config) -> bool:
    value = config.get("use_display_names_bots")
    if value is None:
        value = config.get("use_display_names")
    return True if value is None else bool(value)


def use_display_names_humans(config: Config) -> bool:
    value = config.get("use_display_names_humans")
    if value is None:
        value = config.get("use_display_names")
    return False if value is None else bool(value)


def prompt_caching(config: Config) -> bool:
    return flag(config, "prompt_caching", True)


def max_images(config: Config) -> int:
    return int(get_or(config, "max_images", 5))
