"""Index generations on disk: a schema version with every index, rebuilds into a new folder, atomic swap.

Layout under ``<root>/<kind>/``::

    CURRENT            the name of the generation searches use (replaced atomically by os.replace)
    BUILDING           JSON: the generation being rebuilt, its schema version, and how far it got
    g-<stamp>-<rand>/  one complete index each; schema.json inside records its schema version

A rebuild writes a new generation while searches keep answering from the one ``CURRENT`` names; when
it is complete, ``publish`` points ``CURRENT`` at it in one rename and older generations are removed.
An index written before generations existed (engine files directly in ``<root>/<kind>/``) is read as
the current generation until the first rebuild replaces it.

Knows nothing of the catalog: deciding *whether* to rebuild (stale against the catalog) and feeding
documents is ``chartvault.search.indexer``'s job.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from chartvault.search.common import read_schema_version
from chartvault.search.types import SearchBackend, SearchQuery

CURRENT = "CURRENT"
BUILDING = "BUILDING"
GEN_PREFIX = "g-"

# Index states reported by ``inspect``.
OK, MISSING, CORRUPT, OUTDATED = "ok", "missing", "corrupt", "outdated"


def schema_version_of(kind: str) -> int:
    """The schema version this release writes for ``kind`` (engines imported lazily)."""
    if kind == "whoosh":
        from chartvault.search.whoosh_backend import SCHEMA_VERSION
    elif kind == "tantivy":
        from chartvault.search.tantivy_backend import SCHEMA_VERSION
    else:
        raise ValueError(f"unknown search backend {kind!r}; expected whoosh or tantivy")
    return SCHEMA_VERSION


def open_at(kind: str, path: Path, create: bool = True) -> SearchBackend:
    """Open (or with ``create``, create) the ``kind`` engine's index directly in ``path``."""
    if kind == "whoosh":
        from chartvault.search.whoosh_backend import WhooshBackend

        return WhooshBackend(path, create=create)
    if kind == "tantivy":
        from chartvault.search.tantivy_backend import TantivyBackend

        return TantivyBackend(path, create=create)
    raise ValueError(f"unknown search backend {kind!r}; expected whoosh or tantivy")


@dataclass(frozen=True, slots=True)
class IndexState:
    """What ``inspect`` found: ``state`` is ok, missing, corrupt or outdated (an older schema)."""

    state: str
    schema_version: int | None = None
    doc_count: int | None = None

    @property
    def usable(self) -> bool:
        """Searches may be answered from it (an outdated index still answers while it is rebuilt)."""
        return self.state in (OK, OUTDATED)


def inspect(kind: str, path: Path | None) -> IndexState:
    """Open the index read-only and run a query: any failure means corrupt, never a crash later."""
    if path is None or not path.is_dir():
        return IndexState(MISSING)
    version = read_schema_version(path)
    if version is None and not any(path.iterdir()):
        return IndexState(MISSING)
    try:
        be = open_at(kind, path, create=False)
    except Exception:  # engines raise many types on damaged files; the message may hold paths only
        return IndexState(CORRUPT, version)
    try:
        count = be.doc_count()
        be.search(SearchQuery(text="chartvault", limit=1, with_facets=False))
        be.search(SearchQuery(batch_id="-", limit=1))
    except Exception:
        return IndexState(CORRUPT, version)
    finally:
        be.close()
    if version != schema_version_of(kind):
        return IndexState(OUTDATED, version, count)
    return IndexState(OK, version, count)


@dataclass(slots=True)
class BuildState:
    """Progress of a rebuild, saved after every committed chunk so that it can resume."""

    generation: str
    schema_version: int
    started_at: str  # ISO-8601 UTC; documents indexed since then are caught up at the end
    last_id: str = ""  # documents are streamed in id order; everything <= last_id is in


class IndexLocation:
    """The generations of one engine's index under ``root/kind``."""

    def __init__(self, root: Path, kind: str) -> None:
        self.kind = kind
        self.base = Path(root) / kind

    # -- current generation ----------------------------------------------------------------------

    def current_name(self) -> str | None:
        """The generation ``CURRENT`` names; "." for an index from before generations; None if none."""
        try:
            name = (self.base / CURRENT).read_text().strip()
        except OSError:
            return "." if self._legacy() else None
        return name or None

    def current(self) -> Path | None:
        """The folder searches should use, or None when there is none."""
        name = self.current_name()
        if name is None:
            return None
        return self.base if name == "." else self.base / name

    def pointer_stamp(self) -> tuple[int, int] | None:
        """Changes whenever ``CURRENT`` is replaced: a cheap test for "was the index swapped?"."""
        try:
            st = (self.base / CURRENT).stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def _legacy(self) -> bool:
        return (self.base / "schema.json").is_file()

    # -- building --------------------------------------------------------------------------------

    def new_generation(self) -> Path:
        """A new, empty generation folder (not yet current)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.base / f"{GEN_PREFIX}{stamp}-{secrets.token_hex(3)}"
        path.mkdir(parents=True)
        return path

    def read_build(self) -> BuildState | None:
        """The unfinished rebuild recorded on disk, if any (and if its folder still exists)."""
        try:
            state = BuildState(**json.loads((self.base / BUILDING).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return state if (self.base / state.generation).is_dir() else None

    def write_build(self, state: BuildState) -> None:
        """Record rebuild progress atomically (a crash leaves the previous record)."""
        _atomic_write(self.base / BUILDING, json.dumps(asdict(state)))

    def abandon_build(self) -> None:
        """Forget an unfinished rebuild and remove its folder."""
        state = self.read_build()
        with contextlib.suppress(FileNotFoundError):
            (self.base / BUILDING).unlink()
        if state is not None:
            shutil.rmtree(self.base / state.generation, ignore_errors=True)

    def publish(self, generation: Path) -> None:
        """Make ``generation`` current in one atomic rename, then forget the rebuild record."""
        _atomic_write(self.base / CURRENT, generation.name + "\n")
        with contextlib.suppress(FileNotFoundError):
            (self.base / BUILDING).unlink()

    def prune(self) -> None:
        """Remove every generation except the current one and one being built, and legacy files.

        Processes still reading an old generation keep their open files (POSIX unlink semantics) and
        move to the new one at their next search (``pointer_stamp``).
        """
        current = self.current_name()
        build = self.read_build()
        keep = {CURRENT, BUILDING, current, build.generation if build else None}
        for entry in self.base.iterdir() if self.base.is_dir() else ():
            if entry.name in keep or entry.name.startswith("."):
                continue
            if entry.is_dir() and entry.name.startswith(GEN_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
            elif current != "." and entry.is_file() and not entry.name.endswith(".lock"):
                entry.unlink(missing_ok=True)  # a pre-generation index's files


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def open_current(kind: str, root: Path) -> SearchBackend:
    """Open the current generation under ``root/kind``, creating an empty first one if there is none.

    For callers without a catalog (tests, benchmarks). The service goes through the indexer, which
    also detects outdated, corrupt and stale indexes and rebuilds them.
    """
    location = IndexLocation(root, kind)
    path = location.current()
    if path is not None:
        return open_at(kind, path, create=False)
    generation = location.new_generation()
    backend = open_at(kind, generation)
    location.publish(generation)
    return backend
