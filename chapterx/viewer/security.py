"""Authentication, session cookies, input validation and path confinement for the viewer.

Upstream compared the token with `===`, kept it in `localStorage` (stealable by any XSS) and found
files by substring; here tokens are compared in constant time, the browser gets an HttpOnly
SameSite=Strict cookie instead, and every id/ref is whitelisted and its resolved path confined.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Iterable
from pathlib import Path

SESSION_COOKIE = "cx_session"
SESSION_TTL_S = 7 * 24 * 3600

#: Trace ids: upstream's 8 hex, ours (32 hex), chapter2's 32-hex OTLP ids; nothing path-like.
TRACE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
#: Body refs: one file name ending in .json, no leading dot, no separators, no `..`.
BODY_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,250}\.json$")


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison (on digests, so the length does not leak either)."""
    if not expected or given is None:
        return False
    a = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
    b = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(a, b)


def token_from_header(header: str | None) -> str | None:
    """`Authorization: Bearer <t>`; the bare token is also accepted, as upstream's clients may send it."""
    if not header:
        return None
    header = header.strip()
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return header


def _session_key(auth_token: str) -> bytes:
    # Derived from the token: changing AUTH_TOKEN logs every browser out.
    return hmac.new(auth_token.encode(), b"chapterx-viewer-session-v1", hashlib.sha256).digest()


def make_session(auth_token: str, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + SESSION_TTL_S)
    sig = hmac.new(_session_key(auth_token), str(expires).encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{sig}"


def session_valid(cookie: str | None, auth_token: str, now: float | None = None) -> bool:
    if not cookie or not auth_token or "." not in cookie:
        return False
    expires_s, _, sig = cookie.partition(".")
    if not expires_s.isdigit() or len(expires_s) > 12:
        return False
    expected = hmac.new(_session_key(auth_token), expires_s.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        return False
    return int(expires_s) > (now if now is not None else time.time())


def valid_trace_id(value: str) -> bool:
    return bool(TRACE_ID_RE.fullmatch(value))


def valid_body_ref(value: str) -> bool:
    return bool(BODY_REF_RE.fullmatch(value)) and ".." not in value


def confined(path: Path, roots: Iterable[Path]) -> Path | None:
    """`path` resolved, if it is a regular file strictly inside one of `roots`; else None."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_file():
        return None
    for root in roots:
        try:
            base = root.resolve()
        except (OSError, RuntimeError):
            continue
        if real != base and real.is_relative_to(base):
            return real
    return None


def client_address(remote: str | None, forwarded_for: str | None, trusted: Iterable[str]) -> str:
    """The client to rate-limit: `remote`, or, only when `remote` is a configured trusted proxy, the
    rightmost `X-Forwarded-For` address that is not itself a trusted proxy (earlier entries are
    whatever the client chose to send)."""
    nets = []
    for t in trusted:
        try:
            nets.append(ipaddress.ip_network(t.strip(), strict=False))
        except ValueError:
            continue

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in nets)

    who = remote or "?"
    if not nets or not forwarded_for or not is_trusted(who):
        return who
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return who  # a malformed header: keep the proxy's address
        if not is_trusted(hop):
            return hop
    return who


class LoginLimiter:
    """Slows down token guessing on every auth path: after 5 failures from one client, refuse that
    client (only) for a while. Thread-safe enough for one event loop; memory stays bounded."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._fails: dict[str, list[float]] = {}

    def blocked(self, who: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        recent = [t for t in self._fails.get(who, []) if now - t < self.window_s]
        self._fails[who] = recent
        return len(recent) >= self.max_failures

    def failed(self, who: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._fails.setdefault(who, []).append(now)
        if len(self._fails) > 10000:  # bound memory under a spray of addresses
            self._fails.clear()

    def succeeded(self, who: str) -> None:
        self._fails.pop(who, None)
