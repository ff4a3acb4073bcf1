"""Child process for the concurrency and crash tests (run with `python -m tests.trace.proc_worker`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from chapterx.trace.collector import start_activation
from tests.trace.helpers import new_writer, write_activation


def write_many(logs: Path, worker: int, count: int) -> None:
    writer = new_writer(logs, background=True)
    for i in range(count):
        write_activation(writer, bot=f"Bot {worker % 3}", channel=str(1000 + worker),
                         trigger=f"{worker:02d}{i:06d}", context=[f"{worker:02d}{i:06d}"] * 3,
                         text="x" * (50 + (i % 7) * 300))
    writer.close()


def hang_mid_activation(logs: Path) -> None:
    writer = new_writer(logs, background=True)
    with start_activation("4242", "rm_relay_777", "Crashy Bot", channel_name="crash-test", writer=writer) as c:
        c.record_activation("mention", [{"type": "message", "messageId": "rm_relay_777",
                                         "contentPreview": "please crash"}])
        c.record_llm_call({"messages": []}, {"content": [{"type": "text", "text": "half"}]}, model="m",
                          usage=None, stop_reason="end_turn", duration_ms=1)
        c.set_phase("tool_execution")
        c.record_context({"messages": []})
        c.checkpoint()  # the marker now holds the round trip and the current phase
        writer.flush()
        print("READY", c.trace_id, flush=True)
        time.sleep(120)


if __name__ == "__main__":
    mode, logs = sys.argv[1], Path(sys.argv[2])
    if mode == "many":
        write_many(logs, int(sys.argv[3]), int(sys.argv[4]))
    else:
        hang_mid_activation(logs)
