"""Provider objects: one per routed adapter, each speaking its vendor's API via the official SDK."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

from chapterx.config.vendors import vendor_row
from chapterx.llm import kinds as k
from chapterx.llm.errors import NoAdaptersError
from chapterx.llm.providers.base import Provider, ProviderOptions


class Adapter(Protocol):
    """What the factory reads of a routed adapter (`chapterx.llm.k.Adapter`), without importing
    routing (routing imports this package)."""

    @property
    def kind(self) -> str: ...
    @property
    def vendor_name(self) -> str: ...
    @property
    def settings(self) -> Mapping[str, Any]: ...

__all__ = ["Provider", "ProviderOptions", "make_provider"]


def make_provider(adapter: Adapter, *, base_url_override: str | None = None,
                  options: ProviderOptions | None = None) -> Provider:
    """Build the provider for an adapter from its vendor-table row; `base_url_override` swaps scheme+host
    (tests, replay)."""
    real = str(adapter.settings.get("base_url") or "")
    base = k.override_base_url(real, base_url_override)
    common = {"base_url": base, "options": options, "vendor_name": adapter.vendor_name, "real_base_url": real}
    row = vendor_row(adapter.kind)
    if row is None or row.provider is None:
        raise NoAdaptersError(f"vendor {adapter.vendor_name}: {adapter.kind} vendors are not supported by chapterx")
    module_name, _, class_name = row.provider.partition(":")
    # imported here, not at the top: only the SDK of a vendor in use gets loaded (bench/bench_runtime.py)
    provider_class = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = provider_class(adapter.settings, **dict(row.provider_kwargs), **common)
    return provider
