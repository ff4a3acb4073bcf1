"""Prefill-mode (XML) tool calls: find the call block in raw completion text, render results.

The model writes `<function_calls><invoke name="x"><parameter name="p">v</parameter></invoke>
</function_calls>`; the loop stops generation at `</function_calls>`, runs the calls, and
continues the prefill with a `<function_results>` block (reference §5.2, implemented on raw text).
"""

from __future__ import annotations

import contextvars
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_BLOCK = re.compile(r"<(antml:)?function_calls>(.*?)</(antml:)?function_calls>", re.S)
_INVOKE = re.compile(r'<(?:antml:)?invoke name="([^"]+)">(.*?)</(?:antml:)?invoke>', re.S)
_PARAM = re.compile(r'<(?:antml:)?parameter name="([^"]+)">(.*?)</(?:antml:)?parameter>', re.S)


# Replays set this to hand out the recorded call ids in order (None: fresh `call_<ms>_<rand>` ids).
CALL_IDS: contextvars.ContextVar[Callable[[], str] | None] = contextvars.ContextVar("inline_call_ids", default=None)


def new_call_id() -> str:
    source = CALL_IDS.get()
    if source is not None:
        return source()
    return f"call_{int(time.time() * 1000)}_{secrets.token_hex(3)}"


@dataclass
class InlineCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass
class CallBlock:
    start: int
    end: int
    calls: list[InlineCall]


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def find_call_block(text: str) -> CallBlock | None:
    """The last call block that has no `<function_results>` right after it (i.e. still to run)."""
    found: CallBlock | None = None
    for m in _BLOCK.finditer(text):
        if "<function_results>" in text[m.end(): m.end() + 100]:
            continue
        calls = [
            InlineCall(
                new_call_id(),
                inv.group(1),
                {p.group(1): _value(p.group(2)) for p in _PARAM.finditer(inv.group(2))},
            )
            for inv in _INVOKE.finditer(m.group(2))
        ]
        found = CallBlock(m.start(), m.end(), calls)
    return found


def result_text(name: str, output: Any, error: str | None, images: list[dict[str, str]] | None = None) -> str:
    if error:
        text = f"Error executing {name}: {error}"
    else:
        text = output if isinstance(output, str) else json.dumps(output)
    for i, img in enumerate(images or [], 1):
        text += f"\n\n[Image {i}: {img.get('mimeType', 'image')}]"
    return text


def results_block(results: list[str]) -> str:
    return "\n\n<function_results>\n" + "\n\n---\n\n".join(results) + "\n</function_results>"
