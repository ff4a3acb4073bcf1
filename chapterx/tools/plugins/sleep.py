"""`sleep`: `go_to_sleep` posts, pins and reacts to a `.sleep` message; the existing pinned-sleep
machinery (§1.8) does the rest once Discord reports the pin."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chapterx.tools.base import CallContext, Plugin, ToolOutcome, tool
from chapterx.tools.state import iso

MAX_SECONDS = 7 * 24 * 3600
_COMPOUND = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int | None:
    """`30m`, `2h`, `1h30m`, `90s`, `1d`, or a plain number of minutes -> seconds."""
    s = text.strip().lower()
    m = _COMPOUND.match(s)
    if m and any(m.groups()):
        d, h, mi, se = (int(g or 0) for g in m.groups())
        return d * 86400 + h * 3600 + mi * 60 + se
    if re.fullmatch(r"\d+(\.\d+)?", s):
        num = float(s)
        if num > 0:
            return int(num * 60 + 0.5)
    return None


def _fmt(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{int(seconds / 60 + 0.5)}m"
    h, rest = divmod(seconds, 3600)
    m = int(rest / 60 + 0.5)
    return f"{h}h{m}m" if m > 0 else f"{h}h"


class SleepPlugin(Plugin):
    name = "sleep"
    tools = (
        tool("go_to_sleep",
             "Stop responding in this channel for a specified duration. Sends a visible .sleep command, pins it, "
             "and reacts. Other users can unpin to wake you early.",
             {"duration": {"type": "string", "description":
                           'How long to sleep. Examples: "30m", "2h", "1h30m", "6h", "1d". Plain number is treated '
                           "as minutes."},
              "reason": {"type": "string", "description": "Optional: why you are going to sleep (shown in the pin)."}},
             ["duration"]),
    )

    async def call(self, tool_name: str, args: Mapping[str, Any], ctx: CallContext) -> ToolOutcome:
        if tool_name != "go_to_sleep":
            return await super().call(tool_name, args, ctx)
        raw = args.get("duration")
        text = raw if isinstance(raw, str) else json.dumps(raw) if raw is not None else "undefined"
        seconds = parse_duration(text)
        if seconds is None or seconds <= 0:
            return ToolOutcome(f'Error: Could not parse duration "{text}". Use formats like "30m", "2h", "1h30m", "1d".')
        if seconds > MAX_SECONDS:
            return ToolOutcome("Error: Maximum sleep duration is 7 days.")
        now = ctx.now()
        lines = [f"started_at: {iso(now)}", f"duration_seconds: {seconds}"]
        reason = args.get("reason")
        if isinstance(reason, str) and reason:
            clean = re.sub(r"[\n\r]", " ", reason).strip()
            lines.append(f"reason: {json.dumps(clean, ensure_ascii=False)}")
        name = ctx.config.name or ctx.bot_id
        try:
            ids = await ctx.send(f".sleep {name}\n---\n" + "\n".join(lines))
        except Exception as exc:  # noqa: BLE001 - reported to the model
            return ToolOutcome(f"Error: Could not send .sleep message: {exc}")
        if not ids:
            return ToolOutcome("Error: Failed to send .sleep message (no message ID returned)")
        try:
            await ctx.pin(ids[0])
        except Exception:  # noqa: BLE001 - reported to the model
            return ToolOutcome("Error: .sleep message sent but could not pin it (channel may have hit the 50-pin "
                               "limit). Sleep is NOT active.")
        try:
            await ctx.react(ids[0], "😴")
        except Exception:  # noqa: BLE001 - cosmetic only
            ctx.warn("Failed to react to .sleep message")
        return ToolOutcome(f"Going to sleep for {_fmt(seconds)}. Will wake at {iso(now + seconds)}. "
                           "Unpin the .sleep message to wake early.")


PLUGIN = SleepPlugin()
