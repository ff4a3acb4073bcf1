"""Soma credit checks through the runtime, against a fake Soma server on 127.0.0.1 (aiohttp):
charged triggers are checked before the activation, `allowed: false` skips it silently,
BOT_NOT_CONFIGURED adds ⚙️ and skips it, an outage fails open, a failed activation is refunded,
and without `soma.enabled` nothing is called."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from chapterx.replays.tool_plugins import run_case
from tests.conftest import SHARED_DIR, shared_path
from tests.fakes.local_http import local_app


class FakeSoma:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.answer: tuple[int, dict[str, Any]] = (200, {"allowed": True, "cost": 1, "transactionId": "tx-1"})

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append((request.path, body, request.headers.get("Authorization", "")))
        if request.path.endswith("/refund"):
            return web.json_response({"success": True, "refundTransactionId": "r-1", "amount": 1})
        status, data = self.answer
        return web.json_response(data, status=status)


@pytest.fixture
async def soma() -> AsyncIterator[tuple[FakeSoma, str]]:
    fake = FakeSoma()
    app = web.Application()
    app.router.add_post("/api/v1/{name}", fake.handle)
    async with local_app(app) as port:
        yield fake, f"http://127.0.0.1:{port}/api/v1"


def _input(url: str | None, case_id: str = "tp-inject-latest-earliest-prefill") -> dict[str, Any]:
    if not (SHARED_DIR / "golden" / "chapterx" / "tool-plugins.json").exists():
        pytest.skip("tool-plugins.json not present")
    data = json.loads(shared_path("golden", "chapterx", "tool-plugins.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == case_id)
    inp = copy.deepcopy(case["input"])
    if url is not None:
        inp["files"]["config/bots/aria.yaml"] += f"soma:\n  enabled: true\n  url: {url}\n  token: tok-1\n"
    return inp


def _sends(got: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in got["discord_actions"] if a["type"] in ("send", "reaction")]


async def test_charged_mention_is_checked_then_answered(soma: tuple[FakeSoma, str]) -> None:
    fake, url = soma
    got = await run_case(_input(url))
    assert [c[0] for c in fake.calls] == ["/api/v1/check-and-deduct"]
    _path, body, auth = fake.calls[0]
    assert auth == "Bearer tok-1"
    assert body["triggerType"] == "mention" and body["userId"] == "750000000000000001"
    assert body["messageId"] == "1310000000000000010" and body["userRoles"] == ["740000000000000002"]
    assert _sends(got) and _sends(got)[0]["type"] == "send"


async def test_insufficient_credit_skips_silently(soma: tuple[FakeSoma, str]) -> None:
    fake, url = soma
    fake.answer = (200, {"allowed": False, "cost": 5, "currentBalance": 1})
    got = await run_case(_input(url))
    assert got["discord_actions"] == [] and got["provider_request_count"] == 0


async def test_bot_not_configured_reacts_and_skips(soma: tuple[FakeSoma, str]) -> None:
    fake, url = soma
    fake.answer = (403, {"error": "BOT_NOT_CONFIGURED"})
    got = await run_case(_input(url))
    assert _sends(got) == [{"type": "reaction", "channel_id": "710000000000000001",
                            "message_id": "1310000000000000010", "emoji": "⚙️", "batch": 0}]
    assert got["provider_request_count"] == 0


async def test_soma_outage_fails_open(soma: tuple[FakeSoma, str]) -> None:
    fake, url = soma
    fake.answer = (500, {"error": "INTERNAL"})
    got = await run_case(_input(url))
    assert len(fake.calls) == 1 and [a["type"] for a in _sends(got)] == ["send"]


async def test_failed_activation_is_refunded(soma: tuple[FakeSoma, str]) -> None:
    fake, url = soma
    inp = _input(url)
    inp["llm_responses"] = [{"http_status": 400}]  # the provider refuses: the activation fails
    await run_case(inp)
    assert [c[0] for c in fake.calls] == ["/api/v1/check-and-deduct", "/api/v1/refund"]
    assert fake.calls[1][1] == {"transactionId": "tx-1", "reason": "activation failed"}


async def test_soma_off_calls_nothing(soma: tuple[FakeSoma, str]) -> None:
    fake, _url = soma
    got = await run_case(_input(None))
    assert fake.calls == [] and [a["type"] for a in _sends(got)] == ["send"]
