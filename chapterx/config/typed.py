"""One conversion from a config mapping to the typed `BotConfig`, used at module boundaries.

The loader hands out `BotConfig` values (built once per resolution); pure stages also accept a
hand-written mapping (tests, benchmarks, replays) and convert it here, once, with the schema's
defaults for missing keys -- the same defaults the resolver applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from chapterx.config.model import BotConfig

ConfigLike = BotConfig | Mapping[str, Any]


def as_bot_config(config: ConfigLike) -> BotConfig:
    """`config` itself when already typed, else its typed view (missing keys take schema defaults).

    A hand-written mapping gets the two resolver rules a plain field default cannot express: a
    null value counts as unset, and `use_display_names` is the default of its `_bots`/`_humans` keys.
    """
    if isinstance(config, BotConfig):
        return config
    typed = BotConfig.from_resolved({k: v for k, v in config.items() if v is not None})
    legacy = config.get("use_display_names")
    if legacy is None:
        return dataclasses.replace(typed, raw=config)
    bots, humans = (bool(legacy) if config.get(k) is None else getattr(typed, k) for k in _DERIVED)
    return dataclasses.replace(typed, raw=config, use_display_names_bots=bots, use_display_names_humans=humans)


_DERIVED = ("use_display_names_bots", "use_display_names_humans")
