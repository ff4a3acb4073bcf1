"""Which files a `*_file` key may read: prompt text inside an allowed prompt folder, nothing else.

Anyone who can pin can set `system_prompt_file`, and the bot's folder holds its Discord token in every
documented layout, so the rule is an allow-list: the path (symlinks resolved) must lie inside one of
the prompt folders, no part of it may be named like a secret or a config file, and the text must not
contain a known secret. Upstream joins the name onto the bots folder and allows `../`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROMPT_DIRS_ENV = "CHAPTERX_PROMPT_DIRS"  # extra allowed folders, os.pathsep-separated

_SECRET_NAME = re.compile(
    r"token|secret|passw|credential|creds|api[_-]?key|private[_-]?key|cookie|"
    r"^id_(rsa|dsa|ecdsa|ed25519)|\.(pem|key|p12|pfx|crt|der|ya?ml|json|env|ini|cfg|conf|toml|db|sqlite\d?)$|"
    r"^\.env|netrc|htpasswd|shadow|^\.git$|^\.ssh$|^\.aws$|^\.config$",
    re.I,
)


class PromptFileRefused(Exception):
    """The name may not be read as a prompt; the message says why (never the file's content)."""


@dataclass(frozen=True)
class PromptRoots:
    """The folders prompt files may come from; relative names resolve against `base`."""

    base: Path
    allowed: tuple[Path, ...]


def prompt_roots(base: Path, config_root: Path, env: Mapping[str, str]) -> PromptRoots:
    """The bot's folder, `<config root>/prompts`, and any folder the operator lists in CHAPTERX_PROMPT_DIRS."""
    extra = [Path(p) for p in (env.get(PROMPT_DIRS_ENV) or "").split(os.pathsep) if p.strip()]
    return PromptRoots(base, tuple([base, config_root / "prompts", *extra]))


def secret_like(part: str) -> bool:
    return bool(_SECRET_NAME.search(part))


def check_prompt_path(name: str, roots: PromptRoots, *, refused: Sequence[Path] = ()) -> Path:
    """The resolved path `name` may be read from, or PromptFileRefused naming the rule it broke."""
    if "\0" in name:
        raise PromptFileRefused("not a file name")
    raw = Path(name) if os.path.isabs(name) else roots.base / name
    try:
        real = raw.resolve(strict=False)
    except (OSError, RuntimeError):  # symlink loop
        raise PromptFileRefused("cannot be resolved") from None
    for other in refused:
        try:
            if real == other.resolve():
                raise PromptFileRefused("points at a config file (the shared file or the bot file: API keys)")
        except (OSError, RuntimeError):
            continue
    inside: Path | None = None
    for root in roots.allowed:
        try:
            rr = root.resolve()
        except (OSError, RuntimeError):
            continue
        if real.is_relative_to(rr):
            inside = rr
            break
    if inside is None:
        raise PromptFileRefused("is outside the prompt folders (the bot's folder, <config>/prompts, "
                                f"{PROMPT_DIRS_ENV})")
    parts = list(real.relative_to(inside).parts) + ([] if os.path.isabs(name) else list(Path(name).parts))
    if any(secret_like(p) for p in parts if p not in (".", "..")):
        raise PromptFileRefused("is named like a secret or a config file")
    return real
