"""Provider-layer overhead: body translation, and one streamed call through each official SDK to the
local FakeLLMServer (so the figure is our code + the SDK + loopback HTTP, no vendor time).

    python bench/bench_providers.py [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from chapterx.llm.fake import FakeLLMServer
from chapterx.llm.providers import ProviderOptions
from chapterx.llm.routing import Router
from chapterx.llm.types import ChatMessage, ProviderRequest

VENDORS: dict[str, Any] = {
    "anthropic": {"config": {"anthropic_api_key": "k"}},
    "openai": {"config": {"openai_api_key": "k"}},
    "openrouter": {"config": {"openrouter_api_key": "k"}},
    "gemini": {"config": {"google_api_key": "k"}},
    "bedrock": {"config": {"aws_access_key_id": "A", "aws_secret_access_key": "S", "aws_region": "us-east-1"}},
    "openaicompletion-b": {"config": {"api_base": "https://b.invalid/v1"}, "provides": ["base:*"]},
}
MODELS = ["claude-sonnet-4-5-20250929", "anthropic.claude-3-haiku-20240307-v1:0", "gpt-4o", "meta/llama-3",
          "gemini-2.5-flash", "base:llama"]
REPLY = "word " * 200  # 1000 characters, 63 deltas


def _request(model: str) -> ProviderRequest:
    # ~100,000 characters of chat context in 400 text blocks, as the pipeline benchmark's channel
    blocks = [{"type": "text", "text": f"user{i % 6}: " + "x" * 240} for i in range(400)]
    if model.startswith("base:"):
        return ProviderRequest(model=model, prompt="\n".join(b["text"] for b in blocks) + "\nAria:",
                               max_tokens=500, temperature=1, stop_sequences=["\nuser1:", "\nuser2:"])
    return ProviderRequest(model=model, messages=[ChatMessage("user", blocks)], system="You are Aria.",
                           max_tokens=500, temperature=1, stop_sequences=["\nAria:", "\nuser1:", "\nuser2:"])


async def main(runs: int) -> None:
    async with FakeLLMServer([{"text": REPLY}] * (runs * len(MODELS) + 10)) as srv:
        router = Router(VENDORS, env={}, base_url_override=srv.base_url, options=ProviderOptions())
        print("| provider | body build p50 | streamed call p50 | p90 |\n|---|---|---|---|")
        for model in MODELS:
            route = router.route(model)
            req = _request(model)
            builds, calls = [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                route.provider.build_body(req)
                builds.append(time.perf_counter() - t0)
            await route.provider.complete(req)  # warm-up (connection, imports)
            for _ in range(runs):
                t0 = time.perf_counter()
                resp = await route.provider.complete(req, on_text=lambda _t: None)
                calls.append(time.perf_counter() - t0)
                assert resp.text == REPLY
            calls.sort()
            print(f"| {route.kind} | {statistics.median(builds) * 1000:.2f} ms | "
                  f"{statistics.median(calls) * 1000:.1f} ms | {calls[int(len(calls) * 0.9)] * 1000:.1f} ms |")
        await router.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
