"""`chapterx traces ...`: the trace store CLI; `serve` is added by the viewer package."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("traces", help="list, show, search and serve activation traces")
    sub = p.add_subparsers(dest="traces_command", metavar="SUBCOMMAND")
    sub.required = True
    from chapterx.commands import traces_serve

    traces_serve.register(sub)
    # The trace-store subcommands (list, show, search, ...) are registered here.
    q = sub.add_parser("list", help="list traces (not yet available)")
    q.set_defaults(handler=_todo)


def _todo(args: argparse.Namespace) -> int:
    print("chapterx traces: not yet available", file=sys.stderr)
    return 2
