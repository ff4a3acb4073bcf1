"""`schemas/chapter2-em.schema.json`: the JSON Schema (draft 2020-12) of a chapter2 em after loading.

Generated from the pydantic models in `chapterx_compat.chapter2.models` (their field descriptions become
the schema's descriptions) so the schema and the loader cannot drift apart; a test checks that the
committed file equals `build_schema()`. Regenerate with `python -m chapterx_compat.chapter2.schema`.
Loading checks every loaded em against the committed file (`check_loaded`).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from chapterx import paths

SCHEMA_FILE = "chapter2-em.schema.json"
SCHEMA_PATH = paths.SCHEMAS_DIR / SCHEMA_FILE
"""The schema as installed (in a checkout: the top-level `schemas/` file)."""
SCHEMA_ID = "https://chapterx.invalid/schemas/chapter2-em.schema.json"


def _fix_inf(value: Any) -> Any:
    """JSON has no infinity: write float defaults of inf as the string "Infinity" (YAML `.inf`)."""
    if isinstance(value, float) and math.isinf(value):
        return "Infinity"
    if isinstance(value, dict):
        return {k: _fix_inf(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_inf(v) for v in value]
    return value


def build_schema() -> dict[str, Any]:
    from chapterx_compat.chapter2.models import Config

    body = Config.model_json_schema(mode="validation")
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "chapter2 em config (after loading)",
        "description": (
            "One Chapter II em after chapter2's loader has merged its layers (~/.config/chapter2, "
            "ems/vendors.yaml, ems/config.yaml, ems/<em>/config.yaml, key-files), routed flat keys into "
            "`em` and `interfaces`, and applied defaults. Unknown keys are ignored by chapter2 at every "
            "level, so they are not listed here (chapterx warns about them). Infinity is `.inf` in YAML."
        ),
    }
    for k, v in body.items():
        if k not in ("title", "description"):
            schema[k] = v
    return _fix_inf(schema)  # type: ignore[no-any-return]


def render_schema() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) if SCHEMA_PATH.exists() else build_schema()
    return Draft202012Validator(_inline_refs(schema))


def _dispatch(node: dict[str, Any], tag: str, mapping: dict[str, str]) -> dict[str, Any]:
    """A discriminated `oneOf` as "the tag is known, and the branch for that tag holds".

    Equivalent for tagged data, but jsonschema then checks one branch instead of all of them.
    """
    rest = {k: v for k, v in node.items() if k not in ("oneOf", "discriminator")}
    branches = [
        {"if": {"properties": {tag: {"const": value}}, "required": [tag]}, "then": {"$ref": ref}}
        for value, ref in mapping.items()
    ]
    return {**rest, "required": [tag], "properties": {tag: {"enum": list(mapping)}}, "allOf": branches}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema with every non-recursive `$ref` replaced by its target (same constraints).

    jsonschema resolves each `$ref` on every visit, which made checking 200 ems ~3x slower.
    Recursive references (a sim faculty's nested em) stay as `$ref`s into the kept `$defs`.
    """
    defs = schema.get("$defs", {})

    def walk(node: Any, stack: frozenset[str]) -> Any:
        if isinstance(node, dict):
            disc = node.get("discriminator")
            if "oneOf" in node and isinstance(disc, dict) and isinstance(disc.get("mapping"), dict):
                node = _dispatch(node, disc["propertyName"], disc["mapping"])
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.split("/")[-1]
                if name in stack or name not in defs:
                    return node
                rest = {k: walk(v, stack) for k, v in node.items() if k != "$ref"}
                return {**walk(defs[name], stack | {name}), **rest}
            return {k: walk(v, stack) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(x, stack) for x in node]
        return node

    out = walk({k: v for k, v in schema.items() if k != "$defs"}, frozenset())
    out["$defs"] = defs
    return out  # type: ignore[no-any-return]


def check_loaded(data: dict[str, Any]) -> list[str]:
    """Problems (one line each) of a loaded em config against the schema; [] when it conforms."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message[:200]}" for e in errors]


if __name__ == "__main__":  # pragma: no cover
    target = paths.SOURCE_SCHEMAS_DIR / SCHEMA_FILE  # the source the wheel is built from
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_schema(), encoding="utf-8")
    print(f"wrote {target}")
