"""A trace's context message ids as one compact blob (the trace index's `ctx` table).

Snowflakes of one context share their high bytes, so the int64 ids are stored byte-shuffled
(all lowest bytes, then all second bytes, ...) and zlib-compressed: ~3-4 bytes an id instead of
one index row per id. Membership is a C-speed byte search after un-shuffling, so a search can
check thousands of candidate traces per millisecond range. Positions (where each id sat in the
context) go in a second blob: NULL when the line carried none, empty when they are 0..n-1.
"""

from __future__ import annotations

import sys
import zlib
from array import array

_NONE = -(2 ** 63)  # a position the line did not give
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
