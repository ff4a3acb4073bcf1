"""chapter2's `should_reply` (chapter2.md §5.6.3): the gates, then the first trigger that fires, in
chapter2's short-circuit order ping, random, name, sim, regex.

Pure apart from the two hooks the caller passes: `roll()` (a random number) and `sim()` (the small
model's prediction, an LLM call). `fix_name_punctuation` is our opt-in fix for the name rule.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import regex

from chapterx_compat.chapter2 import models as m
from chapterx_compat.chapter2.runtime.convert import is_dotted

log = logging.getLogger(__name__)
TRIGGERS = ("ping", "random", "name", "sim", "regex")


@dataclass(frozen=True)
class Facts:
    """What the gates and triggers read about one incoming message."""

    author_id: int
    bot_id: int
    bot_username: str
    sysname: str
    content: str  # raw Discord content
    mentioned: bool  # discord.py's ClientUser.mentioned_in
    guild_channel: bool  # a guild channel that is not a thread (only there the send permission is checked)
    can_send: bool
    public_thread: bool


def gates_pass(f: Facts, iface: m.DiscordInterfaceConfig) -> bool:
    if f.author_id == f.bot_id:
        return False
    if f.guild_channel and not f.can_send:
        return False
    if iface.ignore_dotted_messages and is_dotted(f.content):
        return False
    if iface.mute or (iface.thread_mute and f.public_thread):
        return False
    if iface.discord_user_whitelist and f.author_id not in iface.discord_user_whitelist:
        return False
    return not (iface.may_speak and f.bot_username not in iface.may_speak and f.sysname not in iface.may_speak)


def name_matches(content: str, names: Sequence[str], *, fix_punctuation: bool = False) -> bool:
    """chapter2's name rule: a name at the very start (after at most three non-space runs) or at the very
    end (followed by word characters only). With `fix_punctuation`, a name that is its own word among the
    first or last four words also counts, trailing punctuation included ("good night wren!", "hey wren,")."""
    for name in names:
        if not name:
            continue
        n = re.escape(name)
        # chapter2 writes these as `^([^\s]+\b){0,3}` + name and name + `([^\s]+\b){0,3}$`. Up to three
        # runs of non-space characters, each ending at a word boundary, match exactly when one such run
        # does (the last run must end at the boundary either way), so the same rule is written with one
        # optional run: chapter2's form backtracks through every split of a long unbroken message
        # ("a-a-a-..." of 800 characters took 2.8 s), and anyone who can post could stall the bot.
        if re.match(r"^(?:[^\s]+\b)?" + n, content, re.IGNORECASE):
            return True
        if re.search(n + r"(?:[^\s]+\b)?$", content, re.IGNORECASE):
            return True
        if fix_punctuation:
            word = r"\W*" + n + r"\w*\W*"
            if re.match(r"^\s*(?:\S+\s+){0,3}" + word + r"(?:\s|$)", content, re.IGNORECASE):
                return True
            if re.search(r"(?:^|\s)" + word + r"(?:\s+\S+){0,3}\s*$", content, re.IGNORECASE):
                return True
    return False


# A pattern comes from a channel topic or a pinned `.config`; the content from anyone who can post. `re` has
# no time limit, so a backtracking pattern plus a crafted message could stall every channel of the bot.
REGEX_TIMEOUT_S = 0.05


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> regex.Pattern[str] | None:
    try:
        return regex.compile(pattern, flags=regex.VERSION0)  # VERSION0: `re`'s syntax and semantics
    except (regex.error, ValueError, OverflowError):
        return None


def regex_matches(pattern: str | None, content: str) -> bool:
    """chapter2's `re.fullmatch(reply_on_regex, content)`, given 50 ms: a match that takes longer is no match."""
    if not pattern:
        return False
    compiled = _compiled(pattern)
    if compiled is None:
        return False
    try:
        return compiled.fullmatch(content, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        if pattern not in _warned:
            if len(_warned) >= 256:  # patterns come from pins: keep the set bounded
                _warned.clear()
            _warned.add(pattern)
            log.warning("reply_on_regex %r took over %d ms on one message: treated as no match",
                        pattern[:80], int(REGEX_TIMEOUT_S * 1000))
        return False


_warned: set[str] = set()


async def first_trigger(
    f: Facts,
    iface: m.DiscordInterfaceConfig,
    names: Sequence[str],
    *,
    roll: Callable[[], float],
    sim: Callable[[], Awaitable[bool]],
    only: str | None = None,
    fix_name_punctuation: bool = False,
) -> str | None:
    """The trigger that fires (None: no reply). `only` evaluates one trigger alone (the vectors' ablation)."""
    if not gates_pass(f, iface):
        return None

    def on(name: str) -> bool:
        return only is None or only == name

    if on("ping") and iface.reply_on_ping and f.mentioned:
        return "ping"
    if on("random") and iface.reply_on_random and roll() < 1 / iface.reply_on_random:
        return "random"
    if on("name") and iface.reply_on_name and name_matches(f.content, names, fix_punctuation=fix_name_punctuation):
        return "name"
    if on("sim") and iface.reply_on_sim is not False and await sim():
        return "sim"
    if on("regex") and iface.reply_on_regex and regex_matches(iface.reply_on_regex, f.content):
        return "regex"
    return None
