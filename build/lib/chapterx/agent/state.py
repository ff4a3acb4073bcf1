"""Per-channel activation state (reference §1.9): cache marker, rolling counter, window anchor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class ChannelState:
    last_cache_marker: str | None = None
    messages_since_roll: int = 0
    cache_oldest_message_id: str | None = None
    # Extension: the newest message id seen by the previous activation, so the rolling counter
    # counts messages rather than activations (upstream counts activations; §8 item 13).
    newest_seen_message_id: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> ChannelState:
        raw = raw or {}
        return cls(
            last_cache_marker=raw.get("last_cache_marker"),
            messages_since_roll=int(raw.get("messages_since_roll") or 0),
            cache_oldest_message_id=raw.get("cache_oldest_message_id"),
            newest_seen_message_id=raw.get("newest_seen_message_id"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "last_cache_marker": self.last_cache_marker,
            "messages_since_roll": self.messages_since_roll,
            "cache_oldest_message_id": self.cache_oldest_message_id,
        }
        if self.newest_seen_message_id is not None:
            out["newest_seen_message_id"] = self.newest_seen_message_id
        return out


class ChannelStateStore:
    """In-memory store keyed by `botId:channelId` (upstream keeps it in memory too)."""

    def __init__(self) -> None:
        self._states: dict[str, ChannelState] = {}

    def get(self, bot_id: str, channel_id: str) -> ChannelState:
        return self._states.setdefault(f"{bot_id}:{channel_id}", ChannelState())

    def set(self, bot_id: str, channel_id: str, state: ChannelState) -> None:
        self._states[f"{bot_id}:{channel_id}"] = state
