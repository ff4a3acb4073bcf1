"""The API against every case of the golden trace-server-responses.json (upstream's real answers)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import shared_path

EXTENSIONS = {"framework", "status", "cost"}


def _cases() -> list[dict[str, Any]]:
    try:
        path = shared_path("golden", "chapterx", "trace-server-responses.json")
    except pytest.skip.Exception:
        return []
    return json.loads(path.read_text())["cases"]


CASES = _cases()
# Deliberate differences (docs/differences.md#viewer): what we answer instead.
DIFFERENT = {
    "bots": "no bodies folder",
    "traces-limit-nan": "400",
    "search-null-id-500": "null-safe",
    "trace-substring-channel-id": "exact id",
    "trace-empty-id": "400",
    "delete-method-ignored": "405",
    "search-dm-link": "dm links parsed",
    "trace-encoded-traversal": "400",
    "search-deleted-trace-trigger": "index preview",
    "auth-bearer": "no bodies folder",
    "auth-bare-token": "no bodies folder",
}


def strip_ext(value: Any) -> Any:
    """Drop our additions (framework/status/cost) from a trace or from list/search entries."""
    if not isinstance(value, dict):
        return value
    out = {k: v for k, v in value.items() if k not in EXTENSIONS}
    for key in ("traces", "results"):
        if isinstance(out.get(key), list):
            out[key] = [{k: v for k, v in e.items() if k not in EXTENSIONS} for e in out[key]]
    return out


def _run(case: dict[str, Any], viewer: Any, auth_viewer: Any) -> Any:
    v = auth_viewer if case.get("server_auth_token") else viewer
    req = case["request"]
    return v.request(req["method"], req["path"], req.get("headers") or {})


@pytest.mark.parametrize("case", [c for c in CASES if c["id"] not in DIFFERENT], ids=lambda c: c["id"])
def test_same_as_upstream(case: dict[str, Any], viewer: Any, auth_viewer: Any) -> None:
    exp = case["expected"]
    r = _run(case, viewer, auth_viewer)
    assert r.status == exp["status"]
    assert r.headers["content-type"].startswith(exp["content_type"])
    got = r.json()
    if case["request"]["path"].startswith("/api/search"):
        for k in ("total", "offset", "limit"):
            got.pop(k, None)
    assert strip_ext(got) == exp["json"]


def _case(cid: str) -> dict[str, Any]:
    for c in CASES:
        if c["id"] == cid:
            return c
    if not CASES:
        pytest.skip("trace-server-responses.json not present")
    raise AssertionError(f"golden case {cid} missing from trace-server-responses.json (renamed upstream?)")


def test_bots_excludes_non_bot_folders(viewer: Any) -> None:
    exp = _case("bots")["expected"]["json"]["bots"]
    r = viewer.request("GET", "/api/bots")
    assert r.status == 200
    assert r.json()["bots"] == [b for b in exp if b != "bodies"]


def test_non_numeric_limit_is_400(viewer: Any) -> None:
    _case("traces-limit-nan")
    r = viewer.request("GET", "/api/traces?limit=abc")
    assert r.status == 400 and "limit" in r.json()["error"]
    assert viewer.request("GET", "/api/traces?offset=-1").status == 400
    assert viewer.request("GET", "/api/traces?limit=0").status == 400


def test_search_with_null_context_ids_does_not_fail(viewer: Any) -> None:
    _case("search-null-id-500")
    r = viewer.request("GET", "/api/search?q=1513657926823313454")
    assert r.status == 200
    results = r.json()["results"]
    assert results and all(x["role"] in ("trigger", "context", "sent") for x in results)
    # 8a3e5871 is the trace whose null-id plugin message came before the match upstream
    assert "8a3e5871" in {x["traceId"] for x in results}


def test_trace_ids_match_exactly(viewer: Any) -> None:
    _case("trace-substring-channel-id")
    assert viewer.request("GET", "/api/trace/1235526447267971074").status == 404
    empty = viewer.request("GET", "/api/trace/")
    assert empty.status == 400 and empty.json() == {"error": "Invalid trace id"}
    assert viewer.request("GET", "/api/trace/b115586").status == 404  # a prefix is not an id


def test_non_get_is_405(viewer: Any) -> None:
    _case("delete-method-ignored")
    for method in ("DELETE", "POST", "PUT", "PATCH"):
        r = viewer.request(method, "/api/bots")
        assert r.status == 405, method
        assert "GET" in r.headers["allow"]


def test_dm_links_are_parsed(viewer: Any) -> None:
    exp = _case("search-dm-link")["expected"]["json"]
    r = viewer.request(
        "GET", "/api/search?q=https%3A//discord.com/channels/%40me/1430000000000000000/1430000000000000001"
    )
    assert r.status == 200
    body = r.json()
    assert body["results"] == exp["results"] == []
    assert body["messageId"] == "1430000000000000001"


def test_gzip_with_vary(viewer: Any) -> None:
    r = viewer.request("GET", "/api/traces", {"Accept-Encoding": "gzip"})
    assert r.status == 200 and r.headers.get("content-encoding") == "gzip"
    assert "accept-encoding" in r.headers.get("vary", "").lower()
    import gzip

    assert json.loads(gzip.decompress(r.body))["total"] >= 40
    small = viewer.request("GET", "/api/trace/nope", {"Accept-Encoding": "gzip"})
    assert small.status == 404 and "content-encoding" not in small.headers


def test_list_entries_carry_framework_and_cost(viewer: Any) -> None:
    traces = viewer.request("GET", "/api/traces?limit=200").json()["traces"]
    assert traces, "no traces listed: the all() checks below would be vacuous"
    assert all(t["framework"] == "chapterx" for t in traces)
    assert all("cost" in t for t in traces)
    detail = viewer.request("GET", "/api/trace/b1155862").json()
    assert isinstance(detail["cost"], int | float) and detail["cost"] > 0


def test_encoded_traversal_is_rejected(viewer: Any) -> None:
    exp = _case("trace-encoded-traversal")["expected"]
    r = viewer.request("GET", "/api/trace/..%2F..%2Findex.jsonl")
    assert exp["status"] == 404 and r.status == 400
    assert r.json() == {"error": "Invalid trace id"}


def test_deleted_trace_trigger_keeps_index_preview(viewer: Any) -> None:
    exp = _case("search-deleted-trace-trigger")["expected"]["json"]
    got = viewer.request("GET", "/api/search?q=1513457495878795279").json()
    trig = [r for r in got["results"] if r["traceId"] == "36269438"]
    assert trig and trig[0]["role"] == "trigger" and trig[0]["responsePreview"]
    # everything else is as upstream
    strip = lambda rs: [{k: v for k, v in r.items() if k not in EXTENSIONS | {"responsePreview"}} for r in rs]  # noqa: E731
    assert strip(got["results"]) == strip(exp["results"])


@pytest.mark.parametrize("cid", ["auth-bearer", "auth-bare-token"])
def test_auth_variants(cid: str, auth_viewer: Any) -> None:
    case = _case(cid)
    r = auth_viewer.request("GET", case["request"]["path"], case["request"]["headers"])
    assert r.status == case["expected"]["status"] == 200
    assert r.json()["bots"] == [b for b in case["expected"]["json"]["bots"] if b != "bodies"]
