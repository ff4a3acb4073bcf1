"""Start and stop a real `chapterx` process in end-to-end tests (SIGTERM first, as systemd does)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path


async def start_chapterx(args: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await start_argv([sys.executable, "-m", "chapterx", *args], env, cwd)


async def start_argv(argv: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*argv, env=env, cwd=str(cwd), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def stop(proc: asyncio.subprocess.Process, grace: float = 30) -> tuple[int, str]:
    """SIGTERM, wait up to `grace` seconds, then kill: the exit code and stderr (never leaves a process)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), grace)
    except TimeoutError:
        proc.kill()
        _out, err = await proc.communicate()
    return int(proc.returncode or 0), err.decode("utf-8", "replace")
