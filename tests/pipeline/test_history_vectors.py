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
