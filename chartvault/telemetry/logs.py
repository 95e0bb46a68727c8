"""Log lines as JSON (``CHARTVAULT_LOG_FORMAT=json``) that carry ids and codes, never patient data.

A JSON line keeps the message *template* (code, not data) and only the arguments the template names
as an id or a count (``"document archived doc=%s file=%s pages=%d"`` gives ``doc``, ``file`` and
``pages``), and only when the value looks like one: a number, or a short token of letters, digits
and ``_.:-``. Every other argument is dropped, so a mistaken ``log.info("... %s", page_text)`` or
an MRN under an unexpected name cannot reach the log. An exception is logged as its type and the
frames it passed through, never its message (a database error quotes the row it failed on).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Names of template fields that hold ids, codes or counts (the values are checked too).
ID_FIELDS = frozenset(
    {
        "batch",
        "file",
        "doc",
        "document",
        "documents",
        "page",
        "pages",
        "files",
        "hold",
        "release",
        "token",
        "disposition",
        "id",
        "task",
        "kind",
        "code",
        "codes",
        "scope",
        "state",
        "status",
        "reason",
        "error",
        "part",
        "route",
        "method",
        "outcome",
        "count",
        "removed",
        "refused",
        "destroyed",
        "missing",
        "corrupt",
        "orphans",
        "into",
        "versions_deleted",
        "days",
        "entries",
        "ms",
        "seconds",
    }
)
_TOKEN = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
# A route template: segments of letters or {names}, never a digit, so a real path (ids, MRNs) fails.
_ROUTE_TEMPLATE = re.compile(r"(/([A-Za-z_\-]+|\{[A-Za-z_]+\}))+|/|<unmatched>")
_CONVERSION = re.compile(
    r"%(?:\((?P<key>[^)]+)\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<type>[diouxXeEfFgGcrsa%])"
)
_NAMED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=$")
_MAX_LIST = 100
_MAX_FRAMES = 12


def _safe(value: Any) -> Any:
    """The value if it can only be an id, a code or a number; None otherwise."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if _TOKEN.fullmatch(value) else None
    if isinstance(value, list | tuple | set | frozenset) and len(value) <= _MAX_LIST:
        items = [_safe(v) for v in value]
        return items if all(v is not None for v in items) else None
    return None


def template_fields(template: str, args: Any) -> dict[str, Any]:
    """The id fields a message template names, with their values when they pass ``_safe``."""
    fields: dict[str, Any] = {}
    position = 0
    positional = args if isinstance(args, tuple) else ()
    for m in _CONVERSION.finditer(template):
        if m["type"] == "%":
            continue
        if m["key"] is not None:
            name, value = m["key"], args.get(m["key"]) if isinstance(args, Mapping) else None
        else:
            named = _NAMED.search(template, 0, m.start())
            name = named["name"] if named else None
            value = positional[position] if position < len(positional) else None
            position += 1
        if name == "route" and isinstance(value, str) and _ROUTE_TEMPLATE.fullmatch(value):
            fields[name] = value
        elif name in ID_FIELDS and (safe := _safe(value)) is not None:
            fields[name] = safe
    return fields


def _exception(exc_info: Any) -> dict[str, Any]:
    kind, _, tb = exc_info
    frames = traceback.extract_tb(tb)[-_MAX_FRAMES:]
    return {
        "type": getattr(kind, "__name__", "Exception"),
        "frames": [f"{f.filename}:{f.lineno} {f.name}" for f in frames],
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, the message template and its id fields."""

    def format(self, record: logging.LogRecord) -> str:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": template,
        }
        if fields := template_fields(template, record.args):
            entry["fields"] = fields
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = _exception(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


def configure_logging(log_format: LogFormat, level: int = logging.WARNING) -> None:
    """Send every log record (ChartVault's, uvicorn's, Celery's) to stderr in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
