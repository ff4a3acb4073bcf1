"""Start the viewer: open the trace store, build the app, listen, print where."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from aiohttp import web

from chapterx.errors import UsageError
from chapterx.viewer.app import create_app
from chapterx.viewer.chapter2 import Chapter2Source
from chapterx.viewer.settings import ViewerSettings

log = logging.getLogger(__name__)


def open_store(settings: ViewerSettings) -> Any:
    """The real trace store over the configured bases (its SQLite index is persisted)."""
    import sqlite3

    from chapterx.trace.store import TraceStore

    kwargs: dict[str, Any] = {}
    if settings.index_path is not None:
        kwargs["index_path"] = settings.index_path
    try:
        return TraceStore(list(settings.logs_dirs), **kwargs)
    except sqlite3.Error as exc:  # a folder or a non-SQLite file given as the index
        where = settings.index_path if settings.index_path is not None else "the default trace index"
        raise UsageError(
            f"trace index {where}: cannot be opened as SQLite ({exc}); "
            "point --index / TRACE_INDEX_PATH at a new file (the index is rebuilt from the logs)"
        ) from None


def build(settings: ViewerSettings, store: Any | None = None) -> web.Application:
    store = store if store is not None else open_store(settings)
    chapter2 = Chapter2Source(settings.all_chapter2_dirs)
    return create_app(settings, store, chapter2)


async def start(settings: ViewerSettings, store: Any | None = None) -> tuple[web.AppRunner, int]:
    """Start listening (port 0 picks a free port); returns the runner and the bound port."""
    app = build(settings, store)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    port = settings.port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        port = server.sockets[0].getsockname()[1]
    return runner, port


def banner(settings: ViewerSettings, port: int) -> str:
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    lines = [f"chapterx trace viewer on http://{host}:{port}/"]
    lines.append("auth: " + ("on (AUTH_TOKEN)" if settings.auth_token else "OFF (no AUTH_TOKEN set)"))
    for d in settings.logs_dirs:
        lines.append(f"  {'✓' if (d / 'traces').is_dir() else '✗'} {d}")
    for d in settings.all_chapter2_dirs:
        lines.append(f"  {'✓' if d.is_dir() else '✗'} {d} (chapter2 OTLP-JSON)")
    return "\n".join(lines)


def serve(settings: ViewerSettings) -> int:
    settings.check_bind()
    # Ingest work runs on worker threads; a shorter GIL switch interval (default 5 ms) lets the
    # event loop take over sooner, so reads answer quickly while an ingest is being grouped.
    sys.setswitchinterval(0.001)

    async def main() -> None:
        runner, port = await start(settings)
        print(banner(settings, port), file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread / platform
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    return 0
