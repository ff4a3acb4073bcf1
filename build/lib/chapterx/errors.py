"""Errors that reach the user as one clear line instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: printed as one line, exits with `exit_code`.

    Exit codes follow the CLI contract: 1 = invalid input, 2 = unusable arguments or unreadable path.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(UserError):
    """Unusable arguments or an unreadable path (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)
