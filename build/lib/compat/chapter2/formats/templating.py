"""`{now:...}` / `{hostname}` templating of chapter2 headers and footers (`str.format` semantics).

chapter2 raises KeyError on any other placeholder, which breaks every reply (golden
`header-unknown-placeholder`); we leave unknown placeholders as written instead.
"""

from __future__ import annotations

import platform
from datetime import datetime
from typing import Any


class _Literal:
    """Stands in for an unknown placeholder and formats back to its own source text."""

    def __init__(self, expr: str) -> None:
        self.expr = expr

    def __format__(self, spec: str) -> str:
        return "{" + self.expr + (f":{spec}" if spec else "") + "}"

    def __str__(self) -> str:
        return "{" + self.expr + "}"

    __repr__ = __str__

    def __getattr__(self, attr: str) -> _Literal:
        return _Literal(f"{self.expr}.{attr}")

    def __getitem__(self, key: Any) -> _Literal:
        return _Literal(f"{self.expr}[{key}]")


class _Context(dict[str, Any]):
    def __missing__(self, key: str) -> _Literal:
        return _Literal(key)


def template_context(now: datetime, hostname: str | None = None) -> dict[str, Any]:
    """The variables chapter2 gives its templates: the local time and the host name."""
    return {"now": now, "hostname": hostname if hostname is not None else platform.node()}


def render_template(text: str, context: dict[str, Any]) -> str:
    """`text.format(**context)`, with `{{`/`}}` escapes, format specs (`{now:%Y-%m-%d}`) and unknown
    placeholders left literal."""
    if "{" not in text and "}" not in text:
        return text
    try:
        return text.format_map(_Context(context))
    except (ValueError, IndexError):
        return text  # unbalanced braces or positional fields: chapter2 would crash; keep the text
