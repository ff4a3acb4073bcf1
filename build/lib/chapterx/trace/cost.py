"""Cost of a round trip and of a trace from the price table in `chapterx/data/prices.json`.

Upstream's README promises cost information and nothing computes it. Prices are data (not code) so
operators can update them; an unknown model gives `None` (unknown), never a made-up zero.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from chapterx.paths import DATA_DIR

PRICES_FILE = DATA_DIR / "prices.json"


@lru_cache(maxsize=4)
def load_prices(path: Path = PRICES_FILE) -> dict[str, dict[str, float]]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return {str(k): v for k, v in data.get("models", {}).items()}


def price_for(model: str | None, prices: dict[str, dict[str, float]] | None = None) -> dict[str, float] | None:
    """Exact match, else the longest listed prefix (dated snapshots share their family's price);
    vendor prefixes like `anthropic/` or `us.anthropic.` are ignored."""
    if not model:
        return None
    table = prices if prices is not None else load_prices()
    name = model.rsplit("/", 1)[-1]
    for prefix in ("us.anthropic.", "eu.anthropic.", "anthropic.", "global.anthropic."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name in table:
        return table[name]
    best = None
    for key in table:
        if name.startswith(key) and (best is None or len(key) > len(best)):
            best = key
    return table[best] if best else None


def call_cost(model: str | None, usage: dict[str, Any] | None,
              prices: dict[str, dict[str, float]] | None = None) -> float | None:
    """USD for one round trip from its `tokenUsage` (camelCase, upstream's field names)."""
    price = price_for(model, prices)
    if price is None or not isinstance(usage, dict):
        return None
    total = (
        float(usage.get("inputTokens") or 0) * price.get("input", 0.0)
        + float(usage.get("outputTokens") or 0) * price.get("output", 0.0)
        + float(usage.get("cacheCreationTokens") or 0) * price.get("cache_write", price.get("input", 0.0))
        + float(usage.get("cacheReadTokens") or 0) * price.get("cache_read", price.get("input", 0.0))
    )
    return round(total / 1_000_000, 8)


def trace_cost(trace: dict[str, Any], prices: dict[str, dict[str, float]] | None = None) -> float | None:
    """Sum of the round trips' costs; None when no call has a known price."""
    costs = []
    for call in trace.get("llmCalls") or []:
        c = call.get("cost") if "cost" in call else call_cost(call.get("model"), call.get("tokenUsage"), prices)
        if c is not None:
            costs.append(float(c))
    return round(sum(costs), 8) if costs else None
