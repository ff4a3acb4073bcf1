"""Trace ids, Discord message ids and trace file names.

Upstream trace ids are 8 hex characters (32 random bits): with 10^5 traces collisions become
likely. Ours are 32 hex characters laid out like a UUIDv7 (48-bit millisecond time, then a
per-process counter and random bits), so they sort by creation time, never collide in practice and
still fit upstream's `<channelId>-<traceId>-<timestamp>.json` file name (no `-` inside the id).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from datetime import UTC, datetime

# Readers accept upstream's 8-hex ids, ours (32 hex) and anything id-like in between.
TRACE_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
TRACE_FILE_RE = re.compile(
    r"^(?P<channel>[A-Za-z0-9_]+)-(?P<trace>[A-Za-z0-9_]+)-"
    r"(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)\.json$"
)
# https://discord.com/channels/<guild|@me>/<channel>/<message> (also ptb./canary., discordapp.com)
_LINK_RE = re.compile(r"/channels/(?P<guild>\d+|@me)/(?P<channel>\d+)/(?P<message>\d+)")

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_trace_id(now_ms: int | None = None) -> str:
    """A 32-hex, time-sortable id: 12 hex of epoch ms, 4 hex counter, 16 hex random."""
    global _last_ms, _counter
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFFF:  # more than 65k ids in one ms: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = int.from_bytes(os.urandom(1), "big")  # random start keeps processes apart
        _last_ms = ms
        counter = _counter
    return f"{ms & 0xFFFFFFFFFFFF:012x}{counter:04x}{os.urandom(8).hex()}"


def is_trace_id(value: str) -> bool:
    return bool(TRACE_ID_RE.match(value))


def iso_now(dt: datetime | None = None) -> str:
    """ISO-8601 with milliseconds and `Z`, like JavaScript's `Date.toISOString()`."""
    dt = dt or datetime.now(UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(value: str | None) -> float | None:
    """Epoch seconds of an ISO timestamp, or None when it does not parse."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def trace_file_name(channel_id: str, trace_id: str, started_iso: str) -> str:
    """Upstream's file name: the start time with `:` and `.` replaced by `-`."""
    return f"{channel_id}-{trace_id}-{started_iso.replace(':', '-').replace('.', '-')}.json"


def parse_trace_file_name(name: str) -> tuple[str, str, str] | None:
    """(channelId, traceId, stamp) of a trace file name, or None for anything else."""
    m = TRACE_FILE_RE.match(name)
    if not m:
        return None
    return m.group("channel"), m.group("trace"), m.group("ts")


def snowflake_of(message_id: str | None) -> str | None:
    """Relay ids `rm_<container>_<snowflake>` match their bare snowflake; None stays None."""
    if message_id is None:
        return None
    s = str(message_id)
    if s.startswith("rm_") and "_" in s[3:]:
        return s.rsplit("_", 1)[1]
    return s


def message_id_from_query(query: str) -> str:
    """The message id a search is about: the last number of a Discord message link (guild or DM
    link), else the query itself, trimmed."""
    q = query.strip()
    m = _LINK_RE.search(q)
    if m:
        return m.group("message")
    return q


@functools.lru_cache(maxsize=262144)
def message_key(message_id: str | None) -> int | str | None:
    """The value stored in the message table: the snowflake as an integer when it is one (compact
    and fast to compare), otherwise the normalised text. Cached: ids repeat across traces."""
    if message_id is None:
        return None
    s = str(message_id)
    if s.startswith("rm_") and "_" in s[3:]:
        s = s.rsplit("_", 1)[1]
    if not s:
        return None
    if s.isdigit() and (len(s) < 19 or (len(s) == 19 and s <= "9223372036854775807")):
        return int(s)
    return s
