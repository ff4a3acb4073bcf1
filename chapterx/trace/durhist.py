"""Duration histograms kept per hour, bot and framework in the trace index (`hourly.hist`).

Exact nearest-rank percentiles over a month need every duration of that month (half a million
at a million traces). A histogram per hour is a few hundred bytes and merges by adding counts,
so p50/p95 over any run of whole hours costs about the same at a million traces as at a thousand.

Buckets are log-spaced: a duration of `ms` >= 1 falls in bucket floor(log(ms) / log(RATIO)),
i.e. [RATIO**k, RATIO**(k+1)); durations below 1 ms fall in bucket -1. A bucket stands for the
integer nearest its geometric middle, kept inside the bucket's integers and inside the exact
[min, max] of the merged hours. Precision of a percentile read from histograms: within
`RELATIVE_ERROR` (2%) of the exact nearest-rank value, plus 0.5 ms of rounding; exact when it
is the smallest or the largest duration, or when the bucket holds one distinct value (durations
under ~25 ms have a bucket each). Counts are exact, and a delete subtracts exactly what the
insert added.

Stored form (`encode`): little-endian int32s, the first bucket index, then the counts of the
buckets from there on (both ends trimmed of zeros). In flight (a build's workers, deltas) a
histogram is a dict {bucket: count}.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from itertools import accumulate
from operator import add

RATIO = 1.04
RELATIVE_ERROR = math.sqrt(RATIO) - 1  # 0.0198
INV = 1 / math.log(RATIO)  # bucket = floor(log(ms) * INV)
_BIG = sys.byteorder == "big"


def bucket(ms: float) -> int:
    """The bucket of a duration in ms."""
    return int(math.log(ms) * INV) if ms >= 1 else -1


def _value(k: int) -> int:
    if k < 0:
        return 0
    lo = math.ceil(math.pow(RATIO, k))
    hi = max(lo, math.ceil(math.pow(RATIO, k + 1)) - 1)
    return min(hi, max(lo, round(math.pow(RATIO, k + 0.5))))


_VALUES = [_value(k) for k in range(1024)]  # up to ~3e17 ms: any duration a line can hold


def value(k: int) -> int:
    """The duration a bucket stands for: the integer nearest its geometric middle, within the bucket."""
    return _VALUES[k] if 0 <= k < len(_VALUES) else _value(k)


def decode(blob: bytes) -> array:
    """A stored histogram as int32s: [first bucket, counts...]."""
    arr = array("i")
    arr.frombytes(blob)
    if _BIG:
        arr.byteswap()
    return arr


def merge(blobs: list[bytes]) -> tuple[int, list[int]]:
    """(first bucket, counts) of the sum of stored histograms (a read's whole hours)."""
    arrs = [decode(b) for b in blobs]
    if len(arrs) == 1:
        return arrs[0][0], arrs[0][1:].tolist()
    lo = min(a[0] for a in arrs)
    hi = max(a[0] + len(a) - 1 for a in arrs)
    zeros = array("i", bytes(4 * (hi - lo)))
    padded = [zeros[:a[0] - lo] + a[1:] + zeros[:hi - a[0] - len(a) + 1] for a in arrs]
    return lo, list(map(sum, zip(*padded, strict=True)))


def percentiles(lo: int, counts: Iterable[int], ps: tuple[float, ...], lo_ms: float | None,
                hi_ms: float | None, *, exact_bounds: bool = True) -> list[float | None]:
    """Nearest-rank p-th fractions (0 < p <= 1) of a histogram whose first bucket is `lo`, clamped
    to [lo_ms, hi_ms] when known. With `exact_bounds` those are the smallest and largest duration
    themselves (the first and last rank are then exact); otherwise only bounds around them."""
    cum = list(accumulate(counts))
    n = cum[-1] if cum else 0
    if n <= 0:
        return [None for _ in ps]
    out: list[float | None] = []
    for p in ps:
        rank = max(1, math.ceil(n * p))
        if rank == 1 and lo_ms is not None and exact_bounds:
            out.append(float(lo_ms))
        elif rank == n and hi_ms is not None and exact_bounds:
            out.append(float(hi_ms))
        else:
            v = float(value(lo + bisect_left(cum, rank)))
            if lo_ms is not None:
                v = max(v, float(lo_ms))
            if hi_ms is not None:
                v = min(v, float(hi_ms))
            out.append(v)
    return out


def count_many(values: list[int]) -> dict[int, int]:
    """The histogram of many durations (a ragged end's rows): `bucket` without a call per value."""
    log, inv = math.log, INV
    return dict(Counter([int(log(ms) * inv) if ms >= 1 else -1 for ms in values]))


def count_into(hist: dict[int, int], ms: float, sign: int = 1) -> None:
    k = bucket(ms)
    hist[k] = hist.get(k, 0) + sign


def encode(lo: int, counts: array) -> bytes | None:
    """The stored form of counts starting at bucket `lo` (None when empty)."""
    first = next((i for i, c in enumerate(counts) if c), None)
    if first is None:
        return None
    last = len(counts) - next(i for i, c in enumerate(reversed(counts)) if c)
    out = array("i", [lo + first, *counts[first:last]])
    if _BIG:
        out.byteswap()
    return out.tobytes()


class Dense:
    """A histogram being merged: counts of buckets lo, lo+1, ... (int64, may go negative in a delta)."""

    __slots__ = ("counts", "lo")

    def __init__(self) -> None:
        self.lo = 0
        self.counts = array("q")

    def _cover(self, lo: int, n: int) -> int:
        """Widen to cover buckets [lo, lo + n); returns the offset of `lo`."""
        if not self.counts:
            self.lo = lo
            self.counts = array("q", bytes(8 * n))
            return 0
        if lo < self.lo:
            self.counts[:0] = array("q", bytes(8 * (self.lo - lo)))
            self.lo = lo
        end = lo + n - self.lo
        if end > len(self.counts):
            self.counts.extend(array("q", bytes(8 * (end - len(self.counts)))))
        return lo - self.lo

    def add_blob(self, blob: bytes | None) -> None:
        if not blob:
            return
        arr = decode(blob)
        lo, counts = arr[0], arr[1:]
        a = self._cover(lo, len(counts))
        b = a + len(counts)
        self.counts[a:b] = array("q", map(add, self.counts[a:b], counts))

    def add_dict(self, hist: dict[int, int]) -> None:
        if not hist:
            return
        lo, hi = min(hist), max(hist)
        a = self._cover(lo, hi - lo + 1)
        for k, n in hist.items():
            self.counts[a + k - lo] += n

    def drop_negative(self) -> None:
        """Counts below zero become zero (a difference taken across two reads that a commit fell between)."""
        if any(c < 0 for c in self.counts):
            self.counts = array("q", (max(0, c) for c in self.counts))

    def blob(self) -> bytes | None:
        return encode(self.lo, self.counts)

    def total(self) -> int:
        return sum(self.counts)

    def percentile(self, p: float, lo_ms: float | None, hi_ms: float | None) -> float | None:
        """Nearest-rank p-th fraction (0 < p <= 1), clamped to the exact [lo_ms, hi_ms] when known."""
        return percentiles(self.lo, self.counts.tolist(), (p,), lo_ms, hi_ms)[0]
