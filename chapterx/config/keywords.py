"""JSON Schema checks for config layers without keeping jsonschema resident in a bot process.

A running bot validates every new pinned `.config` against the bot schema, so whatever validates stays
in memory for the life of the process: jsonschema with referencing, rpds and attrs is ~3 MiB of RSS per
bot (bench/README.md, bot runtime). The ChapterX config schemas use a dozen keywords; this module
checks exactly those with jsonschema's (draft 2020-12) semantics, in its order, and reports errors with
the fields `check.describe` reads from jsonschema's `ValidationError`. A schema that uses any other
keyword, another draft, or a `$ref` that is not a sibling file raises `Unsupported` when it is
compiled, and the caller validates with jsonschema instead: nothing is checked less.
"""

from __future__ import annotations

import numbers
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# keywords that only annotate (jsonschema ignores them when validating); `x-*` extensions too
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default", "deprecated",
                          "examples", "readOnly", "writeOnly"})
_TYPES: dict[str, Callable[[Any], bool]] = {
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: not isinstance(v, bool) and (isinstance(v, int) or (isinstance(v, float) and v.is_integer())),
    "null": lambda v: v is None,
    "number": lambda v: not isinstance(v, bool) and isinstance(v, numbers.Number),
    "object": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str),
}


class Unsupported(Exception):
    """The schema needs a keyword (or reference) this module does not check: use jsonschema."""


@dataclass
class SchemaError:
    """One failed keyword, shaped like jsonschema's ValidationError for the fields the loader reads."""

    message: str
    validator: str
    validator_value: Any
    instance: Any
    schema: dict[str, Any]
    absolute_path: deque[str | int] = field(default_factory=deque)
    context: list[SchemaError] = field(default_factory=list)


def equal(one: Any, two: Any) -> bool:
    """JSON equality: `true` is not `1`, also inside lists and mappings (jsonschema's `enum` rule)."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return len(one) == len(two) and all(k in two and equal(v, two[k]) for k, v in one.items())
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    return bool(one == two)


class KeywordValidator:
    """Validates instances against one schema (and the sibling schemas it references by file name)."""

    def __init__(self, schema: dict[str, Any], resources: Mapping[str, dict[str, Any]]) -> None:
        """`resources`: the schemas a `$ref` may name, by URI (as registered with jsonschema)."""
        self.schema = schema
        self._by_uri = dict(resources)
        self._check(schema, _base_of(schema, ""), set())

    # -- compile-time: every keyword must be one this module checks ------------------------------
    def _check(self, schema: Any, base: str, seen: set[int]) -> None:
        if schema is True:
            return
        if not isinstance(schema, dict):
            raise Unsupported(f"schema is a {type(schema).__name__}")
        if id(schema) in seen:
            return
        seen.add(id(schema))
        if schema.get("$schema", DRAFT_2020_12) != DRAFT_2020_12:
            raise Unsupported(f"draft {schema['$schema']}")
        base = _base_of(schema, base)
        for key, value in schema.items():
            if key in _ANNOTATIONS or key.startswith("x-"):
                continue
            if key == "type":
                names = value if isinstance(value, list) else [value]
                if not names or any(n not in _TYPES for n in names):
                    raise Unsupported(f"type {value!r}")
            elif key in ("minimum", "maximum", "exclusiveMinimum"):
                if not _TYPES["number"](value):
                    raise Unsupported(f"{key} {value!r}")
            elif key == "minLength":
                if not _TYPES["integer"](value):
                    raise Unsupported(f"{key} {value!r}")
            elif key in ("enum", "required"):
                if not isinstance(value, list):
                    raise Unsupported(f"{key} {value!r}")
            elif key == "properties":
                if not isinstance(value, dict):
                    raise Unsupported("properties")
                for sub in value.values():
                    self._check(sub, base, seen)
            elif key == "additionalProperties":
                if value is not False:  # false: "Additional properties are not allowed"
                    self._check(value, base, seen)
            elif key == "items":
                self._check(value, base, seen)
            elif key == "allOf":
                if not isinstance(value, list) or not value:
                    raise Unsupported("allOf")
                for sub in value:
                    self._check(sub, base, seen)
            elif key == "$ref":
                target, target_base = self._resolve(value, base)
                self._check(target, target_base, seen)
            else:
                raise Unsupported(key)

    def _resolve(self, ref: Any, base: str) -> tuple[dict[str, Any], str]:
        if not isinstance(ref, str):
            raise Unsupported("$ref")
        uri, _, fragment = urllib.parse.urljoin(base, ref).partition("#")
        target = self._by_uri.get(uri)
        if fragment or target is None:
            raise Unsupported(f"$ref {ref}")
        return target, _base_of(target, uri)

    # -- run-time ----------------------------------------------------------------------------------
    def iter_errors(self, instance: Any) -> Iterator[SchemaError]:
        """Every error, in jsonschema's order (schema keyword order, properties in schema order)."""
        yield from self._errors(instance, self.schema, _base_of(self.schema, ""), deque())

    def _errors(self, instance: Any, schema: Any, base: str, path: deque[str | int]) -> Iterator[SchemaError]:
        if schema is True:
            return
        base = _base_of(schema, base)
        for key, value in schema.items():
            for err, own in self._keyword(key, value, instance, schema, base, path):
                if own:
                    err.validator, err.validator_value, err.instance, err.schema = key, value, instance, schema
                    err.absolute_path = deque(path)
                yield err

    def _keyword(self, key: str, value: Any, instance: Any, schema: dict[str, Any], base: str,
                 path: deque[str | int]) -> Iterator[tuple[SchemaError, bool]]:
        def own(message: str) -> tuple[SchemaError, bool]:
            return SchemaError(message, key, value, instance, schema), True

        if key == "type":
            names = value if isinstance(value, list) else [value]
            if not any(_TYPES[n](instance) for n in names):
                yield own(f"{instance!r} is not of type {', '.join(repr(n) for n in names)}")
        elif key == "enum":
            if all(not equal(each, instance) for each in value):
                yield own(f"{instance!r} is not one of {value!r}")
        elif key in ("minimum", "maximum", "exclusiveMinimum") and _TYPES["number"](instance):
            if key == "minimum" and instance < value:
                yield own(f"{instance!r} is less than the minimum of {value!r}")
            elif key == "maximum" and instance > value:
                yield own(f"{instance!r} is greater than the maximum of {value!r}")
            elif key == "exclusiveMinimum" and instance <= value:
                yield own(f"{instance!r} is less than or equal to the minimum of {value!r}")
        elif key == "minLength" and isinstance(instance, str) and len(instance) < value:
            yield own(f"{instance!r} is too short")
        elif key == "required" and isinstance(instance, dict):
            for name in value:
                if name not in instance:
                    yield own(f"{name!r} is a required property")
        elif key == "properties" and isinstance(instance, dict):
            for name, sub in value.items():
                if name in instance:
                    yield from self._descend(instance[name], sub, base, path, name)
        elif key == "additionalProperties" and isinstance(instance, dict):
            known = schema.get("properties", {})
            extras = [name for name in instance if name not in known]
            if isinstance(value, dict):
                for name in extras:
                    yield from self._descend(instance[name], value, base, path, name)
            elif value is False and extras:
                listed = ", ".join(repr(e) for e in sorted(extras, key=str))
                yield own(f"Additional properties are not allowed ({listed} {'was' if len(extras) == 1 else 'were'} "
                          "unexpected)")
        elif key == "items" and isinstance(instance, list):
            for index, item in enumerate(instance):
                yield from self._descend(item, value, base, path, index)
        elif key == "allOf":
            for sub in value:
                for err in self._errors(instance, sub, base, path):
                    yield err, False
        elif key == "$ref":
            target, target_base = self._resolve(value, base)
            for err in self._errors(instance, target, target_base, path):
                yield err, False

    def _descend(self, instance: Any, schema: Any, base: str, path: deque[str | int],
                 step: str | int) -> Iterator[tuple[SchemaError, bool]]:
        path.append(step)
        try:
            for err in self._errors(instance, schema, base, path):
                yield err, False
        finally:
            path.pop()


def _base_of(schema: Any, base: str) -> str:
    """The base URI a schema's `$ref`s resolve against (its `$id`, resolved against the outer base)."""
    if isinstance(schema, dict) and isinstance(schema.get("$id"), str):
        return urllib.parse.urljoin(base, str(schema["$id"]))
    return base
