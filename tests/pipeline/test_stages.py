"""Pure context stages and formatters on hand-made data (expected values worked out from the spec)."""

from __future__ import annotations

import copy

from chapterx.agent.inline_tools import find_call_block, results_block
from chapterx.context.build import (
    BuildInput,
    apply_limits,
    build_stop_sequences,
    determine_cache_marker,
    document_blocks,
    filter_dot_messages,
    truncate_by_chars,
)
from chapterx.context.convert import convert_message, rewrite_markup
from chapterx.context.types import Author, ContextMessage, Document, ParticipantMessage
from chapterx.discord.memory import MemoryDiscord
from chapterx.discord.port import Message
from chapterx.llm.formatters import render, resolve_mode, resolve_tool_mode
from tests.pipeline.conftest import BOT_ID, WORLD

CFG = {"name": "Gull", "continuation_model": "claude-sonnet-4-5-20250929"}


def _world() -> MemoryDiscord:
    return MemoryDiscord(copy.deepcopy(WORLD))


def _cm(i: int, text: str, author: str = "ines", bot: bool = False, reactions: list[tuple[str, int]] | None = None,
        uid: str | None = None) -> ContextMessage:
    return ContextMessage(str(1000 + i), "c", text, Author(uid or author, author, author, bot), "", reactions=reactions or [])


def _pm(name: str, text: str, mid: str | None = None, **kw: object) -> ParticipantMessage:
    return ParticipantMessage(name, [{"type": "text", "text": text}], mid, **kw)  # type: ignore[arg-type]


def test_markup_rewrites() -> None:
    port = _world()
    raw = "hi <@950000000000000002> <@!999> <a:party:1> <#910000000000000009> <#5> <@&940000000000000001> <@&7>"
    assert rewrite_markup(raw, port) == "hi <@otto> @unknown-user :party: #docks #unknown-channel @sonnet @unknown-role"


def test_reply_tag_only_for_humans_and_someone_outside_window() -> None:
    port = _world()
    human = Message("2", "c", "950000000000000002", "sure", 19, reply_to="1")
    target = Message("1", "c", "950000000000000001", "q?")
    assert convert_message(human, port, {"1": target}).content == "<reply:@ines> sure"
    assert convert_message(human, port, {}).content == "<reply:@someone> sure"
    bot = Message("3", "c", "960000000000000001", "beep", 19, reply_to="1")
    assert convert_message(bot, port, {"1": target}).content == "beep"
    assert convert_message(target, port, {}).author.display_name == "Nessa"


def test_dot_filter_and_reactions() -> None:
    msgs = [_cm(1, ".x"), _cm(2, ". x"), _cm(3, "<@otto> .cmd"), _cm(4, "..."), _cm(5, "hi. ok"),
            _cm(6, "hide me", reactions=[("🫥", 1)]), _cm(7, ".seen", reactions=[("👁️‍🗨️", 1)])]
    kept = [m.content for m in filter_dot_messages(msgs, CFG)]
    assert kept == ["...", "hi. ok", ".seen"]
    assert len(filter_dot_messages(msgs, {**CFG, "ignore_dotted_messages": False})) == 7


def test_cache_marker_prefers_non_bot_near_len_minus_20() -> None:
    ids = [str(i) for i in range(30)]
    assert determine_cache_marker(ids, None, True, {"10"}) == "11"
    assert determine_cache_marker(ids, "25", False, set()) == "25"
    assert determine_cache_marker(ids, "25", True, set()) == "10"
    assert determine_cache_marker(ids[:5], None, True, set()) == "0"


def test_limits_grow_until_roll_then_snap_back() -> None:
    msgs = [_pm("a", f"m{i}", str(i)) for i in range(30)]
    cfg = {**CFG, "recency_window_messages": 12}
    kept, rolled, _ = apply_limits(msgs, cfg, messages_since_roll=3)
    assert (len(kept), rolled) == (30, False)
    kept, rolled, _ = apply_limits(msgs, cfg, messages_since_roll=50)
    assert (len(kept), rolled, kept[0].message_id) == (12, True, "18")
    kept, rolled, warn = apply_limits(msgs, {**cfg, "hard_max_characters": 50, "recency_window_characters": 9}, 0)
    assert rolled and [m.message_id for m in kept] == ["27", "28", "29"] and warn


def test_truncate_by_chars_keeps_at_least_the_newest_message() -> None:
    old, new = _pm("a", "x" * 3, "1"), _pm("b", "y" * 10, "2")
    assert truncate_by_chars([old, new], 5) == [new]
    assert truncate_by_chars([old, new], 13) == [old, new]


def test_stop_sequences_order_numeric_and_thinking() -> None:
    msgs = [_pm("12345", "numbers"), _pm("otto", "ask <@ines.b>"), _pm("Ghost", "boo", is_character_override=True),
            _pm("Gull", "")]
    stops = build_stop_sequences(msgs, {**CFG, "stop_sequences": ["###"], "turn_end_token": "<eot>"})
    assert stops == ["<eot>", "\nGull:", "\notto:", "\nines.b:", "###", "\nSystem:", "<<HUMAN_CONVERSATION_END>>"]
    thinking = build_stop_sequences(msgs, {**CFG, "prefill_thinking": True})
    assert "\nGull:" not in thinking


def test_documents_rendered_once() -> None:
    doc = Document("n.txt", "tiny", 4)
    assert document_blocks(doc, CFG) == [{"type": "text", "text": '<attachment filename="n.txt">\ntiny\n</attachment>'}]
    big = Document("b.md", "lorem", 5000)
    assert document_blocks(big, {**CFG, "max_text_attachment_kb": 1}) == [{"type": "text", "text": "📎 b.md\nlorem"}]
    assert document_blocks(doc, {**CFG, "include_text_attachments": False}) == []


def test_prefill_render_marker_cli_and_continuation() -> None:
    msgs = [_pm("ines", "hello", "1", cache_breakpoint=True), _pm("Gull", "once upon", "2"), _pm("Gull", "", None)]
    req = render("prefill", msgs, CFG, stop_sequences=["\nGull:"])
    assert req.messages[0].content == "<cmd>cat untitled.txt</cmd>"
    assert req.messages[1].content == [{"type": "text", "text": "ines: hello", "cache_control": {"type": "ephemeral"}}]
    assert req.messages[-1].content == "Gull: once upon\nGull:"
    assert req.stop_sequences == ["</function_calls>", "\nGull:"]
    cont = render("prefill", msgs, CFG, stop_sequences=[], continue_last=True)
    assert cont.messages[-1].content == "Gull: once upon"
    cont2 = render("prefill", msgs, CFG, stop_sequences=[], continue_last=True, continuation=" a time")
    assert cont2.messages[-1].content == "Gull: once upon a time"
    loop = render("prefill", msgs[:1], CFG, stop_sequences=[], continuation=" I looked.\n</function_calls>")
    assert loop.messages[-1].content == "Gull: I looked.\n</function_calls>"


def test_prefill_no_caching_and_system_prompt() -> None:
    msgs = [_pm("ines", "a", "1", cache_breakpoint=True), _pm("otto", "b", "2")]
    req = render("prefill", msgs, {**CFG, "prompt_caching": False, "system_prompt": "SYS"}, stop_sequences=[])
    assert [m.content for m in req.messages] == ["[Start]", "ines: a\notto: b\nGull:"]
    assert req.system == [{"type": "text", "text": "SYS"}]


def test_chat_render_roles_prefixes_and_system() -> None:
    msgs = [_pm("ines", "hey", "1", cache_breakpoint=True), _pm("otto", "yo", "2"), _pm("Gull", "hi both", "3")]
    req = render("chat", msgs, {**CFG, "system_prompt": "S"}, stop_sequences=["\nGull:"])
    assert [m.role for m in req.messages] == ["user", "assistant"]
    assert req.messages[0].content[1] == {"type": "text", "text": "otto: yo"}
    assert req.messages[1].content == [{"type": "text", "text": "hi both"}]
    assert req.system == "S"
    unmarked = render("chat", [_pm("ines", "x", "1")], {**CFG, "system_prompt": "S"}, stop_sequences=[])
    assert unmarked.system == [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]


def test_completions_render_generic() -> None:
    msgs = [_pm("ines", "hey", "1"), _pm("Gull", "hi", "2")]
    req = render("base-model", msgs, {**CFG, "system_prompt": "LOG"}, stop_sequences=["\nines:"])
    assert req.prompt == "LOG\n\nines: hey<|eot|>\n\nGull: hi<|eot|>\n\nGull:"
    assert req.stop_sequences == ["<|eot|>", "\nines:"]


def test_mode_and_tool_mode_resolution() -> None:
    assert resolve_mode({"continuation_model": "claude-x"}) == "prefill"
    assert resolve_mode({"continuation_model": "gpt-4o"}) == "chat"
    assert resolve_mode({"continuation_model": "base:x"}, "completions") == "base-model"
    assert resolve_tool_mode({"continuation_model": "anthropic/claude"}) == "native"
    assert resolve_tool_mode({"continuation_model": "claude-x"}) == "xml"


def test_inline_call_parsing() -> None:
    text = 'ok <function_calls><invoke name="save_note"><parameter name="content">a < b</parameter>' \
           '<parameter name="n">3</parameter></invoke></function_calls>'
    block = find_call_block(text)
    assert block is not None and block.calls[0].input == {"content": "a < b", "n": 3}
    done = text + results_block(["fine"])
    assert find_call_block(done) is None
    assert results_block(["a", "b"]) == "\n\n<function_results>\na\n\n---\n\nb\n</function_results>"


def test_build_input_defaults_are_usable() -> None:
    inp = BuildInput(messages=[_cm(1, "hello", uid="950000000000000001")], config=CFG, bot_user_id=BOT_ID,
                     bot_username="gull-bot")
    from chapterx.context.build import build_context

    built = build_context(inp)
    assert built.messages[0].cache_breakpoint and built.stop_sequences[0] == "\nGull:"


def test_mention_format_template_uses_display_names() -> None:
    from chapterx.context.build import normalize_mentions

    cfg = {**CFG, "mention_format": "[[{name}]]"}
    text = "<reply:@ines> hi <@ines> and <@Gull> and <@nobody>"
    out = normalize_mentions(text, cfg, "gull-bot", {"ines": "Nessa"})
    assert out == "(replying to [[Nessa]]) hi [[Nessa]] and [[Gull]] and [[nobody]]"


def test_tool_catalogue_not_lost_behind_an_image_turn() -> None:
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
    msgs = [ParticipantMessage("ines", [{"type": "text", "text": "look"}, img], "1"), _pm("otto", "nice", "2")]
    tools = [{"name": "t", "description": "d", "input_schema": {"type": "object", "properties": {}}}]
    req = render("prefill", msgs, CFG, stop_sequences=[], tools=tools)
    last = req.messages[-1].content
    assert isinstance(last, str) and "<available_tools>" in last
    assert last.endswith("</function_calls>\notto: nice\nGull:")
