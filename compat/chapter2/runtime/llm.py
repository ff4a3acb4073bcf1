"""chapter2's generation on our provider layer: the request an em makes, and the completer that sends it.

`build_request` is pure (prompt assembly from `chapterx_compat.chapter2.formats`, stops, logit_bias, the vendor
chosen from the em's `vendors`); a `Completer` turns a `C2Request` into completion text.
`ProviderCompleter` routes through `chapterx.llm.routing.Router(chapter2=True)`, i.e. the same SDK
providers the ChapterX runtime uses.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from chapterx_compat.chapter2 import models as m
from chapterx_compat.chapter2.formats.generation import (
    build_logit_bias,
    build_stop_sequences,
    muffled_by,
    parse_replies,
)
from chapterx_compat.chapter2.formats.messages import Message
from chapterx_compat.chapter2.formats.prompt import PromptSettings, build_prompt
from chapterx_compat.chapter2.load import overlay
from chapterx_compat.chapter2.vendors import pick_vendor

MUFFLER_TRIES = 3


@dataclass
class C2Request:
    """The arguments chapter2 passes to intermodel for one completion (what traces and vectors record)."""

    prompt: str
    model: str
    vendor: str | None
    stop: list[str]
    max_tokens: int
    temperature: float
    top_p: None
    frequency_penalty: float
    presence_penalty: float
    logit_bias: dict[str, float]
    extra_kwargs: dict[str, Any] = field(default_factory=dict)
    settings: PromptSettings | None = field(default=None, repr=False, compare=False)
    em_name: str = field(default="", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "model": self.model, "vendor": self.vendor, "stop": list(self.stop),
                "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": None,
                "frequency_penalty": self.frequency_penalty, "presence_penalty": self.presence_penalty,
                "logit_bias": dict(self.logit_bias), "extra_kwargs": dict(self.extra_kwargs)}


class Completer(Protocol):
    async def __call__(self, request: C2Request, usage: dict[str, int] | None = None) -> tuple[str, str | None]:
        """Completion text and finish reason; fills `usage` with the vendor's token counts when it gives them."""
        ...


FacultyItems = Callable[[dict[str, Any], list[Message]], Any]


def em_dump(em: m.EmConfig) -> dict[str, Any]:
    data = em.model_dump(mode="python")
    data["folder"] = str(data["folder"])
    return data


def build_request(
    em: m.EmConfig,
    history_newest_first: Sequence[Message],
    *,
    now: datetime,
    hostname: str | None = None,
    faculty_items: FacultyItems | None = None,
) -> C2Request:
    """The completion request of `generate_response(em, history)`."""
    data = em_dump(em)
    settings = PromptSettings.from_dict(data)
    oldest_first = list(history_newest_first)[::-1]
    folder = Path(data["folder"])
    built = build_prompt(settings, oldest_first, em_name=em.name, now=now, base_dir=folder.parent,
                         hostname=hostname or socket.gethostname(), faculty_items=faculty_items)
    extra: dict[str, Any] = {"best_of": em.best_of, **em.continuation_options}
    bias = build_logit_bias(em.logit_bias, prevent_scene_break=em.prevent_scene_break, scene_break=em.scene_break,
                            tokenize=str.split)
    vendors = {k: v.model_dump() for k, v in em.vendors.items()}
    return C2Request(
        prompt=built.prompt, model=em.continuation_model, vendor=pick_vendor(vendors, em.continuation_model),
        stop=build_stop_sequences(settings, oldest_first, em.name), max_tokens=em.continuation_max_tokens,
        temperature=em.temperature, top_p=None, frequency_penalty=em.frequency_penalty,
        presence_penalty=em.presence_penalty, logit_bias={str(k): v for k, v in bias.items()},
        extra_kwargs=extra, settings=settings, em_name=em.name,
    )


async def generate_response(
    request: C2Request,
    complete: Callable[[C2Request], Awaitable[tuple[str, str | None]]],
    on_request: Callable[[C2Request], None] | None = None,
) -> list[Message]:
    """The replies of one `generate_response` (muffled completions are retried, 3 tries in all)."""
    if request.settings is None:
        raise RuntimeError("a chapter2 request without generation settings")
    replies: list[Message] = []
    for attempt in range(1, MUFFLER_TRIES + 1):
        if on_request is not None:
            on_request(request)
        text, finish = await complete(request)
        replies = parse_replies(request.settings, text, request.em_name, finish_reason=finish)
        clean = [r for r in replies if not muffled_by(r.content, request.settings.mufflers)]
        if len(clean) == len(replies) or attempt == MUFFLER_TRIES:
            return clean
    return replies


def sim_em(em: m.EmConfig, sim: m.ReplyOnSimConfig) -> m.EmConfig:
    """The em `reply_on_sim` predicts with: `em_overrides` over the running em (`[]` does not clear lists)."""
    data = overlay(em.model_dump(mode="python"), dict(sim.em_overrides), _in_overrides=True)
    data["sysname"], data["folder"] = em.sysname, em.folder
    return m.EmConfig.model_validate(data)


class ProviderCompleter:
    """Send chapter2 requests through our providers (`Router(chapter2=True)`: vendors by `provides`)."""

    def __init__(self, vendors: Any, *, env: Mapping[str, str] | None = None,
                 base_url_override: str | None = None, options: Any = None, chapter2: bool = True) -> None:
        """`vendors`: the em's chapter2 `vendors` mapping, or (with `chapter2=False`, a migrated bot) the
        ChapterX tree's vendors, routed by ChapterX's rules."""
        from chapterx.llm.routing import Router

        self.router = Router(vendors, env=env, chapter2=chapter2, base_url_override=base_url_override,
                             options=options)

    async def __call__(self, request: C2Request, usage: dict[str, int] | None = None) -> tuple[str, str | None]:
        from chapterx.llm.types import ProviderRequest

        route = self.router.route(request.model.split("@")[0].split("^")[0])
        response = await route.provider.complete(ProviderRequest(
            model=request.model.split("@")[0].split("^")[0], prompt=request.prompt, max_tokens=request.max_tokens,
            temperature=request.temperature, frequency_penalty=request.frequency_penalty,
            presence_penalty=request.presence_penalty, stop_sequences=list(request.stop),
        ))
        if usage is not None:
            usage.update(response.usage)
        return response.text, "length" if response.stop_reason in ("max_tokens", "length") else "stop"

    async def aclose(self) -> None:
        await self.router.aclose()
