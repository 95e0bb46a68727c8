"""The page templates (Jinja2, autoescaped) and what every page can use: the menu, dates, labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.templating import Jinja2Templates

from chartvault.policy import allowed

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

# The menu: (label, page path). A person sees the entries their role may open (from POLICY).
MENU: tuple[tuple[str, str], ...] = (
    ("Search", "/ui/search"),
    ("Review queue", "/ui/review"),
    ("Releases", "/ui/releases"),
    ("Legal holds", "/ui/holds"),
    ("Disposition", "/ui/disposition"),
    ("Patient index", "/ui/patient-index"),
    ("Reports", "/ui/reports"),
    ("Batches", "/ui/batches"),
    ("Quarantine", "/ui/quarantine"),
    ("Cover sheet", "/ui/coversheet"),
    ("Users", "/ui/admin/users"),
    ("API tokens", "/ui/admin/tokens"),
    ("Audit log", "/ui/admin/audit"),
    ("Classifier", "/ui/classifier"),
    ("Archive check", "/ui/admin/check"),
    ("Jobs", "/ui/admin/jobs"),
)

ROLE_LABELS = {
    "scanner": "Scanning operator",
    "staff": "HIM staff",
    "him_admin": "HIM administrator",
    "vendor": "Release vendor",
    "admin": "Administrator",
}


def menu_for(role: str | None) -> list[tuple[str, str]]:
    """The menu entries this role may open."""
    return [(label, path) for label, path in MENU if allowed("GET", path, role)]


def start_page(role: str) -> str:
    """Where a person lands after signing in: the first page of their menu."""
    entries = menu_for(role)
    return entries[0][1] if entries else "/ui/sign-in"


def label(value: str | None) -> str:
    """A code as people read it: ``discharge_summary`` -> ``Discharge summary``."""
    if not value:
        return "—"
    words = [_ACRONYMS.get(w, w) for w in value.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


_ACRONYMS = {"mrn": "MRN", "dob": "DOB", "dos": "DOS", "ed": "ED", "roi": "ROI", "csv": "CSV", "pdf": "PDF"}


def when(value: str | None) -> str:
    """An ISO timestamp as ``2026-03-04 14:05 UTC`` (dates pass through unchanged)."""
    if not value:
        return "—"
    if len(value) == 10:
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{round(100 * value)}%"


def cell(value: object, kind: str = "text") -> str:
    """A report cell as shown: counts and durations with thousands separators, flags as Yes/No.

    The value itself is the report's (formatting only: ``1,234`` is the 1234 the CSV holds).
    """
    if value is None or value == "":
        return "—"
    if kind == "flag" or isinstance(value, bool):
        return "Yes" if value else "No"
    if kind == "datetime" and isinstance(value, str):
        return when(value)
    if isinstance(value, int | float):
        return f"{value:,}"
    return str(value)


def compact(value: object, limit: int = 160) -> str:
    """An audit entry's detail on one line (``key: value, ...``), cut at ``limit`` characters."""
    if not value:
        return "—"
    if isinstance(value, dict):
        text = ", ".join(
            f"{k}: {v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in value.items()
        )
    else:
        text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(("html",), default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(label=label, when=when, percent=percent, cell=cell, compact=compact)
    env.globals.update(role_labels=ROLE_LABELS, menu_for=menu_for, allowed=allowed)
    return env


templates = Jinja2Templates(env=_environment())
