"""Plugin state under `CACHE_PATH/plugins/<plugin>/`, by scope, written atomically.

`global.json` holds the state itself, `channel/<ch>.json` `{"state": ..., "metadata": {...}}`; `epic/<ch>.json`
is an event list (`{messageId, timestamp, delta}`). Unlike upstream, an epic read replays the
events whose message is still in context (upstream never read them back; see docs/differences.md).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCOPES = ("global", "channel", "epic", "off")


def atomic_write_json(path: Path, value: Any, *, indent: int | None = 2) -> None:
    """Write JSON next to `path`, then rename over it: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(value, fh, indent=indent, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def iso(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class ScopedState:
    """One plugin's state in one channel under its configured scope."""

    root: Path  # CACHE_PATH/plugins
    plugin: str
    scope: str
    channel_id: str
    context_message_ids: tuple[str, ...] = ()

    def _path(self) -> Path:
        base = self.root / self.plugin
        if self.scope == "global":
            return base / "global.json"
        if self.scope == "epic":
            return base / "epic" / f"{self.channel_id}.json"
        return base / "channel" / f"{self.channel_id}.json"

    def get(self) -> Any:
        if self.scope == "off":
            return None
        data = _read_json(self._path())
        if self.scope == "epic":
            if not isinstance(data, list):
                return None
            visible = set(self.context_message_ids)
            state: Any = None
            for event in data:
                if isinstance(event, dict) and (not visible or event.get("messageId") in visible):
                    state = event.get("delta")
            return state
        if self.scope == "global":
            return data
        return data.get("state") if isinstance(data, dict) else None

    def set(self, value: Any, message_id: str | None, now: float) -> None:
        if self.scope == "off":
            return
        path = self._path()
        if self.scope == "epic":
            events = _read_json(path)
            events = events if isinstance(events, list) else []
            events.append({"messageId": message_id, "timestamp": iso(now), "delta": value})
            atomic_write_json(path, events)
            return
        if self.scope == "global":
            atomic_write_json(path, value)
            return
        atomic_write_json(path, {"state": value, "metadata": {"lastModifiedMessageId": message_id}})
