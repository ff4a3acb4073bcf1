"""Environment variables of a bot process and their defaults, read in one place.

Why a class: the loader, the runtime and `config show` must agree on what an unset variable means.
Relative paths stay relative (to the working directory), as upstream and the deployment guide expect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value else None  # empty counts as unset, like upstream's `||`


@dataclass(frozen=True)
class Settings:
    """Process settings from the environment (defaults follow the reference, section 1.4)."""

    config_path: Path = Path("./config")
    config_path_set: bool = False
    bot_config: Path | None = None
    bot_name: str | None = None
    ems_path: Path | None = None
    discord_token_file: Path | None = None
    cache_path: Path = Path("./cache")
    tools_path: Path = Path("./tools")
    logs_dir: Path = Path("./logs")
    trace_dir: Path = Path("./logs/traces")
    log_dir: Path = Path("./logs/activations")
    log_level: str = "info"
    api_bearer_token: str | None = None
    api_port: int = 3000
    mock_llm: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the variables; `env` defaults to `os.environ`."""
        e = os.environ if env is None else env
        logs_dir = Path(_get(e, "LOGS_DIR") or "./logs")
        port_text = _get(e, "API_PORT") or "3000"
        try:
            port = int(port_text)
        except ValueError:
            port = 3000
        cfg = _get(e, "CONFIG_PATH")
        return cls(
            config_path=Path(cfg or "./config"),
            config_path_set=cfg is not None,
            bot_config=Path(b) if (b := _get(e, "BOT_CONFIG")) else None,
            bot_name=_get(e, "BOT_NAME"),
            ems_path=Path(p) if (p := _get(e, "EMS_PATH")) else None,
            discord_token_file=Path(t) if (t := _get(e, "DISCORD_TOKEN_FILE")) else None,
            cache_path=Path(_get(e, "CACHE_PATH") or "./cache"),
            tools_path=Path(_get(e, "TOOLS_PATH") or "./tools"),
            logs_dir=logs_dir,
            trace_dir=Path(_get(e, "TRACE_DIR") or logs_dir / "traces"),
            log_dir=Path(_get(e, "LOG_DIR") or logs_dir / "activations"),
            log_level=(_get(e, "LOG_LEVEL") or "info").lower(),
            api_bearer_token=_get(e, "API_BEARER_TOKEN"),
            api_port=port,
            mock_llm=_get(e, "MOCK_LLM") is not None,
        )

    @property
    def layout(self) -> str:
        """"ems" when EMS_PATH and BOT_NAME are both set, "bot_name" with only BOT_NAME, else "default"."""
        if self.ems_path is not None and self.bot_name:
            return "ems"
        return "bot_name" if self.bot_name else "default"

    def token_file(self, *, cwd: Path | None = None) -> Path:
        """Where the Discord token is read from.

        `DISCORD_TOKEN_FILE` may be absolute (used as is) or relative to the working directory
        (upstream joins even absolute paths onto the cwd, which breaks the documented systemd setup).
        """
        base = cwd or Path.cwd()
        if self.discord_token_file is not None:
            f = self.discord_token_file
            return f if f.is_absolute() else base / f
        if self.layout == "ems":
            if self.ems_path is None or not self.bot_name:
                raise RuntimeError("the ems layout needs an ems path and a bot name")
            return self.ems_path / self.bot_name / "discord_token"
        if self.layout == "bot_name":
            return self.config_path / "bots" / f"{self.bot_name}_discord_token"
        return base / "discord_token"
