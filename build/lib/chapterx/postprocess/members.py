"""Guild member search for outgoing `<@name>` mentions, over plain member records.

The Discord port answers `search_members(query)` from the gateway or REST; this module gives the same
answer for in-memory worlds (tests, `chapterx replay`) and ranks the candidates as the reference does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MemberRecord:
    user_id: str
    username: str
    global_name: str | None = None
    nickname: str | None = None
    bot: bool = False
    joined_at: str = ""  # ISO timestamp; later joins rank first among equals

    @property
    def display_name(self) -> str:
        return self.nickname or self.global_name or self.username


def pick_member(query: str, candidates: Sequence[MemberRecord]) -> str | None:
    """The id the reference picks among search results for `query`, or None.

    Keeps exact username or display-name matches (case-insensitive), humans before bots, then the most
    recently joined.
    """
    q = query.lower()
    exact = [m for m in candidates if m.username.lower() == q or m.display_name.lower() == q]
    if not exact:
        return None
    exact.sort(key=lambda m: m.joined_at, reverse=True)
    exact.sort(key=lambda m: m.bot)  # stable: humans first, each group newest join first
    return exact[0].user_id


def member_search_from(members: Sequence[MemberRecord]) -> Callable[[str], str | None]:
    """A sync member search: Discord's prefix query on username / nickname / global name, then `pick_member`."""

    def search(query: str) -> str | None:
        q = query.lower()
        found = [
            m
            for m in members
            if any(n and n.lower().startswith(q) for n in (m.username, m.nickname, m.global_name))
        ]
        return pick_member(query, found)

    return search


def members_from_world(discord: Mapping[str, Any]) -> list[MemberRecord]:
    """Member records from a vector-style `discord` object (`users` + `members`)."""
    users = {str(u["id"]): u for u in discord.get("users", []) or []}
    out: list[MemberRecord] = []
    for mem in discord.get("members", []) or []:
        user = users.get(str(mem["user_id"]))
        if user is None:
            continue
        out.append(
            MemberRecord(
                user_id=str(user["id"]),
                username=str(user["username"]),
                global_name=user.get("global_name"),
                nickname=mem.get("nickname"),
                bot=bool(user.get("bot")),
                joined_at=str(mem.get("joined_at") or ""),
            )
        )
    return out


def members_from_port(port: Any) -> list[MemberRecord]:
    """Member records from a `chapterx.discord.port.DiscordPort` (`members()` + `user(id)`)."""
    out: list[MemberRecord] = []
    for mem in port.members():
        user = port.user(mem.user_id)
        if user is None:
            continue
        out.append(MemberRecord(user.id, user.username, user.global_name, mem.nickname, bool(user.bot),
                                mem.joined_at or ""))
    return out


def emoji_lookup_from_port(port: Any) -> Callable[[str], str | None]:
    """`:name:` lookup over a DiscordPort's guild emojis (`emojis()` records with id, name, animated)."""
    from chapterx.postprocess.text import emoji_lookup_from

    return emoji_lookup_from([{"id": e.id, "name": e.name, "animated": e.animated} for e in port.emojis()])
