"""Security: path traversal on every id/ref route, auth (token, cookie session), headers, errors, bind policy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chapterx.errors import UsageError
from chapterx.viewer import security
from chapterx.viewer.settings import ViewerSettings
from tests.viewer.conftest import RunningViewer, make_settings
from tests.viewer.treegen import make_trace, write_tree

SECRET = "TOP-SECRET-MARKER-5d1c"
TOKEN = "s3cret-token-for-tests"

ROUTES = [
    "/api/trace/",
    "/api/request/",
    "/api/response/",
    "/api/membrane-request/",
    "/api/membrane-response/",
    "/trace/",
]

TRAVERSALS = [
    "..",
    "../../secret.json",
    "../../../../../../etc/passwd",
    "..%2F..%2Fsecret.json",
    "..%2f..%2fsecret.json",
    "%2e%2e",
    "%2e%2e%2f%2e%2e%2fsecret.json",
    "%2E%2E%2F%2E%2E%2Fsecret.json",
    ".%2e/.%2e/secret.json",
    "%2e./%2e./secret.json",
    "..%5c..%5csecret.json",
    "%252e%252e%252fsecret.json",
    "..%252f..%252fsecret.json",
    "%c0%ae%c0%ae%c0%afsecret.json",
    "..%e2%88%95..%e2%88%95secret.json",
    "..%00.json",
    "secret.json%00.json",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "%2F..%2Fsecret.json",
    "....//....//secret.json",
    "..;/..;/secret.json",
    "file:%2F%2F%2Fetc%2Fpasswd",
    "C:%5Cwindows%5Cwin.ini",
    "~%2Fsecret.json",
    "traces%2Findex.jsonl",
    "index.jsonl",
    ".chapterx-index.sqlite",
    "..%2F..%2Flogs%2Ftraces%2Findex.jsonl",
    "link-out.json",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.json",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sec")
    logs = root / "logs"
    trace = make_trace("0000abcd", datetime.now(UTC), bot="SafeBot", text="hello", req_ref="request-ok.json")
    write_tree(logs, [(trace, "SafeBot")])
    (logs / "llm-requests" / "request-ok.json").write_text(json.dumps({"model": "m", "messages": []}))
    (root / "secret.json").write_text(json.dumps({"secret": SECRET}))
    for d in ("llm-requests", "llm-responses", "membrane-requests", "membrane-responses"):
        (logs / d / "link-out.json").symlink_to(root / "secret.json")
    (logs / "traces" / "SafeBot" / "1-link0000-2026-01-01T00-00-00-000Z.json").symlink_to(
        root / "secret.json"
    )
    return logs


@pytest.fixture(scope="module")
def open_viewer(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningViewer]:
    v = RunningViewer(make_settings(tmp_path_factory.mktemp("idx"), [tree])).start()
    yield v
    v.stop()


@pytest.fixture(scope="module")
def locked_viewer(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningViewer]:
    v = RunningViewer(make_settings(tmp_path_factory.mktemp("idx2"), [tree], auth_token=TOKEN)).start()
    yield v
    v.stop()


def test_known_good_requests_work(open_viewer: RunningViewer) -> None:
    assert open_viewer.request("GET", "/api/trace/0000abcd").status == 200
    r = open_viewer.request("GET", "/api/request/request-ok.json")
    assert r.status == 200 and r.json()["model"] == "m"


@pytest.mark.parametrize("route", ROUTES)
def test_traversal_never_escapes(route: str, open_viewer: RunningViewer) -> None:
    assert len(TRAVERSALS) >= 20
    for attack in TRAVERSALS:
        r = open_viewer.request("GET", route + attack)
        assert r.status in (400, 404), (route, attack, r.status)
        assert SECRET.encode() not in r.body, (route, attack)
        assert b"root:" not in r.body
        assert r.headers["content-type"].startswith("application/json"), (route, attack)


def test_traversal_with_auth_too(locked_viewer: RunningViewer) -> None:
    h = {"Authorization": f"Bearer {TOKEN}"}
    for route in ROUTES[:-1]:
        for attack in TRAVERSALS:
            r = locked_viewer.request("GET", route + attack, h)
            assert r.status in (400, 404) and SECRET.encode() not in r.body, (route, attack)


def test_security_headers_everywhere(open_viewer: RunningViewer) -> None:
    for path in ("/", "/api/traces", "/api/trace/nope", "/static/app.js", "/health", "/trace/0000abcd"):
        r = open_viewer.request("GET", path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
    page = open_viewer.request("GET", "/")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert b"<script>" not in page.body and b"onclick" not in page.body.lower()


def test_unknown_page_paths_are_404(open_viewer: RunningViewer) -> None:
    assert open_viewer.request("GET", "/trace/0000abcd").status == 200
    assert open_viewer.request("GET", "/nope/page").status == 404
    assert open_viewer.request("GET", "/static/..%2Fapp.py").status in (400, 404)
    assert open_viewer.request("GET", "/static/app.py").status == 404


def test_health_needs_no_auth(locked_viewer: RunningViewer) -> None:
    r = locked_viewer.request("GET", "/health")
    assert r.status == 200 and r.json()["status"] == "ok" and r.json()["authRequired"] is True


def test_api_needs_token(locked_viewer: RunningViewer) -> None:
    assert locked_viewer.request("GET", "/api/traces").status == 401
    assert locked_viewer.request("GET", "/api/traces", {"Authorization": "Bearer wrong"}).status == 401
    assert (
        locked_viewer.request("GET", "/api/traces", {"Authorization": "Bearer " + TOKEN[:-1]}).status == 401
    )
    assert locked_viewer.request("GET", "/api/traces", {"Authorization": "Bearer " + TOKEN}).status == 200
    # a token in the query string is not a credential
    assert locked_viewer.request("GET", "/api/traces?token=" + TOKEN).status == 401


def test_login_sets_httponly_strict_cookie(locked_viewer: RunningViewer) -> None:
    bad = locked_viewer.request(
        "POST", "/login", {"Content-Type": "application/json"}, json.dumps({"token": "nope"}).encode()
    )
    assert bad.status == 401 and "set-cookie" not in bad.headers
    form = locked_viewer.request(
        "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"}, b"token=" + TOKEN.encode()
    )
    assert form.status == 415  # no cross-site form logins
    ok = locked_viewer.request(
        "POST", "/login", {"Content-Type": "application/json"}, json.dumps({"token": TOKEN}).encode()
    )
    assert ok.status == 200
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith(security.SESSION_COOKIE + "=")
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "path=/" in low
    assert TOKEN not in cookie
    value = cookie.split(";", 1)[0]
    assert locked_viewer.request("GET", "/api/bots", {"Cookie": value}).json()["bots"] == ["SafeBot"]
    # a forged or tampered cookie is refused
    name, _, v = value.partition("=")
    exp, _, sig = v.partition(".")
    forged = f"{name}={int(exp) + 1000}.{sig}"
    assert locked_viewer.request("GET", "/api/bots", {"Cookie": forged}).status == 401
    # the session cookie does not authorise OTLP ingest (Bearer only)
    ingest = locked_viewer.request(
        "POST", "/v1/traces", {"Cookie": value, "Content-Type": "application/json"}, b'{"resourceSpans":[]}'
    )
    assert ingest.status == 401
    out = locked_viewer.request("POST", "/logout", {"Cookie": value})
    assert out.status == 200 and "max-age=0" in out.headers["set-cookie"].lower()


def test_login_rate_limited(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    v = RunningViewer(make_settings(tmp_path_factory.mktemp("rl"), [tree], auth_token=TOKEN)).start()
    try:
        statuses = [
            v.request("POST", "/login", {"Content-Type": "application/json"}, b'{"token":"x"}').status
            for _ in range(7)
        ]
        assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
        good = v.request(
            "POST", "/login", {"Content-Type": "application/json"}, json.dumps({"token": TOKEN}).encode()
        )
        assert good.status == 429
    finally:
        v.stop()


def test_errors_hide_exception_text(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    class Boom:
        def __getattr__(self, name: str) -> Any:
            def fail(*a: Any, **k: Any) -> Any:
                raise RuntimeError("/secret/path/with/details TypeError: internals")

            return fail

    from chapterx.viewer import server as srv

    settings = make_settings(tmp_path_factory.mktemp("boom"), [tree])
    orig = srv.open_store
    srv.open_store = lambda s: Boom()  # type: ignore[assignment]
    try:
        v = RunningViewer(settings).start()
        try:
            r = v.request("GET", "/api/traces")
            assert r.status == 500
            assert r.json() == {"error": "Internal server error"}
            assert b"secret" not in r.body and b"TypeError" not in r.body
        finally:
            v.stop()
    finally:
        srv.open_store = orig


def test_bind_policy() -> None:
    ViewerSettings(host="127.0.0.1").check_bind()
    ViewerSettings(host="::1").check_bind()
    ViewerSettings(host="localhost").check_bind()
    with pytest.raises(UsageError, match="AUTH_TOKEN"):
        ViewerSettings(host="0.0.0.0").check_bind()
    with pytest.raises(UsageError):
        ViewerSettings(host="192.168.1.5").check_bind()
    ViewerSettings(host="0.0.0.0", auth_token="t" * 16).check_bind()
    ViewerSettings(host="0.0.0.0", insecure=True).check_bind()


def test_cli_refuses_public_bind_without_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chapterx.cli import main

    monkeypatch.delenv("AUTH_TOKEN", raising=False)
    rc = main(["traces", "serve", "--host", "0.0.0.0", "--port", "0", "--logs-dir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("chapterx: error:") and "AUTH_TOKEN" in err and "Traceback" not in err


def test_token_compare_is_digest_based() -> None:
    assert security.token_matches("abc", "abc")
    assert not security.token_matches("abd", "abc")
    assert not security.token_matches("", "abc")
    assert not security.token_matches("abc", "")
    assert not security.token_matches(None, "abc")
    assert security.token_from_header("Bearer  abc ") == "abc"
    assert security.token_from_header("abc") == "abc"


def test_session_expiry() -> None:
    c = security.make_session("tok", now=1000.0)
    assert security.session_valid(c, "tok", now=1001.0)
    assert not security.session_valid(c, "other", now=1001.0)
    assert not security.session_valid(c, "tok", now=1000.0 + security.SESSION_TTL_S + 1)
    assert not security.session_valid("garbage", "tok")
    assert time.time() > 0


def test_settings_from_env(tmp_path: Path) -> None:
    ch2 = tmp_path / "ems" / "logs"
    ch2.mkdir(parents=True)
    base = tmp_path / "prod"
    (base / "traces").mkdir(parents=True)
    s = ViewerSettings.from_env(
        {
            "LOGS_DIRS": f"{base},{ch2}",
            "PORT": "4000",
            "AUTH_TOKEN": "x",
            "INDEX_RETENTION_DAYS": "0",
            "CHAPTER2_LOGS_DIRS": str(tmp_path / "other"),
        }
    )
    assert s.logs_dirs == [base]
    assert s.chapter2_dirs == [tmp_path / "other", ch2]
    assert s.port == 4000 and s.auth_token == "x" and s.retention_days == 0 and s.host == "127.0.0.1"
    d = ViewerSettings.from_env({"LOGS_DIR": str(base)})
    assert d.logs_dirs == [base] and d.port == 3847 and d.retention_days == 30
    with pytest.raises(UsageError):
        ViewerSettings.from_env({"PORT": "abc"})


def test_dns_rebinding_guard_without_token(open_viewer: RunningViewer, locked_viewer: RunningViewer) -> None:
    port = open_viewer.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1", f"[::1]:{port}"):
        assert open_viewer.request("GET", "/api/bots", {"Host": host}).status == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        r = open_viewer.request("GET", "/api/bots", {"Host": host})
        assert r.status == 403 and b"SafeBot" not in r.body, host
        assert open_viewer.request("GET", "/", {"Host": host}).status == 403
    # with a token, any host name may be used (a reverse proxy forwards its public name)
    ok = locked_viewer.request(
        "GET", "/api/bots", {"Host": "traces.example.org", "Authorization": f"Bearer {TOKEN}"}
    )
    assert ok.status == 200


def test_methods(open_viewer: RunningViewer) -> None:
    head = open_viewer.request("HEAD", "/api/traces")
    assert head.status == 200 and head.body == b""
    assert open_viewer.request("OPTIONS", "/api/traces").status == 405
    assert open_viewer.request("POST", "/api/trace/0000abcd").status == 405
    assert open_viewer.request("DELETE", "/").status == 405
    assert open_viewer.request("GET", "/api/").status == 404
    assert open_viewer.request("GET", "/api/nope/x").status == 404
    assert open_viewer.request("GET", "/v1/traces").status in (404, 405)
