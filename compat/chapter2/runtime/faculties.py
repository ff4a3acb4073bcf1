"""Faculties whose items come from outside the em folder: `exa_search` (Exa's HTTP search API).

`prefetch` runs before prompt assembly (which is pure and synchronous) and returns the items of each
non-character faculty in config order; `faculty_items_from` hands them to `build_prompt`. Requests
start at `impl_hint_initial_num_results` and grow by 10 up to `max_results`, as chapter2's generator
does when the prompt asks for more; results are de-duplicated by URL and `ignored_urls` are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chapterx_compat.chapter2 import models as m
from chapterx_compat.chapter2.formats.generation import exa_query, exa_results_to_messages
from chapterx_compat.chapter2.formats.messages import Message

EXA_BASE = "https://api.exa.ai"
REHEARSAL_KEY = "sk-rehearsal"
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400,
          "year": 365 * 86400}


def dehumanize(value: str | None, now: datetime) -> str | None:
    """`"365 days ago"` → an ISO date (chapter2 uses arrow's dehumanize); other text is passed as given."""
    if not value:
        return None
    hit = re.fullmatch(r"\s*(\d+)\s+(second|minute|hour|day|week|month|year)s?\s+ago\s*", value)
    if hit is None:
        return value
    when = now.astimezone(UTC) - timedelta(seconds=int(hit.group(1)) * _UNITS[hit.group(2)])
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class ExaRequest:
    """What chapter2 asks Exa (the vectors' `exa_requests` shape)."""

    query: str
    num_results: int
    use_autoprompt: bool
    include_domains: list[str] | None
    exclude_domains: list[str] | None
    highlights_per_url: int
    num_sentences: int
    start_crawl_date: str | None
    end_crawl_date: str | None
    start_published_date: str | None
    end_published_date: str | None

    def body(self) -> dict[str, Any]:
        """The JSON body of `POST /search` (Exa's API field names)."""
        out: dict[str, Any] = {"query": self.query, "numResults": self.num_results,
                               "useAutoprompt": self.use_autoprompt,
                               "contents": {"highlights": {"highlightsPerUrl": self.highlights_per_url,
                                                           "numSentences": self.num_sentences}}}
        for key, value in (("includeDomains", self.include_domains), ("excludeDomains", self.exclude_domains),
                           ("startCrawlDate", self.start_crawl_date), ("endCrawlDate", self.end_crawl_date),
                           ("startPublishedDate", self.start_published_date),
                           ("endPublishedDate", self.end_published_date)):
            if value is not None:
                out[key] = value
        return out


class ExaClient:
    """Exa's `/search` over aiohttp (`base_url` is a local fake in tests)."""

    def __init__(self, api_key: str | None, *, base_url: str = EXA_BASE, timeout: float = 30.0) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.requests: list[ExaRequest] = []

    async def search(self, request: ExaRequest) -> list[dict[str, Any]]:
        import aiohttp

        self.requests.append(request)
        headers = {"x-api-key": self.api_key or "", "content-type": "application/json"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http, \
                http.post(self.base_url + "/search", json=request.body(), headers=headers) as resp:
            if resp.status >= 400:
                raise RuntimeError(f"Exa search failed: HTTP {resp.status}")
            data = await resp.json(content_type=None)
        results = data.get("results") if isinstance(data, Mapping) else None
        out = []
        for r in results if isinstance(results, list) else []:
            if isinstance(r, Mapping) and r.get("url"):
                out.append({"url": str(r["url"]), "highlights": list(r.get("highlights") or []),
                            "published_date": r.get("publishedDate") or r.get("published_date")})
        return out


async def exa_items(faculty: m.ExaSearchFacultyConfig, history_newest_first: Sequence[Message], em_name: str,
                    client: ExaClient, now: datetime) -> list[Message]:
    if client.api_key == REHEARSAL_KEY:
        return []
    query = exa_query(list(history_newest_first)[::-1], em_name, faculty.input_format.model_dump(),
                      attention=int(faculty.recent_message_attention))
    seen: set[str] = set()
    found: list[dict[str, Any]] = []
    n = faculty.impl_hint_initial_num_results
    while n <= faculty.max_results:
        results = await client.search(ExaRequest(
            query, n, faculty.use_autoprompt, faculty.include_domains, faculty.exclude_domains,
            faculty.output.highlights_per_url, faculty.output.sentences_per_highlight,
            dehumanize(faculty.start_crawl_date, now), dehumanize(faculty.end_crawl_date, now),
            dehumanize(faculty.start_published_date, now), dehumanize(faculty.end_published_date, now)))
        for r in results:
            if r["url"] not in seen and r["url"] not in faculty.ignored_urls:
                seen.add(r["url"])
                found.append(r)
        n += 10
    return exa_results_to_messages(found)


async def prefetch(em: m.EmConfig, history_newest_first: Sequence[Message], *, exa: ExaClient | None,
                   now: datetime) -> list[list[Message] | None]:
    """Items of each non-character faculty, in config order (None: no source, the faculty is skipped)."""
    out: list[list[Message] | None] = []
    for faculty in em.ensembles:
        if isinstance(faculty, m.CharacterFacultyConfig):
            continue
        if isinstance(faculty, m.ExaSearchFacultyConfig) and exa is not None:
            out.append(await exa_items(faculty, history_newest_first, em.name, exa, now))
        else:
            out.append(None)
    return out


def faculty_items_from(prefetched: list[list[Message] | None]) -> Any:
    """A `build_prompt` faculty callback that hands out the prefetched items in config order."""
    queue = list(prefetched)

    def items(_faculty: dict[str, Any], _newest_first: list[Message]) -> list[Message] | None:
        return queue.pop(0) if queue else None

    return items
