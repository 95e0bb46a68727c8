"""Failed authentications: counted per client and minute, answered 429 past the limit, audited once per
client and minute (never one row per attempt)."""

from __future__ import annotations

from conftest import api_client
from sqlalchemy import func, select

from chartvault.api.ratelimit import MAX_CLIENTS, OVERFLOW_CLIENT, FailedAuthLimiter
from chartvault.archive.models import AuditEvent

BOGUS = {"Authorization": "Bearer cv_0123456789abcdef0123456789abcdef_" + "x" * 43}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0 + 5  # five seconds into a minute

    def __call__(self) -> float:
        return self.now


def _audit_rows(c, action: str | None = None) -> int:
    with c.app.state.services.parts.sessions() as s:
        q = select(func.count()).select_from(AuditEvent)
        if action:
            q = q.where(AuditEvent.action == action)
        return int(s.scalar(q) or 0)


def test_failures_are_limited_and_summarised_once_per_minute(settings) -> None:
    settings = settings.model_copy(update={"auth_failures_per_minute": 5})
    with api_client(settings, role="him_admin") as c:
        clock = Clock()
        c.app.state.auth_limiter.clock = clock
        before = _audit_rows(c)
        answers = [c.get("/review", headers=BOGUS) for _ in range(8)]
        assert [r.status_code for r in answers] == [401] * 5 + [429] * 3
        limited = answers[-1]
        assert limited.headers["content-type"].startswith("application/json")
        assert limited.json()["error"]["code"] == "too_many_requests"
        assert 1 <= int(limited.headers["Retry-After"]) <= 55
        assert c.get("/review").status_code == 429  # the client waits, whatever token it sends now
        assert c.get("/health").status_code == 200  # public routes stay open
        assert _audit_rows(c) == before  # not one row, not one write, per bogus attempt

        clock.now += 60  # the minute has ended
        assert c.get("/review").status_code == 200
        summaries = _audit_rows(c, "auth.failures")
        assert summaries == 1
        with c.app.state.services.parts.sessions() as s:
            row = s.scalars(select(AuditEvent).where(AuditEvent.action == "auth.failures")).one()
            assert row.target_type == "client" and row.target_id == "testclient"
            assert row.detail["failures"] == 5 and row.detail["refused_429"] == 4
        assert c.get("/review", headers=BOGUS).status_code == 401  # counting starts afresh
    with c.app.state.services.parts.sessions() as s:  # written at shutdown: the open minute too
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "auth.failures")).all()
        assert [r.detail["failures"] for r in rows] == [5, 1]


def test_the_limiter_keeps_bounded_memory() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(3, clock=clock)
    for i in range(MAX_CLIENTS + 50):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._windows) == MAX_CLIENTS + 1
    assert limiter.retry_after("10.99.0.1") is None
    assert limiter.retry_after(OVERFLOW_CLIENT) is not None  # the 50 extra clients share one counter
    clock.now += 61
    assert len(limiter.ended()) == MAX_CLIENTS + 1
    assert limiter._windows == {}
