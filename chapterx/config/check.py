"""Checks one config document (a file or a pin) against the schema: spelling, unknown keys, types.

Returns the normalised mapping (camelCase renamed, `innerName` -> `name`) plus problems, each with
its key and line. Messages never echo string values (they may be secrets).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from jsonschema.exceptions import ValidationError

from chapterx.config import schema as sch
from chapterx.config.report import Problem
from chapterx.config.yamlio import Document, line_of

YAML11_BOOLS = {"yes": "true", "no": "false", "on": "true", "off": "false", "y": "true", "n": "false"}

_TYPE_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


@dataclass
class Checked:
    data: dict[str, Any]
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)


def nearest(key: str, known: list[str]) -> str | None:
    """Closest known key by spelling (difflib), also trying the snake_case form of `key`."""
    for probe in (key, sch.snake_case(key)):
        match = difflib.get_close_matches(probe, known, n=1, cutoff=0.6)
        if match:
            return match[0]
    return None


def check_document(doc: Document, schema_name: str, *, strict: bool = False, role: str = "bot") -> Checked:
    """Normalise and validate one parsed document. `role` is "bot", "shared", "guild" or "pin"."""
    out = Checked(data={}, lines=dict(doc.lines))
    data = doc.data
    if data is None:
        return out
    if not isinstance(data, dict):
        out.errors.append(Problem(f"top level must be a mapping of keys, not {type_name(data)}", None, 1))
        return out
    table = sch.key_table(schema_name)
    known = table.known
    unknown_bucket = out.errors if strict else out.warnings
    ignored = "" if strict else "; it is ignored"  # under --strict an unknown key is refused, not ignored
    normalised: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    for key, value in data.items():
        line = doc.lines.get(key)
        if key in table.properties:
            normalised[key] = value
            continue
        rename = _rename(key, table)
        if rename is not None:
            target, when_both, when_read = rename
            if target in data:
                out.warnings.append(Problem(when_both, key, line))
            else:
                out.warnings.append(Problem(when_read, key, line))
                normalised[target] = value
                renamed[target] = key
            continue
        if role != "shared" and key in ("vendors", "providers"):
            unknown_bucket.append(Problem(f"unknown key {key}: vendors belong in the shared file (shared.yaml)", key, line))
            continue
        if _SECRET_SHAPE.search(key):  # an API key pasted as a line of its own: never echo it
            unknown_bucket.append(Problem("unknown key that looks like an API key or token (pasted on its own "
                                          f"line?){ignored}", "<redacted>", line))
            continue
        hint = nearest(key, known)
        msg = f"unknown key {key}" + (f" (did you mean {hint}?)" if hint else "") + ignored
        unknown_bucket.append(Problem(msg, key, line))
    for target, original in renamed.items():  # errors on renamed keys point at the original spelling
        if original in doc.lines:
            out.lines[target] = doc.lines[original]
            for k, v in doc.lines.items():
                if k.startswith(original + "."):
                    out.lines[target + k[len(original):]] = v
    if role != "bot" and "providers_config" in normalised:
        out.warnings.append(Problem("providers_config only has an effect in a bot file; it is ignored here",
                                    "providers_config", out.lines.get("providers_config")))
    for key, spec in table.properties.items():
        if key in normalised and spec.get("x-effect") == "none" and normalised[key] is not None:
            out.warnings.append(Problem(f"{key} is accepted but has no effect", key, out.lines.get(key)))
    for key, value in normalised.items():
        if key in table.properties:
            _nested_unknown(value, table.properties[key], key, out, unknown_bucket, ignored)
    out.errors.extend(schema_problems(normalised, schema_name, out.lines))
    out.errors.sort(key=lambda p: p.line or 0)
    out.warnings.sort(key=lambda p: p.line or 0)
    out.data = normalised
    return out


def _rename(key: str, table: sch.KeyTable) -> tuple[str, str, str] | None:
    """For a deprecated alias or a camelCase spelling: the key it stands for, the warning when that
    key is also set (the alias is ignored) and the warning when the alias is read in its place."""
    if key in table.aliases:
        target = table.aliases[key]
        return (target, f"{key} is deprecated and ignored here because {target} is also set",
                f"{key} is deprecated; write {target}: instead")
    if key in table.camel:
        target = table.camel[key]
        return (target, f"{key} is ignored because {target} is also set (keys are snake_case)",
                f"{key} is camelCase; read as {target} (write {target} instead)")
    return None


def _nested_unknown(value: Any, spec: dict[str, Any], path: str, out: Checked, bucket: list[Problem],
                    ignored: str) -> None:
    """Unknown keys inside closed sub-mappings (soma, tts_relay, mcp_servers[], vendor entries...)."""
    if isinstance(value, list) and isinstance(spec.get("items"), dict):
        for i, item in enumerate(value):
            _nested_unknown(item, spec["items"], f"{path}.{i}", out, bucket, ignored)
        return
    if not isinstance(value, dict):
        return
    props = spec.get("properties")
    extra = spec.get("additionalProperties")
    if isinstance(props, dict):
        for k, v in value.items():
            child = f"{path}.{k}"
            if k in props:
                _nested_unknown(v, props[k], child, out, bucket, ignored)
            elif not spec.get("x-open") and not isinstance(extra, dict) and extra is not True:
                hint = nearest(str(k), list(props))
                msg = f"unknown key {child}" + (f" (did you mean {hint}?)" if hint else "") + ignored
                bucket.append(Problem(msg, child, out.lines.get(child)))
    elif isinstance(extra, dict):
        for k, v in value.items():
            _nested_unknown(v, extra, f"{path}.{k}", out, bucket, ignored)


def _dotted(path: Any) -> str:
    return ".".join(str(p) for p in path)


def schema_problems(data: dict[str, Any], schema_name: str, lines: dict[str, int]) -> list[Problem]:
    """Schema errors as Problems, nulls tolerated (a null never overrides anything)."""
    cleaned = {k: v for k, v in data.items() if v is not None}
    problems = []
    seen: set[tuple[str, str]] = set()
    for err in sorted(sch.validator(schema_name).iter_errors(cleaned), key=lambda e: [str(p) for p in e.absolute_path]):
        for leaf in _leaves(err):
            key = _dotted(leaf.absolute_path) or None
            msg = describe(leaf, key)
            if (key or "", msg) in seen:
                continue
            seen.add((key or "", msg))
            problems.append(Problem(msg, key, line_of(lines, key)))
    return problems


def _leaves(err: ValidationError) -> list[ValidationError]:
    if err.context and err.validator in ("anyOf", "oneOf", "allOf"):
        out: list[ValidationError] = []
        for sub in err.context:
            out.extend(_leaves(sub))
        return out
    return [err]


def _num(v: Any) -> str:
    return repr(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "the value"


# Shapes of API keys and tokens (Anthropic/OpenAI/OpenRouter sk-, Google AIza, AWS AKIA/ASIA, GitHub,
# Slack, Discord-like dotted tokens): a value like this pasted into the wrong key is not echoed.
_SECRET_SHAPE = re.compile(r"^(sk|pk|rk)[-_]|^AIza|^A[KS]IA[0-9A-Z]|^gh[pousr]_|^xox[abpr]-|^[\w-]{20,}\.[\w-]{4,}\.")


def _echo_safe(value: str) -> bool:
    """Short, non-secret-looking values are quoted back in messages; anything else is not."""
    return len(value) <= 32 and not _SECRET_SHAPE.search(value) and "\n" not in value


def describe(err: ValidationError, key: str | None) -> str:
    """A short message for one schema error that names the key and never echoes strings."""
    name = key or "document"
    v = str(err.validator)
    inst = err.instance
    if v == "type":
        expected = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        if "boolean" in expected and isinstance(inst, str) and inst.lower() in YAML11_BOOLS:
            return (f"{name}: '{inst}' is a string in YAML 1.2, not a boolean; "
                    f"write {YAML11_BOOLS[inst.lower()]} instead")
        if "boolean" in expected and isinstance(inst, str) and inst.lower() in ("true", "false"):
            return f"{name}: a quoted \"{inst}\" is a string, not a boolean; write {inst.lower()} without quotes"
        if expected[0] in ("number", "integer") and isinstance(inst, str):
            return f"{name}: expected {_TYPE_NAMES[expected[0]]}, got a string (remove the quotes or underscores)"
        wanted = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
        return f"{name}: expected {wanted}, got {type_name(inst)}"
    if v == "enum":
        allowed = ", ".join(str(x) for x in err.validator_value)
        shown = f"'{inst}'" if isinstance(inst, str) and _echo_safe(inst) else type_name(inst)
        return f"{name}: {shown} is not one of: {allowed}"
    spec = err.schema if isinstance(err.schema, dict) else {}
    if v in ("minimum", "maximum") and "minimum" in spec and "maximum" in spec:
        return f"{name} must be between {spec['minimum']} and {spec['maximum']} (got {_num(inst)})"
    if v == "exclusiveMinimum" and err.validator_value == 0:
        return f"{name} must be positive (got {_num(inst)})"
    if v == "minimum":
        return f"{name}: {_num(inst)} is below the minimum {err.validator_value}"
    if v == "maximum":
        return f"{name}: {_num(inst)} is above the maximum {err.validator_value}"
    if v == "exclusiveMinimum":
        return f"{name}: {_num(inst)} must be greater than {err.validator_value}"
    if v == "exclusiveMaximum":
        return f"{name}: {_num(inst)} must be less than {err.validator_value}"
    if v == "required":
        missing = [m for m in err.validator_value if not isinstance(inst, dict) or m not in inst]
        return f"{name}: missing required key(s): {', '.join(missing)}"
    if v == "minLength":
        return f"{name}: must not be empty"
    return f"{name}: {v} check failed"
