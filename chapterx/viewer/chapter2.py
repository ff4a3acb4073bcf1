"""chapter2 traces for the viewer: scan OTLP-JSON folders, feed the store, keep details; ingest OTLP/HTTP.

The store indexes list/search entries (`TraceStore.add_external`); the detail document (prompt,
continuation, span tree) is rebuilt from the spans kept here, because chapter2 has no trace files.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import gzip
import json
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chapterx.viewer.otlp_chapterx import split_request
from chapterx_compat.chapter2 import otlp

log = logging.getLogger(__name__)

MAX_INGEST_BYTES = 32 * 1024 * 1024
DETAIL_CACHE = 256  # detail documents kept in memory (the store keeps all of them)


@dataclass
class _FileState:
    """How far one OTLP-JSON file has been read (files only grow; anything else is a rebuild)."""

    ino: int
    offset: int
    mtime_ns: int


class Chapter2Source:
    """chapter2 replies read from OTLP-JSON folders, kept up to date incrementally.

    `refresh()` reads only the bytes appended since the last read and regroups only the traces
    they touch (`otlp.ReplyGrouper`); a file that shrank, was replaced or deleted rebuilds all.
    `add_ingested()` takes the spans of an OTLP/HTTP request already parsed, without re-reading.
    Readers never wait for a refresh in progress: they get the last complete state.
    """

    def __init__(self, folders: Iterable[Path], *, min_interval_s: float = 2.0) -> None:
        self.folders = list(folders)
        self.min_interval_s = min_interval_s
        self._files: dict[Path, _FileState] = {}
        self._grouper = otlp.ReplyGrouper()
        self._entries: dict[str, dict[str, Any]] = {}
        # detail documents built for the current replies (by refresh or a first get), so a detail
        # request does not rebuild the span tree each time
        self._details: dict[str, dict[str, Any]] = {}
        #: replies that disappeared (file deleted or rewritten), for the store to forget
        self.removed: list[str] = []
        self._last = 0.0
        # re-entrant: an ingest holds it from its append to its grouping (`ingesting`), and
        # `add_ingested` takes it again inside
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def ingesting(self) -> Iterator[None]:
        """Held by an ingest from appending its line until its spans are grouped. Without it a
        read's refresh could find the line appended but not yet grouped, and read, parse and group
        the whole post itself while that read waited (seconds for a file-sized post)."""
        with self._lock:
            yield

    def files(self) -> list[Path]:
        out: list[Path] = []
        for folder in self.folders:
            out.extend(otlp.iter_files(folder))
        return out

    def refresh(self, force: bool = False) -> list[dict[str, Any]]:
        """Read what was appended since the last call; returns the entries that are new or changed."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return []
        if not self._lock.acquire(blocking=force):
            return []  # another refresh or ingest is running: its result is on the way
        try:
            self._last = now
            return self._refresh_locked()
        finally:
            self._lock.release()

    def _refresh_locked(self) -> list[dict[str, Any]]:
        stats: dict[Path, os.stat_result] = {}
        for f in self.files():
            try:
                stats[f] = f.stat()
            except OSError:
                continue
        rebuild = any(f not in stats for f in self._files) or any(
            st.st_ino != self._files[f].ino or st.st_size < self._files[f].offset
            for f, st in stats.items() if f in self._files)
        if rebuild:
            old = set(self._entries)
            self._files, self._grouper, self._entries, self._details = {}, otlp.ReplyGrouper(), {}, {}
        spans: list[otlp.Span] = []
        for f, st in stats.items():
            state = self._files.get(f)
            if state is not None and state.offset == st.st_size and state.mtime_ns == st.st_mtime_ns:
                continue
            try:
                new_spans, offset = _read_from(f, state.offset if state else 0)
            except OSError as exc:
                log.warning("cannot read chapter2 trace file %s: %s", f, exc.strerror)
                continue
            spans.extend(new_spans)
            self._files[f] = _FileState(st.st_ino, offset, st.st_mtime_ns)
        changed = self._add(spans)
        if rebuild:
            self.removed.extend(sorted(old - set(self._entries)))
        return changed

    def add_ingested(self, path: Path, start: int, end: int, spans: list[otlp.Span],
                     prepared: Prepared | None = None) -> list[Pending]:
        """Spans of one request appended to `path` at [start, end): grouped without re-reading the
        file when nothing else was appended in between (else the file is read from where we were).
        Returns the changed replies; `with_details` turns a batch of them into store entries."""
        with self._lock:
            state = self._files.get(path)
            if (state is None and start == 0) or (state is not None and state.offset == start):
                try:
                    st = path.stat()
                except OSError:
                    return []
                self._files[path] = _FileState(st.st_ino, end, st.st_mtime_ns)
                return self._pending(spans, prepared)
            self._last = time.monotonic()
            return [Pending(e, None, ((), 0)) for e in self._refresh_locked()]

    def _add(self, spans: list[otlp.Span]) -> list[dict[str, Any]]:
        """Group new spans; entries (with their detail, which the store keeps so `chapterx traces
        show` works for chapter2) of replies that are new or changed."""
        return with_details(self._pending(spans, None), None)

    def _pending(self, spans: list[otlp.Span], prepared: Prepared | None) -> list[Pending]:
        """Group new spans; the replies that are new or changed, with their list entry (the detail
        is built later, a batch at a time). Entries the worker already built are reused."""
        if not spans:
            return []
        replies, gone = self._grouper.add(spans)
        changed: list[Pending] = []
        for tid in gone:
            self._entries.pop(tid, None)
            self._details.pop(tid, None)
            self.removed.append(tid)
        for r in replies:
            key = reply_key(r)
            entry = prepared.entries.get(key) if prepared is not None else None
            if entry is None:
                entry = otlp.reply_entry(r)
            if self._entries.get(r.trace_id) != entry:
                self._entries[r.trace_id] = entry
                self._details.pop(r.trace_id, None)  # rebuilt on demand; the store has it
                changed.append(Pending(entry, r, key))
        if prepared is not None:
            changed.sort(key=lambda p: prepared.chunk_of.get(p.key, -1))  # unpickle each chunk once
        return changed

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries.values())

    def get(self, trace_id: str) -> dict[str, Any] | None:
        """Detail of the reply with this id (or any OTLP trace id inside it)."""
        reply = self._grouper.reply_of(trace_id.lower())
        if reply is None:
            return None
        detail = self._details.get(reply.trace_id)
        if detail is None:
            detail = otlp.reply_detail(reply)
            if len(self._details) >= DETAIL_CACHE:
                self._details.pop(next(iter(self._details)))
            self._details[reply.trace_id] = detail
        return detail

    def __contains__(self, trace_id: str) -> bool:
        return self._grouper.reply_of(trace_id.lower()) is not None


def _read_from(path: Path, offset: int) -> tuple[list[otlp.Span], int]:
    """Spans in the complete lines after `offset`, and the offset after the last one read.

    A last line without its newline is read only if it is complete JSON (a file written by hand);
    a whole file that is one pretty-printed request is read as such.
    """
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    cut = data.rfind(b"\n") + 1
    body, rest = data[:cut], data[cut:]
    spans = list(otlp.iter_lines(body.decode("utf-8", "replace").splitlines()))
    end = offset + cut
    if rest.strip():
        try:
            doc = json.loads(rest)
        except ValueError:
            doc = None
        if doc is not None:
            spans.extend(otlp.parse_request(doc))
            end = offset + len(data)
    if offset == 0 and not spans and data.strip().startswith(b"{"):
        try:
            spans = otlp.parse_request(json.loads(data))
            end = len(data)
        except ValueError:
            pass
    return spans, end


# --------------------------------------------------------------------------------- OTLP/HTTP ingest


class IngestError(ValueError):
    """The posted body is not an OTLP trace export request."""


def decode_body(body: bytes, content_type: str, content_encoding: str) -> dict[str, Any]:
    """OTLP/HTTP request body (JSON or protobuf, optionally gzip) -> OTLP-JSON dict with hex ids."""
    # aiohttp already inflates gzip request bodies; only inflate what still looks compressed.
    if content_encoding.strip().lower() == "gzip" and body[:2] == b"\x1f\x8b":
        try:
            body = _gunzip_limited(body)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise IngestError("body is not valid gzip") from exc
    ctype = content_type.split(";")[0].strip().lower()
    doc: dict[str, Any]
    if ctype == "application/json":
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise IngestError("body is not valid JSON (or nested too deeply)") from None
    elif ctype in ("application/x-protobuf", "application/protobuf"):
        doc = _protobuf_to_dict(body)
    else:
        raise IngestError("unsupported content type (use application/json or application/x-protobuf)")
    _check_shape(doc)
    _hex_ids(doc)
    return doc


def _check_shape(doc: Any) -> None:
    """The request's skeleton has the OTLP types (objects and lists), so later code never trips."""
    bad = IngestError("body is not an ExportTraceServiceRequest")
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans", []), list):
        raise bad
    for rs in doc.get("resourceSpans") or []:
        if not isinstance(rs, dict):
            raise bad
        for key in ("scopeSpans", "instrumentationLibrarySpans"):
            sss = rs.get(key)
            if sss is None:
                continue
            if not isinstance(sss, list) or not all(isinstance(ss, dict) for ss in sss):
                raise bad
            for ss in sss:
                spans = ss.get("spans")
                if spans is not None and not isinstance(spans, list):
                    raise bad


def _gunzip_limited(body: bytes) -> bytes:
    import io

    with gzip.GzipFile(fileobj=io.BytesIO(body)) as gz:
        out = gz.read(MAX_INGEST_BYTES + 1)
    if len(out) > MAX_INGEST_BYTES:
        raise IngestError("decompressed body too large")
    return out


def _protobuf_to_dict(body: bytes) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        msg = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise IngestError("body is not a valid protobuf ExportTraceServiceRequest") from exc
    doc: dict[str, Any] = MessageToDict(msg, use_integers_for_enums=True)
    return doc


def _hex_id(value: Any) -> Any:
    """protobuf JSON gives ids in base64; the OTLP/JSON file format wants hex."""
    if not isinstance(value, str) or not value:
        return value
    if all(c in "0123456789abcdefABCDEF" for c in value) and len(value) in (16, 32):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    return raw.hex() if len(raw) in (8, 16) else value


def _hex_ids(doc: dict[str, Any]) -> None:
    for rs in doc.get("resourceSpans") or []:
        for ss in (rs or {}).get("scopeSpans") or []:
            for s in (ss or {}).get("spans") or []:
                if not isinstance(s, dict):
                    continue
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in s:
                        s[key] = _hex_id(s[key])
                for link in s.get("links") or []:
                    if isinstance(link, dict):
                        for key in ("traceId", "spanId"):
                            if key in link:
                                link[key] = _hex_id(link[key])


def span_count(doc: dict[str, Any]) -> int:
    return sum(
        len((ss or {}).get("spans") or [])
        for rs in doc.get("resourceSpans") or []
        for ss in (rs or {}).get("scopeSpans") or []
    )


def append_request(folder: Path, doc: dict[str, Any], now: Callable[[], datetime] | None = None) -> Path:
    """Append one export request as one line, like the collector's file exporter, under a lock."""
    return append_line(folder, request_line(doc), now)[0]


def request_line(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def append_line(folder: Path, line: bytes, now: Callable[[], datetime] | None = None) -> tuple[Path, int, int]:
    """Append one request line under a lock; returns the file and the line's [start, end) offsets."""
    folder.mkdir(parents=True, exist_ok=True)
    day = (now or (lambda: datetime.now(UTC)))().strftime("%Y-%m-%d")
    path = folder / f"otlp-received-{day}.jsonl"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            start = os.fstat(fd).st_size
            if start and os.pread(fd, 1, start - 1) != b"\n":  # a torn last line: start a new one
                os.write(fd, b"\n")
                start += 1
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return path, start, start + len(line)


PROCESS_DECODE_BYTES = 1024 * 1024  # bigger bodies are decoded in a worker process (off the GIL)
# The decode worker's niceness: it takes a core for several seconds a file-sized post. At the
# same priority as the viewer it took the CPU from the viewer's reads (their stalls were run-queue
# waits, bench/README.md); lower, the reads go first and the decode takes what is left.
DECODE_NICE = 10


def lower_priority() -> None:
    """Initializer of the decode worker process: run below the viewer (best effort)."""
    with contextlib.suppress(AttributeError, OSError):  # no os.nice here, or not permitted
        os.nice(DECODE_NICE)


_CHUNK = 300  # spans (or prepared replies) per pickle: each unpickle is a short GIL hold
PreparedKey = tuple[tuple[str, ...], int]  # (sorted OTLP trace ids, span count) of one reply


def reply_key(reply: otlp.Reply) -> PreparedKey:
    return tuple(sorted(reply.traces)), len(reply.spans)


@dataclass
class Decoded:
    """One OTLP/HTTP body, decoded: the line to append, its spans, and the list entry and detail of
    every reply complete within the request (built where the body was decoded). Pickled in chunks,
    so the receiving thread unpickles in short steps instead of one long GIL hold."""

    line: bytes
    count: int
    span_chunks: list[bytes]
    entry_chunks: list[bytes] = field(default_factory=list)
    detail_chunks: list[bytes] = field(default_factory=list)
    chapterx: dict[str, Any] | None = None  # the request's ChapterX spans (OTLP JSON shape), if any

    def spans(self) -> list[otlp.Span]:
        out: list[otlp.Span] = []
        for chunk in self.span_chunks:
            out.extend(pickle.loads(chunk))  # noqa: S301 - produced by our own worker process
        return out

    def prepared(self) -> Prepared:
        entries: dict[PreparedKey, dict[str, Any]] = {}
        chunk_of: dict[PreparedKey, int] = {}
        for n, chunk in enumerate(self.entry_chunks):
            part: dict[PreparedKey, dict[str, Any]] = pickle.loads(chunk)  # noqa: S301 - our own worker's
            entries.update(part)
            chunk_of.update(dict.fromkeys(part, n))
        return Prepared(entries, chunk_of, self.detail_chunks)


@dataclass
class Prepared:
    """Entries built by the worker, and their details as JSON text, still pickled. A detail
    document is large: holding all of a 32 MB request's as objects would cost hundreds of MB, and
    even one chunk of them as objects lives long enough to reach the collector's oldest generation
    (a full collection over them paused every thread ~100 ms a post). The store keeps the text
    as it is."""

    entries: dict[PreparedKey, dict[str, Any]]
    chunk_of: dict[PreparedKey, int]
    detail_chunks: list[bytes]
    _open: tuple[int, dict[PreparedKey, str]] | None = None

    def detail(self, key: PreparedKey) -> str | None:
        """The reply's detail document as JSON text (`TraceStore.add_external`'s `detailJson`)."""
        n = self.chunk_of.get(key)
        if n is None:
            return None
        if self._open is None or self._open[0] != n:
            self._open = (n, pickle.loads(self.detail_chunks[n]))  # noqa: S301 - our own worker's
        return self._open[1].get(key)


@dataclass
class Pending:
    """A new or changed reply waiting for its detail (`reply` None: `entry` already carries it)."""

    entry: dict[str, Any]
    reply: otlp.Reply | None
    key: PreparedKey


def with_details(batch: list[Pending], prepared: Prepared | None) -> list[dict[str, Any]]:
    """Store entries for a batch of changed replies: the worker's detail, or one built here."""
    out = []
    for p in batch:
        if p.reply is None:
            out.append(p.entry)
            continue
        text = prepared.detail(p.key) if prepared is not None else None
        out.append({**p.entry, "detailJson": text} if text is not None
                   else {**p.entry, "detail": otlp.reply_detail(p.reply)})
    return out


def detail_json(detail: dict[str, Any]) -> str:
    """A detail document as the store keeps it (text: strings are not tracked by the collector)."""
    return json.dumps(detail, default=str)


def decode_request(body: bytes, content_type: str, content_encoding: str, *, prepare: bool = False) -> Decoded:
    """Everything CPU-heavy about one ingest (inflate, parse, id conversion, span parsing and, with
    `prepare`, the summaries of the replies the request holds on its own)."""
    doc = decode_body(body, content_type, content_encoding)
    mine, doc = split_request(doc)  # ChapterX spans go to the ChapterX receiver, not the chapter2 files
    chapterx = mine if mine["resourceSpans"] else None
    count = span_count(doc)
    if not count:
        return Decoded(b"", 0, [], chapterx=chapterx)
    spans = otlp.parse_request(doc)
    line = request_line(doc)
    del doc
    chunks = [pickle.dumps(spans[i:i + _CHUNK], protocol=pickle.HIGHEST_PROTOCOL)
              for i in range(0, len(spans), _CHUNK)]
    entry_chunks: list[bytes] = []
    detail_chunks: list[bytes] = []
    if prepare:
        replies = otlp.group_replies(spans)
        for i in range(0, len(replies), _CHUNK):
            part = replies[i:i + _CHUNK]
            entry_chunks.append(pickle.dumps({reply_key(r): otlp.reply_entry(r) for r in part},
                                             protocol=pickle.HIGHEST_PROTOCOL))
            detail_chunks.append(pickle.dumps({reply_key(r): detail_json(otlp.reply_detail(r)) for r in part},
                                              protocol=pickle.HIGHEST_PROTOCOL))
    return Decoded(line, count, chunks, entry_chunks, detail_chunks, chapterx=chapterx)


def decode_and_prepare(body: bytes, content_type: str, content_encoding: str) -> Decoded:
    """`decode_request` with reply summaries, for the worker process."""
    return decode_request(body, content_type, content_encoding, prepare=True)
