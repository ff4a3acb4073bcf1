"""The bot's REST API (reference §6): health, cached channels, latest messages, users.

Enabled only when `API_BEARER_TOKEN` is set; listens on `API_PORT` (default 3000). Every path but
`/health` needs `Authorization: Bearer <token>` (401 when missing or another scheme, 403 when
wrong; compared in constant time and length, unlike upstream). No CORS headers unless an origin is
configured (`API_CORS_ORIGIN`; upstream sends `*`); it binds 127.0.0.1 unless `API_HOST` says otherwise.
Bodies are validated and capped (`MAX_MESSAGES`): upstream would page a channel's whole history.
The Discord side is reached through an `ApiBackend` so the API runs over discord.py or the
in-memory world alike.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web

from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.discord.port import DiscordPort
from chapterx.viewer.security import LoginLimiter, client_address

DISCORD_EPOCH_MS = 1420070400000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiBackend(Protocol):
    def channels(self) -> list[dict[str, Any]]:
        """Cached text channels: id, name, guildId, guildName, type, isThread, parentId, lastMessageId."""
        ...

    def port_for_channel(self, channel_id: str) -> DiscordPort | None: ...

    async def user_info(self, user_id: str, guild_id: str | None) -> dict[str, Any] | None:
        """id, username, displayName, discriminator, bot, avatarUrl (128 px), roles? (with a guild)."""
        ...

    def config_for(self, guild_id: str) -> ConfigLike:
        """The bot's resolved config for a guild, without channel pins."""
        ...


def snowflake_iso(snowflake: str | None) -> str | None:
    if not snowflake or not snowflake.isdigit():
        return None
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


MAX_MESSAGES = 2000  # messages one export or context build may page through
MAX_CHARACTERS = 10_000_000
_AVATAR_SIZES = {str(1 << n) for n in range(4, 13)}  # 16 ... 4096, what Discord's CDN serves


def token_equal(given: str, expected: str) -> bool:
    """Constant time in content and length: compare fixed-size digests."""
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, b)


def _count(value: Any, cap: int) -> int | None:
    """A positive int up to `cap` (None when absent); ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= cap:
        raise ValueError(f"must be a whole number from 1 to {cap}")
    return value


def create_app(backend: ApiBackend, bearer_token: str, *, cors_origin: str | None = None,
               trusted_proxies: Sequence[str] = ()) -> web.Application:
    cors = {"Access-Control-Allow-Origin": cors_origin, "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type"} if cors_origin else {}

    limiter = LoginLimiter()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=200 if cors else 204, headers=cors)
        if request.path != "/health":
            who = client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted_proxies)
            if limiter.blocked(who):
                return web.json_response({"error": "Too many failed attempts; try again in a minute"}, status=429,
                                         headers=cors)
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return web.json_response({"error": "Missing or invalid authorization header"}, status=401,
                                         headers=cors)
            if not token_equal(header[len("Bearer "):], bearer_token):
                limiter.failed(who)
                return web.json_response({"error": "Invalid bearer token"}, status=403, headers=cors)
        resp = await handler(request)
        resp.headers.update(cors)
        return resp

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")})

    async def channels(request: web.Request) -> web.Response:
        since_text = request.query.get("since")
        since = _parse_iso(since_text) if since_text else None
        if since is None:
            return web.json_response({"error": "since must be an ISO 8601 timestamp"}, status=400)
        guild_filter = request.query.get("guildId")
        out = []
        for ch in backend.channels():
            if guild_filter and ch.get("guildId") != guild_filter:
                continue
            last = snowflake_iso(ch.get("lastMessageId"))
            if last is None or (_parse_iso(last) or since) < since:
                continue
            out.append({**ch, "lastActivityAt": last})
        out.sort(key=lambda c: int(c.get("lastMessageId") or 0), reverse=True)
        return web.json_response({"channels": out, "metadata": {
            "count": len(out), "guildCount": len({c.get("guildId") for c in out}),
            "guildIdFilter": guild_filter, "since": since_text}})

    async def latest(request: web.Request) -> web.Response:
        from chapterx.context.fetch import fetch_context

        cid = request.match_info["channel_id"]
        if not cid.isdigit():
            return web.json_response({"error": "channel id must be numeric"}, status=400)
        port = backend.port_for_channel(cid)
        if port is None:
            return web.json_response({"error": "Channel not found"}, status=404)
        try:
            count = max(1, min(500, int(request.query.get("messages", "50"))))
            max_images = max(0, int(request.query.get("maxImages", "50")))
        except ValueError:
            return web.json_response({"error": "messages and maxImages must be numbers"}, status=400)
        fetched = await fetch_context(port, cid, depth=count, max_images=max_images)
        msgs = [export_message(m, fetched.images) for m in fetched.messages]
        return web.json_response({"messages": msgs, "metadata": {
            "channelId": cid, "firstMessageId": msgs[0]["id"] if msgs else None,
            "lastMessageId": msgs[-1]["id"] if msgs else None, "totalCount": len(msgs),
            "requestedCount": count, "ignoreHistory": request.query.get("ignoreHistory", "true") != "false"}})

    async def user(request: web.Request) -> web.Response:
        info = await backend.user_info(request.match_info["user_id"], request.query.get("guildId"))
        if info is None:
            return web.json_response({"error": "User not found"}, status=404)
        return web.json_response(info)

    async def avatar(request: web.Request) -> web.Response:
        info = await backend.user_info(request.match_info["user_id"], None)
        if info is None:
            return web.json_response({"error": "User not found"}, status=404)
        size = request.query.get("size", "128")
        if size not in _AVATAR_SIZES:
            return web.json_response({"error": "size must be a power of two from 16 to 4096"}, status=400)
        url = str(info.get("avatarUrl") or "")
        return web.json_response({"avatarUrl": url.replace("size=128", f"size={size}")})

    def problem(status: int, error: str, message: str, details: Any = None) -> web.Response:
        return web.json_response({"error": error, "message": message, "details": details}, status=status)

    async def export(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            return problem(400, "Bad Request", "the body must be JSON")
        if not isinstance(body, dict) or not isinstance(body.get("last"), str):
            return problem(400, "Bad Request", "`last` (a Discord message link) is required")
        m = _LINK.search(body["last"])
        if m is None:
            return problem(400, "Bad Request", "`last` is not a Discord message link", body["last"])
        guild_id, channel_id, last_id = m.groups()
        first_id = None
        if body.get("first"):
            fm = _LINK.search(str(body["first"]))
            if fm is None:
                return problem(400, "Bad Request", "`first` is not a Discord message link", body["first"])
            first_id = fm.group(3)
        window = body.get("recencyWindow") or {"messages": 50}
        if not isinstance(window, dict):
            return problem(400, "Bad Request", "`recencyWindow` must be an object")
        try:
            max_msgs = _count(window.get("messages"), MAX_MESSAGES)
            max_chars = _count(window.get("characters"), MAX_CHARACTERS)
        except ValueError as exc:
            return problem(400, "Bad Request", f"`recencyWindow`: messages and characters {exc}")
        port = backend.port_for_channel(channel_id)
        if port is None:
            return problem(404, "Not Found", "channel not found or not visible to the bot", channel_id)
        try:
            msgs = await _messages_up_to(port, channel_id, last_id, first_id,
                                         min(max_msgs + 100, MAX_MESSAGES) if max_msgs else 1000)
        except LookupError as exc:
            return problem(404, "Not Found", str(exc))
        except PermissionError as exc:
            return problem(403, "Forbidden", str(exc))
        total = len(msgs)
        if max_msgs:
            msgs = msgs[-int(max_msgs):]
        if max_chars:
            kept: list[Any] = []
            used = 0
            for msg in reversed(msgs):
                used += len(msg.content)
                if used > int(max_chars) and kept:
                    break
                kept.insert(0, msg)
            msgs = kept
        out = _merge_bot_runs([_port_export(port, msg) for msg in msgs])
        return web.json_response({"messages": out, "metadata": {
            "channelId": channel_id, "guildId": guild_id, "firstMessageId": out[0]["id"] if out else None,
            "lastMessageId": out[-1]["id"] if out else None, "totalCount": len(out), "truncated": len(msgs) < total}})

    async def context_build(request: web.Request) -> web.Response:
        from chapterx.agent.runtime import unlimited_context

        try:
            body = await request.json()
        except (ValueError, RecursionError):
            return problem(400, "Bad Request", "the body must be JSON")
        if not isinstance(body, dict):
            return problem(400, "Bad Request", "the body must be a JSON object")
        try:
            requested = _count(body.get("messages"), MAX_MESSAGES)
        except ValueError as exc:
            return problem(400, "Bad Request", f"`messages` {exc}")
        target = str(body.get("channel") or "")
        m = _CHANNEL.search(target)
        channel_id = m.group(1) if m else target
        if not channel_id.isdigit():
            return problem(400, "Bad Request", "`channel` must be a channel id or link")
        port = backend.port_for_channel(channel_id)
        if port is None:
            return problem(404, "Not Found", "channel not found or not visible to the bot", channel_id)
        cfg = as_bot_config(backend.config_for(port.guild_id))
        configured = int(cfg.recency_window_messages or 200)
        limit = requested or min(configured, MAX_MESSAGES)
        built, fetched_count = await unlimited_context(port, cfg, channel_id, limit)
        msgs = [x for x in built.messages if x.content]
        return web.json_response({"messages": [
            {"participant": x.participant, "content": x.text(), "hasImages": x.has_images(),
             "imageCount": sum(1 for b in x.content if b.get("type") == "image")} for x in msgs],
            "metadata": {"botName": cfg.name, "channelId": channel_id, "messageCount": len(msgs),
                         "discordMessagesFetched": fetched_count, "configuredLimit": configured,
                         "requestedLimit": requested, "model": cfg.continuation_model,
                         "mode": cfg.mode, "systemPrompt": (cfg.system_prompt or "")[:200],
                         "contextPrefix": (cfg.context_prefix or "")[:200],
                         "stopSequences": built.stop_sequences}})

    app = web.Application(middlewares=[auth])
    app.router.add_post("/api/messages/export", export)
    app.router.add_post("/api/context/build", context_build)
    app.router.add_get("/health", health)
    app.router.add_get("/api/channels", channels)
    app.router.add_get("/api/channels/{channel_id}/latest", latest)
    app.router.add_get("/api/users/{user_id}", user)
    app.router.add_get("/api/users/{user_id}/avatar", avatar)
    return app


def export_message(m: Any, images: dict[str, Any]) -> dict[str, Any]:
    """One fetched message for API clients (cached images inline as base64)."""
    import base64

    atts = []
    for a in m.attachments:
        item: dict[str, Any] = {"url": a.url, "contentType": a.content_type, "filename": a.filename, "size": a.size}
        img = images.get(a.url)
        data = getattr(img, "data", None)
        if isinstance(data, bytes | bytearray):
            item["base64Data"] = base64.b64encode(bytes(data)).decode("ascii")
            item["mediaType"] = getattr(img, "media_type", None) or a.content_type
        atts.append(item)
    out: dict[str, Any] = {
        "id": m.id,
        "author": {"id": m.author.id, "username": m.author.username, "displayName": m.author.display_name,
                   "bot": m.author.bot},
        "content": m.content, "timestamp": m.timestamp, "attachments": atts,
    }
    if getattr(m, "referenced_message", None):
        out["replyTo"] = m.referenced_message
    return out


_LINK = re.compile(r"/channels/(\d+|@me)/(\d+)/(\d+)")
_CHANNEL = re.compile(r"/channels/(?:\d+|@me)/(\d+)")


async def _messages_up_to(port: DiscordPort, channel_id: str, last_id: str, first_id: str | None,
                          depth: int) -> list[Any]:
    """`last` and up to `depth - 1` older messages (stopping at `first`), oldest first."""
    last = await port.fetch_message(channel_id, last_id)
    if last is None:
        raise LookupError(f"message {last_id} not found")
    out = [last]
    before = last_id
    while len(out) < depth:
        page = await port.fetch_messages(channel_id, before=before, limit=min(100, depth - len(out)))
        if not page:
            break
        for msg in page:
            out.append(msg)
            if first_id is not None and msg.id == first_id:
                return list(reversed(out))
        before = page[-1].id
    return list(reversed(out))


def _port_export(port: DiscordPort, m: Any) -> dict[str, Any]:
    user = port.user(m.author_id) if m.author_id else None
    member = port.member(m.author_id) if m.author_id else None
    out: dict[str, Any] = {
        "id": m.id,
        "author": {"id": m.author_id, "username": user.username if user else None,
                   "displayName": (member.nickname if member and member.nickname else None)
                   or (user.global_name or user.username if user else None), "bot": bool(user and user.bot)},
        "content": m.content, "timestamp": m.timestamp,
        "attachments": [{"url": a.url, "contentType": a.content_type, "filename": a.filename, "size": a.size}
                        for a in m.attachments],
    }
    if m.reply_to:
        out["replyTo"] = m.reply_to
    return out


def _merge_bot_runs(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive messages of one bot become one (text joined by newlines, the last id kept)."""
    out: list[dict[str, Any]] = []
    for m in msgs:
        prev = out[-1] if out else None
        if prev is not None and m["author"]["bot"] and prev["author"]["id"] == m["author"]["id"]:
            merged = {**m, "content": prev["content"] + "\n" + m["content"],
                      "attachments": prev["attachments"] + m["attachments"]}
            out[-1] = merged
        else:
            out.append(m)
    return out


async def start_api(backend: ApiBackend, bearer_token: str, port: int, host: str = "127.0.0.1",
                    cors_origin: str | None = None, trusted_proxies: Sequence[str] = ()) -> web.AppRunner:
    """Start listening; the caller cleans the runner up on shutdown."""
    runner = web.AppRunner(create_app(backend, bearer_token, cors_origin=cors_origin,
                                      trusted_proxies=trusted_proxies))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
