"""What routes are given: the services acting as the caller, the catalog, the settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from chartvault.config import Settings
from chartvault.services import Services


def services(request: Request) -> Services:
    """The services acting as this request's caller (``authorize`` resolved the token first)."""
    bound: Services | None = getattr(request.state, "services", None)
    return bound if bound is not None else request.app.state.services  # public routes act as the system


def catalog(request: Request) -> sessionmaker[Session]:
    root: Services = request.app.state.services
    return root.parts.sessions


def settings(request: Request) -> Settings:
    root: Services = request.app.state.services
    return root.settings


ServicesDep = Annotated[Services, Depends(services)]
CatalogDep = Annotated[sessionmaker[Session], Depends(catalog)]
SettingsDep = Annotated[Settings, Depends(settings)]
