"""`history.json`: what `.history` splicing puts into the context, replayed through the activation.

Only the activation is replayed (the batch's first message triggers it; the activation decision is
the Discord-runtime area's). Compared: the fetched message ids (order included) and the provider
request bodies.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SHARED_DIR, shared_path
from tests.pipeline.vectors import normalise_images

DIFFERENCES = {
    "history-link-not-a-url": "a `last:` value that is not a message link clears instead of recursing on itself",
}


def _cases() -> list[Any]:
    path = SHARED_DIR / "golden" / "chapterx" / "history.json"
    if not path.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason="history.json not present"))]
    out = []
    for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
        marks = [pytest.mark.xfail(reason=DIFFERENCES[case["id"]], strict=True)] if case["id"] in DIFFERENCES else []
        out.append(pytest.param(case["id"], marks=marks, id=case["id"]))
    return out


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


ACTIVATION_DIFFERENCES = {
    "m-command-uppercase-not-command": "raw continuation: the context ends with the bot's own message",
    "continuation-emoji-by-user": "raw continuation: ▶️ continues the bot's message without a new label",
}


def _activation_cases() -> list[Any]:
    path = SHARED_DIR / "golden" / "chapterx" / "activation-decisions.json"
    if not path.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason="activation-decisions.json not present"))]
    out = []
    for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
        if "provider_requests" not in case["expected"]:
            continue
        marks = [pytest.mark.xfail(reason=ACTIVATION_DIFFERENCES[case["id"]], strict=True)] \
            if case["id"] in ACTIVATION_DIFFERENCES else []
        out.append(pytest.param(case["id"], marks=marks, id=case["id"]))
    return out


@pytest.mark.parametrize("case_id", _activation_cases())
async def test_activation_vector_context_and_request(case_id: str) -> None:
    """activation-decisions cases with request bodies: threads (parent fetch, inherited pins), timers,
    continuations. The activation to replay is the one the vector says happened (the decision itself is
    the Discord-runtime area's)."""
    from chapterx.agent.replay import replay_in_world
    from chapterx.discord.memory import MemoryDiscord

    data = json.loads(shared_path("golden", "chapterx", "activation-decisions.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == case_id)
    inp, expected = case["input"], case["expected"]
    world = MemoryDiscord(inp["discord"])
    out = None
    for index, batch in enumerate(inp["batches"]):
        for event in batch["events"]:
            if event["type"] == "message_create":
                world.add_message(str(event["channel_id"]), event["message"])
        activation = expected["batches"][index].get("activation")
        if activation:
            out = await replay_in_world(inp, world, activation["channel_id"], activation["trigger_message_id"])
            break
    assert out is not None
    assert out["context_fetch"]["message_ids"] == expected["context_fetches"][0]["message_ids"]
    assert [normalise_images(r["body"]) for r in out["provider_requests"]] == \
        [normalise_images(r["body"]) for r in expected["provider_requests"]]
