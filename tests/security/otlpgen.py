"""Generated chapter2 OTLP export requests: Discord replies and linked generator fragments."""

from __future__ import annotations

import random
from typing import Any


def _span(tid: str, sid: str, name: str, start: int, *, parent: str = "", links: list[tuple[str, str]] | None = None,
          attrs: dict[str, str] | None = None) -> dict[str, Any]:
    return {"traceId": tid, "spanId": sid, "parentSpanId": parent, "name": name,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 1_000_000), "kind": 1,
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in (attrs or {}).items()],
            "links": [{"traceId": a, "spanId": b} for a, b in (links or [])]}


def linked_spans(n_replies: int, *, seed: int = 1, base: int = 1_700_000_000_000_000_000) -> list[dict[str, Any]]:
    """Spans of `n_replies` replies: half Discord traces, half a creation trace plus 1-3 linked
    iteration traces (some linking to a Discord trace, which must not be joined), some noise."""
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n_replies):
        tid = f"{seed:04x}{i:028x}"
        start = base + i * 10_000_000
        root = f"{seed:02x}{i:010x}aaaa"
        if i % 2 == 0:
            out.append(_span(tid, root, "DiscordInterface.handle_exceptions", start))
            out.append(_span(tid, f"{seed:02x}{i:010x}bbbb", "generate_response", start + 1, parent=root,
                             attrs={"arg.em.name": "wren"}))
        else:
            out.append(_span(tid, root, "generate_response", start, attrs={"arg.em.name": "quill"}))
            for k in range(rnd.randint(1, 3)):
                it = f"{seed:04x}{i:024x}{k + 1:04x}"
                out.append(_span(it, f"{seed:02x}{i:08x}{k:02x}cccc", "generate_response.iteration", start + 100 + k,
                                 links=[(tid, root)]))
            if i > 1 and rnd.random() < 0.1:  # a fragment linking to a Discord trace stays apart
                d = i - 1 if (i - 1) % 2 == 0 else i - 2
                out.append(_span(f"{seed:04x}{i:024x}ffff", f"{seed:02x}{i:08x}ffcccc", "generate_response.iteration",
                                 start + 500, links=[(f"{seed:04x}{d:028x}", f"{seed:02x}{d:010x}aaaa")]))
        if rnd.random() < 0.05:
            out.append(_span(f"{seed:04x}{i:024x}eeee", f"{seed:02x}{i:08x}eecccc", "DiscordInterface.get_config", start + 7))
    return out


def request(spans: list[dict[str, Any]], service: str = "prod-wren") -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                               "scopeSpans": [{"scope": {"name": "chapter2"}, "spans": spans}]}]}
