"""`history.json`: what `.history` splicing puts into the context, replayed through the activation.

Only the activation is replayed (the batch's first message triggers it; the activation decision is
the Discord-runtime area's). Compared: the fetched message ids (order included) and the provider
request bodies. Deliberate differences are asserted positively in `test_vector_differences.py`
(HISTORY_ADJUSTMENTS, ACTIVATION_ADJUSTMENTS) and skipped here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SHARED_DIR, shared_path
from tests.pipeline.test_vector_differences import ACTIVATION_ADJUSTMENTS, HISTORY_ADJUSTMENTS
from tests.pipeline.vectors import normalise_images


def _cases() -> list[Any]:
    path = SHARED_DIR / "golden" / "chapterx" / "history.json"
    if not path.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason="history.json not present"))]
    return [pytest.param(case["id"], id=case["id"])
            for case in json.loads(path.read_text(encoding="utf-8"))["cases"] if case["id"] not in HISTORY_ADJUSTMENTS]


@pytest.mark.parametrize("case_id", _cases())
async def test_history_vector(case_id: str) -> None:
    from chapterx.agent.replay import replay_history_case

    data = json.loads(shared_path("golden", "chapterx", "history.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == case_id)
    out = await replay_history_case(case["input"])
    expected = case["expected"]
    assert out["context_fetch"]["message_ids"] == expected["context_fetches"][0]["message_ids"]
    got = [normalise_images(r["body"]) for r in out["provider_requests"]]
    assert got == [normalise_images(r["body"]) for r in expected["provider_requests"]]
    sends = [{k: v for k, v in a.items() if k in ("type", "content", "reply_to")}
             for a in expected["discord_actions"] if a["type"] == "send"]
    assert [a for a in out["discord_actions"] if a["type"] == "send"] == sends


def _activation_cases() -> list[Any]:
    path = SHARED_DIR / "golden" / "chapterx" / "activation-decisions.json"
    if not path.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason="activation-decisions.json not present"))]
    return [pytest.param(case["id"], id=case["id"])
            for case in json.loads(path.read_text(encoding="utf-8"))["cases"]
            if "provider_requests" in case["expected"] and case["id"] not in ACTIVATION_ADJUSTMENTS]


async def run_activation_case(case: dict[str, Any]) -> dict[str, Any]:
    """Replay the activation the vector says happened (the decision itself is the Discord-runtime
    area's): add each batch's messages to the world until the batch that activated."""
    from chapterx.agent.replay import replay_in_world
    from chapterx.discord.memory import MemoryDiscord

    inp, expected = case["input"], case["expected"]
    world = MemoryDiscord(inp["discord"])
    for index, batch in enumerate(inp["batches"]):
        for event in batch["events"]:
            if event["type"] == "message_create":
                world.add_message(str(event["channel_id"]), event["message"])
        activation = expected["batches"][index].get("activation")
        if activation:
            out: dict[str, Any] = await replay_in_world(inp, world, activation["channel_id"],
                                                        activation["trigger_message_id"])
            return out
    raise AssertionError("the vector records no activation")


@pytest.mark.parametrize("case_id", _activation_cases())
async def test_activation_vector_context_and_request(case_id: str) -> None:
    """activation-decisions cases with request bodies: threads (parent fetch, inherited pins), timers,
    continuations."""
    data = json.loads(shared_path("golden", "chapterx", "activation-decisions.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == case_id)
    out = await run_activation_case(case)
    expected = case["expected"]
    assert out["context_fetch"]["message_ids"] == expected["context_fetches"][0]["message_ids"]
    assert [normalise_images(r["body"]) for r in out["provider_requests"]] == \
        [normalise_images(r["body"]) for r in expected["provider_requests"]]
