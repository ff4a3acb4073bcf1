"""systemd notifications (READY / WATCHDOG / STOPPING) over `NOTIFY_SOCKET`.

Why our own few lines: the protocol is one unix datagram per message, and a dependency for that
would be larger than the code. Everything here is a no-op when `NOTIFY_SOCKET` is unset (not
under systemd, or `Type=simple`), and a failed send is logged once, never raised: a bot must not
stop answering because systemd went away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notifier:
    """Where to send notifications; `address` is None when systemd did not ask for them."""

    address: str | None
    watchdog_interval: float | None  # seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET") or None
        address = None
        if raw and (raw.startswith("/") or raw.startswith("@")):
            address = "\0" + raw[1:] if raw.startswith("@") else raw  # "@" = Linux abstract namespace
        interval = None
        usec = env.get("WATCHDOG_USEC") or ""
        pid = env.get("WATCHDOG_PID") or ""
        if address and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 1_000_000 / 2
        return cls(address, interval)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        """Send one notification (e.g. "READY=1"); True when it was delivered."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
            return True
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", message.split("=", 1)[0], exc.strerror or exc)
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")


async def run_notifier(ready: asyncio.Event, stop: asyncio.Event, *, notifier: Notifier | None = None,
                       status: str = "connected to Discord") -> None:
    """READY=1 once `ready` is set, WATCHDOG=1 every interval from the event loop (a wedged loop
    stops the pings, so systemd restarts the bot), STOPPING=1 when `stop` is set."""
    n = notifier or Notifier.from_env()
    if not n.enabled:
        await stop.wait()
        return
    waiter = asyncio.ensure_future(stop.wait())
    try:
        readiness = asyncio.ensure_future(ready.wait())
        await asyncio.wait({readiness, waiter}, return_when=asyncio.FIRST_COMPLETED)
        readiness.cancel()
        if ready.is_set() and not stop.is_set():
            n.ready(status)
        while not stop.is_set():
            if n.watchdog_interval is None:
                await waiter
                break
            n.watchdog()
            try:
                await asyncio.wait_for(asyncio.shield(waiter), timeout=n.watchdog_interval)
            except TimeoutError:
                continue
        n.stopping()
    finally:
        waiter.cancel()
