"""Replaying one vector-style activation offline: in-memory Discord + fake LLM server.

`replay_case(input)` takes the `input` object of a prompt-rendering / postprocess /
provider-requests case (`bot_id`, `files`, `discord`, `trigger_message_id`, `llm_responses`,
`channel_state`, optional `tool_cache`, `now`, `layout`), runs `run_activation` on it with the
real providers (official SDKs) pointed at a local `FakeLLMServer`, and returns
`{"provider_requests", "discord_actions", "state_after"}` (plus `error` when it failed) in the
vectors' `expected` shape. `chapterx replay` and the vector tests both use it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from chapterx.agent.activation import ActivationContext, run_activation
from chapterx.agent.state import ChannelState
from chapterx.discord.memory import MemoryDiscord
from chapterx.errors import UserError

# Real hosts the providers would have used, so `path` reads like the vectors (host + path).
_DEFAULT_HOSTS = {
    "anthropic": "api.anthropic.com",
    "openai": "api.openai.com",
    "openrouter": "openrouter.ai",
    "gemini": "generativelanguage.googleapis.com",
}
RECORDED_HEADERS = (
    "accept", "anthropic-beta", "anthropic-version", "authorization", "content-type", "host",
    "http-referer", "x-amz-date", "x-amz-security-token", "x-api-key", "x-goog-api-key", "x-title",
)


def _write_files(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = (root / rel).resolve()
        if root.resolve() not in path.parents:
            raise UserError(f"case file path escapes the case folder: {rel}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _request_host(route_kind: str | None, base_url: str | None) -> str:
    """The host a request would have gone to (a bedrock request's own Host header is used first)."""
    from urllib.parse import urlsplit

    if base_url:
        return urlsplit(base_url).netloc
    if route_kind == "bedrock":
        return "bedrock-runtime.us-east-1.amazonaws.com"
    return _DEFAULT_HOSTS.get(route_kind or "", "")


async def replay_case(case: Mapping[str, Any], *, fast_retries: bool = True) -> dict[str, Any]:
    """Run one case input (or a whole case object with `input`) and return the expected-shape result."""
    inp: Mapping[str, Any] = case["input"] if "input" in case and "discord" not in case else case
    for key in ("bot_id", "files", "discord"):
        if key not in inp:
            raise UserError(f"case input has no {key!r}")
    world = MemoryDiscord(inp["discord"])
    return await replay_in_world(inp, world, world.primary_channel_id, inp.get("trigger_message_id"), fast_retries)


async def replay_history_case(case: Mapping[str, Any], *, fast_retries: bool = True) -> dict[str, Any]:
    """A `history.json`-style case: its first batch's messages arrive, the first one triggers.

    Only the activation itself is replayed (no activation decision); the result adds
    `context_fetch` (the fetched message ids and inheritance info).
    """
    inp: Mapping[str, Any] = case["input"] if "input" in case and "discord" not in case else case
    world = MemoryDiscord(inp["discord"])
    trigger: str | None = None
    channel_id = world.primary_channel_id
    for event in (inp.get("batches") or [{}])[0].get("events", []):
        if event.get("type") == "message_create":
            msg = world.add_message(str(event["channel_id"]), event["message"])
            if trigger is None:
                trigger, channel_id = msg.id, str(event["channel_id"])
    return await replay_in_world(inp, world, channel_id, trigger, fast_retries)


async def replay_in_world(
    inp: Mapping[str, Any], world: MemoryDiscord, channel_id: str, trigger: str | None, fast_retries: bool = True
) -> dict[str, Any]:
    """Run one activation in `channel_id` of an already-built world (config files etc. from `inp`)."""
    from chapterx.config.load import resolve_bot_config
    from chapterx.llm.fake import FakeLLMServer
    from chapterx.llm.providers.base import ProviderOptions
    from chapterx.llm.routing import Router

    now = inp.get("now")
    clock = None
    if now:
        ts = datetime.fromisoformat(str(now).replace("Z", "+00:00")).timestamp()

        def clock() -> float:
            return ts

    with tempfile.TemporaryDirectory(prefix="chapterx-replay-") as tmp:
        root = Path(tmp)
        _write_files(root, inp["files"])
        layout = inp.get("layout") or ("ems" if any(k.startswith("ems/") for k in inp["files"]) else "default")
        bot_id = str(inp["bot_id"])
        guild_id = str(inp["discord"].get("guild_id") or "")

        def load(channel_configs: list[str]) -> Any:
            if layout == "ems":
                return resolve_bot_config(ems_path=root / "ems", bot_name=bot_id, guild_id=guild_id,
                                          channel_configs=channel_configs, env={})
            return resolve_bot_config(config_root=root / "config", bot_name=bot_id, guild_id=guild_id,
                                      channel_configs=channel_configs, env={})

        resolved_holder: dict[str, Any] = {}

        def config_source(channel_configs: list[str]) -> Mapping[str, Any]:
            resolved = load(channel_configs)
            resolved_holder["resolved"] = resolved
            return dict(resolved.config)

        async with FakeLLMServer(list(inp.get("llm_responses") or [])) as fake:
            options = ProviderOptions(now=clock)
            if fast_retries:
                options.retry_base_delay = 0.001
                options.retry_max_delay = 0.01
            routes: list[Any] = []

            def factory(model: str) -> Any:
                resolved = resolved_holder["resolved"]
                router = Router(resolved.vendors, env={}, base_url_override=fake.base_url, options=options)
                route = router.route(model)
                routes.append(route)
                return route

            result = await run_activation(ActivationContext(
                world, config_source, factory, channel_id, trigger_message_id=trigger,
                state=ChannelState.from_dict(inp.get("channel_state")),
                tool_cache=list(inp.get("tool_cache") or []), clock=clock,
                base_dir=(root / "ems" / bot_id) if layout == "ems" else (root / "config" / "bots"),
            ))
            for r in routes:
                await r.provider.aclose()  # no SDK connection outlives the fake server's event loop
            requests = []
            route = routes[-1] if routes else None
            for r in fake.requests:
                host = r["headers"].get("host") if route is not None and route.kind == "bedrock" else None
                if route is not None and not host:
                    host = _request_host(route.kind, route.base_url)
                item: dict[str, Any] = {
                    "method": r["method"],
                    "path": f"{host or ''}{r['path']}",
                    "headers": {k: v for k, v in r["headers"].items() if k in RECORDED_HEADERS and k != "host"},
                    "body": r["body"],
                }
                if r.get("query"):
                    item["query"] = r["query"]
                requests.append(item)
    out: dict[str, Any] = {
        "provider_requests": requests,
        "discord_actions": world.actions,
        "state_after": result.state.to_dict(),
    }
    if result.error is not None:
        out["error"] = {"name": type(result.error).__name__, "message": str(result.error)}
    if result.warnings:
        out["warnings"] = result.warnings
    out["context_fetch"] = {"message_ids": result.fetched_message_ids, "inheritance_info": result.inheritance}
    return out
