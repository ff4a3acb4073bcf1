"""Serve a fake's aiohttp app on 127.0.0.1 for the length of a test (a free port, always closed)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestServer


@contextlib.asynccontextmanager
async def local_app(app: web.Application) -> AsyncIterator[int]:
    """Yield the port `app` answers on; the server is closed on the way out, even after a failure."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        assert server.port is not None
        yield server.port
    finally:
        await server.close()
