"""Benchmark: `chapterx migrate` on a generated 200-em chapter2 deployment (target: under 5 s).

Usage: python bench/bench_migrate.py [--ems 200] [--repeat 3]
Generates a deployment in a temporary folder (shared config with vendors, per-em config with
ensembles and interface keys, key-files, a token and a small .chr corpus per em), then times the
whole in-process command (load, validate, translate, write, rename) and a --dry-run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chapterx.cli import main  # noqa: E402

SHARED = """vendors:
  openai-lan:
    config: {openai_api_key: sk-BENCH, api_base: "http://127.0.0.1:9/v1"}
    provides: ["meta-llama/.*", "mistral-(7b|8x7b)"]
  anthropic:
    config: {anthropic_api_key: sk-ant-BENCH}
    provides: ["claude-.*"]
reply_on_random: 60
stop_sequences: ["###"]
"""

EM = """continuation_model: {model}
continuation-max-tokens: {tokens}
prompt_max_tokens: 24_000
recency_window: {window}
temperature: 0.{temp}
message_history_format: {{name: {fmt}}}
message_history_header: "Log of em {i}, {{now:%Y-%m-%d}}\\n"
nicknames: [em{i}, bot{i}]
may_speak: [em{i}]
ensembles:
  - faculty: character
    ensemble_format:
      - format: {{name: irc}}
        header: "Notes of em {i}.\\n###\\n"
        operator: prepend
      - format: {{name: irc}}
        separator: ""
        footer: ""
  - faculty: exa_search
    include_domains: [example.org]
"""


def generate(root: Path, count: int) -> Path:
    ems = root / "ems"
    ems.mkdir()
    (ems / "config.yaml").write_text(SHARED)
    for i in range(count):
        name = f"em{i:03d}"
        d = ems / name
        (d / f"{name}.chr").mkdir(parents=True)
        model = "claude-3-5-sonnet-20240620" if i % 3 == 0 else "meta-llama/Llama-3.1-70B"
        (d / "config.yaml").write_text(
            EM.format(model=model, tokens=100 + i, window=20 + i % 30, temp=i % 10,
                      fmt="colon" if i % 2 else "irc", i=i)
        )
        (d / "discord_token").write_text(f"MTIz.BENCH.not-a-real-token-{i}\n")
        (d / "name").write_text(f"Em {i}\n")
        (d / f"{name}.chr" / "notes.txt").write_text("\n".join(f"<{name}> line {j}" for j in range(50)) + "\n")
    return ems


def run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    rc = main(argv)
    elapsed = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"migrate failed with exit code {rc}")
    return elapsed


def main_bench() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ems", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        ems = generate(root, args.ems)
        gen = time.perf_counter() - t0
        real, dry = [], []
        for r in range(args.repeat):
            real.append(run(["migrate", str(ems), "--out", str(root / f"out{r}"), "--json"]))
            dry.append(run(["migrate", str(ems), "--dry-run", "--json"]))
        files = sum(1 for p in (root / "out0").rglob("*") if p.is_file())
    print(f"generated {args.ems} ems in {gen:.2f} s", file=sys.stderr)
    print(f"migrate  --out   : median {statistics.median(real):.2f} s, min {min(real):.2f} s "
          f"({files} files written)", file=sys.stderr)
    print(f"migrate --dry-run: median {statistics.median(dry):.2f} s, min {min(dry):.2f} s", file=sys.stderr)
    print(f"target < 5 s: {'OK' if statistics.median(real) < 5 else 'MISSED'}", file=sys.stderr)


if __name__ == "__main__":
    main_bench()
