"""Who is acting: API tokens and the per-request actor the audit log names.

The API resolves a bearer token to a ``Principal`` and sets it for the request
(a context variable, so the Vault shared by all requests audits each one under
its own caller). The CLI acts as the machine's operator.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from chartvault.archive.db import transaction
from chartvault.archive.tokens import Principal, create_token, list_tokens, revoke_token, verify_token

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from chartvault.archive.audit import AuditLog

_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "chartvault_principal", default=None
)


def current_principal() -> Principal | None:
    return _PRINCIPAL.get()


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Run the block as ``principal`` (the API sets this once per request)."""
    token = _PRINCIPAL.set(principal)
    try:
        yield
    finally:
        _PRINCIPAL.reset(token)


def set_principal(principal: Principal | None) -> None:
    """Set the caller for the rest of the current context (one request's task)."""
    _PRINCIPAL.set(principal)


class AccessMixin:
    sessions: sessionmaker[Session]
    audit_log: AuditLog
    _default_actor: str

    def audit(self, action: str, *args: Any, **kwargs: Any) -> str: ...  # provided by Vault

    @property
    def actor(self) -> str:
        """The caller of the current request (token id), else this Vault's own actor (cli:<user>)."""
        p = _PRINCIPAL.get()
        return p.actor if p is not None else self._default_actor

    @property
    def principal(self) -> Principal | None:
        return _PRINCIPAL.get()

    def create_token(self, role: str, name: str, vendor: str | None = None, days: int = 90) -> dict[str, Any]:
        """A new token; the plaintext is in the result once and nowhere else."""
        with transaction(self.sessions) as s:
            row, plaintext = create_token(
                s, role=role, name=name, created_by=self.actor, vendor=vendor, days=days
            )
            result = _token_dict(row) | {"token": plaintext}
        self.audit("token.create", "token", result["id"], detail={"role": role})
        return result

    def verify_token(self, presented: str) -> Principal | None:
        with transaction(self.sessions) as s:
            return verify_token(s, presented)

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        with transaction(self.sessions) as s:
            result = _token_dict(revoke_token(s, token_id, self.actor))
        self.audit("token.revoke", "token", token_id)
        return result

    def verify_audit(self) -> dict[str, Any]:
        """Check the audit log's MAC chain against its checkpoints (the check is audited after it runs)."""
        report = self.audit_log.verify()
        detail = {"entries": report.entries, "problem": report.problem.code if report.problem else None}
        self.audit("audit.verify", outcome="ok" if report.ok else "broken", detail=detail)
        return report.as_dict()

    def rotate_audit_key(self) -> dict[str, Any]:
        """Make a new audit key current, audit the rotation under it, and checkpoint at once."""
        old_id, new_id = self.audit_log.rotate_key()
        self.audit("audit.key_rotate", detail={"from_key": old_id, "to_key": new_id})
        return {"from_key": old_id, "to_key": new_id, "checkpoint": self.audit_log.checkpoint().as_dict()}

    def audit_checkpoint(self) -> dict[str, Any]:
        """Write an audit checkpoint now (as the timer and shutdown do)."""
        return self.audit_log.checkpoint().as_dict()

    def tokens(self) -> list[dict[str, Any]]:
        with self.sessions() as s:
            return [_token_dict(t) for t in list_tokens(s)]


def _token_dict(t: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "vendor": t.vendor,
        "created_by": t.created_by,
        "created_at": t.created_at.isoformat(),
        "expires_at": t.expires_at.isoformat(),
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
    }
