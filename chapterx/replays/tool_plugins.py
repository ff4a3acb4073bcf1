"""The tool-plugin case shape (`tool-plugins.json`): the batch shape plus a real `ToolSystem`.

`ToolHooks` extends `chapterx.replays.batches.run_case`: a world that records pins and tool
webhooks, plugin state and timers under the case's `cache/`, the tool log under `tools/`, fixed
inline tool-call ids and timer suffixes, `clock_advance` events that run the due-timer check,
Discord's echo of the bot's own messages, and `state_files` at the end (the case's `expected`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from chapterx.config.model import BotConfig
from chapterx.replays import CaseShape
from chapterx.replays.recording import RecordingWorld

FIRST_WEBHOOK_ID = 1800000000000000001


def _ts(value: str) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class ToolWorld(RecordingWorld):
    """RecordingWorld plus pins, the `Chapter3-Tools` webhook and webhook posts in history."""

    def __init__(self, world: Any, http_files: Mapping[str, Any] | None = None,
                 http_log: list[dict[str, Any]] | None = None) -> None:
        super().__init__(world)
        self.http_files = dict(http_files or {})
        self.http_log = http_log if http_log is not None else []
        self.webhooks: dict[str, str] = {}
        self.created: list[str] = []  # ids of messages the bot (or its webhook) created, in order

    async def send(self, channel_id: str, content: str, *, reply_to: str | None = None,
                   files: Any = None) -> str:
        mid = await super().send(channel_id, content, reply_to=reply_to, files=files)
        self.created.append(mid)
        return mid

    async def fetch_attachment(self, url: str) -> bytes:
        """Attachments the case serves over HTTP (`http_files`) are downloaded like Discord's CDN."""
        if url in self._blobs or url not in self.http_files:
            return await super().fetch_attachment(url)
        self.http_log.append({"method": "GET", "url": url})
        spec = self.http_files[url]
        if int(spec.get("status") or 200) >= 400:
            raise FileNotFoundError(url)
        if "data_base64" in spec:
            return base64.b64decode(spec["data_base64"])
        return str(spec.get("text") or "").encode("utf-8")

    async def pin(self, channel_id: str, message_id: str) -> None:
        self._record({"type": "pin", "message_id": message_id}, channel_id)

    async def webhook_send(self, channel_id: str, content: str, *, username: str,
                           avatar_url: str | None = None) -> str:
        from chapterx.discord.port import Message

        if channel_id not in self.webhooks:
            wid = str(FIRST_WEBHOOK_ID + len(self.webhooks))
            self.webhooks[channel_id] = wid
            self._record({"type": "webhook_create", "name": "Chapter3-Tools", "webhook_id": wid}, channel_id)
        mid = self._new_id()
        avatar = avatar_url or f"https://cdn.discordapp.com/embed/avatars/{(int(self.bot_user_id) >> 22) % 6}.png"
        self._record({"type": "webhook", "content": content, "username": username, "avatar_url": avatar,
                      "message_id": mid}, channel_id)
        self._history.setdefault(channel_id, []).append(Message(mid, channel_id, self.webhooks[channel_id], content, 0))
        self.created.append(mid)
        return mid


class ToolHooks:
    """What a tool-plugin case needs beyond the batch shape, as `CaseOptions` callbacks."""

    def __init__(self, inp: Mapping[str, Any]) -> None:
        self.inp = inp
        self.pending: list[Any] = []
        self.tools: Any = None
        self.world_obj: ToolWorld | None = None
        self.http_requests: list[dict[str, Any]] = []
        self._ids: Iterator[str] = iter(inp.get("tool_call_ids") or [])
        self._suffixes = iter(inp.get("timer_id_suffixes") or [])

    def options(self) -> Any:
        from chapterx.replays.batches import CaseOptions

        return CaseOptions(plugin_factory=self.plugin_host, on_setup=self.setup, on_event=self.event,
                           extra_outputs=self.finish, world_factory=self.world, queued_events=self.take_pending,
                           after_batch=self.after_batch)

    def world(self, discord: Mapping[str, Any]) -> ToolWorld:
        self.world_obj = ToolWorld(discord, self.inp.get("http_files"), self.http_requests)
        return self.world_obj

    def plugin_host(self, _run: Any, config: BotConfig, _channel_id: str) -> Any:
        from chapterx.agent.plugins import PluginHost

        return PluginHost(config, self.tools)

    def _fire(self, timer: Any) -> None:
        from chapterx.agent.queue import Event

        guild = timer.guildId or (self.world_obj.guild_id if self.world_obj is not None else "")
        self.pending.append(Event("self_activation", timer.channelId, guild, data={
            "timer_id": timer.id, "context_note": timer.contextNote}))

    def _next_id(self) -> str:
        from chapterx.agent.inline_tools import new_call_id

        for value in self._ids:
            return str(value)
        return new_call_id()

    def _next_suffix(self) -> str:
        for value in self._suffixes:
            return str(value)
        return "zzzz"

    async def setup(self, run: Any) -> None:
        from chapterx.agent.inline_tools import CALL_IDS
        from chapterx.tools.system import ToolSystem

        for rel, data in (self.inp.get("files_base64") or {}).items():
            p = run.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(base64.b64decode(data))
        CALL_IDS.set(self._next_id)
        self.tools = ToolSystem(run.root / "cache", now=lambda: run.now, on_timer=self._fire,
                                timer_suffix=self._next_suffix, base_dir=run.root, mcp_call_timeout=20.0,
                                http_client=self._http_client())
        rt = run.runtime
        rt.opts.tools = self.tools
        rt.opts.tool_log_dir = run.root / "tools"
        rt.opts.typing_interval = 3600.0  # the vectors record one typing per activation, not its repeats
        self.tools.timers.check_due()  # timers due at startup fire before batch 0

    def _http_client(self) -> Any:
        """An httpx client whose transport answers from the case's `http_files` and records requests."""
        import httpx

        files = self.inp.get("http_files") or {}

        def answer(request: httpx.Request) -> httpx.Response:
            body = request.content.decode("utf-8", "replace") if request.content else None
            entry = {"method": request.method, "url": str(request.url)}
            if body:
                entry["body"] = body
            self.http_requests.append(entry)
            spec = files.get(str(request.url))
            if spec is None:
                raise httpx.ConnectError(f"fetch failed: {request.url}", request=request)
            data = base64.b64decode(spec["data_base64"]) if "data_base64" in spec else \
                str(spec.get("text") or "").encode("utf-8")
            headers = {"content-type": spec["content_type"]} if spec.get("content_type") else {}
            return httpx.Response(int(spec.get("status") or 200), headers=headers, content=data)

        local = httpx.AsyncHTTPTransport()

        async def route(request: httpx.Request) -> httpx.Response:
            if request.url.host == "127.0.0.1":  # a local fake service (e.g. Soma in tests) is really called
                return await local.handle_async_request(request)
            return answer(request)

        return httpx.AsyncClient(transport=httpx.MockTransport(route))

    def take_pending(self, _run: Any = None) -> list[Any]:
        out, self.pending = self.pending, []
        return out

    async def event(self, run: Any, _index: int, ev: Mapping[str, Any]) -> list[Any] | None:
        channel_id = str(ev.get("channel_id") or run.world.primary_channel_id)
        if ev.get("type") == "clock_advance":
            run.now = _ts(ev["now"])
            self.tools.timers.check_due()
            return self.take_pending()
        if ev.get("type") == "message_update" and self.world_obj is not None:
            from chapterx.agent.queue import Event
            from chapterx.discord.port import Pin

            w = self.world_obj
            msg = await w.fetch_message(channel_id, str(ev["message_id"]))
            if msg is None:
                return []
            if "content" in ev:
                msg.content = str(ev["content"])
            pins = w._pins.setdefault(channel_id, [])
            pins[:] = [p for p in pins if p.id != msg.id]
            if ev.get("pinned"):
                author_id = str(msg.author_id or "")
                author = w.user(author_id)
                pins.insert(0, Pin(msg.id, msg.content, author_id, bool(author and author.bot), ()))
            if channel_id in run.runtime.port.pins:
                run.runtime.port.pins[channel_id] = list(pins)  # the connector tracks pin changes
            return [Event("edit", channel_id, w.guild_id, msg)]
        return None

    async def after_batch(self, run: Any, _index: int, record: dict[str, Any], last: bool) -> None:
        """`echo_bot_messages`: Discord echoes what the bot created; it is processed before the next batch."""
        w = self.world_obj
        if not self.inp.get("echo_bot_messages") or last or w is None:
            return
        from chapterx.agent.decide import mentions_bot
        from chapterx.agent.queue import Event

        ids, w.created = list(w.created), []
        if not ids:
            return
        events = []
        for mid in ids:
            cid = next((c for c, hist in w._history.items() if any(m.id == mid for m in hist)), w.primary_channel_id)
            msg = await w.fetch_message(cid, mid)
            if msg is not None:
                events.append(Event("message", cid, w.guild_id, msg, mentions_bot=await mentions_bot(w, msg)))
        res = await run.runtime.process_batch(events)
        if res.task is not None:
            await res.task
        record["echo"] = {"message_ids": ids, "polled_event_types": ["message"] * len(events),
                          "should_activate": res.should_activate, "activated": res.activated,
                          "random_rolls": res.random_rolls}

    async def finish(self, run: Any) -> None:
        out = run.out
        if self.tools is not None:
            await self.tools.aclose()
            await self.tools.http_client().aclose()
        out["state_files"] = state_files(run.root)
        out["warnings"] = list(self.tools.warnings) if self.tools is not None else []
        out["http_requests"] = list(self.http_requests)


def state_files(root: Path) -> dict[str, Any]:
    """Every file under `cache/` (except images and pins) and `tools/`: JSON parsed, JSONL as lines."""
    found: dict[str, Any] = {}
    for top in ("cache", "tools"):
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or rel.startswith(("cache/images/", "cache/pins/")) or path.name.startswith("."):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if path.suffix == ".json":
                try:
                    found[rel] = json.loads(text)
                except ValueError:
                    found[rel] = text
            elif path.suffix == ".jsonl":
                found[rel] = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                found[rel] = text
    return dict(sorted(found.items()))


async def run_case(inp: Mapping[str, Any]) -> dict[str, Any]:
    from chapterx.replays.batches import run_case as run_batches

    out = await run_batches(inp, ToolHooks(inp).options())
    # the `expected` shape: provider requests carry their bodies
    out["provider_requests"] = [{"body": body} for body in out.get("provider_bodies", [])]
    return out


_TOOL_KEYS = ("tool_call_ids", "timer_id_suffixes", "http_files", "files_base64", "echo_bot_messages")


def _matches(case: Mapping[str, Any]) -> bool:
    inp = case.get("input", case)
    if not (isinstance(inp, Mapping) and isinstance(inp.get("batches"), list) and "discord" in inp):
        return False
    if any(k in inp for k in _TOOL_KEYS):
        return True
    expected = case.get("expected") if "input" in case else None
    if isinstance(expected, Mapping) and "state_files" in expected:
        return True
    text = json.dumps(inp.get("files") or {})
    return "tool_plugins" in text or "mcp_servers" in text


SHAPE = CaseShape("tool_plugins", _matches, run_case, priority=40)
