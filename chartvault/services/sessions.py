"""Web sessions: signing in with a password, staying signed in while active, signing out.

A session acts as its user (``user:<id>``, the user's role and organisation), so the audit log names
the person behind every page. Failed sign-ins are counted per username and per client address and
refused for a while past the limit, before the password is even checked. Every sign-in, refusal,
throttled attempt, sign-out and timeout is audited (ids only: never the username typed or a password).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.db import transaction
from chartvault.archive.web_sessions import (
    EndedSession,
    OpenSession,
    end_session,
    open_session,
    resolve_session,
)
from chartvault.config import Settings
from chartvault.errors import InvalidInput
from chartvault.schemas.access import UserView
from chartvault.services.access import AccessService
from chartvault.services.caller import AuditTrail, Caller
from chartvault.services.throttle import FailureThrottle, TooManyAttempts

__all__ = ["OpenSession", "SessionService", "SignInRefused", "SignInThrottle", "SignedIn", "TooManyAttempts"]

ADDRESS_FACTOR = 4  # one address may be shared (a ward's NAT): it gets more tries than one username
USER_CEILING_FACTOR = 20  # one username over every address: 100 at the default 5 (NIST SP 800-63B's ceiling)


class SignInRefused(InvalidInput):
    """Unknown user, wrong password or disabled account: one answer for all, so none is revealed."""

    code = "sign_in_refused"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A session just opened: ``secret`` goes into the cookie and is stored nowhere."""

    session_id: str
    secret: str
    user: UserView
    csrf_token: str
    expires_at: datetime


class SignInThrottle:
    """Failed sign-ins, shared by every request of the process, counted three ways.

    A username is locked from one client address after ``failures`` there: a stranger guessing (or
    merely typing a colleague's name wrong on purpose) locks it out of their own address only, not out
    of the ward where its owner works. Across every address a username gets ``USER_CEILING_FACTOR``
    times as many (NIST SP 800-63B 5.2.2 allows up to 100 consecutive failures), which bounds guessing
    spread over many addresses; and one address gets ``ADDRESS_FACTOR`` times as many over all names,
    which bounds spraying one password across usernames.
    """

    def __init__(self, failures: int, window_s: float) -> None:
        self.by_user_here = FailureThrottle(failures, window_s)
        self.by_user = FailureThrottle(failures * USER_CEILING_FACTOR, window_s)
        self.by_address = FailureThrottle(failures * ADDRESS_FACTOR, window_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInThrottle:
        return cls(settings.web_sign_in_failures, settings.web_sign_in_window_minutes * 60.0)

    def check(self, username: str, address: str) -> None:
        self.by_user_here.check(_here(username, address))
        self.by_user.check(username)
        self.by_address.check(address)

    def fail(self, username: str, address: str) -> None:
        self.by_user_here.fail(_here(username, address))
        self.by_user.fail(username)
        self.by_address.fail(address)


def _here(username: str, address: str) -> str:
    return f"{address}\n{username}"  # a newline is in neither a username nor an address


class SessionService:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        access: AccessService,
        throttle: SignInThrottle,
        audit: AuditTrail,
    ) -> None:
        self.sessions = sessions
        self.access = access
        self.throttle = throttle
        self.audit = audit
        self.idle = timedelta(minutes=settings.web_session_idle_minutes)
        self.max_age = timedelta(hours=settings.web_session_max_hours)

    def sign_in(self, username: str, password: str, address: str) -> SignedIn:
        """A new session for these credentials; SignInRefused or TooManyAttempts otherwise."""
        name = username.strip().lower()
        try:
            self.throttle.check(name, address)
        except TooManyAttempts:
            self.audit.refused_once("user.sign_in", "throttled", address)
            raise
        user = self.access.sign_in(name, password)  # audits the attempt either way
        if user is None:
            self.throttle.fail(name, address)
            raise SignInRefused("the username or password is not right, or the account is disabled")
        with transaction(self.sessions) as s:
            row, secret = open_session(s, user.id, self.max_age)
            opened = SignedIn(row.id, secret, user, row.csrf_token, row.expires_at)
        self.audit(
            "session.start", "session", opened.session_id, actor=Caller.of_user(user.id, user.role).actor
        )
        return opened

    def resolve(self, secret: str) -> OpenSession | None:
        """The live session of this cookie secret, or None (a session that just timed out is audited)."""
        with transaction(self.sessions) as s:
            found = resolve_session(s, secret, self.idle)
        if isinstance(found, EndedSession):
            detail = {"reason": found.reason}
            self.audit("session.end", "session", found.id, detail=detail, actor=f"user:{found.user_id}")
            return None
        return found

    def sign_out(self, secret: str, actor: str) -> None:
        with transaction(self.sessions) as s:
            ended = end_session(s, secret)
        if ended is not None:
            self.audit("session.end", "session", ended, detail={"reason": "signed_out"}, actor=actor)

    def change_password(self, username: str, current: str, new: str, address: str) -> None:
        """A person's own new password, given the current one (counted like a sign-in when wrong);
        every session of theirs ends, this one too."""
        name = username.strip().lower()
        self.throttle.check(name, address)
        user = self.access.sign_in(name, current)  # audits the check of the current password
        if user is None:
            self.throttle.fail(name, address)
            raise SignInRefused("the current password is not right")
        # Audited; refuses a password that is too short; ends every session of theirs.
        self.access.reset_password(name, new, reason="password_changed")
