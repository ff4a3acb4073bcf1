"""`chapterx demo`: the README's first command starts, writes real traces of every example bot (a
ChapterX bot, a chapter2 em run in place, the migrated em), serves them, and stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chapterx.cli import main


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()


@pytest.mark.timeout(240)
def test_demo_serves_traces_of_every_example_bot(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    for key in ("AUTH_TOKEN", "LOGS_DIR", "LOGS_DIRS", "TRACE_INDEX_PATH", "ANTHROPIC_API_KEY"):
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, "-m", "chapterx", "demo", "--port", "0", "--dir", str(work)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        out: list[str] = []
        url = None
        deadline = time.monotonic() + 150
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            m = re.match(r"trace viewer: (http://127\.0\.0\.1:\d+/)", line)
            url = m.group(1) if m else None
        assert url, "".join(out) + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        text = "".join(out)
        assert "FAILED" not in text, text
        assert (work / "migrated" / "MIGRATION_REPORT.md").is_file()
        status, body = _get(url + "api/traces")
        assert status == 200
        data = json.loads(body)
        traces = data["traces"] if isinstance(data, dict) else data
        assert {t["botName"] for t in traces} >= {"aria", "wren", "wren-migrated"}
        assert all(t.get("success", t.get("status") == "success") for t in traces)
        status, page = _get(url)
        assert status == 200 and b"<html" in page.lower()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_no_serve_posts_replies_and_writes_traces(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["demo", "--no-serve", "--dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "aria (chapterx): posted 1 message(s): 'The sourdough" in out
    assert "wren (chapter2 em (run in place)): posted 1 message(s)" in out
    traces = list((tmp_path / "d" / "logs" / "traces").rglob("*.json"))
    assert len([t for t in traces if t.name != "index.jsonl"]) >= 3


def test_demo_refuses_a_non_empty_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["demo", "--no-serve", "--dir", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"
