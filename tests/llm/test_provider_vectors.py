"""provider-requests.json at the provider layer: exact bodies, paths, queries and recorded headers.

Real SDKs over real HTTP to the FakeLLMServer on 127.0.0.1. Cases whose behaviour we changed on
purpose are listed in DIFFERENT (see docs/differences.md#providers) and asserted to behave the way
we decided instead.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from chapterx.llm.errors import ProviderError
from chapterx.llm.fake import FakeLLMServer
from chapterx.llm.providers import ProviderOptions
from chapterx.llm.routing import Router
from chapterx.llm.types import ProviderRequest
from tests.conftest import SHARED_DIR, shared_path
from tests.llm import vectors as V

# retries we make on purpose where upstream did not (529 is an overload: worth retrying)
DIFFERENT = {"retry-openai-529-nonstreaming-not-retried", "retry-openrouter-529-streaming-no-retry"}


def _cases() -> list[dict[str, Any]]:
    path = shared_path("golden", "chapterx", "provider-requests.json")
    return list(json.loads(path.read_text())["cases"])


def _ids() -> list[str]:
    """Case ids; empty only when ../shared is absent (a broken file must fail collection, not vanish)."""
    if not (SHARED_DIR / "golden" / "chapterx" / "provider-requests.json").exists():
        return []
    return [c["id"] for c in _cases()]


def test_provider_vectors_are_parametrised() -> None:
    assert len(_ids()) == len(_cases()) > 0


async def _run_case(case: dict[str, Any]) -> tuple[FakeLLMServer, Router, Any, list[Any]]:
    exp = case["expected"]
    now = V.now_of(case)
    async with FakeLLMServer(case["input"]["llm_responses"]) as srv:
        opts = ProviderOptions(retry_base_delay=0.01, now=(lambda: now) if now is not None else None)
        router = Router(V.vendors(case), env={}, base_url_override=srv.base_url, options=opts)
        bot = V.bot_config(case)
        route = router.route(bot["continuation_model"])
        first = exp["provider_requests"][0]["body"]
        request: ProviderRequest
        if route.kind == "openai-completions":
            request = V.completions_request(case, first)
        elif bot.get("mode") == "prefill":
            request = V.prefill_request(case, first)
            request.stream = "invoke-with-response-stream" in exp["provider_requests"][0]["path"] or bool(
                first.get("stream"))
        else:
            request = V.chat_request(case, exp["membrane_requests"][0])
        results: list[Any] = []
        try:
            resp = await route.provider.complete(request)
            results.append(resp)
            spec = next((r for r in case["input"]["llm_responses"] if r.get("tool_use")), None)
            if spec is not None and resp.stop_reason == "tool_use":
                follow = V.continue_with_tool(request, spec, V.tool_output_of(exp["provider_requests"][-1]["body"]))
                results.append(await route.provider.complete(follow))
        except ProviderError as exc:
            results.append(exc)
        await router.aclose()
        return srv, router, route, results


def _check_request(case_id: str, real_base: str, got: dict[str, Any], want: dict[str, Any],
                   extra_headers: list[str]) -> None:
    assert got["method"] == want["method"], case_id
    assert V.recorded_path(real_base, got) == want["path"], case_id
    assert (got["query"] or None) == want.get("query"), case_id
    for name, value in want["headers"].items():
        assert got["headers"].get(name) == value, (case_id, name)
    for name in V.RECORDED - V.ALWAYS_PRESENT:
        if name not in want["headers"]:
            assert name not in got["headers"], (case_id, name)
    for name in extra_headers:
        assert got["headers"].get(name) == want["headers"].get(name), (case_id, name)
    assert V.strip_images(got["body"]) == V.strip_images(want["body"]), case_id


@pytest.mark.parametrize("case_id", _ids())
def test_provider_request_vector(case_id: str) -> None:
    case = next(c for c in _cases() if c["id"] == case_id)
    exp = case["expected"]
    srv, _router, route, results = asyncio.run(_run_case(case))
    real_base = route.base_url
    if case_id in DIFFERENT:
        # we retry a 529 once more and succeed where upstream gave up after one request
        assert len(srv.requests) == 2
        assert not isinstance(results[-1], ProviderError)
        assert results[-1].text == "Mount Everest."
        _check_request(case_id, real_base, srv.requests[0], exp["provider_requests"][0], [])
        return
    assert len(srv.requests) == len(exp["provider_requests"]), case_id
    for got, want in zip(srv.requests, exp["provider_requests"], strict=True):
        _check_request(case_id, real_base, got, want, case.get("recorded_extra_headers", []))
    if "error" in exp:
        assert isinstance(results[-1], ProviderError)
        assert results[-1].message == exp["error"]["message"]
        assert results[-1].error_name == exp["error"]["name"]
    else:
        assert not isinstance(results[-1], ProviderError), results[-1]
