"""`chapterx traces serve` / `tools/trace_server.py` as a real process: banner, env, health, clean SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_DIR
from tests.viewer.treegen import make_trace, write_tree


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], int, str]:
    proc = subprocess.Popen(
        args, cwd=REPO_DIR, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    banner = ""
    for line in proc.stderr:
        banner += line
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m:
            for _ in range(3):  # auth line and folder lines
                banner += proc.stderr.readline()
            return proc, int(m.group(1)), banner
    proc.wait(10)
    raise AssertionError(f"server did not start: {banner}")


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def test_tools_trace_server_with_env(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    logs = tmp_path / "logs"
    write_tree(logs, [(make_trace("00c11c11", datetime.now(UTC), bot="CliBot", text="cli"), "CliBot")])
    env = dict(
        os.environ,
        LOGS_DIR=str(logs),
        PORT="0",
        HOST="127.0.0.1",
        AUTH_TOKEN="tok-cli",
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    proc, port, banner = _start(
        [sys.executable, "tools/trace_server.py", "--index", str(tmp_path / "i.sqlite")], env
    )
    try:
        assert "auth: on" in banner and f"✓ {logs}" in banner
        assert _get(port, "/health")[0] == 200
        assert _get(port, "/api/traces")[0] == 401
        status, body = _get(port, "/api/traces", {"Authorization": "Bearer tok-cli"})
        assert status == 200 and [t["traceId"] for t in json.loads(body)["traces"]] == ["00c11c11"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert not Path(str(tmp_path / "i.sqlite") + "-wal").exists()  # the store was closed cleanly
