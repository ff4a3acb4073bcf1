"""The character faculty over `.chr` texts: corpus loading, chunking, representations, retrieval query.

chapter2 ranks chunks with an embedding index (faiss KNN or SVM over the external `embed_server`). That
part needs a model and a server, so it is a pluggable `Ranker`; the default `lexical_ranker` is
deterministic (chunks sharing more distinct words with the query first; the stand-in the chapter2 golden
vectors were generated with). Everything else here is chapter2's behaviour (chapter2.md §3.2.3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from chapterx_compat.chapter2.formats.formats import ColonMessageFormat, MessageFormat
from chapterx_compat.chapter2.formats.messages import Message

# (query, representations) -> indices of representations, best first.
Ranker = Callable[[str, Sequence[str]], list[int]]
MAX_RESULTS = 1000
_WORD_RE = re.compile(r"\w+")
_COLON = ColonMessageFormat()


def lexical_ranker(query: str, representations: Sequence[str]) -> list[int]:
    """Best first by the number of distinct lower-cased words shared with the query, then by text."""
    q = set(_WORD_RE.findall(query.lower()))
    scored = [(-len(q & set(_WORD_RE.findall(rep.lower()))), rep, i) for i, rep in enumerate(representations)]
    return [i for _, _, i in sorted(scored)]


def _split_metadata(text: str) -> tuple[dict[str, object], str]:
    """A leading `%%%` YAML block (ended by a `%%%` line) holds per-file options such as `chunking`."""
    if not text.lstrip().startswith("%%%"):
        return {}, text
    body = text.lstrip()[3:]
    meta_text, sep, rest = body.partition("\n%%%\n")
    if not sep:
        return {}, text
    try:
        meta = YAML(typ="safe").load(meta_text) or {}
    except YAMLError:
        meta = {}
    return (dict(meta) if isinstance(meta, dict) else {}), rest


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def chunk_file(text: str, chunk_size: int = 3) -> list[str]:
    """One `.chr` file → chunks of text.

    With `---` section lines, each section is cut into groups of `chunk_size` lines (or kept whole when
    the metadata says `chunking: false`); otherwise every distinct non-blank line is a chunk.
    """
    meta, contents = _split_metadata(text)
    if "\n---\n" in text:
        sections = _unique(contents.split("\n---\n"))
        if meta.get("chunking") is False:
            return sections
        chunks: list[str] = []
        for section in sections:
            lines = [line for line in section.splitlines() if line.strip()]
            size = max(1, chunk_size)
            chunks.extend("\n".join(lines[i : i + size]) for i in range(0, len(lines), size))
        return _unique(chunks)
    return _unique([line for line in contents.splitlines() if line.strip() and line != "---"])


def load_corpus(folder: Path, chunk_size: int = 3) -> list[str]:
    """All chunks of `<folder>/*.txt`, files in name order (chapter2 uses directory order)."""
    chunks: list[str] = []
    if not folder.is_dir():
        return chunks
    for path in sorted(folder.glob("*.txt")):
        chunks.extend(chunk_file(path.read_text(encoding="utf-8"), chunk_size))
    return chunks


def representation(messages: Sequence[Message]) -> str:
    """The text a chunk is indexed by: each message's colon rendering, stripped, each followed by a space."""
    return "".join(_COLON.render(m).strip() + " " for m in messages)


def retrieval_query(history_newest_first: Sequence[Message], attention: float) -> str:
    """The colon rendering of the last `attention` messages, oldest first, newlines as spaces."""
    count = len(history_newest_first) if attention == float("inf") else max(0, int(attention))
    recent = list(history_newest_first[:count])[::-1]
    return "".join(_COLON.render(m) for m in recent).replace("\n", " ")


def character_chunks(
    corpus: Path,
    input_format: MessageFormat,
    history_newest_first: Sequence[Message],
    *,
    chunk_size: int = 3,
    attention: float = 7,
    ranker: Ranker = lexical_ranker,
) -> tuple[list[list[Message]], str, list[str]]:
    """The faculty's items (each a chunk's messages), best first; also the query and the ranking used."""
    reps: list[str] = []
    parsed: list[list[Message]] = []
    seen: set[str] = set()
    for chunk in load_corpus(corpus, chunk_size):
        messages = input_format.parse(chunk)
        rep = representation(messages)
        if rep == "" or rep in seen:
            continue
        seen.add(rep)
        reps.append(rep)
        parsed.append(messages)
    query = retrieval_query(history_newest_first, attention)
    order = ranker(query, reps)[:MAX_RESULTS]
    return [parsed[i] for i in order], query, [reps[i] for i in order]
