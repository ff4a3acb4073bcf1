"""The HTTP client tool plugins use (`upload` downloads, `character` embeddings, `share-image`).

One `httpx.AsyncClient` per `ToolSystem`; tests and replays hand in a client whose transport
answers from recorded files. Downloads are capped so a huge file never fills memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

MAX_DOWNLOAD = 25 * 1024 * 1024


@dataclass
class Download:
    status: int
    reason: str
    content_type: str
    data: bytes
    too_large: bool = False


async def download(client: httpx.AsyncClient, url: str, *, limit: int = MAX_DOWNLOAD) -> Download:
    """GET `url`, reading at most `limit` bytes (`too_large` when there was more)."""
    async with client.stream("GET", url, follow_redirects=True) as resp:
        chunks: list[bytes] = []
        size = 0
        too_large = False
        if resp.is_success:
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    too_large = True
                    break
                chunks.append(chunk)
        return Download(resp.status_code, resp.reason_phrase, resp.headers.get("content-type", ""),
                        b"".join(chunks), too_large)
