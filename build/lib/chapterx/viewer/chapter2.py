"""chapter2 traces for the viewer: scan OTLP-JSON folders, feed the store, keep details; ingest OTLP/HTTP.

The store indexes list/search entries (`TraceStore.add_external`); the detail document (prompt,
continuation, span tree) is rebuilt from the spans kept here, because chapter2 has no trace files.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import gzip
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compat.chapter2 import otlp

log = logging.getLogger(__name__)

MAX_INGEST_BYTES = 32 * 1024 * 1024


class Chapter2Source:
    """chapter2 replies read from OTLP-JSON folders; `refresh()` re-reads when a file changed."""

    def __init__(self, folders: Iterable[Path], *, min_interval_s: float = 2.0) -> None:
        self.folders = list(folders)
        self.min_interval_s = min_interval_s
        self._stamp: dict[Path, tuple[int, int]] = {}
        self._file_spans: dict[Path, tuple[tuple[int, int], list[otlp.Span]]] = {}
        self._replies: dict[str, otlp.Reply] = {}
        self._alias: dict[str, str] = {}
        self._entries: dict[str, dict[str, Any]] = {}
        # detail documents built for the current replies (by refresh or a first get), so a detail
        # request does not rebuild the span tree each time
        self._details: dict[str, dict[str, Any]] = {}
        #: replies that disappeared (file deleted or rewritten), for the store to forget
        self.removed: list[str] = []
        self._last = 0.0
        self._lock = threading.Lock()

    def files(self) -> list[Path]:
        out: list[Path] = []
        for folder in self.folders:
            out.extend(otlp.iter_files(folder))
        return out

    def refresh(self, force: bool = False) -> list[dict[str, Any]]:
        """Re-read if any file changed; returns the entries that are new or changed."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return []
        with self._lock:
            self._last = now
            files = self.files()
            stamp: dict[Path, tuple[int, int]] = {}
            for f in files:
                try:
                    st = f.stat()
                except OSError:
                    continue
                stamp[f] = (st.st_size, st.st_mtime_ns)
            if stamp == self._stamp:
                return []
            self._stamp = stamp
            spans: list[otlp.Span] = []
            cache: dict[Path, tuple[tuple[int, int], list[otlp.Span]]] = {}
            for f, fstamp in stamp.items():
                hit = self._file_spans.get(f)
                if hit is not None and hit[0] == fstamp:
                    file_spans = hit[1]  # unchanged file: no re-parse
                else:
                    try:
                        file_spans = otlp.read_file(f)
                    except OSError as exc:
                        log.warning("cannot read chapter2 trace file %s: %s", f, exc.strerror)
                        continue
                cache[f] = (fstamp, file_spans)
                spans.extend(file_spans)
            self._file_spans = cache
            replies = otlp.group_replies(spans)
            changed = []
            new_replies: dict[str, otlp.Reply] = {}
            alias: dict[str, str] = {}
            entries: dict[str, dict[str, Any]] = {}
            details: dict[str, dict[str, Any]] = {}
            for r in replies:
                entry = otlp.reply_entry(r)
                new_replies[r.trace_id] = r
                entries[r.trace_id] = entry
                for t in r.traces:
                    alias[t] = r.trace_id
                if self._entries.get(r.trace_id) != entry:
                    # the store keeps the detail too, so `chapterx traces show <id>` works for chapter2
                    details[r.trace_id] = otlp.reply_detail(r)
                    changed.append({**entry, "detail": details[r.trace_id]})
            self.removed.extend(tid for tid in self._entries if tid not in entries)
            self._replies, self._alias, self._entries = new_replies, alias, entries
            self._details = details
            return changed

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries.values())

    def get(self, trace_id: str) -> dict[str, Any] | None:
        """Detail of the reply with this id (or any OTLP trace id inside it)."""
        main = self._alias.get(trace_id.lower())
        reply = self._replies.get(main) if main else None
        if reply is None:
            return None
        if reply.trace_id not in self._details:
            self._details[reply.trace_id] = otlp.reply_detail(reply)
        return self._details[reply.trace_id]

    def __contains__(self, trace_id: str) -> bool:
        return trace_id.lower() in self._alias


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
    if ctype == "application/json":
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IngestError("body is not valid JSON") from exc
    elif ctype in ("application/x-protobuf", "application/protobuf"):
        doc = _protobuf_to_dict(body)
    else:
        raise IngestError("unsupported content type (use application/json or application/x-protobuf)")
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans", []), list):
        raise IngestError("body is not an ExportTraceServiceRequest")
    _hex_ids(doc)
    return doc


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
    return MessageToDict(msg, use_integers_for_enums=True)


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
    folder.mkdir(parents=True, exist_ok=True)
    day = (now or (lambda: datetime.now(UTC)))().strftime("%Y-%m-%d")
    path = folder / f"otlp-received-{day}.jsonl"
    line = (json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.write(fd, line)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return path
