"""Upstream's `||` readings of bot-config keys (reference §2.3), in one place.

Defaults themselves come from the schema through `BotConfig` (`DEFAULTS` is the all-defaults
instance); what stays here is upstream's habit of treating 0 as unset for some numeric keys whose
schema default applies only to null (`config.max_images || 5`), and the effective limits of keys
the schema leaves unset.
"""

from __future__ import annotations

from chapterx.config.model import BotConfig

DEFAULTS = BotConfig()

# Effective values of keys that have no schema default (upstream hard-codes them at the use site).
RECENCY_WINDOW_CHARACTERS = 100000
HARD_MAX_CHARACTERS = 500000
THINKING_BUDGET = 10000


def max_images(cfg: BotConfig) -> int:
    """`max_images || 5`: 0 falls back to the default like upstream."""
    return int(cfg.max_images or DEFAULTS.max_images)


def max_tool_depth(cfg: BotConfig) -> int:
    return int(cfg.max_tool_depth or DEFAULTS.max_tool_depth)


def max_mcp_images(cfg: BotConfig) -> int:
    return int(cfg.max_mcp_images or DEFAULTS.max_mcp_images)


def rolling_threshold(cfg: BotConfig) -> int:
    return int(cfg.rolling_threshold or DEFAULTS.rolling_threshold)


def recent_participant_count(cfg: BotConfig) -> int:
    return int(cfg.recent_participant_count or DEFAULTS.recent_participant_count)


def max_text_attachment_kb(cfg: BotConfig) -> float:
    return float(cfg.max_text_attachment_kb or DEFAULTS.max_text_attachment_kb)
