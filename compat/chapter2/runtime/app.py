"""`chapterx run --ems DIR --bot NAME` with chapter2's rules: wiring only.

`build_chapter2_bot(...)` loads the em as chapter2 does and joins the pieces: the discord.py
connector for the chapter2 port, our providers (`ProviderCompleter`), the trace writer
(`framework: chapter2`) and `Chapter2Interface`. `serve_chapter2(...)` runs it until SIGTERM/SIGINT,
then lets messages in flight finish (as chapter2 does on SIGINT).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chapterx.errors import UserError

log = logging.getLogger("chapterx.run")


@dataclass
class Chapter2Bot:
    interface: Any
    connector: Any
    completer: Any
    writer: Any
    sysname: str
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


def build_chapter2_bot(ems: Path, name: str, *, token: str, env: Mapping[str, str], settings: Any,
                       home: bool = False) -> Chapter2Bot:
    """Everything `serve_chapter2` runs, built and checked (one-line UserErrors)."""
    from chapterx.discord.chapter2_port import Chapter2Connector
    from chapterx.trace.redact import Redactor
    from chapterx.trace.writer import TraceWriter
    from compat.chapter2.load import load
    from compat.chapter2.runtime.interface import Chapter2Interface, InterfaceOptions
    from compat.chapter2.runtime.llm import ProviderCompleter
    from compat.chapter2.runtime.traces import trace_of

    loaded = load(Path(ems), name, home=home)
    config = loaded.config
    em = config.em
    vendors = {k: v.model_dump() for k, v in em.vendors.items()}
    secrets = [token, *(str(v) for entry in vendors.values() for v in (entry.get("config") or {}).values()
                        if isinstance(v, str) and len(v) >= 8)]
    redactor = Redactor(secrets, env=env)
    writer = TraceWriter(settings.logs_dir, settings.trace_dir, redactor=redactor, env=env)
    completer = ProviderCompleter(vendors, env=env, base_url_override=env.get("CHAPTERX_LLM_BASE_URL") or None)
    completer.router.route(em.continuation_model.split("@")[0].split("^")[0])  # NoVendorError is one line
    fix = bool(loaded.kv.get("fix_name_punctuation"))
    holder: dict[str, Any] = {}

    def on_record(rec: Any) -> None:
        port = holder["connector"]
        ch = port.channel(rec.channel_id)
        writer.write_trace(trace_of(rec, bot=name, channel_name=ch.name if ch else str(rec.channel_id),
                                    is_thread=bool(ch and ch.is_thread), parent_id=ch.parent_id if ch else None))

    tasks: set[asyncio.Task[Any]] = set()

    async def on_message(msg: Any) -> None:
        task = asyncio.create_task(interface.on_message(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    connector = Chapter2Connector(on_message=on_message, api_base=env.get("CHAPTERX_DISCORD_API") or None)
    holder["connector"] = connector
    interface = Chapter2Interface(connector, config, completer,
                                  InterfaceOptions(fix_name_punctuation=fix, on_record=on_record))
    return Chapter2Bot(interface, connector, completer, writer, name, tasks)


async def serve_chapter2(bot: Chapter2Bot, token: str, *, stop: asyncio.Event | None = None) -> int:
    """Connect and answer with chapter2's rules until SIGTERM/SIGINT (or `stop`)."""
    import discord

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    discord_task = asyncio.create_task(bot.connector.start(token))
    stop_task = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({discord_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if discord_task in done and discord_task.exception() is not None:
            exc = discord_task.exception()
            if isinstance(exc, discord.LoginFailure):
                raise UserError("Discord rejected the token (login failed)", 1)
            if isinstance(exc, discord.PrivilegedIntentsRequired):
                raise UserError("Discord refused the Message Content or Server Members intent: enable both for "
                                "this bot in the Discord developer portal (chapter2 rules need members)", 1)
            raise UserError(f"Discord connection failed: {type(exc).__name__}", 1)
        if discord_task in done and not stop.is_set():
            raise UserError("the Discord connection closed unexpectedly", 1)
        log.info("stopping: waiting for %d message(s) in flight", bot.interface.in_flight)
        tasks = list(bot.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    finally:
        await bot.connector.close()
        for t in (discord_task, stop_task):
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
        await bot.completer.aclose()
        bot.writer.close()
    return 0


def run_plan(plan: Any, *, home: bool = False) -> int:
    """The run path's entry for a chapter2 em with chapter2 rules (`plan` from `prepare_bot`)."""
    source = Path(plan.source)
    ems, name = source.parent, source.name
    log.info("starting chapter2 em %s from %s with chapter2 activation rules (names, random, sim, regex, topic "
             "and pinned .config; --rules chapterx switches to ChapterX's); traces in %s", name, source,
             plan.settings.trace_dir)
    bot = build_chapter2_bot(ems, name, token=plan.token, env=plan.env, settings=plan.settings,
                             home=home)
    try:
        return asyncio.run(serve_chapter2(bot, plan.token))
    finally:
        if plan.cleanup is not None:
            plan.cleanup.cleanup()
