"""Soma credit checks (reference §1.3 step 11, config §4.14), only when `soma.enabled` and `soma.url`.

Before an activation triggered by a mention, reply, m command or reaction, the trigger's author is
charged through `POST <url>/check-and-deduct`. Not enough credit: the activation is skipped
silently (Soma's own bot tells the user). Bot not configured in Soma: ⚙️ on the trigger, skipped.
Any API or network error lets the activation go ahead (fail open). A failed activation is refunded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chapterx.config.typed import ConfigLike, as_bot_config

log = logging.getLogger(__name__)

CHARGED = frozenset({"mention", "reply", "m_command", "reaction"})
NOT_CONFIGURED_EMOJI = "⚙️"


@dataclass(frozen=True)
class SomaDecision:
    allowed: bool
    react: str | None = None  # emoji for the trigger message
    transaction_id: str | None = None


def soma_settings(config: ConfigLike, env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(base url, token) when Soma is on for this config, else None."""
    soma = as_bot_config(config).soma
    if not isinstance(soma, Mapping) or soma.get("enabled") is not True or not soma.get("url"):
        return None
    token = str(soma.get("token") or (env if env is not None else os.environ).get("SOMA_TOKEN") or "")
    return str(soma["url"]).rstrip("/"), token


class SomaClient:
    """The three Soma endpoints ChapterX uses, over one httpx client."""

    def __init__(self, url: str, token: str, client: Any) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.client = client
        if not token:
            log.warning("Soma is enabled without a token (soma.token or SOMA_TOKEN); its API will refuse calls")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    async def check(self, *, user_id: str, guild_id: str, channel_id: str, bot_id: str, message_id: str,
                    trigger: str, user_roles: Sequence[str]) -> SomaDecision:
        body = {"userId": user_id, "serverId": guild_id, "channelId": channel_id, "botId": bot_id,
                "messageId": message_id, "triggerType": trigger, "userRoles": list(user_roles)}
        try:
            resp = await self.client.post(f"{self.url}/check-and-deduct", json=body, headers=self._headers())
        except Exception as exc:  # noqa: BLE001 - Soma being down must not silence the bot
            log.error("Soma check failed (%s); answering anyway", exc)
            return SomaDecision(True)
        if resp.status_code >= 400:
            try:
                error = resp.json().get("error")
            except ValueError:
                error = None
            if error == "BOT_NOT_CONFIGURED":
                log.warning("bot %s is not configured in Soma; not answering", bot_id)
                return SomaDecision(False, NOT_CONFIGURED_EMOJI)
            log.error("Soma check answered HTTP %s; answering anyway", resp.status_code)
            return SomaDecision(True)
        try:
            data = resp.json()
        except ValueError:
            log.error("Soma check answered something that is not JSON; answering anyway")
            return SomaDecision(True)
        if not isinstance(data, Mapping) or data.get("allowed") is not False:
            tid = data.get("transactionId") if isinstance(data, Mapping) else None
            return SomaDecision(True, None, str(tid) if tid else None)
        return SomaDecision(False)

    async def refund(self, transaction_id: str, reason: str) -> bool:
        try:
            resp = await self.client.post(f"{self.url}/refund", json={"transactionId": transaction_id,
                                                                      "reason": reason}, headers=self._headers())
        except Exception as exc:  # noqa: BLE001 - logged, nothing else to do
            log.error("Soma refund of %s failed: %s", transaction_id, exc)
            return False
        if resp.status_code >= 400:
            log.error("Soma refund of %s answered HTTP %s", transaction_id, resp.status_code)
            return False
        return True

    async def track_message(self, *, message_id: str, channel_id: str, guild_id: str, bot_id: str,
                            trigger_user_id: str, trigger_message_id: str | None = None) -> bool:
        body: dict[str, Any] = {"messageId": message_id, "channelId": channel_id, "serverId": guild_id,
                                "botId": bot_id, "triggerUserId": trigger_user_id}
        if trigger_message_id:
            body["triggerMessageId"] = trigger_message_id
        try:
            resp = await self.client.post(f"{self.url}/track-message", json=body, headers=self._headers())
        except Exception as exc:  # noqa: BLE001
            log.error("Soma track-message failed: %s", exc)
            return False
        return bool(resp.status_code < 400)


async def gate(client: SomaClient, port: Any, *, reason: str, channel_id: str, guild_id: str,
               trigger_id: str | None, bot_id: str) -> SomaDecision:
    """The check for one activation: free triggers pass; ⚙️ is added here when Soma says so."""
    if reason not in CHARGED or trigger_id is None:
        return SomaDecision(True)
    msg = await port.fetch_message(channel_id, trigger_id)
    if msg is None or not msg.author_id:
        return SomaDecision(True)
    member = port.member(msg.author_id)
    decision = await client.check(user_id=msg.author_id, guild_id=guild_id, channel_id=channel_id, bot_id=bot_id,
                                  message_id=trigger_id, trigger=reason,
                                  user_roles=list(member.role_ids) if member is not None else [])
    if decision.react:
        try:
            await port.react(channel_id, trigger_id, decision.react)
        except Exception as exc:  # noqa: BLE001 - the reaction is a courtesy
            log.warning("could not react %s: %s", decision.react, exc)
    return decision
