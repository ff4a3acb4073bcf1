"""Generate a large ChapterX-format logs tree for benchmarks (reused by the viewer benchmark).

    python bench/gen_traces.py OUT_LOGS_DIR --lines 1000000 [--files 2000] [--context 200]

Writes `OUT/traces/index.jsonl` with N upstream-shaped index lines (plus our `contextPositions`,
`status`, `cost`, `model` extensions unless `--upstream-only`), and real trace files (with request
and response bodies) for the newest `--files` of them, so detail and body lookups have something
to open. Messages are numbered per channel; each trace's context is the last `--context` messages
of its channel, so every message id appears as trigger once, in ~`context` traces as context, and
as sent once: the same fan-out as a real deployment. Portal-style bots use relay ids
`rm_<container>_<snowflake>`. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BOTS = ("AlphaBot", "Beta Bot", "Gamma", "Delta Bot", "Epsilon", "Zeta")
RELAY_BOTS = {"Beta Bot", "Delta Bot"}
REASONS = ("mention", "mention", "mention", "reply", "reply", "random", "m_command", "reaction", "timer")
EPOCH_MS = 1_420_070_400_000


@dataclass
class GeneratedTree:
    logs_dir: Path
    lines: int
    bots: list[str]
    channels: list[str]
    sample_message_ids: list[str] = field(default_factory=list)  # bare snowflakes that are in the index
    trace_ids_with_files: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _snowflake(ms: int, seq: int) -> str:
    return str(((ms - EPOCH_MS) << 22) | (seq & 0x3FFFFF))


def _iso(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def generate_tree(logs_dir: Path, lines: int, *, files: int = 1000, context: int = 200, channels: int = 40,
                  seed: int = 7, start: str = "2026-01-01T00:00:00Z", interval_ms: int = 5000,
                  upstream_only: bool = False, samples: int = 2000) -> GeneratedTree:
    """Write the tree and return what a benchmark needs to query it."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    tdir = logs_dir / "traces"
    tdir.mkdir(parents=True, exist_ok=True)
    channel_ids = [str(1_200_000_000_000_000_000 + i * 7919) for i in range(channels)]
    names = {cid: f"chan-{i}" for i, cid in enumerate(channel_ids)}
    history: dict[str, list[str]] = {cid: [] for cid in channel_ids}
    start_ms = int(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1000)
    tree = GeneratedTree(logs_dir, lines, list(BOTS), channel_ids)
    first_file_line = lines - files
    sample_every = max(1, lines // max(1, samples))
    seq = 0
    with open(tdir / "index.jsonl", "w", encoding="utf-8") as out:
        buf: list[str] = []
        for n in range(lines):
            ms = start_ms + n * interval_ms + rng.randrange(interval_ms)
            cid = channel_ids[rng.randrange(channels)]
            bot = BOTS[rng.randrange(len(BOTS))]
            hist = history[cid]
            for _ in range(1 + rng.randrange(3)):  # people talk between activations
                seq += 1
                hist.append(_snowflake(ms - 1000, seq))
            if len(hist) > context:
                del hist[: len(hist) - context]
            trigger = hist[-1]
            seq += 1
            sent = _snowflake(ms + 2000, seq)

            def rid(sf: str, bot: str = bot) -> str:
                return f"rm_hollow7_{sf}" if bot in RELAY_BOTS else sf

            ok = rng.random() > 0.03
            trace_id = f"{ms:012x}{n & 0xFFFF:04x}{rng.getrandbits(64):016x}"
            ts = _iso(ms)
            filename = f"{cid}-{trace_id}-{ts.replace(':', '-').replace('.', '-')}.json"
            tokens_in, tokens_out = 800 + rng.randrange(4000), 20 + rng.randrange(400)
            entry: dict[str, Any] = {
                "traceId": trace_id, "timestamp": ts, "channelId": cid, "triggeringMessageId": rid(trigger),
                "botName": bot, "channelName": names[cid], "activationReason": REASONS[n % len(REASONS)],
                "triggerPreview": f"<@{bot}> message {n} about moths and rovers",
                "isThread": False, "success": ok, "durationMs": 800 + rng.randrange(9000),
                "llmCallCount": 1, "toolExecutionCount": 0, "totalTokens": tokens_in + tokens_out,
                "contextMessageIds": [rid(m) for m in hist], "sentMessageIds": [rid(sent)] if ok else [],
                "filename": filename,
            }
            if ok:
                entry["responsePreview"] = f"reply {n}: the answer is {rng.randrange(1000)}"
            if not upstream_only:
                entry["status"] = "success" if ok else "failed"
                entry["model"] = "claude-sonnet-4-5-20250929"
                entry["cost"] = round((tokens_in * 3 + tokens_out * 15) / 1e6, 8)
                entry["contextPositions"] = list(range(len(hist)))
                entry["framework"] = "chapterx"
                entry["inputTokens"], entry["outputTokens"] = tokens_in, tokens_out
            buf.append(json.dumps(entry, separators=(",", ":")))
            if n % sample_every == 0:
                tree.sample_message_ids.append(hist[len(hist) // 2])
            if n >= first_file_line:
                _write_trace_file(logs_dir, entry, bot, trigger, hist, tokens_in, tokens_out)
                tree.trace_ids_with_files.append(trace_id)
            if len(buf) >= 5000:
                out.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            out.write("\n".join(buf) + "\n")
    for bot in BOTS:  # every bot has a folder, even without files
        (tdir / bot).mkdir(exist_ok=True)
    tree.seconds = time.perf_counter() - t0
    return tree


def _write_trace_file(logs_dir: Path, entry: dict[str, Any], bot: str, trigger: str, hist: list[str],
                      tokens_in: int, tokens_out: int) -> None:
    tid = entry["traceId"]
    req, res = f"request-{tid}-0.json", f"response-{tid}-0.json"
    trace = {
        "traceId": tid, "timestamp": entry["timestamp"], "channelId": entry["channelId"],
        "triggeringMessageId": entry["triggeringMessageId"], "botId": bot,
        "activation": {"reason": entry["activationReason"], "triggerEvents": [
            {"type": "message", "messageId": entry["triggeringMessageId"], "contentPreview": entry["triggerPreview"]}]},
        "contextBuild": {"messagesConsidered": len(hist), "messagesIncluded": len(hist), "messages": [
            {"position": i, "discordMessageId": m, "participant": "user", "contentPreview": "…", "contentLength": 1,
             "tokenEstimate": 1, "transformations": [], "isTrigger": i == len(hist) - 1, "hasImages": False,
             "imageCount": 0, "hasCacheControl": False} for i, m in enumerate(entry["contextMessageIds"])]},
        "llmCalls": [{"callId": f"{tid}-llm-0", "depth": 0, "startedAt": entry["timestamp"], "durationMs": 900,
                      "model": "claude-sonnet-4-5-20250929",
                      "request": {"messageCount": len(hist), "systemPromptLength": 100, "hasTools": False, "toolCount": 0},
                      "requestBodyRef": req, "requestBodyRefs": [req], "responseBodyRef": res, "responseBodyRefs": [res],
                      "response": {"stopReason": "end_turn", "contentBlocks": 1, "textLength": 20, "toolUseCount": 0},
                      "tokenUsage": {"inputTokens": tokens_in, "outputTokens": tokens_out}}],
        "toolExecutions": [], "logs": [], "durationMs": entry["durationMs"],
    }
    if entry["success"]:
        trace["outcome"] = {"success": True, "responseText": entry.get("responsePreview", ""),
                            "responseLength": 20, "sentMessageIds": entry["sentMessageIds"], "messagesSent": 1,
                            "maxToolDepth": 1, "hitMaxToolDepth": False, "stateUpdates": {}}
    bdir = logs_dir / "traces" / bot
    bdir.mkdir(parents=True, exist_ok=True)
    (bdir / entry["filename"]).write_text(json.dumps(trace, indent=2))
    for folder, name, body in (("llm-requests", req, {"model": "claude-sonnet-4-5-20250929", "messages": []}),
                               ("llm-responses", res, {"content": [{"type": "text", "text": "ok"}]})):
        (logs_dir / folder).mkdir(exist_ok=True)
        (logs_dir / folder / name).write_text(json.dumps(body, indent=2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("logs_dir", type=Path)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--context", type=int, default=200,
                    help="context ids per line (200: the size real activations write, ~5 KB a line)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--upstream-only", action="store_true", help="only upstream index fields")
    args = ap.parse_args(argv)
    tree = generate_tree(args.logs_dir, args.lines, files=args.files, context=args.context, seed=args.seed,
                         upstream_only=args.upstream_only)
    size = (args.logs_dir / "traces" / "index.jsonl").stat().st_size
    print(f"wrote {tree.lines} index lines ({size / 1e6:.0f} MB) and {len(tree.trace_ids_with_files)} trace files "
          f"in {tree.seconds:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
