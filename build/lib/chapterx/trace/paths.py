"""Where traces live: logs bases, the trace folder and the body folders.

Upstream hard-codes the body folders relative to the working directory and ignores `LOGS_DIR` on
the bot side; we use one `LOGS_DIR` for everything (writer and readers) and `TRACE_DIR` only moves
the trace files and `index.jsonl`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

BODY_DIRS = {
    "request": "llm-requests",
    "response": "llm-responses",
    "membrane-request": "membrane-requests",
    "membrane-response": "membrane-responses",
}


def logs_dir_from_env(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("LOGS_DIR") or "./logs")


def trace_dir_from_env(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("TRACE_DIR"):
        return Path(env["TRACE_DIR"])
    return logs_dir_from_env(env) / "traces"


def resolve_logs_dirs(cli_dirs: Iterable[str | Path] | None = None,
                      env: Mapping[str, str] | None = None) -> list[Path]:
    """`--logs-dir` (repeatable), else `LOGS_DIRS` (comma-separated), else `LOGS_DIR`, else `./logs`."""
    env = os.environ if env is None else env
    dirs = [Path(d) for d in (cli_dirs or []) if str(d).strip()]
    if not dirs and env.get("LOGS_DIRS"):
        dirs = [Path(p.strip()) for p in env["LOGS_DIRS"].split(",") if p.strip()]
    if not dirs:
        dirs = [logs_dir_from_env(env)]
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen
