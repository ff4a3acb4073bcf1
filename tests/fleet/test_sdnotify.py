"""sd_notify over a real unix datagram socket: READY once ready, WATCHDOG pings, STOPPING at stop."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from chapterx.fleet.sdnotify import Notifier, run_notifier


def _listen(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_from_env_reads_socket_and_watchdog() -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "30000000"})
    assert n.address == "/run/x.sock" and n.watchdog_interval == 15.0
    assert Notifier.from_env({"NOTIFY_SOCKET": "@abstract"}).address == "\0abstract"
    # a watchdog meant for another process (WATCHDOG_PID) is not ours to ping
    other = Notifier.from_env({"NOTIFY_SOCKET": "/s", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None or os.getpid() == 1
    off = Notifier.from_env({})
    assert not off.enabled and off.send("READY=1") is False
    assert not Notifier.from_env({"NOTIFY_SOCKET": "relative/path"}).enabled


async def test_ready_watchdog_stopping_over_a_real_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = _listen(path)
    try:
        ready, stop = asyncio.Event(), asyncio.Event()
        n = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # ping every 50 ms
        task = asyncio.create_task(run_notifier(ready, stop, notifier=n))
        await asyncio.sleep(0.15)
        assert _drain(sock) == []  # nothing before the bot is ready: systemd keeps it "activating"
        ready.set()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 5)
        got = _drain(sock)
    finally:
        sock.close()
    assert got[0] == "READY=1\nSTATUS=connected to Discord"
    assert got.count("WATCHDOG=1") >= 3
    assert got[-1] == "STOPPING=1"


async def test_abstract_socket_and_vanished_socket(tmp_path: Path) -> None:
    name = f"chapterx-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        assert Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).ready() is True
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()
    # systemd gone: the send fails quietly and the bot carries on
    gone = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert gone.watchdog() is False


async def test_disabled_notifier_just_waits_for_stop() -> None:
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_notifier(ready, stop, notifier=Notifier(None, None)))
    await asyncio.sleep(0.05)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 2)


@pytest.mark.parametrize("usec", ["0", "abc", ""])
def test_no_watchdog_without_a_valid_interval(usec: str) -> None:
    assert Notifier.from_env({"NOTIFY_SOCKET": "/s", "WATCHDOG_USEC": usec}).watchdog_interval is None
