"""The `chapterx` command: parses arguments and hands off to one module per command.

Each command lives in `chapterx/commands/<name>.py` and exposes `register(subparsers)`; the
module imports its heavy dependencies inside the handler so `chapterx --help` stays fast and a
broken area cannot take the whole CLI down.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from chapterx import __version__
from chapterx.errors import UserError

# Order here is the order in `chapterx --help`.
COMMAND_MODULES = (
    "demo",
    "run",
    "validate",
    "config_cmd",
    "schema_cmd",
    "migrate",
    "traces",
    "replay",
    "fleet",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chapterx", description="Run and inspect ChapterX and Chapter II bots.")
    parser.add_argument("--version", action="version", version=f"chapterx {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "info"),
        help="debug, info, warning or error (env LOG_LEVEL, default info)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"chapterx.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(logging, str(args.log_level).upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        result = args.handler(args)
    except UserError as exc:
        print(f"chapterx: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
