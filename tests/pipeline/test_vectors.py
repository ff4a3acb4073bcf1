"""Every activation vector, run end to end through `replay_case` (the code path of `chapterx replay`).

In-memory Discord world + config files in a temp dir + the real providers (official SDKs) talking
to the local FakeLLMServer. Request bodies are compared exactly (image bytes by structure),
Discord actions and channel state exactly.

Two lists below keep failures honest:
- DIFFERENCES: deliberate differences from upstream, documented in docs/differences/pipeline.md
  (or postprocess.md); strict xfail, so a case that starts matching must leave the list.
- PENDING: cases owned by another area that has not landed yet; non-strict xfail, shrink as it lands.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SHARED_DIR, shared_path
from tests.pipeline.vectors import byte_exact, compare

FILES = ("prompt-rendering.json", "postprocess.json", "provider-requests.json")

DIFFERENCES: dict[str, str] = {
    # pipeline (docs/differences/pipeline.md)
    "prefill-bot-nickname": "own messages recognised by user id, not display name == username (marker, merge)",
    "prefill-text-attachment": "text attachments rendered once (<attachment> block), not twice",
    "chat-basic": "text attachment rendered once (no extra 📎 block)",
    "prefill-last-message-is-bot": "raw continuation of the bot's own last message (no fresh 'Aria:' turn)",
    "pp-inline-tool-call-streaming": "prefill tool calls are executed on the streaming path too",
    "pp-inline-tool-call-nonstreaming": "prefill continues the same turn verbatim after <function_results>",
    "pp-native-tool-call-chat": "the final message does not repeat the pre-tool text",
    "pp-thinking-tags-in-text": "raw completion text is segmented on every path (two messages, as non-streaming)",
    "gemini-generate-images-true-returns-image": "the rolling counter also advances when an image was generated",
    # post-processing decisions (docs/differences/postprocess.md)
    "pp-prefill-thinking-debug": "prefill_thinking opener restored: debug_thinking posts the thought",
    "pp-prefill-thinking-debug-long": "prefill_thinking opener restored: debug_thinking attaches the thought",
    "pp-prefill-thinking-debug-nonstreaming": "prefill_thinking opener restored: the thought does not leak",
    # providers (their area; listed here because this harness runs whole activations)
    "bedrock-chat-thinking": "providers: native thinking text is not posted as part of the reply",
    "retry-openai-529-nonstreaming-not-retried": "providers: 529 is retried for every vendor (succeeds on retry)",
    "retry-openrouter-529-streaming-no-retry": "providers: 529 is retried before any output (succeeds on retry)",
}

PENDING: dict[str, str] = {}

# Cases whose bodies are equal as JSON but not byte-identical (key order / `1.0`), owned elsewhere.
NOT_BYTE_EXACT: dict[str, str] = {
    "gemini-chat-stream": "providers: google-genai SDK orders generationConfig keys itself",
    "gemini-chat-image": "providers: google-genai SDK orders generationConfig keys, sends 1.0",
    "gemini-generate-images-true-nonstreaming": "providers: google-genai SDK orders keys, sends 1.0",
}


def _cases() -> list[Any]:
    params = []
    for name in FILES:
        path = SHARED_DIR / "golden" / "chapterx" / name
        if not path.exists():
            continue
        for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
            marks = []
            if case["id"] in DIFFERENCES:
                marks.append(pytest.mark.xfail(reason=DIFFERENCES[case["id"]], strict=True))
            elif case["id"] in PENDING:
                marks.append(pytest.mark.xfail(reason=PENDING[case["id"]], strict=False))
            params.append(pytest.param(name, case["id"], id=f"{name.removesuffix('.json')}::{case['id']}", marks=marks))
    return params


_LOADED: dict[str, dict[str, Any]] = {}


def _case(name: str, case_id: str) -> dict[str, Any]:
    if name not in _LOADED:
        data = json.loads(shared_path("golden", "chapterx", name).read_text(encoding="utf-8"))
        _LOADED[name] = {c["id"]: c for c in data["cases"]}
    return _LOADED[name][case_id]


@pytest.mark.parametrize(("file_name", "case_id"), _cases())
async def test_vector(file_name: str, case_id: str) -> None:
    from chapterx.agent.replay import replay_case

    case = _case(file_name, case_id)
    out = await replay_case(case["input"])
    problems = compare(out, case["expected"])
    assert not problems, "\n".join(problems)
    if case_id not in NOT_BYTE_EXACT:
        assert byte_exact(out, case["expected"]), "bodies equal as JSON but not byte for byte"


def test_vector_files_present_or_skipped() -> None:
    shared_path("golden", "chapterx", "prompt-rendering.json")
    assert _cases(), "no vector cases found"
