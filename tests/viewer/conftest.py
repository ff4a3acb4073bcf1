"""A real viewer (AppRunner on 127.0.0.1, port 0) in a background thread, over a real TraceStore."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chapterx.viewer.settings import ViewerSettings
from tests.conftest import SHARED_DIR

SAMPLE_LOGS = SHARED_DIR / "golden" / "chapterx" / "sample-logs" / "logs"
OTLP_DIR = SHARED_DIR / "golden" / "chapter2" / "otlp"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RunningViewer:
    """The viewer app served from its own event loop thread; `request` speaks raw HTTP."""

    def __init__(self, settings: ViewerSettings) -> None:
        self.settings = settings
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: Any = None

    def _run(self) -> None:
        from chapterx.viewer.server import start

        asyncio.set_event_loop(self._loop)
        try:
            self._runner, self.port = self._loop.run_until_complete(start(self.settings))
        except BaseException as exc:  # noqa: BLE001 - surfaced in start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def start(self) -> RunningViewer:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            has_host = any(k.lower() == "host" for k in (headers or {}))
            conn.putrequest(method, path, skip_accept_encoding=True, skip_host=has_host)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()


def make_settings(tmp: Path, logs: list[Path], **kw: Any) -> ViewerSettings:
    s = ViewerSettings(
        host="127.0.0.1",
        port=0,
        logs_dirs=logs,
        retention_days=0,
        index_path=tmp / "index.sqlite",
        ingest_dir=tmp / "otlp-in",
    )
    for k, v in kw.items():
        setattr(s, k, v)
    return s


INGEST_TOKEN = "ingest-token-1"


@pytest.fixture()
def ingest_viewer(tmp_path: Path) -> Iterator[RunningViewer]:
    """A viewer over an empty logs folder that takes OTLP posts with `INGEST_TOKEN`."""
    logs = tmp_path / "logs"
    (logs / "traces").mkdir(parents=True)
    v = RunningViewer(make_settings(tmp_path, [logs], auth_token=INGEST_TOKEN)).start()
    yield v
    v.stop()


@pytest.fixture(scope="module")
def sample_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SAMPLE_LOGS.is_dir():
        pytest.skip("golden sample logs not present")
    return SAMPLE_LOGS


@pytest.fixture(scope="module")
def viewer(sample_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningViewer]:
    tmp = tmp_path_factory.mktemp("viewer")
    v = RunningViewer(make_settings(tmp, [sample_logs])).start()
    yield v
    v.stop()


@pytest.fixture(scope="module")
def auth_viewer(sample_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningViewer]:
    tmp = tmp_path_factory.mktemp("viewer-auth")
    v = RunningViewer(make_settings(tmp, [sample_logs], auth_token="golden-test-token-7f3a")).start()
    yield v
    v.stop()


@pytest.fixture(scope="module")
def ch2_viewer(sample_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningViewer]:
    """Sample ChapterX logs + a copy of the golden chapter2 OTLP files."""
    if not OTLP_DIR.is_dir():
        pytest.skip("golden chapter2 otlp files not present")
    tmp = tmp_path_factory.mktemp("viewer-ch2")
    ch2 = tmp / "ems" / "logs"
    ch2.mkdir(parents=True)
    for f in OTLP_DIR.glob("*.jsonl"):
        shutil.copy(f, ch2 / f.name)
    v = RunningViewer(make_settings(tmp, [sample_logs], chapter2_dirs=[ch2])).start()
    yield v
    v.stop()


# --- headless Chromium (Debian's; never a downloaded browser) for the browser tests ------------------
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@contextlib.contextmanager
def checked_page(browser: Any, *, height: int) -> Iterator[Any]:
    """A page that fails its test on a script error or a CSP violation (which would mean the UI tried
    inline script or style, or a foreign resource)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": height})
    pg = ctx.new_page()
    pg.set_default_timeout(10000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    pg.errors = errors
    yield pg
    ctx.close()
    assert not errors, errors
