"""A trace's context message ids as one compact blob (the trace index's `ctx` table).

Snowflakes of one context share their high bytes, so the int64 ids are stored byte-shuffled
(all lowest bytes, then all second bytes, ...) and zlib-compressed: ~3-4 bytes an id instead of
one index row per id. Membership is a C-speed byte search after un-shuffling, so a search can
check thousands of candidate traces per millisecond range. Positions (where each id sat in the
context) go in a second blob: NULL when the line carried none, empty when they are 0..n-1.
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
import zlib
from array import array
from dataclasses import dataclass
from typing import Any

import orjson

_NONE = -(2 ** 63)  # a position the line did not give


def loads(data: bytes) -> Any:
    """`json.loads`, ~3x faster on index lines: orjson, and the standard parser for what orjson
    refuses (NaN, lone surrogates, huge integers), so the answers are the standard parser's."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


_BIG = sys.byteorder == "big"


def _le(arr: array[int]) -> bytes:
    if _BIG:
        arr = array("q", arr)
        arr.byteswap()
    return arr.tobytes()


def encode_ids(ids: list[int]) -> bytes:
    return encode_array(array("q", ids))


def encode_array(ids: array[int]) -> bytes:
    raw = _le(ids)
    shuffled = b"".join(raw[i::8] for i in range(8)) if ids else b""
    return zlib.compress(shuffled, 1)


def decode_raw(blob: bytes) -> bytes:
    """The ids as little-endian int64 bytes."""
    shuffled = zlib.decompress(blob)
    n = len(shuffled) // 8
    out = bytearray(len(shuffled))
    for i in range(8):
        out[i::8] = shuffled[i * n:(i + 1) * n]
    return bytes(out)


def decode_ids(blob: bytes) -> list[int]:
    arr = array("q")
    arr.frombytes(decode_raw(blob))
    if _BIG:
        arr.byteswap()
    return arr.tolist()


def find_id(blob: bytes, key: int) -> int:
    """Index of `key` in the encoded ids, or -1."""
    raw = decode_raw(blob)
    needle = key.to_bytes(8, "little", signed=True)
    at = raw.find(needle)
    while at >= 0 and at % 8:
        at = raw.find(needle, at + 1)
    return -1 if at < 0 else at // 8


def encode_positions(positions: list[int | None] | None) -> bytes | None:
    if positions is None or all(p is None for p in positions):
        return None
    if positions == list(range(len(positions))):
        return b""
    try:
        arr = array("q", [_NONE if p is None else p for p in positions])
    except OverflowError:  # a position no int64 holds: unknown, like any other non-position
        arr = array("q", [p if isinstance(p, int) and _NONE < p < 2 ** 63 else _NONE for p in positions])
    return zlib.compress(_le(arr), 1)


def position_at(blob: bytes | None, index: int) -> int | None:
    if blob is None:
        return None
    if blob == b"":
        return index
    arr = array("q")
    arr.frombytes(zlib.decompress(blob))
    if _BIG:
        arr.byteswap()
    p = arr[index] if 0 <= index < len(arr) else _NONE
    return None if p == _NONE else int(p)


def decode_positions(blob: bytes | None, n: int) -> list[int | None]:
    return [position_at(blob, i) for i in range(n)] if blob else ([None] * n if blob is None else list(range(n)))


def span_level(min_id: int, max_id: int) -> int:
    """The span class of a range: max - min < 2**lvl, so a range holding `key` has
    min_id > key - 2**lvl (what bounds a search's index scan per class)."""
    return (max_id - min_id).bit_length()


# ---------------------------------------------------------------- index lines as bytes
# A build reads millions of ~6 KB lines whose bulk is the context id array. Parsing it into 200
# Python strings a line was most of the build time, so the common shape (every id a plain
# snowflake string, or every id one relay spelling `rm_<container>_<snowflake>`) is cut out of the
# bytes and handled with C-level bytes operations; the trace row keeps where its line is, and a
# search checks candidates against the line itself. Anything else takes the full JSON parse.
CTX_KEY = b'"contextMessageIds":'
POS_KEY = b'"contextPositions":'
POS_IN_LINE = b"@"  # `ctx.pos` of a row checked against its line: positions are in the line too
IN_LINE = b""  # `ctx.ids` of such a row: no stored list
_INT64_MAX = b'"9223372036854775807"'
IDENTITY = b""  # `LineContext.pos` when the positions are 0..n-1


@dataclass(slots=True)
class LineContext:
    """A line's context ids as cut from its bytes: distinct count, id range, the ids new since the
    previous context of the same channel (all of them when there was none to compare with) and
    the positions kind (None, IDENTITY or POS_IN_LINE)."""

    n: int
    lo: int
    hi: int
    new: list[int]
    count: int  # items in the line, repeats included
    whole: bool  # `new` is every id (nothing to compare with)
    pos: bytes | None = None


@dataclass(frozen=True, slots=True)
class ChanState:
    """The last context of a channel, normalised (`"digits","digits",...`), with its item width
    and last item, kept only when its ids are strictly increasing (the common case)."""

    content: bytes
    width: int
    last: bytes


def _array_span(raw: bytes, key: bytes) -> tuple[int, int, int] | None:
    """(start of key, start of array content, index of its `]`) of the one `key: [` in `raw`;
    None when absent or not in the plain shape. The key's quote follows `{`, `,` or a space, so
    it is not inside a string (a quote inside a string is always escaped)."""
    i = raw.find(key)
    if i <= 0 or raw[i - 1] not in b"{, ":
        return None
    j = i + len(key)
    while j < len(raw) and raw[j] == 0x20:
        j += 1
    if j >= len(raw) or raw[j] != 0x5B:  # [
        return None
    k = raw.find(b"]", j)
    # the key once: not after the array (the caller checks the array's items, which cannot hold it)
    return None if k < 0 or raw.find(key, k) >= 0 else (i, j + 1, k)


def _prefix(content: bytes) -> bytes:
    """How the first id starts: `"` or, for a relay id, `"rm_<container>_` (what `message_key`
    takes off)."""
    if content.startswith(b'"rm_'):
        first = content[1:content.find(b'"', 1)]
        u = first.rfind(b"_")
        if u >= 3:
            return b'"' + first[:u + 1]
    return b'"'


def _plain_items(items: list[bytes], w: int, p: bytes) -> bool:
    """Every item `p` + digits + `"` of width `w`, no leading zero (the key's own spelling)."""
    k = len(p)
    for s in items:
        if len(s) != w or not s.startswith(p) or s[-1] != 0x22 or s[k] == 0x30 or not s[k:-1].isdigit():
            return False
    return True


def _analyse(content: bytes, prev: ChanState | None, p: bytes) -> tuple[LineContext, ChanState | None] | None:
    """The context of one line, all of whose ids are spelt `p` + snowflake, given the previous
    context of its channel spelt the same way; None when it is not plain snowflakes of one width.
    Common path (ids strictly increasing, the previous context's tail is this one's head): only
    the new ids are looked at; the rest was checked with the previous line and is compared as
    bytes, so no per-id object is made. Otherwise every item is checked (at C speed)."""
    k = len(p)
    w = content.find(b'"', 1) + 1  # item width, quotes and prefix included
    if w < k + 2 or w - k > 20 or (len(content) + 1) % (w + 1):
        return None  # mixed lengths do not sort as bytes; 20+ digits are not int64
    n = (len(content) + 1) // (w + 1)
    if prev is not None and prev.width == w:
        x = prev.content.find(content[:w])
        if x >= 0:
            common = len(prev.content) - x
            # compared in place (a memoryview of the shared part: no copy of ~4 KB per line)
            if content.startswith(memoryview(prev.content)[x:]) and (len(content) == common or content[common] == 0x2C):
                suffix = content[common + 1:]
                new = suffix.split(b",") if suffix else []
                if not new or (_plain_items(new, w, p) and new[0][k:] > prev.last[k:]
                               and all(a < b for a, b in itertools.pairwise(new))):
                    last = new[-1] if new else prev.last
                    if w - k < 20 or last[k:] <= _INT64_MAX[1:]:
                        ctx = LineContext(n, int(content[k:w - 1]), int(last[k:-1]), [int(s[k:-1]) for s in new],
                                          n, False)
                        return ctx, ChanState(content, w, last)
    # every item: `p` at each start, quotes only at the ends, digits between, no leading zero
    if content[::w + 1] != b'"' * n or content[w - 1::w + 1] != b'"' * n or content.count(b'"') != 2 * n \
            or content.count(b",") != n - 1 or (k > 1 and content.count(p) != n):
        return None
    norm = content.replace(p, b'"') if k > 1 else content
    if not norm.translate(None, b'",').isdigit() or b'"0' in norm:
        return None
    items = norm.split(b",")
    top = max(items)
    if w - k == 20 and top > _INT64_MAX:
        return None  # not an int64: a text key (general path)
    distinct = set(items)
    keys = sorted(int(s[1:-1]) for s in distinct)
    ordered = len(distinct) == n and all(a < b for a, b in itertools.pairwise(items))
    state = ChanState(content, w, content[-w:]) if ordered else None
    return LineContext(len(distinct), keys[0], keys[-1], keys, n, True), state


def _int_list(content: bytes) -> int | None:
    """The length of a positions array of plain integers; None for anything else."""
    try:
        values = loads(b"[" + content + b"]")
    except ValueError:
        return None
    ok = all(type(v) is int and _NONE < v < 2 ** 63 for v in values)
    return len(values) if ok else None


def state_ids(state: ChanState) -> list[int]:
    """The ids of a channel's last context."""
    k = len(_prefix(state.content))
    return [int(s[k:-1]) for s in state.content.split(b",")]


@functools.lru_cache(maxsize=256)  # bounded: a line's length is whatever its writer made it
def _identity(n: int) -> bytes:
    """`0,1,...,n-1` as a positions array holds it (compared as bytes)."""
    return ",".join(map(str, range(n))).encode()


def cut_line(raw: bytes, prev: dict[tuple[str, bytes], ChanState]) -> tuple[dict[str, Any], LineContext | None] | None:
    """The line's fields without its context arrays, and its context as bytes (`prev`: each
    channel's last context, updated); None when the line is not in the plain shape (the caller
    parses it fully, which also decides whether it is malformed)."""
    span = _array_span(raw, CTX_KEY)
    if span is None:
        return None
    i, a, b = span
    content = raw[a:b]
    rest = raw[:i] + b'"contextMessageIds":null' + raw[b + 1:]
    ps = _array_span(rest, POS_KEY)
    positions = None
    if ps is not None:
        pi, pa, pb = ps
        positions = rest[pa:pb].replace(b" ", b"")
        rest = rest[:pi] + b'"contextPositions":null' + rest[pb + 1:]
    try:
        entry = loads(rest)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(entry, dict) or (ps is None and entry.get("contextPositions") is not None):
        return None  # positions in another shape (general path)
    if not content.strip():
        entry["contextMessageIds"] = []
        return entry, None
    chan = entry.get("channelId")
    if b" " in content[:64]:  # written with ", " (spaces further on fail the item checks)
        content = content.replace(b", ", b",")
    p = _prefix(content)
    key = ("" if chan is None else str(chan), p)  # the channel as the trace row spells it
    got = _analyse(content, prev.get(key), p)
    if got is not None and positions is not None:
        n = got[0].count
        if positions == _identity(n):
            got[0].pos = IDENTITY
        else:
            size = _int_list(positions)
            if size is None:
                got = None  # odd values: the general path decides
            else:  # of another length than the ids: no positions
                got[0].pos = POS_IN_LINE if size == n else None
    if got is None:
        prev.pop(key, None)
        return None
    ctx, state = got
    if state is None:
        prev.pop(key, None)
    else:
        prev[key] = state
    return entry, ctx


def line_find(line: bytes, key: int, pos: bytes | None) -> tuple[bool, int | None]:
    """Check a candidate against its line: (holds `key` in its context, position or None), with
    `pos` the positions kind stored at build time. The first occurrence wins, as for a list.
    Raises ValueError when the line is no longer in the shape it was indexed from."""
    span = _array_span(line, CTX_KEY)
    if span is None:
        raise ValueError("context array not found")
    _i, a, b = span
    k = str(key).encode()
    at1 = line.find(b'"' + k + b'"', a, b)
    at2 = line.find(b"_" + k + b'"', a, b)
    at = min(x for x in (at1, at2, b) if x >= 0)
    if at >= b:
        return False, None
    index = line.count(b",", a, at)
    if pos is None or pos == IDENTITY:
        return True, None if pos is None else index
    ps = _array_span(line, POS_KEY)
    if ps is None:
        raise ValueError("positions not found")
    _pi, pa, pb = ps
    try:
        positions = loads(b"[" + line[pa:pb] + b"]")
    except ValueError:
        return True, None
    p = positions[index] if index < len(positions) else None
    ok = isinstance(p, int) and not isinstance(p, bool) and _NONE < p < 2 ** 63
    return True, p if ok else None
