"""Post-processing: a completion becomes the ordered Discord actions of an activation (pure functions).

API (the pipeline calls this; no Discord or provider I/O happens here):

    plan = plan_discord_actions(Completion(text, thinking=[...], stop_reason=...), PostprocessContext(...))
    plan.actions   # [SendMessage(content, reply_to, files, role), AddReaction(emoji, send_index|message_id)]
    plan.segments  # visible segments with their invisible prefix/suffix (activation store)
    plan.text      # the completion after truncation (tool log's originalCompletionText)
    plan.warnings  # e.g. start hallucination, refusal
    actions_as_vector(plan.actions)  # the golden `discord_actions` shape (ids 1900000000000000001, ...)

Stages, in order (reference §3.7, with the fixes listed in docs/differences.md#postprocess):

1. `prepare_text`: with `prefill_thinking` in prefill mode, put back the `<thinking>` opener that was in
   the prefill, so the thought is invisible on every path.
2. `starts_with_participant`: a completion opening with another participant's `Name:` is discarded
   (warning `start hallucination`).
3. `truncate_at_participants`: cut at the first `\\nName:` of any context author or any request stop.
4. `parse_segments`: `<thinking>`, `<function_calls>`, `System: <results>` and `<function_results>`
   regions are invisible; each visible run (trimmed) is a segment.
5. `debug_thinking`: each thought (native thinking blocks, then `<thinking>` blocks outside code) is
   posted first as `.💭 <thought>`, or as `thinking.md` when over 1900 characters.
6. Per segment: `<@username>` → `<@id>` for human context authors; a leading `<reply:@x>` is dropped from
   the first segment; then as `sendMessage` does: remaining `<@name>` via the member search, `:emoji:` via
   the guild emojis, split at 1800 characters. The first chunk replies to the trigger (no ping).
7. Refusal: every sent reply message gets the category emoji (🛑 by default), or the trigger if nothing
   was sent.

For bots with `chapter2_prompt`, `plan_reply_texts(replies, ctx)` sends each parsed chapter2 reply as
its own message(s) through the same stages 6-7 (see `chapterx_compat.chapter2.formats.generation`).

The tool loops (inline XML and native) live in the pipeline; they call `plan_discord_actions` for the
text before a tool call (with `reply_to` set) and again for the rest (with `reply_to=None` once a reply
was sent), and pass `max_depth_reached` on the last call.
"""

from chapterx.postprocess.members import (
    MemberRecord,
    emoji_lookup_from_port,
    member_search_from,
    members_from_port,
    members_from_world,
    pick_member,
)
from chapterx.postprocess.plan import (
    AddReaction,
    Completion,
    DiscordAction,
    FileAttachment,
    Plan,
    PostprocessContext,
    SendMessage,
    actions_as_vector,
    debug_thinking_messages,
    plan_discord_actions,
    plan_reply_texts,
    refusal_reactions,
    segment_messages,
)
from chapterx.postprocess.text import (
    Segment,
    emoji_lookup_from,
    extract_thinking_blocks,
    mention_names,
    parse_segments,
    replace_known_mentions,
    resolve_emojis,
    resolve_mentions,
    split_message,
    starts_with_participant,
    strip_reply_tag,
    truncate_at_participants,
)

__all__ = [
    "AddReaction",
    "Completion",
    "DiscordAction",
    "FileAttachment",
    "MemberRecord",
    "Plan",
    "PostprocessContext",
    "Segment",
    "SendMessage",
    "actions_as_vector",
    "debug_thinking_messages",
    "emoji_lookup_from",
    "emoji_lookup_from_port",
    "extract_thinking_blocks",
    "member_search_from",
    "members_from_port",
    "members_from_world",
    "mention_names",
    "parse_segments",
    "pick_member",
    "plan_discord_actions",
    "plan_reply_texts",
    "refusal_reactions",
    "replace_known_mentions",
    "resolve_emojis",
    "resolve_mentions",
    "segment_messages",
    "split_message",
    "starts_with_participant",
    "strip_reply_tag",
    "truncate_at_participants",
]
