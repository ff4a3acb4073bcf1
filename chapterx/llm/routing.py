"""Vendor routing: which configured vendor (and so which provider) serves a model name.

ChapterX semantics (the default): the vendor *name prefix* picks the kind of provider, `provides`
entries are anchored, case-sensitive globs, and a fixed sequence of pattern routes and name
heuristics decides (config reference section 5.3-5.7). chapter2 semantics (an em run in place):
`provides` are Python regexes tested with `re.fullmatch` in mapping order (chapter2 reference 4.2).

Deliberate difference: upstream's last resort hands any unknown model to an OpenAI-compatible or
completions vendor that did not list it. We only do that for such a vendor with no `provides` at
all; otherwise an unknown model is a `NoVendorError` naming the model and the vendors tried.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chapterx.config.vendors import VendorRow, glob_matches, vendor_kind, vendor_row, vendor_rows
from chapterx.llm.errors import NoAdaptersError, NoVendorError
from chapterx.llm.kinds import (  # noqa: F401 - re-exported: routing.ANTHROPIC etc. are used by callers
    ANTHROPIC,
    BEDROCK,
    GEMINI,
    OPENAI,
    OPENAI_COMPATIBLE,
    OPENAI_COMPLETIONS,
    OPENAI_RESPONSES,
    OPENROUTER,
    override_base_url,
)
from chapterx.llm.providers import make_provider

if TYPE_CHECKING:
    from chapterx.llm.providers.base import Provider, ProviderOptions

ANTHROPIC_BASE = "https://api.anthropic.com"
OPENAI_BASE = "https://api.openai.com/v1"
OPENROUTER_BASE = "https://openrouter.ai/api/v1"
GEMINI_BASE = "https://generativelanguage.googleapis.com/v1beta"
DEFAULT_EOT = "<|eot|>"

UNKNOWN_PREFIX_WARNING = "Unknown vendor prefix and no openai_compatible_base_url, skipping"
NO_ADAPTERS_MESSAGE = (
    "Membrane: No provider adapters could be created. Please provide at least one of: anthropicApiKey, "
    "openrouterApiKey, openaiApiKey, bedrock, openaiCompatible, openaiCompatibleProviders, "
    "openaiCompletionsProviders, openaiResponsesProviders"
)

# pattern-route registration order by kind (config reference 5.5 step 1)
_PATTERN_ORDER = [ANTHROPIC, OPENAI, BEDROCK, GEMINI, OPENAI_RESPONSES, OPENAI_COMPATIBLE, OPENAI_COMPLETIONS]
# model-name prefixes the heuristics and the last-resort test both recognise
_GEMINI_MODELS = ("gemini-", "gemini_")
_OPENAI_MODELS = ("gpt-", "o1", "o3", "o4", "gpt5", "chatgpt-")
# adapter creation order
_CREATION_ORDER = [ANTHROPIC, OPENROUTER, OPENAI, BEDROCK, GEMINI, OPENAI_RESPONSES, OPENAI_COMPATIBLE, OPENAI_COMPLETIONS]


@dataclass
class VendorSpec:
    """One `vendors:` entry, normalised (accepts the config helper's objects or plain dicts)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    provides: list[str] = field(default_factory=list)
    formatter: str | None = None
    completions_config: dict[str, Any] | None = None

    @classmethod
    def coerce(cls, item: Any, name: str | None = None) -> VendorSpec:
        if isinstance(item, VendorSpec):
            return item
        if isinstance(item, Mapping):
            get = item.get
        else:
            def get(key: str, default: Any = None) -> Any:
                return getattr(item, key, default)
        raw_provides = get("provides") or []
        if isinstance(raw_provides, str):
            raw_provides = [raw_provides]
        return cls(
            name=str(get("name") or name or ""),
            config=dict(get("config") or {}),
            provides=[str(p) for p in raw_provides],
            formatter=get("formatter"),
            completions_config=dict(get("completions_config") or {}) or None,
        )


def normalise_vendors(vendors: Any) -> list[VendorSpec]:
    """A list of specs/dicts/objects, or a `{name: {config, provides}}` mapping, as VendorSpecs."""
    if vendors is None:
        return []
    if isinstance(vendors, Mapping):
        return [VendorSpec.coerce(v or {}, name=str(k)) for k, v in vendors.items()]
    return [VendorSpec.coerce(v) for v in vendors]


@dataclass
class Adapter:
    """A provider instance-to-be, created from one vendor entry (or from the environment)."""

    key: str
    kind: str
    name: str
    vendor_name: str
    settings: dict[str, Any]  # api_key, base_url, region, aws keys, eot_token, ...
    provides: list[str] = field(default_factory=list)
    register_patterns: bool = True

    @property
    def class_name(self) -> str:
        row = vendor_row(self.kind)
        return (row.adapter_class if row else None) or self.kind

    def describe(self) -> dict[str, Any]:
        """The shape of the config-resolution vectors' `adapters` entries."""
        out: dict[str, Any] = {"key": self.key, "class": self.class_name, "name": self.name}
        if self.kind != BEDROCK:
            if self.settings.get("api_key") is not None:
                out["api_key"] = self.settings["api_key"]
            if self.settings.get("base_url") is not None:
                out["base_url"] = self.settings["base_url"]
        return out

    def supports_model(self, model: str, *, strict: bool = True) -> bool:
        """The last-resort acceptance test (config reference 5.5 step 3)."""
        if self.kind == ANTHROPIC:
            return model.startswith("claude-")
        if self.kind == BEDROCK:
            return model.startswith(("claude-", "anthropic.", "bedrock:")) or bool(
                re.match(r"^[a-z]{2,4}\.anthropic\.", model)
            )
        if self.kind == GEMINI:
            return model.startswith(_GEMINI_MODELS)
        if self.kind == OPENROUTER:
            return "/" in model
        if self.kind == OPENAI:
            return model.startswith(_OPENAI_MODELS)
        if self.kind in (OPENAI_COMPATIBLE, OPENAI_COMPLETIONS, OPENAI_RESPONSES):
            # upstream accepts everything; we only do so for a vendor that lists no models
            return not strict or not self.provides
        return False


def _env_adapter(env: Mapping[str, str], var: str, name: str, kind: str, base_url: str, *,
                 register_patterns: bool = True) -> list[Adapter]:
    """The fallback adapter an API key in the environment provides (config reference 5.7); none
    when the variable is unset or empty."""
    key = env.get(var)
    if not key:
        return []
    return [Adapter(name, kind, name, f"env:{var}", {"api_key": key, "base_url": base_url},
                    register_patterns=register_patterns)]


@dataclass
class Route:
    """Where a model goes: the vendor, its kind, the provider object and the formatter route."""

    vendor_name: str
    kind: str
    adapter_key: str
    formatter_route: str | None
    tool_mode_when_mode_unset: str
    base_url: str | None
    eot_token: str | None
    provider: Provider


def regex_fullmatch(pattern: str, model: str) -> bool:
    """chapter2 `provides` semantics: Python regex, `re.fullmatch`. A bad regex matches nothing."""
    try:
        return re.fullmatch(pattern, model) is not None
    except re.error:
        return False


def _first(config: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = config.get(key)
        if value is not None and value != "":
            return value
    return None


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


class Router:
    """Builds adapters from vendor entries and routes model names to them."""

    def __init__(
        self,
        vendors: Any,
        env: Mapping[str, str] | None = None,
        *,
        chapter2: bool = False,
        base_url_override: str | None = None,
        options: ProviderOptions | None = None,
    ) -> None:
        self.vendors = normalise_vendors(vendors)
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.chapter2 = chapter2
        self.base_url_override = base_url_override
        self.options = options
        self.warnings: list[str] = []
        self._providers: dict[str, Provider] = {}
        self.adapters: dict[str, Adapter] = {}
        if chapter2:
            self._build_chapter2()
        else:
            self._build()
            if not self.adapters:
                raise NoAdaptersError(NO_ADAPTERS_MESSAGE)

    # -- adapter construction (ChapterX) -------------------------------------------------------
    def _build(self) -> None:
        env = self.env
        creation_order, pattern_order = _orders()
        st = _BuildState(by_kind={k: [] for k in creation_order})
        for v in self.vendors:
            kind = vendor_kind(v.name, v.config)  # the one vendor table (chapterx/config/vendors.py)
            row = vendor_row(kind)
            if row is None:
                self.warnings.append(UNKNOWN_PREFIX_WARNING)
                continue
            builder = _BUILDERS.get(row.kind)
            if builder is None:
                _build_generic(v, row, st)
            else:
                builder(v, env, st)
        by_kind, anthropic_keyed, openai_keyed = st.by_kind, st.anthropic_keyed, st.openai_keyed
        anthropic_vendor_keys = st.anthropic_vendor_keys

        anthropic_list = list(anthropic_keyed.values())
        # env fallbacks (config reference 5.7)
        if not anthropic_list:
            anthropic_list.extend(_env_adapter(env, "ANTHROPIC_API_KEY", "anthropic", ANTHROPIC, ANTHROPIC_BASE))
        if not by_kind[OPENROUTER]:
            by_kind[OPENROUTER].extend(_env_adapter(env, "OPENROUTER_API_KEY", "openrouter", OPENROUTER,
                                                    OPENROUTER_BASE, register_patterns=False))
        openai_list = list(openai_keyed.values())
        if not openai_list:
            openai_list.extend(_env_adapter(env, "OPENAI_API_KEY", "openai", OPENAI, OPENAI_BASE))
        if not by_kind[GEMINI]:
            by_kind[GEMINI].extend(_env_adapter(env, "GOOGLE_API_KEY", "gemini", GEMINI, GEMINI_BASE))
        # a lone anthropic / official OpenAI vendor ignores its provides (legacy single-key path)
        if len(anthropic_list) < 2:
            for a in anthropic_list:
                a.register_patterns = False
        if len(openai_list) < 2:
            for a in openai_list:
                a.register_patterns = False
        by_kind[ANTHROPIC] = anthropic_list
        by_kind[OPENAI] = openai_list
        self._by_kind = by_kind
        # pattern routes keep each vendor's own patterns but point at the adapter key (so a later
        # vendor named exactly "anthropic" takes over the earlier one's routes, as upstream)
        self._pattern_routes: list[tuple[str, str]] = []
        for kind in pattern_order:
            self._pattern_routes += self._pattern_sources(kind, by_kind, anthropic_vendor_keys)
        for kind in creation_order:
            for a in by_kind[kind]:
                self.adapters.setdefault(a.key, a)
        self._formatter_routes = [
            (p, str(v.formatter)) for v in self.vendors if v.formatter and v.provides for p in v.provides
        ]

    def _pattern_sources(self, kind: str, by_kind: dict[str, list[Adapter]],
                         anthropic_vendor_keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if kind == ANTHROPIC:
            # every anthropic vendor's patterns, in vendor order, pointing at the adapter key it got
            keys = anthropic_vendor_keys
            if len(keys) < 2:
                return out
            for vendor_name, key in keys:
                spec = next(v for v in self.vendors if v.name == vendor_name)
                out += [(p, key) for p in spec.provides]
            return out
        for a in by_kind[kind]:
            if a.register_patterns:
                out += [(p, a.key) for p in a.provides]
        return out

    # -- adapter construction (chapter2, em run in place) ---------------------------------------
    def _build_chapter2(self) -> None:
        """chapter2 vendors (intermodel): kind by name, every other config key goes into the body."""
        env = self.env
        for v in self.vendors:
            cfg = v.config
            key: str | None
            if v.name.startswith("openai"):
                key = _s(cfg.get("openai_api_key")) or env.get("OPENAI_API_KEY") or "not-needed"
                base = _s(cfg.get("api_base")) or OPENAI_BASE
                extra = {k: val for k, val in cfg.items() if k not in ("openai_api_key", "api_base")}
                self.adapters[v.name] = Adapter(v.name, OPENAI_COMPLETIONS, v.name, v.name,
                                                {"api_key": key, "base_url": base, "chapter2": True,
                                                 "extra_body": extra}, list(v.provides))
            elif v.name.startswith("anthropic"):
                key = _s(cfg.get("anthropic_api_key")) or env.get("ANTHROPIC_API_KEY")
                if not key:
                    self.warnings.append(f"vendor {v.name}: no anthropic_api_key and no ANTHROPIC_API_KEY")
                    continue
                extra = {k: val for k, val in cfg.items() if k != "anthropic_api_key"}
                self.adapters[v.name] = Adapter(v.name, ANTHROPIC, v.name, v.name,
                                                {"api_key": key, "base_url": ANTHROPIC_BASE, "chapter2": True,
                                                 "extra_body": extra,
                                                 "steering": v.name == "anthropic-steering-preview"},
                                                list(v.provides))
            else:
                self.warnings.append(f"vendor {v.name}: kind not supported by chapterx (only openai* and anthropic*)")
        self._by_kind = {}
        self._pattern_routes = []
        self._formatter_routes = []

    # -- routing ---------------------------------------------------------------------------------
    def adapter_for(self, model: str) -> Adapter:
        """The adapter serving `model`, or NoVendorError naming the vendors tried."""
        if self.chapter2:
            return self._chapter2_adapter_for(model)
        for pattern, key in self._pattern_routes:
            if glob_matches(pattern, model) and key in self.adapters:
                return self.adapters[key]
        heuristic = self._heuristic(model)
        if heuristic is not None:
            return heuristic
        for a in self.adapters.values():
            if a.supports_model(model):
                return a
        raise NoVendorError(model, self._tried())

    def _heuristic(self, model: str) -> Adapter | None:
        bk = self._by_kind
        if "/" in model and bk[OPENROUTER]:
            return bk[OPENROUTER][0]
        bedrock_id = model.startswith(("anthropic.", "bedrock:")) or re.match(r"^(us|eu|apac)\.anthropic\.", model)
        if bedrock_id and bk[BEDROCK]:
            return bk[BEDROCK][0]
        if model.startswith(_GEMINI_MODELS) and bk[GEMINI]:
            return bk[GEMINI][0]
        if model.startswith("claude-") and "anthropic" in self.adapters:
            return self.adapters["anthropic"]
        if model.startswith(_OPENAI_MODELS) and "openai" in self.adapters:
            return self.adapters["openai"]
        if model.startswith(("local:", "openai-compatible:")) and bk[OPENAI_COMPATIBLE]:
            return bk[OPENAI_COMPATIBLE][0]
        return None

    def _chapter2_adapter_for(self, model: str) -> Adapter:
        for v in self.vendors:
            if v.name in self.adapters and any(regex_fullmatch(p, model) for p in v.provides):
                return self.adapters[v.name]
        fallback: str | None = None
        if any(x in model for x in ("ada", "babbage", "curie", "davinci", "cushman")) or model.startswith(
            ("text-moderation-", "ft-", "gpt-4", "gpt-3.5-", "o1-")
        ):
            fallback = "openai"
        elif model.startswith("claude-"):
            fallback = "anthropic"
        if fallback and fallback in self.adapters:
            return self.adapters[fallback]
        raise NoVendorError(model, self._tried())

    def _tried(self) -> list[str]:
        out = []
        for v in self.vendors:
            state = "" if any(a.vendor_name == v.name for a in self.adapters.values()) else ", not usable"
            provides = ", ".join(v.provides) if v.provides else "no provides"
            out.append(f"{v.name} ({provides}{state})")
        for a in self.adapters.values():
            if a.vendor_name.startswith("env:"):
                out.append(f"{a.key} (from {a.vendor_name[4:]})")
        return out

    def formatter_route(self, model: str) -> str | None:
        for pattern, formatter in self._formatter_routes:
            if glob_matches(pattern, model):
                return formatter
        return None

    def tool_mode_when_mode_unset(self, model: str) -> str:
        formatter = self.formatter_route(model)
        if formatter is not None:
            return "xml" if formatter == "anthropic-xml" else "native"
        return "xml" if model.startswith(("claude-", "anthropic.")) else "native"

    def route(self, model: str) -> Route:
        adapter = self.adapter_for(model)
        return Route(
            vendor_name=adapter.vendor_name,
            kind=adapter.kind,
            adapter_key=adapter.key,
            formatter_route=self.formatter_route(model),
            tool_mode_when_mode_unset=self.tool_mode_when_mode_unset(model),
            base_url=adapter.settings.get("base_url"),
            eot_token=adapter.settings.get("eot_token"),
            provider=self.provider(adapter),
        )

    def provider(self, adapter: Adapter) -> Provider:
        """One provider object per adapter, created on first use."""
        if adapter.key not in self._providers:
            self._providers[adapter.key] = make_provider(
                adapter, base_url_override=self.base_url_override, options=self.options
            )
        return self._providers[adapter.key]

    async def aclose(self) -> None:
        """Close every provider created so far."""
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()

    def describe(self, models: Iterable[str]) -> dict[str, Any]:
        """The config-resolution `vendor_routing` expected shape (adapters and per-model routes)."""
        routes: dict[str, Any] = {}
        for model in models:
            entry: dict[str, Any]
            try:
                entry = {"adapter": self.adapter_for(model).key}
            except NoVendorError as exc:
                entry = {"adapter": None, "error": exc.message}
            entry["formatter_route"] = self.formatter_route(model)
            entry["tool_mode_when_mode_unset"] = self.tool_mode_when_mode_unset(model)
            routes[model] = entry
        return {"adapters": [a.describe() for a in self.adapters.values()], "routes": routes, "warnings": self.warnings}


def _orders() -> tuple[list[str], list[str]]:
    """Adapter creation and pattern-route orders: upstream's fixed kinds first, then any other
    table kind in table order."""
    extra = [r.kind for r in vendor_rows() if r.kind not in _CREATION_ORDER]
    return _CREATION_ORDER + extra, _PATTERN_ORDER + extra


# -- one builder per adapter kind: vendor entry -> adapter (ChapterX's createAdapters) ----------------
@dataclass
class _BuildState:
    """What building adapters from the vendor list accumulates (dedup of keyed kinds, counters)."""

    by_kind: dict[str, list[Adapter]]
    anthropic_keyed: dict[str, Adapter] = field(default_factory=dict)
    anthropic_vendor_keys: list[tuple[str, str]] = field(default_factory=list)  # (vendor, adapter key)
    openai_keyed: dict[str, Adapter] = field(default_factory=dict)
    bedrock_count: int = 0


def _openai_base(cfg: Mapping[str, Any]) -> str | None:
    return _s(_first(cfg, "api_base", "openai_compatible_base_url", "openai_completions_base_url"))


def _build_anthropic(v: VendorSpec, env: Mapping[str, str], st: _BuildState) -> None:
    key = _s(v.config.get("anthropic_api_key"))
    if not key:
        return
    akey = "anthropic" if (v.name == "anthropic" or not st.anthropic_keyed) else f"anthropic-{v.name}"
    st.anthropic_vendor_keys.append((v.name, akey))
    st.anthropic_keyed[akey] = Adapter(akey, ANTHROPIC, "anthropic", v.name,
                                       {"api_key": key, "base_url": ANTHROPIC_BASE}, list(v.provides))


def _build_bedrock(v: VendorSpec, env: Mapping[str, str], st: _BuildState) -> None:
    cfg = v.config
    access = _s(_first(cfg, "aws_access_key_id", "aws_access_key") or env.get("AWS_ACCESS_KEY_ID"))
    secret = _s(_first(cfg, "aws_secret_access_key", "aws_secret_key") or env.get("AWS_SECRET_ACCESS_KEY"))
    if not access or not secret or "YOUR_" in access or "YOUR_" in secret:
        return
    region = _s(_first(cfg, "aws_region", "region") or env.get("AWS_REGION") or "us-east-1")
    token = _s(_first(cfg, "aws_session_token", "session_token") or env.get("AWS_SESSION_TOKEN"))
    key = "bedrock" if st.bedrock_count == 0 else f"bedrock-{st.bedrock_count}"
    st.bedrock_count += 1
    st.by_kind[BEDROCK].append(Adapter(key, BEDROCK, "bedrock", v.name, {
        "aws_access_key": access, "aws_secret_key": secret, "aws_region": region, "aws_session_token": token,
        "base_url": f"https://bedrock-runtime.{region}.amazonaws.com"}, list(v.provides)))


def _build_gemini(v: VendorSpec, env: Mapping[str, str], st: _BuildState) -> None:
    key = _s(_first(v.config, "google_api_key", "api_key"))
    if key and not st.by_kind[GEMINI]:  # the first keyed gemini vendor only
        st.by_kind[GEMINI].append(Adapter("gemini", GEMINI, "gemini", v.name,
                                          {"api_key": key, "base_url": GEMINI_BASE}, list(v.provides)))


def _build_openrouter(v: VendorSpec, env: Mapping[str, str], st: _BuildState) -> None:
    key = _s(v.config.get("openrouter_api_key"))
    if key and not st.by_kind[OPENROUTER]:  # the first keyed openrouter vendor only
        st.by_kind[OPENROUTER].append(Adapter("openrouter", OPENROUTER, "openrouter", v.name,
                                              {"api_key": key, "base_url": OPENROUTER_BASE}, [],
                                              register_patterns=False))


def _build_openai_responses(v: VendorSpec, env: Mapping[str, str], st: _BuildState) -> None:
    key = _s(_first(v.config, "openai_api_key", "api_key"))
    if key:
        st.by_kind[OPENAI_RESPONSES].append(Adapter(
            f"openai-responses-{v.name}", OPENAI_RESPONSES, "openai-responses", v.name,
            {"api_key": key, "base_url": _openai_base(v.config) or OPENAI_BASE}, list(v.provides)))


def _build_openai_completions(v: VendorSpec, env: Mapping[str, str], st: _BuildState) -> None:
    cfg = v.config
    base = _openai_base(cfg)
    if not base:
        return
    key = _s(_first(cfg, "openai_api_key", "open_api_key", "api_key")) or "not-needed"
    if "eot_token" in cfg and cfg["eot_token"] is not None:
        eot = str(cfg["eot_token"])
    elif v.completions_config and v.completions_config.get("eot_token") is not None:
        eot = str(v.completions_config["eot_token"])
    else:
        eot = DEFAULT_EOT
    st.by_kind[OPENAI_COMPLETIONS].append(Adapter(
        f"openai-completions-{v.name}", OPENAI_COMPLETIONS, "openai-completions", v.name,
        {"api_key": key, "base_url": base, "eot_token": eot}, list(v.provides)))


def _build_openai(v: VendorSpec, env: Mapping[str, str], st: _BuildState) -> None:
    key = _s(_first(v.config, "openai_api_key", "api_key"))
    if key:
        okey = "openai" if not st.openai_keyed else f"openai-{v.name}"
        st.openai_keyed[okey] = Adapter(okey, OPENAI, "openai", v.name,
                                        {"api_key": key, "base_url": _openai_base(v.config) or OPENAI_BASE},
                                        list(v.provides))


def _build_openai_compatible(v: VendorSpec, env: Mapping[str, str], st: _BuildState) -> None:
    cfg = v.config
    if v.name.startswith("openai"):  # an openai* vendor whose base URL is not OpenAI's
        base = _openai_base(cfg)
        key = _s(_first(cfg, "openai_api_key", "open_api_key", "api_key")) or "not-needed"
    else:  # any other name with openai_compatible_base_url
        base = str(cfg["openai_compatible_base_url"])
        key = _s(_first(cfg, "openai_compatible_api_key", "openai_api_key", "open_api_key", "api_key")) or "not-needed"
    st.by_kind[OPENAI_COMPATIBLE].append(Adapter(f"openai-compatible-{v.name}", OPENAI_COMPATIBLE, v.name, v.name,
                                                 {"api_key": key, "base_url": base}, list(v.provides)))


def _build_generic(v: VendorSpec, row: VendorRow, st: _BuildState) -> None:
    """A kind with no builder of its own: API key from the row's field (or `api_key`), base URL from
    `api_base`/`base_url` (or the row's default), patterns from `provides`. No key, no adapter."""
    cfg = v.config
    key = _s(_first(cfg, *(f for f in (row.api_key_field, "api_key") if f)))
    if not key:
        return
    base = _s(_first(cfg, "api_base", "base_url")) or row.base_url
    st.by_kind.setdefault(row.kind, []).append(Adapter(
        f"{row.kind}-{v.name}", row.kind, row.kind, v.name, {"api_key": key, "base_url": base}, list(v.provides)))


_BUILDERS: dict[str, Callable[[VendorSpec, Mapping[str, str], _BuildState], None]] = {
    ANTHROPIC: _build_anthropic,
    BEDROCK: _build_bedrock,
    GEMINI: _build_gemini,
    OPENROUTER: _build_openrouter,
    OPENAI_RESPONSES: _build_openai_responses,
    OPENAI_COMPLETIONS: _build_openai_completions,
    OPENAI: _build_openai,
    OPENAI_COMPATIBLE: _build_openai_compatible,
}
"""A new vendor kind: its row in chapterx/config/vendors.py `VENDOR_ROWS` and its provider module; a
builder here only when the generic one is not enough (docs/providers.md)."""
