"""The JSONL tool log (reference §5.5): `tools/<botId>/<channelId>/<YYYY-MM-DDTHH>.jsonl`.

Each line is one tool call with its result; `botMessageIds` ties it to the Discord messages the bot
sent in that activation, so later contexts show the call (and hide those messages) and a deleted
bot message drops its calls. Unlike upstream, an empty file after a deletion is simply removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def channel_dir(root: Path, bot_id: str, channel_id: str) -> Path:
    return root / bot_id / channel_id


def load_entries(root: Path, bot_id: str, channel_id: str) -> list[dict[str, Any]]:
    """Every logged call of the channel, oldest file first (bad lines are skipped)."""
    folder = channel_dir(root, bot_id, channel_id)
    if not folder.is_dir():
        return []
    out: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("call"), dict):
                out.append(entry)
    return out


def append_entries(
    root: Path, bot_id: str, channel_id: str, entries: Sequence[Mapping[str, Any]], bot_message_ids: Sequence[str],
    *, now: datetime | None = None,
) -> Path | None:
    """Append this activation's calls (with the ids of the messages it sent) to the hour's file."""
    if not entries:
        return None
    moment = now or datetime.now(UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    folder = channel_dir(root, bot_id, channel_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stamp[:13]}.jsonl"
    with path.open("a", encoding="utf-8") as fh:
        for e in entries:
            call = dict(e.get("call") or {})
            if bot_message_ids and not call.get("botMessageIds"):
                call["botMessageIds"] = list(bot_message_ids)
            result = {k: v for k, v in dict(e.get("result") or {}).items() if v is not None or k == "output"}
            fh.write(json.dumps({"call": call, "result": result, "timestamp": stamp}, ensure_ascii=False) + "\n")
    return path


def remove_by_bot_message(root: Path, bot_id: str, channel_id: str, message_ids: Iterable[str]) -> int:
    """Drop every line whose `botMessageIds` contains a deleted bot message; returns lines removed."""
    gone = set(message_ids)
    folder = channel_dir(root, bot_id, channel_id)
    removed = 0
    if not folder.is_dir():
        return 0
    for path in sorted(folder.glob("*.jsonl")):
        keep: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                ids = set(json.loads(line).get("call", {}).get("botMessageIds") or [])
            except (ValueError, AttributeError):
                ids = set()
            if ids & gone:
                removed += 1
            else:
                keep.append(line)
        if keep:
            path.write_text("\n".join(keep) + "\n", encoding="utf-8")
        else:
            path.unlink()
    return removed
