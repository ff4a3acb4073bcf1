"""`chapterx schema` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("schema", help="schema (not yet available)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    print("chapterx schema: not yet available", file=sys.stderr)
    return 2
