"""`character`: retrieval-augmented character context (reference §5.1).

The last `recent_messages` context lines are embedded by an HTTP embedding server
(`POST <embed_url>/<embed_model>` with `{"input": [text]}`, answered with a `.npy` array); the
`top_k` most similar chunks of the pre-built index (`index_vectors.npy`, `index_chunks.json` under
`index_path`) are injected before the oldest message. numpy is imported only when the plugin runs
(`pip install chapterx[character]`). Any failure is one warning and no injection.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from chapterx.context.build import Injection
from chapterx.tools.base import CallContext, Plugin, js_json

_INDEX_CACHE: dict[tuple[str, float], tuple[Any, list[str]]] = {}


def _load_index(folder: Path) -> tuple[Any, list[str]]:
    import numpy as np

    vec_path = folder / "index_vectors.npy"
    key = (str(vec_path.resolve()), vec_path.stat().st_mtime)
    if key not in _INDEX_CACHE:
        vectors = np.load(vec_path, allow_pickle=False)
        chunks = json.loads((folder / "index_chunks.json").read_text(encoding="utf-8"))
        if vectors.ndim != 2 or not isinstance(chunks, list) or len(chunks) != vectors.shape[0]:
            raise ValueError(f"index in {folder} is inconsistent: {vectors.shape} vectors, "
                             f"{len(chunks) if isinstance(chunks, list) else '?'} chunks")
        _INDEX_CACHE[key] = (vectors.astype("float64"), [str(c) for c in chunks])
    return _INDEX_CACHE[key]


def top_k(query: Any, vectors: Any, k: int) -> list[int]:
    """Indices of the `k` rows most similar to `query` (rows are L2-normalised; ties keep order)."""
    import numpy as np

    q = np.asarray(query, dtype="float64").reshape(-1)
    q = q / np.linalg.norm(q)
    scores = vectors @ q
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


class CharacterPlugin(Plugin):
    name = "character"

    async def injections(self, ctx: CallContext) -> list[Injection]:
        conf = ctx.plugin_config
        if not (conf.get("index_path") and conf.get("embed_url") and conf.get("embed_model")):
            return []
        lines: list[str] = list(ctx.extra.get("recent_lines") or [])
        if not lines:
            return []
        client = ctx.http_client()
        try:
            import numpy as np

            folder = Path(str(conf["index_path"]))
            if not folder.is_absolute() and ctx.base_dir is not None:
                folder = Path(ctx.base_dir) / folder
            vectors, chunks = _load_index(folder)
            query = "\n".join(lines[-int(conf.get("recent_messages") or 7):])
            if client is None:
                raise RuntimeError("no HTTP client")
            resp = await client.post(f"{conf['embed_url']}/{conf['embed_model']}",
                                     content=js_json({"input": [query]}).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
            if resp.status_code >= 400:
                raise RuntimeError(f"Embed server error: {resp.status_code} {resp.text}")
            qvec = np.load(io.BytesIO(resp.content), allow_pickle=False)
            picked = top_k(qvec, vectors, int(conf.get("top_k") or 20))
        except Exception as exc:  # noqa: BLE001 - retrieval is best effort; the activation goes on
            detail = f"Error: {exc}" if not isinstance(exc, ImportError) else f"numpy is not installed ({exc})"
            ctx.warn(f"console.warn: [character plugin] RAG query failed: {detail}")
            return []
        separator = str(conf.get("separator") or "###")
        return [Injection(f"\n{separator}\n".join(chunks[i] for i in picked), -1, 50, False)]


PLUGIN = CharacterPlugin()
