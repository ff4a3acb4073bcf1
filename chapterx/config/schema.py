"""The JSON Schemas in `schemas/` are the single source of truth for ChapterX config keys.

Everything the loader needs about keys (known names, camelCase spellings, defaults and how each
default is applied, which keys are no-ops, which are booleans) is derived from the schema files here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from chapterx import paths

BOT_SCHEMA = "chapterx-bot"
SHARED_SCHEMA = "chapterx-shared"


def schemas_dir() -> Path:
    return paths.SCHEMAS_DIR


def available_schemas() -> list[str]:
    """Schema names (file names without `.schema.json` / `.json`)."""
    names = []
    for p in sorted(schemas_dir().glob("*.json")):
        names.append(p.name.removesuffix(".json").removesuffix(".schema"))
    return names


def schema_path(name: str) -> Path | None:
    for candidate in (f"{name}.schema.json", f"{name}.json", name):
        p = schemas_dir() / candidate
        if p.is_file():
            return p
    return None


@cache
def load_schema(name: str) -> dict[str, Any]:
    p = schema_path(name)
    if p is None:
        raise FileNotFoundError(name)
    data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
    return data


@cache
def _sibling_schemas() -> dict[str, dict[str, Any]]:
    """The `chapterx-*.json` files by file name, read once for every validator's `$ref` registry."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in schemas_dir().glob("chapterx-*.json")}


@cache
def validator(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    # Register the sibling files under their relative names so "$ref": "chapterx-bot.schema.json" resolves
    # (and under the schema's own `$id` base when it has one).
    prefixes = [""]
    if base := schema.get("$id", ""):
        prefixes.append(base.rsplit("/", 1)[0] + "/")
    registry = Registry().with_resources(
        (prefix + file_name, Resource.from_contents(contents))
        for prefix in prefixes
        for file_name, contents in _sibling_schemas().items()
    )
    return Draft202012Validator(schema, registry=registry)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake_case(name: str) -> str:
    """`continuationModel` -> `continuation_model` (already snake_case names are unchanged)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@dataclass(frozen=True)
class KeyTable:
    """What the loader knows about top-level keys of one schema."""

    properties: dict[str, dict[str, Any]]
    camel: dict[str, str]  # camelCase spelling -> canonical key
    aliases: dict[str, str]  # deprecated alias (innerName) -> canonical key

    @property
    def known(self) -> list[str]:
        return list(self.properties)

    def is_boolean(self, key: str) -> bool:
        return self.properties.get(key, {}).get("type") == "boolean"


@cache
def key_table(name: str) -> KeyTable:
    """Known keys of a schema, following `allOf` references to sibling schemas."""
    schema = load_schema(name)
    props: dict[str, dict[str, Any]] = {}
    for part in schema.get("allOf", []):
        ref = part.get("$ref")
        if isinstance(ref, str):
            props.update(key_table(ref.removesuffix(".json").removesuffix(".schema")).properties)
    props.update(schema.get("properties", {}))
    camel = {}
    aliases = {}
    for key, spec in props.items():
        c = _camel(key)
        if c != key:
            camel[c] = key
        for alias in spec.get("x-aliases", []):
            aliases[alias] = key
    return KeyTable(properties=props, camel=camel, aliases=aliases)


def bot_properties() -> dict[str, dict[str, Any]]:
    return key_table(BOT_SCHEMA).properties


def whitelist() -> list[str]:
    """Keys that survive default resolution (upstream's 69), in schema order."""
    return [k for k, spec in bot_properties().items() if not spec.get("x-dropped")]


def file_keys() -> dict[str, str]:
    """`system_prompt_file` -> `system_prompt`, and so on."""
    return {k: spec["x-file-for"] for k, spec in bot_properties().items() if "x-file-for" in spec}
