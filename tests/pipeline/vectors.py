"""Comparing a replayed activation with a vector's `expected` (shared by the tests and the report)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Headers we compare when the vector records them (the rest belong to the SDKs / signing).
COMPARED_HEADERS = ("anthropic-version", "content-type", "anthropic-beta", "http-referer", "x-title")

# Cases whose bodies are equal as JSON but not byte-identical (key order / `1.0`), owned elsewhere.
NOT_BYTE_EXACT: dict[str, str] = {
    "gemini-chat-stream": "providers: google-genai SDK orders generationConfig keys itself",
    "gemini-chat-image": "providers: google-genai SDK orders generationConfig keys, sends 1.0",
    "gemini-generate-images-true-nonstreaming": "providers: google-genai SDK orders keys, sends 1.0",
    "gemini-generate-images-true-returns-image": "providers: google-genai SDK orders keys, sends 1.0",
}


def normalise_images(obj: Any) -> Any:
    """Image bytes are the reference's re-encoding: compare image blocks by structure only."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "data" and isinstance(v, str) and ("source" not in obj):
                out[k] = "<image>"
            elif k == "url" and isinstance(v, str) and v.startswith("data:image/"):
                out[k] = v.split(",", 1)[0] + ",<image>"
            else:
                out[k] = normalise_images(v)
        if obj.get("type") == "base64" and "data" in obj:
            out["data"] = "<image>"
        return out
    if isinstance(obj, list):
        return [normalise_images(x) for x in obj]
    return obj


def compact(body: Any) -> bytes:
    """JSON.stringify-style bytes (compact, key order kept, non-ASCII unescaped)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def compare(out: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Human-readable mismatches (empty list: the case passes)."""
    problems: list[str] = []
    got_reqs = out.get("provider_requests") or []
    exp_reqs = expected.get("provider_requests") or []
    if len(got_reqs) != len(exp_reqs):
        problems.append(f"provider request count {len(got_reqs)} != {len(exp_reqs)}")
    for i, (g, e) in enumerate(zip(got_reqs, exp_reqs, strict=False)):
        if normalise_images(g.get("body")) != normalise_images(e.get("body")):
            problems.append(f"request {i} body differs:\n  got {compact(normalise_images(g.get('body')))[:1500]!r}\n"
                            f"  exp {compact(normalise_images(e.get('body')))[:1500]!r}")
        if g.get("path") != e.get("path"):
            problems.append(f"request {i} path {g.get('path')!r} != {e.get('path')!r}")
        if e.get("query") is not None and g.get("query") != e.get("query"):
            problems.append(f"request {i} query {g.get('query')!r} != {e.get('query')!r}")
        for h in COMPARED_HEADERS:
            if h in e.get("headers", {}) and g.get("headers", {}).get(h) != e["headers"][h]:
                problems.append(f"request {i} header {h}: {g.get('headers', {}).get(h)!r} != {e['headers'][h]!r}")
    if out.get("discord_actions") != expected.get("discord_actions"):
        problems.append(f"discord_actions differ:\n  got {out.get('discord_actions')!r}\n  exp {expected.get('discord_actions')!r}")
    exp_state = expected.get("state_after") or {}
    got_state = {k: (out.get("state_after") or {}).get(k) for k in exp_state}
    if got_state != exp_state:
        problems.append(f"state_after {got_state} != {exp_state}")
    if ("error" in out) != ("error" in expected):
        problems.append(f"error {out.get('error')!r} vs expected {expected.get('error')!r}")
    return problems


def byte_exact(out: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """Whether every request body serialises to exactly the reference's bytes (image data aside)."""
    got = out.get("provider_requests") or []
    exp = expected.get("provider_requests") or []
    return len(got) == len(exp) and all(
        compact(normalise_images(g.get("body"))) == compact(normalise_images(e.get("body"))) for g, e in zip(got, exp, strict=True)
    )
