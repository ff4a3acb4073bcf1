"""The trace viewer web app (aiohttp): upstream's JSON API, a static UI, OTLP/HTTP ingest.

Routes (same paths and JSON shapes as upstream's `tools/trace-server.ts`, plus additions):
  GET  /health                                  no auth
  POST /login, POST /logout                     browser session cookie (HttpOnly, SameSite=Strict)
  GET  /api/bots | /api/channels | /api/traces | /api/search | /api/trace/<id>
  GET  /api/request/<ref> | /api/response/<ref> | /api/membrane-request/<ref> | /api/membrane-response/<ref>
  POST /v1/traces                               OTLP/HTTP (JSON or protobuf), Bearer only
  GET  /static/<file>, anything else -> the UI shell (index.html)

The store (`chapterx.trace.store.TraceStore`, SQLite) is synchronous; every read runs on one
dedicated worker thread so the event loop never blocks and the connection stays on one thread.
chapter2 rows are written on a second thread (the store gives them their own connection), so a
read never queues behind an ingest's transactions.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import gzip
import json
import logging
import multiprocessing
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from chapterx.viewer import fleet, security
from chapterx.viewer.chapter2 import (
    MAX_INGEST_BYTES,
    PROCESS_DECODE_BYTES,
    Chapter2Source,
    Decoded,
    IngestError,
    Pending,
    Prepared,
    append_line,
    decode_and_prepare,
    decode_request,
    lower_priority,
    with_details,
)
from chapterx.viewer.otlp_chapterx import ChapterxReceiver
from chapterx.viewer.settings import ViewerSettings, is_loopback

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_STATIC_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg|ico|html)$")
_CONTENT_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "ico": "image/x-icon",
    "html": "text/html; charset=utf-8",
}
GZIP_MIN_BYTES = 1024
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
REFRESH_INTERVAL_S = 1.0
PUSH_CHUNK = 50  # chapter2 entries per store transaction (reads run between two)
# A chapter2 push transaction does not start while a read is on the store's thread, for at most
# this long: on a busy 2-core box the two competed for the CPU, the GIL and SQLite's pages.
READ_FIRST_MAX_S = 0.05
INITIAL_LOAD_WAIT_S = 1.0

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

BODY_KINDS = {
    "request": "Request body not found",
    "response": "Response body not found",
    "membrane-request": "Membrane request body not found",
    "membrane-response": "Membrane response body not found",
}
READ_ROUTES = {"bots", "channels", "traces", "search", "trace", "fleet", *BODY_KINDS}
FLEET_ROUTES = ("bots", "hourly", "daily", "failures")


class Store(Protocol):
    """What the viewer needs from `chapterx.trace.store.TraceStore`."""

    def refresh(self) -> Any: ...
    def bots(self) -> Any: ...
    def channels(self) -> Any: ...
    def list_traces(self, **kwargs: Any) -> dict[str, Any]: ...
    def search(self, query: str, **kwargs: Any) -> dict[str, Any]: ...
    def get_trace(self, trace_id: str) -> dict[str, Any] | None: ...
    def body_path(self, kind: str, ref: str) -> Path | None: ...
    def index_progress(self) -> Any: ...
    def query(self, sql: str, params: Any = ()) -> list[Any]: ...
    def add_external(self, entries: Any) -> Any: ...
    def start_background(self) -> None: ...
    def remove_external(self, trace_ids: Any) -> Any: ...
    def external_ids(self) -> Any: ...


class ApiError(Exception):
    """An expected client error: becomes `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(request: web.Request, data: Any, status: int = 200) -> web.Response:
    """Compact JSON; gzip when asked for and worth it (with `Vary`), never for errors."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if (
        status < 400
        and len(body) > GZIP_MIN_BYTES
        and "gzip" in request.headers.get("Accept-Encoding", "").lower()
    ):
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def error_response(request: web.Request, status: int, message: str) -> web.Response:
    resp = json_response(request, {"error": message}, status)
    if status == 405:
        resp.headers["Allow"] = "GET, HEAD"
    return resp


class Viewer:
    """State shared by the handlers: settings, store, chapter2 source, the store's worker thread."""

    def __init__(self, settings: ViewerSettings, store: Store, chapter2: Chapter2Source | None) -> None:
        self.settings = settings
        self.store = store
        self.chapter2 = chapter2
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trace-store")
        # chapter2 rows are written on their own thread (and the store's own connection for them):
        # a read never queues behind a push transaction or the WAL checkpoint its commit runs
        self.write_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trace-store-write")
        # chapter2 parsing and grouping run here, never on the store's thread (readers) or the loop
        self.chapter2_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chapter2")
        # A read's check for appended chapter2 files gets its own thread, so it never queues behind an
        # ingest's grouping on the threads above (those run for seconds on a file-sized post)
        self.refresh_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chapter2-refresh")
        self._refreshing: asyncio.Future[list[dict[str, Any]]] | None = None
        self._reading = 0  # store reads queued or running (changed on the loop thread only)
        self.decoder: ProcessPoolExecutor | None = None  # big OTLP bodies, started on first use
        self.initial_load: asyncio.Task[None] | None = None
        try:
            store.start_background()  # ingestion in the store's worker process: a catch-up never stalls a request
        except Exception:  # a store that cannot: it catches up inline, as before
            log.warning("trace store: no background ingestion", exc_info=True)
        self.roots = [p for p in settings.logs_dirs]
        self.limiter = security.LoginLimiter()
        self.allowed_hosts = {settings.host.strip("[]").lower(), "localhost"}
        self._last_refresh = 0.0
        self._reconciled = False
        self.fleet_rollup = fleet.Rollup(store)
        self.warm_task: asyncio.Task[None] | None = None
        self.chapterx_receiver = ChapterxReceiver(settings.logs_dirs[0], exists=self._indexed)

    def _indexed(self, trace_id: str) -> bool:
        """Is this trace id in the index already (an index lookup; no folder listing)?"""
        return bool(self.store.query("SELECT 1 FROM traces WHERE trace_id = ? LIMIT 1", (trace_id,)))

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A store read on the store's thread; chapter2 writes wait for it (`_read_first`)."""
        loop = asyncio.get_running_loop()
        self._reading += 1
        try:
            return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        finally:
            self._reading -= 1

    def _read_first(self) -> None:
        """On the writer thread, before a push transaction: let the reads in flight finish first
        (at most READ_FIRST_MAX_S, so a steady stream of reads cannot hold an ingest up)."""
        deadline = time.monotonic() + READ_FIRST_MAX_S
        while self._reading and time.monotonic() < deadline:
            time.sleep(0.001)

    def _push_sync(self, changed: list[dict[str, Any]]) -> None:
        """Store side of a chapter2 update (runs on the writer thread): add, then forget removed."""
        self._read_first()
        if changed:
            self.store.add_external(changed)
        if self.chapter2 is not None and not self._reconciled:
            # the index is persisted: replies whose file went while the viewer was stopped
            self._reconciled = True
            live = {e["traceId"] for e in self.chapter2.entries()}
            try:
                stale = set(self.store.external_ids()) - live
            except Exception:  # housekeeping only: never keep the viewer from starting
                log.warning("cannot list the indexed chapter2 replies; replies of files deleted "
                            "while the viewer was stopped stay listed", exc_info=True)
                stale = set()
            self.chapter2.removed.extend(sorted(stale))
        if self.chapter2 is not None and self.chapter2.removed:
            gone = self.chapter2.removed[:]  # a chapter2 thread may append meanwhile: keep those
            self.store.remove_external(gone)
            del self.chapter2.removed[:len(gone)]

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a store write on the writer thread (reads go on, on the store's thread)."""
        return await asyncio.get_running_loop().run_in_executor(self.write_executor, fn, *args)

    def _push_due(self, changed: list[dict[str, Any]]) -> bool:
        """Anything for `_push_sync` to do (a read with nothing new does not queue a write)?"""
        return bool(changed) or (self.chapter2 is not None and (not self._reconciled or bool(self.chapter2.removed)))

    async def push(self, changed: list[dict[str, Any]]) -> None:
        """Hand changed chapter2 entries to the store in small transactions, so reads interleave."""
        if not self._push_due(changed):
            return
        for i in range(0, max(len(changed), 1), PUSH_CHUNK):
            await self.write(self._push_sync, changed[i:i + PUSH_CHUNK])

    async def refresh(self) -> None:
        """Before a read: pick up appended chapter2 files. Never waits for an ingest in progress
        (the source's lock is not blocking for refreshes) and at most a moment for the first load."""
        if self.initial_load is not None and not self.initial_load.done():
            # the first load runs in the background; wait a little for small deployments
            await asyncio.wait({self.initial_load}, timeout=INITIAL_LOAD_WAIT_S)
            return
        if self.chapter2 is not None:
            now = time.monotonic()
            if self._refreshing is not None and not self._refreshing.done():
                return  # another read is checking: answer from what is indexed now
            if now - self._last_refresh >= REFRESH_INTERVAL_S:
                self._last_refresh = now
                loop = asyncio.get_running_loop()
                self._refreshing = loop.run_in_executor(self.refresh_executor, self.chapter2.refresh)
                changed = await self._refreshing
                await self.push(changed)

    async def load(self) -> None:
        """The first (full) read of the chapter2 folders, off the loop and off the store's thread."""
        source = self.chapter2
        if source is None:
            return
        loop = asyncio.get_running_loop()
        self._last_refresh = time.monotonic()
        changed = await loop.run_in_executor(self.chapter2_executor, lambda: source.refresh(force=True))
        await self.push(changed)

    async def decode(self, body: bytes, content_type: str, content_encoding: str) -> Decoded:
        """Decode an OTLP body: small ones on a chapter2 thread, big ones in a worker process."""
        loop = asyncio.get_running_loop()
        if len(body) < PROCESS_DECODE_BYTES:
            return await loop.run_in_executor(self.chapter2_executor, decode_request, body, content_type,
                                              content_encoding)
        if self.decoder is None:
            # one task per worker: the worker's peak memory (a 32 MB JSON body is ~700 MB of
            # Python objects) goes back to the system when it exits, and the viewer never holds it
            self.decoder = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                               max_tasks_per_child=1, initializer=lower_priority)
        return await loop.run_in_executor(self.decoder, decode_and_prepare, body, content_type, content_encoding)

    async def ingest(self, decoded: Decoded) -> None:
        """Append the request line and group its spans (no file re-read), then hand the changed
        replies to the store a batch at a time (details built, or unpickled, per batch)."""
        chapter2 = self.chapter2
        folder = self.settings.otlp_ingest_dir

        def group() -> tuple[list[Pending], Prepared | None]:
            if chapter2 is None:
                append_line(folder, decoded.line)
                return [], None
            # No collector passes over the objects being built: the worker's entries and the
            # spans are ~1M objects a file-sized post that live on, so a collection then walks them
            # all with every thread stopped (a full one, triggered while the entries were being
            # unpickled, paused reads 50-140 ms once a post). They then move to the permanent
            # generation, so later full passes skip them.
            gc.disable()
            try:
                prepared = decoded.prepared() if decoded.entry_chunks else None
                decoded.entry_chunks = []
                with chapter2.ingesting():  # a read's refresh never picks up this line half way
                    path, start, end = append_line(folder, decoded.line)
                    decoded.line = b""  # written: let it go
                    spans = decoded.spans()
                    decoded.span_chunks = []
                    return chapter2.add_ingested(path, start, end, spans, prepared), prepared
            finally:
                gc.freeze()
                gc.enable()

        loop = asyncio.get_running_loop()
        pending, prepared = await loop.run_in_executor(self.chapter2_executor, group)
        for i in range(0, max(len(pending), 1), PUSH_CHUNK):
            batch = await loop.run_in_executor(self.chapter2_executor, with_details,
                                               pending[i:i + PUSH_CHUNK], prepared)
            await self.write(self._push_sync, batch)

    def close(self) -> None:
        self.chapter2_executor.shutdown(wait=True, cancel_futures=True)
        self.write_executor.shutdown(wait=True, cancel_futures=True)
        self.refresh_executor.shutdown(wait=True, cancel_futures=True)
        if self.decoder is not None:
            self.decoder.shutdown(wait=True, cancel_futures=True)

    @property
    def retention_floor(self) -> datetime | None:
        days = self.settings.retention_days
        return datetime.now(UTC) - timedelta(days=days) if days > 0 else None


# ---------------------------------------------------------------------------------------- middleware


def _is_authenticated(request: web.Request, viewer: Viewer, *, allow_cookie: bool = True) -> bool:
    token = viewer.settings.auth_token
    if not token:
        return True
    given = security.token_from_header(request.headers.get("Authorization"))
    if given is not None and security.token_matches(given, token):
        return True
    if allow_cookie:
        return security.session_valid(request.cookies.get(security.SESSION_COOKIE), token)
    return False


def _client(request: web.Request, viewer: Viewer) -> str:
    return security.client_address(request.remote, request.headers.get("X-Forwarded-For"),
                                   viewer.settings.trusted_proxies)


def _require_auth(request: web.Request, viewer: Viewer, *, allow_cookie: bool = True) -> None:
    """401 without valid credentials; 429 for a client that guessed wrong too often (every auth path)."""
    if not viewer.settings.auth_token:
        return
    who = _client(request, viewer)
    if viewer.limiter.blocked(who):
        raise ApiError(429, "Too many failed attempts; try again in a minute")
    if _is_authenticated(request, viewer, allow_cookie=allow_cookie):
        return
    if request.headers.get("Authorization") or (allow_cookie and request.cookies.get(security.SESSION_COOKIE)):
        viewer.limiter.failed(who)  # a wrong guess, not a browser that has not logged in yet
    raise ApiError(401, "Unauthorized")


@web.middleware
async def guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Security headers on every response; expected errors as JSON; no exception text ever."""
    try:
        _check_host(request)
        resp = await handler(request)
    except ApiError as exc:
        resp = error_response(request, exc.status, exc.message)
    except web.HTTPException as exc:
        resp = error_response(request, exc.status, exc.reason or "Error") if exc.status >= 400 else exc
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("viewer: unhandled error on %s %s", request.method, request.path)
        resp = error_response(request, 500, "Internal server error")
    for key, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(key, value)
    return resp


def _check_host(request: web.Request) -> None:
    """Without a token, only answer requests addressed to a loopback name (DNS-rebinding guard).

    A web page cannot read another origin's responses, but a hostile domain that re-resolves to
    127.0.0.1 becomes same-origin; its requests still carry its own name in `Host`, so refuse those.
    """
    viewer = _viewer(request)
    if viewer.settings.auth_token or viewer.settings.insecure:
        return  # --insecure: the operator chose to serve any name without a token
    host = (request.host or "").strip().lower()
    name = (
        host[1:].split("]", 1)[0]
        if host.startswith("[")
        else host.rsplit(":", 1)[0]
        if host.count(":") == 1
        else host
    )
    if name in viewer.allowed_hosts or is_loopback(name):
        return
    raise ApiError(403, "Host not allowed: set AUTH_TOKEN to serve other host names")


# ------------------------------------------------------------------------------------------ handlers


def _viewer(request: web.Request) -> Viewer:
    v: Viewer = request.app[VIEWER_KEY]
    return v


async def health(request: web.Request) -> web.Response:
    """Liveness for load balancers and the UI; says whether a login is needed, nothing more."""
    return json_response(
        request, {"status": "ok", "authRequired": bool(_viewer(request).settings.auth_token)}
    )


async def login(request: web.Request) -> web.Response:
    viewer = _viewer(request)
    token = viewer.settings.auth_token
    if not token:
        return json_response(request, {"ok": True, "authRequired": False})
    who = _client(request, viewer)
    if viewer.limiter.blocked(who):
        raise ApiError(429, "Too many failed attempts; try again in a minute")
    # JSON only: a cross-site HTML form cannot send it, so no login CSRF.
    if request.content_type != "application/json":
        raise ApiError(415, "Send the token as JSON")
    try:
        data = await request.json()
    except (ValueError, RecursionError):
        raise ApiError(400, "Invalid JSON") from None
    given = data.get("token") if isinstance(data, dict) else None
    if not isinstance(given, str) or not security.token_matches(given, token):
        viewer.limiter.failed(who)
        raise ApiError(401, "Unauthorized")
    viewer.limiter.succeeded(who)
    resp = json_response(request, {"ok": True, "authRequired": True})
    resp.set_cookie(
        security.SESSION_COOKIE,
        security.make_session(token),
        max_age=security.SESSION_TTL_S,
        httponly=True,
        samesite="Strict",
        secure=request.secure or request.headers.get("X-Forwarded-Proto", "") == "https",
        path="/",
    )
    return resp


async def logout(request: web.Request) -> web.Response:
    resp = json_response(request, {"ok": True})
    resp.del_cookie(security.SESSION_COOKIE, path="/")
    return resp


async def api(request: web.Request) -> web.StreamResponse:
    """All `/api/*` routes: auth first (as upstream), then method, then strict path parsing."""
    viewer = _viewer(request)
    _require_auth(request, viewer)
    raw = request.raw_path.split("?", 1)[0]
    segments = raw.split("/")  # ['', 'api', name, arg?]
    if _suspicious_path("/".join(segments[:3])) or any(s in (".", "..") for s in segments):
        raise ApiError(400, "Invalid path")
    name = unquote(segments[2]) if len(segments) > 2 else ""
    if name not in READ_ROUTES:
        raise ApiError(404, "Not found")
    if request.method not in ("GET", "HEAD"):
        raise ApiError(405, "Method not allowed")
    if name == "fleet":
        if len(segments) != 4 or segments[3] not in FLEET_ROUTES:
            raise ApiError(404, "Not found")
        return await fleet_route(request, viewer, segments[3])
    if name in ("trace", *BODY_KINDS):
        if len(segments) != 4:
            raise ApiError(400, "Invalid id" if name == "trace" else "Invalid body reference")
        arg = _decode_segment(segments[3])
        if name == "trace":
            return await trace_detail(request, viewer, arg)
        return await body(request, viewer, name, arg)
    if len(segments) != 3:
        raise ApiError(404, "Not found")
    if name == "bots":
        return await bots(request, viewer)
    if name == "channels":
        return await channels(request, viewer)
    if name == "traces":
        return await traces(request, viewer)
    return await search(request, viewer)


def _decode_segment(seg: str) -> str:
    """Percent-decode once; anything still carrying `%`, a separator or a NUL is rejected by the regexes."""
    try:
        return unquote(seg, errors="strict")
    except UnicodeDecodeError:
        return "\x00"


async def _listing(request: web.Request, viewer: Viewer, fetch: Callable[[], Any], key: str) -> web.Response:
    """A store listing as `{key: [...]}` (the store may already answer in that shape)."""
    await viewer.refresh()
    result = await viewer.run(fetch)
    if isinstance(result, list):
        result = {key: result}
    return json_response(request, result)


async def bots(request: web.Request, viewer: Viewer) -> web.Response:
    return await _listing(request, viewer, viewer.store.bots, "bots")


async def channels(request: web.Request, viewer: Viewer) -> web.Response:
    return await _listing(request, viewer, viewer.store.channels, "channels")


def _int_param(request: web.Request, key: str, default: int, *, minimum: int, maximum: int | None) -> int:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d{1,9}", raw.strip()):
        raise ApiError(400, f"Invalid {key}: must be a non-negative integer")
    value = int(raw)
    if value < minimum:
        raise ApiError(400, f"Invalid {key}: must be at least {minimum}")
    return min(value, maximum) if maximum is not None else value


_DURATION_RE = re.compile(r"^(\d{1,6})\s*([smhdw])$")


def parse_time(raw: str | None, key: str) -> datetime | None:
    """ISO-8601, epoch milliseconds, or a relative age like `24h` / `7d` (meaning that long ago).
    A date outside what the calendar can hold (`999999w`, year 0) is a 400, not a 500."""
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    bad = ApiError(400, f"Invalid {key}: use ISO-8601, epoch milliseconds, or an age like 24h")
    try:
        m = _DURATION_RE.match(raw)
        if m:
            unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
            dt = datetime.now(UTC) - timedelta(**{unit: int(m.group(1))})
        elif re.fullmatch(r"\d{10,16}", raw):
            dt = datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
        else:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        _iso(dt)  # must survive the conversion to UTC text the store receives
    except (ValueError, OverflowError, OSError):
        raise bad from None
    return dt


def _iso(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


async def traces(request: web.Request, viewer: Viewer) -> web.Response:
    q = request.query
    limit = _int_param(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = _int_param(request, "offset", 0, minimum=0, maximum=None)
    failed_raw = q.get("failed", "")
    if failed_raw not in ("", "true", "false", "1", "0"):
        raise ApiError(400, "Invalid failed: use true or false")
    framework = q.get("framework") or None
    if framework is not None and framework not in ("chapterx", "chapter2"):
        raise ApiError(400, "Invalid framework: use chapterx or chapter2")
    since = parse_time(q.get("since"), "since")
    until = parse_time(q.get("until"), "until")
    floor = viewer.retention_floor
    asked_since = since
    if floor is not None and (since is None or since < floor):
        since = floor
    else:
        floor = None  # the filter already starts inside the retention window: nothing hidden
    text = q.get("text") or q.get("q_text") or None
    if text is not None and len(text) > 500:
        raise ApiError(400, "Invalid text: at most 500 characters")
    kwargs = {
        "bot": q.get("bot") or None,
        "channel": q.get("channel") or None,
        "failed": True if failed_raw in ("true", "1") else None,
        "since": _iso(since) if since else None,
        "until": _iso(until) if until else None,
        "text": text,
        "framework": framework,
        "limit": limit,
        "offset": offset,
    }
    await viewer.refresh()
    store = viewer.store

    def listing() -> dict[str, Any]:
        """The page and, under a retention floor, what it hides: one turn on the store's thread, so
        a read queues once behind an ingest's writes, not twice."""
        result = store.list_traces(**kwargs)
        if floor is not None:
            result = dict(result)
            result["hiddenByRetention"] = _hidden_by_retention(store, kwargs, asked_since, floor, until)
            result["retentionDays"] = viewer.settings.retention_days
        return result

    return json_response(request, await viewer.run(listing))


def _hidden_by_retention(store: Store, kwargs: dict[str, Any], asked_since: datetime | None,
                         floor: datetime, until: datetime | None) -> int:
    """How many traces matching the same filters are older than INDEX_RETENTION_DAYS (so an
    older archive does not look empty without a word)."""
    cut = floor if until is None or until > floor else until
    older = {**kwargs, "since": _iso(asked_since) if asked_since else None, "until": _iso(cut),
             "limit": 1, "offset": 0, "count_only": True}
    return int(store.list_traces(**older).get("total") or 0)


async def fleet_route(request: web.Request, viewer: Viewer, kind: str) -> web.Response:
    """`/api/fleet/{bots,hourly,daily,failures}?range=24h&bot=&framework=&until=`: aggregate queries
    for the fleet page (`chapterx.viewer.fleet`); `until` (ISO or epoch ms) pins the grid's end."""
    q = request.query
    try:
        range_s = fleet.parse_range(q.get("range"))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    framework = q.get("framework") or None
    if framework is not None and framework not in ("chapterx", "chapter2"):
        raise ApiError(400, "Invalid framework: use chapterx or chapter2")
    bot = q.get("bot") or None
    if bot is not None and len(bot) > 200:
        raise ApiError(400, "Invalid bot: at most 200 characters")
    pinned = parse_time(q.get("until"), "until")
    now = pinned.timestamp() if pinned is not None else time.time()
    await viewer.refresh()
    rollup = viewer.fleet_rollup
    if kind == "hourly":
        w = fleet.window(range_s, fleet.HOUR, now)
        data = await viewer.run(fleet.hourly, rollup, w, bot=bot, framework=framework)
    elif kind == "daily":
        w = fleet.window(range_s, fleet.DAY, now)
        data = await viewer.run(fleet.daily, rollup, w, bot=bot, framework=framework)
    elif kind == "bots":
        w = fleet.window(range_s, fleet.HOUR, now)
        data = await viewer.run(fleet.bots, rollup, w, framework=framework)
    else:
        limit = _int_param(request, "limit", 20, minimum=1, maximum=MAX_LIMIT)
        data = await viewer.run(fleet.failures, viewer.store, now - range_s, bot=bot, limit=limit)
    return json_response(request, data)


async def search(request: web.Request, viewer: Viewer) -> web.Response:
    q = request.query.get("q", "").strip()
    if not q:
        raise ApiError(400, "Missing q: a Discord message link or id")
    if len(q) > 500:
        raise ApiError(400, "Invalid q: at most 500 characters")
    limit = _int_param(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = _int_param(request, "offset", 0, minimum=0, maximum=None)
    bot = request.query.get("bot") or None
    kwargs: dict[str, Any] = {"limit": limit, "offset": offset}
    if bot is not None:
        kwargs["bot"] = bot
    await viewer.refresh()
    result = await viewer.run(viewer.store.search, q, **kwargs)
    floor = viewer.retention_floor
    if floor is not None:
        cut = _iso(floor)
        result = dict(result)
        result["results"] = [r for r in result.get("results", []) if str(r.get("timestamp") or "") >= cut]
    return json_response(request, result)


async def trace_detail(request: web.Request, viewer: Viewer, trace_id: str) -> web.Response:
    if not security.valid_trace_id(trace_id):
        raise ApiError(400, "Invalid trace id")
    if viewer.chapter2 is not None:
        await viewer.refresh()
        if trace_id in viewer.chapter2:
            detail = await viewer.run(viewer.chapter2.get, trace_id)
            if detail is not None:
                return json_response(request, detail)
    result = await viewer.run(viewer.store.get_trace, trace_id)
    if result is None:
        raise ApiError(404, "Trace not found")
    return json_response(request, result)


async def body(request: web.Request, viewer: Viewer, kind: str, ref: str) -> web.Response:
    if not security.valid_body_ref(ref):
        raise ApiError(400, "Invalid body reference")
    path = await viewer.run(viewer.store.body_path, kind, ref)
    safe = security.confined(Path(path), viewer.roots) if path is not None else None
    if safe is None:
        raise ApiError(404, BODY_KINDS[kind])
    data = await viewer.run(_read_json, safe)
    return json_response(request, data)


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except ValueError:
            raise ApiError(502, "Body file is not valid JSON") from None


async def ingest(request: web.Request) -> web.Response:
    """OTLP/HTTP trace export: store the spans as the collector's file exporter would."""
    viewer = _viewer(request)
    _require_auth(request, viewer, allow_cookie=False)
    if request.content_length is not None and request.content_length > MAX_INGEST_BYTES:
        raise ApiError(413, "Body too large")
    try:
        raw = await request.read()
    except (RequestPayloadError, ContentEncodingError):
        raise ApiError(400, "body is not valid gzip (or was cut short)") from None
    try:
        decoded = await viewer.decode(
            raw, request.headers.get("Content-Type", ""), request.headers.get("Content-Encoding", "")
        )
    except IngestError as exc:
        raise ApiError(415 if "content type" in str(exc) else 400, str(exc)) from None
    if decoded.chapterx is not None:  # ChapterX spans (our OTel exporter) become ChapterX traces
        _rest, received = await viewer.run(viewer.chapterx_receiver.receive, decoded.chapterx)
        if received.failed:  # nothing is acknowledged that was not stored: the exporter retries
            raise ApiError(503, "Cannot store received traces now (see the viewer log)")
        if received.written:
            await viewer.run(viewer.store.refresh)
    if decoded.count:
        await viewer.ingest(decoded)
    if request.content_type in ("application/x-protobuf", "application/protobuf"):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )
    return json_response(request, {})


@functools.cache
def _static_files() -> dict[str, bytes]:
    """The packaged UI files never change while the viewer runs: read them once, not per request
    (and a name not in the folder never touches the disk)."""
    return {p.name: p.read_bytes() for p in STATIC_DIR.iterdir() if p.is_file()}


def _static_response(name: str) -> web.Response:
    m = _STATIC_NAME_RE.match(name)
    data = _static_files().get(name) if m else None
    if m is None or data is None:
        raise ApiError(404, "Not found")
    return web.Response(
        body=data, headers={"Content-Type": _CONTENT_TYPES[m.group(1)], "Cache-Control": "no-cache"}
    )


async def static(request: web.Request) -> web.Response:
    return _static_response(request.match_info["name"])


async def shell(request: web.Request) -> web.StreamResponse:
    """The UI for `/`, `/trace/<id>` and any other page path (upstream's deep links)."""
    if request.method not in ("GET", "HEAD"):
        raise ApiError(405, "Method not allowed")
    raw = request.raw_path.split("?", 1)[0]
    if raw.startswith("/api/") or raw == "/api":
        return await api(request)
    if _suspicious_path(raw):
        raise ApiError(400, "Invalid path")
    if raw in ("/", "/index.html", "/fleet", "/fleet/"):
        return _static_response("index.html")
    parts = raw.split("/")
    if len(parts) in (3, 4) and parts[1] == "trace" and (len(parts) == 3 or parts[3] == ""):
        if not security.valid_trace_id(_decode_segment(parts[2])):
            raise ApiError(400, "Invalid trace id")
        return _static_response("index.html")
    raise ApiError(404, "Not found")


FLEET_WARM_DELAY_S = 1.0
FLEET_WARM_DAYS = 30


async def warm_fleet(viewer: Viewer) -> None:
    """Fill the fleet page's hourly rollup for the last 30 days, one day per store job, so the
    first fleet view is as fast as the next ones; requests queue between the steps. Waits while
    a first index build runs (its rows would dirty the hours again)."""
    try:
        await asyncio.sleep(FLEET_WARM_DELAY_S)
        while viewer.store.index_progress().building:  # noqa: ASYNC110 - another thread's build; no event to await
            await asyncio.sleep(5.0)
        last = int(time.time() // fleet.HOUR) + 1
        for day in range(FLEET_WARM_DAYS):
            hi = last - day * 24
            await viewer.run(viewer.fleet_rollup.warm, hi - 24, hi)
    except asyncio.CancelledError:
        raise
    except Exception:  # a warm-up only saves time later: never let it take the viewer down
        log.warning("viewer: warming the fleet page's rollup failed", exc_info=True)


def _suspicious_path(raw: str) -> bool:
    """Dot segments or encoded separators have no business in a page URL."""
    low = raw.lower()
    if "%2e" in low or "%2f" in low or "%5c" in low or "\\" in raw or "%00" in low:
        return True
    return any(seg in (".", "..") for seg in raw.split("/"))


VIEWER_KEY: web.AppKey[Viewer] = web.AppKey("viewer", Viewer)


def create_app(
    settings: ViewerSettings, store: Store, chapter2: Chapter2Source | None = None
) -> web.Application:
    """Build the app; the caller owns running it (AppRunner) and closing the store."""
    app = web.Application(middlewares=[guard], client_max_size=MAX_INGEST_BYTES)
    viewer = Viewer(settings, store, chapter2)
    app[VIEWER_KEY] = viewer
    app.router.add_get("/health", health)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_post("/v1/traces", ingest)
    app.router.add_route("*", "/api/{tail:.*}", api)
    app.router.add_route("*", "/api", api)
    app.router.add_get("/static/{name}", static)
    app.router.add_route("*", "/{tail:.*}", shell)

    async def _startup(app: web.Application) -> None:
        # listen at once; chapter2 folders load in the background (readers wait at most a moment)
        viewer.initial_load = asyncio.create_task(viewer.load())
        viewer.warm_task = asyncio.get_running_loop().create_task(warm_fleet(viewer))

    async def _cleanup(app: web.Application) -> None:
        if viewer.warm_task is not None:
            viewer.warm_task.cancel()
        # Closing the store on its own thread checkpoints SQLite's WAL, so the next start does not
        # have to replay it (that replay dominated cold start at a million traces).
        close = getattr(store, "close", None)
        # no chapter2 write in flight while the store closes (queued ones are dropped: shutting down)
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(viewer.write_executor.shutdown, wait=True, cancel_futures=True))
        if callable(close):
            try:
                await viewer.run(close)
            except Exception:  # closing must never turn a clean shutdown into a crash
                log.exception("viewer: closing the trace store failed")
        if viewer.initial_load is not None and not viewer.initial_load.done():
            viewer.initial_load.cancel()
        await asyncio.get_running_loop().run_in_executor(None, viewer.close)
        viewer.executor.shutdown(wait=False, cancel_futures=True)

    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app
