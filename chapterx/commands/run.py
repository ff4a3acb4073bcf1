"""`chapterx run`: run one bot against Discord (reference §0 process layout)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="run one bot (discord.py connector, activation rules, LLM calls, traces)",
        description="Run one bot until SIGTERM/SIGINT. The bot is chosen by --config BOT_FILE, or "
                    "--ems DIR --bot NAME (a ChapterX EMS folder or a chapter2 ems/ folder, run in place), "
                    "or the BOT_CONFIG / EMS_PATH + BOT_NAME / CONFIG_PATH + BOT_NAME environment variables.")
    p.add_argument("--config", type=Path, metavar="BOT_FILE", help="the bot's YAML file (config/bots/NAME.yaml)")
    p.add_argument("--ems", type=Path, metavar="DIR", help="an EMS folder (ChapterX or chapter2)")
    p.add_argument("--bot", metavar="NAME", help="the bot (em) name inside --ems (or BOT_NAME)")
    p.add_argument("--chapter2-home", action="store_true",
                   help="with a chapter2 ems/ folder: also apply chapter2's home-directory config layers")
    p.add_argument("--rules", choices=("chapter2", "chapterx"), default=None,
                   help="with a chapter2 em: whose activation rules to run (default chapter2: names, random, "
                        "sim, regex, topic/pinned .config; chapterx: the em translated to ChapterX's runtime)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    import asyncio

    from chapterx.app import prepare_bot, serve
    from chapterx.errors import UsageError

    if args.config is not None and args.ems is not None:
        raise UsageError("give either --config or --ems, not both")
    plan = prepare_bot(bot_file=args.config, ems=args.ems, bot=args.bot, chapter2_home=args.chapter2_home)
    if args.rules != "chapterx":
        from chapterx_compat.chapter2.runtime.app import rules_of, run_plan

        if rules_of(plan) == "chapter2":
            return run_plan(plan, home=args.chapter2_home)
    return asyncio.run(serve(plan))
