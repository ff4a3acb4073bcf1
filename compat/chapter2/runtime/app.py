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


def _avatar(folder: Path) -> bytes | None:
    """`<em folder>/discord_avatar`, if it is a small regular file (chapter2 uploads it on every ready)."""
    path = folder / "discord_avatar"
    try:
        if path.is_file() and path.stat().st_size <= 10_000_000:
            return path.read_bytes()
    except OSError:
        pass
    return None


def build_chapter2_bot(config: Any, name: str, completer: Any, *, env: Mapping[str, str], settings: Any,
                       secrets: list[str], fix_name_punctuation: bool = False) -> Chapter2Bot:
    """Everything `serve_chapter2` runs for one loaded em (`config`: a chapter2 `Config`)."""
    from chapterx.discord.chapter2_port import Chapter2Connector
    from chapterx.trace.redact import Redactor
    from chapterx.trace.writer import TraceWriter
    from chapterx_compat.chapter2.runtime.faculties import EXA_BASE, ExaClient
    from chapterx_compat.chapter2.runtime.interface import Chapter2Interface, InterfaceOptions
    from chapterx_compat.chapter2.runtime.traces import trace_of

    secrets = [*secrets, config.em.exa_search_api_key or "", env.get("EXA_API_KEY") or ""]
    redactor = Redactor([s for s in secrets if s], env=env)
    writer = TraceWriter(settings.logs_dir, settings.trace_dir, redactor=redactor, env=env)
    model = config.em.continuation_model.split("@")[0].split("^")[0]
    completer.router.route(model)  # NoVendorError is one line
    tasks: set[asyncio.Task[Any]] = set()

    def on_record(rec: Any) -> None:
        if not rec.should_reply and rec.exception is None and not rec.actions and not rec.dropped:
            return  # a message that did not concern the em: no trace (chapter2 spans every message)
        ch = connector.channel(rec.channel_id)
        writer.write_trace(trace_of(rec, bot=name, channel_name=ch.name if ch else str(rec.channel_id),
                                    is_thread=bool(ch and ch.is_thread), parent_id=ch.parent_id if ch else None))

    async def on_message(msg: Any) -> None:
        task = asyncio.create_task(interface.on_message(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    connector = Chapter2Connector(on_message=on_message, api_base=env.get("CHAPTERX_DISCORD_API") or None,
                                  avatar=_avatar(Path(config.em.folder)))
    exa_key = config.em.exa_search_api_key or env.get("EXA_API_KEY")
    exa = ExaClient(exa_key, base_url=env.get("CHAPTERX_EXA_BASE_URL") or EXA_BASE) if exa_key else None
    interface = Chapter2Interface(connector, config, completer,
                                  InterfaceOptions(fix_name_punctuation=fix_name_punctuation, on_record=on_record,
                                                   exa=exa))
    return Chapter2Bot(interface, connector, completer, writer, name, tasks)


def _secret_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _secret_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _secret_strings(v)]
    return [value] if isinstance(value, str) and len(value) >= 8 else []


async def serve_chapter2(bot: Chapter2Bot, token: str, *, stop: asyncio.Event | None = None,
                         env: Mapping[str, str] | None = None) -> int:
    """Connect and answer with chapter2's rules until SIGTERM/SIGINT (or `stop`); under systemd, READY=1
    once connected and watchdog pings, as the ChapterX runtime does."""
    from chapterx.discord.connector import connection_failure_message
    from chapterx.fleet.sdnotify import Notifier, run_notifier

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    discord_task = asyncio.create_task(bot.connector.start(token))
    stop_task = asyncio.create_task(stop.wait())
    notifier_task = asyncio.create_task(run_notifier(bot.connector.ready, stop,
                                                     notifier=Notifier.from_env(env or {})))
    try:
        done, _ = await asyncio.wait({discord_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        exc = discord_task.exception() if discord_task in done else None
        if exc is not None:
            known = connection_failure_message(
                exc, "Message Content or Server Members intent (chapter2 rules need members)")
            if known:
                raise UserError(known, 1)
            raise UserError(f"Discord connection failed: {type(exc).__name__}", 1)
        if discord_task in done and not stop.is_set():
            raise UserError("the Discord connection closed unexpectedly", 1)
        log.info("stopping: waiting for %d message(s) in flight", bot.interface.in_flight)
        tasks = list(bot.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    finally:
        stop.set()  # the notifier sends STOPPING=1
        await bot.connector.close()
        for t in (discord_task, stop_task, notifier_task):
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
        await bot.completer.aclose()
        bot.writer.close()
    return 0


def rules_of(plan: Any) -> str:
    """The rule set a prepared bot asks for: chapter2 for an em run in place, else its `activation_rules`."""
    if plan.chapter2:
        return "chapter2"
    if plan.bot_file is None:
        return "chapterx"
    from chapterx.config.load import resolve_bot_config

    config = resolve_bot_config(bot_file=plan.bot_file, env=plan.env).config
    return "chapter2" if config.get("activation_rules") == "chapter2" else "chapterx"


def run_plan(plan: Any, *, home: bool = False) -> int:
    """The run path's entry for chapter2 rules (`plan` from `prepare_bot`): an em in place, or a migrated
    bot file with `activation_rules: chapter2`."""
    from chapterx_compat.chapter2.runtime.llm import ProviderCompleter

    env = plan.env
    override = env.get("CHAPTERX_LLM_BASE_URL") or None
    if plan.chapter2:
        from chapterx_compat.chapter2.load import load

        source = Path(plan.source)
        loaded = load(source.parent, source.name, home=home)
        config, name = loaded.config, source.name
        vendors = {k: v.model_dump() for k, v in config.em.vendors.items()}
        completer = ProviderCompleter(vendors, env=env, base_url_override=override)
        fix = bool(loaded.kv.get("fix_name_punctuation"))
        secrets = [plan.token, *_secret_strings(vendors)]
    else:
        from chapterx.config.load import resolve_bot_config
        from chapterx_compat.chapter2.runtime.rules import config_from_bot

        name = Path(plan.bot_file).stem
        bot = dict(resolve_bot_config(bot_file=plan.bot_file, env=env).config)
        if not isinstance(bot.get("chapter2_em"), dict):
            raise UserError(f"{plan.bot_file}: activation_rules: chapter2 needs the chapter2_em block that "
                            "`chapterx migrate` writes (or use --rules chapterx)", 1)
        config = config_from_bot(bot, Path(plan.bot_file), name)
        completer = ProviderCompleter(plan.vendors, env=env, base_url_override=override, chapter2=False)
        fix = bool(bot["chapter2_em"].get("fix_name_punctuation"))
        secrets = [plan.token, *_secret_strings([getattr(v, "config", v) for v in plan.vendors])]
    log.info("starting chapter2 em %s from %s with chapter2 activation rules (names, random, sim, regex, topic "
             "and pinned .config; --rules chapterx switches to ChapterX's); traces in %s", name, plan.source,
             plan.settings.trace_dir)
    bot2 = build_chapter2_bot(config, name, completer, env=env, settings=plan.settings, secrets=secrets,
                              fix_name_punctuation=fix)
    try:
        return asyncio.run(serve_chapter2(bot2, plan.token, env=env))
    finally:
        if plan.cleanup is not None:
            plan.cleanup.cleanup()
