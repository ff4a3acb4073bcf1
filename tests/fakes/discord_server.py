"""A small fake Discord (REST v10 + gateway websocket) on 127.0.0.1 for end-to-end tests.

It serves what discord.py needs to log in, connect and act: `/users/@me`, `/gateway/bot`, the
gateway handshake (HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats), channel messages
(list/get/post incl. multipart files and reply references), pins, reactions, deletes, typing,
members, member search, direct messages (dispatched only to sessions that asked for the DM intent).
Tests post user messages with `user_message(...)` (or `user_dm(...)`), which stores them and
dispatches MESSAGE_CREATE to connected gateway sessions; every bot call is recorded in `actions`
(sends with the `allowed_mentions` the bot asked for and the users the message really pinged).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000
DIRECT_MESSAGES_INTENT = 1 << 12


def _iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).isoformat()


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON with the bare `application/json` type discord.py checks for (no charset suffix)."""
    return web.Response(body=json.dumps(data).encode("utf-8"), status=status, content_type="application/json")


class FakeDiscord:
    """One guild, its channels, users and messages; async context manager."""

    def __init__(self, *, token: str, bot: Mapping[str, Any], guild_id: str = "700000000000000001",
                 guild_name: str = "Test Guild", channels: list[Mapping[str, Any]] | None = None,
                 users: list[Mapping[str, Any]] | None = None, roles: list[Mapping[str, Any]] | None = None,
                 emojis: list[Mapping[str, Any]] | None = None, bot_role_ids: list[str] | None = None,
                 refuse_intents: bool = False, everyone_permissions: str = "0") -> None:
        self.token = token
        self.refuse_intents = refuse_intents  # close IDENTIFY with 4014 (privileged intent not enabled)
        self.bot = {"id": str(bot["id"]), "username": bot["username"], "global_name": bot.get("global_name"),
                    "discriminator": "0", "avatar": None, "bot": True}
        self.guild_id = guild_id
        self.guild_name = guild_name
        self.channels = {str(c["id"]): {"id": str(c["id"]), "name": c.get("name", "general"),
                                        "type": int(c.get("type", 0)), "parent_id": c.get("parent_id"),
                                        "topic": c.get("topic")}
                         for c in channels or [{"id": "710000000000000001", "name": "general"}]}
        self.users: dict[str, dict[str, Any]] = {self.bot["id"]: self.bot}
        for u in users or []:
            self.users[str(u["id"])] = {"id": str(u["id"]), "username": u["username"],
                                        "global_name": u.get("global_name"), "discriminator": "0",
                                        "avatar": None, "bot": bool(u.get("bot", False))}
        self.roles = [{"id": guild_id, "name": "@everyone", "permissions": everyone_permissions, "position": 0, "color": 0,
                       "hoist": False, "managed": False, "mentionable": False, "flags": 0}]
        for i, r in enumerate(roles or [], start=1):
            self.roles.append({"id": str(r["id"]), "name": r["name"], "permissions": "0", "position": i,
                               "color": 0, "hoist": False, "managed": False, "mentionable": True, "flags": 0})
        self.member_roles = {self.bot["id"]: list(bot_role_ids or [])}
        self.emojis = [{"id": str(e["id"]), "name": e["name"], "animated": bool(e.get("animated")), "roles": [],
                        "require_colons": True, "managed": False, "available": True} for e in emojis or []]
        self.messages: dict[str, list[dict[str, Any]]] = {cid: [] for cid in self.channels}
        self.pins: dict[str, list[str]] = {cid: [] for cid in self.channels}
        self.actions: list[dict[str, Any]] = []
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}  # attachment path -> content (served under /attachments/)
        self.identified = asyncio.Event()
        self.identify_intents: list[int] = []
        self.ready_sent_at: float | None = None  # time.monotonic() when READY went out (start-up benchmarks)
        self.pins_delay = 0.0  # seconds before a pins answer (holds the bot's batch loop in tests)
        self.dm_channels: dict[str, str] = {}  # DM channel id -> the human's user id
        self.auth_failures = 0
        self._seq = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_intents: dict[int, int] = {}
        self._next_id = int(time.time() * 1000 - DISCORD_EPOCH_MS) << 22
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        api = "/api/v10"
        r = app.router
        r.add_get(api + "/users/@me", self._me)
        r.add_patch(api + "/users/@me", self._edit_me)
        r.add_get(api + "/users/{uid}", self._user)
        r.add_get(api + "/oauth2/applications/@me", self._application)
        r.add_get(api + "/gateway/bot", self._gateway_bot)
        r.add_get(api + "/gateway", self._gateway_bot)
        r.add_get(api + "/channels/{cid}", self._channel)
        r.add_get(api + "/channels/{cid}/messages/pins", self._pins)
        r.add_get(api + "/channels/{cid}/pins", self._pins_legacy)
        r.add_get(api + "/channels/{cid}/messages", self._history)
        r.add_get(api + "/channels/{cid}/messages/{mid}", self._get_message)
        r.add_post(api + "/channels/{cid}/messages", self._post_message)
        r.add_delete(api + "/channels/{cid}/messages/{mid}", self._delete)
        r.add_put(api + "/channels/{cid}/messages/{mid}/reactions/{emoji}/@me", self._react)
        r.add_post(api + "/channels/{cid}/typing", self._typing)
        r.add_get(api + "/guilds/{gid}/members/search", self._member_search)
        r.add_get(api + "/guilds/{gid}/members/{uid}", self._member)
        r.add_get(api + "/channels/{cid}/webhooks", self._webhooks)
        r.add_post(api + "/channels/{cid}/webhooks", self._create_webhook)
        r.add_post(api + "/webhooks/{wid}/{wtoken}", self._execute_webhook)
        app.router.add_get("/attachments/{cid}/{mid}/{name}", self._attachment)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return self.base_url + "/api/v10"

    # ------------------------------------------------------------------ model helpers
    def new_id(self) -> str:
        self._next_id += 1 << 22
        return str(self._next_id)

    def _member_obj(self, uid: str) -> dict[str, Any]:
        return {"user": self.users[uid], "nick": None, "roles": self.member_roles.get(uid, []),
                "joined_at": "2024-01-01T00:00:00+00:00", "deaf": False, "mute": False, "flags": 0,
                "pending": False, "avatar": None}

    def _mentions(self, content: str, reply_to: dict[str, Any] | None, reply_ping: bool) -> list[dict[str, Any]]:
        ids = re.findall(r"<@!?(\d+)>", content)
        if reply_to is not None and reply_ping:
            ids.append(reply_to["author"]["id"])
        seen: list[str] = []
        for i in ids:
            if i in self.users and i not in seen:
                seen.append(i)
        return [self.users[i] for i in seen]

    def _message(self, cid: str, author_id: str, content: str, *, reply_to: str | None = None,
                 reply_ping: bool = True, attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        ref = self._find(cid, reply_to) if reply_to else None
        msg: dict[str, Any] = {
            "id": self.new_id(), "channel_id": cid, "guild_id": self.guild_id, "author": self.users[author_id],
            "member": {k: v for k, v in self._member_obj(author_id).items() if k != "user"},
            "content": content, "timestamp": _iso(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": self._mentions(content, ref, reply_ping),
            "mention_roles": re.findall(r"<@&(\d+)>", content), "attachments": attachments or [], "embeds": [],
            "pinned": False, "type": 19 if ref is not None else 0, "flags": 0, "components": [],
        }
        if ref is not None:
            msg["message_reference"] = {"type": 0, "message_id": ref["id"], "channel_id": cid,
                                        "guild_id": self.guild_id}
            msg["referenced_message"] = ref
        return msg

    def _find(self, cid: str, mid: str | None) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(cid, []) if m["id"] == mid), None)

    async def _record(self, action: dict[str, Any]) -> None:
        self.actions.append(action)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, kind: str, *, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until `count` actions of `kind` were recorded; returns them."""
        async def ready() -> list[dict[str, Any]]:
            async with self._changed:
                while len([a for a in self.actions if a["type"] == kind]) < count:
                    await self._changed.wait()
            return [a for a in self.actions if a["type"] == kind]

        return await asyncio.wait_for(ready(), timeout)

    async def dispatch(self, event: str, data: Mapping[str, Any], *, dm: bool = False) -> None:
        for ws in list(self._sockets):
            if dm and not (self._socket_intents.get(id(ws), 0) & DIRECT_MESSAGES_INTENT):
                continue
            self._seq += 1
            await ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    # ------------------------------------------------------------------ test-side API
    def _attach(self, msg: dict[str, Any], files: list[Mapping[str, Any]] | None) -> None:
        """Text attachments `{filename, text, content_type?}`, served at `<base>/attachments/...`."""
        for f in files or []:
            path = f"/attachments/{msg['channel_id']}/{msg['id']}/{f['filename']}"
            data = str(f["text"]).encode("utf-8")
            self.files[path] = data
            msg["attachments"].append({"id": self.new_id(), "filename": f["filename"], "size": len(data),
                                       "url": self.base_url + path, "proxy_url": self.base_url + path,
                                       "content_type": f.get("content_type", "text/plain; charset=utf-8")})

    async def user_message(self, channel_id: str, author_id: str, content: str, *, reply_to: str | None = None,
                           reply_ping: bool = True, attachments: list[Mapping[str, Any]] | None = None,
                           ) -> dict[str, Any]:
        """A user posts a message (optionally with text attachments): stored, then MESSAGE_CREATE."""
        msg = self._message(channel_id, author_id, content, reply_to=reply_to, reply_ping=reply_ping)
        self._attach(msg, attachments)
        self.messages[channel_id].append(msg)
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg

    async def bot_message(self, channel_id: str, content: str) -> dict[str, Any]:
        """A message by the bot's own account posted elsewhere (another process, a shard): stored and
        dispatched like any MESSAGE_CREATE."""
        msg = self._message(channel_id, self.bot["id"], content)
        self.messages[channel_id].append(msg)
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg

    async def user_dm(self, author_id: str, content: str) -> dict[str, Any]:
        """A user writes to the bot directly: a DM channel (type 1) is created on first use; the
        MESSAGE_CREATE reaches only sessions that identified with the DIRECT_MESSAGES intent."""
        cid = next((c for c, u in self.dm_channels.items() if u == author_id), None)
        if cid is None:
            cid = self.new_id()
            self.dm_channels[cid] = author_id
            self.channels[cid] = {"id": cid, "name": "", "type": 1, "parent_id": None}
            self.messages[cid] = []
            self.pins[cid] = []
        msg = self._message(cid, author_id, content)
        msg.pop("guild_id", None)
        msg.pop("member", None)
        self.messages[cid].append(msg)
        await self.dispatch("MESSAGE_CREATE", msg, dm=True)
        return msg

    async def user_reaction(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> None:
        """A user adds a (unicode) reaction: counted on the message, then MESSAGE_REACTION_ADD."""
        msg = self._find(channel_id, message_id)
        if msg is None:
            raise KeyError(message_id)
        reactions = msg.setdefault("reactions", [])
        for r in reactions:
            if r["emoji"]["name"] == emoji:
                r["count"] += 1
                break
        else:
            reactions.append({"emoji": {"id": None, "name": emoji}, "count": 1, "me": False,
                              "count_details": {"burst": 0, "normal": 1}, "burst_colors": [], "me_burst": False})
        await self.dispatch("MESSAGE_REACTION_ADD", {
            "user_id": user_id, "channel_id": channel_id, "message_id": message_id, "guild_id": self.guild_id,
            "emoji": {"id": None, "name": emoji}, "member": self._member_obj(user_id),
            "message_author_id": msg["author"]["id"], "burst": False, "type": 0})

    async def pin_message(self, channel_id: str, message_id: str) -> None:
        """A user pins an existing message: MESSAGE_UPDATE (pinned) and CHANNEL_PINS_UPDATE, as Discord sends."""
        msg = self._find(channel_id, message_id)
        if msg is None:
            raise KeyError(message_id)
        msg["pinned"] = True
        self.pins[channel_id].append(message_id)
        await self.dispatch("MESSAGE_UPDATE", msg)
        await self.dispatch("CHANNEL_PINS_UPDATE", {"guild_id": self.guild_id, "channel_id": channel_id,
                                                    "last_pin_timestamp": _iso()})

    def pin(self, channel_id: str, author_id: str, content: str,
            attachments: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """A pinned message that already exists (no event), optionally with text attachments."""
        msg = self._message(channel_id, author_id, content)
        self._attach(msg, attachments)
        msg["pinned"] = True
        self.messages[channel_id].append(msg)
        self.pins[channel_id].append(msg["id"])
        return msg

    def post(self, channel_id: str, author_id: str, content: str) -> dict[str, Any]:
        """A message that already exists in a channel's history (no event)."""
        msg = self._message(channel_id, author_id, content)
        self.messages[channel_id].append(msg)
        return msg

    async def _attachment(self, request: web.Request) -> web.Response:
        data = self.files.get(request.path)
        return web.Response(body=data, content_type="text/plain") if data is not None else web.Response(status=404)

    # ------------------------------------------------------------------ auth
    def _authorized(self, request: web.Request) -> bool:
        ok = request.headers.get("Authorization") == f"Bot {self.token}"
        if not ok:
            self.auth_failures += 1
        return ok

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return _json({"code": code, "message": message}, status=status)

    # ------------------------------------------------------------------ REST
    async def _me(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized")
        return _json(self.bot)

    async def _edit_me(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized")
        payload = await request.json()
        if payload.get("avatar"):
            self.bot["avatar"] = "a" * 32
            await self._record({"type": "avatar", "data_uri_prefix": str(payload["avatar"])[:22]})
        return _json(self.bot)

    async def _application(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized")
        return _json({"id": self.bot["id"], "name": self.bot["username"], "icon": None, "description": "",
                      "bot_public": False, "bot_require_code_grant": False, "owner": self.users[self.bot["id"]],
                      "verify_key": "00", "flags": 0, "team": None, "summary": ""})

    async def _user(self, request: web.Request) -> web.Response:
        u = self.users.get(request.match_info["uid"])
        return _json(u) if u else self._error(404, 10013, "Unknown User")

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized")
        ws_url = self.base_url.replace("http://", "ws://") + "/gateway"
        return _json({"url": ws_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}})

    def _channel_obj(self, cid: str) -> dict[str, Any]:
        c = self.channels[cid]
        if c["type"] == 1:
            return {"id": cid, "type": 1, "last_message_id": None,
                    "recipients": [self.users[self.dm_channels[cid]]]}
        out: dict[str, Any] = {"id": cid, "type": c["type"], "name": c["name"], "guild_id": self.guild_id,
                               "position": 0, "permission_overwrites": [], "nsfw": False, "topic": c.get("topic"),
                               "last_message_id": None, "rate_limit_per_user": 0}
        if c.get("parent_id"):
            out["parent_id"] = c["parent_id"]
        return out

    async def _channel(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        return _json(self._channel_obj(cid)) if cid in self.channels else self._error(
            404, 10003, "Unknown Channel")

    async def _history(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized")
        cid = request.match_info["cid"]
        limit = int(request.query.get("limit", "50"))
        msgs = sorted(self.messages.get(cid, []), key=lambda m: int(m["id"]))
        if "before" in request.query:
            msgs = [m for m in msgs if int(m["id"]) < int(request.query["before"])]
        if "after" in request.query:
            msgs = [m for m in msgs if int(m["id"]) > int(request.query["after"])][:limit]
            return _json(list(reversed(msgs)))
        return _json(list(reversed(msgs[-limit:])) if limit > 0 else [])

    async def _get_message(self, request: web.Request) -> web.Response:
        m = self._find(request.match_info["cid"], request.match_info["mid"])
        return _json(m) if m else self._error(404, 10008, "Unknown Message")

    async def _pins(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        if self.pins_delay:
            await asyncio.sleep(self.pins_delay)
        items = [{"pinned_at": _iso(), "message": m} for mid in reversed(self.pins.get(cid, []))
                 if (m := self._find(cid, mid)) is not None]
        await self._record({"type": "pins", "channel_id": cid})
        return _json({"items": items, "has_more": False})

    async def _pins_legacy(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        return _json([m for mid in self.pins.get(cid, []) if (m := self._find(cid, mid))])

    async def _post_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized")
        cid = request.match_info["cid"]
        files: list[dict[str, Any]] = []
        if request.content_type.startswith("multipart/"):
            payload: dict[str, Any] = {}
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    data = await part.read()  # type: ignore[union-attr]
                    files.append({"name": part.filename, "content": data.decode("utf-8", "replace")})  # type: ignore[union-attr]
        else:
            payload = await request.json()
        ref = (payload.get("message_reference") or {}).get("message_id")
        ref = str(ref) if ref is not None else None
        if ref is not None and self._find(cid, ref) is None:
            if (payload.get("message_reference") or {}).get("fail_if_not_exists", True):
                return self._error(400, 50035, "Invalid Form Body: Unknown message")
            ref = None
        allowed = payload.get("allowed_mentions")
        # Discord: without allowed_mentions a reply pings its target; with it, only `replied_user: true`.
        reply_ping = True if allowed is None else bool(allowed.get("replied_user"))
        msg = self._message(cid, self.bot["id"], payload.get("content") or "", reply_to=ref, reply_ping=reply_ping)
        if cid in self.dm_channels:
            msg.pop("guild_id", None)
            msg.pop("member", None)
        msg["attachments"] = [{"id": self.new_id(), "filename": f["name"], "size": len(f["content"]),
                               "url": f"{self.base_url}/attachments/{f['name']}", "proxy_url": "",
                               "content_type": "text/plain"} for f in files]
        self.messages[cid].append(msg)
        action: dict[str, Any] = {"type": "send", "channel_id": cid, "content": msg["content"], "reply_to": ref,
                                  "message_id": msg["id"], "allowed_mentions": allowed,
                                  "pinged": [u["id"] for u in msg["mentions"]]}
        if files:
            action["files"] = files
        await self._record(action)
        await self.dispatch("MESSAGE_CREATE", msg)  # Discord echoes the bot's own messages
        return _json(msg)

    async def _delete(self, request: web.Request) -> web.Response:
        cid, mid = request.match_info["cid"], request.match_info["mid"]
        if self._find(cid, mid) is None:
            return self._error(404, 10008, "Unknown Message")
        self.messages[cid] = [m for m in self.messages[cid] if m["id"] != mid]
        await self._record({"type": "delete", "channel_id": cid, "message_id": mid})
        return web.Response(status=204)

    async def _react(self, request: web.Request) -> web.Response:
        cid, mid = request.match_info["cid"], request.match_info["mid"]
        await self._record({"type": "reaction", "channel_id": cid, "message_id": mid,
                            "emoji": request.match_info["emoji"]})
        return web.Response(status=204)

    async def _typing(self, request: web.Request) -> web.Response:
        await self._record({"type": "typing", "channel_id": request.match_info["cid"]})
        return web.Response(status=204)

    async def _member(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        if uid not in self.users:
            return self._error(404, 10007, "Unknown Member")
        return _json(self._member_obj(uid))

    async def _member_search(self, request: web.Request) -> web.Response:
        """Discord's prefix search on username / nickname / global name."""
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized")
        query = request.query.get("query", "").lower()
        limit = int(request.query.get("limit", "1"))
        await self._record({"type": "member_search", "query": request.query.get("query", "")})
        found = [self._member_obj(uid) for uid, u in self.users.items()
                 if any(n and n.lower().startswith(query) for n in (u["username"], u.get("global_name")))]
        return _json(found[:limit])

    async def _webhooks(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        return _json([w for w in self.webhooks.values() if w["channel_id"] == cid])

    async def _create_webhook(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized")
        cid = request.match_info["cid"]
        payload = await request.json()
        wid = self.new_id()
        hook = {"id": wid, "type": 1, "channel_id": cid, "guild_id": self.guild_id, "name": payload.get("name"),
                "avatar": None, "token": f"whtoken{wid}", "user": self.bot, "application_id": self.bot["id"]}
        self.webhooks[wid] = hook
        await self._record({"type": "webhook_create", "channel_id": cid})
        return _json(hook)

    async def _execute_webhook(self, request: web.Request) -> web.Response:
        hook = self.webhooks.get(request.match_info["wid"])
        if hook is None or hook["token"] != request.match_info["wtoken"]:
            return self._error(404, 10015, "Unknown Webhook")
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            payload: dict[str, Any] = {}
            while (part := await reader.next()) is not None:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
        else:
            payload = await request.json()
        cid = request.query.get("thread_id") or hook["channel_id"]
        author = {"id": hook["id"], "username": payload.get("username") or hook["name"], "discriminator": "0000",
                  "avatar": None, "bot": True, "global_name": None}
        msg = {"id": self.new_id(), "channel_id": cid, "guild_id": self.guild_id, "author": author,
               "webhook_id": hook["id"], "content": payload.get("content") or "", "timestamp": _iso(),
               "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
               "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "type": 0, "flags": 0,
               "components": []}
        self.messages.setdefault(cid, []).append(msg)
        await self._record({"type": "webhook", "channel_id": cid, "content": msg["content"],
                            "username": author["username"], "message_id": msg["id"]})
        await self.dispatch("MESSAGE_CREATE", msg)
        return _json(msg) if request.query.get("wait") in ("1", "true") else web.Response(status=204)

    # ------------------------------------------------------------------ gateway
    def _guild_create(self) -> dict[str, Any]:
        return {
            "id": self.guild_id, "name": self.guild_name, "icon": None, "owner_id": "1", "unavailable": False,
            "large": False, "member_count": len(self.users), "features": [], "roles": self.roles,
            "emojis": self.emojis, "stickers": [], "channels": [self._channel_obj(c) for c in self.channels
                                                                 if self.channels[c]["type"] not in (1, 11)],
            "threads": [self._channel_obj(c) | {"owner_id": self.bot["id"], "message_count": 0, "member_count": 1,
                                                "total_message_sent": 0, "flags": 0, "thread_metadata": {
                "archived": False, "auto_archive_duration": 1440, "archive_timestamp": _iso(), "locked": False}}
                for c in self.channels if self.channels[c]["type"] == 11],
            "members": [self._member_obj(uid) for uid in self.users], "presences": [], "voice_states": [],
            "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
            "joined_at": "2024-01-01T00:00:00+00:00", "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "premium_tier": 0, "preferred_locale": "en-US",
            "system_channel_flags": 0, "nsfw_level": 0,
        }

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}))
        try:
            async for raw in ws:
                if raw.type != WSMsgType.TEXT:
                    continue
                msg = json.loads(raw.data)
                op = msg.get("op")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    if msg["d"].get("token") != self.token:
                        self.auth_failures += 1
                        await ws.close(code=4004, message=b"Authentication failed.")
                        break
                    if self.refuse_intents:
                        await ws.close(code=4014, message=b"Disallowed intent(s).")
                        break
                    self._sockets.append(ws)
                    intents = int(msg["d"].get("intents") or 0)
                    self.identify_intents.append(intents)
                    self._socket_intents[id(ws)] = intents
                    ready = {"v": 10, "user": self.bot, "guilds": [{"id": self.guild_id, "unavailable": True}],
                             "session_id": "fake-session", "resume_gateway_url": self.base_url.replace(
                                 "http://", "ws://") + "/gateway", "application": {"id": self.bot["id"], "flags": 0},
                             "private_channels": [], "relationships": []}
                    await self.dispatch_one(ws, "READY", ready)
                    self.ready_sent_at = time.monotonic()
                    await self.dispatch_one(ws, "GUILD_CREATE", self._guild_create())
                    self.identified.set()
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    async def dispatch_one(self, ws: web.WebSocketResponse, event: str, data: Mapping[str, Any]) -> None:
        self._seq += 1
        await ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))
