"""The bot process core: batch loop, processBatch, per-channel locks (reference §1.2, §1.3, §1.9).

`BotRuntime` is transport-agnostic: it reads and acts through a `DiscordPort` (discord.py in
production, the in-memory world in tests) and hands each activation to `run_activation`. Events
come from the connector (or a test) through `runtime.queue`. Activations run as tasks that are
not awaited by the loop, so different channels proceed concurrently. Past upstream: a batch is
decided per channel (one channel's events never decide or swallow another's), the bot's own message
is never a trigger, a trigger for a busy channel is queued (`max_queued_replies`, `m` commands
always) and answered when the channel is free, and a failed activation shows `error_reaction` (⚠️).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import logging
import random as _random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chapterx.agent.activation import (
    ActivationContext,
    ActivationResult,
    _drop_m_commands,
    bot_identity,
    channel_config_texts,
    pin_config_texts,
    run_activation,
)
from chapterx.agent.decide import DecideContext, Decision, applicable_sleep_pins, should_activate
from chapterx.agent.plugins import PluginHost
from chapterx.agent.queue import DeferredQueue, Event, EventQueue, transient_error_type
from chapterx.agent.state import ChannelStateStore
from chapterx.agent.toollog import remove_by_bot_message
from chapterx.config.model import BotConfig
from chapterx.config.typed import ConfigLike, as_bot_config
from chapterx.context import options as opt
from chapterx.context.build import BuildInput, build_context
from chapterx.context.fetch import fetch_context
from chapterx.discord.port import DiscordPort, Message, OutgoingFile, Pin
from chapterx.trace.collector import current, start_activation

log = logging.getLogger(__name__)

_GET_CONTEXT = re.compile(r"^m\s+get_context(?:\s+(\d+))?", re.I)
ConfigLoader = Callable[[list[str]], ConfigLike]
MAX_WAITING = 20  # queued triggers per channel, `m` commands included


class TrackingPort:
    """Wraps a port: caches pins per channel (upstream tracks pins in memory) and remembers the ids
    of messages this process sent (replies to them activate m commands and mark `reply` reasons)."""

    def __init__(self, inner: DiscordPort) -> None:
        self.inner = inner
        self.pins: dict[str, list[Pin]] = {}
        self.sent_ids: set[str] = set()
        self.deleted_ids: set[str] = set()  # messages this process deleted (`m` commands)
        self.pin_fetches: list[str] = []
        # Channels whose pins changed before we tracked them: loaded from REST before the next decision.
        self.bootstrap: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def bot_user_id(self) -> str:
        return self.inner.bot_user_id

    @property
    def guild_id(self) -> str:
        return self.inner.guild_id

    def cached_pins(self, channel_id: str) -> list[Pin]:
        return list(self.pins.get(channel_id, []))

    def set_pin(self, channel_id: str, pin: Pin | None, message_id: str) -> None:
        """A pin event (message pinned/unpinned/deleted). A new pin in an untracked channel marks the
        channel for a REST bootstrap (all its pins), so neither this pin nor older ones are lost."""
        if channel_id not in self.pins:
            if pin is not None:
                self.bootstrap.add(channel_id)
            return
        pins = [p for p in self.pins[channel_id] if p.id != message_id]
        if pin is not None:
            pins.append(pin)
        self.pins[channel_id] = pins

    async def fetch_pins(self, channel_id: str) -> list[Pin]:
        if channel_id not in self.pins:
            self.pin_fetches.append(channel_id)
            self.pins[channel_id] = list(await self.inner.fetch_pins(channel_id))
        return list(self.pins[channel_id])

    async def send(self, channel_id: str, content: str, *, reply_to: str | None = None,
                   files: list[OutgoingFile] | None = None) -> str:
        mid = await self.inner.send(channel_id, content, reply_to=reply_to, files=files)
        self.sent_ids.add(mid)
        return mid

    async def delete(self, channel_id: str, message_id: str) -> None:
        await self.inner.delete(channel_id, message_id)
        self.deleted_ids.add(message_id)

    async def webhook_send(self, channel_id: str, content: str, *, username: str,
                           avatar_url: str | None = None) -> str:
        mid = await self.inner.webhook_send(channel_id, content, username=username, avatar_url=avatar_url)
        self.sent_ids.add(mid)
        return mid


@dataclass
class BatchOutcome:
    """What processBatch decided (tests compare it with the activation-decision vectors)."""

    polled_event_types: list[str]
    should_activate: bool | None = None
    evaluated_with_channel_id: str | None = None
    activated: bool = False
    activation: dict[str, Any] | None = None
    random_rolls: list[float] = field(default_factory=list)
    decision_trail: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[ActivationResult | None] | None = None
    queued: bool = False  # the trigger waits for the channel's running activation
    channel_outcomes: list[BatchOutcome] = field(default_factory=list)  # one per channel of the batch

    @property
    def tasks(self) -> list[asyncio.Task[ActivationResult | None]]:
        parts = self.channel_outcomes or [self]
        return [o.task for o in parts if o.task is not None]


@dataclass
class _Pending:
    """A trigger waiting for its channel (queued while another activation ran there)."""

    guild_id: str
    trigger_id: str | None
    reason: str
    events: Sequence[Event]
    command: bool
    # The context the trigger arrived in (its task runs there, not in the previous activation's).
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


@dataclass
class RuntimeOptions:
    bot_id: str
    provider_factory: Callable[[str], Any]
    load_config: ConfigLoader
    guild_config_loader: Callable[[str, list[str]], ConfigLike] | None = None
    random: Callable[[], float] = _random.random
    now: Callable[[], float] = time.time
    clock: Callable[[], float] | None = None
    base_dir: Path | None = None
    tool_log_dir: Path | None = None
    thinking_dir: Path | None = None
    trace_writer: Any = None  # chapterx.trace.writer.TraceWriter; None: no traces
    # (config, channel_id) -> the activation's plugin host; None: `PluginHost(config)`.
    plugin_factory: Callable[[BotConfig, str], PluginHost] | None = None
    tools: Any = None  # chapterx.tools.system.ToolSystem: Soma credit checks before an activation
    on_activation: Callable[[ActivationResult], Awaitable[None] | None] | None = None
    typing_interval: float = 8.0


class BotRuntime:
    """One bot: queue -> processBatch -> activation tasks."""

    def __init__(self, port: DiscordPort, options: RuntimeOptions) -> None:
        self.port = TrackingPort(port)
        self.opts = options
        self.queue = EventQueue()
        self.states = ChannelStateStore()
        self.sleep_counters: dict[str, int] = {}
        self.active_channels: set[str] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.deferred = DeferredQueue()
        self._stopping = asyncio.Event()
        self._last_deferred_check = 0.0
        self.waiting: dict[str, list[_Pending]] = {}

    # ------------------------------------------------------------------ config
    def _config_for(self, guild_id: str, texts: list[str]) -> BotConfig:
        """The typed config (the app's loader already returns one; a test's mapping is converted here)."""
        if self.opts.guild_config_loader is not None:
            return as_bot_config(self.opts.guild_config_loader(guild_id, texts))
        return as_bot_config(self.opts.load_config(texts))

    def cached_config(self, channel_id: str, guild_id: str) -> BotConfig | None:
        """The config from the channel's cached pins only (never an API call); None if it fails."""
        try:
            return self._config_for(guild_id, pin_config_texts(self.port.cached_pins(channel_id),
                                                               bot_identity(self.port)))
        except Exception as exc:  # noqa: BLE001 - upstream: a config that fails to load means "no"
            log.warning("config failed to load for channel %s: %s", channel_id, exc)
            return None

    # ------------------------------------------------------------------ batches
    async def process_batch(self, events: Sequence[Event]) -> BatchOutcome:
        """Upstream processBatch (§1.3), decided per channel: the events of each channel form their own
        batch (in first-appearance order), so a busy channel never decides or swallows another's."""
        groups: dict[str, list[Event]] = {}
        for e in events:
            groups.setdefault(e.channel_id, []).append(e)
        if len(groups) <= 1:
            return await self._process_channel_batch(events)
        parts = [await self._process_channel_batch(g) for g in groups.values()]
        lead = next((o for o in parts if o.activated), parts[0])
        return BatchOutcome(
            [e.type for e in events], should_activate=any(bool(o.should_activate) for o in parts),
            evaluated_with_channel_id=lead.evaluated_with_channel_id, activated=lead.activated,
            activation=lead.activation, random_rolls=[r for o in parts for r in o.random_rolls],
            decision_trail=[t for o in parts for t in o.decision_trail], task=lead.task,
            queued=any(o.queued for o in parts), channel_outcomes=parts)

    async def _process_channel_batch(self, events: Sequence[Event]) -> BatchOutcome:
        outcome = BatchOutcome([e.type for e in events])
        if not events:
            return outcome
        first = events[0]
        channel_id, guild_id = first.channel_id, first.guild_id
        outcome.evaluated_with_channel_id = channel_id
        self._forget_deleted_tool_turns(events)
        if channel_id in self.port.bootstrap:
            self.port.bootstrap.discard(channel_id)
            await self._safe(self.port.fetch_pins(channel_id), "pins bootstrap")
        config = self.cached_config(channel_id, guild_id)
        name = (config.name or None) if config is not None else None
        ctx = DecideContext(
            port=self.port, config=config, bot_id=self.opts.bot_id,
            sleep_pins=applicable_sleep_pins(self.port.cached_pins(channel_id), bot_identity(self.port),
                                             self.opts.bot_id, name),
            sleep_counters=self.sleep_counters, sent_ids=self.port.sent_ids,
            random=self.opts.random, now=self.opts.now,
        )
        decision = await should_activate(events, ctx, channel_id)
        outcome.should_activate = decision.activate
        outcome.random_rolls = decision.random_rolls
        outcome.decision_trail = decision.trail
        for ch, mid, emoji in decision.reactions:
            await self._safe(self.port.react(ch, mid, emoji), "react")
        if not decision.activate:
            return outcome
        trigger = _trigger_message(events, self.port.bot_user_id)
        if decision.m_command is not None and decision.m_command.message is not None:
            cmd = decision.m_command.message
            gc = _GET_CONTEXT.match(cmd.content)
            if gc:
                await self._safe(self.port.delete(cmd.channel_id, cmd.id), "delete m command")
                requested = int(gc.group(1)) if gc.group(1) else None
                outcome.decision_trail.append({"msg": "m get_context", "message_id": cmd.id})
                try:
                    await self.get_context_dump(channel_id, guild_id, requested)
                except Exception as exc:  # noqa: BLE001 - reported in the channel, as upstream
                    await self._safe(self.port.send(channel_id, f".error: get_context failed — {exc}"), "send")
                return outcome
            if config is not None and not config.supports_continuation:
                before = await self.port.fetch_messages(channel_id, before=cmd.id, limit=1)
                if before and before[0].author_id == self.port.bot_user_id:
                    await self._safe(self.port.delete(cmd.channel_id, cmd.id), "delete m command")
                    latest = await self.port.fetch_messages(channel_id, limit=1)
                    if latest:
                        await self._safe(self.port.react(channel_id, latest[0].id, "🚫"), "react")
                    return outcome
            await self._safe(self.port.delete(cmd.channel_id, cmd.id), "delete m command")
            outcome.decision_trail.append({"msg": "Deleted m command message", "message_id": cmd.id})
        if decision.reaction_continue is not None and config is not None and not config.supports_continuation:
            return outcome
        if self.deferred.cancel(channel_id) is not None:
            outcome.decision_trail.append({"msg": "Cancelled pending deferred retry (new activity)"})
        reason = _activation_reason(events, decision, self.port.sent_ids)
        trigger_id = trigger.id if trigger is not None else None
        if channel_id in self.active_channels:
            command = decision.m_command is not None
            if self._enqueue(channel_id, _Pending(guild_id, trigger_id, reason, events, command), config):
                outcome.queued = True
                outcome.decision_trail.append({"msg": "Channel busy: trigger queued", "message_id": trigger_id})
            else:
                outcome.decision_trail.append({"msg": "Channel already being processed, skipping"})
            return outcome
        outcome.activated = True
        outcome.activation = {"channel_id": channel_id, "guild_id": guild_id, "reason": reason,
                              "trigger_message_id": trigger_id}
        outcome.task = self._start(channel_id, _Pending(guild_id, trigger_id, reason, events, False))
        await asyncio.sleep(0)  # let the activation start (typing) before the next batch, as upstream
        return outcome

    def _start(self, channel_id: str, pending: _Pending) -> asyncio.Task[ActivationResult | None]:
        self.active_channels.add(channel_id)
        task = asyncio.create_task(self._activate(channel_id, pending.guild_id, pending.trigger_id, pending.reason,
                                                  pending.events), context=pending.context)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _enqueue(self, channel_id: str, pending: _Pending, config: BotConfig | None) -> bool:
        """Queue a trigger for a busy channel: `m` commands always, others up to `max_queued_replies`
        (the oldest plain trigger makes room). False: not queued (limit 0)."""
        limit = (config or opt.DEFAULTS).max_queued_replies
        if not pending.command and limit <= 0:
            return False
        queue = self.waiting.setdefault(channel_id, [])
        if len(queue) >= MAX_WAITING:  # a flood of `m` commands must not grow without bound
            log.warning("channel %s: %d triggers already queued, dropping %s", channel_id, len(queue),
                        pending.trigger_id)
            return False
        if not pending.command:
            plain = [p for p in queue if not p.command]
            while len(plain) >= limit:
                queue.remove(plain.pop(0))
        queue.append(pending)
        return True

    def _next_queued(self, channel_id: str) -> None:
        """The channel is free: start its oldest queued trigger."""
        queue = self.waiting.get(channel_id)
        if not queue or self._stopping.is_set():
            return
        pending = queue.pop(0)
        if not queue:
            del self.waiting[channel_id]
        self._start(channel_id, pending)

    async def _maybe_defer(self, channel_id: str, guild_id: str, trigger_id: str | None,
                           error: BaseException) -> bool:
        """`deferred_retries: true`: a transient failure is retried later (⏳ on the trigger)."""
        cfg = self.cached_config(channel_id, guild_id) or opt.DEFAULTS
        kind = transient_error_type(error)
        if cfg.deferred_retries is not True or kind is None:
            return False
        retry = self.deferred.schedule(channel_id, guild_id, trigger_id, error, kind, self.opts.now())
        if retry is None:
            return False
        log.info("deferred retry %d for channel %s in %d ms", retry.retry_attempt, channel_id, retry.delay_ms)
        tr = current()
        if tr is not None:
            tr.set_status("deferred")
        if trigger_id is not None:
            await self._safe(self.port.react(channel_id, trigger_id, "⏳"), "react")
        return True

    def poll_deferred(self) -> int:
        """Queue a `self_activation` for every due retry; returns how many were queued."""
        now = self.opts.now()
        due = self.deferred.due(now)
        for r in due:
            self.queue.push(Event("self_activation", r.channel_id, r.guild_id, data={
                "type": "deferred_retry", "botId": self.opts.bot_id, "originalTriggerId": r.original_trigger_id,
                "retryAttempt": r.retry_attempt, "errorType": r.error_type, "errorMessage": r.error_message,
                "scheduledAt": r.due_at, "createdAt": r.created_at}))
        return len(due)

    def _forget_deleted_tool_turns(self, events: Sequence[Event]) -> None:
        """processBatch step 2: a deleted bot message drops the tool-log entries that produced it."""
        if self.opts.tool_log_dir is None:
            return
        for e in events:
            mid = str(e.data.get("message_id") or "")
            if e.type == "delete" and mid and (e.data.get("author_id") == self.port.bot_user_id
                                                or mid in self.port.sent_ids):
                try:
                    remove_by_bot_message(self.opts.tool_log_dir, self.opts.bot_id, e.channel_id, [mid])
                except OSError as exc:
                    log.warning("tool log cleanup failed: %s", exc)

    async def _keep_typing(self, channel_id: str) -> None:
        """Upstream re-sends the typing indicator every 8 s until the activation ends."""
        while True:
            await asyncio.sleep(self.opts.typing_interval)
            await self._safe(self.port.typing(channel_id), "typing")

    async def _activate(self, channel_id: str, guild_id: str, trigger_id: str | None, reason: str,
                        events: Sequence[Event]) -> ActivationResult | None:
        soma = None
        if self.opts.tools is not None:  # Soma credit check (§1.3 step 11), only when configured
            soma = await self.opts.tools.soma_gate(
                self.port, self.cached_config(channel_id, guild_id) or opt.DEFAULTS, reason=reason, channel_id=channel_id,
                guild_id=guild_id, trigger_id=trigger_id, bot_id=self.port.bot_user_id)
            if not soma.allowed:
                self.active_channels.discard(channel_id)
                return None
        typing = asyncio.create_task(self._keep_typing(channel_id))
        try:
            if trigger_id is not None and self.opts.trace_writer is not None:
                channel = self.port.channel(channel_id)
                with start_activation(channel_id, trigger_id, self.opts.bot_id, guild_id=guild_id or None,
                                      channel_name=channel.name if channel else None,
                                      writer=self.opts.trace_writer) as tr:
                    tr.set_bot_user_id(self.port.bot_user_id)
                    if channel is not None:
                        tr.set_thread_info(channel.type == "thread", channel.parent_id)
                    tr.record_activation(reason, [_event_summary(e) for e in events])
                    result = await self._run(channel_id, guild_id, trigger_id)
                    await self._after(channel_id, guild_id, trigger_id, result)
            else:
                result = await self._run(channel_id, guild_id, trigger_id)
                await self._after(channel_id, guild_id, trigger_id, result)
            if soma is not None and soma.transaction_id and result.error is not None:
                await self.opts.tools.soma_refund(soma, "activation failed")
            if self.opts.on_activation is not None:
                maybe = self.opts.on_activation(result)
                if maybe is not None:
                    await maybe
            return result
        except Exception:  # one activation must never end the loop
            log.exception("activation in channel %s crashed", channel_id)
            return None
        finally:
            typing.cancel()
            self.active_channels.discard(channel_id)
            self._next_queued(channel_id)

    async def _after(self, channel_id: str, guild_id: str, trigger_id: str | None, result: ActivationResult) -> None:
        if result.error is not None:
            log.error("activation in channel %s failed: %s", channel_id, result.error)
            deferred = await self._maybe_defer(channel_id, guild_id, trigger_id, result.error)
            emoji = error_reaction(self.cached_config(channel_id, guild_id) or opt.DEFAULTS)
            # A deleted `m` command cannot carry a reaction (Discord answers 404).
            if not deferred and emoji and trigger_id is not None and trigger_id not in self.port.deleted_ids:
                await self._safe(self.port.react(channel_id, trigger_id, emoji), "react")
        else:
            self.deferred.succeeded(channel_id)

    async def _run(self, channel_id: str, guild_id: str, trigger_id: str | None) -> ActivationResult:
        o = self.opts
        factory = o.plugin_factory
        return await run_activation(ActivationContext(
            self.port, lambda texts: self._config_for(guild_id, texts), o.provider_factory, channel_id,
            trigger_message_id=trigger_id, state=self.states.get(o.bot_id, channel_id), clock=o.clock,
            base_dir=o.base_dir, tool_log_dir=o.tool_log_dir, bot_id=o.bot_id, thinking_dir=o.thinking_dir,
            plugin_factory=(lambda cfg: factory(cfg, channel_id)) if factory is not None else None,
        ))

    async def get_context_dump(self, channel_id: str, guild_id: str, requested: int | None) -> str:
        """`m get_context [N]` (§1.7): the context without character limits, sent as a text file."""
        cfg = self._config_for(guild_id, await channel_config_texts(self.port, channel_id))
        limit = int(requested or cfg.recency_window_messages or 200)
        built, _fetched = await unlimited_context(self.port, cfg, channel_id, limit)
        msgs = [m for m in built.messages if m.content]
        name = cfg.name
        lines = [f"# Context for {name} in #{channel_id}", f"# Messages: {len(msgs)} (requested: {limit})",
                 f"# Model: {cfg.continuation_model}", f"# Mode: {cfg.mode or 'auto'}",
                 f"# Stop sequences: {json.dumps(built.stop_sequences, ensure_ascii=False)}"]
        if cfg.system_prompt:
            lines += ["# === SYSTEM PROMPT ===", cfg.system_prompt]
        if cfg.context_prefix:
            lines += ["# === CONTEXT PREFIX ===", cfg.context_prefix]
        lines.append("# === MESSAGES ===")
        for m in msgs:
            images = sum(1 for b in m.content if b.get("type") == "image")
            tag = f" [{images} image(s)]" if images else ""
            lines.append(f"\n{m.participant}:{tag}\n{m.text()}")
        text = "\n".join(lines)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        await self.port.send(channel_id, f".context dump ({len(msgs)} messages)",
                             files=[OutgoingFile(f"context-{name}-{stamp}.txt", text.encode("utf-8"))])
        return text

    async def _safe(self, aw: Awaitable[Any], what: str) -> None:
        try:
            await aw
        except Exception as exc:  # noqa: BLE001 - Discord refusals are logged, never fatal
            log.warning("%s failed: %s", what, exc)

    # ------------------------------------------------------------------ loop
    async def run(self) -> None:
        """Poll batches until `stop()`; errors are logged and the loop sleeps 1 s (upstream)."""
        while not self._stopping.is_set():
            try:
                if self.deferred.pending and time.monotonic() - self._last_deferred_check >= 5:
                    self._last_deferred_check = time.monotonic()
                    self.poll_deferred()
                batch = await self.queue.next_batch(0.1)
                if batch:
                    await self.process_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch processing failed")
                await asyncio.sleep(1)

    def stop(self) -> None:
        self._stopping.set()

    async def idle(self) -> None:
        """Wait until no activation runs and none is queued (tests, replays)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for running activations (graceful shutdown); cancel what is left after `timeout`."""
        if not self.tasks:
            return
        _done, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(BaseException):
                await t


def error_reaction(config: ConfigLike) -> str | None:
    """The reaction for a failed activation (`error_reaction`, schema default ⚠️; "" turns it off)."""
    value: object = as_bot_config(config).error_reaction
    if value is True:  # a hand-written `true` means "the default reaction"
        return opt.DEFAULTS.error_reaction
    return value if isinstance(value, str) and value else None


def _trigger_message(events: Sequence[Event], bot_user_id: str = "") -> Message | None:
    """The batch's first (non-system) message; the bot's own messages are never a trigger."""
    msgs = [e.message for e in events if e.type == "message" and e.message is not None
            and (not bot_user_id or e.message.author_id != bot_user_id)]
    for m in msgs:
        if not m.system:
            return m
    return msgs[0] if msgs else None


def _activation_reason(events: Sequence[Event], decision: Decision, sent_ids: set[str]) -> str:
    """Upstream's trace-only reason: the last message event decides (a quirk we keep)."""
    if any(e.type in ("self_activation", "timer") for e in events):
        return "timer"
    if decision.reaction_continue is not None:
        return "reaction"
    if decision.m_command is not None:
        return "m_command"
    reason = "random"
    for e in events:
        if e.type != "message" or e.message is None:
            continue
        if e.message.reply_to is not None and e.message.reply_to in sent_ids:
            reason = "reply"
        elif e.mentions_bot:
            reason = "mention"
        else:
            reason = "random"
    return reason


def _event_summary(e: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"type": e.type, "channelId": e.channel_id}
    if e.message is not None:
        out["messageId"] = e.message.id
        out["authorId"] = e.message.author_id
    return out


async def unlimited_context(port: DiscordPort, config: ConfigLike, channel_id: str, limit: int) -> tuple[Any, int]:
    """The last `limit` context messages with character limits, rolling and tool cache off
    (`m get_context`, the API's context build); returns (BuiltContext, Discord messages fetched)."""
    config = as_bot_config(config)
    unlimited = dataclasses.replace(config, recency_window_messages=limit, recency_window_characters=10**15,
                                    hard_max_characters=10**15, prompt_caching=False)
    fetched = await fetch_context(port, channel_id, depth=limit + 50, max_images=max(opt.max_images(config) * 2, 10))
    _drop_m_commands(fetched)
    bot_user = port.user(port.bot_user_id)
    built = build_context(BuildInput(
        messages=fetched.messages, config=unlimited, bot_user_id=port.bot_user_id,
        bot_username=bot_user.username if bot_user else config.name,
        images=fetched.images, documents=fetched.documents))
    return built, len(fetched.messages)
