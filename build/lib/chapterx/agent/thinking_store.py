"""Native thinking blocks kept across activations (`preserve_thinking_blocks`, reference §3.8).

Chat-mode replies with extended thinking return signed thinking blocks. They are stored per channel
(`<dir>/<botId>/<channelId>/<YYYY-MM-DDTHH>.jsonl`, keyed by the first Discord message id of the
reply) and put back in front of that bot message in later contexts, verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

THINKING_TYPES = ("thinking", "redacted_thinking")


def save(root: Path, bot_id: str, channel_id: str, message_id: str, blocks: Sequence[Mapping[str, Any]],
         *, now: datetime | None = None) -> Path | None:
    keep = [dict(b) for b in blocks if b.get("type") in THINKING_TYPES]
    if not keep or not message_id:
        return None
    moment = now or datetime.now(UTC)
    folder = root / bot_id / channel_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{moment.strftime('%Y-%m-%dT%H')}.jsonl"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"messageId": message_id, "blocks": keep}, ensure_ascii=False) + "\n")
    return path


def load(root: Path, bot_id: str, channel_id: str) -> dict[str, list[dict[str, Any]]]:
    folder = root / bot_id / channel_id
    out: dict[str, list[dict[str, Any]]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("messageId") and isinstance(entry.get("blocks"), list):
                out[str(entry["messageId"])] = entry["blocks"]
    return out
