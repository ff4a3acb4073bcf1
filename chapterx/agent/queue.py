"""Event queue and batching (reference §1.2).

Discord events (message, reaction, edit, delete) and internal ones (self_activation, timer,
internal) are batched separately: a poll takes the first event and every following event of the
same category, so one batch may span several channels (upstream behaviour the decisions rely on).
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
