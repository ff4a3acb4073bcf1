"""systemd units for a chapterx host: the recommended production path, generated not hand-written.

`render_units` is pure (options in, file name -> text out) so tests and `docs/deployment.md` see the
same bytes the command writes. One layout everywhere (prefix = /opt/chapterx by default):

    PREFIX/config/            CONFIG_PATH: shared.yaml, bots/<bot>.yaml
    PREFIX/tokens/<bot>_token  what the bot template reads (and `migrate --into` writes)
    PREFIX/logs/              LOGS_DIR shared by every bot (traces/<bot>/, traces/index.jsonl, bodies)
    PREFIX/cache/<bot>/       CACHE_PATH per bot; PREFIX/cache/trace-index.sqlite for the viewer
    PREFIX/tools/             TOOLS_PATH
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from chapterx.errors import UsageError

BOT_UNIT = "chapterx@.service"
EMS_UNIT = "chapterx-ems@.service"
VIEWER_UNIT = "chapterx-traces.service"
PRUNE_SERVICE = "chapterx-prune.service"
PRUNE_TIMER = "chapterx-prune.timer"

# Characters that need no quoting in a unit file path (systemd splits ExecStart on whitespace and
# expands % and $): refuse anything else instead of quoting it subtly wrong.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")
_SAFE_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_DURATION = re.compile(r"^[0-9]+[dhm]$")


@dataclass(frozen=True)
class UnitOptions:
    prefix: str = "/opt/chapterx"
    user: str = "chapterx"
    ems: str = "/opt/chapter2/ems"  # chapter2 ems folder run in place by chapterx-ems@.service
    prune_older_than: str = "14d"
    watchdog_sec: int = 120
    viewer_port: int = 3847

    def check(self) -> None:
        """One clear line for anything that cannot be written safely into a unit file."""
        for flag, value in (("--prefix", self.prefix), ("--ems", self.ems)):
            if not _SAFE_PATH.match(value) or "/../" in value + "/" or value.endswith("/.."):
                raise UsageError(f"{flag} {value!r}: use an absolute path of letters, digits and ._/+- only")
        if not _SAFE_USER.match(self.user):
            raise UsageError(f"--user {self.user!r}: not a valid system user name")
        if not _DURATION.match(self.prune_older_than):
            raise UsageError(f"--prune-older-than {self.prune_older_than!r}: use e.g. 14d, 48h")
        if not 10 <= self.watchdog_sec <= 3600:
            raise UsageError("--watchdog-sec: between 10 and 3600")

    # The layout, in one place (status, migrate --into and the docs read these too).
    def path(self, *parts: str) -> str:
        return str(PurePosixPath(self.prefix.rstrip("/") or "/", *parts))

    @property
    def chapterx(self) -> str:
        return self.path(".venv", "bin", "chapterx")


def token_path(config_root: str, bot: str) -> str:
    """Where the bot template reads bot `bot`'s token, given the config root PREFIX/config."""
    return str(PurePosixPath(config_root).parent / "tokens" / f"{bot}_token")


def _hardening(o: UnitOptions, writable: list[str]) -> str:
    return "\n".join([
        "# Hardening: reads the whole tree, writes only below these folders.",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet=",
        "UMask=0027",
        "ReadWritePaths=" + " ".join(writable),
    ])


def _bot_service(o: UnitOptions, *, description: str, exec_start: str, extra_env: list[str]) -> str:
    env = [
        f"Environment=LOGS_DIR={o.path('logs')}",
        "Environment=CACHE_PATH=" + o.path("cache") + "/%i",
        f"Environment=TOOLS_PATH={o.path('tools')}",
        *extra_env,
        "Environment=PYTHONUNBUFFERED=1",
    ]
    return f"""[Unit]
Description={description}
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
# Type=notify: the bot says READY=1 once connected to Discord and pings the watchdog from its event
# loop; a wedged bot misses the pings and systemd restarts it.
Type=notify
NotifyAccess=main
WatchdogSec={o.watchdog_sec}
TimeoutStartSec=180
TimeoutStopSec=30
KillSignal=SIGTERM
Restart=always
RestartSec=10
User={o.user}
WorkingDirectory={o.prefix}
{chr(10).join(env)}
# Optional: API keys or API_BEARER_TOKEN for all bots / for this bot (chmod 600).
EnvironmentFile=-/etc/chapterx/bots.env
EnvironmentFile=-/etc/chapterx/%i.env
ExecStart={exec_start}
{_hardening(o, [o.path('logs'), o.path('cache'), o.path('tools')])}

[Install]
WantedBy=multi-user.target
"""


def render_units(o: UnitOptions) -> dict[str, str]:
    """Every unit file, by file name."""
    o.check()
    config = o.path("config")
    bot = _bot_service(
        o,
        description="chapterx bot %i (" + config + "/bots/%i.yaml)",
        exec_start=f"{o.chapterx} run --config {config}/bots/%i.yaml",
        extra_env=[
            f"Environment=CONFIG_PATH={config}",
            "Environment=BOT_NAME=%i",
            "Environment=DISCORD_TOKEN_FILE=" + o.path("tokens") + "/%i_token",
        ],
    )
    ems = _bot_service(
        o,
        description="chapterx running chapter2 em %i in place (" + o.ems + "/%i)",
        exec_start=f"{o.chapterx} run --ems {o.ems} --bot %i",
        extra_env=["Environment=BOT_NAME=%i"],
    )
    index = o.path("cache", "trace-index.sqlite")
    viewer = f"""[Unit]
Description=chapterx trace viewer (127.0.0.1:{o.viewer_port}; put nginx in front for remote access)
After=network.target

[Service]
Type=simple
User={o.user}
WorkingDirectory={o.prefix}
Environment=LOGS_DIR={o.path('logs')}
Environment=TRACE_INDEX_PATH={index}
Environment=HOST=127.0.0.1
Environment=PORT={o.viewer_port}
# AUTH_TOKEN=..., CHAPTER2_LOGS_DIRS=..., INDEX_RETENTION_DAYS=... (chmod 600)
EnvironmentFile=-/etc/chapterx/viewer.env
ExecStart={o.chapterx} traces serve
Restart=always
RestartSec=5
{_hardening(o, [o.path('cache'), '-' + o.path('logs', 'otlp')])}

[Install]
WantedBy=multi-user.target
"""
    prune = f"""[Unit]
Description=chapterx: delete traces older than {o.prune_older_than} (files, bodies and index lines together)

[Service]
Type=oneshot
User={o.user}
WorkingDirectory={o.prefix}
Environment=LOGS_DIR={o.path('logs')}
Environment=TRACE_INDEX_PATH={index}
ExecStart={o.chapterx} traces prune --older-than {o.prune_older_than}
{_hardening(o, [o.path('logs'), o.path('cache')])}
"""
    timer = f"""[Unit]
Description=chapterx: daily trace prune ({PRUNE_SERVICE})

[Timer]
OnCalendar=*-*-* 04:30:00
RandomizedDelaySec=15min
Persistent=true

[Install]
WantedBy=timers.target
"""
    return {BOT_UNIT: bot, EMS_UNIT: ems, VIEWER_UNIT: viewer, PRUNE_SERVICE: prune, PRUNE_TIMER: timer}
