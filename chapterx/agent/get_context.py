"""`m get_context [N]` (reference §1.7): post the context the bot would see, as a text file.

The window is built like an activation's but without the character limits, keeping the newest
`N` (or `recency_window_messages`, or 200) messages; nothing is sent to a model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from chapterx.agent.activation import _drop_m_commands
from chapterx.context import options as opt
from chapterx.context.build import BuildInput, build_context
from chapterx.context.fetch import fetch_context
from chapterx.context.types import BuiltContext
from chapterx.discord.port import DiscordPort, OutgoingFile
from chapterx.llm.formatters import resolve_mode


def dump_text(built: BuiltContext, config: Mapping[str, Any], channel_id: str, requested: int | None,
              mode: str) -> str:
    """The dump file's text (one header block, optional prompt sections, then every message)."""
    name = opt.bot_name(config)
    lines = [
        f"# Context for {name} in #{channel_id}",
        f"# Messages: {len(built.messages)} (requested: {requested if requested is not None else 'default'})",
        f"# Model: {config.get('continuation_model', '')}",
        f"# Mode: {mode}",
        f"# Stop sequences: {json.dumps(built.stop_sequences, ensure_ascii=False)}",
    ]
    if config.get("system_prompt"):
        lines += ["", "# === SYSTEM PROMPT ===", str(config["system_prompt"])]
    if config.get("context_prefix"):
        lines += ["", "# === CONTEXT PREFIX ===", str(config["context_prefix"])]
    lines += ["", "# === MESSAGES ==="]
    for m in built.messages:
        images = sum(1 for b in m.content if b.get("type") == "image")
        note = f" [{images} image{'s' if images != 1 else ''}]" if images else ""
        lines.append(f"\n{m.participant}:{note}")
        lines.append(m.text())
    return "\n".join(lines) + "\n"


async def run_get_context(
    port: DiscordPort,
    config: Mapping[str, Any],
    channel_id: str,
    requested: int | None = None,
    *,
    formatter_route: str | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    """Build the unlimited context and post it; returns the id of the `.context dump` message."""
    limit = requested or int(opt.get_or(config, "recency_window_messages", 200))
    cfg = dict(config)
    cfg.update({"recency_window_messages": limit, "recency_window_characters": 10**12,
                "hard_max_characters": 10**12})
    fetched = await fetch_context(port, channel_id, depth=limit + 50, max_images=max(opt.max_images(cfg) * 2, 10))
    _drop_m_commands(fetched)
    bot_user = port.user(port.bot_user_id)
    built = build_context(BuildInput(
        messages=fetched.messages, config=cfg, bot_user_id=port.bot_user_id,
        bot_username=bot_user.username if bot_user else opt.bot_name(cfg),
        images=fetched.images, documents=fetched.documents,
        messages_since_roll=10**9,  # a roll is "due": the message window applies
    ))
    text = dump_text(built, config, channel_id, requested, resolve_mode(config, formatter_route))
    name = opt.bot_name(config)
    file = OutgoingFile(f"context-{name}-{int(clock() * 1000)}.txt", text.encode("utf-8"))
    return await port.send(channel_id, f".context dump ({len(built.messages)} messages)", files=[file])
