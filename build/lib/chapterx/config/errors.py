"""The one exception the config loader raises: a user-fixable problem, printed as one line."""

from __future__ import annotations

from chapterx.errors import UserError


class ConfigError(UserError):
    """A config problem naming the file (and key and line when known).

    Exit code 1 means the content is invalid; 2 means the path is unusable (missing, unreadable,
    a directory where a file was expected).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
        exit_code: int = 1,
    ) -> None:
        self.path = path
        self.key = key
        self.line = line
        self.detail = message
        where = path or ""
        if path and line:
            where = f"{path}:{line}"
        prefix = f"{where}: " if where else ""
        keypart = f"{key}: " if key and not message.startswith(f"{key}") else ""
        super().__init__(f"{prefix}{keypart}{message}", exit_code)
