"""Batch manifests: what the scanning station says it sent, so ChartVault can reconcile.

A manifest is JSON::

    {"mrn": "00123456",              # optional, for every file
     "doc_type": "consent",          # optional hint, for every file
     "expected_files": 3,            # optional
     "files": [{"name": "scan01.tif", "pages": 3, "mrn": "...", "doc_type": "..."}]}

``files`` may also be an object keyed by file name. Files are matched by base name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from chartvault.archive.patients import UNSAFE_CHARS
from chartvault.classify.types import DOC_TYPES
from chartvault.config import DEFAULT_MRN_PATTERN
from chartvault.errors import InvalidInput

MAX_LABEL_CHARS = 128


class InvalidField(InvalidInput):
    code = "invalid_field"


def check_label(name: str, value: str | None) -> str | None:
    """A station or operator name as given, or a refusal naming the field (never the value)."""
    if value is None or not value.strip():
        return None
    if UNSAFE_CHARS.search(value):
        raise InvalidField(f"{name}: control, zero-width or direction-override characters are not allowed")
    if len(value) > MAX_LABEL_CHARS:
        raise InvalidField(f"{name}: at most {MAX_LABEL_CHARS} characters")
    return value.strip()


class ManifestError(InvalidInput):
    """The manifest itself is malformed (the batch is refused before any file is taken)."""

    code = "bad_manifest"


@dataclass(frozen=True, slots=True)
class FileExpectation:
    index: int  # position in the manifest, used in flags instead of the (possibly PHI-bearing) name
    name: str
    pages: int | None = None
    mrn: str | None = None
    doc_type: str | None = None


@dataclass(slots=True)
class Manifest:
    mrn: str | None = None
    doc_type: str | None = None
    expected_files: int | None = None
    files: list[FileExpectation] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def expectation_for(self, name: str) -> FileExpectation | None:
        base = PurePath(name.replace("\\", "/")).name
        for exp in self.files:
            if PurePath(exp.name.replace("\\", "/")).name == base:
                return exp
        return None


def _doc_type(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in DOC_TYPES:
        raise ManifestError(f"{where}: unknown doc_type; expected one of {', '.join(DOC_TYPES)}")
    return str(value)


def _pages(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ManifestError(f"{where}: 'pages' must be a positive whole number")
    return value


def _mrn(value: Any, where: str, pattern: re.Pattern[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        # MRNs are strings: a JSON number would already have lost its leading zeros.
        raise ManifestError(f"{where}: 'mrn' must be a string (leading zeros matter)")
    if UNSAFE_CHARS.search(value):
        raise ManifestError(f"{where}: 'mrn' holds control, zero-width or direction-override characters")
    if not pattern.fullmatch(value.strip()):
        raise ManifestError(f"{where}: 'mrn' is not an MRN of this facility (CHARTVAULT_MRN_PATTERN)")
    return value.strip()


def parse_manifest(data: str | bytes | dict[str, Any], mrn_pattern: str = DEFAULT_MRN_PATTERN) -> Manifest:
    """Parse and validate a manifest; raise ManifestError with a precise message (never a value)."""
    pattern = re.compile(mrn_pattern)
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                f"manifest is not valid JSON (line {exc.lineno}, column {exc.colno})"
            ) from None
    if not isinstance(data, dict):
        raise ManifestError("manifest must be a JSON object")
    files_raw = data.get("files", [])
    if isinstance(files_raw, dict):
        files_raw = [
            {"name": k, **(v if isinstance(v, dict) else {"pages": v})} for k, v in files_raw.items()
        ]
    if not isinstance(files_raw, list):
        raise ManifestError("'files' must be a list or an object")
    files = []
    for i, entry in enumerate(files_raw):
        where = f"files[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ManifestError(f"{where}: each file needs a 'name'")
        files.append(
            FileExpectation(
                index=i,
                name=entry["name"],
                pages=_pages(entry.get("pages", entry.get("page_count")), where),
                mrn=_mrn(entry.get("mrn"), where, pattern),
                doc_type=_doc_type(entry.get("doc_type"), where),
            )
        )
    expected_files = data.get("expected_files")
    if expected_files is not None and (not isinstance(expected_files, int) or expected_files < 0):
        raise ManifestError("'expected_files' must be a whole number")
    return Manifest(
        mrn=_mrn(data.get("mrn"), "manifest", pattern),
        doc_type=_doc_type(data.get("doc_type"), "manifest"),
        expected_files=expected_files,
        files=files,
        raw=data,
    )
