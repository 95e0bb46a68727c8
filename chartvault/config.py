"""Settings, read from ``CHARTVAULT_*`` environment variables or a ``.env`` file.

Every setting has an embedded default so that one machine runs ChartVault with no
server: a SQLite catalog, a local object folder and a tantivy search index, all under
``data_dir``. Production changes these by configuration only.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Today's MRNs: 6-12 digits, optionally after a short letter prefix (the corpus has 8-10 digits and
# letter + 7 digits). Leading zeros matter: MRNs are strings.
DEFAULT_MRN_PATTERN = r"[A-Za-z]{0,3}[0-9]{6,12}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHARTVAULT_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Folder for the catalog, objects, index and staging.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the catalog; default sqlite:///<data_dir>/catalog.sqlite3."
    )
    object_store: Literal["local", "s3"] = Field(
        "local", description="Where originals are archived; 's3' whenever CHARTVAULT_S3_ENDPOINT is set."
    )
    # tantivy by default: at 100,000 documents it meets the search goals and whoosh does not (README,
    # "Measured"); whoosh stays available as a pure-Python fallback.
    search_backend: Literal["whoosh", "tantivy"] = Field("tantivy", description="Full-text search backend.")
    workers: int = Field(0, ge=0, description="OCR worker processes; 0 means one per core.")

    # Where sniff/OCR run: the embedded local process pool, or Celery workers on other machines
    # (`chartvault worker`; chartvault.ingest.distributed). The data dir must then be shared storage.
    executor: Literal["local", "celery"] = Field("local", description="Pipeline stage executor.")
    celery_broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (Redis).")
    celery_result_backend: str = Field("redis://127.0.0.1:6379/1", description="Celery result backend.")
    celery_queue: str = Field("chartvault", description="Queue the stage tasks are sent to and taken from.")
    celery_key_prefix: str = Field("", description="Prefix of every broker key (several vaults, one Redis).")
    celery_visibility_timeout_s: float = Field(
        900,
        gt=0,
        description="A task unacknowledged this long (its worker died) is redelivered; keep it above the "
        "longest page (ocr_timeout_s plus rendering), or slow pages are done twice.",
    )
    celery_result_expires_s: int = Field(86_400, gt=0, description="Task results (page text) expire.")
    host: str = "127.0.0.1"
    port: int = 8000
    auth_failures_per_minute: int = Field(
        20,
        gt=0,
        description="Failed authentications one client may make in a minute before it is answered 429 "
        "(with Retry-After) until the minute ends.",
    )

    # Input limits: a file over any of them is quarantined with the reason, never half-read.
    max_file_bytes: int = Field(512 * 1024 * 1024, gt=0, description="Largest accepted file, in bytes.")
    max_pages: int = Field(2000, gt=0, description="Most pages accepted in one file.")
    max_pixels: int = Field(
        120_000_000, gt=0, description="Most pixels in one page (also Pillow's bomb guard)."
    )
    max_upload_files: int = Field(1000, gt=0, description="Most files in one upload request.")
    max_form_parts: int = Field(
        1100, gt=0, description="Most multipart parts (files and fields together) in one upload request."
    )
    max_form_bytes: int = Field(
        2 * 1024 * 1024,
        gt=0,
        description="Most bytes of non-file form fields (station, operator, manifest...) in one request, "
        "all together: fields are held in memory. Also the largest JSON body and urlencoded form, refused "
        "before the token is checked (chartvault.api.bodylimit).",
    )

    mrn_pattern: str = Field(
        DEFAULT_MRN_PATTERN,
        description="Regular expression a whole MRN of this facility matches (leading zeros and letter "
        "prefixes are part of it, e.g. 'M\\d{9}'): a manifest MRN must match it, and an MRN read "
        "without a key on a label must too.",
    )
    mrn_check_digit: Literal["none", "luhn", "mod11"] = Field(
        "none",
        description="The check digit this facility's MRNs end in: 'luhn' (Luhn mod 10, as on card numbers), "
        "'mod11' (modulus 11 as on NHS numbers: the digits before the check digit weighted 2, 3, 4... from "
        "the right, check = (11 - sum mod 11) mod 11, a number needing 10 is invalid) or 'none'. Computed "
        "over the MRN's digits only (a letter prefix is left out; leading zeros count). An MRN read from a "
        "page that fails it is a misread: it never opens a new patient record, and a number that passes "
        "is preferred; one look-alike digit may read it back, to link only to a patient already known. An "
        "MRN a reviewer types or a registration row carries that fails it is refused; one a manifest or "
        "cover sheet gives is not applied, and its document waits for a person.",
    )

    quarantine_retention_days: int = Field(
        90,
        gt=0,
        description="Quarantined files (refused input, may hold PHI) are deleted this many days after "
        "they were refused; the catalog keeps the reason.",
    )
    housekeeping_interval_s: float = Field(
        3600, gt=0, description="How often the server purges expired quarantined files."
    )
    job_retention_days: int = Field(
        30,
        ge=0,
        description="Background jobs that ended more than this many days ago are removed from the catalog "
        "when a server starts (`chartvault jobs prune` does it by hand); 0 keeps them all.",
    )

    # OCR
    ocr_lang: str = "eng"
    ocr_dpi: int = Field(
        300, ge=72, le=600, description="PDF pages are rendered at this; two-level pages are read at it."
    )
    # 200 by default: grey pages read as accurately reduced, for ~0.75x the tesseract time; two-level
    # pages (fax, 1-bit) do not, and keep their resolution (python -m bench.resolution).
    ocr_grey_dpi: int = Field(
        200, ge=0, le=600, description="Grey pages scanned finer are reduced to this before OCR; 0: never."
    )
    # tesserocr by default: the engine stays loaded in each worker process (python -m bench.pipeline).
    ocr_engine: Literal["tesserocr", "pytesseract"] = Field(
        "tesserocr", description="tesseract in the worker process (tesserocr) or a program per page."
    )
    ocr_timeout_s: int = Field(180, gt=0, description="Tesseract time limit per page.")
    text_layer_min_chars: int = Field(
        40, ge=0, description="A PDF page whose text layer has fewer characters is OCR'd instead."
    )
    ocr_preprocess: bool = Field(
        True, description="Deskew and smooth scanned page images before tesseract (measured: bench.quality)."
    )

    # Classification
    review_confidence_threshold: float = Field(
        0.45,
        ge=0.0,
        le=1.0,
        description="A document typed by rules/model below this confidence goes to the review queue "
        "(pages of note families the model never saw, untitled and titled, bench.typecv: at 0.45, 85% of "
        "the mistyped pages are held and 7% of the correctly typed ones on the tuning families; 80% and "
        "10% on the held-out families).",
    )
    # The facility's MRN shape, e.g. 'M\\d{9}' (Meditech unit numbers) or '\\d{10}': it picks the MRN among
    # the unkeyed numbers of an addressograph imprint and lowers trust in a keyed value of another shape.

    # Hot folder
    watch_interval_s: float = Field(2.0, gt=0, description="How often the hot folder is scanned.")
    watch_settle_s: float = Field(
        5.0, ge=0, description="A hot-folder file must be unchanged this long before it is taken."
    )

    # Search
    index_commit_interval_s: float = Field(
        0.5,
        gt=0,
        description="How often the indexer commits queued work (a new document is searchable "
        "within about this plus one commit).",
    )

    # S3 object store (object_store="s3"); the bucket must have Object Lock.
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint, host:port or http(s)://host:port (a scheme overrides s3_secure)."
    )
    s3_access_key: str | None = Field(None, description="S3 access key.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key (kept out of repr/logs).")
    s3_bucket: str = Field("chartvault-archive", description="Archive bucket, created with Object Lock.")
    s3_secure: bool = Field(
        True,
        description="Use TLS: without it AWS refuses lock uploads (no Content-MD5) and PHI travels clear.",
    )
    s3_region: str = Field("us-east-1", description="Region; set so presigning needs no round trip.")
    s3_cert_check: bool = Field(True, description="Verify the server's TLS certificate (off only for tests).")
    s3_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(
        "GOVERNANCE",
        description="Object-lock mode for new versions; COMPLIANCE makes misfiles undeletable until expiry.",
    )
    s3_default_retention_days: int = Field(
        3650, gt=0, description="Retain-until for a version stored without an explicit date, in days."
    )

    # Retention and disposition (rules in chartvault/archive/retention_rules.yaml)
    facility_name: str = Field("ChartVault facility", description="Named on certificates of destruction.")
    facility_state: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="Two-letter state whose retention rules apply (e.g. TX)."
    )
    retention_rules_path: Path | None = Field(None, description="A rules file replacing the packaged one.")
    object_lock_min_seconds: int = Field(
        86_400,
        gt=0,
        description="Shortest store lock on a new version, even for a record already past retention.",
    )
    permanent_lock_years: int = Field(
        100, gt=0, description="Store lock given to a permanent record (extended before it runs out)."
    )

    # Audit log: an HMAC chain whose key is kept outside the catalog, anchored by checkpoints in the
    # object store (README, "Audit log").
    audit_key: SecretStr | None = Field(
        None,
        description="MAC key of new audit entries (32+ characters); when unset, the key file is used.",
    )
    audit_retired_keys: SecretStr | None = Field(
        None, description="Earlier audit keys, comma-separated: they verify old entries, never sign new ones."
    )
    audit_key_file: Path | None = Field(
        None,
        description="Audit key ring file (0600, created on first use); default <data_dir>/keys/audit.key. "
        "Put it where the catalog's administrators cannot read it.",
    )
    audit_checkpoint_interval_s: float = Field(
        300,
        gt=0,
        description="How often the audit log's entry count and head MAC are written to the object store "
        "(and at shutdown); entries newer than the last checkpoint can be deleted undetected.",
    )
    audit_checkpoint_retention_days: int = Field(
        2190, gt=0, description="Store lock on each audit checkpoint (6 years: HIPAA 164.316(b)(2))."
    )

    # Web pages (chartvault/web): sessions of signed-in people, and the page images of the viewer.
    web_session_idle_minutes: int = Field(
        15, ge=1, le=720, description="A signed-in browser left idle this long is signed out."
    )
    web_session_max_hours: int = Field(
        12, ge=1, le=168, description="A web session ends this long after sign-in, however active."
    )
    web_sign_in_failures: int = Field(
        5,
        ge=1,
        description="Failed sign-ins allowed per username (and four times as many per client address) "
        "within web_sign_in_window_minutes; further attempts are refused until the window moves on.",
    )
    web_sign_in_window_minutes: int = Field(15, ge=1, description="The window failed sign-ins count in.")
    web_link_hours: int = Field(
        12,
        ge=1,
        le=168,
        description="How long a page link sealing a search or a patient (chartvault.services.links) opens, "
        "for the person it was made for only; then they search again.",
    )
    link_key: SecretStr | None = Field(
        None,
        description="Key that seals page links (32+ characters); when unset, the link key file is used. "
        "Every server of one deployment must have the same (or share the data folder's key file).",
    )
    link_retired_keys: SecretStr | None = Field(
        None, description="Earlier link keys, comma-separated: links they sealed open until they expire."
    )
    link_key_file: Path | None = Field(
        None, description="Link key ring file (0600, made on first use); default <data_dir>/keys/links.key."
    )
    web_cookie_secure: bool | None = Field(
        None,
        description="Session cookies marked Secure: true always (behind a TLS proxy whose forwarded "
        "headers uvicorn does not trust, the app sees http), false never; unset: when the request came "
        "over https.",
    )
    page_image_max_width: int = Field(
        2000, ge=200, le=6000, description="Widest page image the viewer may ask for, in pixels."
    )
    page_cache_mb: int = Field(
        2048,
        ge=16,
        description="Disk the page-image cache (<data_dir>/cache: rendered pages and the originals "
        "they are rendered from) may use before the least recently used files are removed.",
    )

    # Operations
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text for people, or JSON objects (ids and codes only) for a log pipeline.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        min_length=24,
        description="A bearer token that may read /metrics only (Prometheus' scrape config); admins' API "
        "tokens may read it too.",
    )

    @field_validator("mrn_pattern")
    @classmethod
    def _mrn_pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"mrn_pattern is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _s3_when_endpoint_given(self) -> Settings:
        # Setting CHARTVAULT_S3_ENDPOINT alone switches every command to S3; an explicit
        # object_store=local still wins (e.g. to run one command against the local folder).
        if self.s3_endpoint and "object_store" not in self.model_fields_set:
            self.object_store = "s3"
        return self

    @cached_property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'catalog.sqlite3').resolve()}"

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.data_dir / "keys" / "audit.key"

    @property
    def link_key_path(self) -> Path:
        return self.link_key_file or self.data_dir / "keys" / "links.key"

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)

    def path(self, *parts: str) -> Path:
        """A path under the data folder, created on first use (its parent folder)."""
        p = self.data_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
