"""The composition root: every service built from ``Settings``, every part opened on first use.

A command that reads one document opens the catalog and nothing else; one that ingests opens the
object store, the worker pool and the index writer too. The API builds one ``Parts`` at start and
hands each request ``services.acting_as(caller)``: the same open parts, services that audit as that
caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from chartvault.config import Settings
from chartvault.ingest.private import make_private
from chartvault.services.caller import SYSTEM, AuditTrail, Caller

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from chartvault.archive.audit import AuditLog
    from chartvault.archive.lifecycle import RetentionPolicy
    from chartvault.archive.objectstore import ObjectStore
    from chartvault.ingest.executors import Executor
    from chartvault.ingest.pipeline import Pipeline
    from chartvault.search.indexer import Indexer
    from chartvault.services.access import AccessService
    from chartvault.services.backups import BackupService
    from chartvault.services.documents import DocumentService
    from chartvault.services.intake import IntakeService
    from chartvault.services.jobs import JobService
    from chartvault.services.links import LinkSealer, LinkService
    from chartvault.services.operations import OperationsService
    from chartvault.services.pages import PageCache, PageService
    from chartvault.services.patients import PatientService
    from chartvault.services.records import RecordsService
    from chartvault.services.release import ReleaseService
    from chartvault.services.reports import ReportsService
    from chartvault.services.review import ClassifierModels, ReviewService
    from chartvault.services.search import SearchService
    from chartvault.services.sessions import SessionService, SignInThrottle

T = TypeVar("T")


class _part(Generic[T]):
    """A part built once, on first use, under the parts' lock (threads of the API share them)."""

    def __init__(self, build: Callable[[Parts], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __get__(self, parts: Parts, owner: type[Parts] | None = None) -> T:
        if self.name not in parts._built:
            with parts._lock:
                if self.name not in parts._built:
                    parts._built[self.name] = self.build(parts)
        built: T = parts._built[self.name]
        return built


class Parts:
    """What the services share: the catalog, the object store, the index, the worker pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._built: dict[str, Any] = {}
        make_private(settings.data_dir)  # umask 077, data folder 0700: PHI is the owner's alone

    @_part
    def catalog(self) -> tuple[Engine, sessionmaker[Session]]:
        """The catalog's engine and sessions, migrated to the current schema."""
        from chartvault.archive.db import open_catalog

        return open_catalog(self.settings.catalog_url)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.catalog[1]

    @_part
    def store(self) -> ObjectStore:
        """Where originals, packages and certificates are archived."""
        from chartvault.archive.stores import open_object_store

        return open_object_store(self.settings)

    @_part
    def audit_log(self) -> AuditLog:
        """The audit log: a keyed MAC chain, checkpointed into the object store."""
        from chartvault.archive.audit import AuditLog
        from chartvault.archive.audit_keys import KeyRing

        settings = self.settings
        return AuditLog(
            self.sessions,
            KeyRing.from_settings(settings),
            self.store,
            settings.audit_checkpoint_interval_s,
            settings.audit_checkpoint_retention_days,
        )

    @_part
    def policy(self) -> RetentionPolicy:
        """The retention rules and how they become store locks."""
        from chartvault.archive.lifecycle import RetentionPolicy

        return RetentionPolicy.from_settings(self.settings)

    @_part
    def indexer(self) -> Indexer:
        """The search index: the reader every search uses and, in one process at a time, the writer."""
        from chartvault.search.indexer import Indexer, WriterLock
        from chartvault.services.indexing import CatalogIndexSource

        root = self.settings.data_dir / "index"
        return Indexer(
            CatalogIndexSource(self.sessions),
            self.settings.search_backend,
            root,
            WriterLock(root / "writer.lock"),
        )

    @_part
    def executor(self) -> Executor:
        """Where sniffing and OCR run: the local process pool, or Celery workers."""
        from chartvault.ingest.executors import open_executor

        return open_executor(self.settings)

    @_part
    def classifier(self) -> ClassifierModels:
        """The document-type model of this catalog (retrained when staff corrections change)."""
        from chartvault.services.review import ClassifierModels

        return ClassifierModels(self.sessions, self.settings.data_dir / "models")

    @_part
    def sign_in_throttle(self) -> SignInThrottle:
        """Failed web sign-ins of this process, per username and per client address."""
        from chartvault.services.sessions import SignInThrottle

        return SignInThrottle.from_settings(self.settings)

    @_part
    def link_sealer(self) -> LinkSealer:
        """Seals the pages' links (searches, patients) with the link key ring."""
        from chartvault.services.links import LinkSealer

        return LinkSealer.from_settings(self.settings)

    @_part
    def page_cache(self) -> PageCache:
        """Rendered page images and the originals they come from, under <data_dir>/cache."""
        from chartvault.services.pages import PageCache

        return PageCache(self.settings.data_dir / "cache", self.settings.page_cache_mb * 1024 * 1024)

    @_part
    def pipeline(self) -> Pipeline:
        from chartvault.ingest.pipeline import Pipeline, PipelineOptions

        return Pipeline(
            PipelineOptions.from_settings(self.settings),
            self.sessions,
            self.store,
            self.executor,
            self.policy,
            self.classifier.current,
        )

    @_part
    def operations(self) -> OperationsService:
        """Readiness probes and the catalog's gauges (cached: one per process, shared by every request)."""
        from chartvault.services.operations import OperationsService

        return OperationsService(self.settings, self.sessions, lambda: self.store, lambda: self.indexer)

    def close(self) -> None:
        """Stop the pool and the index writer, checkpoint the audit log, release the catalog."""
        built = self._built
        if "operations" in built:
            built["operations"].close()
        if "audit_log" in built:
            built["audit_log"].close()  # the final checkpoint, while the catalog is still open
        if "executor" in built:
            built["executor"].close()
        if "indexer" in built:
            built["indexer"].close()
            built["indexer"].lock.release()
        if "catalog" in built:
            built["catalog"][0].dispose()
        self._built = {}


class Services:
    """One service per capability, each given what it needs; ``acting_as`` binds them to a caller."""

    def __init__(self, settings: Settings, caller: Caller = SYSTEM, *, parts: Parts | None = None) -> None:
        self.settings = settings
        self.caller = caller
        self._owner = parts is None
        self.parts = parts or Parts(settings)

    def acting_as(self, caller: Caller) -> Services:
        """The same open parts, with services that act (and audit) as ``caller``."""
        return Services(self.settings, caller, parts=self.parts)

    @cached_property
    def audit(self) -> AuditTrail:
        return AuditTrail(self.parts.audit_log, self.caller.actor)

    @cached_property
    def backups(self) -> BackupService:
        """Snapshots of the catalog and the objects into a backup folder (restore: ``backups.restore``)."""
        from chartvault.services.backups import BackupService

        return BackupService(self.settings, lambda: self.parts.store, self.audit, self.parts.sessions)

    @cached_property
    def jobs(self) -> JobService:
        """Long operations in threads of this process, recorded in the catalog (any process follows them)."""
        from chartvault.services.jobs import JobService

        return JobService(self.parts.sessions, self.settings.data_dir / "jobs", self.audit, self.caller)

    @cached_property
    def intake(self) -> IntakeService:
        from chartvault.services.intake import IntakeService

        parts = self.parts
        return IntakeService(
            self.settings,
            parts.sessions,
            lambda: parts.pipeline,
            lambda: parts.indexer,
            self.audit,
            self.caller,
            settle_unlinked=lambda: self.patients.settle_unlinked(),
        )

    @cached_property
    def patients(self) -> PatientService:
        """The patient index: the registration list, and documents with no patient settled."""
        from chartvault.services.patients import PatientService

        parts = self.parts
        return PatientService(
            parts.sessions,
            lambda: parts.store,
            lambda: parts.policy,
            self.audit,
            self.jobs,
            mrn_check_digit=self.settings.mrn_check_digit,
            mrn_pattern=self.settings.mrn_pattern,
        )

    @cached_property
    def documents(self) -> DocumentService:
        from chartvault.services.documents import DocumentService

        parts = self.parts
        return DocumentService(parts.sessions, lambda: parts.store, self.audit)

    @cached_property
    def search(self) -> SearchService:
        from chartvault.services.search import SearchService

        return SearchService(self.parts.sessions, self.parts.indexer, self.documents.page_texts, self.audit)

    @cached_property
    def review(self) -> ReviewService:
        from chartvault.services.review import ReviewService

        parts = self.parts
        return ReviewService(
            parts.sessions,
            lambda: parts.store,
            lambda: parts.policy,
            parts.classifier,
            self.audit,
            self.jobs,
            mrn_check_digit=self.settings.mrn_check_digit,
        )

    @cached_property
    def records(self) -> RecordsService:
        from chartvault.services.records import RecordsService

        parts = self.parts
        return RecordsService(
            self.settings,
            parts.sessions,
            parts.store,
            parts.policy,
            self.audit,
            index_now=self.intake.index_now,
            reconcile_index=self.search.reconcile,
            resume=self.intake.resume,
            unfinished=self.intake.unfinished,
            forget_pages=self.pages.forget,
            temp_leftovers=self.intake.temp_leftovers,
            clean_temp=self.intake.clean_temp,
            unlinked=self.patients.unlinked_outside_review,
            settle_unlinked=self.patients.settle_unlinked,
            jobs=self.jobs,
        )

    @cached_property
    def releases(self) -> ReleaseService:
        from chartvault.services.release import ReleaseService

        return ReleaseService(self.settings, self.parts.sessions, self.parts.store, self.audit, self.caller)

    @property
    def operations(self) -> OperationsService:
        return self.parts.operations

    @cached_property
    def reports(self) -> ReportsService:
        from chartvault.services.reports import ReportsService

        return ReportsService(self.parts.sessions, self.audit)

    @cached_property
    def access(self) -> AccessService:
        from chartvault.services.access import AccessService

        return AccessService(self.parts.sessions, self.parts.audit_log, self.audit, self.caller)

    @cached_property
    def sessions(self) -> SessionService:
        """Web sign-in and sessions (the pages' way in, as tokens are the API's)."""
        from chartvault.services.sessions import SessionService

        parts = self.parts
        return SessionService(self.settings, parts.sessions, self.access, parts.sign_in_throttle, self.audit)

    @cached_property
    def links(self) -> LinkService:
        """Page links sealed for this caller: no MRN or name in an address (``services.links``)."""
        from chartvault.services.links import LinkService

        parts = self.parts
        return LinkService(lambda: parts.link_sealer, self.caller, self.audit)

    @cached_property
    def pages(self) -> PageService:
        """Pages as the viewer shows them: images rendered from the original, text, the query's words."""
        from chartvault.services.pages import PageService

        parts = self.parts
        return PageService(
            parts.sessions,
            lambda: parts.store,
            parts.page_cache,
            self.settings.page_image_max_width,
            self.settings.max_pixels,
            self.audit,
        )

    def close(self) -> None:
        if self._owner:
            self.parts.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
