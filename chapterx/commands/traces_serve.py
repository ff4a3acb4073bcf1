"""`chapterx traces serve`: the trace viewer (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the trace viewer (not yet available)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    print("chapterx traces serve: not yet available", file=sys.stderr)
    return 2
