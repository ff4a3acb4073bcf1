"""Golden cases where we differ from upstream on purpose, asserted positively.

Each case runs exactly as in `test_vectors.py` / `test_history_vectors.py`. Its upstream `expected` is
then changed by a small per-case adjustment that spells out the documented difference
(`docs/differences.md`, cited in each docstring), and our output must equal the adjusted value
exactly. Every case must also still differ from the unadjusted upstream value: a case that starts
matching upstream again has to leave this list (and its doc bullet).

Adjustments only use the case's own input (scripted responses, messages) and, where upstream itself
shows the behaviour we adopt, the expected value of a named sibling case. Never our own output.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DIR, shared_path
from tests.pipeline.vectors import NOT_BYTE_EXACT, byte_exact, compare, normalise_images

DOCS = Path(__file__).resolve().parents[2] / "docs" / "differences.md"

Case = dict[str, Any]
Adjust = Callable[[dict[str, Any], Case], None]
"""Mutates a deep copy of `case["expected"]` into what we do instead (the case is read-only)."""

_FILES = ("prompt-rendering.json", "postprocess.json", "provider-requests.json")
_LOADED: dict[str, dict[str, Case]] = {}


def _load(name: str) -> dict[str, Case]:
    if name not in _LOADED:
        data = json.loads(shared_path("golden", "chapterx", name).read_text(encoding="utf-8"))
        _LOADED[name] = {c["id"]: c for c in data["cases"]}
    return _LOADED[name]


def _sibling(case_id: str) -> Case:
    """An activation case (any of the three files) whose upstream result shows the behaviour we adopt."""
    for name in _FILES:
        if case_id in _load(name):
            return _load(name)[case_id]
    raise KeyError(case_id)


def _send(content: str, reply_to: str | None, **extra: Any) -> dict[str, Any]:
    return {"type": "send", "content": content, "reply_to": reply_to, **extra}


def _debug_post(thought: str) -> dict[str, Any]:
    """debug_thinking's post, in upstream's format (`pp-chat-debug-thinking`,
    `pp-debug-thinking-literal-tags-nonstreaming`): not a reply; over 1900 characters as `thinking.md`."""
    if len(thought) > 1900:
        return _send(".💭 thinking trace attached", None, files=[{"name": "thinking.md", "content": thought}])
    return _send(f".💭 {thought}", None)


def _text_attachment(case: Case) -> dict[str, Any]:
    atts = [a for m in case["input"]["discord"]["messages"] for a in m.get("attachments", []) if "text" in a]
    assert len(atts) == 1, "the case has exactly one text attachment"
    return atts[0]


def _last_prefill(expected: dict[str, Any], request: int = 0) -> dict[str, Any]:
    """The final assistant message of a prefill request (where the model continues)."""
    message: dict[str, Any] = expected["provider_requests"][request]["body"]["messages"][-1]
    assert message["role"] == "assistant" and isinstance(message["content"], str)
    return message


# --- activation vectors (prompt-rendering / postprocess / provider-requests) --------------------------


def _bot_nickname(exp: dict[str, Any], case: Case) -> None:
    """pipeline.md "recognised by user id": the marker search from index len-20 (the bot's first line)
    skips the bot's messages and lands on alice's message before them, so the bot's merged line leaves
    the cached block and opens the uncached part of the prompt."""
    messages = case["input"]["discord"]["messages"]
    bot_line = "\nAria: first bot line second bot line"
    cached = exp["provider_requests"][0]["body"]["messages"][1]["content"][0]
    assert cached["text"].endswith(bot_line)
    cached["text"] = cached["text"].removesuffix(bot_line)
    rest = exp["provider_requests"][0]["body"]["messages"][2]
    rest["content"] = bot_line.lstrip("\n") + "\n" + rest["content"]
    exp["state_after"]["last_cache_marker"] = messages[0]["id"]


def _attachment_once_prefill(exp: dict[str, Any], case: Case) -> None:
    """pipeline.md "text attachments are rendered once": no `📎 name` block (prefill joins a message's
    blocks with a newline), only the `<attachment>` block."""
    att = _text_attachment(case)
    block = exp["provider_requests"][0]["body"]["messages"][1]["content"][0]
    paperclip = f"📎 {att['filename']}\n{att['text']}\n"
    assert paperclip in block["text"]
    block["text"] = block["text"].replace(paperclip, "", 1)


def _attachment_once_chat(exp: dict[str, Any], case: Case) -> None:
    """pipeline.md "text attachments are rendered once": the `📎 name` content block is not sent."""
    att = _text_attachment(case)
    content = exp["provider_requests"][0]["body"]["messages"][2]["content"]
    paperclip = {"type": "text", "text": f"carol: 📎 {att['filename']}\n{att['text']}"}
    content.remove(paperclip)


def _raw_continuation(exp: dict[str, Any], case: Case) -> None:
    """pipeline.md "continuation as specified": the prefill ends with the bot's own text, no new label."""
    last = _last_prefill(exp)
    assert last["content"].endswith("\nAria:")
    last["content"] = last["content"].removesuffix("\nAria:")


def _inline_tools_streaming(exp: dict[str, Any], case: Case) -> None:
    """pipeline.md "prefill (XML) tools run on every path": the tool runs, so the continuation's prefill
    carries the `<function_results>` block (as upstream's non-streaming request does) and Discord sees
    what upstream's non-streaming case posts: the pre-tool text, the tool line, the final text."""
    sibling = _sibling("pp-inline-tool-call-nonstreaming")["expected"]
    sib_prefill = _last_prefill(sibling, 1)["content"]
    results = re.search(r"\n\n<function_results>\n.*?</function_results>", sib_prefill, re.S)
    assert results
    _last_prefill(exp, 1)["content"] += results.group(0)
    exp["discord_actions"] = copy.deepcopy(sibling["discord_actions"])


def _inline_tools_same_turn(exp: dict[str, Any], case: Case) -> None:
    """pipeline.md "the continuation continues the same turn, verbatim": `Aria:` + the model's own text
    (which starts with a space; no extra separator) and no fresh `Aria:` turn after the results."""
    last = _last_prefill(exp, 1)
    assert "\nAria:  Let me" in last["content"] and last["content"].endswith("</function_results>\nAria:")
    last["content"] = last["content"].replace("\nAria:  Let me", "\nAria: Let me").removesuffix("\nAria:")


def _native_tools_no_repeat(exp: dict[str, Any], case: Case) -> None:
    """pipeline.md "native tool loop: the final message is not repeated": only the final response's text."""
    pre_tool = case["input"]["llm_responses"][0]["text"]
    final = exp["discord_actions"][-1]
    assert final["content"].startswith(pre_tool)
    final["content"] = final["content"].removeprefix(pre_tool)


def _segment_streaming(exp: dict[str, Any], case: Case) -> None:
    """postprocess.md "streaming and non-streaming give the same messages": the messages upstream sends
    for the same completion without streaming (`pp-thinking-tags-nonstreaming`)."""
    sends = _sibling("pp-thinking-tags-nonstreaming")["expected"]["discord_actions"]
    assert "".join(a["content"] for a in sends) == exp["discord_actions"][0]["content"]
    exp["discord_actions"] = copy.deepcopy(sends)


def _prefill_thinking_debug(exp: dict[str, Any], case: Case) -> None:
    """postprocess.md "debug_thinking works with prefill_thinking": the thought (the completion up to
    `</thinking>`) is posted before the unchanged answer."""
    thought = case["input"]["llm_responses"][0]["text"].split("</thinking>")[0].strip()
    exp["discord_actions"].insert(0, _debug_post(thought))


def _prefill_thinking_no_leak(exp: dict[str, Any], case: Case) -> None:
    """postprocess.md "prefill_thinking never leaks the thought": upstream's single message is split at
    `</thinking>`; the thought goes to the debug post (debug_thinking is on), the answer is sent alone."""
    (sent,) = exp["discord_actions"]
    thought, answer = sent["content"].split("</thinking>")
    exp["discord_actions"] = [_debug_post(thought.strip()), _send(answer.strip(), sent["reply_to"])]


def _gemini_image_rolls(exp: dict[str, Any], case: Case) -> None:
    """pipeline.md "other decisions": the rolling counter advances by one, as after any activation."""
    exp["state_after"]["messages_since_roll"] = case["input"]["channel_state"]["messages_since_roll"] + 1


def _bedrock_thinking_hidden(exp: dict[str, Any], case: Case) -> None:
    """providers.md "Bedrock thinking is not mixed into the reply" (debug_thinking is off: not posted)."""
    thinking = case["input"]["llm_responses"][0]["thinking"]
    (sent,) = exp["discord_actions"]
    assert sent["content"].startswith(thinking)
    sent["content"] = sent["content"].removeprefix(thinking)


def _retried_like(sibling_id: str) -> Adjust:
    """providers.md "529 is retried for every vendor" / "retries also apply to streaming calls": the
    same request is sent again, and the activation ends as upstream's `sibling_id`, where upstream did
    retry and the second attempt succeeded (same input apart from the vendor or the status code)."""

    def adjust(exp: dict[str, Any], case: Case) -> None:
        sibling = _sibling(sibling_id)
        assert [r["text"] for r in sibling["input"]["llm_responses"]] == \
            [r["text"] for r in case["input"]["llm_responses"]]
        (request,) = exp["provider_requests"]
        exp["provider_requests"] = [request, copy.deepcopy(request)]
        exp["discord_actions"] = copy.deepcopy(sibling["expected"]["discord_actions"])
        exp["state_after"] = copy.deepcopy(sibling["expected"]["state_after"])
        del exp["error"]

    adjust.__doc__ = _retried_like.__doc__
    return adjust


VECTOR_ADJUSTMENTS: dict[str, Adjust] = {
    "prefill-bot-nickname": _bot_nickname,
    "prefill-text-attachment": _attachment_once_prefill,
    "chat-basic": _attachment_once_chat,
    "prefill-last-message-is-bot": _raw_continuation,
    "pp-inline-tool-call-streaming": _inline_tools_streaming,
    "pp-inline-tool-call-nonstreaming": _inline_tools_same_turn,
    "pp-native-tool-call-chat": _native_tools_no_repeat,
    "pp-thinking-tags-in-text": _segment_streaming,
    "gemini-generate-images-true-returns-image": _gemini_image_rolls,
    "pp-prefill-thinking-debug": _prefill_thinking_debug,
    "pp-prefill-thinking-debug-long": _prefill_thinking_debug,
    "pp-prefill-thinking-debug-nonstreaming": _prefill_thinking_no_leak,
    "bedrock-chat-thinking": _bedrock_thinking_hidden,
    "retry-openai-529-nonstreaming-not-retried": _retried_like("retry-openai-503-nonstreaming"),
    "retry-openrouter-529-streaming-no-retry": _retried_like("retry-anthropic-529-streaming"),
}


def _vector_params() -> list[Any]:
    params = []
    for name in _FILES:
        path = SHARED_DIR / "golden" / "chapterx" / name
        if not path.exists():
            continue
        for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
            if case["id"] in VECTOR_ADJUSTMENTS:
                params.append(pytest.param(name, case["id"], id=f"{name.removesuffix('.json')}::{case['id']}"))
    return params or [pytest.param("missing", "missing", marks=pytest.mark.skip(reason="golden vectors absent"))]


@pytest.mark.parametrize(("file_name", "case_id"), _vector_params())
async def test_difference_vector(file_name: str, case_id: str) -> None:
    from chapterx.agent.replay import replay_case

    case = _load(file_name)[case_id]
    out = await replay_case(case["input"])
    assert compare(out, case["expected"]), "matches upstream again: drop the adjustment and its doc bullet"
    expected = copy.deepcopy(case["expected"])
    VECTOR_ADJUSTMENTS[case_id](expected, case)
    problems = compare(out, expected)
    assert not problems, "\n".join(problems)
    if case_id not in NOT_BYTE_EXACT:
        assert byte_exact(out, expected), "bodies equal as JSON but not byte for byte"


# --- history.json ---------------------------------------------------------------------------------


def _history_link_not_a_url(exp: dict[str, Any], case: Case) -> None:
    """pipeline.md "other decisions": a `last:` that is not a message link clears the context. Upstream
    recursed on the channel until the depth cap (5), so the messages after the `.history` appear once per
    level (6 times); we keep them once."""
    (fetch,) = exp["context_fetches"]
    once = fetch["message_ids"][: len(fetch["message_ids"]) // 6]
    assert fetch["message_ids"] == once * 6
    fetch["message_ids"] = once
    last = _last_prefill(exp)
    repeat = "\nbob: general: after\nalice: @Aria what do you remember?"
    assert last["content"].count(repeat) == 5
    last["content"] = last["content"].replace(repeat, "")


HISTORY_ADJUSTMENTS: dict[str, Adjust] = {"history-link-not-a-url": _history_link_not_a_url}


def _history_params() -> list[Any]:
    path = SHARED_DIR / "golden" / "chapterx" / "history.json"
    if not path.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason="history.json not present"))]
    ids = {c["id"] for c in json.loads(path.read_text(encoding="utf-8"))["cases"]}
    return [pytest.param(cid, id=cid) for cid in HISTORY_ADJUSTMENTS if cid in ids]


def _history_view(fetch_ids: list[str], requests: list[dict[str, Any]], actions: list[dict[str, Any]]) -> Any:
    """What `test_history_vectors.py` compares: fetched ids, request bodies, the sends."""
    sends = [{k: v for k, v in a.items() if k in ("type", "content", "reply_to")} for a in actions if a["type"] == "send"]
    return fetch_ids, [normalise_images(r["body"]) for r in requests], sends


@pytest.mark.parametrize("case_id", _history_params())
async def test_difference_history(case_id: str) -> None:
    from chapterx.agent.replay import replay_history_case

    data = json.loads(shared_path("golden", "chapterx", "history.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == case_id)
    out = await replay_history_case(case["input"])
    got = _history_view(out["context_fetch"]["message_ids"], out["provider_requests"], out["discord_actions"])

    def view(exp: dict[str, Any]) -> Any:
        return _history_view(exp["context_fetches"][0]["message_ids"], exp["provider_requests"], exp["discord_actions"])

    assert got != view(case["expected"]), "matches upstream again: drop the adjustment and its doc bullet"
    expected = copy.deepcopy(case["expected"])
    HISTORY_ADJUSTMENTS[case_id](expected, case)
    assert got == view(expected)


# --- activation-decisions.json (cases with request bodies) --------------------------------------------

ACTIVATION_ADJUSTMENTS: dict[str, Adjust] = {
    "m-command-uppercase-not-command": _raw_continuation,
    "continuation-emoji-by-user": _raw_continuation,
}


def _activation_params() -> list[Any]:
    path = SHARED_DIR / "golden" / "chapterx" / "activation-decisions.json"
    if not path.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason="activation-decisions.json not present"))]
    ids = {c["id"] for c in json.loads(path.read_text(encoding="utf-8"))["cases"]}
    return [pytest.param(cid, id=cid) for cid in ACTIVATION_ADJUSTMENTS if cid in ids]


@pytest.mark.parametrize("case_id", _activation_params())
async def test_difference_activation(case_id: str) -> None:
    from tests.pipeline.test_history_vectors import run_activation_case

    data = json.loads(shared_path("golden", "chapterx", "activation-decisions.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == case_id)
    out = await run_activation_case(case)
    got = [normalise_images(r["body"]) for r in out["provider_requests"]]
    assert out["context_fetch"]["message_ids"] == case["expected"]["context_fetches"][0]["message_ids"]
    assert got != [normalise_images(r["body"]) for r in case["expected"]["provider_requests"]], \
        "matches upstream again: drop the adjustment and its doc bullet"
    expected = copy.deepcopy(case["expected"])
    ACTIVATION_ADJUSTMENTS[case_id](expected, case)
    assert got == [normalise_images(r["body"]) for r in expected["provider_requests"]]


# --- docs and tests agree ------------------------------------------------------------------------------


def test_every_adjusted_case_is_documented() -> None:
    """Each adjusted case id is named in docs/differences.md (the adjustment's source)."""
    docs = DOCS.read_text(encoding="utf-8")
    ids = [*VECTOR_ADJUSTMENTS, *HISTORY_ADJUSTMENTS, *ACTIVATION_ADJUSTMENTS]
    assert [cid for cid in ids if f"`{cid}`" not in docs] == []


def test_adjustment_docstrings_cite_a_doc() -> None:
    """An adjustment without its doc reference would be an unexplained 'expected = something else'."""
    adjustments = [*VECTOR_ADJUSTMENTS.values(), *HISTORY_ADJUSTMENTS.values(), *ACTIVATION_ADJUSTMENTS.values()]
    missing = [a.__name__ for a in adjustments if not re.search(r"\b\w+\.md\b", a.__doc__ or "")]
    assert missing == []
