"""`chapterx demo`: the main job on a bundled deployment, with no Discord token or API key.

It copies the bundled examples (ChapterX bots and a chapter2 em) into a work folder, migrates the em
with its report, runs a few real activations of each bot against an in-memory Discord and the local
fake LLM server, and serves the trace viewer on 127.0.0.1. Each bot runs on the runtime `chapterx run`
would pick for it (`rules_of`): the ChapterX bot through `BotRuntime` (traces `framework: chapterx`);
the em run in place and the migrated em (`activation_rules: chapter2`) through chapter2's runtime
(`chapterx_compat.chapter2.runtime`: name trigger, `m mu`, traces `framework: chapter2`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
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
    rules: dict[str, str] = field(default_factory=dict)  # per bot: the rule set it ran with
    posted: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    traces: list[dict[str, Any]] = field(default_factory=list)  # the trace index lines written


def read_index(logs: Path) -> list[dict[str, Any]]:
    """The trace index lines the writer appended (one per activation); unreadable lines are skipped."""
    import json

    out: list[dict[str, Any]] = []
    for index in sorted((logs / "traces").rglob("index.jsonl")):
        for line in index.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    out.append(item)
    return out


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
        # chapter2 rules: her name alone triggers her; `m mu` deletes her last reply and regenerates it
        DemoBot("wren", "chapter2 em (run in place)", ems=ems, bot="wren", channel_id="710000000000000002",
                lines=("the fog came in early tonight", "wren, anything in the logbook about fog?",
                       f"m mu {mention}"),
                replies=(" Logged at dusk: fog over the north rocks.",
                         " Logged at dusk: fog over the north rocks, lamp lit early, one ship slowed.")),
        DemoBot("wren-migrated", "migrated em", bot_file=migrated / "config" / "bots" / "wren.yaml",
                channel_id="710000000000000003",
                lines=("wren, same question from the migrated config: fog?",),
                replies=(" Fog again: the migrated logbook reads the same.",)),
    ]


def _world(bot: DemoBot, name: str) -> dict[str, Any]:
    users = [{"id": BOT_USER_ID, "username": name.lower(), "global_name": None, "bot": True}]
    users += [{"id": uid, "username": u, "global_name": g, "bot": False} for uid, u, g in HUMANS]
    return {"guild_id": GUILD_ID, "channel_id": bot.channel_id, "channel_name": "demo", "bot_user_id": BOT_USER_ID,
            "users": users, "members": [], "roles": [], "channels": [], "emojis": [], "pins": [], "messages": []}


async def activate(bot: DemoBot, writer: Any, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Run the bot's conversation on the rule set `chapterx run` would use; (rules, texts it sent)."""
    from chapterx.app import prepare_bot
    from chapterx_compat.chapter2.runtime.app import rules_of

    plan = prepare_bot(bot_file=bot.bot_file, ems=bot.ems, bot=bot.bot, env=env)
    try:
        rules = rules_of(plan)
        if rules == "chapter2":
            return rules, await _activate_chapter2(bot, plan, writer, env)
        return rules, await _activate_chapterx(bot, plan, writer, env)
    finally:
        if plan.cleanup is not None:
            plan.cleanup.cleanup()


async def _activate_chapterx(bot: DemoBot, plan: Any, writer: Any, env: Mapping[str, str]) -> list[str]:
    """Post the conversation one message at a time through `BotRuntime`; the texts it sent."""
    from chapterx.agent.decide import mentions_bot
    from chapterx.agent.queue import Event
    from chapterx.agent.runtime import BotRuntime, RuntimeOptions
    from chapterx.app import CachedConfigLoader
    from chapterx.discord.memory import MemoryDiscord
    from chapterx.llm.fake import FakeLLMServer
    from chapterx.llm.routing import Router

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


def _chapter2_setup(plan: Any) -> tuple[Any, Any, bool, bool]:
    """As `chapterx_compat.chapter2.runtime.app.run_plan` loads it: (chapter2 config, vendors, vendors are
    chapter2's, fix_name_punctuation) for an em in place or a migrated bot file."""
    if plan.chapter2:
        from chapterx_compat.chapter2.load import load

        source = Path(plan.source)
        loaded = load(source.parent, source.name)
        vendors = {k: v.model_dump() for k, v in loaded.config.em.vendors.items()}
        return loaded.config, vendors, True, bool(loaded.kv.get("fix_name_punctuation"))
    from chapterx.config.load import resolve_bot_config
    from chapterx_compat.chapter2.runtime.rules import config_from_bot

    data = dict(resolve_bot_config(bot_file=plan.bot_file, env=plan.env).config)
    config = config_from_bot(data, Path(plan.bot_file), Path(plan.bot_file).stem)
    return config, plan.vendors, False, bool((data.get("chapter2_em") or {}).get("fix_name_punctuation"))


def _c2_world(bot: DemoBot, name: str) -> dict[str, Any]:
    """A `MemoryWorld` input: one guild channel, the bot user and the two humans."""
    return {"bot_user": {"id": BOT_USER_ID, "username": name.lower(), "global_name": None},
            "users": [{"id": uid, "username": u, "global_name": g} for uid, u, g in HUMANS],
            "guild": {"id": GUILD_ID}, "channels": [{"id": bot.channel_id, "name": "demo"}]}


async def _activate_chapter2(bot: DemoBot, plan: Any, writer: Any, env: Mapping[str, str]) -> list[str]:
    """Post the conversation through chapter2's `on_message` flow on its in-memory Discord; the texts it
    sent (net of `m mu` deletions). Traces as `chapterx run` writes them (`framework: chapter2`)."""
    from chapterx.llm.fake import FakeLLMServer
    from chapterx_compat.chapter2.runtime.interface import Chapter2Interface, InterfaceOptions
    from chapterx_compat.chapter2.runtime.llm import ProviderCompleter
    from chapterx_compat.chapter2.runtime.memory import MemoryWorld
    from chapterx_compat.chapter2.runtime.port import C2Message
    from chapterx_compat.chapter2.runtime.traces import trace_of

    config, vendors, own_vendors, fix = _chapter2_setup(plan)
    world = MemoryWorld(_c2_world(bot, config.em.name))

    def on_record(rec: Any) -> None:
        if not rec.should_reply and rec.exception is None and not rec.actions and not rec.dropped:
            return  # did not concern the em: no trace, as in `chapterx run`
        writer.write_trace(trace_of(rec, bot=bot.label, channel_name="demo", is_thread=False, parent_id=None))

    channel = int(bot.channel_id)
    async with FakeLLMServer([{"text": r, "stop_reason": "end_turn"} for r in bot.replies]) as fake:
        completer = ProviderCompleter(vendors, env=env, base_url_override=fake.base_url, chapter2=own_vendors)
        iface = Chapter2Interface(world, config, completer,
                                  InterfaceOptions(fix_name_punctuation=fix, on_record=on_record))
        try:
            for i, text in enumerate(bot.lines):
                mid = world.next_id  # after everything the bot sent: snowflakes stay in time order
                world.next_id += 1 << 22
                mentions = tuple(int(u) for u in re.findall(r"<@!?(\d+)>", text))
                msg = C2Message(mid, channel, int(HUMANS[i % len(HUMANS)][0]), text, mentions=mentions)
                world.messages.setdefault(channel, []).append(msg)
                await iface.on_message(msg)
        finally:
            await completer.aclose()
    return [x.content for x in world.messages.get(channel, []) if x.author_id == int(BOT_USER_ID)]


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
            result.rules[bot.label], result.posted[bot.label] = await activate(bot, writer, env)
        except Exception as exc:  # noqa: BLE001 - one bot failing still shows the others
            result.errors[bot.label] = f"{type(exc).__name__}: {exc}"
    with contextlib.suppress(Exception):
        writer.close()
    result.traces = read_index(logs)
    return result


def summary(result: DemoResult, url: str | None) -> str:
    """What ran, and what to look at in the viewer (both frameworks, the fleet page, failures)."""
    lines = [f"chapterx demo: work folder {result.work}"]
    if result.report is not None:
        lines.append(f"  migrated the chapter2 em: report {result.report}")
    for label, posted in result.posted.items():
        rules = result.rules.get(label, "?")
        lines.append(f"  {label} ({result.kinds[label]}, {rules} rules): posted {len(posted)} message(s)"
                     + (f": {posted[-1][:70]!r}" if posted else ""))
    for label, error in result.errors.items():
        lines.append(f"  {label} ({result.kinds[label]}): FAILED {error}")
    by_fw: dict[str, set[str]] = {}
    for t in result.traces:
        by_fw.setdefault(str(t.get("framework") or "chapterx"), set()).add(str(t.get("botName")))
    failed = [t for t in result.traces if t.get("success") is False]
    counts = ", ".join(f"{fw}: {sum(1 for t in result.traces if (t.get('framework') or 'chapterx') == fw)}"
                       for fw in sorted(by_fw))
    lines.append(f"  traces: {len(result.traces)} ({counts}), {len(failed)} failed, in {result.logs / 'traces'}")
    if url:
        lines.append(f"trace viewer: {url}")
        lines.append("  look at:")
        lines.append(f"    {url}  every activation, newest first; the badge says which framework wrote it")
        for fw in sorted(by_fw):
            what = ("chapter2 rules: trigger `name`, the prompt chapter2 built, `m mu` regenerating a reply"
                    if fw == "chapter2" else "ChapterX rules: context, the request the SDK sent, Discord actions")
            lines.append(f"    {url}?framework={fw}  {', '.join(sorted(by_fw[fw]))}: {what}")
        lines.append(f"    {url}fleet  the fleet page: activations, failures and latency per bot")
        if failed:
            for t in failed[:3]:
                lines.append(f"    {url}trace/{t.get('traceId')}  a failed activation ({t.get('botName')})")
        else:
            lines.append(f"    no failed activation in this run ({url}?failed=true lists them when there are)")
        lines.append("Ctrl-C stops.")
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
    # (A terminal's Ctrl-C reaches the viewer's index worker too; the worker ignores it and this process
    # stops it.)
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

