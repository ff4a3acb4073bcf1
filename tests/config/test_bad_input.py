"""Bad input through the real CLI: every case exits 1 or 2 with one line naming file (and key), no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.conftest import run_cli, write_tree
from tests.conftest import REPO_DIR

GOOD = "name: Aria\ncontinuation_model: claude-sonnet-4-5-20250929\n"


def _alias_bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


# id -> (bot file content, key expected in the message or None, expected exit code)
BOT_CASES: dict[str, tuple[str | bytes, str | None, int]] = {
    "syntax-error": (GOOD + "stop_sequences: [x\n", None, 1),
    "duplicate-key": (GOOD + "temperature: 0.5\ntemperature: 0.6\n", "temperature", 1),
    "leading-at": ("name: @aria\ncontinuation_model: m\n", None, 1),
    "tab-indent": (GOOD + "plugin_config:\n\tnotes: {}\n", None, 1),
    "two-documents": (GOOD + "---\nname: Other\n", None, 1),
    "temperature-string": (GOOD + "temperature: hot\n", "temperature", 1),
    "max-tokens-string": (GOOD + "max_tokens: lots\n", "max_tokens", 1),
    "max-tokens-underscore": (GOOD + "max_tokens: 31_000\n", "max_tokens", 1),
    "stop-sequences-not-list": (GOOD + "stop_sequences: STOP\n", "stop_sequences", 1),
    "tool-plugins-numbers": (GOOD + "tool_plugins: [1]\n", "tool_plugins", 1),
    "plugin-config-string": (GOOD + "plugin_config: notes\n", "plugin_config", 1),
    "mcp-server-no-command": (GOOD + "mcp_servers:\n  - name: fs\n", "mcp_servers", 1),
    "name-number": ("name: 123\ncontinuation_model: m\n", "name", 1),
    "temperature-high": (GOOD + "temperature: 3\n", "temperature", 1),
    "temperature-negative": (GOOD + "temperature: -0.1\n", "temperature", 1),
    "top-p-high": (GOOD + "top_p: 1.5\n", "top_p", 1),
    "max-tokens-negative": (GOOD + "max_tokens: -1\n", "max_tokens", 1),
    "max-tokens-zero": (GOOD + "max_tokens: 0\n", "max_tokens", 1),
    "mode-enum": (GOOD + "mode: completion\n", "mode", 1),
    "thinking-type-enum": (GOOD + "thinking_type: on\n", "thinking_type", 1),
    "cache-ttl-enum": (GOOD + "cache_ttl: 2h\n", "cache_ttl", 1),
    "include-images-no": (GOOD + "include_images: no\n", "include_images", 1),
    "prompt-caching-off": (GOOD + "prompt_caching: off\n", "prompt_caching", 1),
    "tools-enabled-yes": (GOOD + "tools_enabled: yes\n", "tools_enabled", 1),
    "soma-enabled-quoted": (GOOD + "soma:\n  enabled: \"true\"\n", "soma.enabled", 1),
    "state-scope-enum": (GOOD + "plugin_config:\n  notes: {state_scope: everywhere}\n", "plugin_config.notes.state_scope", 1),
    "missing-model": ("name: Aria\n", "continuation_model", 1),
    "top-level-list": ("- name: Aria\n", None, 1),
    "top-level-scalar": ("just some text\n", None, 1),
    "empty-file": ("", None, 1),
    "comments-only": ("# nothing yet\n", None, 1),
    "binary-file": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None, 1),
    "latin1-bytes": ("name: Ar\xeda\ncontinuation_model: m\n".encode("latin-1"), None, 1),
    "alias-bomb": (_alias_bomb(), None, 1),
    "huge-file": ("# padding\n" + ("#" * 1023 + "\n") * (10 * 1024), None, 1),
    "providers-config-missing": (GOOD + "providers_config: ../no-such-shared.yaml\n", "providers_config", 1),
}


def _bot_tree(tmp_path: Path, content: str | bytes) -> Path:
    write_tree(tmp_path, {"config/bots/aria.yaml": content})
    return tmp_path / "config" / "bots" / "aria.yaml"


def _assert_one_line(text: str, path: Path, key: str | None) -> None:
    assert "Traceback" not in text
    lines = [ln for ln in text.splitlines() if "error:" in ln]
    assert len(lines) == 1, text
    assert str(path) in lines[0]
    if key:
        assert key in lines[0], lines[0]


@pytest.mark.parametrize("case", sorted(BOT_CASES))
def test_validate_bad_bot_file(case: str, tmp_path: Path) -> None:
    content, key, code = BOT_CASES[case]
    path = _bot_tree(tmp_path, content)
    res = run_cli("validate", str(path))
    assert res.code == code, (res.out, res.err)
    _assert_one_line(res.out, path, key)
    assert "Traceback" not in res.err


@pytest.mark.parametrize("case", sorted(BOT_CASES))
def test_config_show_bad_bot_file(case: str, tmp_path: Path) -> None:
    content, key, code = BOT_CASES[case]
    path = _bot_tree(tmp_path, content)
    res = run_cli("config", "show", "--config", str(path))
    assert res.code == code, (res.out, res.err)  # same invalid-input code as `validate` (1)
    assert res.out == ""
    err_lines = [ln for ln in res.err.splitlines() if ln.startswith("chapterx: error:")]
    assert len(err_lines) == 1 and "Traceback" not in res.err
    assert str(path) in err_lines[0]
    if key:
        assert key in err_lines[0]


def test_strict_unknown_key_is_error(tmp_path: Path) -> None:
    path = _bot_tree(tmp_path, GOOD + "temprature: 0.5\n")
    loose = run_cli("validate", str(path))
    assert loose.code == 0 and "warning" in loose.out and "did you mean temperature" in loose.out
    strict = run_cli("validate", "--strict", str(path))
    assert strict.code == 1
    _assert_one_line(strict.out, path, "temprature")


def test_directory_given_as_bot_file(tmp_path: Path) -> None:
    (tmp_path / "bots" / "aria.yaml").mkdir(parents=True)
    res = run_cli("config", "show", "--config", str(tmp_path / "bots" / "aria.yaml"))
    assert res.code == 2
    assert "is a directory" in res.err and str(tmp_path / "bots" / "aria.yaml") in res.err
    res = run_cli("validate", str(tmp_path))  # a directory where a bot file belongs, inside a config root
    assert res.code == 2 and "is a directory" in res.out


def test_path_not_found(tmp_path: Path) -> None:
    res = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert res.code == 2
    _assert_one_line(res.out, tmp_path / "nope.yaml", None)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = _bot_tree(tmp_path, GOOD)
    path.chmod(0)
    try:
        res = run_cli("validate", str(path))
        assert res.code == 2
        _assert_one_line(res.out, path, None)
        assert "permission denied" in res.out
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    ("shared", "key"),
    [
        ("vendors:\n  anthropic:\n    formatter: xml\n", "vendors.anthropic.formatter"),
        ("vendors:\n  anthropic:\n    provides: claude-*\n", "vendors.anthropic.provides"),
        ("vendors:\n  anthropic:\n    config: {anthropic_api_key: [a, b]}\n", "vendors.anthropic.config.anthropic_api_key"),
        ("providers: [anthropic]\n", "providers"),
        ("temperature: 9\n", "temperature"),
    ],
)
def test_bad_shared_file(shared: str, key: str, tmp_path: Path) -> None:
    write_tree(tmp_path, {"config/shared.yaml": shared, "config/bots/aria.yaml": GOOD})
    res = run_cli("validate", str(tmp_path / "config"))
    assert res.code == 1
    _assert_one_line(res.out, tmp_path / "config" / "shared.yaml", key)
    show = run_cli("config", "show", "--config", str(tmp_path / "config" / "bots" / "aria.yaml"))
    assert show.code == 1 and "shared.yaml" in show.err and key in show.err


def test_bad_guild_file_named(tmp_path: Path) -> None:
    write_tree(tmp_path, {"config/bots/aria.yaml": GOOD, "config/guilds/123.yaml": "temperature: [\n"})
    res = run_cli("config", "show", "--config", str(tmp_path / "config/bots/aria.yaml"), "--guild", "123")
    assert res.code == 1 and "guilds/123.yaml" in res.err and "Traceback" not in res.err


def test_bad_pin_argument(tmp_path: Path) -> None:
    path = _bot_tree(tmp_path, GOOD)
    res = run_cli("config", "show", "--config", str(path), "--pin", "temperature: 0.2")
    assert res.code == 2 and "--pin" in res.err


def test_secret_not_echoed_in_error(tmp_path: Path) -> None:
    write_tree(tmp_path, {"config/shared.yaml": "vendors:\n  anthropic:\n    config: {anthropic_api_key: {k: sk-ant-SECRETVALUE}}\n",
                          "config/bots/aria.yaml": GOOD})
    res = run_cli("validate", str(tmp_path / "config"))
    assert res.code == 1 and "SECRETVALUE" not in res.out + res.err


def test_real_process_no_traceback(tmp_path: Path) -> None:
    """One end-to-end run through `python -m chapterx` (a real process, real exit code)."""
    path = _bot_tree(tmp_path, GOOD + "include_images: no\n")
    proc = subprocess.run([sys.executable, "-m", "chapterx", "validate", str(path)], capture_output=True,
                          text=True, cwd=REPO_DIR, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"{path}:3: error: include_images" in proc.stdout and "write false" in proc.stdout


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_unreadable_file_even_as_root() -> None:
    """/proc/self/mem exists but cannot be read from offset 0 (EIO), even by root."""
    res = run_cli("validate", "/proc/self/mem")
    assert res.code == 2
    _assert_one_line(res.out, Path("/proc/self/mem"), None)
    assert "cannot read file" in res.out


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("? [a]\n: b\n", "complex"),
        ("a: !!set {x}\n", "unsupported YAML value"),
        ("a: !!binary aGVsbG8=\n", "binary"),
        ("a: " + "[" * 3000 + "\n", "nested too deeply"),
        ("a: *nope\n", "undefined alias"),
    ],
)
def test_odd_yaml_constructs(content: str, needle: str, tmp_path: Path) -> None:
    path = _bot_tree(tmp_path, content)
    res = run_cli("validate", str(path))
    assert res.code == 1
    _assert_one_line(res.out, path, None)
    assert needle in res.out
