"""Viewer settings from the environment and command line (upstream's variable names and defaults)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chapterx.errors import UsageError

DEFAULT_PORT = 3847
DEFAULT_HOST = "127.0.0.1"
DEFAULT_RETENTION_DAYS = 30
MIN_PUBLIC_TOKEN = 16  # characters of AUTH_TOKEN required on a non-loopback bind


@dataclass
class ViewerSettings:
    """Everything the viewer needs to start; built by `from_env` and overridable per field."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    auth_token: str = ""
    logs_dirs: list[Path] = field(default_factory=lambda: [Path("logs")])
    chapter2_dirs: list[Path] = field(default_factory=list)
    retention_days: int = DEFAULT_RETENTION_DAYS
    insecure: bool = False
    index_path: Path | None = None
    #: where POST /v1/traces writes what it receives (None: first chapter2 dir, else <logs>/otlp)
    ingest_dir: Path | None = None
    #: proxies (addresses or CIDRs) whose X-Forwarded-For names the client (TRUSTED_PROXIES)
    trusted_proxies: list[str] = field(default_factory=list)

    @property
    def otlp_ingest_dir(self) -> Path:
        if self.ingest_dir is not None:
            return self.ingest_dir
        if self.chapter2_dirs:
            return self.chapter2_dirs[0]
        return self.logs_dirs[0] / "otlp"

    @property
    def all_chapter2_dirs(self) -> list[Path]:
        """chapter2 folders to scan, including where received spans are written."""
        dirs = list(self.chapter2_dirs)
        if self.otlp_ingest_dir not in dirs:
            dirs.append(self.otlp_ingest_dir)
        return dirs

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ViewerSettings:
        env = os.environ if env is None else env
        raw_dirs = _split(env.get("LOGS_DIRS", "")) or _split(env.get("LOGS_DIR", "")) or ["logs"]
        logs: list[Path] = []
        ch2 = [Path(p) for p in _split(env.get("CHAPTER2_LOGS_DIRS", ""))]
        for p in raw_dirs:
            path = Path(p)
            # A chapter2 `ems/logs` folder named in LOGS_DIRS is read as OTLP-JSON, not as a ChapterX base.
            if is_chapter2_logs_dir(path):
                if path not in ch2:
                    ch2.append(path)
            else:
                logs.append(path)
        if not logs:
            logs = [Path("logs")]
        return cls(
            host=env.get("HOST", "") or DEFAULT_HOST,
            port=_int_env(env, "PORT", DEFAULT_PORT),
            auth_token=env.get("AUTH_TOKEN", ""),
            logs_dirs=logs,
            chapter2_dirs=ch2,
            retention_days=_int_env(env, "INDEX_RETENTION_DAYS", DEFAULT_RETENTION_DAYS),
            index_path=Path(env["TRACE_INDEX_PATH"]) if env.get("TRACE_INDEX_PATH") else None,
            trusted_proxies=_split(env.get("TRUSTED_PROXIES", "")),
        )

    def check_bind(self) -> None:
        """Refuse to expose traces on a non-loopback address without a token (unless --insecure).

        Also rejects a port outside 0-65535 here, before binding, where the socket layer would
        otherwise raise OverflowError (a traceback instead of one line).
        """
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port {self.port} is out of range: use 0-65535 (PORT or --port; 0 picks a free port)")
        if self.auth_token and len(self.auth_token) < MIN_PUBLIC_TOKEN and not is_loopback(self.host):
            raise UsageError(f"AUTH_TOKEN is too short to expose on {self.host}: use at least {MIN_PUBLIC_TOKEN} "
                             "characters (e.g. `openssl rand -hex 24`)")
        if self.auth_token or self.insecure or is_loopback(self.host):
            return
        raise UsageError(
            f"refusing to listen on {self.host} without AUTH_TOKEN; set AUTH_TOKEN, bind 127.0.0.1, "
            "or pass --insecure"
        )


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def _int_env(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{key} must be an integer, got {raw!r}") from None
    if value < 0:
        raise UsageError(f"{key} must not be negative, got {raw!r}")
    return value


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_chapter2_logs_dir(path: Path) -> bool:
    """A chapter2 logs folder: `.../ems/logs`, or a folder of OTLP-JSON files with no ChapterX `traces/`."""
    if (path / "traces").is_dir():
        return False
    if path.name == "logs" and path.parent.name == "ems":
        return True
    if not path.is_dir():
        return False
    from chapterx_compat.chapter2.otlp import iter_files, looks_like_otlp_file

    return any(looks_like_otlp_file(p) for p in list(iter_files(path))[:5])


def parse_dirs(values: Sequence[str] | None) -> list[Path]:
    out: list[Path] = []
    for v in values or []:
        out.extend(Path(p) for p in _split(v))
    return out
