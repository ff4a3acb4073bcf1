"""The batch case shape (`activation-decisions.json`, `history.json`): batches of gateway events fed
to `BotRuntime.process_batch` as the connector would, against an in-memory Discord and a local fake
LLM server through the real provider SDKs.

`run_case(input)` returns the case's `expected` keys (batches with the decision fields, every Discord
action, context fetches, provider requests and their count, sleep counters, warnings, undelivered
events, pin fetches) plus `provider_bodies`, which the vector tests and `chapterx replay` compare with
a case's `expected`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chapterx.agent.decide import mentions_bot
from chapterx.agent.queue import Event
from chapterx.agent.replay import RECORDED_HEADERS, _request_host, _write_files
from chapterx.agent.runtime import BotRuntime, RuntimeOptions
from chapterx.config.load import resolve_bot_config
from chapterx.config.model import BotConfig
from chapterx.errors import UserError
from chapterx.llm.fake import FakeLLMServer
from chapterx.llm.providers.base import ProviderOptions
from chapterx.llm.routing import Router
from chapterx.replays import CaseShape
from chapterx.replays.recording import RecordingWorld


@dataclass
class CaseRun:
    """The live pieces of one case run, handed to `CaseOptions` callbacks."""

    input: Mapping[str, Any]
    root: Path  # the case's files, written out (temporary)
    world: RecordingWorld
    runtime: BotRuntime
    fake: FakeLLMServer
    now: float  # what the runtime's clocks read; a callback may move it (timers)
    out: dict[str, Any]


@dataclass
class CaseOptions:
    """Extension points for shapes built on this runner (e.g. `tool-plugins.json`).

    `plugin_factory(run, config, channel_id)` gives an activation its plugin host; `on_setup(run)`
    runs before the first batch; `on_event(run, batch_index, event)` turns an event type this module
    does not model into runtime `Event`s (return None to reject it); `extra_outputs(run)` runs after
    the last batch, before the case's files are removed, and may add keys to `run.out`.
    `world_factory(discord)` builds the in-memory world (a `RecordingWorld` subclass);
    `queued_events(run)` returns events queued outside the batches (timers fired at startup), put at
    the front of the next batch; `after_batch(run, index, record, last)` runs
    after each batch (e.g. Discord's echo of the bot's own messages) and may add to its record.
    """

    plugin_factory: Callable[[CaseRun, BotConfig, str], Any] | None = None
    on_setup: Callable[[CaseRun], Awaitable[None]] | None = None
    on_event: Callable[[CaseRun, int, Mapping[str, Any]], Awaitable[list[Event] | None]] | None = None
    extra_outputs: Callable[[CaseRun], Awaitable[None]] | None = None
    world_factory: Callable[[Mapping[str, Any]], RecordingWorld] | None = None
    queued_events: Callable[[CaseRun], list[Event]] | None = None
    after_batch: Callable[[CaseRun, int, dict[str, Any], bool], Awaitable[None]] | None = None


async def run_case(inp: Mapping[str, Any], options: CaseOptions | None = None) -> dict[str, Any]:
    """Feed the case's batches to a `BotRuntime`; return the observed result in `expected`'s shape."""
    opts = options or CaseOptions()
    world = opts.world_factory(inp["discord"]) if opts.world_factory is not None else RecordingWorld(inp["discord"])
    disc = inp["discord"]
    channel_types = {str(c["id"]): c.get("type", "text") for c in disc.get("channels") or []}
    now_ts = datetime.fromisoformat(str(inp["now"]).replace("Z", "+00:00")).timestamp()
    rolls = iter(inp.get("random_values") or [])
    bot_id = str(inp["bot_id"])
    out: dict[str, Any] = {"batches": [], "undelivered_events": []}
    with tempfile.TemporaryDirectory(prefix="chapterx-decide-") as tmp:
        root = Path(tmp)
        _write_files(root, inp["files"])
        ems = any(k.startswith("ems/") for k in inp["files"])

        def load(guild_id: str, texts: list[str]) -> Mapping[str, Any]:
            if ems:
                r = resolve_bot_config(ems_path=root / "ems", bot_name=bot_id, guild_id=guild_id,
                                       channel_configs=texts, env={})
            else:
                r = resolve_bot_config(config_root=root / "config", bot_name=bot_id, guild_id=guild_id,
                                       channel_configs=texts, env={})
            holder["vendors"] = r.vendors
            return r.config

        holder: dict[str, Any] = {}
        async with FakeLLMServer(list(inp.get("llm_responses") or [])) as fake:
            provider_options = ProviderOptions(now=lambda: run.now)
            provider_options.retry_base_delay = 0.001
            provider_options.retry_max_delay = 0.01
            routers: list[Router] = []
            routes: list[Any] = []

            def factory(model: str) -> Any:
                router = Router(holder["vendors"], env={}, base_url_override=fake.base_url, options=provider_options)
                routers.append(router)
                routes.append(router.route(model))
                return routes[-1]

            fetches: list[dict[str, Any]] = []

            def on_activation(result: Any) -> None:
                fetches.append({"batch": world.batch, "channel_id": result.channel_id,
                                "message_ids": result.fetched_message_ids,
                                "inheritance_info": {k: v for k, v in (result.inheritance or {}).items() if v} or None})

            plugin_factory = None
            if opts.plugin_factory is not None:
                hook = opts.plugin_factory

                def plugin_factory(cfg: BotConfig, channel_id: str) -> Any:
                    return hook(run, cfg, channel_id)

            rt = BotRuntime(world, RuntimeOptions(on_activation=on_activation,
                bot_id=bot_id, provider_factory=factory, load_config=lambda t: load(world.guild_id, t),
                guild_config_loader=load, random=lambda: next(rolls, 1.0), now=lambda: run.now,
                clock=lambda: run.now, base_dir=root / "config" / "bots", plugin_factory=plugin_factory))
            run = CaseRun(inp, root, world, rt, fake, now_ts, out)
            rt.port.sent_ids.update((inp.get("process_state") or {}).get("bot_sent_message_ids") or [])
            if disc.get("pins_cached", True):
                rt.port.pins[world.primary_channel_id] = await world.fetch_pins(world.primary_channel_id)
            for ch in disc.get("channels") or []:
                if ch.get("pins_cached", True) and str(ch["id"]) != world.primary_channel_id:
                    rt.port.pins[str(ch["id"])] = await world.fetch_pins(str(ch["id"]))
            if opts.on_setup is not None:
                await opts.on_setup(run)
            pending: list[Any] = []
            for index, batch in enumerate(inp["batches"]):
                if not batch.get("while_previous_activation_in_flight"):
                    for t in pending:
                        await t
                    pending = []
                    await rt.idle()
                world.batch = index
                requests_before = len(fake.requests)
                events: list[Event] = opts.queued_events(run) if opts.queued_events is not None else []
                for ev in batch["events"]:
                    cid = str(ev.get("channel_id") or world.primary_channel_id)
                    if ev["type"] == "message_create":
                        msg = world.add_message(cid, ev["message"])
                        if channel_types.get(cid) == "dm":
                            out["undelivered_events"].append({
                                "batch": index, "event": len(events),
                                "reason": "not delivered: the bot did not ask for direct messages (allow_dms)"})
                            continue
                        events.append(Event("message", cid, world.guild_id, msg,
                                            mentions_bot=await mentions_bot(world, msg)))
                    elif ev["type"] == "reaction_add":
                        target = await world.fetch_message(cid, str(ev["message_id"]))
                        world.add_reaction(cid, str(ev["message_id"]), ev["emoji"])
                        events.append(Event("reaction", cid, world.guild_id, data={
                            "message_id": str(ev["message_id"]), "emoji": ev["emoji"],
                            "user_id": str(ev["user_id"]),
                            "message_author_id": target.author_id if target else None}))
                    elif ev["type"] == "timer_fire":
                        events.append(Event("self_activation", cid, world.guild_id, data={
                            "timer_id": ev.get("timer_id"), "context_note": ev.get("context_note")}))
                    else:
                        extra = await opts.on_event(run, index, ev) if opts.on_event is not None else None
                        if extra is None:
                            raise UserError(f"event type not modelled: {ev['type']}")
                        events.extend(extra)
                res = await rt.process_batch(events)
                pending.extend(res.tasks)
                next_in_flight = index + 1 < len(inp["batches"]) and \
                    inp["batches"][index + 1].get("while_previous_activation_in_flight")
                if not next_in_flight:
                    for t in pending:
                        await t
                    pending = []
                    await rt.idle()
                out["batches"].append({
                    "index": index, "polled_event_types": res.polled_event_types,
                    "should_activate": res.should_activate if events else None,
                    "evaluated_with_channel_id": res.evaluated_with_channel_id,
                    "activated": res.activated, "activation": res.activation,
                    "random_rolls": res.random_rolls, "decision_trail": res.decision_trail,
                    "llm_requests": len(fake.requests) - requests_before,
                })
                if opts.after_batch is not None:
                    await opts.after_batch(run, index, out["batches"][-1], index + 1 == len(inp["batches"]))
            for t in pending:
                await t
            await rt.idle()
            for r in routers:
                await r.aclose()
            out["provider_request_count"] = len(fake.requests)
            out["provider_bodies"] = [r["body"] for r in fake.requests]
            out["provider_requests"] = [_recorded_request(r, routes[-1] if routes else None) for r in fake.requests]
            out["warnings"] = list(world.warnings)  # before the hook: a shape may extend or replace them
            if opts.extra_outputs is not None:
                await opts.extra_outputs(run)
    out["discord_actions"] = world.actions
    out["context_fetches"] = fetches
    out["sleep_counters_after"] = dict(rt.sleep_counters)
    out["pins_api_requests"] = list(rt.port.pin_fetches)
    return out


def _recorded_request(raw: Mapping[str, Any], route: Any) -> dict[str, Any]:
    """A fake-server request in the vectors' `provider_requests` shape (host + path, recorded headers)."""
    headers = raw["headers"]
    host = headers.get("host") if route is not None and route.kind == "bedrock" else None
    if route is not None and not host:
        host = _request_host(route.kind, route.base_url)
    item: dict[str, Any] = {"method": raw["method"], "path": f"{host or ''}{raw['path']}",
                            "headers": {k: v for k, v in headers.items() if k in RECORDED_HEADERS and k != "host"},
                            "body": raw["body"]}
    if raw.get("query"):
        item["query"] = raw["query"]
    return item


def _matches(case: Mapping[str, Any]) -> bool:
    inp = case.get("input", case)
    return isinstance(inp, Mapping) and isinstance(inp.get("batches"), list) and "discord" in inp


SHAPE = CaseShape("batches", _matches, run_case, priority=50)
