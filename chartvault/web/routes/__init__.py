"""One router per group of pages; ``chartvault.web.install`` includes them all."""

from chartvault.web.routes import auth, documents

ROUTERS = (auth.router, documents.router)

__all__ = ["ROUTERS"]
