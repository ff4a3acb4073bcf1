"""`chapterx fleet status|units`: see every bot on this machine; generate its systemd units.

`status` exits 0 when every bot is `ok`, 1 when any is not (for cron and monitors), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from chapterx.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fleet", help="every bot on this machine: health, units",
                              description="Fleet operations for ChapterX bots and chapter2 ems on one machine.")
    sub = p.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND")
    sub.required = True

    s = sub.add_parser(
        "status", help="health of every bot (exit 1 if any is not ok)",
        description="One line per bot across ChapterX config trees and chapter2 ems folders: config validity, "
        "token file, systemd unit (when systemd runs), process, activity over 24 h from the trace index, and a "
        "health word: ok, failing, silent, stopped or misconfigured. Exit 1 when any bot is not ok.")
    s.add_argument("--config-root", action="append", metavar="DIR",
                   help="ChapterX config root (repeatable; default CONFIG_PATH, else ./config if present)")
    s.add_argument("--ems", action="append", metavar="DIR",
                   help="chapter2 ems/ folder (repeatable; default EMS_PATH when it is one)")
    s.add_argument("--logs-dir", action="append", metavar="DIR",
                   help="ChapterX logs base (repeatable; default LOGS_DIRS, LOGS_DIR, ./logs)")
    s.add_argument("--chapter2-logs-dir", action="append", metavar="DIR",
                   help="chapter2 OTLP-JSON folder (repeatable; default CHAPTER2_LOGS_DIRS and EMS/logs)")
    s.add_argument("--index", metavar="PATH", help="SQLite trace index (default TRACE_INDEX_PATH, else per user)")
    s.add_argument("--silent-after", type=float, default=24.0, metavar="HOURS",
                   help="a running bot with no activation for this long is 'silent' (default 24; 0 disables)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(handler=_status)

    u = sub.add_parser(
        "units", help="write the systemd units (bots, chapter2 ems in place, viewer, prune timer)",
        description="Write chapterx@.service (ChapterX bots), chapterx-ems@.service (chapter2 ems run in place), "
        "chapterx-traces.service (viewer) and chapterx-prune.{service,timer} into DIR, for /etc/systemd/system.")
    u.add_argument("--out", required=True, metavar="DIR", help="folder to write the unit files into")
    u.add_argument("--user", default="chapterx", help="service user (default chapterx)")
    u.add_argument("--prefix", default="/opt/chapterx", help="installation folder (default /opt/chapterx)")
    u.add_argument("--ems", default="/opt/chapter2/ems", metavar="DIR",
                   help="chapter2 ems folder for chapterx-ems@.service (default /opt/chapter2/ems)")
    u.add_argument("--prune-older-than", default="14d", metavar="AGE", help="trace retention (default 14d)")
    u.add_argument("--watchdog-sec", type=int, default=120, help="systemd watchdog for bots (default 120)")
    u.add_argument("--force", action="store_true", help="overwrite unit files that differ")
    u.set_defaults(handler=_units)


def _paths(values: list[str] | None) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(Path(v) for v in values or [] if str(v).strip()))


def _status(args: argparse.Namespace) -> int:
    from chapterx.fleet.status import StatusOptions, collect
    from chapterx.trace.paths import resolve_logs_dirs

    env = os.environ
    roots = _paths(args.config_root)
    if not roots and env.get("CONFIG_PATH"):
        roots = (Path(env["CONFIG_PATH"]),)
    if not roots and not args.ems and Path("config").is_dir():
        roots = (Path("config"),)
    ems = _paths(args.ems)
    if not ems and not args.config_root and env.get("EMS_PATH"):
        ems = (Path(env["EMS_PATH"]),)
    for flag, dirs in (("--config-root", roots), ("--ems", ems)):
        for d in dirs:
            if not d.is_dir():
                raise UsageError(f"{flag} {d}: no such folder")
    if not roots and not ems:
        raise UsageError("no bots to look at: pass --config-root DIR and/or --ems DIR")
    from chapterx_compat.chapter2.api import looks_like_chapter2

    for d in ems:
        if not looks_like_chapter2(d):
            raise UsageError(f"--ems {d}: not a chapter2 ems/ folder (a ChapterX config root goes to --config-root)")
    ch2 = list(_paths(args.chapter2_logs_dir))
    if not ch2 and env.get("CHAPTER2_LOGS_DIRS"):
        ch2 = [Path(p.strip()) for p in env["CHAPTER2_LOGS_DIRS"].split(",") if p.strip()]
    ch2 += [e / "logs" for e in ems if (e / "logs").is_dir() and e / "logs" not in ch2]
    if args.silent_after < 0:
        raise UsageError("--silent-after: hours, 0 or more")
    opts = StatusOptions(
        config_roots=roots, ems_dirs=ems, logs_dirs=tuple(resolve_logs_dirs(args.logs_dir)),
        chapter2_logs_dirs=tuple(ch2), index_path=Path(args.index) if args.index else None,
        silent_after=args.silent_after * 3600,
    )
    now = time.time()
    import sqlite3

    try:
        bots = collect(opts, now=now)
    except OSError as exc:
        raise UsageError(f"cannot read the trace index: {exc.strerror or exc}") from exc
    except sqlite3.Error as exc:
        where = args.index or "the default index path"
        raise UsageError(f"cannot open the trace index {where}: {exc} "
                         "(it is derived data: delete it or pass another --index)") from exc
    unhealthy = [b for b in bots if b.health != "ok"]
    if args.json:
        out = {"ok": not unhealthy, "generated_at": now, "bots": [b.to_json() for b in bots]}
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    else:
        _table(bots, now)
    return 1 if unhealthy else 0


def _age(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    d = max(0.0, now - ts)
    for unit, secs in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= secs:
            return f"{d / secs:.0f}{unit} ago"
    return f"{d:.0f}s ago"


def _table(bots: list[Any], now: float) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    colours = {"ok": "green", "failing": "red", "misconfigured": "red", "stopped": "yellow", "silent": "yellow"}
    table = Table(title=f"chapterx fleet: {len(bots)} bot(s)", title_justify="left")
    for col, justify in (("bot", "left"), ("framework", "left"), ("health", "left"), ("config", "right"),
                         ("token", "left"), ("unit", "left"), ("process", "left"), ("last activation", "left"),
                         ("24h act/fail", "right"), ("24h cost", "right"), ("why", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "why")  # type: ignore[arg-type]
    for b in bots:
        token = b.token_mode if b.token_present else "missing"
        proc = "-" if b.process_alive is None else (f"pid {b.pids[0]}" if b.pids else "not running")
        table.add_row(
            Text(b.bot), b.framework, Text(b.health, style=colours.get(b.health, "")),
            f"{b.config_errors}E {b.config_warnings}W", token, b.unit_state or "-", proc,
            _age(b.last_activation, now), f"{b.activations_24h}/{b.failures_24h}",
            "unknown" if b.cost_24h_usd is None else f"${b.cost_24h_usd:.2f}",
            Text("; ".join(b.reasons)),
        )
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)  # cron mail, pipes: whole words, not an 80-column squeeze
    console.print(table)


def _units(args: argparse.Namespace) -> int:
    from chapterx.fleet.units import UnitOptions, render_units

    opts = UnitOptions(prefix=args.prefix, user=args.user, ems=args.ems, prune_older_than=args.prune_older_than,
                       watchdog_sec=args.watchdog_sec)
    units = render_units(opts)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    clashes = [n for n, text in units.items() if (out / n).exists() and (out / n).read_text(errors="replace") != text]
    if clashes and not args.force:
        raise UsageError(f"--out {out}: {', '.join(clashes)} already exist with other content (use --force)")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (out / name).write_text(text, encoding="utf-8")
        os.chmod(out / name, 0o644)
    print(f"wrote {len(units)} unit files to {out}: {', '.join(units)}")
    print(f"install: sudo cp {out}/chapterx* /etc/systemd/system/ && sudo systemctl daemon-reload")
    print("then:    sudo systemctl enable --now chapterx@<bot> chapterx-ems@<em> chapterx-traces chapterx-prune.timer")
    return 0
