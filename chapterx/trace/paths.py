"""Where traces live: logs bases, the trace folder and the body folders.

Upstream hard-codes the body folders relative to the working directory and ignores `LOGS_DIR` on
the bot side; we use one `LOGS_DIR` for everything (writer and readers). Traces always live in
`LOGS_DIR/traces`: a `TRACE_DIR` elsewhere made traces that no reader (`chapterx traces`, the
viewer, `fleet status`) ever saw, so it is refused unless it names that same folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

# a body file's ref as trace files carry it: a bare file name, never a path
BODY_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$")

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
    """`LOGS_DIR/traces`; a `TRACE_DIR` naming another folder is refused (see `check_trace_dir`)."""
    env = os.environ if env is None else env
    logs = logs_dir_from_env(env)
    check_trace_dir(logs, Path(env["TRACE_DIR"]) if env.get("TRACE_DIR") else None)
    return logs / "traces"


def check_trace_dir(logs_dir: Path, trace_dir: Path | None) -> None:
    """One clear line instead of traces written where nothing reads them."""
    if trace_dir is None:
        return
    expected = Path(logs_dir) / "traces"
    if Path(trace_dir).resolve() == expected.resolve():
        return
    from chapterx.errors import UserError

    raise UserError(
        f"TRACE_DIR={trace_dir} is not supported: traces always go to LOGS_DIR/traces ({expected}), where "
        "`chapterx traces`, the viewer and `chapterx fleet status` read them. Unset TRACE_DIR, or set LOGS_DIR "
        f"to the folder that should hold traces/ (here: LOGS_DIR={Path(trace_dir).parent} if you meant "
        f"{Path(trace_dir).parent}/traces)", 1)


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
