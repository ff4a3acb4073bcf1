"""Fixtures for the trace tests: a store over any logs tree with its index in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chapterx.trace.store import TraceStore


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default index files go to tmp, never to ~/.cache or next to the golden data."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRACE_INDEX_PATH", raising=False)
    monkeypatch.delenv("LOGS_DIRS", raising=False)
    monkeypatch.delenv("LOGS_DIR", raising=False)
    monkeypatch.delenv("TRACE_DIR", raising=False)


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., TraceStore]]:
    stores: list[TraceStore] = []

    def make(*bases: Path) -> TraceStore:
        store = TraceStore(list(bases), index_path=tmp_path / f"index-{len(stores)}.sqlite",
                           auto_refresh_interval=0.0)
        stores.append(store)
        return store

    yield make
    for s in stores:
        s.close()
