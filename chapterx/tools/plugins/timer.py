"""`timer`: `schedule_wake` / `list_timers` / `cancel_wake` over the process `TimerScheduler`.

Texts are upstream's. Unlike upstream, a `delay_minutes` that is not a number is refused with a
clear error (upstream stored a timer that could never fire and reported a RangeError).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chapterx.context.build import Injection
from chapterx.tools.base import CallContext, Plugin, ToolOutcome, tool
from chapterx.tools.timers import Timer

MAX_DELAY_MINUTES = 24 * 60
MAX_PER_CHANNEL = 5


def duration(ms: float) -> str:
    total = math.floor(ms / 1000 + 0.5)
    minutes, seconds = divmod(total, 60)
    hours, rem = divmod(minutes, 60)
    if hours > 0:
        return f"{hours}h {rem}m" if rem > 0 else f"{hours}h"
    if minutes > 0:
        return f"{minutes}m {seconds}s" if seconds > 0 else f"{minutes}m"
    return f"{seconds}s"


def _clock(ms: float) -> str:
    """`toLocaleTimeString()` in en-US, UTC: `1:02:00 PM`."""
    d = datetime.fromtimestamp(ms / 1000, tz=UTC)
    hour = d.hour % 12 or 12
    return f"{hour}:{d.minute:02d}:{d.second:02d} {'AM' if d.hour < 12 else 'PM'}"


def _clip(text: str, n: int) -> str:
    return text[:n] + ("..." if len(text) > n else "")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    return None


class TimerPlugin(Plugin):
    name = "timer"
    tools = (
        tool("schedule_wake",
             "Schedule a timer to wake yourself up later. When the timer fires, you will be activated with the "
             "context note you provide. Use this to continue work, check on something, or remind yourself.",
             {"delay_minutes": {"type": "number", "description":
                                "How many minutes from now to wake up. Accepts decimals for finer control (e.g., "
                                "0.5 = 30 seconds, 0.1 = 6 seconds). Range: 0.05-1440 (3 seconds to 24 hours)"},
              "context_note": {"type": "string", "description":
                               "What you want to remember when you wake up. Be specific about what you were doing "
                               "or need to check."}},
             ["delay_minutes", "context_note"]),
        tool("list_timers", "List all active wake timers for this channel"),
        tool("cancel_wake", "Cancel a scheduled wake timer by ID",
             {"timer_id": {"type": "string", "description": "The timer ID to cancel (e.g., timer_abc123)"}},
             ["timer_id"]),
    )

    async def call(self, tool_name: str, args: Mapping[str, Any], ctx: CallContext) -> ToolOutcome:
        sched = ctx.timers
        if sched is None:
            return ToolOutcome("Error: Timer scheduler not initialized")
        if tool_name == "schedule_wake":
            delay = _number(args.get("delay_minutes"))
            if delay is None:
                return ToolOutcome("Error: delay_minutes must be a number of minutes (0.05-1440)")
            if delay < 0.05:
                return ToolOutcome("Error: Delay must be at least 0.05 minutes (3 seconds)")
            if delay > MAX_DELAY_MINUTES:
                return ToolOutcome(f"Error: Delay cannot exceed {MAX_DELAY_MINUTES} minutes (24 hours)")
            if len(sched.for_channel(ctx.bot_id, ctx.channel_id)) >= MAX_PER_CHANNEL:
                return ToolOutcome(f"Error: Maximum {MAX_PER_CHANNEL} timers per channel. "
                                   "Cancel one first with cancel_wake.")
            note = args.get("context_note")
            if not isinstance(note, str) or len(note.strip()) < 5:
                return ToolOutcome("Error: Please provide a meaningful context note (at least 5 characters)")
            if len(note) > 500:
                return ToolOutcome("Error: Context note too long (max 500 characters)")
            timer = sched.schedule(bot_id=ctx.bot_id, channel_id=ctx.channel_id, guild_id=ctx.guild_id,
                                   delay_minutes=delay, context_note=note.strip(), message_id=ctx.trigger_id)
            return ToolOutcome(f"Timer scheduled! I will wake up in {duration(delay * 60000)} "
                               f"(at {_clock(timer.triggerAt)}).\n\nTimer ID: {timer.id}\nContext: \"{note}\"")
        if tool_name == "list_timers":
            return ToolOutcome(self._list(sched.for_channel(ctx.bot_id, ctx.channel_id), ctx.now() * 1000))
        if tool_name == "cancel_wake":
            tid = args.get("timer_id")
            if not any(t.id == tid for t in sched.for_channel(ctx.bot_id, ctx.channel_id)):
                return ToolOutcome(f"Timer not found: {tid}. Use list_timers to see active timers.")
            ok = sched.cancel(str(tid))
            return ToolOutcome(f"Timer cancelled: {tid}" if ok else f"Failed to cancel timer: {tid}")
        return await super().call(tool_name, args, ctx)

    @staticmethod
    def _list(timers: list[Timer], now_ms: float) -> str:
        if not timers:
            return "No active timers."
        return "\n".join(
            f"{i}. [{t.id}] {'in ' + duration(t.triggerAt - now_ms) if t.triggerAt > now_ms else 'due now'}"
            f" - \"{_clip(t.contextNote, 50)}\"" for i, t in enumerate(timers, 1))

    async def injections(self, ctx: CallContext) -> list[Injection]:
        if ctx.timers is None:
            return []
        timers = ctx.timers.for_channel(ctx.bot_id, ctx.channel_id)
        if not timers:
            return []
        now_ms = ctx.now() * 1000
        lines = [f"- [{t.id}] {duration(t.triggerAt - now_ms) if t.triggerAt > now_ms else 'due'}: "
                 f"\"{_clip(t.contextNote, 80)}\"" for t in timers]
        text = "\n".join(["## ⏰ Active Timers", "", *lines, "", "_Use schedule_wake/cancel_wake to manage timers._"])
        return [Injection(text, 8, 90, False)]


PLUGIN = TimerPlugin()
