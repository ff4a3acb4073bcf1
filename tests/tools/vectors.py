"""Comparing `tool-plugins.json` cases with our run, and the documented adjustments.

`mismatches(case_id, got, expected)` lists what differs (empty: the case passes). `adjusted(case)`
is the case's `expected` with every deliberate difference of docs/differences.md ("Tool loops"
and "Tools") applied; the vector test asserts our output equals it and, for an adjusted case,
still differs from upstream's raw value.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.pipeline.vectors import compact, normalise_images

Case = Mapping[str, Any]
Adjust = Callable[[dict[str, Any], Case], None]


def mismatches(got: Mapping[str, Any], exp: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for i, eb in enumerate(exp["batches"]):
        gb = got["batches"][i] if i < len(got["batches"]) else {}
        want = {k: eb.get(k) for k in ("should_activate", "activated", "activation", "random_rolls")}
        have = {k: gb.get(k) for k in want}
        if have != want:
            problems.append(f"batch {i}: {have} != {want}")
    if got["discord_actions"] != exp["discord_actions"]:
        problems.append(f"discord_actions\n  got {got['discord_actions']!r}\n  exp {exp['discord_actions']!r}")
    have_bodies = [normalise_images(b) for b in got["provider_bodies"]]
    want_bodies = [normalise_images(r["body"]) for r in exp["provider_requests"]]
    if have_bodies != want_bodies:
        problems.append(f"request bodies\n  got {[compact(b)[-1500:] for b in have_bodies]!r}\n"
                        f"  exp {[compact(b)[-1500:] for b in want_bodies]!r}")
    if got["state_files"] != exp["state_files"]:
        problems.append(f"state_files\n  got {json.dumps(got['state_files'])[:3000]}\n"
                        f"  exp {json.dumps(exp['state_files'])[:3000]}")
    if "http_requests" in exp and got.get("http_requests") != exp["http_requests"]:
        problems.append(f"http_requests {got.get('http_requests')} != {exp['http_requests']}")
    return problems


# --- generic adjustments (pipeline differences that every tool case inherits) ----------------------


def _continuation_same_turn(exp: dict[str, Any], _case: Case) -> bool:
    """differences.md "The continuation continues the same turn, verbatim": the prefill of a tool
    continuation is `Aria:` + the model's own text + results, with no new `Aria:` turn."""
    changed = False
    for req in exp["provider_requests"]:
        last = req["body"]["messages"][-1]
        if last["role"] != "assistant" or not isinstance(last["content"], str):
            continue
        text = last["content"]
        if not text.endswith("</function_results>\nAria:"):
            continue
        text = text.removesuffix("\nAria:")
        start = text.rfind("Aria:  ", 0, text.rfind("<function_calls>"))
        if start >= 0:
            text = text[:start] + "Aria: " + text[start + len("Aria:  "):]
        last["content"] = text
        changed = True
    return changed


def _no_empty_text_turn(exp: dict[str, Any], _case: Case) -> bool:
    """differences.md (Tools) "no empty assistant turn": a cached native tool call whose completion
    text was empty is not sent as an assistant turn holding one empty text block (the Messages API
    rejects empty text blocks); the user turns around it join into one."""
    changed = False
    for req in exp["provider_requests"]:
        msgs = req["body"].get("messages")
        if not isinstance(msgs, list):
            continue
        out: list[dict[str, Any]] = []
        for m in msgs:
            if m.get("role") == "assistant" and m.get("content") == [{"type": "text", "text": ""}]:
                changed = True
                continue
            if out and out[-1]["role"] == m["role"] == "user" and isinstance(out[-1]["content"], list) \
                    and isinstance(m["content"], list):
                out[-1] = {**out[-1], "content": [*out[-1]["content"], *m["content"]]}
                continue
            out.append(m)
        req["body"]["messages"] = out
    return changed


GENERIC: tuple[Callable[[dict[str, Any], Case], bool], ...] = (_continuation_same_turn, _no_empty_text_turn)

def _native_no_repeat(exp: dict[str, Any], case: Case) -> None:
    """differences.md (Tool loops) "native tool loop: the final message is not repeated": the last
    message carries only the final response's text, not the pre-tool text again."""
    first = next(r for r in case["input"]["llm_responses"] if r.get("tool_use"))
    final = [a for a in exp["discord_actions"] if a["type"] == "send"][-1]
    assert final["content"].startswith(first["text"]) and first["text"]
    final["content"] = final["content"].removeprefix(first["text"])


def _block_scalar_clip(exp: dict[str, Any], _case: Case) -> None:
    """differences.md (Tools) "a `|` block at the end of a pin": YAML's clip chomping keeps no final
    newline when the pin ends without one (js-yaml adds one); the system prompt has no trailing newline."""
    for req in exp["provider_requests"]:
        system = req["body"].get("system")
        if isinstance(system, str) and system.endswith("Speak like one.\n"):
            req["body"]["system"] = system.removesuffix("\n")


def _replace(node: Any, old: str, new: str) -> Any:
    """Every string in `node` with `old` replaced by `new` (returns the new tree)."""
    if isinstance(node, str):
        return node.replace(old, new)
    if isinstance(node, list):
        return [_replace(x, old, new) for x in node]
    if isinstance(node, dict):
        return {k: _replace(v, old, new) for k, v in node.items()}
    return node


def _replace_in(exp: dict[str, Any], old: str, new: str, *keys: str) -> None:
    hits = 0
    for key in keys or ("provider_requests", "discord_actions", "state_files"):
        before = json.dumps(exp[key])
        exp[key] = _replace(exp[key], old, new)
        hits += before != json.dumps(exp[key])
    assert hits, f"adjustment text not found: {old[:60]!r}"


def _epic_read_back(exp: dict[str, Any], _case: Case) -> None:
    """Tools: "epic notes are read back": the saved note is shown in the next context and listed."""
    notes = "## 📝 Saved Notes\n\n1. [note_m7q7m740] wifi password is hunter2\n\n_Use save_note/delete_note to manage notes._"
    line = 'System<[save_note]: Note will be saved: "wifi password is hunter2"\n'
    _replace_in(exp, line + "alice: @Aria list notes", line + f"System>[plugin]: {notes}\nalice: @Aria list notes",
                "provider_requests")
    _replace_in(exp, "No notes saved yet. Use save_note to create one.",
                "**1 notes:**\n\n1. [note_m7q7m740] wifi password is hunter2")
    for req in exp["provider_requests"][2:]:
        stops = req["body"]["stop_sequences"]
        stops.insert(stops.index("\nalice:") + 1, "\nSystem>[plugin]:")


def _timer_nan_refused(exp: dict[str, Any], _case: Case) -> None:
    """Tools: "a non-numeric delay_minutes is refused": clear error, no unfireable timer stored."""
    _replace_in(exp, "Error scheduling timer: RangeError: Invalid time value",
                "Error: delay_minutes must be a number of minutes (0.05-1440)")
    del exp["state_files"]["cache/timers.json"]


def _missed_timer_removed(exp: dict[str, Any], _case: Case) -> None:
    """Tools: "a missed timer fires once": the timer fired at startup leaves timers.json."""
    timers = exp["state_files"]["cache/timers.json"]["timers"]
    timers[:] = [t for t in timers if t["id"] != "timer_m7past_cccc"]


def _mcp_is_error(exp: dict[str, Any], _case: Case) -> None:
    """Tools: "MCP isError results are errors": the model gets an error result, the log an error."""
    done = False
    for req in exp["provider_requests"]:
        for msg in req["body"]["messages"]:
            for block in msg["content"] if isinstance(msg["content"], list) else []:
                if block.get("type") == "tool_result" and block["content"] == "add: a and b must be numbers":
                    block["content"] = "Error executing add: add: a and b must be numbers"
                    block["is_error"] = True
                    done = True
    assert done
    for lines in exp["state_files"].values():
        for entry in lines:
            if entry["call"]["name"] == "add":
                entry["result"]["error"] = entry["result"]["output"]


def _mcp_error_visible(exp: dict[str, Any], _case: Case) -> None:
    """Tools: "a failed call's visible line shows the error" (upstream prints `null`)."""
    _replace_in(exp, ".Aria<[boom]: null", ".Aria<[boom]: Error executing boom: MCP error -32000: boom exploded",
                "discord_actions")


def _native_depth_limit(exp: dict[str, Any], case: Case) -> None:
    """Tool loops "not repeated", and Tools "calls past max_tool_depth are not run": the second
    tool_use is neither executed nor logged (a warning says so), the final text is sent once."""
    sends = [a for a in exp["discord_actions"] if a["type"] == "send"]
    assert [a["content"] for a in sends] == ["One more.", "One more."]
    exp["discord_actions"].remove(sends[1])
    state = exp["state_files"]
    notes = state["cache/plugins/notes/channel/710000000000000001.json"]["state"]["notes"]
    notes[:] = [n for n in notes if n["content"] != "note two"]
    log = state["tools/aria/710000000000000001/2025-03-01T13.jsonl"]
    log[:] = [e for e in log if e["call"]["id"] != "toolu_tp_d_2"]
    for e in log:
        e["call"]["botMessageIds"] = [sends[0]["message_id"]]


def _streaming_tools_run(exp: dict[str, Any], case: Case) -> None:
    """Tool loops "prefill (XML) tools run on every path": the call runs on the streaming path too,
    so the continuation carries its result, the note is saved and logged, and Discord gets the
    pre-tool text (a reply) and the final text as two messages, as on the non-streaming path."""
    result = 'Note will be saved: "bob likes tea"'
    last = exp["provider_requests"][1]["body"]["messages"][-1]
    assert last["content"].endswith("</function_calls>")
    last["content"] += f"\n\n<function_results>\n{result}\n</function_results>"
    sends = [a for a in exp["discord_actions"] if a["type"] == "send"]
    assert [a["content"] for a in sends] == ["Noting it.Saved."]
    first = {**sends[0], "content": "Noting it."}
    second = {**sends[0], "content": "Saved.", "reply_to": None, "message_id": "1900000000000000002"}
    exp["discord_actions"][exp["discord_actions"].index(sends[0]):] = [first, second]
    trigger = case["input"]["batches"][0]["events"][0]["message"]["id"]
    completion = case["input"]["llm_responses"][0]["text"] + "</function_calls>"
    exp["state_files"] = {
        "cache/plugins/notes/channel/710000000000000001.json": {
            "state": {"notes": [{"id": "note_m7q7m740", "content": "bob likes tea",
                                 "createdAt": "2025-03-01T13:00:00.000Z", "createdByMessageId": trigger}],
                      "lastModifiedMessageId": trigger},
            "metadata": {"lastModifiedMessageId": trigger}},
        "tools/aria/710000000000000001/2025-03-01T13.jsonl": [{
            "call": {"id": case["input"]["tool_call_ids"][0], "name": "save_note",
                     "input": {"content": "bob likes tea"}, "messageId": trigger,
                     "originalCompletionText": f"{completion}\n\n<function_results>\n{result}\n</function_results>"
                                               + case["input"]["llm_responses"][1]["text"],
                     "botMessageIds": ["1900000000000000001", "1900000000000000002"]},
            "result": {"output": result}, "timestamp": "2025-03-01T13:00:00.000Z"}],
    }


def _drop_send(exp: dict[str, Any], action: dict[str, Any]) -> None:
    """Remove one sent message; later created ids move down by one, as Discord would number them."""
    gone = int(action["message_id"])
    exp["discord_actions"].remove(action)

    def shift(mid: str) -> str:
        return str(int(mid) - 1) if mid.isdigit() and int(mid) > gone and mid.startswith("19") else mid

    for a in exp["discord_actions"]:
        if "message_id" in a:
            a["message_id"] = shift(a["message_id"])
    for lines in exp["state_files"].values():
        for entry in lines if isinstance(lines, list) else []:
            ids = entry.get("call", {}).get("botMessageIds")
            if ids:
                entry["call"]["botMessageIds"] = [shift(i) for i in ids if i != str(gone)]


def _no_resend_first_round(exp: dict[str, Any], _case: Case) -> None:
    """Tool loops: each round posts only its own new text; the text before the first call block is
    not sent again in the second round."""
    sends = [a for a in exp["discord_actions"] if a["type"] == "send"]
    assert sends[0]["content"] == sends[1]["content"] == "Making one."
    _drop_send(exp, sends[1])


# Per-case adjustments (each one a bullet under "Tools" in docs/differences.md).
ADJUSTMENTS: dict[str, Adjust] = {
    "tp-sleep-plain-minutes-native": _native_no_repeat,
    "tp-config-set-multiline-then-applied-native": _block_scalar_clip,
    "tp-notes-epic-scope-not-read": _epic_read_back,
    "tp-timer-delay-string-nan": _timer_nan_refused,
    "tp-timer-missed-at-startup": _missed_timer_removed,
    "tp-mcp-add-iserror-native": _mcp_is_error,
    "tp-mcp-boom-jsonrpc-error-native": _mcp_error_visible,
    "tp-max-tool-depth-native": _native_depth_limit,
    "tp-prefill-streaming-tools-not-executed": _streaming_tools_run,
    "tp-share-image-from-mcp-tool-prefill": _no_resend_first_round,
}


def adjusted(case: Case) -> tuple[dict[str, Any], bool]:
    """The expected value after our documented differences, and whether any applied."""
    exp = copy.deepcopy(dict(case["expected"]))
    changed = False
    for fn in GENERIC:
        changed = fn(exp, case) or changed
    if case["id"] in ADJUSTMENTS:
        ADJUSTMENTS[case["id"]](exp, case)
        changed = True
    return exp, changed


def first_diff(a: str, b: str) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"...{a[max(0, i - 80):i + 120]!r}\n vs ...{b[max(0, i - 80):i + 120]!r}"


_ = re
