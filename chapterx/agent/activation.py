"""One activation: Discord window -> provider request(s) -> Discord actions (reference §1.5, §5).

`run_activation` is the single code path used by the bot, `chapterx replay` and the vector tests.
It talks to Discord only through `DiscordPort` and to vendors only through a provider factory
(model -> route with `.provider.complete(request)`), so it runs identically against the in-memory
world and fake LLM servers. Stages: config (pins) -> fetch -> cache-anchor bookkeeping -> loop
filters -> context build -> route -> tool loop (inline XML or native) -> post-processing ->
Discord actions -> channel state.
"""

from __future__ import annotations

import base64
import dataclasses
import inspect
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from chapterx.agent import thinking_store
from chapterx.agent.inline_tools import find_call_block, result_text, results_block
from chapterx.agent.plugins import PluginHost
from chapterx.agent.state import ChannelState
from chapterx.agent.toollog import append_entries, load_entries
from chapterx.config.pins import BotIdentity, extract_config_pins
from chapterx.context import options as opt
from chapterx.context.build import (
    BuildInput,
    ToolCacheEntry,
    build_context,
    load_tool_cache,
    participant_name,
)
from chapterx.context.fetch import fetch_context
from chapterx.context.types import BuiltContext, FetchedContext
from chapterx.discord.port import DiscordPort, OutgoingFile, Pin
from chapterx.llm.formatters import render, resolve_mode, resolve_tool_mode
from chapterx.llm.formatters.chat import render_chat
from chapterx.llm.formatters.common import base_request
from chapterx.llm.types import ChatMessage, ProviderRequest, ProviderResponse
from chapterx.postprocess import (
    AddReaction,
    Completion,
    MemberRecord,
    Plan,
    PostprocessContext,
    SendMessage,
    emoji_lookup_from_port,
    pick_member,
    plan_discord_actions,
)
from chapterx.postprocess.text import mention_names
from chapterx.trace.collector import TraceCollector, current

log = logging.getLogger(__name__)

_M_COMMAND = re.compile(r"^m\s+", re.I)
_REPLY_TAG = re.compile(r"^<reply:@[^>]*>\s*")
FUNCTION_CALLS_CLOSE = "</function_calls>"
MAX_MEMBER_LOOKUPS = 10  # guild member searches per post-processing pass

ConfigSource = Mapping[str, Any] | Callable[[list[str]], Mapping[str, Any]]
ProviderFactory = Callable[[str], Any] | Callable[[str], Awaitable[Any]]


class RouteLike(Protocol):
    """What an activation needs from a route (`chapterx.llm.routing.Route`, or a test double)."""

    @property
    def provider(self) -> Any: ...


@dataclass
class ActivationContext:
    """Everything one activation needs besides Discord's current state: where, for whom, with what.

    `config` is a resolved config, or a loader given the channel's pinned `.config` texts (the bot
    passes a loader so pins are read at activation time). `provider_factory` maps a model name to a
    route with `.provider.complete(request)`. Callers that extend the run (tool plugins, replays)
    pass their own `plugins` host and directories here; nothing else has to change.
    """

    port: DiscordPort
    config: ConfigSource
    provider_factory: ProviderFactory
    channel_id: str
    trigger_message_id: str | None = None
    state: ChannelState = field(default_factory=ChannelState)
    tool_cache: Sequence[Mapping[str, Any]] = ()
    plugins: PluginHost | None = None
    # Builds the plugin host from the resolved config when `plugins` is None (tool plugins hook here).
    plugin_factory: Callable[[Mapping[str, Any]], PluginHost] | None = None
    clock: Callable[[], float] | None = None
    base_dir: Path | None = None
    tool_log_dir: Path | None = None
    bot_id: str | None = None
    thinking_dir: Path | None = None


@dataclass
class ActivationResult:
    state: ChannelState
    channel_id: str = ""
    sent_message_ids: list[str] = field(default_factory=list)
    provider_requests: list[ProviderRequest] = field(default_factory=list)
    tool_log: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: BaseException | None = None
    completion_text: str = ""
    context: BuiltContext | None = None
    clock: Callable[[], float] | None = None
    fetched_message_ids: list[str] = field(default_factory=list)
    thinking_blocks: list[dict[str, Any]] = field(default_factory=list)
    reply_message_ids: list[str] = field(default_factory=list)
    inheritance: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Turn:
    """One activation's resolved inputs, shared by the three run modes (inline, native, chapter2)."""

    ctx: ActivationContext
    config: Mapping[str, Any]
    built: BuiltContext
    route: RouteLike
    plugins: PluginHost
    fetched: FetchedContext
    result: ActivationResult
    continue_last: bool

    @property
    def port(self) -> DiscordPort:
        return self.ctx.port

    @property
    def channel_id(self) -> str:
        return self.ctx.channel_id

    @property
    def trigger_id(self) -> str | None:
        return self.ctx.trigger_message_id


def _trace() -> TraceCollector | None:
    return current()


def bot_identity(port: DiscordPort) -> BotIdentity:
    """Who the bot is on this server: `.config` and sleep pins address it by id, name or role."""
    user = port.user(port.bot_user_id)
    member = port.member(port.bot_user_id)
    return BotIdentity(port.bot_user_id, user.username if user else None, user.global_name if user else None,
                       tuple(str(r) for r in member.role_ids) if member else ())


def pin_config_texts(pins: Iterable[Pin], identity: BotIdentity) -> list[str]:
    """The `.config` YAML texts among `pins` that apply to this bot, in apply order."""
    return extract_config_pins(
        [{"id": p.id, "content": p.content, "mentioned_role_ids": list(p.mentioned_role_ids)} for p in pins], identity)


async def channel_config_texts(port: DiscordPort, channel_id: str) -> list[str]:
    """Pinned `.config` YAML texts for the channel and its ancestors (oldest ancestor first)."""
    chain: list[str] = []
    cid: str | None = channel_id
    while cid is not None and cid not in chain:
        chain.insert(0, cid)
        ch = port.channel(cid)
        cid = ch.parent_id if ch is not None else None
    texts: list[str] = []
    identity = bot_identity(port)
    for cid in chain:
        texts.extend(pin_config_texts(await port.fetch_pins(cid), identity))
    return texts


def _trace_message(m: Any) -> dict[str, Any]:
    """A fetched message in the trace's upstream shape."""
    out: dict[str, Any] = {
        "id": m.id,
        "author": {"id": m.author.id, "username": m.author.username, "displayName": m.author.display_name,
                   "bot": m.author.bot},
        "content": m.content,
        "timestamp": m.timestamp,
        "attachments": [{"url": a.url, "contentType": a.content_type, "filename": a.filename, "size": a.size}
                        for a in m.attachments],
    }
    if m.referenced_message:
        out["replyTo"] = m.referenced_message
    return out


def _phase(tr: TraceCollector | None, name: str) -> None:
    if tr is not None:
        tr.set_phase(name)


def _drop_m_commands(fetched: FetchedContext) -> None:
    fetched.messages = [m for m in fetched.messages if not _M_COMMAND.match(_REPLY_TAG.sub("", m.content, 1))]


def _update_anchor(state: ChannelState, fetched: FetchedContext, caching: bool) -> None:
    """§1.5 step 6: keep the window anchor stable unless history changed under it."""
    if not caching or not fetched.messages:
        return
    oldest = fetched.messages[0].id
    ids = [m.id for m in fetched.messages]
    anchor = state.cache_oldest_message_id
    if fetched.did_clear or anchor is None or anchor not in ids or ids.index(anchor) > 0:
        state.cache_oldest_message_id = oldest


async def _postprocess_context(turn: _Turn, mode: str, stops: Sequence[str], reply_to: str | None,
                               text: str = "") -> PostprocessContext:
    """The post-processing inputs; `<@name>` in `text` not matching a context author is looked up
    through the guild member search first (Discord's member cache is empty with the bot's intents)."""
    port, config = turn.port, turn.config
    bot = port.bot_user_id
    participants: list[str] = []
    humans: dict[str, str] = {}
    for m in turn.fetched.messages:
        if m.author.id == bot:
            continue
        name = participant_name(m, config, bot)
        if name not in participants:
            participants.append(name)
        if not m.author.bot:
            humans.setdefault(m.author.username, m.author.id)
    known = {n.lower() for n in humans}
    resolved: dict[str, str | None] = {}
    for name in mention_names(text):
        if name.lower() in known or name in resolved:
            continue
        if len(resolved) >= MAX_MEMBER_LOOKUPS:  # a reply naming dozens of people: the rest stay as typed
            break
        found = await port.search_members(name)
        records = [MemberRecord(u.id, u.username, u.global_name, m.nickname, u.bot, m.joined_at) for u, m in found]
        resolved[name] = pick_member(name, records)
    return PostprocessContext(
        bot_name=opt.bot_name(config),
        participants=participants,
        stop_sequences=list(stops),
        mode=mode,  # type: ignore[arg-type]
        prefill_thinking=config.get("prefill_thinking") is True,
        debug_thinking=config.get("debug_thinking") is True,
        human_usernames=humans,
        member_search=resolved.get,
        emoji_lookup=emoji_lookup_from_port(port),
        reply_to=reply_to,
    )


class _Sender:
    """Performs planned Discord actions and remembers what was sent (reply target bookkeeping)."""

    def __init__(self, port: DiscordPort, channel_id: str, reply_to: str | None) -> None:
        self.port = port
        self.channel_id = channel_id
        self.reply_to = reply_to
        self.sent: list[str] = []
        self.reply_ids: list[str] = []

    async def perform(self, plan: Plan) -> list[str]:
        ids: list[str] = []
        for action in plan.actions:
            if isinstance(action, SendMessage):
                files = [OutgoingFile(f.name, f.content.encode("utf-8")) for f in action.files] or None
                mid = await self.port.send(self.channel_id, action.content, reply_to=action.reply_to, files=files)
                ids.append(mid)
                if action.role == "reply":
                    self.reply_ids.append(mid)
                if action.reply_to is not None and action.role == "reply":
                    self.reply_to = None
            elif isinstance(action, AddReaction):
                target = ids[action.send_index] if action.send_index is not None else action.message_id
                if target:
                    await self.port.react(self.channel_id, target, action.emoji)
        self.sent.extend(ids)
        return ids


def _completion(resp: ProviderResponse, text: str, streaming: bool) -> Completion:
    thinking = [b.get("thinking", "") for b in resp.content if b.get("type") == "thinking"]
    raw = resp.raw or {}
    details = raw.get("stop_details") if isinstance(raw, Mapping) else None
    category = details.get("category") if isinstance(details, Mapping) else None
    return Completion(text, thinking, resp.stop_reason, resp.stop_sequence, category, streaming)


async def _call(provider: Any, request: ProviderRequest, result: ActivationResult) -> ProviderResponse:
    result.provider_requests.append(request)
    response: ProviderResponse = await provider.complete(request)
    return response


async def _tool_webhook(
    port: DiscordPort, channel_id: str, config: Mapping[str, Any], name: str, tool_input: Any, output: str
) -> None:
    """`tool_output_visible`: one webhook post per call, both lines dot-prefixed (§5.4)."""
    bot = opt.bot_name(config)
    flat = re.sub(r"\s+", " ", output.replace("\n", " ")).strip()
    if len(flat) > 200:
        flat = f"{flat[:200]}... ({len(output)} chars)"
    call_json = json.dumps(tool_input, ensure_ascii=False, separators=(",", ":"))
    content = f".{bot}>[{name}]: {call_json}\n.{bot}<[{name}]: {flat}"
    try:
        await port.webhook_send(channel_id, content, username=bot)
    except Exception:  # noqa: BLE001 - webhook failures fall back to a normal message
        await port.send(channel_id, content)


def _context_images(fetched: FetchedContext) -> list[dict[str, Any]]:
    """The fetched Discord images, newest message first (what `share-image` can post)."""
    out = []
    for m in reversed(fetched.messages):
        for att in m.attachments:
            img = fetched.images.get(att.url)
            if img is not None:
                out.append({"filename": att.filename, "mime": img.original_media_type or img.media_type,
                            "data": img.original if img.original is not None else img.data, "url": att.url})
    return out


def _visible_output(outcome: Any, result_text: str) -> str:
    """The `tool_output_visible` line shows the output; a failed call shows its error (upstream: `null`)."""
    if outcome.error and not outcome.output:
        return result_text
    out = outcome.output
    return out if isinstance(out, str) else json.dumps(out, ensure_ascii=False)


def _log_result(outcome: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"output": outcome.output}
    if outcome.error:
        entry["error"] = outcome.error
    if outcome.images:
        entry["images"] = [dict(i) for i in outcome.images]
    return entry


def _images_turn(tool: str, images: Sequence[Mapping[str, str]]) -> Any:
    from chapterx.context.types import ParticipantMessage

    blocks: list[Any] = [{"type": "text", "text": f"[Tool result images from {tool}]"}]
    blocks += [{"type": "image", "source": {"type": "base64", "media_type": i.get("mimeType", "image/png"),
                                            "data": i.get("data", "")}} for i in images]
    return ParticipantMessage(f"System<[{tool}]", blocks)


async def _tool_images(port: DiscordPort, channel_id: str, config: Mapping[str, Any], tool: str,
                       images: Sequence[Mapping[str, str]], clock: Callable[[], float] | None) -> None:
    """§5.4: MCP images of a visible tool call are posted as attachments, `.<Name><[tool] image i/n`."""
    bot = opt.bot_name(config)
    for i, img in enumerate(images, 1):
        ext = str(img.get("mimeType", "image/png")).split("/")[-1]
        name = f"generated_{int((clock or time.time)() * 1000)}.{ext}"
        try:
            data = base64.b64decode(img.get("data", ""))
            await port.send(channel_id, f".{bot}<[{tool}] image {i}/{len(images)}", files=[OutgoingFile(name, data)])
        except Exception as exc:  # noqa: BLE001 - a failed attachment never stops the activation
            log.warning("tool image %s/%s of %s not posted: %s", i, len(images), tool, exc)


def _utc(clock: Callable[[], float] | None) -> datetime | None:
    """The activation's clock as an aware datetime (None: the tool log uses the wall clock)."""
    return datetime.fromtimestamp(clock(), tz=UTC) if clock is not None else None


async def _run_inline(turn: _Turn) -> None:
    """Prefill mode: stop at `</function_calls>`, run the calls, continue the same prefill."""
    config, built, result, plugins = turn.config, turn.built, turn.result, turn.plugins
    tools = plugins.tools()
    stops = [*built.stop_sequences, FUNCTION_CALLS_CLOSE]
    streaming = config.get("streaming") is not False
    sender = _Sender(turn.port, turn.channel_id, turn.trigger_id)
    accumulated = ""
    sent_upto = 0
    depth = 0
    max_depth = int(opt.get_or(config, "max_tool_depth", 100))
    max_depth_hit = False
    tool_images: list[Any] = []  # §5.2: MCP images are shown to the model before the continuation
    while True:
        request = render(
            "prefill", [*built.messages, *tool_images], config, stop_sequences=stops, tools=tools,
            model=str(config.get("continuation_model")), continuation=accumulated or None,
            continue_last=turn.continue_last,
        )
        resp = await _call(turn.route.provider, request, result)
        accumulated += resp.text
        if not ((tools or plugins.handles_calls()) and resp.stop_reason == "stop_sequence"
                and resp.stop_sequence == FUNCTION_CALLS_CLOSE):
            break
        accumulated += FUNCTION_CALLS_CLOSE
        block = find_call_block(accumulated)
        if block is None or not block.calls:
            break
        segment = accumulated[sent_upto:block.start]
        ppc = await _postprocess_context(turn, "prefill", request.stop_sequences, sender.reply_to, segment)
        pre = plan_discord_actions(_completion(resp, segment, streaming), ppc)
        if depth == 0 and pre.hallucinated_start is not None:
            result.warnings.extend(pre.warnings)
            return
        await sender.perform(pre)
        outputs = []
        for call in block.calls:
            started = time.monotonic()
            outcome = await plugins.execute(call.name, call.input)
            took_ms = int((time.monotonic() - started) * 1000)
            text = result_text(call.name, outcome.output, outcome.error, outcome.images)
            outputs.append(text)
            if config.get("tool_output_visible") is True:
                await _tool_webhook(turn.port, turn.channel_id, config, call.name, call.input,
                                    _visible_output(outcome, text))
                await _tool_images(turn.port, turn.channel_id, config, call.name, outcome.images, result.clock)
            limit = int(opt.get_or(config, "max_mcp_images", 3))
            if outcome.images and limit > 0:
                tool_images.append(_images_turn(call.name, outcome.images[:limit]))
            result.tool_log.append({
                "call": {"id": call.id, "name": call.name, "input": call.input, "messageId": turn.trigger_id or ""},
                "result": _log_result(outcome),
            })
            tr = _trace()
            if tr is not None:
                tr.record_tool(call.id, call.name, call.input, outcome.output, duration_ms=took_ms, error=outcome.error,
                               sent_to_discord=config.get("tool_output_visible") is True)
        accumulated += results_block(outputs)
        sent_upto = len(accumulated)
        depth += 1
        if depth >= max_depth:  # §5.2: round N ran; the model is not asked again
            max_depth_hit = True
            break
    ppc = await _postprocess_context(turn, "prefill", request.stop_sequences, sender.reply_to,
                                     accumulated[sent_upto:])
    ppc = dataclasses.replace(ppc, max_depth_reached=max_depth_hit)
    plan = plan_discord_actions(_completion(resp, accumulated[sent_upto:], streaming), ppc)
    result.warnings.extend(plan.warnings)
    await sender.perform(plan)
    for entry in result.tool_log:
        entry["call"]["originalCompletionText"] = accumulated
    result.completion_text = accumulated
    result.sent_message_ids = sender.sent


async def _run_native(turn: _Turn, mode: str) -> None:
    """Chat / base-model: native tool calls (chat), one request per tool round."""
    config, built, result, plugins = turn.config, turn.built, turn.result, turn.plugins
    tools = plugins.tools() if mode == "chat" else []
    streaming = config.get("streaming") is not False
    sender = _Sender(turn.port, turn.channel_id, turn.trigger_id)
    extra: list[ChatMessage] = []
    depth = 0
    max_depth = int(opt.get_or(config, "max_tool_depth", 100))
    vendor = _vendor_for(turn.route)
    pp_mode = "base-model" if mode == "base-model" else "chat"
    while True:
        if mode == "chat":
            request = render_chat(
                built.messages, config, model=str(config.get("continuation_model")),
                stop_sequences=built.stop_sequences, tools=tools, extra_turns=extra,
            )
        else:
            request = render(
                "base-model", built.messages, config, stop_sequences=built.stop_sequences,
                model=str(config.get("continuation_model")), vendor=vendor, continue_last=turn.continue_last,
            )
        resp = await _call(turn.route.provider, request, result)
        uses = [b for b in resp.content if b.get("type") == "tool_use"]
        if uses and depth >= max_depth:
            result.warnings.append(f"max_tool_depth {max_depth} reached: {len(uses)} tool call(s) not run "
                                   f"({', '.join(str(u.get('name')) for u in uses)})")
        if not uses or depth >= max_depth:
            break
        ppc = await _postprocess_context(turn, pp_mode, built.stop_sequences, sender.reply_to, resp.text)
        pre = plan_discord_actions(_completion(resp, resp.text, streaming), ppc)
        await sender.perform(_without_debug(pre))
        assistant_blocks = [
            _ordered_block(b) for b in resp.content
            if b.get("type") in ("thinking", "redacted_thinking", "tool_use") or (b.get("type") == "text" and b.get("text"))
        ]
        results: list[dict[str, Any]] = []
        for use in uses:
            started = time.monotonic()
            outcome = await plugins.execute(str(use.get("name")), use.get("input") or {})
            took_ms = int((time.monotonic() - started) * 1000)
            text = result_text(str(use.get("name")), outcome.output, outcome.error, outcome.images)
            results.append({"type": "tool_result", "tool_use_id": use.get("id"), "content": text,
                            "is_error": outcome.error is not None})
            if config.get("tool_output_visible") is True:
                await _tool_webhook(turn.port, turn.channel_id, config, str(use.get("name")), use.get("input") or {},
                                    _visible_output(outcome, text))
            result.tool_log.append({
                "call": {"id": use.get("id"), "name": use.get("name"), "input": use.get("input") or {},
                         "messageId": turn.trigger_id or "", "originalCompletionText": resp.text},
                "result": _log_result(outcome),
            })
            tr = _trace()
            if tr is not None:
                tr.record_tool(str(use.get("id")), str(use.get("name")), use.get("input") or {}, outcome.output,
                               duration_ms=took_ms, error=outcome.error,
                               sent_to_discord=config.get("tool_output_visible") is True)
        extra.append(ChatMessage("assistant", assistant_blocks))
        extra.append(ChatMessage("user", results))
        depth += 1
    ppc = await _postprocess_context(turn, pp_mode, built.stop_sequences, sender.reply_to, resp.text)
    plan = plan_discord_actions(_completion(resp, resp.text, streaming), ppc)
    result.warnings.extend(plan.warnings)
    await sender.perform(plan)
    result.completion_text = resp.text
    result.sent_message_ids = sender.sent
    result.thinking_blocks = [dict(b) for b in resp.content if b.get("type") in ("thinking", "redacted_thinking")]
    result.reply_message_ids = list(sender.reply_ids)
    await _send_generated_images(turn, resp, sender)


async def _run_chapter2(turn: _Turn) -> None:
    """A migrated chapter2 em (`chapter2_prompt`): chapter2's prompt, stops and reply parsing."""
    # chapterx_compat.chapter2 imports chapterx (config, formats): imported here so chapterx never needs it at import.
    from chapterx_compat.chapter2.formats.generation import generate_replies, prepare_request
    from chapterx_compat.chapter2.formats.prompt import chapter2_prompt_from_bot_config, messages_from_turns

    config, result = turn.config, turn.result
    name = opt.bot_name(config)
    now = datetime.fromtimestamp((result.clock or time.time)(), tz=UTC)
    prep = prepare_request(chapter2_prompt_from_bot_config(dict(config)), messages_from_turns(turn.built.messages),
                           em_name=name, now=now, base_dir=turn.ctx.base_dir or Path.cwd())
    result.warnings.extend(prep.warnings)

    async def complete() -> tuple[str, str | None]:
        request = base_request(config, str(config.get("continuation_model")))
        request.formatter = "completions"
        request.prompt = prep.prompt
        request.stop_sequences = list(prep.stop_sequences)
        request.max_tokens = int(prep.max_tokens)
        resp = await _call(turn.route.provider, request, result)
        return resp.text, "length" if resp.stop_reason == "max_tokens" else resp.stop_reason

    replies = await generate_replies(prep.settings, name, complete)
    sender = _Sender(turn.port, turn.channel_id, turn.trigger_id)
    for reply in replies:
        ppc = await _postprocess_context(turn, "base-model", (), sender.reply_to, reply.content)
        ppc = dataclasses.replace(ppc, participants=(), prefill_thinking=False)
        plan = plan_discord_actions(Completion(reply.content), ppc)
        await sender.perform(plan)
    result.completion_text = "\n".join(r.content for r in replies)
    result.sent_message_ids = sender.sent


_BLOCK_KEY_ORDER = {
    "text": ("type", "text"),
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
    "tool_use": ("type", "id", "name", "input"),
}


def _ordered_block(block: Mapping[str, Any]) -> dict[str, Any]:
    """A returned content block sent back in the vendor's own key order (bodies stay byte-identical)."""
    order = _BLOCK_KEY_ORDER.get(str(block.get("type")), ())
    out = {k: block[k] for k in order if k in block}
    out.update({k: v for k, v in block.items() if k not in out})
    return out


def _without_debug(plan: Plan) -> Plan:
    """Pre-tool text is sent without debug-thinking posts (those follow the final answer)."""
    plan.actions = [a for a in plan.actions if not (isinstance(a, SendMessage) and a.role == "debug_thinking")]
    return plan


async def _send_generated_images(turn: _Turn, resp: ProviderResponse, sender: _Sender) -> None:
    result = turn.result
    now = result.clock or time.time
    images = [b for b in resp.content if b.get("type") == "image"]
    for i, img in enumerate(images):
        src = img.get("source") or {}
        data = base64.b64decode(src.get("data", ""))
        ext = str(src.get("media_type", "image/png")).split("/")[-1]
        name = f"generated_{int(now() * 1000)}.{ext}"
        mid = await turn.port.send(turn.channel_id, "", reply_to=turn.trigger_id if i == 0 else None,
                                   files=[OutgoingFile(name, data)])
        sender.sent.append(mid)
    result.sent_message_ids = sender.sent


@dataclass
class _RouteVendor:
    """The vendor view the base-model formatter needs, for routes that carry no vendor record."""

    kind: str | None
    config: dict[str, Any]
    completions_config: Any = None


def _vendor_for(route: Any) -> object:
    """What the base-model formatter reads (`kind`, `config`, `completions_config`) for this route."""
    vendor: object | None = getattr(route, "vendor", None)
    if vendor is not None:
        return vendor
    eot = getattr(route, "eot_token", None)
    return _RouteVendor(getattr(route, "kind", None), {"eot_token": eot} if eot is not None else {})


async def _resolve_config(ctx: ActivationContext) -> Mapping[str, Any]:
    if callable(ctx.config):
        return ctx.config(await channel_config_texts(ctx.port, ctx.channel_id))
    return ctx.config


async def _resolve_route(ctx: ActivationContext, model: str) -> RouteLike:
    route = ctx.provider_factory(model)
    if inspect.isawaitable(route):
        route = await route
    resolved: RouteLike = route
    return resolved


async def run_activation(ctx: ActivationContext) -> ActivationResult:
    """Run one activation in `ctx.channel_id`; errors are captured in the result (nothing half-posted)."""
    port, channel_id, state = ctx.port, ctx.channel_id, ctx.state
    result = ActivationResult(state=state, channel_id=channel_id)
    result.clock = ctx.clock
    tr = _trace()
    try:
        await port.typing(channel_id)
        cfg = await _resolve_config(ctx)
        if tr is not None:
            tr.set_config(cfg)
        caching = opt.prompt_caching(cfg)
        _phase(tr, "fetch")
        depth = int(opt.get_or(cfg, "recency_window_messages", 200)) + int(opt.get_or(cfg, "rolling_threshold", 50)) + 50
        max_fetch_images = max(opt.max_images(cfg) * 2, 10)
        fetched = await fetch_context(
            port, channel_id, depth=depth,
            first_message_id=state.cache_oldest_message_id if caching else None,
            max_images=max_fetch_images,
        )
        result.fetched_message_ids = [m.id for m in fetched.messages]
        result.inheritance = dict(fetched.inheritance)
        if tr is not None:
            tr.record_discord_messages([_trace_message(m) for m in fetched.messages])
        _update_anchor(state, fetched, caching)
        _drop_m_commands(fetched)
        existing = {m.id for m in fetched.messages}
        owner = ctx.bot_id or opt.bot_name(cfg)
        tool_cache = ctx.tool_cache
        if ctx.tool_log_dir is not None and not tool_cache:
            tool_cache = load_entries(ctx.tool_log_dir, owner, channel_id)
        entries = [ToolCacheEntry(dict(e.get("call") or {}), dict(e.get("result") or {}), str(e.get("timestamp") or ""))
                   for e in tool_cache]
        entries = load_tool_cache(entries, existing)
        covered = {i for e in entries for i in (e.call.get("botMessageIds") or [])}
        context_messages = [m for m in fetched.messages if m.id not in covered]
        plugins = ctx.plugins or (ctx.plugin_factory(cfg) if ctx.plugin_factory is not None else PluginHost(cfg))
        plugins = await plugins.open(  # tools area: bind state, timers, MCP and Discord to this activation
            channel_id=channel_id, guild_id=port.guild_id, trigger_id=ctx.trigger_message_id, bot_id=owner,
            context_message_ids=[m.id for m in context_messages if not m.content.startswith(".")],
            now=ctx.clock, port=port, base_dir=ctx.base_dir, images=_context_images(fetched),
            messages=context_messages)
        _phase(tr, "context")
        keep_thinking = ctx.thinking_dir is not None and opt.flag(cfg, "preserve_thinking_blocks", True)
        stored_thinking: dict[str, list[dict[str, Any]]] = {}
        if keep_thinking and ctx.thinking_dir is not None:
            stored_thinking = thinking_store.load(ctx.thinking_dir, owner, channel_id)
        bot_user = port.user(port.bot_user_id)
        built = build_context(BuildInput(
            messages=context_messages, config=cfg, bot_user_id=port.bot_user_id,
            bot_username=bot_user.username if bot_user else opt.bot_name(cfg),
            images=fetched.images, documents=fetched.documents, tool_cache=entries,
            injections=plugins.injections(), last_cache_marker=state.last_cache_marker,
            messages_since_roll=state.messages_since_roll, thinking_blocks=stored_thinking,
        ))
        result.context = built
        result.warnings.extend(built.warnings)
        if tr is not None:
            tr.record_context(context_build_record(built, len(context_messages)))
        model = str(cfg.get("continuation_model") or "")
        _phase(tr, "llm")
        route = await _resolve_route(ctx, model)
        formatter_route = getattr(route, "formatter_route", None)
        mode = resolve_mode(cfg, formatter_route)
        tool_mode = resolve_tool_mode(cfg, formatter_route)
        name = opt.bot_name(cfg)
        continue_last = bool(built.messages) and built.messages[-1].participant == name and built.messages[-1].is_bot
        turn = _Turn(ctx, cfg, built, route, plugins, fetched, result, continue_last)
        if isinstance(cfg.get("chapter2_prompt"), Mapping):
            await _run_chapter2(turn)
        elif mode == "prefill" or (tool_mode == "xml" and mode != "base-model"):
            await _run_inline(turn)
        else:
            await _run_native(turn, mode)
        _update_state_after(state, built, fetched, caching)
        if keep_thinking and ctx.thinking_dir is not None and result.reply_message_ids and result.thinking_blocks:
            thinking_store.save(ctx.thinking_dir, owner, channel_id, result.reply_message_ids[0],
                                result.thinking_blocks)
        result.warnings.extend(plugins.warnings)
        if plugins.system is not None:
            plugins.system.speak(cfg, owner, channel_id, result.completion_text)
        if ctx.tool_log_dir is not None and result.tool_log:
            append_entries(ctx.tool_log_dir, owner, channel_id, result.tool_log, result.sent_message_ids,
                           now=_utc(ctx.clock))
        if tr is not None:
            tr.set_outcome(True, result.completion_text, result.sent_message_ids,
                           state_updates={"cacheMarkerUpdated": built.cache_marker is not None and caching,
                                          "messageCountReset": built.did_roll})
    except Exception as exc:  # noqa: BLE001 - the caller decides how to surface it
        result.error = exc
        if tr is not None:
            tr.set_error(None, exc)
        log.warning("activation failed in channel %s: %s", channel_id, exc)
    return result


def _update_state_after(state: ChannelState, built: BuiltContext, fetched: FetchedContext, caching: bool) -> None:
    """§1.9 bookkeeping after a successful activation: cache marker, roll counter, window anchor."""
    if caching and built.cache_marker is not None and built.cache_marker != state.last_cache_marker:
        state.last_cache_marker = built.cache_marker
    if built.did_roll:
        if caching:  # the window anchor only matters for (and is only moved with) prompt caching
            state.cache_oldest_message_id = next((m.message_id for m in built.messages if m.message_id), None)
        state.messages_since_roll = 0
    else:
        state.messages_since_roll += _new_message_count(state, fetched)
    if fetched.messages:
        state.newest_seen_message_id = max((m.id for m in fetched.messages), key=int)


def context_build_record(built: BuiltContext, considered: int | None = None) -> dict[str, Any]:
    """The trace's `contextBuild` in upstream's shape (one entry per non-empty message); the trace
    index reads its message ids, so this is the only place that shape is produced."""
    msgs = list(built.messages)
    nonempty = [i for i, m in enumerate(msgs) if m.content]
    last = nonempty[-1] if nonempty else -1
    infos: list[dict[str, Any]] = []
    for i in nonempty:
        m = msgs[i]
        text = m.text()
        images = sum(1 for b in m.content if b.get("type") == "image")
        info: dict[str, Any] = {
            "position": i, "discordMessageId": m.message_id, "participant": m.participant,
            "contentPreview": text[:150] + ("..." if len(text) > 150 else ""), "contentLength": len(text),
            "tokenEstimate": math.ceil(len(text) / 3.5) + 1000 * images, "transformations": [],
            "isTrigger": i == last, "hasImages": images > 0, "imageCount": images,
            "hasCacheControl": bool(m.cache_breakpoint),
        }
        if m.timestamp:
            info["discordTimestamp"] = m.timestamp
        infos.append(info)
    record: dict[str, Any] = {"messagesIncluded": len(infos), "messages": infos, "didTruncate": built.did_roll,
                              "cacheMarker": built.cache_marker, "stopSequences": list(built.stop_sequences)}
    if considered is not None:
        record["messagesConsidered"] = considered
    return record


def _new_message_count(state: ChannelState, fetched: FetchedContext) -> int:
    """Messages since the previous activation (1 when unknown, e.g. the first activation)."""
    prev = state.newest_seen_message_id
    if prev is None:
        return 1
    return max(1, sum(1 for m in fetched.messages if int(m.id) > int(prev)))
