"""`chapterx traces serve`: the trace viewer web server (also `python tools/trace_server.py`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the trace viewer (web UI + upstream-compatible JSON API)",
        description=(
            "Serve ChapterX and chapter2 traces over HTTP. Environment: PORT (3847), HOST (127.0.0.1), "
            "AUTH_TOKEN, LOGS_DIRS / LOGS_DIR, INDEX_RETENTION_DAYS (30; 0 keeps all), CHAPTER2_LOGS_DIRS."
        ),
    )
    p.add_argument("--host", help="address to bind (env HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env PORT, default 3847; 0 picks a free port)")
    p.add_argument(
        "--logs-dir",
        action="append",
        metavar="DIR",
        help="ChapterX logs base (repeatable; env LOGS_DIRS, LOGS_DIR, default ./logs)",
    )
    p.add_argument(
        "--chapter2-logs-dir",
        action="append",
        metavar="DIR",
        help="folder of chapter2 OTLP-JSON files (repeatable; env CHAPTER2_LOGS_DIRS)",
    )
    p.add_argument("--index", metavar="PATH", help="SQLite index file (default: the trace store's)")
    p.add_argument(
        "--retention-days", type=int, help="hide traces older than N days (env INDEX_RETENTION_DAYS)"
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without AUTH_TOKEN (anyone who can reach it reads every trace)",
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from chapterx.viewer.server import serve
    from chapterx.viewer.settings import ViewerSettings, is_chapter2_logs_dir, parse_dirs

    settings = ViewerSettings.from_env()
    if args.host:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    if args.logs_dir:
        dirs = parse_dirs(args.logs_dir)
        settings.logs_dirs = [d for d in dirs if not is_chapter2_logs_dir(d)] or settings.logs_dirs
        settings.chapter2_dirs += [
            d for d in dirs if is_chapter2_logs_dir(d) and d not in settings.chapter2_dirs
        ]
    if args.chapter2_logs_dir:
        settings.chapter2_dirs += [
            d for d in parse_dirs(args.chapter2_logs_dir) if d not in settings.chapter2_dirs
        ]
    if args.index:
        from pathlib import Path

        settings.index_path = Path(args.index)
    if args.retention_days is not None:
        settings.retention_days = max(0, args.retention_days)
    settings.insecure = bool(args.insecure)
    return serve(settings)
