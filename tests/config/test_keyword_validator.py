"""The config schema check without jsonschema (chapterx/config/keywords.py) finds exactly what jsonschema finds.

Differential: random config layers, shaped by the bot and shared schemas (every key, values of every JSON
type, numbers at the bounds, enum members, nested mappings and lists), are validated by both; the errors
(path, keyword, keyword value, failing value, subschema) and the loader's messages must be identical.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chapterx.config import check
from chapterx.config import schema as sch
from chapterx.config.keywords import KeywordValidator, Unsupported

SCHEMAS = (sch.BOT_SCHEMA, sch.SHARED_SCHEMA)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.sampled_from([0.0, 0.5, 1.0, 2.0, -0.5, 1e9]),
    st.sampled_from(["", "x", "yes", "off", "True", "sk-ant-abc", "anthropic", "claude-sonnet-4-5"]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "name", "command", "id", "x"]), inner,
                                                 max_size=3)), max_leaves=8)


def _for(spec: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values aimed at one subschema: its enum, its bounds, its nested keys; or any JSON value."""
    if not isinstance(spec, dict) or depth > 3:
        return json_values
    options: list[st.SearchStrategy[Any]] = [json_values]
    if "enum" in spec:
        options.append(st.sampled_from(spec["enum"]))
    bounds = [spec[k] for k in ("minimum", "maximum", "exclusiveMinimum") if k in spec]
    if bounds:
        near = sorted({b + d for b in bounds for d in (-1, -0.5, 0, 0.5, 1)})
        options.append(st.sampled_from(near + [int(b) for b in near if float(b).is_integer()]))
    if spec.get("type") == "array" or "items" in spec:
        options.append(st.lists(_for(spec.get("items"), depth + 1), max_size=3))
    props = spec.get("properties") or {}
    extra = spec.get("additionalProperties")
    if props or isinstance(extra, dict):
        keyed = [st.tuples(st.just(k), _for(v, depth + 1)) for k, v in props.items()]
        keyed.append(st.tuples(st.sampled_from(["other", "x"]), _for(extra if isinstance(extra, dict) else None,
                                                                      depth + 1)))
        options.append(st.lists(st.one_of(keyed), max_size=4).map(dict))
    return st.one_of(options)


def _documents(name: str) -> st.SearchStrategy[dict[str, Any]]:
    props = sch.key_table(name).properties
    keyed = [st.tuples(st.just(k), _for(v)) for k, v in props.items()]
    keyed.append(st.tuples(st.sampled_from(["unknown_key", "x"]), json_values))
    return st.lists(st.one_of(keyed), max_size=6).map(dict)


def _errors(validator: Any, doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    errs = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    out = []
    for e in errs:
        leaves = check._leaves(e)
        out.append((list(e.absolute_path), str(e.validator), _key(e.validator_value), _key(e.instance),
                    _key(e.schema), [check.describe(leaf, check._dotted(leaf.absolute_path) or None) for leaf in leaves]))
    return out


def _key(value: Any) -> str:
    """A comparable form that keeps True apart from 1 and 1.0 apart from 1."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return repr(value)


@pytest.mark.parametrize("name", SCHEMAS)
def test_config_schemas_use_the_keyword_validator(name: str) -> None:
    assert isinstance(sch.validator(name), KeywordValidator)


@pytest.mark.parametrize("name", SCHEMAS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_same_errors_as_jsonschema(name: str, data: st.DataObject) -> None:
    doc = data.draw(_documents(name))
    ours, theirs = sch.validator(name), sch.jsonschema_validator(name)
    assert _errors(ours, doc) == _errors(theirs, doc)


@pytest.mark.parametrize(("name", "doc"), [
    (sch.BOT_SCHEMA, {"temperature": "hot", "max_tokens": -1, "stop_sequences": "STOP"}),
    (sch.BOT_SCHEMA, {"mcp_servers": [{"name": "fs"}], "tool_plugins": [1], "plugin_config": "notes"}),
    (sch.SHARED_SCHEMA, {"vendors": {"anthropic": {"config": {"anthropic_api_key": 1}, "provides": "claude"}}}),
    (sch.SHARED_SCHEMA, {"max_tokens": True, "temperature": 1.0, "top_k": 2.0}),
])
def test_known_bad_layers_fail_alike(name: str, doc: dict[str, Any]) -> None:
    found = _errors(sch.validator(name), doc)
    assert found, "each of these layers has at least one schema error"
    assert found == _errors(sch.jsonschema_validator(name), doc)


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^a"},
    {"properties": {"a": {"const": 1}}},
    {"anyOf": [{"type": "string"}]},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
    {"$ref": "#/$defs/x", "$defs": {"x": {}}},
    {"$ref": "elsewhere.json"},
    {"items": False},
    {"type": "text"},
])
def test_any_other_keyword_is_refused_so_jsonschema_checks_it(schema: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        KeywordValidator(schema, {})


def test_a_schema_outside_the_subset_is_checked_by_jsonschema() -> None:
    trace = sch.validator("trace")  # uses pattern / maxLength / $defs
    assert not isinstance(trace, KeywordValidator)
    assert type(trace).__module__.startswith("jsonschema")
