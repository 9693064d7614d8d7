"""Console login: a token like Jupyter's, exchanged for a session cookie; CSRF per session.

The token comes from ``AGENTCRON_WEB_TOKEN`` or is generated at start and printed as
``http://127.0.0.1:8787/?token=…``. A request with the right token (``?token=`` or the login form)
gets a random session id in an HttpOnly, SameSite=Strict cookie; sessions and their CSRF tokens
live in this process only (a restart logs everyone out) and end after 12 idle hours. Every
action is a POST carrying the session's CSRF token. Comparisons are constant-time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from agentcron.clock import SYSTEM_CLOCK, Clock

COOKIE = "agentcron_session"
MAX_SESSIONS = 1000
IDLE_SECONDS = 12 * 3600


def new_token() -> str:
    """A fresh login token (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)


@dataclass
class Session:
    """One logged-in browser."""

    csrf: str
    seen: float = 0.0
    flash: list[str] = field(default_factory=list)


class Sessions:
    """The token, and the sessions it opened (the oldest dropped past :data:`MAX_SESSIONS`)."""

    def __init__(self, token: str, clock: Clock = SYSTEM_CLOCK,
                 idle_seconds: float = IDLE_SECONDS) -> None:  # fmt: skip
        if len(token) < 16:
            raise ValueError("the console token must have at least 16 characters")
        self._token = token
        self._clock = clock
        self.idle_seconds = idle_seconds
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def token_ok(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is the login token."""
        return bool(candidate) and hmac.compare_digest(str(candidate).encode(), self._token.encode())

    def open(self) -> str:
        """A new session; its id (the cookie's value)."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[sid] = Session(secrets.token_urlsafe(32), self._clock.monotonic())
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return sid

    def get(self, sid: str | None) -> Session | None:
        """The session of cookie value ``sid``, or None (also once idle too long)."""
        if not sid or len(sid) > 100:
            return None
        now = self._clock.monotonic()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if now - session.seen > self.idle_seconds:
                del self._sessions[sid]
                return None
            session.seen = now
            return session

    @staticmethod
    def csrf_ok(session: Session, candidate: str | None) -> bool:
        """Whether ``candidate`` is the session's CSRF token."""
        return bool(candidate) and hmac.compare_digest(str(candidate).encode(),
                                                       session.csrf.encode())  # fmt: skip
