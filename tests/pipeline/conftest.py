"""A small invented Discord world and case builder for the pipeline tests (no shared material)."""

from __future__ import annotations

import copy
from typing import Any

BOT_ID = "930000000000000001"
WORLD: dict[str, Any] = {
    "guild_id": "900000000000000001",
    "channel_id": "910000000000000001",
    "channel_name": "harbour",
    "bot_user_id": BOT_ID,
    "users": [
        {"id": BOT_ID, "username": "gull-bot", "global_name": None, "bot": True},
        {"id": "950000000000000001", "username": "ines", "global_name": "Ines P", "bot": False},
        {"id": "950000000000000002", "username": "otto", "global_name": None, "bot": False},
        {"id": "960000000000000001", "username": "tern-bot", "global_name": "Tern", "bot": True},
    ],
    "members": [
        {"user_id": BOT_ID, "nickname": None, "role_ids": [], "joined_at": "2024-01-01T00:00:00Z"},
        {"user_id": "950000000000000001", "nickname": "Nessa", "role_ids": ["940000000000000002"],
         "joined_at": "2024-01-02T00:00:00Z"},
        {"user_id": "950000000000000002", "nickname": None, "role_ids": [], "joined_at": "2024-01-03T00:00:00Z"},
    ],
    "roles": [{"id": "940000000000000001", "name": "portal-sonnet"}, {"id": "940000000000000002", "name": "crew"}],
    "channels": [{"id": "910000000000000009", "name": "docks"}],
    "emojis": [{"id": "980000000000000001", "name": "anchor", "animated": False}],
    "pins": [],
    "messages": [],
}

SHARED_YAML = "vendors:\n  anthropic:\n    config:\n      anthropic_api_key: sk-ant-test-only\n"


def msg(n: int, author: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"14100000000000000{n:02d}", "author_id": author, "content": content, "type": 0,
            "timestamp": f"2025-05-01T10:{n:02d}:00.000Z", **extra}


def make_case(messages: list[dict[str, Any]], bot_yaml: str, responses: list[dict[str, Any]],
              state: dict[str, Any] | None = None) -> dict[str, Any]:
    world = copy.deepcopy(WORLD)
    world["messages"] = messages
    return {
        "bot_id": "gull",
        "files": {"config/shared.yaml": SHARED_YAML, "config/bots/gull.yaml": bot_yaml},
        "discord": world,
        "trigger_message_id": messages[-1]["id"],
        "channel_state": state or {"last_cache_marker": None, "messages_since_roll": 0, "cache_oldest_message_id": None},
        "llm_responses": responses,
    }
