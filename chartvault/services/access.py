"""Users, API tokens and the audit log: who may call, and what everyone did."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.audit import AuditLog, EntryFilter, actions, read_entries
from chartvault.archive.db import transaction
from chartvault.archive.models import ApiToken, AuditEvent, User
from chartvault.archive.tokens import Principal, create_token, list_tokens, revoke_token, verify_token
from chartvault.archive.users import authenticate, create_user, find_user, list_users, set_password
from chartvault.archive.web_sessions import end_user_sessions
from chartvault.errors import Forbidden, InvalidInput
from chartvault.schemas.access import (
    AuditCheckpoint,
    AuditEntries,
    AuditEntry,
    AuditKeyRotation,
    AuditReport,
    NewToken,
    TokenList,
    TokenView,
    UserList,
    UserView,
)
from chartvault.schemas.common import iso, to_fields
from chartvault.services.caller import AuditTrail, Caller


class AccessService:
    def __init__(
        self, sessions: sessionmaker[Session], audit_log: AuditLog, audit: AuditTrail, caller: Caller
    ) -> None:
        self.sessions = sessions
        self.audit_log = audit_log
        self.audit = audit
        self.caller = caller

    # -- users -------------------------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        display_name: str,
        role: str,
        *,
        password: str | None = None,
        vendor: str | None = None,
    ) -> UserView:
        with transaction(self.sessions) as s:
            user = create_user(
                s,
                username=username,
                display_name=display_name,
                role=role,
                created_by=self.audit.actor,
                password=password,
                vendor=vendor,
            )
            view = _user_view(user)
        self.audit("user.create", "user", view.id, detail={"role": role})
        return view

    def reset_password(self, username: str, password: str, *, reason: str = "password_reset") -> UserView:
        """A new password; every web session of the user ends with it, whoever asks (the page, the
        console, the user's own change): a reset is what is done when an account was taken."""
        with transaction(self.sessions) as s:
            user = find_user(s, username)
            set_password(user, password)
            ended = end_user_sessions(s, user.id, reason)
            view = _user_view(user)
        self.audit("user.password_reset", "user", view.id)
        self._audit_ended(view.id, reason, ended)
        return view

    def disable_user(self, username: str) -> UserView:
        """The user can no longer sign in, every token of theirs stops working and their web
        sessions end."""
        with transaction(self.sessions) as s:
            user = find_user(s, username)
            if user.disabled_at is None:
                user.disabled_at = datetime.now(UTC)
            ended = end_user_sessions(s, user.id, "disabled")
            view = _user_view(user)
        self.audit("user.disable", "user", view.id)
        self._audit_ended(view.id, "disabled", ended)
        return view

    def _audit_ended(self, user_id: str, reason: str, sessions: int) -> None:
        if sessions:
            self.audit("session.end", "user", user_id, detail={"reason": reason, "sessions": sessions})

    def users(self) -> UserList:
        with self.sessions() as s:
            return UserList(users=[_user_view(u) for u in list_users(s)])

    def sign_in(self, username: str, password: str) -> UserView | None:
        """The user these credentials belong to, or None; every attempt is audited (ids only)."""
        with transaction(self.sessions) as s:
            user = authenticate(s, username, password)
            view = _user_view(user) if user is not None else None
        if view is None:
            self.audit("user.sign_in", outcome="refused")
        else:
            self.audit("user.sign_in", "user", view.id, actor=f"user:{view.id}")
        return view

    # -- tokens ------------------------------------------------------------------------------------

    def create_token(
        self,
        role: str | None,
        name: str,
        vendor: str | None = None,
        days: int = 90,
        *,
        username: str | None = None,
        not_after: datetime | None = None,
    ) -> NewToken:
        """A new token (of ``username`` when given); its secret is in the answer once and nowhere else.

        The token records who made it (actor and user): separation of duties refuses a token made by
        a release's requester as much as the requester's own.
        """
        with transaction(self.sessions) as s:
            user = find_user(s, username) if username is not None else None
            row, plaintext = create_token(
                s,
                role=role,
                name=name,
                created_by=self.audit.actor,
                created_by_user=self.caller.user_id,
                vendor=vendor,
                days=days,
                user=user,
                not_after=not_after,
            )
            made = NewToken(**to_fields(_token_view(row)), token=plaintext)
        self.audit("token.create", "token", made.id, detail={"role": made.role, "user": made.user_id})
        return made

    def create_token_as_caller(self, name: str, days: int = 90, username: str | None = None) -> NewToken:
        """``POST /tokens``: a token for the caller's own user, or (admins only) for a named user.

        A token that belongs to no user (one from before users) can only name a user, and only as admin.
        """
        if username is None:
            if self.caller.user_id is None:
                raise Forbidden("this token belongs to no user: name the user the new token is for")
            with self.sessions() as s:
                owner = s.get(User, self.caller.user_id)
                username = owner.username if owner is not None else None
            if username is None:
                raise Forbidden("this token's user no longer exists")
        elif self.caller.role != "admin":
            raise Forbidden("only an admin makes tokens for another user")
        return self.create_token(
            None, name, days=days, username=username, not_after=self._calling_token_end()
        )

    def _calling_token_end(self) -> datetime | None:
        """When the caller's token expires, if a token made by it must end no later (anyone but an
        admin): else a stolen token would mint itself a successor of ten years, and that one another."""
        if self.caller.role == "admin" or not self.caller.actor.startswith("token:"):
            return None
        with self.sessions() as s:
            row = s.get(ApiToken, self.caller.actor.removeprefix("token:"))
            if row is None:
                return datetime.now(UTC)  # cannot happen for a caller that passed the door
            end = row.expires_at
            return end if end.tzinfo is not None else end.replace(tzinfo=UTC)

    def verify_token(self, presented: str) -> Principal | None:
        """The principal of a valid token, None for anything else (the reason never leaks)."""
        with transaction(self.sessions) as s:
            return verify_token(s, presented)

    def revoke_token(self, token_id: str) -> TokenView:
        with transaction(self.sessions) as s:
            view = _token_view(revoke_token(s, token_id, self.audit.actor))
        self.audit("token.revoke", "token", token_id)
        return view

    def tokens(self) -> TokenList:
        with self.sessions() as s:
            return TokenList(tokens=[_token_view(t) for t in list_tokens(s)])

    def verify_audit(self) -> AuditReport:
        """Check the audit log's MAC chain against its checkpoints (the check itself is audited after)."""
        report = self.audit_log.verify()
        detail = {"entries": report.entries, "problem": report.problem.code if report.problem else None}
        self.audit("audit.verify", outcome="ok" if report.ok else "broken", detail=detail)
        fields = report.as_dict()
        newest = fields.pop("newest_checkpoint")
        return AuditReport(**fields, newest_checkpoint=AuditCheckpoint(**newest) if newest else None)

    def audit_entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> AuditEntries:
        """A page of the audit log, newest first, each filter an exact match (dates inclusive, UTC).

        Reading the log is recorded as well (``audit.read``): which filters were used and how many
        entries came back, never the values looked for.
        """
        if date_from and date_to and date_from > date_to:
            raise InvalidInput("the first day comes after the last")
        if not 1 <= limit <= 500:
            raise InvalidInput("a page holds 1 to 500 entries")
        where = EntryFilter(
            actor=actor or None,
            action=action or None,
            target_id=target or None,
            since=_midnight(date_from) if date_from else None,
            until=_midnight(date_to + timedelta(days=1)) if date_to else None,
        )
        with self.sessions() as s:
            page = read_entries(s, where, before=before, after=after, limit=limit)
            entries = [_entry_view(e) for e in page.entries]
            known = actions(s)
        used = {"actor": actor, "action": action, "target": target, "from": date_from, "to": date_to}
        self.audit(
            "audit.read", detail={"filters": [k for k, v in used.items() if v], "entries": len(entries)}
        )
        return AuditEntries(
            entries=entries,
            newer=entries[0].seq if page.newer else None,
            older=entries[-1].seq if page.older else None,
            actions=known,
        )

    def checkpoint_audit(self) -> AuditCheckpoint:
        """Write the audit log's entry count and head MAC to the object store now (locked)."""
        return AuditCheckpoint(**self.audit_log.checkpoint().as_dict())

    def rotate_audit_key(self) -> AuditKeyRotation:
        """Make a new audit key current (old keys stay, to verify old entries) and checkpoint at once."""
        old_id, new_id = self.audit_log.rotate_key()
        self.audit("audit.rotate_key", detail={"from_key": old_id, "to_key": new_id})
        checkpoint = AuditCheckpoint(**self.audit_log.checkpoint().as_dict())
        return AuditKeyRotation(from_key=old_id, to_key=new_id, checkpoint=checkpoint)


def _token_view(t: ApiToken) -> TokenView:
    return TokenView(
        id=t.id,
        name=t.name,
        role=t.role,
        vendor=t.vendor,
        created_by=t.created_by,
        created_at=iso(t.created_at),
        expires_at=iso(t.expires_at),
        revoked_at=iso(t.revoked_at),
        last_used_at=iso(t.last_used_at),
        user_id=t.user_id,
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _entry_view(e: AuditEvent) -> AuditEntry:
    return AuditEntry(
        seq=e.seq,
        at=iso(e.at),
        actor=e.actor,
        action=e.action,
        target_type=e.target_type,
        target_id=e.target_id,
        outcome=e.outcome,
        detail=e.detail,
    )


def _user_view(u: User) -> UserView:
    return UserView(
        id=u.id,
        username=u.username,
        display_name=u.display_name,
        role=u.role,
        vendor=u.vendor,
        has_password=u.password_hash is not None,
        created_at=iso(u.created_at),
        disabled_at=iso(u.disabled_at),
    )
