"""`chapterx traces ...`: list, show, search and maintain activation traces; `serve` (the viewer)
is registered by `chapterx.commands.traces_serve`.

Every subcommand reads `--logs-dir DIR` (repeatable), else `LOGS_DIRS` (comma-separated), else
`LOGS_DIR`, else `./logs`. `--json` prints the same JSON shapes as the viewer API.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chapterx.errors import UsageError, UserError

if TYPE_CHECKING:
    from chapterx.trace.store import TraceStore

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_DURATION_S = 36500 * 86400  # keeps "now - duration" a valid date
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")


def parse_duration(text: str) -> timedelta:
    """`7d`, `12h`, `30m`, `90s`, `2w`."""
    m = _DURATION_RE.match(text or "")
    if not m:
        raise UsageError(f"invalid duration {text!r}: use a number and a unit, e.g. 7d, 12h, 30m")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > _MAX_DURATION_S:
        raise UsageError(f"duration {text!r} is too long: use at most 100 years (36500d)")
    return timedelta(seconds=seconds)


def parse_when(text: str | None) -> datetime | None:
    """An ISO time, a date, or a duration ago (`2h` = two hours ago)."""
    if not text:
        return None
    if _DURATION_RE.match(text):
        return datetime.now(UTC) - parse_duration(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"invalid time {text!r}: use ISO-8601 (2026-06-11T12:00Z) or a duration (2h)") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--logs-dir", action="append", default=None, metavar="DIR",
                   help="logs base folder (repeatable); default LOGS_DIRS, LOGS_DIR, ./logs")
    p.add_argument("--index", type=Path, default=None, metavar="FILE",
                   help="SQLite index file (default TRACE_INDEX_PATH, else ~/.cache/chapterx/trace-index-<hash>.sqlite)")
    p.add_argument("--json", action="store_true", help="print JSON (the viewer API shapes)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("traces", help="list, show, search and serve activation traces")
    sub = p.add_subparsers(dest="traces_command", metavar="SUBCOMMAND")
    sub.required = True
    from chapterx.commands import traces_serve

    traces_serve.register(sub)

    q = sub.add_parser("list", help="list traces, newest first")
    _common(q)
    q.add_argument("--bot")
    q.add_argument("--channel")
    q.add_argument("--failed", action="store_true", help="only traces that did not succeed")
    q.add_argument("--status", help="success, failed, no_outcome, deferred, aborted, running")
    q.add_argument("--framework", choices=("chapterx", "chapter2"))
    q.add_argument("--since", help="ISO time or duration ago (e.g. 2h)")
    q.add_argument("--until", help="ISO time or duration ago")
    q.add_argument("--text", help="substring of the trigger or response preview")
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--offset", type=int, default=0)
    q.set_defaults(handler=_list)

    q = sub.add_parser("show", help="print one trace (full JSON)")
    _common(q)
    q.add_argument("trace_id")
    q.set_defaults(handler=_show)

    q = sub.add_parser("search", help="traces that used a Discord message (link or id)")
    _common(q)
    q.add_argument("query")
    q.add_argument("--bot")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--offset", type=int, default=0)
    q.set_defaults(handler=_search)

    for kind in ("request", "response"):
        q = sub.add_parser(kind, help=f"print the raw LLM {kind} body of a round trip")
        _common(q)
        q.add_argument("trace_id")
        q.add_argument("--call", type=int, default=0, help="round trip (llmCalls index), default 0")
        q.add_argument("--part", type=int, default=None,
                       help=f"which of several {kind} bodies of one call (upstream tool loops); "
                            f"default {'first' if kind == 'request' else 'last'}")
        q.add_argument("--membrane", action="store_true", help="the membrane (normalized) body instead")
        q.set_defaults(handler=_body, kind=kind)

    q = sub.add_parser("logs", help="log entries captured during an activation")
    _common(q)
    q.add_argument("trace_id")
    q.add_argument("--level", choices=LEVELS, default=None, help="this level and above")
    q.set_defaults(handler=_logs)

    q = sub.add_parser("stats", help="counts, tokens, cost and index health")
    _common(q)
    q.set_defaults(handler=_stats)

    q = sub.add_parser("reindex", help="rebuild the SQLite index from index.jsonl")
    _common(q)
    q.add_argument("--progress", action="store_true",
                   help="draw the progress bar even when stderr is not a terminal")
    q.set_defaults(handler=_reindex)

    q = sub.add_parser("prune", help="delete old traces, their bodies and index lines together")
    _common(q)
    q.add_argument("--older-than", required=True, help="e.g. 7d")
    q.add_argument("--dry-run", action="store_true")
    q.set_defaults(handler=_prune)


class ProgressBar:
    """`building index: [#####     ] 42%  1.2/2.9 GB` on stderr, redrawn when the percent moves."""

    def __init__(self, stream: Any = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.last = -1

    def __call__(self, progress: Any) -> None:
        pct = progress.percent
        if pct == self.last:
            return
        self.last = pct
        filled = self.width * pct // 100
        self.stream.write(f"\rbuilding index: [{'#' * filled}{' ' * (self.width - filled)}] {pct:3d}%  "
                          f"{progress.done_bytes / 1e9:.2f}/{progress.total_bytes / 1e9:.2f} GB")
        self.stream.flush()

    def done(self) -> None:
        if self.last >= 0:
            self.stream.write("\n")
            self.stream.flush()


def _store(args: argparse.Namespace, *, reindex: bool = False) -> TraceStore:
    """The store, brought up to date (or rebuilt from scratch: `reindex`, so the index is not
    read once only to be thrown away)."""
    from chapterx.trace.paths import resolve_logs_dirs
    from chapterx.trace.store import TraceStore

    bases = resolve_logs_dirs(args.logs_dir)
    if not any(b.is_dir() for b in bases):
        raise UsageError(f"no logs folder found: {', '.join(str(b) for b in bases)} "
                         "(use --logs-dir, LOGS_DIRS or LOGS_DIR)")
    import sqlite3
    import stat

    for base in bases:
        index_file = base / "traces" / "index.jsonl"
        try:
            mode = index_file.stat().st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            raise UsageError(f"{index_file} is not a regular file: it should be the bots' append-only trace index")
    try:
        store = TraceStore(bases, index_path=args.index)
        bar = ProgressBar() if getattr(args, "progress", False) or sys.stderr.isatty() else None
        try:
            if reindex:
                store.reindex(progress=bar)
            else:
                store.refresh(progress=bar)  # a first build of a big index is slow: show it
        finally:
            if bar is not None:
                bar.done()
    except OSError as exc:
        raise UsageError(f"cannot open the trace index: {exc.strerror or exc}") from exc
    except sqlite3.Error as exc:
        where = args.index or "the default index path"
        raise UsageError(f"cannot open the trace index {where}: {exc} "
                         "(it is derived data: delete it or pass another --index)") from exc
    return store


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _fmt_tokens(n: Any) -> str:
    n = int(n or 0)
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def _fmt_cost(c: Any) -> str:
    return "-" if c is None else f"${c:.4f}"


def _trace_or_fail(store: TraceStore, trace_id: str) -> dict[str, Any]:
    trace = store.get_trace(trace_id)
    if trace is None:
        raise UserError(f"trace {trace_id!r} not found", 1)
    return trace


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1 or args.offset < 0:
        raise UsageError("--limit must be at least 1 and --offset at least 0")
    store = _store(args)
    result = store.list_traces(bot=args.bot, channel=args.channel, failed=args.failed, status=args.status,
                               framework=args.framework, since=parse_when(args.since),
                               until=parse_when(args.until), text=args.text,
                               limit=args.limit, offset=args.offset)
    if args.json:
        _print_json(result)
        return 0
    rows = result["traces"]
    if not rows:
        print("no traces")
        return 0
    print(f"{'TRACE':<32}  {'STARTED (UTC)':<19}  {'BOT':<14} {'CHANNEL':<16} {'REASON':<9} "
          f"{'STATUS':<10} {'CALLS':>5} {'TOOLS':>5} {'TOKENS':>7} {'COST':>9}")
    for t in rows:
        print(f"{t['traceId']:<32}  {t['timestamp'][:19].replace('T', ' '):<19}  "
              f"{(t.get('botName') or '-')[:14]:<14} {str(t.get('channelName') or '')[:16]:<16} "
              f"{(t.get('activationReason') or '-')[:9]:<9} {t.get('status', ''):<10} "
              f"{t.get('llmCallCount', 0):>5} {t.get('toolExecutionCount', 0):>5} "
              f"{_fmt_tokens(t.get('totalTokens')):>7} {_fmt_cost(t.get('cost')):>9}")
    start = result["offset"] + 1
    print(f"showing {start}-{result['offset'] + len(rows)} of {result['total']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    _print_json(_trace_or_fail(_store(args), args.trace_id))
    return 0


def _search(args: argparse.Namespace) -> int:
    if args.limit < 1 or args.offset < 0:
        raise UsageError("--limit must be at least 1 and --offset at least 0")
    result = _store(args).search(args.query, bot=args.bot, limit=args.limit, offset=args.offset)
    if args.json:
        _print_json(result)
        return 0
    if not result["results"]:
        print(f"no traces used message {result['messageId']}")
        return 0
    for r in result["results"]:
        where = f"#{r['position']}" if "position" in r else ""
        print(f"{r['role']:<8}{where:<6} {r['traceId']}  {r['timestamp'][:19].replace('T', ' ')}  "
              f"{r.get('botName', '-')}  {r.get('channelName', '')}  {r.get('status', '')}"
              + (f"  → {r['responsePreview']}" if r.get("responsePreview") else ""))
    print(f"{result['total']} trace(s) used message {result['messageId']}")
    return 0


def _body(args: argparse.Namespace) -> int:
    store = _store(args)
    trace = _trace_or_fail(store, args.trace_id)
    calls = trace.get("llmCalls") or []
    if not 0 <= args.call < len(calls):
        raise UserError(f"trace {args.trace_id} has {len(calls)} round trip(s); --call {args.call} is out of range")
    call = calls[args.call]
    kind = args.kind
    if args.membrane:
        key = "membraneRequestRef" if kind == "request" else "membraneResponseRef"
        refs = [call[key]] if call.get(key) else []
        kind = f"membrane-{kind}"
    else:
        refs = list(call.get(f"{kind}BodyRefs") or ([call[f"{kind}BodyRef"]] if call.get(f"{kind}BodyRef") else []))
    if not refs:
        raise UserError(f"round trip {args.call} of trace {args.trace_id} has no {kind} body")
    if args.part is None:
        ref = refs[0] if kind.endswith("request") else refs[-1]
    elif 0 <= args.part < len(refs):
        ref = refs[args.part]
    else:
        raise UserError(f"round trip {args.call} has {len(refs)} {kind} bodies; --part {args.part} is out of range")
    path = store.body_path(kind, ref)
    if path is None:
        raise UserError(f"{kind} body {ref} not found (cleaned up?)")
    sys.stdout.write(path.read_text(encoding="utf-8").rstrip("\n") + "\n")
    return 0


def _logs(args: argparse.Namespace) -> int:
    trace = _trace_or_fail(_store(args), args.trace_id)
    entries = trace.get("logs") or []
    if args.level:
        floor = LEVELS.index(args.level)
        entries = [e for e in entries if e.get("level") in LEVELS and LEVELS.index(e["level"]) >= floor]
    if args.json:
        _print_json(entries)
        return 0
    for e in entries:
        data = f" {json.dumps(e['data'], ensure_ascii=False)}" if e.get("data") is not None else ""
        print(f"+{(e.get('offsetMs') or 0) / 1000:.3f}s [{str(e.get('level', '')).upper():<5}] "
              f"{e.get('message', '')}{data}")
    return 0


def _cost_line(stats: dict[str, Any]) -> str:
    """The total cost as far as it is known: activations that reported none are not $0."""
    priced, finished = stats["pricedActivations"], stats["finishedActivations"]
    if not priced:
        return "unknown (no activation reported a cost)" if finished else "$0.0000"
    known = f"${stats['cost']:.4f}"
    return known if priced >= finished else f"{known} ({priced} of {finished} activations priced)"


def _stats(args: argparse.Namespace) -> int:
    stats = _store(args).stats()
    if args.json:
        _print_json(stats)
        return 0
    print(f"traces: {stats['traces']}  ({stats['oldest']} → {stats['newest']})")
    print("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["byStatus"].items())))
    print("by bot: " + ", ".join(f"{k or '(none)'} {v}" for k, v in sorted(stats["byBot"].items())))
    print("by framework: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["byFramework"].items())))
    print(f"tokens: {stats['totalTokens']}  cost: {_cost_line(stats)}")
    for s in stats["sources"]:
        print(f"index {s['path']}: {s['lines']} lines, {s['malformed']} malformed")
    print(f"sqlite index: {stats['indexPath']} ({stats['indexBytes'] / 1e6:.1f} MB)")
    return 0


def _reindex(args: argparse.Namespace) -> int:
    store = _store(args, reindex=True)
    stats = store.last_ingest
    result = {"lines": stats.lines, "malformed": stats.malformed, "indexPath": str(store.index_path)}
    if args.json:
        _print_json(result)
    else:
        print(f"reindexed {stats.lines} lines ({stats.malformed} malformed skipped) into {store.index_path}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from chapterx.trace.prune import prune_store

    age = parse_duration(args.older_than)
    report = prune_store(_store(args), age, dry_run=args.dry_run)
    if args.json:
        _print_json(report)
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb}: {report['traceFiles']} trace files, {report['bodyFiles']} body files, "
          f"{report['otherFiles']} other files, {report['markers']} markers, "
          f"{report['indexLinesRemoved']} index lines ({report['bytes'] / 1e6:.1f} MB); "
          f"kept {report['indexLinesKept']} index lines (cutoff {report['cutoff']})")
    return 0
