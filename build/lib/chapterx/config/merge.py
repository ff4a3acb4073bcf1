"""Pure stages of resolution: layer merge and default resolution (the whitelist).

Merge (per reference): for each layer, each top-level key: null is skipped, a mapping is merged
one level deep into the earlier mapping, anything else (scalar, list) replaces.
Defaults: the schema's `default` applied with the schema's `x-default` operator:
  or         -> falsy values (0, "", false) become the default (kept for strings/booleans only)
  nullish    -> only a missing/null value becomes the default
  not-false  -> true unless the value is boolean false
  is-true    -> false unless the value is boolean true
  derived    -> use_display_names_bots/humans fall back to use_display_names, then the default
  soma       -> rebuilt as {enabled, url, token} when present
Keys without `x-default` pass through unchanged; keys marked `x-dropped` and unknown keys are dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from chapterx.config import schema as sch


def merge_layers(layers: Iterable[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if value is None:
                continue
            if isinstance(value, dict):
                base = merged.get(key)
                merged[key] = {**(base if isinstance(base, dict) else {}), **copy.deepcopy(value)}
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def _falsy(v: Any) -> bool:
    return v is None or v is False or v == "" or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0)


def apply_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Build the resolved config: exactly the whitelisted keys, defaults applied per operator."""
    out: dict[str, Any] = {}
    for key, spec in sch.bot_properties().items():
        if spec.get("x-dropped"):
            continue
        op = spec.get("x-default")
        value = raw.get(key)
        default = copy.deepcopy(spec.get("default"))
        if op == "or":
            out[key] = default if _falsy(value) else value
        elif op == "nullish":
            out[key] = default if value is None else value
        elif op == "not-false":
            out[key] = value is not False
        elif op == "is-true":
            out[key] = value is True
        elif op == "derived":
            legacy = raw.get("use_display_names")
            out[key] = value if value is not None else (legacy if legacy is not None else default)
        elif op == "soma":
            if value:
                sub = value if isinstance(value, dict) else {}
                soma_props = spec.get("properties", {})
                rebuilt = {
                    "enabled": sub.get("enabled") if sub.get("enabled") is not None else soma_props["enabled"]["default"],
                    "url": sub.get("url") or soma_props["url"]["default"],
                }
                if sub.get("token") is not None:
                    rebuilt["token"] = sub["token"]
                out[key] = rebuilt
        elif value is not None:
            out[key] = value
    return out
