"""Wake timers persisted in `CACHE_PATH/timers.json`; a due timer becomes a self-activation.

The scheduler is process-wide. `check_due()` fires every timer whose time has come (the bot calls
it every few seconds and once at startup). Unlike upstream, a fired timer is always removed from the
file, so a timer missed during downtime fires once, not at every restart.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chapterx.tools.state import atomic_write_json

log = logging.getLogger(__name__)
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


@dataclass
class Timer:
    botId: str  # the on-disk key names are upstream's
    channelId: str
    guildId: str
    createdByMessageId: str
    createdAt: int
    id: str
    triggerAt: float
    contextNote: str


def _timer(raw: Any) -> Timer | None:
    try:
        t = Timer(str(raw["botId"]), str(raw["channelId"]), str(raw.get("guildId") or ""),
                  str(raw.get("createdByMessageId") or ""), int(raw.get("createdAt") or 0), str(raw["id"]),
                  float(raw["triggerAt"]), str(raw.get("contextNote") or ""))
    except (KeyError, TypeError, ValueError):
        return None
    return t if math.isfinite(t.triggerAt) else None


class TimerScheduler:
    """Timers of this process, in `path`; `on_fire(timer)` queues the self-activation."""

    def __init__(self, path: Path, *, now: Callable[[], float], on_fire: Callable[[Timer], None] | None = None,
                 suffix: Callable[[], str] | None = None, bot_id: str | None = None) -> None:
        self.path = path
        self.bot_id = bot_id  # fire only this bot's timers (several bots may share a CACHE_PATH)
        self.now = now
        self.on_fire = on_fire
        self.suffix = suffix or (lambda: "".join(secrets.choice(_B36) for _ in range(4)))
        self.timers: list[Timer] = []
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("timers file %s unreadable (%s); starting with no timers", self.path, exc)
            return
        bad = 0
        for raw in (data.get("timers") if isinstance(data, dict) else None) or []:
            t = _timer(raw)
            if t is None:
                bad += 1
            else:
                self.timers.append(t)
        if bad:
            log.warning("timers file %s: %d unusable timer(s) skipped", self.path, bad)

    def _save(self) -> None:
        rows = []
        for t in self.timers:
            row = asdict(t)
            row["triggerAt"] = int(t.triggerAt) if float(t.triggerAt).is_integer() else t.triggerAt
            rows.append(row)
        atomic_write_json(self.path, {"timers": rows, "version": 1})

    def for_channel(self, bot_id: str, channel_id: str) -> list[Timer]:
        mine = [t for t in self.timers if t.botId == bot_id and t.channelId == channel_id]
        return sorted(mine, key=lambda t: t.triggerAt)

    def schedule(self, *, bot_id: str, channel_id: str, guild_id: str, delay_minutes: float, context_note: str,
                 message_id: str) -> Timer:
        now_ms = int(self.now() * 1000)
        taken = {t.id for t in self.timers}
        tid = f"timer_{base36(now_ms)}_{self.suffix()}"
        while tid in taken:  # never two timers with one id (cancel would hit the wrong one)
            tid = f"timer_{base36(now_ms)}_{self.suffix()}"
        timer = Timer(bot_id, channel_id, guild_id, message_id, now_ms, tid, now_ms + delay_minutes * 60000,
                      context_note)
        self.timers.append(timer)
        self._save()
        return timer

    def cancel(self, timer_id: str) -> bool:
        before = len(self.timers)
        self.timers = [t for t in self.timers if t.id != timer_id]
        if len(self.timers) == before:
            return False
        self._save()
        return True

    def check_due(self) -> list[Timer]:
        """Fire and remove every due timer (oldest first)."""
        now_ms = self.now() * 1000
        due = sorted((t for t in self.timers if t.triggerAt <= now_ms and self.bot_id in (None, t.botId)),
                     key=lambda t: t.triggerAt)
        if not due:
            return []
        ids = {t.id for t in due}
        self.timers = [t for t in self.timers if t.id not in ids]
        self._save()
        for t in due:
            if self.on_fire is not None:
                self.on_fire(t)
        return due
