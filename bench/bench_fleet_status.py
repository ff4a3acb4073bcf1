"""How long `chapterx fleet status` takes on a host with a big trace index.

    python bench/bench_fleet_status.py [--lines 200000] [--repeat 5]

Generates a logs tree with `gen_traces.py` (six bots), a config root with those six bots plus
token files, builds the SQLite index once (timed apart: the viewer or `chapterx traces` usually
keeps it current), then times `collect()` (discover + validate + /proc scan + two
`bot_summaries` queries) warm, and the whole CLI in a fresh process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_traces import BOTS, generate_tree
from chapterx.fleet.status import StatusOptions, collect
from chapterx.trace.store import TraceStore


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        logs = base / "logs"
        t0 = time.perf_counter()
        generate_tree(logs, args.lines, files=10)
        print(f"generated {args.lines} index lines in {time.perf_counter() - t0:.1f} s")
        root = base / "config"
        (root / "bots").mkdir(parents=True)
        (base / "tokens").mkdir()
        (root / "shared.yaml").write_text("vendors:\n  anthropic:\n    config:\n      anthropic_api_key: k\n")
        for bot in BOTS:
            name = bot.replace(" ", "")
            (root / "bots" / f"{name}.yaml").write_text(f"name: {bot}\ncontinuation_model: claude-sonnet-4-5\n")
            (base / "tokens" / f"{name}_token").write_text("t\n")
        index = base / "ix.sqlite"
        t0 = time.perf_counter()
        store = TraceStore([logs], index_path=index)
        store.refresh()
        store.close()
        print(f"first index build: {time.perf_counter() - t0:.1f} s")
        opts = StatusOptions(config_roots=(root,), logs_dirs=(logs,), index_path=index)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            bots = collect(opts)
            times.append(time.perf_counter() - t0)
        print(f"collect() warm, {len(bots)} bots: median {statistics.median(times) * 1000:.0f} ms, "
              f"min {min(times) * 1000:.0f} ms")
        cli = []
        for _ in range(max(1, args.repeat // 2)):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "chapterx", "fleet", "status", "--config-root", str(root),
                            "--logs-dir", str(logs), "--index", str(index), "--json"],
                           capture_output=True, check=False)
            cli.append(time.perf_counter() - t0)
        print(f"`chapterx fleet status --json` (fresh process): median {statistics.median(cli):.2f} s")
    with open("/proc/loadavg") as fh:
        print("load average:", fh.read().strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
