"""One `provides` glob matcher for config, routing and migrate; providers do not import routing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from chapterx.config import vendors as config_vendors
from chapterx.llm import routing
from chapterx.llm.errors import NoVendorError
from chapterx_compat.chapter2 import migrate

PROVIDERS = Path(routing.__file__).resolve().parent / "providers"


def test_config_routing_and_migrate_share_one_matcher() -> None:
    assert routing.glob_matches is config_vendors.glob_matches
    assert migrate.glob_matches is config_vendors.glob_matches


@pytest.mark.parametrize(("pattern", "model", "expected"), [
    ("lm-4?", "lm-4?", True),         # `?` is a literal character
    ("lm-4?", "lm-4", False),         # (upstream: regex quantifier, matched)
    ("lm-4?", "lm-4o", False),
    ("lm-(x)*", "lm-(x)-1", True),
    ("lm.b*", "lmxb", False),
    ("lm*", "lm-anything", True),
])
def test_question_mark_and_specials_are_literal_everywhere(pattern: str, model: str, expected: bool) -> None:
    entry = {"config": {"openai_compatible_base_url": "http://127.0.0.1:9/v1"}, "provides": [pattern]}
    (vendor,), _ = config_vendors.normalise_vendors({"vendors": {"local": entry}}, env={})
    assert vendor.matches(model) is expected
    router = routing.Router({"local": entry}, env={})
    if expected:
        assert router.route(model).vendor_name == "local"
    else:
        with pytest.raises(NoVendorError):
            router.route(model)


def test_providers_never_import_routing() -> None:
    for path in PROVIDERS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.endswith("routing") or n == "chapterx.llm.routing" for n in names), path
            if isinstance(node, ast.ImportFrom) and node.module == "chapterx.llm":
                assert "routing" not in [a.name for a in node.names], path
    out = subprocess.run([sys.executable, "-c", "import sys, chapterx.llm.providers; "
                          "print('chapterx.llm.routing' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
