"""`chapterx migrate EMS --into CONFIG_ROOT [--force-bot EM]... [--bots a,b] [--dry-run] [--json]`.

Kept apart from `migrate.py` (the `--out` path) so that file stays one job; `migrate` hands off here
when `--into` is given. Exit 0 when written (or a clean dry run), 1 when a bot was refused or the
deployment cannot be merged into, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chapterx.errors import UsageError


def handle_into(args: argparse.Namespace) -> int:
    from chapterx_compat.chapter2.migrate import plan_migration
    from chapterx_compat.chapter2.migrate_into import plan_into, render_text, write_into

    if not args.into:
        raise UsageError("--force-bot only applies with --into CONFIG_ROOT")
    if args.out:
        raise UsageError("use either --out DIR (a new tree) or --into CONFIG_ROOT (an existing deployment)")
    if args.force:
        raise UsageError("with --into, name the bots whose files may be replaced: --force-bot EM")
    bots = [b.strip() for b in args.bots.split(",") if b.strip()] if args.bots else None
    if args.bots is not None and not bots:
        raise UsageError("--bots: give at least one em name")
    force = {b.strip() for v in args.force_bot or [] for b in v.split(",") if b.strip()}
    root = Path(args.into)
    if not root.is_dir():
        raise UsageError(f"--into {root}: no such folder (the ChapterX config root: shared.yaml, bots/)")
    plan = plan_migration(Path(args.ems_dir), bots=bots, home=args.chapter2_home,
                          activation_rules=getattr(args, "rules", None) or "chapter2")
    into = plan_into(plan, root, force_bots=force)
    written = not (args.dry_run or into.refused)
    if written:
        write_into(into)
    if args.json:
        sys.stdout.write(json.dumps({"written": written, **into.report}, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_text(into.report, written=written))
    if into.refused:
        print("chapterx: error: migrate --into: nothing was written: " + "; ".join(into.refused), file=sys.stderr)
        return 1
    return 0
