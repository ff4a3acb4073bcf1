"""Property-based fuzzing of every parser that takes outside input (issue 9, "keep it closed").

Each property: no traceback (only the documented one-line error type, or a 4xx), bounded work, and
nothing outside the roots read. Examples are bounded so the whole file stays within seconds.
"""

from __future__ import annotations

import http.client
import json
import string
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chapterx.config.errors import ConfigError
from chapterx.config.load import resolve_bot_config
from chapterx.config.pins import extract_config_pins
from chapterx.viewer.app import ApiError, parse_time
from chapterx.viewer.chapter2 import IngestError, decode_request
from chapterx_compat.chapter2 import otlp
from chapterx_compat.chapter2.load import Chapter2Error, load
from tests.viewer.conftest import RunningViewer, make_settings

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
TOKEN = "MTIzNDU2Nzg5.fuzz-TOKEN.outside-root-0001"
GOOD = "name: Aria\ncontinuation_model: claude-3-opus-20240229\n"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)
otlp_keys = st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "links", "attributes",
                             "resource", "name", "startTimeUnixNano", "status", "events", "parentSpanId"])
otlp_like = st.recursive(
    st.none() | st.integers() | st.text(string.hexdigits, max_size=32) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(otlp_keys, inner, max_size=5),
    max_leaves=30,
)
yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.tuples(st.sampled_from(["system_prompt_file", "max_tokens", "temperature", "name", "target",
                                        "context_prefix_file", "stop_sequences", "tts_relay", "&a", "*a", "<<"]),
                       st.text(string.printable, max_size=30)), max_size=6)
    .map(lambda kv: "\n".join(f"{k}: {v}" for k, v in kv)),
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "c" / "bots").mkdir(parents=True)
    (root / "c" / "bots" / "aria.yaml").write_text(GOOD)
    (root / "c" / "bots" / "aria_discord_token").write_text(TOKEN)
    (root / "outside.txt").write_text(TOKEN)
    return root


@FAST
@given(body=yaml_text, header=st.sampled_from([".config", ".config aria", ".config <@1>"]))
def test_pins_never_raise_and_never_read_outside(tree: Path, body: str, header: str) -> None:
    pins = extract_config_pins([f"{header}\n---\nsystem_prompt: ''\n{body}"])
    try:
        r = resolve_bot_config(config_root=tree / "c", bot_name="aria", env={}, channel_configs=pins)
    except ConfigError:
        return  # a pin never makes the file layers fail, but a required key may be missing
    assert TOKEN not in json.dumps(r.config, default=str)


@FAST
@given(text=yaml_text)
def test_bot_files_fail_with_one_config_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    root = tmp_path_factory.mktemp("bot")
    (root / "bots").mkdir()
    (root / "bots" / "b.yaml").write_text(text, encoding="utf-8")
    try:
        resolve_bot_config(config_root=root, bot_name="b", env={})
    except ConfigError as exc:
        assert "\n" not in str(exc).strip()


@FAST
@pytest.mark.filterwarnings("ignore::Warning")
@given(text=yaml_text)
def test_chapter2_em_files_fail_with_one_line(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    ems = tmp_path_factory.mktemp("ems")
    (ems / "em").mkdir()
    (ems / "em" / "config.yaml").write_text(text, encoding="utf-8")
    try:
        load(ems, "em")
    except Chapter2Error as exc:
        assert "\n" not in str(exc).strip()


@FAST
@example(doc={"resourceSpans": [1]})
@example(doc={"resourceSpans": [{"scopeSpans": "abc"}]})
@given(doc=st.one_of(otlp_like, json_values))
def test_otlp_json_decodes_or_is_an_ingest_error(doc: object) -> None:
    body = json.dumps(doc).encode()
    try:
        decoded = decode_request(body, "application/json", "")
    except IngestError:
        return
    assert len(decoded.spans()) <= decoded.count
    otlp.group_replies(decoded.spans())


@FAST
@given(raw=st.binary(max_size=300), ctype=st.sampled_from(["application/x-protobuf", "application/json"]),
       gz=st.booleans())
def test_otlp_bytes_decode_or_are_an_ingest_error(raw: bytes, ctype: str, gz: bool) -> None:
    body = (b"\x1f\x8b" + raw) if gz else raw
    try:
        decode_request(body, ctype, "gzip" if gz else "")
    except IngestError:
        pass


@FAST
@given(text=st.text(max_size=40) | st.from_regex(r"\d{1,25}[smhdw]", fullmatch=True)
       | st.from_regex(r"-?\d{1,6}-\d{1,2}-\d{1,2}(T\d{1,2}:\d{2}(:\d{2})?([+-]\d{2}:\d{2}|Z)?)?", fullmatch=True))
def test_viewer_times_parse_or_are_400(text: str) -> None:
    try:
        parse_time(text, "since")
    except ApiError as exc:
        assert exc.status == 400


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningViewer]:
    tmp = tmp_path_factory.mktemp("fuzz-viewer")
    logs = tmp / "logs"
    (logs / "traces").mkdir(parents=True)
    (logs / "traces" / "index.jsonl").write_text('{"traceId":"t1","timestamp":"2026-01-01T00:00:00Z"}\n')
    v = RunningViewer(make_settings(tmp, [logs])).start()
    yield v
    v.stop()


query_keys = st.sampled_from(["since", "until", "limit", "offset", "bot", "channel", "failed", "framework", "text",
                              "q", "messageId", "url"])


@SLOW
@example(path="/api/traces", params={"since": "999999w"})
@example(path="/api/traces", params={"until": "9999999999999999"})
@example(path="/api/traces", params={"since": "0001-01-01T00:00:00+05:00"})
@given(path=st.sampled_from(["/api/traces", "/api/search", "/api/bots", "/api/channels", "/api/trace/x"]),
       params=st.dictionaries(query_keys, st.text(string.printable, max_size=30), max_size=4))
def test_viewer_query_parameters_never_500(viewer: RunningViewer, path: str, params: dict[str, str]) -> None:
    from urllib.parse import urlencode

    r = viewer.request("GET", f"{path}?{urlencode(params)}")
    assert r.status < 500, (path, params, r.body[:200])


@SLOW
@given(lines=st.lists(st.one_of(json_values.map(json.dumps), st.text(max_size=60),
                                st.fixed_dictionaries({"traceId": st.text(max_size=10), "timestamp": st.text(max_size=30)},
                                                      optional={"channelId": json_values, "botName": json_values,
                                                                "contextMessageIds": json_values}).map(json.dumps)),
                      max_size=6))
def test_index_lines_never_break_the_store(tmp_path_factory: pytest.TempPathFactory, lines: list[str]) -> None:
    from chapterx.trace.store import TraceStore

    base = tmp_path_factory.mktemp("idx")
    (base / "traces").mkdir()
    (base / "traces" / "index.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8", errors="replace")
    store = TraceStore([base], index_path=base / "index.sqlite")
    try:
        store.list_traces()
        store.search("123456789012345678")
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


@pytest.fixture(scope="module")
def bot_api() -> Iterator[int]:
    import asyncio
    import socket

    from chapterx.api.server import start_api
    from chapterx.discord.memory import MemoryDiscord
    from tests.discord.test_api import TOKEN as API_TOKEN
    from tests.discord.test_api import WORLD, MemoryBackend

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["runner"] = loop.run_until_complete(start_api(MemoryBackend(MemoryDiscord(WORLD)), API_TOKEN, port))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(holder["runner"].cleanup())  # type: ignore[attr-defined]

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(30)
    holder["token"] = API_TOKEN
    yield port
    loop.call_soon_threadsafe(loop.stop)
    t.join(30)


@SLOW
@example(path="/api/messages/export", body={"last": "https://discord.com/channels/1/2/3", "recencyWindow": [1]})
@example(path="/api/context/build", body={"messages": "abc"})
@given(path=st.sampled_from(["/api/messages/export", "/api/context/build"]), body=json_values)
def test_rest_api_bodies_never_500(bot_api: int, path: str, body: object) -> None:
    from tests.discord.test_api import TOKEN as API_TOKEN

    conn = http.client.HTTPConnection("127.0.0.1", bot_api, timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), {"Authorization": f"Bearer {API_TOKEN}",
                                                      "Content-Type": "application/json"})
        assert conn.getresponse().status < 500, body
    finally:
        conn.close()
