"""Per-message cost of the chapter2 runtime (rules, channel config rebuilt per message, history, prompt).

`python bench/bench_chapter2_runtime.py [--messages 2000] [--pins 3] [--window 35]` builds an in-memory
Discord (`chapterx_compat.chapter2.runtime.memory`) with one channel of `--messages` messages, a topic config and
`--pins` pinned `.config` messages, then times `Chapter2Interface.on_message`:
- for messages that do not trigger (gates + config + should_reply: what every message in a busy guild costs);
- for messages that trigger (plus history walk of `--window` messages, conversion, prompt assembly and
  the reply send; the LLM is an instant stand-in).
Prints p50/p95 per message in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from chapterx_compat.chapter2.load import load
from chapterx_compat.chapter2.runtime.interface import Chapter2Interface, InterfaceOptions
from chapterx_compat.chapter2.runtime.memory import MemoryWorld

BOT = 1100000000000000001
ALICE = 1100000000000000011
CHANNEL = 1100000000000000200


def _world(n: int, pins: int) -> dict:
    base = 1350121291776000000
    msgs = [{"id": base + (i << 22), "channel_id": CHANNEL, "author_id": ALICE if i % 3 else BOT,
             "content": f"message number {i} about the tide and the ferry"} for i in range(n)]
    for p in range(pins):
        msgs.append({"id": base + ((n + p) << 22), "channel_id": CHANNEL, "author_id": ALICE, "pinned": True,
                     "content": f".config\n---\ntemperature: 0.{p + 1}\nstop_sequences: ['~{p}']"})
    return {"bot_user": {"id": BOT, "username": "wren_keeper"}, "users": [{"id": ALICE, "username": "alice"}],
            "guild": {"id": 1100000000000000100, "name": "g"},
            "channels": [{"id": CHANNEL, "name": "harbour", "topic": "---\nrecency_window: 35\n---"}],
            "messages": msgs}


async def _time(iface: Chapter2Interface, msgs: list) -> list[float]:
    out = []
    for m in msgs:
        t = time.perf_counter()
        await iface.on_message(m)
        out.append((time.perf_counter() - t) * 1000)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--pins", type=int, default=3)
    ap.add_argument("--window", type=int, default=35)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "ems" / "wren").mkdir(parents=True)
        (root / "ems" / "config.yaml").write_text("vendors:\n  openai-local:\n    provides: ['.*']\n")
        (root / "ems" / "wren" / "config.yaml").write_text(
            f"name: wren\nreply_on_random: false\nrecency_window: {args.window}\n")
        config = load(root / "ems", "wren").config
        world = MemoryWorld(_world(args.messages, args.pins))

        async def llm(_req: object) -> tuple[str, str | None]:
            return " the tide turns at nine", "stop"

        iface = Chapter2Interface(world, config, llm, InterfaceOptions(hostname="bench"))
        plain = [m for m in world.messages[CHANNEL] if m.author_id == ALICE and not m.pinned][-args.samples:]
        quiet = await _time(iface, plain)
        import dataclasses

        named = [dataclasses.replace(m, content="wren, " + m.content) for m in plain]
        for m in named:  # replace in place so history sees the triggering text
            world.messages[CHANNEL] = [m if x.id == m.id else x for x in world.messages[CHANNEL]]
        sends_before = sum(1 for a in world.actions if a["type"] == "send")
        loud = await _time(iface, named)
        sent = sum(1 for a in world.actions if a["type"] == "send") - sends_before
        assert sent == len(named), f"expected every named message to be answered, got {sent}"
    for label, xs in (("no trigger", quiet), ("name trigger + reply", loud)):
        xs.sort()
        print(f"{label:24s} p50 {statistics.median(xs):7.2f} ms   p95 {xs[int(len(xs) * 0.95)]:7.2f} ms   "
              f"({len(xs)} messages, {args.messages} in channel, {args.pins} pins, window {args.window})")


if __name__ == "__main__":
    asyncio.run(main())
