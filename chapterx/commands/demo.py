"""`chapterx demo`: the main job on a bundled deployment, with no Discord token or API key.

It copies the bundled examples (ChapterX bots and a chapter2 em) into a work folder, migrates the em
with its report, runs a few real activations of each bot through the real pipeline (config loading,
activation rules, context, formatter, the official provider SDK, post-processing, trace writer)
against an in-memory Discord and the local fake LLM server, and serves the trace viewer on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GUILD_ID = "700000000000000001"
BOT_USER_ID = "730000000000000001"
HUMANS = (("740000000000000001", "juno", "Juno"), ("740000000000000002", "pax", None))
# Every vendor key the examples read: placeholders, the demo never leaves 127.0.0.1.
DEMO_ENV = {"ANTHROPIC_API_KEY": "demo-placeholder", "OPENROUTER_API_KEY": "demo-placeholder",
            "OPENAI_API_KEY": "demo-placeholder", "GOOGLE_API_KEY": "demo-placeholder"}


@dataclass(frozen=True)
class DemoBot:
    """One bot to activate: where its config is and what the conversation looks like."""

    label: str  # the bot id in traces and the summary
    kind: str  # "chapterx", "chapter2 em (run in place)" or "migrated em"
    bot_file: Path | None = None
    ems: Path | None = None
    bot: str | None = None
    channel_id: str = "710000000000000001"
    lines: tuple[str, ...] = ()  # human messages; the last one mentions the bot
    replies: tuple[str, ...] = ()  # what the fake LLM answers, in order


@dataclass
class DemoResult:
    """What ran: per bot, the texts it posted (or the error), and where things were written."""

    work: Path
    logs: Path
    report: Path | None
    kinds: dict[str, str] = field(default_factory=dict)
    posted: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo", help="run bundled example bots offline and open the trace viewer",
        description="Build a small example deployment (ChapterX bots + a chapter2 em), migrate the em, run "
                    "real activations against an in-memory Discord and a local fake LLM, and serve the "
                    "trace viewer on 127.0.0.1. Needs no Discord token or API key. Ctrl-C stops it.")
    p.add_argument("--dir", metavar="DIR", help="work folder to keep (default: a temporary folder, removed on exit)")
    p.add_argument("--port", type=int, default=3847, help="viewer port (default 3847; 0 picks a free port)")
    p.add_argument("--no-serve", action="store_true", help="run the activations, print the summary, exit")
    p.set_defaults(handler=_handle)


def examples_dir() -> Path:
    """The bundled examples (inside the package in a wheel, `examples/` in a checkout)."""
    from chapterx import paths

    return paths.EXAMPLES_DIR


def build_deployment(work: Path) -> tuple[Path, Path]:
    """Copy the examples into `work` and give every bot a placeholder token file; (config, ems)."""
    src = examples_dir()
    config = work / "config"
    ems = work / "chapter2" / "ems"
    shutil.copytree(src / "config", config)
    shutil.copytree(src / "chapter2" / "ems", ems)
    for bot in (config / "bots").glob("*.yaml"):
        if "-" not in bot.stem:  # bot x guild files (aria-<guild>.yaml) are layers, not bots
            (config / "bots" / f"{bot.stem}_discord_token").write_text("demo-token-not-real\n")
    for em in ems.iterdir():
        if (em / "config.yaml").is_file():
            (em / "discord_token").write_text("demo-token-not-real\n")
    return config, ems


def migrate_em(ems: Path, out: Path) -> Path:
    """`chapterx migrate` of the example ems; returns the Markdown report."""
    from chapterx_compat.chapter2.migrate import plan_migration, write_plan

    plan = plan_migration(ems)
    write_plan(plan, out)
    return out / "MIGRATION_REPORT.md"


def demo_bots(config: Path, ems: Path, migrated: Path) -> list[DemoBot]:
    mention = f"<@{BOT_USER_ID}>"
    return [
        DemoBot("aria", "chapterx", bot_file=config / "bots" / "aria.yaml",
                lines=("has anyone tried the new bakery on 5th?", "the sourdough is great",
                       f"{mention} what would you order?"),
                replies=(" The sourdough, obviously, and something with cardamom if they have it.",)),
        DemoBot("wren", "chapter2 em (run in place)", ems=ems, bot="wren", channel_id="710000000000000002",
                lines=("the fog came in early tonight", f"{mention} anything in the logbook about fog?"),
                replies=(" Logged at dusk: fog over the north rocks, lamp lit early, one ship slowed.",)),
        DemoBot("wren-migrated", "migrated em", bot_file=migrated / "config" / "bots" / "wren.yaml",
                channel_id="710000000000000003",
                lines=(f"{mention} same question, from the migrated config: fog?",),
                replies=(" Fog again: the migrated logbook reads the same.",)),
    ]


def _world(bot: DemoBot, name: str) -> dict[str, Any]:
    users = [{"id": BOT_USER_ID, "username": name.lower(), "global_name": None, "bot": True}]
    users += [{"id": uid, "username": u, "global_name": g, "bot": False} for uid, u, g in HUMANS]
    return {"guild_id": GUILD_ID, "channel_id": bot.channel_id, "channel_name": "demo", "bot_user_id": BOT_USER_ID,
            "users": users, "members": [], "roles": [], "channels": [], "emojis": [], "pins": [], "messages": []}


async def activate(bot: DemoBot, writer: Any, env: Mapping[str, str]) -> list[str]:
    """Post the bot's conversation one message at a time through `BotRuntime`; the texts it sent."""
    from chapterx.agent.decide import mentions_bot
    from chapterx.agent.queue import Event
    from chapterx.agent.runtime import BotRuntime, RuntimeOptions
    from chapterx.app import CachedConfigLoader, prepare_bot
    from chapterx.discord.memory import MemoryDiscord
    from chapterx.llm.fake import FakeLLMServer
    from chapterx.llm.routing import Router

    plan = prepare_bot(bot_file=bot.bot_file, ems=bot.ems, bot=bot.bot, env=env)
    try:
        world = MemoryDiscord(_world(bot, bot.bot or (bot.bot_file.stem if bot.bot_file else "bot")))
        loader = CachedConfigLoader(plan)
        async with FakeLLMServer([{"text": r, "stop_reason": "end_turn"} for r in bot.replies]) as fake:
            router = Router(plan.vendors, env=env, base_url_override=fake.base_url)
            runtime = BotRuntime(world, RuntimeOptions(
                bot_id=bot.label, provider_factory=router.route,
                load_config=lambda texts: loader(GUILD_ID, texts), guild_config_loader=loader,
                base_dir=plan.base_dir, trace_writer=writer))
            for i, text in enumerate(bot.lines):
                uid = HUMANS[i % len(HUMANS)][0]
                msg = world.add_message(bot.channel_id, {
                    "id": str(1410000000000000001 + i + int(bot.channel_id[-1]) * 100), "author_id": uid,
                    "content": text, "type": 0, "timestamp": f"2026-11-20T10:0{i}:00.000Z"})
                res = await runtime.process_batch([Event("message", bot.channel_id, GUILD_ID, msg,
                                                         mentions_bot=await mentions_bot(world, msg))])
                if res.task is not None:
                    await res.task
            await router.aclose()
        return [str(a.get("content")) for a in world.actions if a.get("type") in ("send", "webhook_send")]
    finally:
        if plan.cleanup is not None:
            plan.cleanup.cleanup()


async def run_demo(work: Path) -> DemoResult:
    """Everything but the viewer: deployment, migration, activations, traces under `work/logs`."""
    from chapterx.trace.writer import TraceWriter

    config, ems = build_deployment(work)
    migrated = work / "migrated"
    report = migrate_em(ems, migrated)
    (migrated / "config" / "bots" / "wren_discord_token").write_text("demo-token-not-real\n")
    logs = work / "logs"
    result = DemoResult(work, logs, report)
    env = {**DEMO_ENV, "LOGS_DIR": str(logs), "CACHE_PATH": str(work / "cache"), "HOME": str(work)}
    writer = TraceWriter(logs, logs / "traces", env=env, background=False)
    for bot in demo_bots(config, ems, migrated):
        result.kinds[bot.label] = bot.kind
        try:
            result.posted[bot.label] = await activate(bot, writer, env)
        except Exception as exc:  # noqa: BLE001 - one bot failing still shows the others
            result.errors[bot.label] = f"{type(exc).__name__}: {exc}"
    with contextlib.suppress(Exception):
        writer.close()
    return result


def summary(result: DemoResult, url: str | None) -> str:
    lines = [f"chapterx demo: work folder {result.work}"]
    if result.report is not None:
        lines.append(f"  migrated the chapter2 em: report {result.report}")
    for label, posted in result.posted.items():
        lines.append(f"  {label} ({result.kinds[label]}): posted {len(posted)} message(s)"
                     + (f": {posted[0][:70]!r}" if posted else ""))
    for label, error in result.errors.items():
        lines.append(f"  {label} ({result.kinds[label]}): FAILED {error}")
    lines.append(f"  traces: {result.logs / 'traces'}")
    if url:
        lines += [f"trace viewer: {url}",
                  "  look at: the list (one trace per activation, ChapterX bot and chapter2 em side by side);",
                  "  a trace's prompt (what the SDK sent to the fake LLM) and its Discord actions.",
                  "Ctrl-C stops."]
    return "\n".join(lines)


def _handle(args: argparse.Namespace) -> int:
    from chapterx.errors import UsageError

    if args.port < 0 or args.port > 65535:
        raise UsageError(f"--port {args.port}: expected 0-65535")
    if args.dir:
        work = Path(args.dir)
        if work.exists() and any(work.iterdir()):
            raise UsageError(f"--dir {work}: folder is not empty (the demo writes a fresh deployment there)")
        work.mkdir(parents=True, exist_ok=True)
        keep: tempfile.TemporaryDirectory[str] | None = None
    else:
        keep = tempfile.TemporaryDirectory(prefix="chapterx-demo-")
        work = Path(keep.name)
    try:
        return asyncio.run(_main(work, args.port, serve=not args.no_serve))
    except KeyboardInterrupt:
        return 0
    finally:
        if keep is not None:
            keep.cleanup()


async def _main(work: Path, port: int, *, serve: bool) -> int:
    import logging

    for noisy in ("httpx", "httpx2", "chapterx.run", "chapterx.config"):  # request lines, known config notes
        logging.getLogger(noisy).setLevel(logging.ERROR)
    result = await run_demo(work)
    if not serve:
        print(summary(result, None), flush=True)
        return 1 if result.errors else 0
    from chapterx.viewer.server import start
    from chapterx.viewer.settings import ViewerSettings

    settings = ViewerSettings(host="127.0.0.1", port=port, logs_dirs=[result.logs],
                              index_path=work / "trace-index.sqlite")
    runner, bound = await start(settings)
    print(summary(result, f"http://127.0.0.1:{bound}/"), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 1 if result.errors else 0

