"""The exa_search faculty over HTTP: a local fake Exa answers `POST /search`; the prompt and the search
requests match prompt-assembly.json's exa cases."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from chapterx.replays.chapter2_runtime import HOST, NOW
from chapterx_compat.chapter2.formats.messages import Message
from chapterx_compat.chapter2.load import load
from chapterx_compat.chapter2.runtime.faculties import ExaClient, dehumanize, faculty_items_from, prefetch
from chapterx_compat.chapter2.runtime.llm import build_request
from tests.conftest import shared_path
from tests.fakes.local_http import local_app


def _case(case_id: str) -> dict[str, Any]:
    data = json.loads(shared_path("golden", "chapter2", "prompt-assembly.json").read_text())
    return next(c for c in data["cases"] if c["id"] == case_id)


class FakeExa:
    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str | None] = []

    async def search(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        self.keys.append(request.headers.get("x-api-key"))
        hits = [{"url": r["url"], "score": r.get("score"), "publishedDate": r.get("published_date"),
                 "highlights": r.get("highlights")} for r in self.results[: body["numResults"]]]
        return web.json_response({"results": hits})


async def _run(case: dict[str, Any], tmp: Path) -> tuple[str, FakeExa, ExaClient]:
    for rel, text in case["input"]["files"].items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text)
    em = load(tmp / "ems", case["input"]["em"]).config.em
    history = [Message.from_dict(m) for m in case["input"]["history_newest_first"]]
    fake = FakeExa(case["input"].get("exa_results") or [])
    app = web.Application()
    app.router.add_post("/search", fake.search)
    async with local_app(app) as port:
        client = ExaClient(em.exa_search_api_key, base_url=f"http://127.0.0.1:{port}")
        items = faculty_items_from(await prefetch(em, history, exa=client, now=NOW))
        request = build_request(em, history, now=NOW, hostname=HOST, faculty_items=items)
    return request.prompt, fake, client


@pytest.mark.parametrize("case_id", ["exa-search-faculty", "exa-then-character"])
def test_exa_faculty_over_http(case_id: str, tmp_path: Path) -> None:
    case = _case(case_id)
    prompt, fake, client = asyncio.run(_run(case, tmp_path))
    assert prompt == case["expected"]["prompt"]
    want = case["expected"]["exa_requests"]
    got = [{"query": r.query, "use_autoprompt": r.use_autoprompt, "include_domains": r.include_domains,
            "exclude_domains": r.exclude_domains,
            "highlights": {"highlights_per_url": r.highlights_per_url, "num_sentences": r.num_sentences},
            "start_crawl_date": r.start_crawl_date, "end_crawl_date": r.end_crawl_date,
            "start_published_date": r.start_published_date, "end_published_date": r.end_published_date,
            "num_results": r.num_results} for r in client.requests]
    assert got == want
    assert [b["numResults"] for b in fake.bodies] == [w["num_results"] for w in want]
    assert fake.keys == ["exa-PLACEHOLDER"] * len(want)


def test_dehumanize() -> None:
    assert str(dehumanize("365 days ago", NOW.astimezone())).startswith("2024-03-1")
    assert dehumanize("2024-01-01", NOW) == "2024-01-01"
    assert dehumanize(None, NOW) is None
