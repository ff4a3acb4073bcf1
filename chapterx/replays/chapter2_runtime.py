"""The chapter2 Discord runtime case shape (`discord-runtime.json`): incoming messages handled by
`chapterx_compat.chapter2.runtime.Chapter2Interface` against an in-memory Discord built from the case.

`run_case(input)` returns `{"events": [...], "span_names": [...]}` in the case's `expected` shape.
The LLM is the case's script at the completer boundary (the layer the vectors stubbed: texts in
request order, `{raise: ...}` entries raise), the clock is 2025-03-14T15:09:26, the host
`golden-host`, and `random()` returns `random_rolls` in order. `triggers_true` is re-computed after
each event with one trigger enabled at a time, as the vectors' harness did.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from chapterx.replays import CaseShape

NOW = datetime(2025, 3, 14, 15, 9, 26)
HOST = "golden-host"


def _raise(kind: str) -> BaseException:
    if kind == "ClientConnectionError":
        import aiohttp
        from aiohttp.client_reqrep import ConnectionKey

        key = ConnectionKey("127.0.0.1", 8000, False, None, None, None, None)  # type: ignore[arg-type]
        return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))
    if kind == "ConnectionError":
        return ConnectionError("connection refused")
    return RuntimeError("boom")


class ScriptedCompleter:
    """Completion texts in request order; optionally every call waits until `release` is set."""

    def __init__(self, script: list[Any], release: asyncio.Event | None = None) -> None:
        self.script = list(script)
        self.release = release

    async def __call__(self, request: Any, usage: dict[str, int] | None = None) -> tuple[str, str | None]:
        if self.release is not None:
            await self.release.wait()
        if not self.script:
            raise RuntimeError("the case script has no completion left")
        item = self.script.pop(0)
        if isinstance(item, Mapping) and "raise" in item:
            raise _raise(str(item["raise"]))
        return str(item), "stop"


def _write(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")


async def _ablation(iface: Any, rec: Any, world: Any, sim_completion: str | None) -> list[str]:
    """Which triggers alone make `should_reply` true after the event (same roll, the scripted sim text)."""
    from chapterx_compat.chapter2.runtime.activation import TRIGGERS, first_trigger
    from chapterx_compat.chapter2.runtime.llm import build_request, generate_response, sim_em

    if rec.effective is None or rec.facts is None:
        return []
    eff = rec.effective
    channel = iface._channel(rec.channel_id)
    target = world.message(rec.message_id)

    async def sim() -> bool:
        if sim_completion is None or eff.iface.reply_on_sim is False:
            return False
        small = sim_em(eff.em, eff.iface.reply_on_sim)
        _raw, history = await iface._history(target, channel, eff) if target is not None else ([], [])
        request = build_request(small, history, now=NOW, hostname=HOST)
        replies = await generate_response(request, ScriptedCompleter([sim_completion]))
        return bool(replies) and replies[0].author is not None and replies[0].author.name == eff.em.name

    rolls = list(rec.random_rolls)
    out = []
    for name in TRIGGERS:
        if name == "random" and not rolls:
            continue
        roll = iter(rolls).__next__
        got = await first_trigger(rec.facts, eff.iface, iface.names(eff), roll=roll, sim=sim, only=name)
        if got is not None:
            out.append(name)
    return out


def event_view(rec: Any, triggers: list[str]) -> dict[str, Any]:
    """One record in the vectors' `expected.events[]` shape."""
    if rec.ignored:
        return {"should_reply": None, "requests": [], "replies": [], "actions": [], "typing_count": 0}
    out: dict[str, Any] = {"should_reply": rec.should_reply}
    if rec.random_rolls:
        out["random_rolls"] = list(rec.random_rolls)
    if rec.should_reply is not None:
        out["triggers_true"] = triggers
        out["trigger"] = triggers[0] if triggers else None
    if rec.config_changes is not None:
        out["channel_kv"] = rec.channel_kv
        out["config_changes"] = rec.config_changes
    if rec.should_reply:
        out["history_newest_first"] = [m.to_dict() for m in rec.history]
    out["requests"] = [r.to_dict() for r in rec.requests]
    out["replies"] = [m.to_dict() for m in rec.replies]
    out["actions"] = list(rec.actions)
    out["typing_count"] = rec.typing_count
    if rec.exception is not None:
        out["exception"] = rec.exception
    return out


async def run_case(inp: Mapping[str, Any]) -> dict[str, Any]:
    from chapterx_compat.chapter2.load import load
    from chapterx_compat.chapter2.runtime.interface import Chapter2Interface, InterfaceOptions
    from chapterx_compat.chapter2.runtime.memory import MemoryWorld

    world = MemoryWorld(inp)
    rolls = iter(list(inp.get("random_rolls") or []))
    hold = bool(inp.get("hold_llm_until_all_dispatched"))
    release = asyncio.Event() if hold else None
    completer = ScriptedCompleter(list(inp.get("completions") or []), release)
    records: list[Any] = []
    spans: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chapterx-c2rt-") as tmp:
        root = Path(tmp)
        _write(root, inp["files"])
        loaded = load(root / "ems", str(inp["em"]))
        iface = Chapter2Interface(world, loaded.config, completer, InterfaceOptions(
            now=lambda: NOW, hostname=HOST, roll=lambda: next(rolls),
            fix_name_punctuation=bool(loaded.kv.get("fix_name_punctuation")), span_sink=spans))
        events = []
        for e in inp.get("events") or []:
            found = world.message(int(e["message_id"]))
            if found is None:
                raise KeyError(f"events[].message_id {e['message_id']} (not in input.messages)")
            events.append(found)
        if hold:
            tasks = []
            for msg in events:
                tasks.append(asyncio.create_task(iface.on_message(msg)))
                await asyncio.sleep(0.05)
            if release is None:
                raise RuntimeError("the replay's release event was never created")
            release.set()
            records = list(await asyncio.gather(*tasks))
        else:
            for msg in events:
                records.append(await iface.on_message(msg))
        views = []
        for rec in records:
            triggers = await _ablation(iface, rec, world, inp.get("sim_completion")) if rec.should_reply is not None else []
            views.append(event_view(rec, triggers))
    return {"events": views, "span_names": spans}


def _matches(case: Mapping[str, Any]) -> bool:
    inp = case.get("input", case)
    return isinstance(inp, Mapping) and "bot_user" in inp and isinstance(inp.get("events"), list) and "files" in inp


SHAPE = CaseShape("chapter2-runtime", _matches, run_case, priority=40)
