"""`chapterx fleet status`: every bot on the machine, both frameworks, one health word each.

Stages, each small and testable on its own:
  discover   config roots + chapter2 ems folders -> `BotEntry` (what bots exist, where their files are)
  inspect    config validity, token file, systemd unit (only when systemd runs), live processes
  activity   `chapterx.trace.aggregates.bot_summaries` over the trace index (chapter2 spans included)
  judge      `health()` is a pure function of the collected facts
I/O stays in `collect`; the rest takes values and returns values.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HEALTH_WORDS = ("ok", "failing", "silent", "stopped", "misconfigured")
DAY = 24 * 3600


@dataclass(frozen=True)
class BotEntry:
    """One bot found on disk."""

    name: str
    framework: str  # "chapterx" (a ChapterX config tree) or "chapter2" (an em in an ems/ folder)
    config: Path  # bot file, or the em folder
    root: Path  # config root, or ems folder
    token_candidates: tuple[Path, ...]  # where a token may be, in the order the runners look
    units: tuple[str, ...]  # systemd units that would run it, in order of preference


@dataclass(frozen=True)
class UnitState:
    name: str
    load_state: str
    active_state: str
    sub_state: str
    main_pid: int

    @property
    def loaded(self) -> bool:
        return self.load_state == "loaded"


@dataclass(frozen=True)
class Proc:
    pid: int
    argv: tuple[str, ...]
    cwd: Path | None
    env: Mapping[str, str]


@dataclass(frozen=True)
class Activity:
    last_activation: float | None = None
    activations: int = 0
    failures: int = 0
    cost_usd: float | None = 0.0  # None: activations, none of which reported a cost


@dataclass
class BotStatus:
    """Everything `fleet status` says about one bot (the JSON shape, one object per bot)."""

    bot: str
    framework: str
    config: str
    config_errors: int
    config_warnings: int
    token_file: str | None
    token_present: bool
    token_mode: str | None
    unit: str | None
    unit_state: str | None  # "active/running", "failed/failed", ... or None without systemd
    process_alive: bool | None  # None: not known (no process found and no way to tell)
    pids: list[int]
    last_activation: float | None
    activations_24h: int
    failures_24h: int
    cost_24h_usd: float | None  # None: unknown (no activation in 24 h reported a cost)
    health: str = "ok"
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- discover


def discover(config_roots: Iterable[Path], ems_dirs: Iterable[Path]) -> list[BotEntry]:
    """Bots of each ChapterX config root (`bots/<bot>.yaml`, not `<bot>-<guild>.yaml`) and ems of
    each chapter2 ems folder."""
    from chapterx_compat.chapter2.load import list_ems

    out: list[BotEntry] = []
    for root in config_roots:
        files = sorted((root / "bots").glob("*.yaml")) if (root / "bots").is_dir() else []
        stems = {f.stem for f in files}
        for f in files:
            head, sep, tail = f.stem.rpartition("-")
            if sep and head in stems and tail.isdigit():
                continue  # a bot x guild layer, not a bot
            out.append(BotEntry(
                f.stem, "chapterx", f, root,
                (root.parent / "tokens" / f"{f.stem}_token", root / "bots" / f"{f.stem}_discord_token"),
                (f"chapterx@{f.stem}.service",),
            ))
    for ems in ems_dirs:
        try:
            names = list_ems(ems)
        except OSError:
            names = []
        for name in names:
            em = ems / name
            if not ((em / "config.yaml").is_file() or (em / "discord_token").exists()):
                continue  # e.g. an OTLP `logs/` folder kept next to the ems: not an em
            out.append(BotEntry(
                name, "chapter2", ems / name, ems, (ems / name / "discord_token",),
                (f"chapterx-ems@{name}.service", f"prod-{name}.service"),
            ))
    return out


# ----------------------------------------------------------------------------- inspect


def config_counts(entries: Sequence[BotEntry]) -> dict[Path, tuple[int, int]]:
    """(errors, warnings) per bot from the same validators as `chapterx validate`: the bot's own
    file, its bot x guild layers and the shared file it is merged with."""
    from chapterx.config.validate import validate_paths

    counts: dict[Path, tuple[int, int]] = {}
    for root in dict.fromkeys(e.root for e in entries):
        members = [e for e in entries if e.root == root]
        dialect = "chapter2" if members[0].framework == "chapter2" else "chapterx"
        reports = validate_paths([root], dialect=dialect)
        by_path = {Path(r.path).resolve(): r for r in reports}
        shared = [r for r in reports if Path(r.path).name in ("shared.yaml",)]
        for e in members:
            mine = [r for p, r in by_path.items()
                    if p == e.config.resolve() or (e.framework == "chapterx" and p.parent == e.config.parent.resolve()
                                                   and p.stem.startswith(e.name + "-") and p.stem[len(e.name) + 1:].isdigit())]
            if e.framework == "chapterx":
                mine += shared
            counts[e.config] = (sum(len(r.errors) for r in mine), sum(len(r.warnings) for r in mine))
    return counts


def token_facts(entry: BotEntry) -> tuple[Path | None, bool, str | None]:
    """(path, present, mode as "0600") of the first token file that exists, else of the preferred one."""
    for p in entry.token_candidates:
        try:
            st = p.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            return p, st.st_size > 0, f"{stat.S_IMODE(st.st_mode):04o}"
    return (entry.token_candidates[0] if entry.token_candidates else None), False, None


def systemd_running() -> bool:
    """systemd is PID 1 here (its documented check), and systemctl is installed."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def parse_systemctl_show(text: str) -> list[UnitState]:
    """`systemctl show -p Id,LoadState,ActiveState,SubState,MainPID u1 u2 ...`: blank-line separated."""
    out: list[UnitState] = []
    for block in text.strip().split("\n\n"):
        kv = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if not kv.get("Id"):
            continue
        pid = kv.get("MainPID", "0")
        out.append(UnitState(kv["Id"], kv.get("LoadState", ""), kv.get("ActiveState", ""), kv.get("SubState", ""),
                             int(pid) if pid.isdigit() else 0))
    return out


def unit_states(units: Sequence[str], systemctl: str, *, user: bool = False) -> dict[str, UnitState]:
    """States of the named units, read with one `systemctl show` (never starts or changes anything)."""
    if not units:
        return {}
    cmd = [systemctl, *(["--user"] if user else []), "show", "--no-pager",
           "-p", "Id,LoadState,ActiveState,SubState,MainPID", "--", *units]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    # `show` prints the units in the order asked; Id is the canonical name (same as asked for ours)
    return {s.name: s for s in parse_systemctl_show(res.stdout)}


def list_processes(proc_root: Path = Path("/proc")) -> list[Proc]:
    """Every process whose command line we can read (environment and cwd when permitted)."""
    out: list[Proc] = []
    try:
        pids = [int(p.name) for p in proc_root.iterdir() if p.name.isdigit()]
    except OSError:
        return out
    for pid in pids:
        d = proc_root / str(pid)
        try:
            raw = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if not raw:
            continue
        argv = tuple(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0"))
        try:
            cwd: Path | None = Path(os.readlink(d / "cwd"))
        except OSError:
            cwd = None
        env: dict[str, str] = {}
        try:
            for item in (d / "environ").read_bytes().split(b"\0"):
                k, sep, v = item.partition(b"=")
                if sep and k in (b"BOT_NAME", b"BOT_CONFIG", b"EMS_PATH"):
                    env[k.decode()] = v.decode("utf-8", "replace")
        except OSError:
            pass
        out.append(Proc(pid, argv, cwd, env))
    return out


def _opt(argv: Sequence[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return None


def _same(path: str | None, cwd: Path | None, target: Path) -> bool:
    if not path:
        return False
    p = Path(path)
    if not p.is_absolute():
        if cwd is None:
            return False
        p = cwd / p
    try:
        return p.resolve() == target.resolve()
    except OSError:
        return False


def matches(entry: BotEntry, proc: Proc) -> bool:
    """Is `proc` running `entry`? chapterx (`run --config F`, `run --ems E --bot B`, BOT_CONFIG /
    EMS_PATH+BOT_NAME in a readable environment) or chapter2 itself (`chapter2/main.py <em>` run from
    the checkout that holds the ems folder)."""
    argv = proc.argv
    is_chapterx_run = "run" in argv and any(a.endswith("chapterx") or a == "chapterx" for a in argv[:3])
    if entry.framework == "chapterx":
        if is_chapterx_run and _same(_opt(argv, "--config"), proc.cwd, entry.config):
            return True
        return _same(proc.env.get("BOT_CONFIG"), proc.cwd, entry.config)
    bot = _opt(argv, "--bot") or proc.env.get("BOT_NAME")
    ems = _opt(argv, "--ems") or proc.env.get("EMS_PATH")
    if is_chapterx_run and bot == entry.name and _same(ems, proc.cwd, entry.root):
        return True
    for i, a in enumerate(argv):
        if a.endswith("main.py") and "chapter2" in a and entry.name in argv[i + 1:]:
            return proc.cwd is not None and _same("ems", proc.cwd, entry.root)
    return False


# ----------------------------------------------------------------------------- activity


def activity(store: Any, *, now: float, window: float = DAY) -> dict[tuple[str, str], Activity]:
    """Per (framework, bot) over the last `window` seconds. `bot_summaries` also lists bots idle in
    the window, with their newest activation before it: one query answers both questions."""
    from chapterx.trace.aggregates import bot_summaries

    return {(s.framework, s.bot): Activity(s.last_activation, s.activations, s.failures, s.cost_usd)
            for s in bot_summaries(store, since=now - window, until=None)}


def find_activity(acts: Mapping[tuple[str, str], Activity], entry: BotEntry, *,
                  also_chapterx: bool = False) -> Activity:
    """The entry's activity. A chapter2 em run in place by chapterx writes ChapterX traces under its
    em name: with `also_chapterx` those count too (chapter2 spans + chapterx traces)."""
    frameworks = [entry.framework] + (["chapterx"] if also_chapterx else [])
    found: list[Activity] = []
    for fw in frameworks:
        hit = acts.get((fw, entry.name))
        if hit is None:  # trace bot names keep the case Discord or BOT_NAME gave them
            low = entry.name.lower()
            hit = next((a for (f, b), a in acts.items() if f == fw and b.lower() == low), None)
        if hit is not None:
            found.append(hit)
    if not found:
        return Activity()
    lasts = [a.last_activation for a in found if a.last_activation is not None]
    return Activity(max(lasts) if lasts else None, sum(a.activations for a in found),
                    sum(a.failures for a in found), _known_sum([a.cost_usd for a in found]))


def _known_sum(costs: list[float | None]) -> float | None:
    """The sum of the known costs; None when every one is unknown."""
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


# ----------------------------------------------------------------------------- judge


def health(s: BotStatus, *, now: float, silent_after: float, failing_ratio: float = 0.5) -> tuple[str, list[str]]:
    """The one word, and why. Precedence: misconfigured > stopped > failing > silent > ok."""
    reasons: list[str] = []
    if s.config_errors:
        reasons.append(f"{s.config_errors} config error(s) (chapterx validate {s.config})")
    if not s.token_present:
        reasons.append(f"no Discord token at {s.token_file}")
    if reasons:
        return "misconfigured", reasons
    state = s.unit_state or ""
    if state.startswith("failed") or state.endswith("auto-restart"):
        return "failing", [f"systemd unit {s.unit} is {state}"]
    if state and not state.startswith(("active", "activating", "reloading")):
        return "stopped", [f"systemd unit {s.unit} is {state}"]
    if s.process_alive is False:
        return "stopped", ["no running process found" + ("" if s.unit_state is None else f" ({s.unit})")]
    if s.failures_24h and s.failures_24h >= failing_ratio * s.activations_24h:
        return "failing", [f"{s.failures_24h} of {s.activations_24h} activations failed in 24 h"]
    if silent_after > 0 and (s.last_activation is None or now - s.last_activation > silent_after):
        when = "never" if s.last_activation is None else f"{(now - s.last_activation) / 3600:.0f} h ago"
        return "silent", [f"last activation {when}"]
    return "ok", []


# ----------------------------------------------------------------------------- collect


@dataclass(frozen=True)
class StatusOptions:
    config_roots: tuple[Path, ...] = ()
    ems_dirs: tuple[Path, ...] = ()
    logs_dirs: tuple[Path, ...] = ()
    chapter2_logs_dirs: tuple[Path, ...] = ()
    index_path: Path | None = None
    silent_after: float = DAY
    systemctl: str | None = None  # None: ask systemd only when it runs here


def collect(opts: StatusOptions, *, now: float | None = None, procs: list[Proc] | None = None) -> list[BotStatus]:
    """Gather the facts for every bot and judge each one."""
    now = time.time() if now is None else now
    entries = discover(opts.config_roots, opts.ems_dirs)
    counts = config_counts(entries)
    systemctl = opts.systemctl or (shutil.which("systemctl") if systemd_running() else None)
    states: dict[str, UnitState] = {}
    if systemctl:
        states = unit_states([u for e in entries for u in e.units], systemctl)
    processes = list_processes() if procs is None else procs
    acts = _activity(opts, now)
    chapterx_names = {e.name.lower() for e in entries if e.framework == "chapterx"}
    out: list[BotStatus] = []
    for e in entries:
        token, present, mode = token_facts(e)
        unit = next((states[u] for u in e.units if u in states and states[u].loaded), None)
        pids = [p.pid for p in processes if matches(e, p)]
        if unit is not None and unit.main_pid and unit.active_state == "active" and unit.main_pid not in pids:
            pids.append(unit.main_pid)  # systemd's word counts even where /proc hides other users' processes
        alive: bool | None = bool(pids)
        a = find_activity(acts, e, also_chapterx=e.framework == "chapter2" and e.name.lower() not in chapterx_names)
        errors, warnings = counts.get(e.config, (0, 0))
        s = BotStatus(
            bot=e.name, framework=e.framework, config=str(e.config), config_errors=errors, config_warnings=warnings,
            token_file=str(token) if token else None, token_present=present, token_mode=mode,
            unit=unit.name if unit else None,
            unit_state=f"{unit.active_state}/{unit.sub_state}" if unit else None,
            process_alive=alive, pids=sorted(pids), last_activation=a.last_activation,
            activations_24h=a.activations, failures_24h=a.failures,
            cost_24h_usd=None if a.cost_usd is None else round(a.cost_usd, 6),
        )
        s.health, s.reasons = health(s, now=now, silent_after=opts.silent_after)
        if mode is not None and int(mode, 8) & 0o077:
            s.reasons.append(f"token file is readable by others (mode {mode}; chmod 600)")
        out.append(s)
    return out


def _activity(opts: StatusOptions, now: float) -> dict[tuple[str, str], Activity]:
    from chapterx.trace.store import TraceStore

    bases = [b for b in opts.logs_dirs if b.is_dir()]
    ch2 = [d for d in opts.chapter2_logs_dirs if d.is_dir()]
    if not bases and not ch2:
        return {}
    store = TraceStore(bases, index_path=opts.index_path)
    try:
        store.refresh()
        if ch2:
            from chapterx.viewer.chapter2 import Chapter2Source

            source = Chapter2Source(ch2)
            # rows are replaced by trace id, so the viewer sharing this index sees the same data
            store.add_external(source.refresh(force=True))
        return activity(store, now=now)
    finally:
        store.close()
