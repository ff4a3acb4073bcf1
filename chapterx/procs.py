"""Is a process still there? Shared by everything that cleans up after a writer that may have died
(in-progress trace markers, the trace writer's temp files, a killed migrate's temp tree)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True unless the process is certainly gone: a pid we may not signal, or any answer other than
    "no such process", counts as alive, so nothing of a live writer is ever taken for garbage."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True
