"""Unit tests of the post-processing stages, from the rules in the reference (§3.7, §3.8)."""

from __future__ import annotations

from chapterx.postprocess import (
    Completion,
    MemberRecord,
    PostprocessContext,
    actions_as_vector,
    emoji_lookup_from,
    extract_thinking_blocks,
    member_search_from,
    mention_names,
    parse_segments,
    plan_discord_actions,
    resolve_emojis,
    split_message,
    strip_reply_tag,
    truncate_at_participants,
)


def test_split_packs_lines_and_keeps_short_messages_whole() -> None:
    assert split_message("a\nb") == ["a\nb"]
    lines = ["x" * 900, "y" * 899, "z" * 10]
    assert split_message("\n".join(lines)) == ["x" * 900 + "\n" + "y" * 899, "z" * 10]


def test_split_counts_utf16_units_and_never_cuts_a_surrogate_pair() -> None:
    text = "😀" * 1000  # 2000 UTF-16 units on one line
    chunks = split_message(text)
    assert chunks == ["😀" * 900, "😀" * 100]


def test_truncate_at_earliest_participant_or_stop() -> None:
    text = "hi\nbob: no\ncarol: x"
    assert truncate_at_participants(text, ["carol", "bob"], []) == "hi"
    assert truncate_at_participants("a<|eot|>b\nbob: c", ["bob"], ["<|eot|>"]) == "a"
    # the tool-call stop is not a cut point for post-processing
    assert truncate_at_participants("a<function_calls></function_calls>b", [], ["</function_calls>"]).endswith("b")


def test_segments_carry_invisible_prefix_and_suffix() -> None:
    segs = parse_segments("<thinking>t</thinking> one <function_calls>x</function_calls>two<thinking>u</thinking>")
    assert [s.text for s in segs] == ["one", "two"]
    assert segs[0].prefix == "<thinking>t</thinking>"
    assert segs[1].prefix == "<function_calls>x</function_calls>"
    assert segs[1].suffix == "<thinking>u</thinking>"


def test_unclosed_thinking_stays_invisible() -> None:
    assert [s.text for s in parse_segments("answer <thinking>half a thou")] == ["answer"]
    assert parse_segments("<thinking>only thought") == []


def test_system_results_region_is_invisible() -> None:
    segs = parse_segments("before System:  <results>r</results> after")
    assert [s.text for s in segs] == ["before", "after"]


def test_thinking_in_code_is_not_debug_posted() -> None:
    text = "`<thinking>inline</thinking>` ```\n<thinking>fenced</thinking>\n``` <thinking>real</thinking>"
    assert extract_thinking_blocks(text) == ["real"]


def test_reply_tag_only_leading() -> None:
    assert strip_reply_tag("<reply:@bob> hi <reply:@x>") == "hi <reply:@x>"
    assert strip_reply_tag("hi <reply:@bob>") == "hi <reply:@bob>"


def test_emoji_resolution_skips_existing_markup() -> None:
    lookup = emoji_lookup_from([{"id": "1", "name": "wave", "animated": False}, {"id": "2", "name": "party", "animated": True}])
    assert resolve_emojis("hi :wave: :party: <:wave:1> :nope:", lookup) == "hi <:wave:1> <a:party:2> <:wave:1> :nope:"


def test_member_search_prefers_humans_then_latest_join() -> None:
    members = [
        MemberRecord("1", "sam", bot=True, joined_at="2024-05-01"),
        MemberRecord("2", "sam2", nickname="Sam", joined_at="2024-01-01"),
        MemberRecord("3", "samuel", global_name="sam", joined_at="2024-03-01"),
    ]
    search = member_search_from(members)
    assert search("SAM") == "3"
    assert search("samu") is None  # a prefix is not an exact match
    assert mention_names("<@sam> <@123> <@!5> <@&7>") == ["sam"]


def test_refusal_without_text_reacts_to_trigger() -> None:
    plan = plan_discord_actions(
        Completion("", stop_reason="refusal", refusal_category="cyber"),
        PostprocessContext(bot_name="Aria", reply_to="42"),
    )
    assert actions_as_vector(plan.actions) == [{"type": "reaction", "message_id": "42", "emoji": "💻"}]


def test_refusal_reacts_to_every_sent_chunk() -> None:
    plan = plan_discord_actions(
        Completion("a" * 2000, stop_reason="refusal"), PostprocessContext(bot_name="Aria", reply_to="42")
    )
    got = actions_as_vector(plan.actions)
    assert [a["type"] for a in got] == ["send", "send", "reaction", "reaction"]
    assert [a["message_id"] for a in got[2:]] == ["1900000000000000001", "1900000000000000002"]


def test_max_depth_note_and_no_reply_after_pre_tool_text() -> None:
    plan = plan_discord_actions(
        Completion(" done"), PostprocessContext(bot_name="Aria", reply_to=None, max_depth_reached=True)
    )
    assert actions_as_vector(plan.actions) == [
        {"type": "send", "content": "done\n[Max tool depth reached]", "reply_to": None}
    ]


def test_hallucinated_start_after_leading_space() -> None:
    plan = plan_discord_actions(Completion(" bob: hi"), PostprocessContext(bot_name="Aria", participants=["bob"]))
    assert plan.actions == [] and plan.hallucinated_start == "bob"


def test_chapter2_reply_texts_each_their_own_message() -> None:
    from chapterx.postprocess import plan_reply_texts

    ctx = PostprocessContext(bot_name="wren", reply_to="9", human_usernames={"tobin": "5"})
    got = actions_as_vector(plan_reply_texts(["hi <@tobin>", "  ", "second"], ctx))
    assert got == [
        {"type": "send", "content": "hi <@5>", "reply_to": "9"},
        {"type": "send", "content": "second", "reply_to": None},
    ]


def test_port_helpers_read_the_in_memory_port() -> None:
    from chapterx.discord.port import Emoji, Member, User
    from chapterx.postprocess import emoji_lookup_from_port, member_search_from, members_from_port

    class Port:
        def members(self) -> list[Member]:
            return [Member("1", nickname="Capt", joined_at="2024-01-01"), Member("2")]

        def user(self, uid: str) -> User | None:
            return {"1": User("1", "odile"), "2": User("2", "odbot", bot=True)}.get(uid)

        def emojis(self) -> list[Emoji]:
            return [Emoji("7", "tide", animated=True)]

    port = Port()
    search = member_search_from(members_from_port(port))
    assert search("capt") == "1" and search("odbot") == "2" and search("od") is None
    assert emoji_lookup_from_port(port)("tide") == "<a:tide:7>"
