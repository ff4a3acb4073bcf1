"""`chapterx schema NAME`: print one of the JSON Schemas shipped in `schemas/`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("schema", help="print a JSON Schema by name (chapterx-bot, chapterx-shared, ...)",
                              description="Print a JSON Schema from schemas/ by name; without NAME, list them.")
    p.add_argument("name", nargs="?", metavar="NAME", help="schema name, e.g. chapterx-bot")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from chapterx.config import schema as sch
    from chapterx.errors import UsageError

    names = sch.available_schemas()
    if not args.name:
        for n in names:
            print(n)
        return 0
    path = sch.schema_path(args.name)
    if path is None or path.parent != sch.schemas_dir():
        raise UsageError(f"unknown schema '{args.name}'; available: {', '.join(names) or '(none)'}")
    print(path.read_text(encoding="utf-8"), end="")
    return 0
