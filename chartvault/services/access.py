"""API tokens and the audit log: who may call, and what everyone did."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.audit import AuditLog
from chartvault.archive.db import transaction
from chartvault.archive.models import ApiToken
from chartvault.archive.tokens import Principal, create_token, list_tokens, revoke_token, verify_token
from chartvault.schemas.access import (
    AuditCheckpoint,
    AuditKeyRotation,
    AuditReport,
    NewToken,
    TokenList,
    TokenView,
)
from chartvault.schemas.common import iso, to_fields
from chartvault.services.caller import AuditTrail


class AccessService:
    def __init__(self, sessions: sessionmaker[Session], audit_log: AuditLog, audit: AuditTrail) -> None:
        self.sessions = sessions
        self.audit_log = audit_log
        self.audit = audit

    def create_token(self, role: str, name: str, vendor: str | None = None, days: int = 90) -> NewToken:
        """A new token; its secret is in the answer once and nowhere else."""
        with transaction(self.sessions) as s:
            row, plaintext = create_token(
                s, role=role, name=name, created_by=self.audit.actor, vendor=vendor, days=days
            )
            made = NewToken(**to_fields(_token_view(row)), token=plaintext)
        self.audit("token.create", "token", made.id, detail={"role": role})
        return made

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
    )
