"""Helpers shared by the benchmarks: locating the corpus, timing, printing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path:
    path = Path(os.environ.get("CHARTVAULT_CORPUS", REPO.parent / "shared" / "corpus"))
    if not (path / "manifest.jsonl").exists():
        raise SystemExit(f"corpus not found at {path}; set CHARTVAULT_CORPUS")
    return path


def load_manifest(path: Path | None = None) -> list[dict]:
    root = path or corpus_dir()
    out = []
    for line in (root / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        entry["file"] = root / entry["path"]
        out.append(entry)
    return out


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - t0
