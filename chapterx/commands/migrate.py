"""`chapterx migrate EMS_DIR --out DIR [--bots a,b] [--dry-run] [--force] [--json] [--chapter2-home]`.

Turns a chapter2 deployment (`ems/`) into a ChapterX config tree. Exit 0 on success (unsupported
keys are reported, not fatal), 1 on invalid input, 2 on usage errors. Secrets are never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from chapterx.errors import UsageError

PROGRESS_THRESHOLD = 20  # show a progress bar for deployments at least this big (on a terminal)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "migrate",
        help="migrate a chapter2 ems/ folder to a ChapterX config tree",
        description="Migrate a chapter2 deployment (ems/ folder) to a ChapterX config tree. "
        "Writes DIR/config/shared.yaml, DIR/config/bots/<em>.yaml, token files (0600), .chr texts, "
        "DIR/MIGRATION_REPORT.md and DIR/migration-report.json. Never writes inside EMS_DIR.",
    )
    p.add_argument("ems_dir", metavar="EMS_DIR", help="the chapter2 ems/ folder")
    p.add_argument("--out", metavar="DIR", help="output folder (required unless --dry-run)")
    p.add_argument("--bots", metavar="A,B", help="only these ems (folder names), comma-separated")
    p.add_argument("--dry-run", action="store_true", help="write nothing; print the report")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--json", action="store_true", help="print the machine-readable report on stdout")
    p.add_argument(
        "--chapter2-home",
        action="store_true",
        help="also read ~/.config/chapter2/{vendors,config}.yaml, as chapter2 does on that machine",
    )
    p.add_argument("--rules", choices=("chapter2", "chapterx"), default="chapter2",
                   help="activation rules the migrated bots run with (default chapter2: they keep answering as "
                        "in chapter2; written as `activation_rules`)")
    p.add_argument("--into", metavar="CONFIG_ROOT",
                   help="add the ems to an existing ChapterX config root instead of --out (see chapterx.commands.migrate_into)")
    p.add_argument("--force-bot", action="append", metavar="EM", help="with --into: replace this bot's existing files")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from chapterx_compat.chapter2.migrate import check_output, plan_migration, write_plan

    if args.into or args.force_bot:
        from chapterx.commands.migrate_into import handle_into

        return handle_into(args)
    ems_dir = Path(args.ems_dir)
    if not args.out and not args.dry_run:
        raise UsageError("migrate: --out DIR is required (or use --dry-run)")
    bots = [b.strip() for b in args.bots.split(",") if b.strip()] if args.bots else None
    if args.bots is not None and not bots:
        raise UsageError("--bots: give at least one em name")
    out = Path(args.out) if args.out else None
    if out is not None and ems_dir.is_dir():
        check_output(ems_dir, out, args.force)  # fail fast, before reading every em
    err = Console(stderr=True, highlight=False)
    import functools

    plan_fn = functools.partial(plan_migration, activation_rules=args.rules)
    plan = _plan_with_progress(plan_fn, ems_dir, bots, args.chapter2_home, err, show=not args.json)
    aside = None
    if not args.dry_run:
        assert out is not None  # checked above: --out is required without --dry-run
        aside = write_plan(plan, out, force=args.force)
    if args.json:
        sys.stdout.write(json.dumps(plan.report, indent=2, ensure_ascii=False) + "\n")
        return 0
    console = Console(highlight=False, soft_wrap=True)
    _print_table(console, plan.report)
    if args.dry_run:
        console.print()
        console.print(plan.files["MIGRATION_REPORT.md"].decode(), markup=False)
        console.print("dry run: nothing was written", style="bold")
    elif out is not None:
        console.print(f"wrote {out} (report: {out / 'MIGRATION_REPORT.md'})", markup=False)
        if aside is not None:
            console.print(f"the previous output was moved to {aside}", markup=False)
    return 0


def _plan_with_progress(plan_fn: Any, ems_dir: Path, bots: list[str] | None, home: bool, err: Any, show: bool) -> Any:
    if not (show and err.is_terminal):
        return plan_fn(ems_dir, bots=bots, home=home)
    try:
        from chapterx_compat.chapter2.load import list_ems

        total = len(bots) if bots else len(list_ems(ems_dir))
    except OSError:
        total = 0
    if total < PROGRESS_THRESHOLD:
        return plan_fn(ems_dir, bots=bots, home=home)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("migrating"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  console=err, transient=True) as progress:
        task = progress.add_task("", total=total)

        def step(name: str) -> None:
            progress.update(task, advance=1, description=name)

        return plan_fn(ems_dir, bots=bots, home=home, progress=step)


def _print_table(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="chapter2 -> chapterx migration", title_justify="left")
    for col, justify in (("em", "left"), ("name", "left"), ("model", "left"), ("mapped", "right"),
                         ("approximated", "right"), ("unsupported", "right"), ("warnings", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for e in report["ems"]:
        c = e["counts"]
        table.add_row(e["sysname"], str(e["name"]), str(e["model"]), str(c["mapped"]), str(c["approximated"]),
                      str(c["unsupported"]), str(len(e["warnings"])))
    s = report["summary"]
    table.add_section()
    table.add_row(f"{s['ems']} ems", f"{s['vendors']} vendors", "", str(s["mapped"]), str(s["approximated"]),
                  str(s["unsupported"]), "")
    console.print(table)
