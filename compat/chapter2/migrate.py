"""Plan and write a chapter2 -> ChapterX migration.

`plan_migration` reads the deployment and computes every output file in memory (pure apart from
the reads), so `--dry-run` and the real run share one code path and reruns are byte-identical.
`write_plan` writes into a temporary sibling folder and renames it into place at the end, so a
failure never leaves a half-written tree, and never touches the source.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chapterx.config.secrets import mask_secrets
from chapterx.config.vendors import glob_matches
from chapterx.errors import UsageError, UserError
from chapterx.procs import pid_alive
from chapterx_compat.chapter2.load import Chapter2Error, list_ems, load
from chapterx_compat.chapter2.runtime.rules import bot_keys as rules_bot_keys
from chapterx_compat.chapter2.runtime.rules import describe as describe_rules
from chapterx_compat.chapter2.translate import CHAPTER2_PROMPT_KEY, Outcome, Translation, translate
from chapterx_compat.chapter2.vendors import VendorTranslation, translate_vendor

REPORT_VERSION = 1
SECRET_MODE = 0o600
# Strings a YAML reader (1.1 or 1.2) would turn into something else, or that need quoting.
_AMBIGUOUS = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|~|null|Null|NULL"
    r"|[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|[-+]?0[xob][0-9a-fA-F_]+|[0-9]+(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*|<<|=)$"
)
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ ./+@-]*$")


def _scalar(value: Any) -> str:
    """One YAML scalar that reads back as exactly `value` under YAML 1.1 and 1.2 readers."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        return text if ("." in text or "e" not in text) else text.replace("e", ".0e", 1)
    text = str(value)
    if _PLAIN.match(text) and not text.endswith(" ") and not _AMBIGUOUS.match(text):
        return text
    # JSON strings are valid YAML double-quoted scalars; escape what YAML 1.1 treats as line breaks.
    return json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace(
        "\u2029", "\\u2029").replace("\x85", "\\x85")


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            key = _scalar(str(k))
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{key}:\n")
                _emit(v, indent + 2, out)
            else:
                out.append(f"{pad}{key}: {_inline(v)}\n")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                out.append(f"{pad}- {sub[0][indent + 2:]}")
                out.extend(sub[1:])
            elif isinstance(item, list) and item:
                out.append(f"{pad}-\n")
                _emit(item, indent + 2, out)
            else:
                out.append(f"{pad}- {_inline(item)}\n")


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def dump_yaml(data: dict[str, Any]) -> str:
    """Block-style YAML for plain data (dicts, lists, str, int, float, bool, None), key order kept.

    A small emitter of our own: ruamel's pure-Python emitter made a 200-em migration miss its
    5 s budget, and this subset is simple to get exactly right (tests round-trip it).
    """
    out: list[str] = []
    _emit(data, 0, out)
    return "".join(out)


def _flow(value: Any) -> str:
    """A value on one line (for comments): JSON is valid YAML and unambiguous."""
    return json.dumps(value, ensure_ascii=False, default=str).replace("Infinity", ".inf")


# ----------------------------------------------------------------------------- planning


@dataclass
class VendorRow:
    """One vendor in the consolidated shared.yaml (or one that could not be carried)."""

    name: str | None
    source_name: str
    kind: str
    entry: dict[str, Any] | None
    ems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)

    @property
    def chapterx_kind(self) -> str | None:
        """The adapter kind ChapterX picks for the written vendor (what `config show` prints)."""
        if self.name is None or self.entry is None:
            return None
        from chapterx.config.vendors import vendor_kind

        return vendor_kind(self.name, self.entry.get("config") or {})

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source_name": self.source_name,
            # ChapterX's kind for a carried vendor (as `config show` names it), else chapter2's
            "kind": self.chapterx_kind or self.kind,
            "source_kind": self.kind,
            "provides": list((self.entry or {}).get("provides") or []),
            "untranslated_provides": self.untranslated,
            "ems": self.ems,
            "notes": self.notes,
        }


@dataclass
class Plan:
    ems_dir: Path
    translations: list[Translation]
    vendors: list[VendorRow]
    files: dict[str, bytes]  # relative path -> content
    modes: dict[str, int]
    copies: dict[str, Path]  # relative path -> source file (carried .chr texts)
    report: dict[str, Any]

    @property
    def unsupported_count(self) -> int:
        return sum(1 for t in self.translations for o in t.outcomes if o.status == "unsupported")


def _consolidate(translations: list[Translation]) -> list[VendorRow]:
    rows: list[VendorRow] = []
    by_name: dict[str, VendorRow] = {}
    dropped: dict[str, VendorRow] = {}
    for t in translations:
        for vname, entry in t.vendors.items():
            vt: VendorTranslation = translate_vendor(str(vname), entry if isinstance(entry, dict) else {})
            if vt.name is None:
                key = f"{vname}\0{json.dumps(entry, sort_keys=True, default=str)}"
                row = dropped.get(key)
                if row is None:
                    row = VendorRow(None, str(vname), vt.kind, None, notes=list(vt.notes))
                    dropped[key] = row
                    rows.append(row)
                row.ems.append(t.sysname)
                continue
            existing = by_name.get(vt.name)
            if existing is not None and existing.entry == vt.entry:
                existing.ems.append(t.sysname)
                continue
            name = vt.name
            notes = list(vt.notes)
            if existing is not None:
                name = f"{vt.name}-{t.sysname}"
                notes.append(
                    f"'{vt.name}' differs between ems; this copy (from '{t.sysname}') is written as '{name}'. "
                    "ChapterX vendors are shared by all bots: check which one each model should route to"
                )
            row = VendorRow(name, str(vname), vt.kind, vt.entry, [t.sysname], notes, vt.untranslated)
            by_name[name] = row
            rows.append(row)
    return rows


def _bot_file(t: Translation, source_label: str) -> str:
    head = (
        f"# chapterx bot '{t.sysname}', migrated from chapter2 em '{t.sysname}' ({source_label}) by `chapterx migrate`.\n"
        "# Every chapter2 setting is accounted for in MIGRATION_REPORT.md.\n"
        f"# `{CHAPTER2_PROMPT_KEY}` is a chapterx extension (chapter2 prompt layout); upstream ChapterX ignores it.\n"
    )
    body = dump_yaml(t.bot)
    unsupported = [o for o in t.outcomes if o.status == "unsupported"]
    tail = ""
    if unsupported:
        lines = [
            "",
            "# ---------------------------------------------------------------------------",
            "# chapter2 settings with no chapterx equivalent (inactive, kept for reference):",
        ]
        if t.bot.get("activation_rules") == "chapter2":
            lines.append("# (with `activation_rules: chapter2`, those also in `chapter2_em` above are read from there)")
        for o in unsupported:
            # Kept for reference in a 0644 file: API keys inside must not be copied along.
            lines.append(f"#   {o.key}: {_flow(mask_secrets(o.value, str(o.key)))}")
            lines.append(f"#     -> {o.note}")
        tail = "\n".join(lines) + "\n"
    return head + body + tail


def _outcome_json(o: Outcome) -> dict[str, Any]:
    return o.to_json()


def plan_migration(
    ems_dir: Path,
    *,
    bots: list[str] | None = None,
    home: bool = False,
    progress: Callable[[str], None] | None = None,
    bots_option: str = "--bots",
    activation_rules: str = "chapter2",
) -> Plan:
    """Load and translate every selected em; compute all output files. Raises one-line errors
    (`bots_option` names the caller's flag for `bots` in them)."""
    ems_dir = Path(ems_dir)
    if not ems_dir.exists():
        raise UsageError(f"{ems_dir}: no such folder")
    if not ems_dir.is_dir():
        raise UsageError(f"{ems_dir}: not a folder (expected a chapter2 ems/ folder)")
    try:
        names = list_ems(ems_dir)
    except OSError as exc:
        raise UsageError(f"{ems_dir}: cannot list folder: {exc.strerror}") from None
    if bots:
        missing = [b for b in bots if b not in names]
        if missing:
            raise UsageError(
                f"{bots_option}: no em folder named {', '.join(missing)} in {ems_dir} (found: {', '.join(names) or 'none'})"
            )
        wanted = set(bots)
        names = [n for n in names if n in wanted]
    else:  # `<ems>/logs/` holds chapter2's OTLP spans (deployment.md, fleet status): not an em
        from chapterx_compat.chapter2.api import _em_like

        names = [n for n in names if n != "logs" or _em_like(ems_dir / n)]
    if not names:
        if (ems_dir / "config.yaml").is_file() or (ems_dir / "discord_token").exists():
            raise UsageError(
                f"{ems_dir}: this looks like one em folder; pass the ems/ folder that holds it "
                f"(and {bots_option} {ems_dir.name} to select only this em)"
            )
        raise UserError(f"{ems_dir}: no em folders found (is this a chapter2 ems/ folder?)")
    translations: list[Translation] = []
    loaded_warnings: dict[str, list[str]] = {}
    errors: list[Chapter2Error] = []
    for name in names:
        try:
            res = load(ems_dir, name, home=home)
            if not any(f.parent == ems_dir / name for f in res.files):
                raise Chapter2Error(name, ems_dir / name / "config.yaml",
                                    "missing: the em folder has no config.yaml and no key-files (nothing to migrate)")
            t = translate(res)
            t.bot.update(rules_bot_keys(res.kv, activation_rules))
            if activation_rules == "chapter2":
                # chapter2's rules read it from `chapter2_em`; at the top level it only drew a
                # "has no effect" warning on every validate and every in-place start
                t.bot.pop("reply_on_name", None)
        except Chapter2Error as exc:
            errors.append(exc)
        else:
            t.other_files = _other_files(ems_dir / name, res.files, t.chr_dirs)
            loaded_warnings[name] = [p.message for p in res.warnings]
            translations.append(t)
        if progress:
            progress(name)
    if errors:
        more = f" (and {len(errors) - 1} more em(s) failed)" if len(errors) > 1 else ""
        raise UserError(f"{errors[0].message}{more}")

    vendors = _consolidate(translations)
    for t in translations:
        loaded_warnings[t.sysname].extend(_routing_warnings(t, vendors))
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    copies: dict[str, Path] = {}
    shared: dict[str, Any] = {"vendors": {r.name: r.entry for r in vendors if r.name and r.entry is not None}}
    shared_text = (
        "# chapterx shared config, migrated from chapter2 by `chapterx migrate`.\n"
        "# Vendors of every em, consolidated (see MIGRATION_REPORT.md for renames and provides).\n"
        + dump_yaml(shared)
    )
    files["config/shared.yaml"] = shared_text.encode()
    modes["config/shared.yaml"] = SECRET_MODE  # holds API keys
    source_label = ems_dir.name
    em_reports: list[dict[str, Any]] = []
    for t in translations:
        bot_rel = f"config/bots/{t.sysname}.yaml"
        files[bot_rel] = _bot_file(t, source_label).encode()
        token_rel = None
        if t.token:
            token_rel = f"config/bots/{t.sysname}_discord_token"
            files[token_rel] = (t.token + "\n").encode()
            modes[token_rel] = SECRET_MODE
        carried: list[str] = []
        for chr_name in sorted(set(t.chr_dirs) | set(_all_chr(ems_dir / t.sysname))):
            src = ems_dir / t.sysname / chr_name
            if not src.is_dir():
                loaded_warnings[t.sysname].append(f"{src}: character folder not found (the faculty would be empty)")
                continue
            em_root = (ems_dir / t.sysname).resolve()
            if not _is_inside(src.resolve(), em_root):
                loaded_warnings[t.sysname].append(f"{src}: link leaving the em folder, not followed (not copied)")
                continue
            for f in _walk_files(src, t.sysname, em_root, loaded_warnings.setdefault(t.sysname, [])):
                rel = f"config/bots/{t.sysname}/{chr_name}/{f.relative_to(src).as_posix()}"
                copies[rel] = f
            carried.append(chr_name)
        counts = {s: sum(1 for o in t.outcomes if o.status == s) for s in ("mapped", "approximated", "unsupported")}
        em_reports.append(
            {
                "sysname": t.sysname,
                "name": t.bot.get("name"),
                "model": t.bot.get("continuation_model"),
                "chapter2_vendor": t.vendor_choice,
                "bot_file": bot_rel,
                "activation_rules": activation_rules,
                "token_file": token_rel,
                "chr_folders": carried,
                "files_not_carried": t.other_files,
                "counts": counts,
                "keys": [_outcome_json(o) for o in t.outcomes],
                "defaults_carried": t.defaults_carried,
                "warnings": loaded_warnings.get(t.sysname, []) + t.warnings,
            }
        )
    totals = {s: sum(e["counts"][s] for e in em_reports) for s in ("mapped", "approximated", "unsupported")}
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "source": str(ems_dir.resolve()),
        "home_layers": home,
        "summary": {"ems": len(em_reports), "vendors": sum(1 for r in vendors if r.name), **totals},
        "chapterx_extension_keys": [CHAPTER2_PROMPT_KEY, "plugin_config.character.chr_path"],
        "ems": em_reports,
        "vendors": [r.to_json() for r in vendors],
        "files": sorted([*files, *copies, "MIGRATION_REPORT.md", "migration-report.json"]),
    }
    files["migration-report.json"] = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()
    files["MIGRATION_REPORT.md"] = render_markdown(report).encode()
    return Plan(ems_dir, translations, vendors, files, modes, copies, report)


def _routing_warnings(t: Translation, vendors: list[VendorRow]) -> list[str]:
    """Say when ChapterX will not route the em's model to the vendor chapter2 used."""
    model = str(t.bot.get("continuation_model"))
    if t.vendor_choice is None:
        return []
    row = next((r for r in vendors if r.source_name == t.vendor_choice and t.sysname in r.ems), None)
    if row is None:
        return [f"chapter2 routed '{model}' to vendor '{t.vendor_choice}', which is not in this em's vendors "
                "(intermodel's name heuristics); check the ChapterX routing"]
    if row.name is None:
        return [f"chapter2 routed '{model}' to vendor '{t.vendor_choice}', which has no ChapterX equivalent"]
    globs = list((row.entry or {}).get("provides") or [])
    if not any(glob_matches(g, model) for g in globs):
        return [f"chapter2 routed '{model}' to vendor '{t.vendor_choice}' but no translated provides glob of "
                f"'{row.name}' matches it: ChapterX will route it by its own heuristics; add a glob to shared.yaml"]
    return []


def _all_chr(em_dir: Path) -> list[str]:
    try:
        return sorted(p.name for p in em_dir.iterdir() if p.name.endswith(".chr") and p.is_dir())
    except OSError:
        return []


def _walk_files(root: Path, em: str, em_root: Path, skipped: list[str]) -> list[Path]:
    """Regular files under a .chr folder, sorted. Links are followed only while they stay inside
    the em folder: one leaving it (a private key, another em's token) is reported in `skipped`."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for dn in list(dirnames):
            d = Path(dirpath) / dn
            if d.is_symlink():
                skipped.append(f"{d}: linked folder not followed (not copied)" if _is_inside(d.resolve(), em_root)
                               else f"{d}: link leaving the em folder, not followed (not copied)")
                dirnames.remove(dn)
        for fn in sorted(filenames):
            p = Path(dirpath) / fn
            try:
                if p.is_symlink() and not _is_inside(p.resolve(), em_root):
                    skipped.append(f"{p}: link leaving the em folder, not followed (not copied)")
                    continue
                if p.is_file():
                    out.append(p)
                elif p.is_symlink():
                    skipped.append(f"{p}: link to no regular file (not copied)")
            except (OSError, RuntimeError) as exc:
                raise Chapter2Error(em, p, getattr(exc, "strerror", None) or "unreadable") from None
    return out


def _other_files(em_dir: Path, read: list[Path], chr_dirs: list[str]) -> list[str]:
    skip = {p.name for p in read} | {"config.yaml", "discord_token"} | set(chr_dirs)
    try:
        return sorted(
            p.name for p in em_dir.iterdir() if p.name not in skip and not p.name.endswith(".chr")
        )
    except OSError:
        return []


# ----------------------------------------------------------------------------- report


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", "\\n")


def render_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [
        "# chapter2 -> chapterx migration report",
        "",
        f"Source: `{report['source']}`" + (" (with ~/.config/chapter2 layers)" if report["home_layers"] else ""),
        "",
        f"{s['ems']} em(s), {s['vendors']} vendor(s). Keys: {s['mapped']} mapped, {s['approximated']} approximated, "
        f"{s['unsupported']} unsupported (unsupported keys are also listed at the end of each bot file).",
        "",
        "Statuses: **mapped** = same behaviour; **approximated** = carried over, behaviour changes as noted; "
        "**unsupported** = no equivalent, nothing was applied.",
        "",
        f"`{CHAPTER2_PROMPT_KEY}` is a chapterx extension that keeps chapter2's prompt layout (message format, "
        "header/footer with `{now:...}` templating, ensembles, name prefix, line splitting). Upstream ChapterX "
        "ignores it.",
        "",
        "## Summary",
        "",
        "| em | name | model | chapter2 vendor | mapped | approximated | unsupported | warnings |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in report["ems"]:
        c = e["counts"]
        lines.append(
            f"| {e['sysname']} | {_md_escape(e['name'])} | {_md_escape(e['model'])} | {e['chapter2_vendor'] or '-'} "
            f"| {c['mapped']} | {c['approximated']} | {c['unsupported']} | {len(e['warnings'])} |"
        )
    lines += ["", "## Vendors (config/shared.yaml)", "", "| chapterx vendor | chapter2 vendor | kind | provides | ems | notes |",
              "|---|---|---|---|---|---|"]
    for v in report["vendors"]:
        notes = "; ".join(v["notes"])
        lines.append(
            f"| {v['name'] or '(not carried)'} | {v['source_name']} | {v['kind']} | "
            f"{_md_escape(', '.join(v['provides']) or '-')} | {', '.join(v['ems'])} | {_md_escape(notes)} |"
        )
    for e in report["ems"]:
        lines += ["", f"## {e['sysname']}", "", f"- bot file: `{e['bot_file']}`"]
        if e.get("activation_rules"):
            lines.append(f"- activation rules: {describe_rules(e['activation_rules'])}")
        if e["token_file"]:
            lines.append(f"- token: `{e['token_file']}` (mode 0600)")
        if e["chr_folders"]:
            lines.append(f"- character texts: {', '.join('`' + c + '`' for c in e['chr_folders'])} "
                         f"copied to `config/bots/{e['sysname']}/`")
        if e["files_not_carried"]:
            lines.append(f"- files not carried: {', '.join('`' + f + '`' for f in e['files_not_carried'])}")
        if e["defaults_carried"]:
            lines.append("- chapter2 defaults written explicitly: " + "; ".join(e["defaults_carried"]))
        if e["keys"]:
            lines += ["", "| chapter2 key | status | chapterx key | note |", "|---|---|---|---|"]
            for k in e["keys"]:
                lines.append(
                    f"| {_md_escape(k['key'])} | {k['status']} | {_md_escape(k['target'] or '-')} | {_md_escape(k['note'])} |"
                )
        if e["warnings"]:
            lines += ["", "Warnings:", ""]
            lines += [f"- {_md_escape(w)}" for w in e["warnings"]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- writing


def _is_inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


REPORT_NAME = "migration-report.json"


def _written_by_migrate(dst: Path) -> bool:
    """Does `dst` hold only what a previous migrate wrote (the files its report lists)?"""
    try:
        report = json.loads((dst / REPORT_NAME).read_text(encoding="utf-8"))
        listed = set(report["files"]) if isinstance(report, dict) and isinstance(report.get("files"), list) else None
    except (OSError, ValueError, TypeError, KeyError):
        return False
    if listed is None:
        return False
    for dirpath, _dirnames, filenames in os.walk(dst, followlinks=False):
        for fn in filenames:
            if (Path(dirpath) / fn).relative_to(dst).as_posix() not in listed:
                return False
    return True


def check_output(ems_dir: Path, out: Path, force: bool) -> None:
    """Refuse outputs that would write into the source or clobber something: without --force any
    non-empty folder, with --force any folder holding files a previous migrate did not write (a
    deployment root with a venv, logs and tokens must never be replaced)."""
    src = ems_dir.resolve()
    dst = out.resolve()
    if _is_inside(dst, src):
        raise UsageError(f"--out {out} is inside the ems folder {ems_dir}: migrate never writes into the source")
    if _is_inside(src, dst):
        raise UsageError(f"--out {out} contains the ems folder {ems_dir}: refusing to replace it")
    if dst.exists():
        if not dst.is_dir():
            raise UsageError(f"--out {out} exists and is not a folder")
        if any(dst.iterdir()):
            if not force:
                raise UsageError(f"--out {out} is not empty (use --force to replace it)")
            if not _written_by_migrate(dst):
                raise UsageError(f"--out {out} holds files migrate did not write (a deployment root?); "
                                 "refusing to replace it even with --force: choose a new folder")


_TMP_RE = re.compile(r"^\.(?P<name>.+)\.migrate-(?P<pid>\d+)-")




def remove_stale_temps(out: Path) -> list[Path]:
    """Hidden temp folders of killed runs for this output (they can hold copies of every token)."""
    removed: list[Path] = []
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        m = _TMP_RE.match(p.name)
        if m and m.group("name") == out.name and p.is_dir() and not p.is_symlink() and not pid_alive(int(m.group("pid"))):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _write_file(dest: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(dest, mode)  # umask-proof
    except OSError as exc:
        raise UserError(f"{dest.name}: cannot write the migrated tree ({exc.strerror or exc})") from None


def write_plan(plan: Plan, out: Path, *, force: bool = False) -> Path | None:
    """Write everything into a private temporary sibling folder, then rename it to `out`.

    The rename is the emptiness check: it only replaces a missing or empty folder, so a folder
    created meanwhile is never replaced. With --force, a previous migrate output is moved aside to
    `<out>.previous-<n>` (returned), never deleted.
    """
    check_output(plan.ems_dir, out, force)
    out = out.resolve()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out.parent}: cannot create ({exc.strerror})") from None
    remove_stale_temps(out)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.migrate-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise UserError(f"{out.parent}: cannot write the migrated tree ({exc.strerror})") from None
    aside: Path | None = None
    try:
        for rel in sorted({*plan.files, *plan.copies}):
            dest = tmp / rel
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"{rel}: cannot write the migrated tree ({exc.strerror})") from None
            if rel in plan.files:
                _write_file(dest, plan.files[rel], plan.modes.get(rel, 0o644))
            else:
                src = plan.copies[rel]
                try:
                    shutil.copyfile(src, dest, follow_symlinks=True)
                    os.chmod(dest, 0o644 & os.stat(src).st_mode | 0o600)  # never wider than the source
                except OSError as exc:
                    raise UserError(f"{src}: cannot copy: {exc.strerror}") from None
        os.chmod(tmp, 0o755)  # noqa: S103 - the em folder; its files keep modes no wider than their sources
        if out.exists() and any(out.iterdir()):
            if not force or not _written_by_migrate(out):
                raise UsageError(f"--out {out} appeared or changed while migrating; left untouched")
            aside = _aside_name(out)
            os.rename(out, aside)
        try:
            os.rename(tmp, out)  # atomic; fails on a non-empty folder created meanwhile
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise UsageError(f"--out {out} appeared while migrating; left untouched"
                                 + (f" (the previous output is in {aside})" if aside else "")) from None
            raise UserError(f"{out}: cannot rename the migrated tree into place ({exc.strerror})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return aside


def _aside_name(out: Path) -> Path:
    n = 1
    while True:
        candidate = out.with_name(f"{out.name}.previous-{n}")
        if not candidate.exists():
            return candidate
        n += 1
