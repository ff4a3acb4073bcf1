"""Issue 11's recipe: a new vendor kind is one provider class plus one vendor-table row. A made-up kind
("acme") added only to the (monkeypatched) table is picked up by config validation, routing and the
provider factory, and its provider talks to the fake LLM server through the real OpenAI SDK."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from chapterx.config import vendors as table
from chapterx.config.validate import validate_paths
from chapterx.config.vendors import VendorRow, normalise_vendors
from chapterx.llm.errors import NoAdaptersError
from chapterx.llm.fake import FakeLLMServer
from chapterx.llm.providers import make_provider
from chapterx.llm.providers.openai_chat import OpenAIChatProvider
from chapterx.llm.routing import Router
from chapterx.llm.types import ChatMessage, ProviderRequest
from tests.config.conftest import write_tree


class AcmeProvider(OpenAIChatProvider):
    """The whole 'vendor module' of the made-up kind: an OpenAI-style API with a house keyword."""

    def __init__(self, *args: Any, house: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.house = house


ACME = VendorRow("acme", ("acme",), "acme_api_key", f"{__name__}:AcmeProvider",
                 (("flavour", "compatible"), ("house", "road-runner")), base_url="https://api.acme.invalid/v1")


@pytest.fixture
def acme_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table, "VENDOR_ROWS", (ACME, *table.VENDOR_ROWS))


def test_unknown_kind_is_rejected_without_the_row(tmp_path: Path) -> None:
    """The control: the same config without the row is an unknown vendor everywhere."""
    vendors, warnings = normalise_vendors({"vendors": {"acme-main": {"config": {"acme_api_key": "k"}}}}, env={})
    assert vendors[0].kind is None and any("unknown vendor name prefix" in w.message for w in warnings)
    router = Router({"acme-main": {"config": {"acme_api_key": "k"}}, "anthropic": {
        "config": {"anthropic_api_key": "a"}}}, env={})
    assert "acme-main" not in [a.vendor_name for a in router.adapters.values()]


def test_config_validation_accepts_the_new_kind(acme_table: None, tmp_path: Path) -> None:
    vendors, warnings = normalise_vendors(
        {"vendors": {"acme-main": {"config": {"acme_api_key": "k1"}, "provides": ["acme-*"]}},
         "providers": {"acme": {"api_key": "k2", "provides": ["wile-*"]}}}, env={})
    assert warnings == []
    assert [(v.name, v.kind) for v in vendors] == [("acme-main", "acme"), ("acme", "acme")]
    assert vendors[1].config["acme_api_key"] == "k2"  # the providers: short form uses the row's key field
    write_tree(tmp_path, {"c/shared.yaml": "vendors: {acme-main: {config: {acme_api_key: k}}}\n"})
    report = validate_paths([tmp_path / "c"])[0]
    assert report.ok and not any("unknown vendor" in w.message for w in report.warnings)


def test_routing_and_provider_pick_up_the_new_kind(acme_table: None) -> None:
    async def go() -> None:
        async with FakeLLMServer([{"text": "Beep beep."}]) as srv:
            router = Router({"acme-main": {"config": {"acme_api_key": "acme-secret"}, "provides": ["acme-*"]}},
                            env={}, base_url_override=srv.base_url)
            route = router.route("acme-rocket-1")
            assert (route.kind, route.vendor_name, route.base_url) == ("acme", "acme-main",
                                                                      "https://api.acme.invalid/v1")
            assert router.describe(["acme-rocket-1"])["adapters"][0]["class"] == "acme"
            provider = route.provider
            assert isinstance(provider, AcmeProvider) and provider.house == "road-runner"
            request = ProviderRequest(model="acme-rocket-1", max_tokens=20, temperature=1, stream=True,
                                      messages=[ChatMessage("user", [{"type": "text", "text": "hi"}])])
            result = await provider.complete(request, on_text=lambda _: None)
            await router.aclose()
            assert result.text == "Beep beep."
            sent = srv.requests[0]
            assert sent["path"] == "/v1/chat/completions" and sent["body"]["model"] == "acme-rocket-1"
            assert sent["headers"]["authorization"] == "Bearer acme-secret"
    asyncio.run(go())


def test_a_row_without_provider_keeps_the_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table, "VENDOR_ROWS", (VendorRow("acme", ("acme",), "acme_api_key"), *table.VENDOR_ROWS))
    router = Router({"acme-main": {"config": {"acme_api_key": "k"}, "provides": ["acme-*"]}}, env={})
    adapter = router.adapter_for("acme-x")
    with pytest.raises(NoAdaptersError, match="acme vendors are not supported by chapterx"):
        make_provider(adapter)
