"""Event queue and batching (reference §1.2).

Discord events (message, reaction, edit, delete) and internal ones (self_activation, timer,
internal) are batched separately: a poll takes the first event and every following event of the
same category, as upstream; one poll may span several channels, and `BotRuntime.process_batch`
then decides each channel's events on their own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from chapterx.discord.port import Message

DISCORD_EVENT_TYPES = frozenset({"message", "reaction", "edit", "delete"})


@dataclass
class Event:
    """One queued event. `mentions_bot` is computed by the source, which knows Discord's mention rules."""

    type: str  # message | reaction | edit | delete | self_activation | timer | internal
    channel_id: str
    guild_id: str = ""
    message: Message | None = None
    data: dict[str, Any] = field(default_factory=dict)
    mentions_bot: bool = False
    timestamp: float = field(default_factory=time.time)

    @property
    def is_discord(self) -> bool:
        return self.type in DISCORD_EVENT_TYPES


class EventQueue:
    """FIFO of events; `poll_batch` implements upstream's same-category batching."""

    def __init__(self) -> None:
        self._events: deque[Event] = deque()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def push(self, event: Event) -> None:
        self._events.append(event)
        self._wake.set()

    def poll_batch(self) -> list[Event]:
        """The first event plus every directly following event of the same category."""
        if not self._events:
            return []
        first = self._events.popleft()
        batch = [first]
        while self._events and self._events[0].is_discord == first.is_discord:
            batch.append(self._events.popleft())
        if not self._events:
            self._wake.clear()
        return batch

    async def next_batch(self, timeout: float = 0.1) -> list[Event]:
        """Wait up to `timeout` seconds for events (upstream sleeps 100 ms between empty polls)."""
        if not self._events:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return []
        return self.poll_batch()


# ---------------------------------------------------------------------------------------- deferred
TRANSIENT_WORDS = ("econnreset", "socket", "network", "econnrefused", "timeout", "timed out", "overloaded", "529")
TRANSIENT_TYPES = {"server", "rate_limit", "network", "timeout"}
MAX_ATTEMPTS = 5
COOLDOWN_SECONDS = 3600.0
MAX_DELAY_SECONDS = 300.0
BASE_DELAY_SECONDS = 30.0


def transient_error_type(exc: BaseException) -> str | None:
    """Upstream's test for errors worth a deferred retry (§1.6); returns a short type or None."""
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return "rate_limit" if status == 429 else "server"
    kind = getattr(exc, "type", None)
    if getattr(exc, "retryable", False) and isinstance(kind, str) and kind in TRANSIENT_TYPES:
        return kind
    text = str(exc).lower()
    for word in TRANSIENT_WORDS:
        if word in text:
            return "timeout" if "time" in word else "network" if word in ("econnreset", "socket", "network",
                                                                               "econnrefused") else "server"
    return None


@dataclass
class PendingRetry:
    channel_id: str
    guild_id: str
    original_trigger_id: str | None
    retry_attempt: int
    error_type: str
    error_message: str
    due_at: float
    created_at: float

    @property
    def delay_ms(self) -> int:
        return round((self.due_at - self.created_at) * 1000)


class DeferredQueue:
    """At most one pending retry per channel; exponential delay; a cooldown after five attempts."""

    def __init__(self) -> None:
        self.pending: dict[str, PendingRetry] = {}
        self.attempts: dict[str, int] = {}
        self.cooldown_until: dict[str, float] = {}

    def schedule(self, channel_id: str, guild_id: str, trigger_id: str | None, exc: BaseException,
                 error_type: str, now: float) -> PendingRetry | None:
        if channel_id in self.pending or self.cooldown_until.get(channel_id, 0.0) > now:
            return None
        attempt = self.attempts.get(channel_id, 0)
        if attempt >= MAX_ATTEMPTS:
            self.cooldown_until[channel_id] = now + COOLDOWN_SECONDS
            self.attempts.pop(channel_id, None)
            return None
        retry_after = getattr(exc, "retry_after", None)
        delay = min(max(BASE_DELAY_SECONDS * 2 ** attempt, float(retry_after or 0)), MAX_DELAY_SECONDS)
        retry = PendingRetry(channel_id, guild_id, trigger_id, attempt, error_type, str(exc)[:500], now + delay, now)
        self.pending[channel_id] = retry
        self.attempts[channel_id] = attempt + 1
        return retry

    def cancel(self, channel_id: str) -> PendingRetry | None:
        return self.pending.pop(channel_id, None)

    def succeeded(self, channel_id: str) -> None:
        self.attempts.pop(channel_id, None)

    def due(self, now: float) -> list[PendingRetry]:
        ready = [r for r in self.pending.values() if r.due_at <= now]
        for r in ready:
            del self.pending[r.channel_id]
        return ready
