"""Real upstream files validate cleanly; the README commands work on examples/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chapterx.config.validate import validate_paths
from tests.config.conftest import run_cli
from tests.conftest import REPO_DIR, shared_path

EXAMPLES = REPO_DIR / "examples" / "config"


def test_corpus_configs_have_no_errors() -> None:
    corpus = shared_path("corpus", "chapterx")
    reports = validate_paths([corpus])
    files = sorted(p.name for p in corpus.iterdir())
    assert len(reports) == len(files)  # one report per file, nothing skipped silently
    for r in reports:
        assert r.errors == [], (r.path, r.errors)
    by_name = {Path(r.path).name: r for r in reports}
    for name, r in by_name.items():
        if name.endswith(".json"):
            assert r.dialect == "other" and r.note and "probe catalog" in r.note
        elif "token" in name:
            assert r.dialect == "other" and r.note and "token" in r.note
        elif name.endswith(".removed"):
            assert r.dialect == "other" and r.note and "not a config" in r.note
        else:
            assert r.dialect == "chapterx", name
            assert r.note is None


def test_corpus_camelcase_and_inner_name_warn(tmp_path: Path) -> None:
    corpus = shared_path("corpus", "chapterx")
    camel = [p for p in corpus.iterdir() if "claude.yaml.example" in p.name and "continuationModel" in p.read_text()]
    inner_only = [p for p in corpus.iterdir() if p.name.endswith("claude10.yaml")]
    # the corpus folder is present (shared_path skipped otherwise): the files this test is about must be too
    assert camel and inner_only, "corpus lacks a camelCase claude.yaml.example or a claude10.yaml"
    [report] = validate_paths([camel[0]])
    assert any("continuationModel is camelCase" in w.message and w.line for w in report.warnings)
    [report] = validate_paths([inner_only[0]])
    assert any("innerName is deprecated" in w.message for w in report.warnings)


def test_corpus_via_cli_exit_zero() -> None:
    corpus = shared_path("corpus", "chapterx")
    res = run_cli("validate", "--json", str(corpus))
    assert res.code == 0
    data = json.loads(res.out)
    assert data["ok"] is True
    assert {"path", "dialect", "errors", "warnings"} <= set(data["files"][0])


def test_readme_validate_examples() -> None:
    res = run_cli("validate", str(EXAMPLES))
    assert res.code == 0, res.out + res.err
    assert "error" not in res.out


def test_readme_config_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-should-not-print")
    res = run_cli("config", "show", "--config", str(EXAMPLES / "bots" / "aria.yaml"))
    assert res.code == 0, res.err
    assert "name: Aria" in res.out and "continuation_model:" in res.out
    assert "sk-ant-test-should-not-print" not in res.out + res.err
    assert "***" in res.out
    js = run_cli("config", "show", "--json", "--config", str(EXAMPLES / "bots" / "aria.yaml"))
    data = json.loads(js.out)
    assert data["config"]["name"] == "Aria"
    assert data["vendors"][0]["config"]["anthropic_api_key"] == "***"


def test_examples_have_no_secrets() -> None:
    for p in EXAMPLES.rglob("*"):
        if p.is_file():
            text = p.read_text(encoding="utf-8")
            assert "sk-ant-" not in text and "sk-or-" not in text, p
