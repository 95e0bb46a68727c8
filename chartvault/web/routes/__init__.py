"""One router per group of pages; ``chartvault.web.install`` includes them all."""

from chartvault.web.routes import (
    account,
    admin,
    auth,
    batches,
    classifier,
    disposition,
    documents,
    patients,
    quarantine,
    records,
    releases,
    reports,
    review,
    search,
)

ROUTERS = (
    auth.router,
    account.router,
    search.router,
    documents.router,
    review.router,
    releases.router,
    records.router,
    disposition.router,
    reports.router,
    batches.router,
    quarantine.router,
    admin.router,
    patients.router,
    classifier.router,
)

__all__ = ["ROUTERS"]
