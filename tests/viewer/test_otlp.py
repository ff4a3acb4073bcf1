"""chapter2 OTLP-JSON reader against the golden collector files and their summaries."""

from __future__ import annotations

import base64
import json

import pytest

from chapterx_compat.chapter2 import otlp
from tests.conftest import shared_path

GOLDEN = ("ch2-wren-discord", "ch2-quill-generate-response")


@pytest.mark.parametrize("name", GOLDEN)
def test_summaries_match_golden(name: str) -> None:
    folder = shared_path("golden", "chapter2", "otlp")
    got = otlp.summarize_spans(otlp.read_file(folder / f"{name}.jsonl"))
    expected = json.loads((folder / f"{name}.summary.json").read_text())
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == e, e["traceId"]


def test_discord_replies_map_to_common_summary() -> None:
    folder = shared_path("golden", "chapter2", "otlp")
    replies = otlp.group_replies(otlp.read_file(folder / "ch2-wren-discord.jsonl"))
    summary = {s["traceId"]: s for s in json.loads((folder / "ch2-wren-discord.summary.json").read_text())}
    # Every handle_exceptions trace becomes one reply; lone get_config / start traces are noise.
    discord = [s for s in summary.values() if s["root"] == otlp.ROOT_DISCORD]
    by_id = {r.trace_id: r for r in replies}
    for s in discord:
        entry = otlp.reply_entry(by_id[s["traceId"]])
        assert entry["framework"] == "chapter2"
        assert entry["botName"] == "ch2-wren"
        assert entry["triggeringMessageId"] == s["message.id"]
        assert entry["guildId"] == s["guild.id"]
        if "thread.id" in s:
            assert entry["isThread"] is True
            assert entry["channelId"] == s["thread.id"]
            assert entry["parentChannelId"] == s["channel.id"]
        else:
            assert entry["channelId"] == s["channel.id"] and entry["isThread"] is False
        assert entry["success"] is ("error" not in s)
        assert entry["llmCallCount"] == len(s.get("llm_calls", []))
        if s.get("sent_messages"):
            assert entry["responsePreview"] == "\n".join(s["sent_messages"])[:100]
        detail = otlp.reply_detail(by_id[s["traceId"]])
        if s.get("llm_calls"):
            assert detail["chapter2"]["prompt"] == s["llm_calls"][-1]["prompt"]
            assert detail["chapter2"]["continuation"] == s["llm_calls"][-1]["continuation"]
        if "error" in s:
            assert detail["outcome"]["error"]["message"] == s["error"]
        # the span tree holds every span exactly once
        count = 0
        stack = list(detail["chapter2"]["spans"])
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node["children"])
        assert count == s["span_count"]
    noise = {t for t, s in summary.items() if s["root"] in otlp.NOISE_ROOTS}
    assert not noise & set(by_id)


def test_generator_iterations_are_joined_into_one_reply() -> None:
    folder = shared_path("golden", "chapter2", "otlp")
    spans = otlp.read_file(folder / "ch2-quill-generate-response.jsonl")
    summary = json.loads((folder / "ch2-quill-generate-response.summary.json").read_text())
    replies = otlp.group_replies(spans)
    with_calls = [s for s in summary if s.get("llm_calls")]
    assert len(replies) == len(with_calls)
    # every OTLP trace lands in exactly one reply
    assert sorted(t for r in replies for t in r.traces) == sorted(s["traceId"] for s in summary)
    for r, s in zip(replies, with_calls, strict=True):
        assert s["traceId"] in r.traces
        d = otlp.reply_detail(r)
        assert d["chapter2"]["prompt"] == s["llm_calls"][0]["prompt"]
        assert d["botId"] == "ch2-quill"


def test_base64_ids_and_enum_names_are_normalised() -> None:
    tid = bytes(range(16))
    sid = bytes(range(8))
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "prod-arago"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "chapter2"},
                        "spans": [
                            {
                                "traceId": base64.b64encode(tid).decode(),
                                "spanId": base64.b64encode(sid).decode(),
                                "name": otlp.ROOT_DISCORD,
                                "kind": "SPAN_KIND_INTERNAL",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000500000000",
                                "attributes": [{"key": "message.id", "value": {"intValue": "42"}}],
                                "events": [
                                    {
                                        "name": "send_message",
                                        "attributes": [
                                            {"key": "value", "value": {"stringValue": "('hey, \\'you\\'',)"}}
                                        ],
                                    }
                                ],
                                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    spans = otlp.parse_request(doc)
    assert spans[0].trace_id == tid.hex() and spans[0].span_id == sid.hex()
    assert spans[0].kind == 1 and spans[0].is_error
    s = otlp.summarize_trace(spans)
    assert s["message.id"] == "42" and s["sent_messages"] == ["hey, 'you'"] and s["error"] == "boom"
    entry = otlp.reply_entry(otlp.group_replies(spans)[0])
    assert entry["botName"] == "arago"  # prod- prefix stripped
    assert entry["timestamp"] == "2023-11-14T22:13:20.000Z" and entry["durationMs"] == 500


def test_malformed_lines_are_skipped(tmp_path) -> None:
    folder = shared_path("golden", "chapter2", "otlp")
    good = (folder / "ch2-wren-discord.jsonl").read_text().splitlines()
    f = tmp_path / "mixed.jsonl"
    f.write_text("not json\n" + good[0] + '\n{"resourceSpans": 5}\n' + good[1][: len(good[1]) // 2])
    spans = otlp.read_file(f)
    assert spans and all(s.trace_id for s in spans)
    assert len(spans) == len(list(otlp.iter_lines(good[:1])))
