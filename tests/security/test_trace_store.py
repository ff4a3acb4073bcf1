"""The trace store against hostile or broken logs trees (issue 9, store items): confinement of
trace files, a writer killed between the trace file's rename and its index line, torn index lines,
orphan temporary files, and kill -9 / ENOSPC while writing (nothing written may be lost)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chapterx.cli import main as cli_main
from chapterx.trace.store import TraceStore
from chapterx.trace.writer import TraceWriter, atomic_write
from tests.trace.helpers import new_writer, write_activation

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("TRACE_INDEX_PATH", "LOGS_DIRS", "LOGS_DIR", "TRACE_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[list[TraceStore]]:
    made: list[TraceStore] = []
    yield made
    for s in made:
        s.close()


def _store(stores: list[TraceStore], logs: Path) -> TraceStore:
    s = TraceStore([logs], index_path=logs.parent / f"idx-{len(stores)}.sqlite", auto_refresh_interval=0.0)
    stores.append(s)
    return s


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


# ---------------------------------------------------------------------------- item 4: confinement
def test_trace_files_are_confined_to_the_logs_tree(tmp_path: Path, stores: list[TraceStore],
                                                   capsys: Any) -> None:
    logs = tmp_path / "logs"
    writer = new_writer(logs, background=False)
    tid = write_activation(writer, bot="Real")
    real = next((logs / "traces" / "Real").glob(f"*{tid}*.json"))
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = {"traceId": tid, "secret": "hunter2-do-not-serve", "timestamp": "2026-01-01T00:00:00.000Z"}
    (outside / real.name).write_text(json.dumps(secret))
    # 1. the trace file itself replaced by a symlink out of the tree
    real.unlink()
    real.symlink_to(outside / real.name)
    store = _store(stores, logs)
    assert store.get_trace(tid) is None
    assert store.trace_path(tid) is None
    assert cli_main(["traces", "show", tid, "--logs-dir", str(logs), "--index", str(tmp_path / "c.sqlite")]) == 1
    assert "hunter2" not in capsys.readouterr().out
    # 2. a bot folder that is a symlink out of the tree (listed in index.jsonl and found by the scan)
    tid2 = "f" * 32
    evil_name = f"10-{tid2}-2026-01-01T00-00-00-000Z.json"
    (outside / evil_name).write_text(json.dumps({**secret, "traceId": tid2}))
    (logs / "traces" / "Evil").symlink_to(outside)
    with open(logs / "traces" / "index.jsonl", "a") as fh:
        fh.write(json.dumps({"traceId": tid2, "timestamp": "2026-01-01T00:00:00.000Z", "channelId": "10",
                             "botName": "Evil", "success": True, "filename": evil_name}) + "\n")
    assert store.get_trace(tid2) is None
    assert store.trace_path(tid2) is None
    # 3. only regular files: a folder named like a trace file is not a trace
    tid3 = "e" * 32
    (logs / "traces" / "Real" / f"10-{tid3}-2026-01-01T00-00-00-000Z.json").mkdir()
    assert store.get_trace(tid3) is None
    # a symlink that stays inside the tree is still served (operators move files around)
    tid4 = write_activation(writer, bot="Real")
    moved = next((logs / "traces" / "Real").glob(f"*{tid4}*.json"))
    (logs / "traces" / "archive").mkdir()
    shutil.move(moved, logs / "traces" / "archive" / moved.name)
    moved.symlink_to(logs / "traces" / "archive" / moved.name)
    assert store.get_trace(tid4)["traceId"] == tid4


def test_markers_that_are_symlinks_are_ignored(tmp_path: Path, stores: list[TraceStore]) -> None:
    logs = tmp_path / "logs"
    mdir = logs / "traces" / "Bot" / ".inprogress"
    mdir.mkdir(parents=True)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"traceId": "d" * 32, "timestamp": "2026-01-01T00:00:00.000Z",
                                   "channelId": "1", "botId": "Bot", "secret": "hunter2"}))
    (mdir / f"{'d' * 32}.json").symlink_to(outside)
    store = _store(stores, logs)
    assert store.list_traces()["total"] == 0
    assert store.get_trace("d" * 32) is None


# ---------------------------------------------------------------------------- item 7: reconcile
_KILL_BEFORE_APPEND = """
import os, sys
from pathlib import Path
import chapterx.trace.writer as w
from tests.trace.helpers import new_writer, write_activation
def die(*a, **k):
    os.kill(os.getpid(), 9)
w.append_line_locked = die
writer = new_writer(Path(sys.argv[1]), background=False)
write_activation(writer, bot="Crashy", text="the whole answer", sent=["777"])
"""


def _killed_between_rename_and_append(logs: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", _KILL_BEFORE_APPEND, str(logs)], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [trace_file] = (logs / "traces" / "Crashy").glob("*.json")
    assert list((logs / "traces" / "Crashy" / ".inprogress").glob("*.json")), "the marker stays behind"
    assert not (logs / "traces" / "index.jsonl").exists()
    return json.loads(trace_file.read_text())["traceId"]


def test_writer_killed_between_rename_and_index_line(tmp_path: Path, stores: list[TraceStore]) -> None:
    logs = tmp_path / "logs"
    tid = _killed_between_rename_and_append(logs)
    store = _store(stores, logs)
    # on read: the finished trace file wins over the marker (it is not "aborted")
    [row] = store.list_traces()["traces"]
    assert (row["traceId"], row["status"], row["success"]) == (tid, "success", True)
    assert row.get("responsePreview") == "the whole answer"
    detail = store.get_trace(tid)
    assert detail["status"] == "success" and detail["outcome"]["responseText"] == "the whole answer"
    assert store.search("777")["results"][0]["traceId"] == tid
    # on reindex: the missing index line is written and the marker goes
    store.reindex()
    lines = (logs / "traces" / "index.jsonl").read_text().splitlines()
    assert [json.loads(x)["traceId"] for x in lines] == [tid]
    assert not list((logs / "traces" / "Crashy" / ".inprogress").glob("*.json"))
    assert [(t["traceId"], t["status"]) for t in store.list_traces()["traces"]] == [(tid, "success")]
    # a fresh index over the repaired tree agrees
    assert [t["traceId"] for t in _store(stores, logs).list_traces()["traces"]] == [tid]


def test_reindex_repairs_through_the_cli(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    tid = _killed_between_rename_and_append(logs)
    assert cli_main(["traces", "reindex", "--logs-dir", str(logs), "--index", str(tmp_path / "i.sqlite")]) == 0
    assert json.loads((logs / "traces" / "index.jsonl").read_text())["traceId"] == tid


# ---------------------------------------------------------------------------- item 8: torn line
def test_an_append_after_a_torn_line_starts_a_new_line(tmp_path: Path, stores: list[TraceStore]) -> None:
    logs = tmp_path / "logs"
    writer = new_writer(logs, background=False)
    first = write_activation(writer)
    idx = logs / "traces" / "index.jsonl"
    with open(idx, "a") as fh:
        fh.write('{"traceId": "torn-by-a-killed-wri')  # a writer died mid-line
    second = write_activation(writer)
    store = _store(stores, logs)
    assert {t["traceId"] for t in store.list_traces()["traces"]} == {first, second}
    assert store.stats()["sources"][0]["malformed"] == 1
    assert idx.read_bytes().endswith(b"\n")


# ---------------------------------------------------------------------------- orphan temp files
def test_temp_files_are_removed_on_failure_and_at_next_start(tmp_path: Path) -> None:
    target = tmp_path / "logs" / "traces" / "Bot" / "x.json"
    with pytest.raises(UnicodeEncodeError):
        atomic_write(target, "lone surrogate \ud800")
    assert list(target.parent.iterdir()) == []
    # files a killed writer left behind: its pid is gone
    dead = _dead_pid()
    body_dir = tmp_path / "logs" / "llm-requests"
    body_dir.mkdir(parents=True)
    stale = [target.parent / f".a.json.{dead}.1.tmp", body_dir / f".request-x-0.json.{dead}.7.tmp"]
    live = target.parent / f".b.json.{os.getpid()}.1.tmp"  # a writer of this process, still busy
    for p in [*stale, live]:
        p.write_text("{")
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    writer = TraceWriter(tmp_path / "logs", background=False)
    tid = write_activation(writer)
    assert not any(p.exists() for p in stale)
    assert live.exists()
    assert any(tid in p.name for p in (tmp_path / "logs" / "traces" / "TestBot").iterdir())


# ---------------------------------------------------------------------------- faults: nothing lost
def _all_trace_files(logs: Path) -> dict[str, Path]:
    out = {}
    for p in (logs / "traces").glob("*/*.json"):
        with contextlib.suppress(ValueError, KeyError):
            out[json.loads(p.read_text())["traceId"]] = p
    return out


def _assert_nothing_lost(logs: Path, store: TraceStore, *, no_temp_files: bool = True) -> set[str]:
    files = _all_trace_files(logs)
    store.reindex()
    listed = set()
    offset = 0
    while True:
        page = store.list_traces(limit=200, offset=offset)
        listed |= {t["traceId"] for t in page["traces"] if t["status"] != "running"}
        offset += 200
        if offset >= page["total"]:
            break
    assert set(files) <= listed, f"trace files not in the index: {set(files) - listed}"
    for tid in files:
        assert store.get_trace(tid)["traceId"] == tid
    if no_temp_files:
        assert not list(logs.rglob("*.tmp")), "temporary files left behind"
    return set(files)


def test_kill_9_while_writing_loses_nothing(tmp_path: Path, stores: list[TraceStore]) -> None:
    logs = tmp_path / "logs"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for delay in (0.4, 0.9):
        proc = subprocess.Popen([sys.executable, "-m", "tests.trace.proc_worker", "many", str(logs), "1", "100000"],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (logs / "traces" / "index.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    store = _store(stores, logs)
    before = _assert_nothing_lost(logs, store, no_temp_files=False)  # the killed writer's, cleaned below
    assert before
    # the next writer starts clean (the killed one's temporary files go) and everything it writes is found
    writer = new_writer(logs, background=False)
    more = {write_activation(writer, trigger=str(8000 + i)) for i in range(5)}
    assert _assert_nothing_lost(logs, store) == before | more


def test_enospc_loses_nothing_that_was_written(tmp_path: Path, stores: list[TraceStore]) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        logs = mnt / "logs"
        writer = new_writer(logs, background=False)
        written = []
        for i in range(400):
            before = writer.errors
            tid = write_activation(writer, trigger=str(9000 + i), text="y" * 2000)
            if writer.errors > before:
                break
            written.append(tid)
        assert writer.errors, "the tmpfs never filled up"
        store = TraceStore([logs], index_path=tmp_path / "idx.sqlite", auto_refresh_interval=0.0)
        stores.append(store)
        listed = {t["traceId"] for t in store.list_traces(limit=200)["traces"]}
        assert set(written) <= listed  # every write the writer reported done is readable
        assert not list(logs.rglob("*.tmp"))
        # room again (as an operator would make): the next writes are all found
        for p in (logs / "llm-requests").glob("*.json"):
            p.unlink()
        for p in (logs / "llm-responses").glob("*.json"):
            p.unlink()
        writer2 = new_writer(logs, background=False)
        later = write_activation(writer2, trigger="99999", text="short")
        assert writer2.errors == 0
        assert later in {t["traceId"] for t in store.list_traces(limit=200)["traces"]}
        assert store.get_trace(later)["traceId"] == later
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_viewer_trace_endpoint_is_confined_too(tmp_path: Path) -> None:
    """`/api/trace/<id>` over HTTP: the same store, so the same confinement."""
    from tests.viewer.conftest import RunningViewer, make_settings

    logs = tmp_path / "logs"
    writer = new_writer(logs, background=False)
    good = write_activation(writer, bot="Real")
    bad = write_activation(writer, bot="Real")
    victim = next((logs / "traces" / "Real").glob(f"*{bad}*.json"))
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"traceId": bad, "timestamp": "2026-01-01T00:00:00.000Z", "token": "hunter2"}))
    victim.unlink()
    victim.symlink_to(secret)
    running = RunningViewer(make_settings(tmp_path, [logs])).start()
    try:
        assert running.request("GET", f"/api/trace/{good}").json()["traceId"] == good
        reply = running.request("GET", f"/api/trace/{bad}")
        assert reply.status == 404 and b"hunter2" not in reply.body
    finally:
        running.stop()
