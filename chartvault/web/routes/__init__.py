"""One router per group of pages; ``chartvault.web.install`` includes them all."""

from chartvault.web.routes import (
    account,
    admin,
    auth,
    batches,
    classifier,
    documents,
    patients,
    records,
    releases,
    reports,
    review,
)

ROUTERS = (
    auth.router,
    account.router,
    documents.router,
    review.router,
    releases.router,
    records.router,
    reports.router,
    batches.router,
    admin.router,
    patients.router,
    classifier.router,
)

__all__ = ["ROUTERS"]
