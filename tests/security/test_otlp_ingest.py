"""Issue 9 items 2 and 10 at the HTTP edge: `/v1/traces` decodes big bodies in a worker process,
groups incrementally, and answers 400 (never 500) to malformed bodies."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chapterx.viewer import app as viewer_app
from chapterx_compat.chapter2 import otlp
from tests.security.otlpgen import linked_spans, request
from tests.viewer.conftest import RunningViewer, make_settings

TOKEN = "ingest-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def ingest_viewer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningViewer]:
    monkeypatch.setattr(viewer_app, "PROCESS_DECODE_BYTES", 64 * 1024)  # exercise the worker process
    (tmp_path / "logs").mkdir()
    v = RunningViewer(make_settings(tmp_path, [tmp_path / "logs"], auth_token=TOKEN,
                                    chapter2_dirs=[tmp_path / "otlp-in"])).start()
    yield v
    v.stop()


def _post(v: RunningViewer, body: bytes, **headers: str) -> int:
    return v.request("POST", "/v1/traces", {**AUTH, **headers}, body).status


def test_big_ingest_goes_through_the_worker_and_is_listed(ingest_viewer: RunningViewer) -> None:
    v = ingest_viewer
    big = json.dumps(request(linked_spans(1500, seed=3))).encode()
    assert len(big) > 64 * 1024
    assert _post(v, big) == 200
    small = json.dumps(request(linked_spans(4, seed=4))).encode()
    assert _post(v, small) == 200
    listed = v.request("GET", "/api/traces?limit=5&framework=chapter2", AUTH).json()
    expected = otlp.group_replies(otlp.parse_request(request(linked_spans(1500, seed=3)))
                                  + otlp.parse_request(request(linked_spans(4, seed=4))))
    assert listed["total"] == len(expected) > 1500  # every reply of both requests, grouped as in batch
    late = next(r.trace_id for r in expected if r.trace_id.startswith("0004"))
    assert v.request("GET", f"/api/trace/{late}", AUTH).status == 200  # the small later request is there
    lines = (v.settings.otlp_ingest_dir / next(iter(p.name for p in v.settings.otlp_ingest_dir.iterdir()))).read_bytes()
    assert lines.count(b"\n") == 2  # both requests stored as the collector's file exporter would


@pytest.mark.parametrize("body", [
    b'{"resourceSpans":[1]}', b'{"resourceSpans":[{"scopeSpans":"abc"}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":"x"}]}]}', b'{"resourceSpans":[{"scopeSpans":[1]}]}',
    b"[" * 100_000 + b"]" * 100_000, b"not json", b'"just a string"',
])
def test_malformed_otlp_is_400(ingest_viewer: RunningViewer, body: bytes) -> None:
    r = ingest_viewer.request("POST", "/v1/traces", AUTH, body)
    assert r.status == 400, r.body
    assert b"Traceback" not in r.body


def test_invalid_gzip_is_400(ingest_viewer: RunningViewer) -> None:
    good = gzip.compress(b'{"resourceSpans":[]}')
    assert _post(ingest_viewer, good, **{"Content-Encoding": "gzip"}) == 200
    r = ingest_viewer.request("POST", "/v1/traces", {**AUTH, "Content-Encoding": "gzip"}, good[:12] + b"\0" * 20)
    assert r.status == 400
