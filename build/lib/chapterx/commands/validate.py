"""`chapterx validate PATH... [--dialect auto|chapterx|chapter2] [--strict] [--json]`.

Human output: one line per problem, `file:line: error|warning: message` (notes for files that
are not configs). Exit 0 valid (warnings allowed), 1 invalid, 2 unusable arguments or unreadable path.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check config files, config roots and em folders",
        description="Check ChapterX config roots, bot/shared files, or chapter2 em folders.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="config root, bot file, shared file or ems folder")
    p.add_argument("--dialect", choices=("auto", "chapterx", "chapter2"), default="auto",
                   help="which config dialect to expect (default: detect)")
    p.add_argument("--strict", action="store_true", help="treat unknown keys as errors")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of lines")
    p.add_argument("--chapter2-home", action="store_true",
                   help="chapter2 ems: also apply ~/.config/chapter2 layers, as chapter2 itself does")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chapterx.config.validate import validate_paths

    reports = validate_paths([Path(p) for p in args.paths], dialect=args.dialect, strict=args.strict,
                             chapter2_home=args.chapter2_home)
    ok = all(r.ok for r in reports)
    if args.json:
        print(json.dumps({"ok": ok, "files": [r.to_json() for r in reports]}, indent=2, ensure_ascii=False))
    else:
        for r in reports:
            for line in r.human_lines():
                print(line)
        errors = sum(len(r.errors) for r in reports)
        warnings = sum(len(r.warnings) for r in reports)
        print(f"chapterx validate: {len(reports)} file(s), {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    if any(r.unreadable for r in reports):
        return 2
    return 0 if ok else 1
