"""API tokens and the audit log (admins only)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.schemas.access import AuditReport, NewToken, TokenList, TokenView

router = APIRouter(tags=["access"])


class TokenBody(BaseModel):
    """A new token for the caller's own user, or (admins) for the named ``user``: its role is the user's."""

    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1, max_length=128)
    user: str | None = Field(None, min_length=2, max_length=64, description="Username (admins only).")
    days: int = Field(90, ge=1, le=3650, description="Days until the token expires.")


@router.post(
    "/tokens",
    status_code=201,
    summary="Create an API token for yourself, or (admin) for a named user; shown once",
    responses=error_responses(404, 422),
)
def create_token(body: TokenBody, services: ServicesDep) -> NewToken:
    return services.access.create_token_as_caller(body.name, body.days, body.user)


@router.get("/tokens", summary="Every token (never the secrets)", responses=error_responses())
def list_tokens(services: ServicesDep) -> TokenList:
    return services.access.tokens()


@router.delete("/tokens/{token_id}", summary="Revoke a token at once", responses=error_responses(404))
def revoke_token(token_id: str, services: ServicesDep) -> TokenView:
    return services.access.revoke_token(token_id)


@router.get("/audit/verify", summary="Check the audit log's chain", responses=error_responses())
def audit_verify(services: ServicesDep) -> AuditReport:
    return services.access.verify_audit()
