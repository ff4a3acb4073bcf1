"""`chapterx migrate` end to end: real deployments in, a ChapterX tree that validates out, safely."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from chapterx.cli import main
from chapterx.config.validate import validate_paths
from chapterx_compat.chapter2.load import list_ems, load
from tests.conftest import FIXTURES_DIR, SHARED_DIR, shared_path

HARBOUR = FIXTURES_DIR / "chapter2" / "harbour" / "ems"


def _tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under root -> (sha256 or 'dir'/'link', mode)."""
    out: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link:" + os.readlink(p), st.st_mode)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mode)
            else:
                out[rel] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mode)
    return out


def _deployments() -> list[Path]:
    found = [HARBOUR]
    corpus = SHARED_DIR / "corpus" / "chapter2"
    if corpus.is_dir():
        for snap in sorted(corpus.iterdir()):
            for sub in ("ems", "people"):
                d = snap / sub
                if d.is_dir() and list_ems(d):
                    found.append(d)
    sample = SHARED_DIR / "golden" / "chapter2" / "sample-ems" / "ems"
    if sample.is_dir():
        found.append(sample)
    return found


DEPLOYMENTS = _deployments()


def _id(p: Path) -> str:
    return "/".join(p.parts[-3:])


@pytest.mark.parametrize("ems", DEPLOYMENTS, ids=[_id(p) for p in DEPLOYMENTS])
def test_every_em_loads_and_migrates_to_a_valid_tree(ems: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = list_ems(ems)
    assert names
    for name in names:
        res = load(ems, name)
        assert res.config.em.sysname == name
    before = _tree_digest(ems)
    out = tmp_path / "out"
    assert main(["migrate", str(ems), "--out", str(out)]) == 0
    assert _tree_digest(ems) == before, "migrate changed the source tree"
    bots = sorted(p.stem for p in (out / "config" / "bots").glob("*.yaml"))
    assert bots == sorted(names)
    reports = validate_paths([out / "config"])
    errors = [(r.path, p.message) for r in reports for p in r.errors]
    assert errors == []
    assert any(r.path.endswith("shared.yaml") for r in reports)
    report = json.loads((out / "migration-report.json").read_text())
    assert report["summary"]["ems"] == len(names)
    assert (out / "MIGRATION_REPORT.md").read_text().startswith("# chapter2 -> chapterx migration report")


def test_rerun_is_byte_identical_and_force_replaces(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["migrate", str(HARBOUR), "--out", str(a)]) == 0
    assert main(["migrate", str(HARBOUR), "--out", str(b)]) == 0
    assert _tree_digest(a) == _tree_digest(b)
    first = _tree_digest(a)
    (a / "config" / "bots" / "gull.yaml").write_text("# edited\n")
    assert main(["migrate", str(HARBOUR), "--out", str(a), "--force"]) == 0
    assert _tree_digest(a) == first
    assert (tmp_path / "a.previous-1" / "config" / "bots" / "gull.yaml").read_text() == "# edited\n"  # moved aside
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders left behind"
    (a / "stale.txt").write_text("not written by migrate")
    assert main(["migrate", str(HARBOUR), "--out", str(a), "--force"]) == 2  # never replaced (issue 9 item 6)


def test_tokens_are_files_with_mode_0600_and_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    for em in ("gull", "tern", "skua"):
        token_file = out / "config" / "bots" / f"{em}_discord_token"
        source = (HARBOUR / em / "discord_token").read_text().strip()
        assert token_file.read_text().strip() == source
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert source not in printed.out + printed.err
        for f in out.rglob("*"):
            if f.is_file() and not f.name.endswith("_discord_token"):
                assert source not in f.read_text(errors="replace"), f
    assert stat.S_IMODE((out / "config" / "shared.yaml").stat().st_mode) == 0o600
    assert main(["migrate", str(HARBOUR), "--dry-run", "--json"]) == 0
    printed = capsys.readouterr()
    assert "not-a-real-token" not in printed.out + printed.err
    assert "sk-TEST-not-a-key" not in printed.out + printed.err


def test_dry_run_writes_nothing_and_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out), "--dry-run"]) == 0
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    text = capsys.readouterr().out
    assert "migration report" in text and "gull" in text and "nothing was written" in text
    assert main(["migrate", str(HARBOUR), "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["sysname"] for e in report["ems"]] == ["gull", "skua", "tern"]


def test_bots_selection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out), "--bots", "tern"]) == 0
    assert sorted(p.name for p in (out / "config" / "bots").iterdir()) == ["tern.yaml", "tern_discord_token"]
    assert main(["migrate", str(HARBOUR), "--dry-run", "--bots", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err


def test_every_configured_key_has_exactly_one_verdict() -> None:
    from chapterx_compat.chapter2.translate import translate

    res = load(HARBOUR, "gull")
    t = translate(res)
    keys = [o.key for o in t.outcomes]
    assert len(keys) == len(set(keys))
    written = set(res.kv) - {"folder", "sysname", "ensembles", "interfaces"}
    normalised = {res.renamed.get(k, k) for k in written}
    inverse = {old: new for new, old in res.renamed.items()}
    expected = {inverse.get(k, k) for k in written} | {k for k in normalised}
    expected = {k for k in expected if "-" not in k and k not in res.renamed.values()}
    missing = expected - set(keys) - {"name"}
    assert missing == set(), missing
    statuses = {o.key: o.status for o in t.outcomes}
    assert statuses["nicknames"] == "unsupported"
    assert statuses["top_p"] == "approximated" and "top_p" not in t.bot
    assert statuses["continuation_model"] == "approximated"
    assert t.bot["continuation_model"] == "meta-llama/Llama-3.1-70B"
    assert t.bot["max_tokens"] == 90 and t.bot["name"] == "Gull"


def test_unsupported_keys_are_a_comment_block_in_the_bot_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
    text = (out / "config" / "bots" / "gull.yaml").read_text()
    block = text[text.index("no chapterx equivalent"):]
    for key in ("nicknames", "reply_on_sim", "legacy", "ensembles.1 (exa_search)"):
        assert re.search(rf"^#   {re.escape(key)}: ", block, re.M), key
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(text)
    assert "nicknames" not in data
    # chapter2 rules read reply_on_name/nicknames from chapter2_em: no top-level key that only warns
    assert "reply_on_name" not in data and data["activation_rules"] == "chapter2"
    assert "those also in `chapter2_em` above are read from there" in block
    capsys.readouterr()
    assert main(["validate", str(out / "config" / "bots" / "gull.yaml")]) == 0
    assert "reply_on_name" not in "".join(capsys.readouterr())
    assert data["chapter2_prompt"]["ensembles"][0]["faculty"] == "character"
    assert data["chapter2_prompt"]["mufflers"] == ["has_url"]  # honoured by chapterx's chapter2 mode
    assert "#   mufflers:" not in block
    assert data["plugin_config"]["character"]["chr_path"] == "gull/gull.chr"
    assert (out / "config" / "bots" / "gull" / "gull.chr" / "sayings.txt").read_bytes() == (
        HARBOUR / "gull" / "gull.chr" / "sayings.txt"
    ).read_bytes()


def test_header_template_and_colon_format_are_preserved(tmp_path: Path) -> None:
    from chapterx_compat.chapter2.api import translate_em

    bot = translate_em(HARBOUR, "tern")
    prompt = bot["chapter2_prompt"]
    assert prompt["message_history_header"] == "Harbour radio log, {now:%Y-%m-%d}.\n"
    assert prompt["message_history_format"]["name"] == "colon"
    assert prompt["split_message"] is False
    assert bot["mode"] == "prefill" and bot["include_images"] is True
    assert "discord_token" not in json.dumps(bot)


def test_vendors_are_consolidated_with_kinds_and_globs(tmp_path: Path) -> None:
    from ruamel.yaml import YAML

    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
    shared = YAML(typ="safe").load((out / "config" / "shared.yaml").read_text())
    vendors = shared["vendors"]
    assert list(vendors) == ["openaicompletion-lan", "anthropic"]
    assert vendors["openaicompletion-lan"]["provides"] == ["meta-llama/*"]
    assert vendors["anthropic"]["provides"] == ["claude-*"]
    report = json.loads((out / "migration-report.json").read_text())
    lan = next(v for v in report["vendors"] if v["source_name"] == "openai-lan")
    assert lan["untranslated_provides"] == ["mistral-(7b|8x7b)"]
    skua = next(e for e in report["ems"] if e["sysname"] == "skua")
    assert any("mistral-7b" in w for w in skua["warnings"])


# ------------------------------------------------------------------------ unsafe outputs and bad inputs


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def _assert_one_line(err: str, *needles: str) -> None:
    assert err.count("\n") == 1, err
    assert err.startswith("chapterx: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


def test_refuses_unsafe_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "ems"
    shutil.copytree(HARBOUR, src)
    before = _tree_digest(src)
    rc, err = _run(["migrate", str(src), "--out", str(src / "out")], capsys)
    assert rc == 2
    _assert_one_line(err, "inside the ems folder")
    rc, err = _run(["migrate", str(src), "--out", str(tmp_path), "--force"], capsys)
    assert rc == 2
    _assert_one_line(err, "contains the ems folder")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    rc, err = _run(["migrate", str(src), "--out", str(busy)], capsys)
    assert rc == 2
    _assert_one_line(err, "not empty", "--force")
    assert (busy / "keep.txt").read_text() == "x"
    rc, err = _run(["migrate", str(src)], capsys)
    assert rc == 2
    assert _tree_digest(src) == before


def _broken_deployment(tmp_path: Path, kind: str) -> tuple[Path, str, str]:
    """A copy of the harbour deployment with one defect; returns (ems, em, file name in the error)."""
    ems = tmp_path / "ems"
    shutil.copytree(HARBOUR, ems)
    if kind == "broken-yaml":
        (ems / "tern" / "config.yaml").write_text("name: Tern\nstop_sequences: [\"###\"\n")
        return ems, "tern", "tern/config.yaml"
    if kind == "no-config":
        (ems / "petrel").mkdir()
        return ems, "petrel", "petrel/config.yaml"
    if kind == "keyfile-dir":
        (ems / "skua" / "temperature").mkdir()
        return ems, "skua", "skua/temperature"
    if kind == "symlink-loop":
        link = ems / "gull" / "config.yaml"
        link.unlink()
        link.symlink_to(link)
        return ems, "gull", "gull/config.yaml"
    if kind == "token-is-dir":
        (ems / "tern" / "discord_token").unlink()
        (ems / "tern" / "discord_token").mkdir()
        return ems, "tern", "tern/discord_token"
    if kind == "token-dangling":
        tok = ems / "skua" / "discord_token"
        tok.unlink()
        tok.symlink_to(tmp_path / "nowhere" / "token")
        return ems, "skua", "skua/discord_token"
    if kind == "not-a-mapping":
        (ems / "gull" / "config.yaml").write_text("- temperature: 0.5\n")
        return ems, "gull", "gull/config.yaml"
    raise AssertionError(kind)


BAD = ["broken-yaml", "no-config", "keyfile-dir", "symlink-loop", "token-is-dir", "token-dangling", "not-a-mapping"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_gives_one_line_naming_em_and_file(kind: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ems, em, file = _broken_deployment(tmp_path, kind)
    out = tmp_path / "out"
    rc, err = _run(["migrate", str(ems), "--out", str(out)], capsys)
    assert rc == 1
    _assert_one_line(err, f"'{em}'", file)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_unreadable_token_when_permissions_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ems = tmp_path / "ems"
    shutil.copytree(HARBOUR, ems)
    tok = ems / "gull" / "discord_token"
    tok.chmod(0)
    try:
        try:
            tok.read_bytes()
        except PermissionError:
            pass
        else:
            pytest.skip("running with privileges that ignore file modes (root)")
        rc, err = _run(["migrate", str(ems), "--out", str(tmp_path / "out")], capsys)
        assert rc == 1
        _assert_one_line(err, "'gull'", "discord_token", "permission denied")
    finally:
        tok.chmod(0o644)


def test_missing_dir_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _run(["migrate", str(tmp_path / "nope"), "--out", str(tmp_path / "out")], capsys)
    assert rc == 2
    _assert_one_line(err, "nope", "no such folder")


def test_tools_entry_point_runs_migrate(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(repo / "tools" / "migrate.py"), str(HARBOUR), "--dry-run", "--json"],
        capture_output=True, text=True, cwd=repo, timeout=120,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["ems"] == 3


def test_shared_golden_sample_is_present_when_shared_exists() -> None:
    shared_path("golden", "chapter2", "sample-ems", "ems")
    assert any(p.name == "ems" and "sample-ems" in str(p) for p in DEPLOYMENTS)


def test_nested_secrets_are_masked_in_bot_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ems = tmp_path / "ems"
    shutil.copytree(HARBOUR, ems)
    (ems / "skua" / "config.yaml").write_text(
        "continuation_model: claude-3-haiku\n"
        "ensembles:\n"
        "  - faculty: airtable_notes\n"
        "    airtable: {base_id: app1, table_id: tbl1, api_token: pat-SECRET-airtable}\n"
        "    ensemble_format: [{format: {}}]\n"
        "  - faculty: sim\n"
        "    em:\n"
        "      name: inner\n"
        "      sysname: inner\n"
        "      folder: ems/inner\n"
        "      exa_search_api_key: exa-SECRET-inner\n"
        "      vendors: {anthropic: {config: {anthropic_api_key: sk-ant-SECRET-inner}}}\n"
    )
    out = tmp_path / "out"
    assert main(["migrate", str(ems), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    for f in [*out.rglob("*.yaml"), *out.rglob("*.md"), *out.rglob("*.json")]:
        text = f.read_text()
        for secret in ("pat-SECRET-airtable", "exa-SECRET-inner", "sk-ant-SECRET-inner"):
            if f.name != "shared.yaml":
                assert secret not in text, (f, secret)
    assert "SECRET" not in printed.out + printed.err
    bot = (out / "config" / "bots" / "skua.yaml").read_text()
    assert "airtable_notes" in bot and "**********" in bot


def test_single_em_folder_gets_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _run(["migrate", str(HARBOUR / "tern"), "--out", str(tmp_path / "out")], capsys)
    assert rc == 2
    _assert_one_line(err, "one em folder", "--bots tern")


def test_failure_while_writing_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import chapterx_compat.chapter2.migrate as mig

    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
    before = _tree_digest(out)
    calls = {"n": 0}
    real = shutil.copyfile

    def flaky(src: object, dst: object, **kw: object) -> object:
        calls["n"] += 1
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(mig.shutil, "copyfile", flaky)
    rc, err = _run(["migrate", str(HARBOUR), "--out", str(out), "--force"], capsys)
    assert rc == 1 and calls["n"] == 1
    _assert_one_line(err, "cannot copy", "sayings.txt")
    assert _tree_digest(out) == before, "the previous output must survive a failed rerun"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "temporary folders left behind"
    fresh = tmp_path / "fresh"
    rc, _ = _run(["migrate", str(HARBOUR), "--out", str(fresh)], capsys)
    assert rc == 1 and not fresh.exists()
    monkeypatch.setattr(mig.shutil, "copyfile", real)


def test_every_chapter2_key_gets_exactly_one_verdict(tmp_path: Path) -> None:
    """All 35 em keys and all discord/completions interface keys, set explicitly, flat."""
    from chapterx_compat.chapter2 import models as m
    from chapterx_compat.chapter2.migrate import dump_yaml
    from chapterx_compat.chapter2.translate import translate

    em = m.EmConfig(name="x", sysname="x", folder=Path("x")).model_dump(mode="python")
    flat: dict[str, object] = {k: v for k, v in em.items() if k not in ("sysname", "folder")}
    flat.update(exa_search_api_key="exa-X", novelai_api_key="nai-X", best_of=2,
                logit_bias={"7": -1.0}, continuation_options={"a": 1}, name="Petrel")
    iface = m.DiscordInterfaceConfig().model_dump(mode="python")
    flat.update({k: v for k, v in iface.items() if k != "name"})
    flat.update(discord_token="tok-X", discord_proxy_url="http://127.0.0.1:1", end_to_end_test_discord_token="e2e",
                end_to_end_test_discord_channel_id=1, airtable={"base_id": "b", "table_id": "t", "api_token": "a"},
                port=5000, default_name="user", reply_on_regex="x", nicknames=["p"], addons=[
                    {"name": "generate_avatar", "prompt": "a bird"}])
    ems = tmp_path / "ems"
    (ems / "petrel").mkdir(parents=True)
    (ems / "petrel" / "config.yaml").write_text(dump_yaml({k: v for k, v in flat.items()}))
    res = load(ems, "petrel")
    t = translate(res)
    keys = [o.key for o in t.outcomes]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    missing = set(flat) - set(keys)
    assert missing == set(), sorted(missing)
    assert {o.status for o in t.outcomes} == {"mapped", "approximated", "unsupported"}


def test_migrated_bot_builds_the_chapter2_prompt(tmp_path: Path) -> None:
    """The keys migrate emits are the ones chapterx's chapter2 prompt assembly reads (contract test)."""
    from datetime import datetime

    from ruamel.yaml import YAML

    prompt_mod = pytest.importorskip("chapterx_compat.chapter2.formats.prompt")
    from chapterx_compat.chapter2.formats.messages import Author, Message

    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
    bots = out / "config" / "bots"
    gull = YAML(typ="safe").load((bots / "gull.yaml").read_text())
    settings = prompt_mod.chapter2_prompt_from_bot_config(gull)
    history = [Message(Author("ferris"), "gull, when does the tide turn?")]
    result = prompt_mod.build_prompt(settings, history, em_name=gull["name"], now=datetime(2025, 3, 14, 15, 9),
                                     base_dir=bots)
    assert "the tide turns at six" in result.prompt  # from the carried gull.chr
    assert result.prompt.startswith("From the gull's notebook.\n###\n")
    assert result.prompt.endswith("<ferris> gull, when does the tide turn?\n<Gull>")
    tern = YAML(typ="safe").load((bots / "tern.yaml").read_text())
    result = prompt_mod.build_prompt(prompt_mod.chapter2_prompt_from_bot_config(tern), history, em_name=tern["name"],
                                     now=datetime(2025, 3, 14, 15, 9), base_dir=bots)
    assert result.prompt.startswith("Harbour radio log, 2025-03-14.\nferris: gull, when does the tide turn?\n")
    assert result.prompt.endswith("Tern:")


def test_migrated_chapter2_prompt_is_known_and_survives_resolution(tmp_path: Path) -> None:
    """The chapterx-only keys migrate emits are part of the bot schema: no warning, kept after merge."""
    from chapterx.config.load import resolve_bot_config

    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
    reports = validate_paths([out / "config"])
    about_ext = [p.message for r in reports for p in r.warnings if "chapter2_prompt" in p.message or "chr_path" in p.message]
    assert about_ext == []
    with_prompt = [p for p in sorted((out / "config" / "bots").glob("*.yaml")) if "chapter2_prompt:" in p.read_text()]
    assert with_prompt, "fixture deployment should need chapter2 prompt assembly"
    resolved = resolve_bot_config(bot_file=with_prompt[0], env={})
    assert isinstance(resolved.config.get("chapter2_prompt"), dict)


def test_chapter2_home_flag_applies_home_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """~/.config/chapter2 layers apply only when asked, in validate and config show alike."""
    home = tmp_path / "home"
    (home / ".config" / "chapter2").mkdir(parents=True)
    (home / ".config" / "chapter2" / "config.yaml").write_text("home_only_marker: 1\n")
    monkeypatch.setenv("HOME", str(home))

    def marker_warnings(*extra: str) -> int:
        assert main(["validate", str(HARBOUR), "--json", *extra]) == 0
        report = json.loads(capsys.readouterr().out)
        return sum("home_only_marker" in w["message"] for f in report["files"] for w in f["warnings"])

    assert marker_warnings() == 0
    assert marker_warnings("--chapter2-home") > 0


def test_an_otlp_logs_folder_beside_the_ems_is_not_an_em(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """deployment.md has the collector write chapter2 spans to `<ems>/logs/`; migrate must not
    take that folder for an em (it stopped the whole migration)."""
    ems = tmp_path / "ems"
    shutil.copytree(HARBOUR, ems)
    (ems / "logs").mkdir()
    (ems / "logs" / "spans.jsonl").write_text("{}\n")
    out = tmp_path / "out"
    assert main(["migrate", str(ems), "--out", str(out)]) == 0, capsys.readouterr().err
    assert not (out / "config" / "bots" / "logs.yaml").exists()
    assert {p.stem for p in (out / "config" / "bots").glob("*.yaml")} == set(list_ems(HARBOUR))
