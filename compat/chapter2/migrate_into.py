"""`chapterx migrate EMS --into CONFIG_ROOT`: add migrated ems to an existing ChapterX deployment.

The plain `migrate --out` writes a fresh tree; moving its `config/` over a live one would replace
`shared.yaml` (every vendor and key) and put tokens where the systemd units do not look. Here the
migration plan is merged instead, with these rules:

- vendors merge by name: a new name is added to `shared.yaml` (inserted as text, so the rest of the
  file, comments included, stays byte-for-byte); the same name with the same settings is left alone;
  the same name with other settings is a conflict, reported and never overwritten;
- a bot whose `bots/<em>.yaml` (or token) already exists is refused unless forced for that bot;
- tokens go to `<CONFIG_ROOT>/../tokens/<em>_token` (0600), where `chapterx fleet units` reads them;
- nothing is written unless every check passes; each file is written to a temporary name and
  renamed into place; the report lists every file created, replaced or changed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chapterx.errors import UsageError, UserError
from chapterx.fleet.units import token_path
from chapterx_compat.chapter2.migrate import SECRET_MODE, Plan, dump_yaml

SHARED = "config/shared.yaml"


@dataclass
class IntoPlan:
    """What `--into` will do: file writes (absolute path -> bytes, mode) and the report."""

    config_root: Path
    writes: dict[Path, tuple[bytes, int]] = field(default_factory=dict)
    copies: dict[Path, Path] = field(default_factory=dict)  # destination -> source (.chr texts)
    refused: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def _existing_vendors(text: str, path: Path) -> tuple[dict[str, Any], Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix it before merging into it") from None
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    vendors = data.get("vendors")
    if vendors is not None and not isinstance(vendors, dict):
        raise UserError(f"{path}: 'vendors' is not a mapping; fix it before merging into it")
    return {str(k): _plain(v) for k, v in (vendors or {}).items()}, data


def _plain(value: Any) -> Any:
    """ruamel's commented containers as plain dicts/lists, for comparing with migrated entries."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def insert_vendors(text: str, data: Any, new: dict[str, Any], path: Path) -> str:
    """`text` with `new` vendor entries added under its top-level `vendors:` (or a new `vendors:`
    block at the end). Every existing line is kept as it was."""
    block = dump_yaml(new)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if data is None or "vendors" not in data:
        return "".join(lines) + "vendors:\n" + "".join("  " + ln for ln in block.splitlines(keepends=True))
    vline, _vcol = data.lc.key("vendors")
    if vline >= len(lines) or re.search(r"vendors\s*:\s*[\[{&*!|>]", lines[vline]) or _vcol != 0:
        names = ", ".join(new)
        raise UserError(f"{path}: 'vendors' is not a plain block mapping at the top level; add {names} by hand "
                        "(nothing was written)")
    vendors = data["vendors"]
    indent = vendors.lc.key(next(iter(vendors)))[1] if vendors else 2
    end = vline + 1
    last = vline
    while end < len(lines):
        ln = lines[end]
        if ln.strip() == "" or ln[0] in " \t":
            if ln.strip():
                last = end
            end += 1
            continue
        break
    pad = " " * indent
    added = "".join(pad + ln for ln in block.splitlines(keepends=True))
    return "".join(lines[:last + 1]) + added + "".join(lines[last + 1:])


def plan_into(plan: Plan, config_root: Path, *, force_bots: set[str] | None = None) -> IntoPlan:
    """Merge `plan` (from `plan_migration`) into the config root; reads, never writes."""
    root = Path(config_root)
    force_bots = force_bots or set()
    if not root.is_dir():
        raise UsageError(f"--into {root}: no such folder (the ChapterX config root: shared.yaml, bots/)")
    if not (root / "shared.yaml").is_file() and not (root / "bots").is_dir():
        raise UsageError(f"--into {root}: not a ChapterX config root (no shared.yaml, no bots/ folder)")
    src = plan.ems_dir.resolve()
    dst = root.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise UsageError(f"--into {root} and the ems folder {plan.ems_dir} overlap: refusing")
    ems = [t.sysname for t in plan.translations]
    unknown = sorted(force_bots - set(ems))
    if unknown:
        raise UsageError(f"--force-bot: {', '.join(unknown)} is not among the migrated ems ({', '.join(ems)})")
    out = IntoPlan(root)

    # vendors
    shared_path = root / "shared.yaml"
    try:
        shared_text = shared_path.read_text(encoding="utf-8") if shared_path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{shared_path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    existing, data = _existing_vendors(shared_text, shared_path) if shared_text is not None else ({}, None)
    added: dict[str, Any] = {}
    vendor_rows: list[dict[str, Any]] = []
    for row in plan.vendors:
        if row.name is None or row.entry is None:
            continue
        info = {"name": row.name, "ems": list(row.ems), "provides": list(row.entry.get("provides") or [])}
        if row.name not in existing:
            added[row.name] = row.entry
            vendor_rows.append({**info, "action": "added"})
        elif existing[row.name] == _plain(row.entry):
            vendor_rows.append({**info, "action": "unchanged"})
        else:
            vendor_rows.append({**info, "action": "conflict",
                                "note": f"shared.yaml already has a vendor '{row.name}' with other settings: kept "
                                        f"as it is; {', '.join(row.ems)} will use it (check `chapterx config show`)"})
    if added:
        if shared_text is None:
            new_text = ("# chapterx shared config (vendors added by `chapterx migrate --into`).\n"
                        + dump_yaml({"vendors": added}))
        else:
            new_text = insert_vendors(shared_text, data, added, shared_path)
        mode = SECRET_MODE if shared_text is None else _mode(shared_path, SECRET_MODE)
        out.writes[shared_path] = (new_text.encode(), mode)

    # bots
    bot_rows: list[dict[str, Any]] = []
    for em in plan.report["ems"]:
        name = em["sysname"]
        bot_file = root / "bots" / f"{name}.yaml"
        token_dst = Path(token_path(str(root), name))
        clashes = [p for p in (bot_file, token_dst if em["token_file"] else None) if p is not None and p.exists()]
        if clashes and name not in force_bots:
            out.refused.append(f"{name}: {', '.join(str(p) for p in clashes)} already exist(s) "
                               f"(use --force-bot {name} to replace)")
            continue
        out.writes[bot_file] = (plan.files[em["bot_file"]], 0o644)
        files = [str(bot_file)]
        if em["token_file"]:
            out.writes[token_dst] = (plan.files[em["token_file"]], SECRET_MODE)
            files.append(str(token_dst))
        prefix = f"config/bots/{name}/"
        for rel, srcf in plan.copies.items():
            if rel.startswith(prefix):
                dest = root / "bots" / name / rel[len(prefix):]
                out.copies[dest] = srcf
                files.append(str(dest))
        bot_rows.append({"em": name, "action": "replaced" if clashes else "created", "bot_file": str(bot_file),
                         "token_file": str(token_dst) if em["token_file"] else None,
                         "chr_folders": em["chr_folders"], "files": files,
                         "warnings": len(em["warnings"]), "unsupported": em["counts"]["unsupported"]})

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    report_dir = root.parent / "migrations" / f"{stamp}-{plan.ems_dir.name}"
    n = 1
    while report_dir.exists():  # two runs in one second must not share (or claim to replace) a report
        n += 1
        report_dir = root.parent / "migrations" / f"{stamp}-{plan.ems_dir.name}-{n}"
    out.writes[report_dir / "MIGRATION_REPORT.md"] = (plan.files["MIGRATION_REPORT.md"], 0o644)
    out.writes[report_dir / "migration-report.json"] = (plan.files["migration-report.json"], 0o644)
    changes = [{"path": str(p), "action": _action(p, shared_path)}
               for p in sorted({*out.writes, *out.copies, report_dir / "into-report.json"})]
    out.report = {
        "config_root": str(root),
        "source": str(plan.ems_dir),
        "vendors": vendor_rows,
        "bots": bot_rows,
        "refused": out.refused,
        "changes": changes,
        "migration_report": str(report_dir / "MIGRATION_REPORT.md"),
        "unit": "chapterx@<em>.service reads bots/<em>.yaml and tokens/<em>_token (chapterx fleet units)",
    }
    out.report["into_report"] = str(report_dir / "into-report.json")
    out.writes[report_dir / "into-report.json"] = (
        (json.dumps(out.report, indent=2, ensure_ascii=False) + "\n").encode(), 0o644)
    return out


def _mode(path: Path, default: int) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return default


def _action(path: Path, shared: Path) -> str:
    if path == shared:
        return "vendors added" if path.exists() else "created"
    return "replaced" if path.exists() else "created"


def write_into(into: IntoPlan) -> None:
    """Write everything, or nothing when a bot was refused."""
    import shutil

    if into.refused:
        raise UserError("migrate --into: nothing was written: " + "; ".join(into.refused))
    for dest, (content, mode) in sorted(into.writes.items()):
        _atomic_write(dest, content, mode)
    for dest, src in sorted(into.copies.items()):
        _makedirs(dest.parent)
        tmp = dest.with_name(f".{dest.name}.migrate-tmp")
        uid, gid = _owner(dest)
        try:
            shutil.copyfile(src, tmp, follow_symlinks=True)
            os.chmod(tmp, 0o644)
            if os.geteuid() == 0:
                os.chown(tmp, uid, gid)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(f"{src}: cannot copy to {dest}: {exc.strerror}") from None


def _owner(path: Path) -> tuple[int, int]:
    """The owner a new or replaced file should keep: the file's own, else its nearest existing folder's."""
    p = path
    while True:
        try:
            st = p.stat()
            return st.st_uid, st.st_gid
        except OSError:
            if p.parent == p:
                return os.getuid(), os.getgid()
            p = p.parent


def _makedirs(folder: Path) -> None:
    """Create missing folders one by one, each owned like its parent when run as root."""
    missing = []
    p = folder
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            st = d.parent.stat()
            os.chown(d, st.st_uid, st.st_gid)


def _atomic_write(dest: Path, content: bytes, mode: int) -> None:
    """Temp file + rename; mode as asked; when run as root (sudo), the deployment's owner is kept,
    so a 0600 token or shared.yaml stays readable by the service user."""
    uid, gid = _owner(dest)
    parent = dest.parent
    if not parent.exists():
        _makedirs(parent)
        if mode == SECRET_MODE and parent.name == "tokens":
            os.chmod(parent, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=parent)
    try:
        os.fchmod(fd, mode)
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_text(report: dict[str, Any], *, written: bool) -> str:
    """The human report: exactly what changed (or would change), no secrets."""
    lines = [f"migrate into {report['config_root']} (from {report['source']})", ""]
    if report["refused"]:
        lines += ["NOTHING WAS WRITTEN: some bots already exist (listed below). The files below would be written.", ""]
    elif not written:
        lines += ["dry run: nothing was written. The files below would be written.", ""]
    for v in report["vendors"]:
        note = f" -- {v['note']}" if v.get("note") else ""
        lines.append(f"vendor {v['name']}: {v['action']} (used by {', '.join(v['ems'])}){note}")
    for b in report["bots"]:
        extra = f", {b['unsupported']} unsupported key(s)" if b["unsupported"] else ""
        lines.append(f"bot {b['em']}: {b['action']} {b['bot_file']}"
                     + (f", token {b['token_file']} (0600)" if b["token_file"] else ", no token")
                     + extra)
    for r in report["refused"]:
        lines.append(f"refused {r}")
    lines += ["", "files:" if written else "files (not written):"]
    lines += [f"  {c['action']:>13}  {c['path']}" for c in report["changes"]]
    lines += ["", f"full per-key report: {report['migration_report']}",
              "start a bot: systemctl enable --now chapterx@<em> (units from `chapterx fleet units`)"]
    return "\n".join(lines) + "\n"
