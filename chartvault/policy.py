"""Who may reach what: one table for every API route and every web page, deny by default.

The API (``chartvault.api.auth``) and the web pages (``chartvault.web.session``) both look a request
up here by (method, route path template). A route or page missing from ``POLICY`` is refused to
everyone, so a new one cannot go out unprotected by accident. Pages live under ``/ui`` (plus the
front door ``/``), so their paths never collide with the API's.
"""

from __future__ import annotations

PUBLIC: frozenset[str] = frozenset({"<public>"})  # marker (compared by identity): no token needed
STAFF = frozenset({"staff", "him_admin", "admin"})
HIM = frozenset({"him_admin", "admin"})
ADMIN = frozenset({"admin"})
SCANNING = frozenset({"scanner", "him_admin", "admin"})
BATCH_READERS = frozenset({"scanner", "staff", "him_admin", "admin"})
VENDOR_AND_HIM = frozenset({"vendor", "him_admin", "admin"})
RELEASE_READERS = frozenset({"vendor", "staff", "him_admin", "admin"})
SIGNED_IN = frozenset({"scanner", "staff", "him_admin", "vendor", "admin"})

PAGE_PREFIX = "/ui"

# Who may start, follow and cancel each kind of background job (chartvault.services.jobs): the roles of the
# page and API operation the job stands for. The /jobs routes are open to their union, then check the kind.
JOB_ROLES: dict[str, frozenset[str]] = {
    "classifier_train": HIM,  # as POST /documents/{doc_id}/classification and the classifier page
    "registration_import": HIM,  # as POST /patients/import
    "archive_check": ADMIN,  # as the archive check page
}

# (method, route path template) -> roles allowed. Everything not listed is refused.
POLICY: dict[tuple[str, str], frozenset[str]] = {
    # -- the HTTP API ---------------------------------------------------------------------------
    ("GET", "/health"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/metrics"): ADMIN,  # and the scrape token (chartvault.api.auth.SCRAPE_ROUTES)
    ("POST", "/batches"): SCANNING,
    ("GET", "/batches"): BATCH_READERS,  # a scanner: the batches they uploaded (any token or session)
    ("GET", "/batches/{batch_id}"): BATCH_READERS,
    ("GET", "/documents/{doc_id}"): STAFF,
    ("GET", "/documents/{doc_id}/original"): STAFF,
    ("GET", "/documents/{doc_id}/rendition"): STAFF,
    ("GET", "/documents/{doc_id}/pages/{page_no}/text"): STAFF,
    ("GET", "/documents/{doc_id}/similar"): STAFF,
    ("GET", "/search"): STAFF,
    ("POST", "/search"): STAFF,  # the same search, its fields in a JSON body: no name or MRN in a URL
    ("GET", "/patients/{mrn}/timeline"): STAFF,  # deprecated: the MRN in the URL (proxies' logs keep it)
    ("POST", "/patients/timeline"): STAFF,  # the same timeline, the MRN in the body
    ("GET", "/review"): HIM,  # as the review pages: the people who resolve it
    ("POST", "/documents/{doc_id}/classification"): HIM,
    ("POST", "/documents/{doc_id}/review/resolve"): HIM,
    ("POST", "/patients/import"): HIM,  # the registration list (chartvault patients import)
    ("GET", "/patients/index"): HIM,  # counts only: patients by source, documents waiting on the index
    ("GET", "/classifier"): HIM,  # the type model and its last training (as the classifier page)
    ("POST", "/classifier/train"): HIM,  # a retraining, as a background job
    ("GET", "/jobs/{job_id}"): HIM,  # and only jobs of a kind the role may start (JOB_ROLES)
    ("GET", "/jobs"): HIM,  # recent jobs, of the kinds the role may start only
    ("POST", "/jobs/{job_id}/cancel"): HIM,  # a cooperative cancel, of a kind the role may start
    ("POST", "/tokens"): SIGNED_IN,  # one's own tokens; for another user: admins (AccessService)
    ("GET", "/tokens"): ADMIN,
    ("DELETE", "/tokens/{token_id}"): ADMIN,
    ("GET", "/audit/verify"): ADMIN,
    # Release of information. Vendors see and fetch only their own approved releases.
    ("POST", "/releases"): STAFF,
    ("GET", "/releases"): RELEASE_READERS,
    ("GET", "/releases/{release_id}"): RELEASE_READERS,
    ("POST", "/releases/{release_id}/authorization"): STAFF,
    ("POST", "/releases/{release_id}/review"): HIM,
    ("POST", "/releases/{release_id}/approve"): HIM,
    ("POST", "/releases/{release_id}/deny"): HIM,
    ("POST", "/releases/{release_id}/extend"): HIM,
    ("POST", "/releases/{release_id}/revoke"): HIM,
    ("POST", "/releases/{release_id}/close"): HIM,
    ("POST", "/releases/{release_id}/sent"): HIM,
    ("GET", "/releases/{release_id}/package"): VENDOR_AND_HIM,
    ("GET", "/patients/{mrn}/disclosures"): HIM,  # deprecated, as GET /patients/{mrn}/timeline
    ("POST", "/patients/disclosures"): HIM,  # the same accounting, the MRN in the body
    # A patient's DOB corrected, as the page /ui/patients/{ref}/dob: what it would change, then the change.
    ("POST", "/patients/dob-correction"): HIM,  # a preview: the DOB and the MRN in the body, never in a URL
    ("POST", "/patients/dob"): HIM,
    ("POST", "/patients/{mrn}/dob-correction"): HIM,  # the same two, deprecated: their MRN is in the URL
    ("POST", "/patients/{mrn}/dob"): HIM,
    # Management reports: counts only, for records administrators.
    ("GET", "/reports"): HIM,
    ("GET", "/reports/{name}"): HIM,
    # -- the web pages: the same roles as the API operation each page stands for ---------------------
    ("GET", "/"): PUBLIC,  # the front door: the sign-in page, or the caller's start page
    ("GET", "/ui/sign-in"): PUBLIC,
    ("POST", "/ui/sign-in"): PUBLIC,
    ("POST", "/ui/sign-out"): SIGNED_IN,
    ("GET", "/ui/account"): SIGNED_IN,
    ("POST", "/ui/account/password"): SIGNED_IN,
    # Patient pages are addressed by a sealed reference ({ref}, chartvault.services.links), never by the
    # MRN; a search by a sealed search (GET /ui/search?s=), made by the form's POST.
    ("GET", "/ui/search"): STAFF,
    ("POST", "/ui/search"): STAFF,
    ("GET", "/ui/documents/{doc_id}"): STAFF,
    ("GET", "/ui/documents/{doc_id}/pages/{page_no}/image"): STAFF,
    ("GET", "/ui/documents/{doc_id}/original"): STAFF,
    ("GET", "/ui/documents/{doc_id}/rendition"): STAFF,
    ("GET", "/ui/documents/{doc_id}/similar"): STAFF,
    ("POST", "/ui/documents/{doc_id}/find"): STAFF,  # the viewer's "find in this document", sealed
    ("GET", "/ui/patients/{ref}"): STAFF,
    ("GET", "/ui/patients/{ref}/disclosures"): HIM,
    ("GET", "/ui/review"): HIM,
    ("GET", "/ui/review/{doc_id}"): HIM,
    ("POST", "/ui/documents/{doc_id}/classification"): HIM,
    ("POST", "/ui/documents/{doc_id}/review/resolve"): HIM,
    ("POST", "/ui/documents/{doc_id}/misfile"): HIM,
    ("GET", "/ui/releases"): RELEASE_READERS,
    ("GET", "/ui/releases/new"): STAFF,
    ("POST", "/ui/releases"): STAFF,
    ("GET", "/ui/releases/{release_id}"): RELEASE_READERS,
    ("POST", "/ui/releases/{release_id}/authorization"): STAFF,
    ("POST", "/ui/releases/{release_id}/{decision}"): HIM,  # review, approve, deny, extend, revoke, close
    ("GET", "/ui/releases/{release_id}/package"): VENDOR_AND_HIM,
    ("GET", "/ui/holds"): HIM,
    ("POST", "/ui/holds"): HIM,
    ("POST", "/ui/holds/{hold_id}/release"): HIM,
    # Disposition: no API route; the records administrators who plan it and place holds carry it out
    # (the form needs the typed count of what goes and the approving manager, as `--approved-by`).
    ("GET", "/ui/disposition"): HIM,
    ("POST", "/ui/disposition"): HIM,  # destroy what the plan lists, as `chartvault disposition --execute`
    ("GET", "/ui/disposition/{disposition_id}"): HIM,  # its certificate, as `chartvault certificate`
    ("GET", "/ui/disposition/{disposition_id}/certificate"): HIM,  # the same, as the archived JSON
    ("GET", "/ui/patient-index"): HIM,
    ("POST", "/ui/patient-index"): HIM,  # the registration list, as `chartvault patients import` (a job)
    ("GET", "/ui/patient-index/jobs/{job_id}"): HIM,  # that import followed to its outcome
    ("GET", "/ui/patient-index/jobs/{job_id}/progress"): HIM,
    ("GET", "/ui/reports"): HIM,  # the management reports: as GET /reports and /reports/{name}
    ("GET", "/ui/reports/{name}"): HIM,
    ("GET", "/ui/reports/{name}/csv"): HIM,
    ("GET", "/ui/batches"): BATCH_READERS,
    ("POST", "/ui/batches"): SCANNING,
    ("GET", "/ui/batches/{batch_id}"): BATCH_READERS,
    ("GET", "/ui/batches/{batch_id}/progress"): BATCH_READERS,
    ("GET", "/ui/quarantine"): HIM,  # refused files by id, hash and reason (never the file's name)
    ("POST", "/ui/quarantine/purge"): ADMIN,  # as `chartvault quarantine purge`
    ("GET", "/ui/coversheet"): SCANNING,
    ("POST", "/ui/coversheet"): SCANNING,
    ("GET", "/ui/admin/users"): ADMIN,
    ("POST", "/ui/admin/users"): ADMIN,
    ("POST", "/ui/admin/users/{username}/{action}"): ADMIN,  # reset-password, disable
    ("GET", "/ui/admin/tokens"): ADMIN,
    ("POST", "/ui/admin/tokens"): ADMIN,
    ("POST", "/ui/admin/tokens/{token_id}/revoke"): ADMIN,
    ("GET", "/ui/admin/audit"): ADMIN,  # the entries, filtered and paged, read-only
    ("POST", "/ui/admin/audit"): ADMIN,  # the chain check, as `chartvault audit verify`
    # A patient's DOB corrected (`chartvault retention correct-dob`, POST /patients/dob-correction and
    # POST /patients/dob): records management, as the review's patient confirmation and legal holds.
    # GET shows it; POST previews, then corrects.
    ("GET", "/ui/patients/{ref}/dob"): HIM,
    ("POST", "/ui/patients/{ref}/dob"): HIM,
    # The type model retrained on the staff's corrections (`chartvault classifier train`, POST
    # /classifier/train): those who make the corrections (POST /documents/{doc_id}/classification).
    ("GET", "/ui/classifier"): HIM,
    ("POST", "/ui/classifier"): HIM,
    ("GET", "/ui/classifier/progress"): HIM,
    ("GET", "/ui/admin/check"): ADMIN,
    ("POST", "/ui/admin/check"): ADMIN,  # as `chartvault check` (with or without fixity), no repairs
    ("GET", "/ui/admin/check/jobs/{job_id}"): ADMIN,  # the full check, a job, followed to its outcome
    ("GET", "/ui/admin/check/jobs/{job_id}/progress"): ADMIN,
    # Every background job (retraining, registration import, archive check), as GET /jobs and
    # POST /jobs/{job_id}/cancel: the admins', who may see every kind.
    ("GET", "/ui/admin/jobs"): ADMIN,
    ("POST", "/ui/admin/jobs/{job_id}/cancel"): ADMIN,
}


def is_page(path: str) -> bool:
    """Whether a route path template is a web page (else an API route)."""
    return path == "/" or path.startswith(PAGE_PREFIX + "/")


def may_follow_job(kind: str, role: str | None) -> bool:
    """Whether ``role`` may start or read a job of ``kind`` (None: the console's operator may)."""
    return role is None or role in JOB_ROLES.get(kind, frozenset())


def allowed(method: str, path: str, role: str | None) -> bool:
    """Whether ``role`` may reach this route; PUBLIC routes are open, unknown routes closed."""
    roles = POLICY.get((method, path))
    if roles is None:
        return False
    return roles is PUBLIC or role in roles
