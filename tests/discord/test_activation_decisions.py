"""`activation-decisions.json` through our runtime: batching, shouldActivate, processBatch, locks.

Each case builds the in-memory world, feeds its batches to `BotRuntime.process_batch` exactly as
the connector would (events in arrival order, mentions computed with Discord's rules), answers the
LLM from a local fake server through the real provider SDKs, and compares the decision fields,
every Discord action, the sleep counters, the number of provider requests and their bodies (as JSON
and byte for byte in JSON.stringify form).

Cases where the pipeline area differs from upstream on purpose are asserted positively with the
same per-case adjustments as `tests/pipeline/test_vector_differences.py` (ACTIVATION_ADJUSTMENTS,
HISTORY_ADJUSTMENTS, each derived from `docs/differences.md#pipeline`): our output must equal the
adjusted upstream value exactly and must still differ from the unadjusted one (a case that matches
upstream again fails here until its adjustment and doc bullet are removed).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from chapterx.replays.batches import run_case
from tests.conftest import SHARED_DIR, shared_path
from tests.pipeline.test_vector_differences import ACTIVATION_ADJUSTMENTS, HISTORY_ADJUSTMENTS, Adjust
from tests.pipeline.vectors import NOT_BYTE_EXACT, compact, normalise_images

Mismatches = Callable[[str, Mapping[str, Any], Mapping[str, Any]], list[str]]

# Cases we do not reproduce, with the reason (also in docs/differences.md#runtime).
SKIPS: dict[str, str] = {}


# --- deliberate runtime differences (docs/differences.md, runtime section) --------------------------------


def _events(case: Mapping[str, Any], batch: int) -> list[Mapping[str, Any]]:
    return list(case["input"]["batches"][batch]["events"])


def _per_channel_mention(exp: dict[str, Any], case: Mapping[str, Any]) -> None:
    """differences.md (runtime, per-channel batches): the #general mention is decided and answered in
    #general with itself as trigger; the #off-topic message is its own batch (rolled, 0.5: no)."""
    mention = next(e for e in _events(case, 0) if "<@" in e["message"]["content"])
    channel, trigger = mention["channel_id"], mention["message"]["id"]
    batch = exp["batches"][0]
    batch["evaluated_with_channel_id"] = channel
    batch["activation"].update(channel_id=channel, trigger_message_id=trigger, reason="mention")
    for action in exp["discord_actions"]:
        action["channel_id"] = channel
        if action["type"] == "send":
            action["reply_to"] = trigger
    primary = [m["id"] for m in case["input"]["discord"]["messages"] if m.get("channel_id", channel) == channel]
    exp["context_fetches"] = [{"batch": 0, "channel_id": channel, "message_ids": [*primary, trigger],
                               "inheritance_info": None}]


def _per_channel_reason(exp: dict[str, Any], case: Mapping[str, Any]) -> None:
    """differences.md (runtime, per-channel batches): the activation's reason is its own channel's
    (`mention`); the #off-topic message is rolled in its own batch (no value left in the case: 1.0, no)."""
    batch = exp["batches"][0]
    batch["activation"]["reason"] = "mention"
    batch["random_rolls"] = [*batch["random_rolls"], 1.0]


def _queued_trigger(exp: dict[str, Any], case: Mapping[str, Any]) -> None:
    """differences.md (runtime, queued triggers): the trigger that arrived while the channel was busy is
    answered afterwards (the case scripts one LLM answer, so the second attempt fails: typing, then the
    error reaction on its trigger instead of silence; none on a deleted `m` command)."""
    second = _events(case, 1)[0]["message"]
    channel = second.get("channel_id") or case["input"]["discord"]["channel_id"]
    first_fetch = exp["context_fetches"][0]["message_ids"]
    sent = [a["message_id"] for a in exp["discord_actions"] if a["type"] == "send"]
    command = second["content"].startswith("m ")
    exp["discord_actions"].append({"type": "typing", "channel_id": channel, "batch": 1})
    if not command:  # a deleted `m` command cannot carry the reaction
        exp["discord_actions"].append({"type": "reaction", "channel_id": channel, "message_id": second["id"],
                                       "emoji": "⚠️", "batch": 1})
    ids = [*first_fetch, *([] if command else [second["id"]]), *sent]
    exp["context_fetches"].append({"batch": 1, "channel_id": channel, "message_ids": ids, "inheritance_info": None})
    exp["provider_request_count"] = exp["provider_request_count"] + 1


RUNTIME_ADJUSTMENTS: dict[str, Adjust] = {
    "batch-two-channels-wrong-channel": _per_channel_mention,
    "batch-two-channels-reason-from-last-event": _per_channel_reason,
    "in-flight-same-channel-dropped": _queued_trigger,
    "in-flight-m-continue-deleted-and-dropped": _queued_trigger,
}


def _cases() -> list[Any]:
    path = SHARED_DIR / "golden" / "chapterx" / "activation-decisions.json"
    if not path.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason="activation-decisions.json not present"))]
    out = []
    for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
        marks = [pytest.mark.skip(reason=SKIPS[case["id"]])] if case["id"] in SKIPS else []
        out.append(pytest.param(case["id"], marks=marks, id=case["id"]))
    return out


def _body_mismatches(case_id: str, got: list[Any], exp: list[Mapping[str, Any]]) -> list[str]:
    """Request bodies: equal as JSON (image bytes by structure), then byte for byte, as the pipeline
    harness compares its vectors (except its NOT_BYTE_EXACT cases)."""
    have = [normalise_images(b) for b in got]
    want = [normalise_images(r["body"]) for r in exp]
    if have != want:
        return [f"request bodies differ:\n  got {[compact(b)[:1500] for b in have]!r}\n"
                f"  exp {[compact(b)[:1500] for b in want]!r}"]
    if case_id not in NOT_BYTE_EXACT and [compact(b) for b in have] != [compact(b) for b in want]:
        return ["request bodies equal as JSON but not byte for byte"]
    return []


def _decision_mismatches(got: Mapping[str, Any], exp: Mapping[str, Any], *, channel: bool) -> list[str]:
    problems = []
    for i, eb in enumerate(exp["batches"]):
        want = {k: eb.get(k) for k in ("should_activate", "activated", "activation", "random_rolls")}
        if channel and eb.get("should_activate") is not None:
            want["evaluated_with_channel_id"] = eb.get("evaluated_with_channel_id")
        have = {k: got["batches"][i].get(k) for k in want}
        if have != want:
            problems.append(f"batch {i}: {have} != {want}")
    return problems


def _activation_mismatches(case_id: str, got: Mapping[str, Any], exp: Mapping[str, Any]) -> list[str]:
    """Everything the runtime vector records that our runtime reproduces (empty list: the case passes)."""
    problems = _decision_mismatches(got, exp, channel=True)
    if got["discord_actions"] != exp["discord_actions"]:
        problems.append(f"discord_actions {got['discord_actions']!r} != {exp['discord_actions']!r}")
    keys = ("message_ids", "inheritance_info")
    have_fetches = [{k: f[k] for k in keys} for f in got["context_fetches"]]
    want_fetches = [{k: f[k] for k in keys} for f in exp["context_fetches"]]
    if have_fetches != want_fetches:
        problems.append(f"context_fetches {have_fetches} != {want_fetches}")
    if "sleep_counters_after" in exp and got["sleep_counters_after"] != exp["sleep_counters_after"]:
        problems.append(f"sleep_counters_after {got['sleep_counters_after']} != {exp['sleep_counters_after']}")
    if "provider_request_count" in exp:
        if got["provider_request_count"] != exp["provider_request_count"]:
            problems.append(f"provider_request_count {got['provider_request_count']} != {exp['provider_request_count']}")
    else:
        problems += _body_mismatches(case_id, got["provider_bodies"], exp["provider_requests"])
    if "pins_api_requests" in exp and got["pins_api_requests"] != exp["pins_api_requests"]:
        problems.append(f"pins_api_requests {got['pins_api_requests']} != {exp['pins_api_requests']}")
    return problems


def _history_mismatches(case_id: str, got: Mapping[str, Any], exp: Mapping[str, Any]) -> list[str]:
    """history.json through the runtime: decisions, fetched ids, every Discord action, request bodies."""
    problems = _decision_mismatches(got, exp, channel=False)
    have_ids = [f["message_ids"] for f in got["context_fetches"]]
    want_ids = [f["message_ids"] for f in exp["context_fetches"]]
    if have_ids != want_ids:
        problems.append(f"context_fetches message_ids {have_ids} != {want_ids}")
    if got["discord_actions"] != exp["discord_actions"]:
        problems.append(f"discord_actions {got['discord_actions']!r} != {exp['discord_actions']!r}")
    return problems + _body_mismatches(case_id, got["provider_bodies"], exp["provider_requests"])


def _assert_case(case: dict[str, Any], got: Mapping[str, Any], mismatches: Mismatches,
                 adjustments: Mapping[str, Adjust]) -> None:
    """Equal to upstream's expected value, or, for an adjusted case, to the adjusted value and not to
    upstream's."""
    case_id = case["id"]
    expected = case["expected"]
    if case_id in adjustments:
        assert mismatches(case_id, got, expected), "matches upstream again: drop the adjustment and its doc bullet"
        expected = copy.deepcopy(expected)
        adjustments[case_id](expected, case)
    problems = mismatches(case_id, got, expected)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case_id", _cases())
async def test_activation_decision(case_id: str) -> None:
    data = json.loads(shared_path("golden", "chapterx", "activation-decisions.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == case_id)
    got = await run_case(case["input"])
    _assert_case(case, got, _activation_mismatches, {**ACTIVATION_ADJUSTMENTS, **RUNTIME_ADJUSTMENTS})


# history.json: the pipeline area replays only the activation; here the whole batch goes through the
# runtime (decision, lock, activation).


def _history_cases() -> list[Any]:
    path = SHARED_DIR / "golden" / "chapterx" / "history.json"
    if not path.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason="history.json not present"))]
    return [pytest.param(case["id"], id=case["id"]) for case in json.loads(path.read_text(encoding="utf-8"))["cases"]]


@pytest.mark.parametrize("case_id", _history_cases())
async def test_history_through_runtime(case_id: str) -> None:
    data = json.loads(shared_path("golden", "chapterx", "history.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == case_id)
    got = await run_case(case["input"])
    _assert_case(case, got, _history_mismatches, HISTORY_ADJUSTMENTS)


def test_every_adjusted_case_exists() -> None:
    """An adjustment naming a case the golden files no longer hold would silently assert nothing."""
    ids = {name: {c["id"] for c in json.loads(shared_path("golden", "chapterx", name).read_text(encoding="utf-8"))["cases"]}
           for name in ("activation-decisions.json", "history.json")}
    assert sorted(set(ACTIVATION_ADJUSTMENTS) - ids["activation-decisions.json"]) == []
    assert sorted(set(RUNTIME_ADJUSTMENTS) - ids["activation-decisions.json"]) == []
    assert sorted(set(HISTORY_ADJUSTMENTS) - ids["history.json"]) == []


def test_runtime_adjustments_are_documented() -> None:
    """Each runtime adjustment names its case in docs/differences.md and cites the doc."""
    from tests.conftest import REPO_DIR

    docs = (REPO_DIR / "docs" / "differences.md").read_text(encoding="utf-8")
    assert [cid for cid in RUNTIME_ADJUSTMENTS if f"`{cid}`" not in docs] == []
    assert [f.__name__ for f in RUNTIME_ADJUSTMENTS.values() if "differences.md" not in (f.__doc__ or "")] == []
