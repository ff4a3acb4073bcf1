"""Vendors: `vendors:` (upstream) and `providers:` (deployment-guide short form) as one list.

The vendor NAME PREFIX decides the adapter kind (reference section 5.3); `provides` entries are
anchored, case-sensitive globs where only `*` is special (and `?` keeps upstream's regex meaning).
This module only describes vendors; the providers area builds adapters and routes from them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chapterx.config.report import Problem


@dataclass(frozen=True)
class VendorRow:
    """One vendor kind: the name prefixes that select it, where its API key lives in the `providers:`
    short form, and its provider as an import string (imported lazily, so only the SDK of a vendor in
    use is loaded) with constructor keywords. Special kinds also have a builder in
    `chapterx/llm/routing.py`; any other kind is routed by the generic builder from this row alone."""

    kind: str
    prefixes: tuple[str, ...] = ()
    api_key_field: str | None = None
    provider: str | None = None  # "package.module:Class"; None = the kind is recognised but unsupported
    provider_kwargs: tuple[tuple[str, Any], ...] = ()
    base_url: str | None = None  # default base URL for the generic routing builder
    adapter_class: str | None = None  # upstream adapter class name (config-resolution vectors)


# The vendor table. Row order is the prefix test order (upstream's: "openai..." last, refined by base URL).
VENDOR_ROWS: tuple[VendorRow, ...] = (
    VendorRow("anthropic", ("anthropic",), "anthropic_api_key",
              "chapterx.llm.providers.anthropic:AnthropicProvider", adapter_class="AnthropicAdapter"),
    VendorRow("bedrock", ("bedrock",), None,
              "chapterx.llm.providers.anthropic:BedrockProvider", adapter_class="BedrockAdapter"),
    VendorRow("gemini", ("gemini",), "google_api_key",
              "chapterx.llm.providers.gemini:GeminiProvider", adapter_class="GeminiAdapter"),
    VendorRow("openrouter", ("openrouter",), "openrouter_api_key",
              "chapterx.llm.providers.openai_chat:OpenAIChatProvider", (("flavour", "openrouter"),),
              adapter_class="OpenRouterAdapter"),
    VendorRow("openai-responses", ("openairesponses",), "openai_api_key", None,
              adapter_class="OpenAIResponsesAdapter"),
    VendorRow("openai-completions", ("openaicompletion",), "openai_api_key",
              "chapterx.llm.providers.openai_chat:CompletionsProvider", adapter_class="OpenAICompletionsAdapter"),
    VendorRow("openai", ("openai",), "openai_api_key",
              "chapterx.llm.providers.openai_chat:OpenAIChatProvider", (("flavour", "openai"),),
              adapter_class="OpenAIAdapter"),
    VendorRow("openai-compatible", (), "openai_api_key",
              "chapterx.llm.providers.openai_chat:OpenAIChatProvider", (("flavour", "compatible"),),
              adapter_class="OpenAICompatibleAdapter"),
)


def vendor_rows() -> tuple[VendorRow, ...]:
    """The table as it is now (read at call time, so a test may monkeypatch `VENDOR_ROWS`)."""
    return VENDOR_ROWS


def vendor_row(kind: str | None) -> VendorRow | None:
    return next((r for r in VENDOR_ROWS if r.kind == kind), None)


def _prefixes() -> tuple[tuple[str, str], ...]:
    """(name prefix, kind) in table order: the first matching prefix wins."""
    return tuple((p, r.kind) for r in VENDOR_ROWS for p in r.prefixes)


def _api_key_field() -> dict[str, str]:
    """`providers:` short form: kind -> the key name its `api_key` is copied to."""
    return {r.kind: r.api_key_field for r in VENDOR_ROWS if r.api_key_field}


def _prefix_list() -> str:
    return ", ".join(f"{p}*" for p, _ in _prefixes())


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class VendorConfig:
    """One vendor: name, adapter kind (None = unknown prefix, skipped), flat config, globs."""

    name: str
    kind: str | None
    config: dict[str, Any] = field(default_factory=dict)
    provides: list[str] = field(default_factory=list)
    formatter: str | None = None
    completions_config: dict[str, Any] | None = None
    source: str = "vendors"  # "vendors" or "providers"

    def base_url(self) -> str | None:
        c = self.config
        if self.kind == "openai-compatible" and not self.name.startswith("openai"):
            v = c.get("openai_compatible_base_url")
        else:
            v = c.get("api_base") or c.get("openai_compatible_base_url") or c.get("openai_completions_base_url")
        return str(v) if v else None

    def matches(self, model: str) -> bool:
        return any(glob_matches(p, model) for p in self.provides)


def vendor_kind(name: str, config: Mapping[str, Any]) -> str | None:
    """Adapter kind for a vendor name (first matching prefix wins)."""
    for prefix, kind in _prefixes():
        if name.startswith(prefix):
            if kind == "openai":
                base = config.get("api_base") or config.get("openai_compatible_base_url") or config.get(
                    "openai_completions_base_url")
                if base and "api.openai.com" not in str(base):
                    return "openai-compatible"
            return kind
    if config.get("openai_compatible_base_url"):
        return "openai-compatible"
    return None


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """ChapterX `provides` semantics: `*` is the only wildcard, anchored, case-sensitive.

    Upstream escaped only `. + ^ $ { } ( ) | [ ] \\`, so `?` acted as a regex quantifier; here it is
    literal, like every character but `*` (docs/differences.md). The one matcher for config, routing
    and migrate.
    """
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def glob_matches(pattern: str, model: str) -> bool:
    return glob_to_regex(pattern).match(model) is not None


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    """`${VAR}` in a string value is replaced by the environment variable (empty when unset)."""
    if isinstance(value, str) and "${" in value:
        return _ENV_REF.sub(lambda m: env.get(m.group(1), ""), value)
    return value


def normalise_vendors(shared: Mapping[str, Any], env: Mapping[str, str] | None = None,
                      source: str = "shared.yaml") -> tuple[list[VendorConfig], list[Problem]]:
    """Vendors from a shared mapping (`vendors:` first, then `providers:`), plus warnings."""
    e = os.environ if env is None else env
    out: list[VendorConfig] = []
    warnings: list[Problem] = []
    vendors = shared.get("vendors")
    if isinstance(vendors, Mapping):
        for name, entry in vendors.items():
            entry = entry if isinstance(entry, Mapping) else {}
            cfg = {k: _expand(v, e) for k, v in (entry.get("config") or {}).items()}
            cfg = {k: v for k, v in cfg.items() if v not in (None, "")} | {
                k: v for k, v in cfg.items() if k == "eot_token" and v == ""}
            kind = vendor_kind(str(name), cfg)
            if kind is None:
                warnings.append(Problem(
                    f"vendors.{name}: unknown vendor name prefix (use {_prefix_list()}, "
                    "or set openai_compatible_base_url); skipped",
                    f"vendors.{name}"))
            out.append(VendorConfig(
                name=str(name), kind=kind, config=cfg, provides=[str(p) for p in entry.get("provides") or []],
                formatter=entry.get("formatter"), completions_config=entry.get("completions_config"),
                source="vendors"))
    providers = shared.get("providers")
    if isinstance(providers, Mapping):
        taken = {v.name for v in out}
        for name, entry in providers.items():
            entry = entry if isinstance(entry, Mapping) else {}
            if str(name) in taken:
                warnings.append(Problem(f"providers.{name}: also defined under vendors; the vendors entry wins",
                                        f"providers.{name}"))
                continue
            raw = {k: _expand(v, e) for k, v in entry.items() if k not in ("provides", "formatter")}
            raw = {k: v for k, v in raw.items() if v not in (None, "")}
            kind = vendor_kind(str(name), raw)
            cfg = dict(raw)
            key_field = _api_key_field().get(kind) if kind else None
            if key_field and "api_key" in cfg:
                cfg.setdefault(key_field, cfg["api_key"])
            if kind is None:
                warnings.append(Problem(
                    f"providers.{name}: unknown provider name (use {_prefix_list()}, "
                    "or an openai-compatible name with openai_compatible_base_url); skipped", f"providers.{name}"))
            out.append(VendorConfig(
                name=str(name), kind=kind, config=cfg, provides=[str(p) for p in entry.get("provides") or []],
                formatter=entry.get("formatter"), source="providers"))
    return out, warnings
