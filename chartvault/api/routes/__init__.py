"""One router per feature; ``chartvault.api.app`` includes them all."""

from chartvault.api.routes import (
    access,
    batches,
    classifier,
    documents,
    health,
    jobs,
    patients,
    releases,
    reports,
    review,
    search,
)

ROUTERS = (
    health.router,
    batches.router,
    documents.router,
    search.router,
    review.router,
    classifier.router,
    patients.router,
    releases.router,
    access.router,
    reports.router,
    jobs.router,
)

__all__ = ["ROUTERS"]
