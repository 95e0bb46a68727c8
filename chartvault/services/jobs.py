"""Long operations started from a page or the API, run in a thread of the server process and kept in the
catalog (``jobs``), so every process sees them and a restart does not lose them.

A retraining takes seconds, a registration import of 3 million rows two minutes, a full archive check as
long as reading every object: longer than a proxy waits for an answer. The request starts a job and is
answered at once; the page (htmx) or the API client then follows the job by its id.

One job of a kind at a time, whichever process asks: the row's ``active_kind`` is unique while the job is
queued or running, so a second start is given the running job instead. The process running a job names
itself in ``owner`` and beats ``heartbeat_at``; a job whose process is gone (a restart, a crash) is marked
failed "interrupted by a restart" when a server starts (``recover``) or when another start finds it.
Results are counts and ids; an error is the exception's type and a fixed message, as either may reach a
page or a log and neither may carry patient data.

An operator may cancel a queued or running job (``cancel``), from any process: the request is kept in the
catalog (``cancel_requested_at``) and the work, which asks ``JobContext.cancelled`` at its chunk or step
boundaries, stops there and raises ``JobCancelled`` with its counts so far; the job ends ``cancelled``. A
job that reaches its end first ends ``done``. Ended jobs are listed (``recent``) and pruned after a while
(``prune``: ``chartvault jobs prune``, and the server at start); an active one is never removed.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.models import (
    JOB_ACTIVE,
    JOB_CANCELLED,
    JOB_DONE,
    JOB_ENDED,
    JOB_FAILED,
    JOB_KINDS,
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_STATES,
    Job,
    new_id,
)
from chartvault.errors import ChartVaultError, Conflict, Forbidden, InvalidInput, NotFound
from chartvault.policy import may_follow_job
from chartvault.schemas.common import iso
from chartvault.schemas.jobs import JobInfo
from chartvault.services.caller import AuditTrail, Caller

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

log = logging.getLogger("chartvault.jobs")

HEARTBEAT_S = 15.0  # how often a running job says its process still lives
STALE_AFTER = timedelta(minutes=2)  # a job silent this long belongs to a dead process (another host's)
INTERRUPTED = "interrupted by a restart"
UNEXPECTED = "the job stopped on an unexpected error; its details are not kept (they may hold patient data)"
_HOST = socket.gethostname()[:64]
_TOKEN = secrets.token_hex(6)  # tells this process from an earlier one that had the same pid (a container)
_RUNNING: set[str] = set()  # jobs this process claimed and whose thread has not ended
_RUNNING_LOCK = threading.Lock()
CANCEL_POLL_S = 0.5  # work that would ask for every small item asks the catalog this often (``throttled``)
MAX_LISTED = 200  # jobs ``recent`` answers at most


def this_process() -> str:
    """The owner a job of this process records: host, pid and a token drawn when the module loaded."""
    return f"{_HOST}:{os.getpid()}:{_TOKEN}"


def _never() -> bool:
    return False


class JobCancelled(Exception):
    """Raised by a job's work that stopped at a boundary because a cancel was asked for; ``result`` is what
    it did until then (counts, never a value of a record), kept as the cancelled job's result."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("the job was cancelled")
        self.result = result


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job's work is handed: its input file (moved under the jobs folder), a way to report counts
    while it runs (shown by the page and ``GET /jobs/{id}``), and whether an operator asked it to stop
    (asked at the work's boundaries: a chunk committed, a step done)."""

    input: Path | None
    progress: Callable[[dict[str, Any]], None]
    cancelled: Callable[[], bool] = _never

    def boundary(self, counts: dict[str, Any]) -> None:
        """A point where the work may stop: ``JobCancelled`` with ``counts`` if it was cancelled, else
        ``counts`` reported as its progress."""
        if self.cancelled():
            raise JobCancelled(counts)
        self.progress(counts)


Work = Callable[[JobContext], dict[str, Any]]


class JobService:
    """Starts, runs, reads and recovers jobs, acting (and audited) as one caller."""

    def __init__(
        self, sessions: sessionmaker[Session], folder: Path, audit: AuditTrail, caller: Caller
    ) -> None:
        self.sessions = sessions
        self.folder = folder  # input files of queued and running jobs (a registration list), nothing else
        self.audit = audit
        self.caller = caller

    def start(self, kind: str, work: Work, input: Path | None = None) -> tuple[JobInfo, bool]:
        """Run ``work`` in a thread as a job of ``kind``: (the job, True). While a job of that kind is
        queued or running, in this process or another, nothing starts: (that job, False), and ``input``
        is deleted (it is the caller's staged file, and it was not taken)."""
        self._check_kind(kind)
        job, created = self._claim(kind)
        if not created:
            _remove(input)
            return _info(job), False
        try:
            moved = self._take_input(job.id, input)
            self.audit("job.start", "job", job.id, detail={"kind": kind})
            thread = threading.Thread(
                target=self._run, args=(job.id, work, moved), name=f"cv-job-{kind}", daemon=True
            )
            thread.start()
        except BaseException:
            _forget(job.id)  # never run: the next start (or recover) marks it interrupted
            raise
        return _info(job), True

    def run_here(self, kind: str, work: Work) -> dict[str, Any]:
        """``work`` as a job of ``kind`` in the calling thread (a console command, a request that waits for
        its answer): serialised with that kind's background jobs in every process, listed and cancellable
        with them. Its result; ``Conflict`` (``job_running``) while a job of the kind is queued or running.
        An exception of the work is raised on once the job is recorded as ended (``JobCancelled`` too)."""
        self._check_kind(kind)
        job, created = self._claim(kind)
        if not created:
            raise Conflict(f"{kind} job {job.id} is running: try again once it ends", code="job_running")
        self.audit("job.start", "job", job.id, detail={"kind": kind})
        result = self._run(job.id, work, None, reraise=True)
        assert result is not None  # reraise: a job that did not end done raised
        return result

    def get(self, job_id: str, kind: str | None = None) -> JobInfo:
        """One job, to a caller allowed its kind (``Forbidden`` otherwise). An unknown id, or with ``kind``
        a job of another kind (a page that follows one kind), is ``NotFound``."""
        with self.sessions() as s:
            job = s.get(Job, job_id)
        if job is None or kind not in (None, job.kind):
            raise NotFound(f"job {job_id} not found")
        self._check_kind(job.kind)
        return _info(job)

    def latest(self, kind: str) -> JobInfo | None:
        """The last job of ``kind`` started (None: never)."""
        self._check_kind(kind)
        with self.sessions() as s:
            job = s.scalars(
                select(Job).where(Job.kind == kind).order_by(Job.created_at.desc()).limit(1)
            ).first()
        return _info(job) if job is not None else None

    def recent(self, kind: str | None = None, state: str | None = None, limit: int = 50) -> list[JobInfo]:
        """The latest jobs, newest first, of the kinds this caller may see (``kind``: that one only, refused
        if the caller may not see it), optionally in one ``state``; at most ``limit`` (1-``MAX_LISTED``)."""
        if kind is not None:
            self._check_kind(kind)
        if state is not None and state not in JOB_STATES:
            raise InvalidInput(f"unknown job state (expected one of {', '.join(JOB_STATES)})")
        if not 1 <= limit <= MAX_LISTED:
            raise InvalidInput(f"limit must be 1-{MAX_LISTED}")
        query = select(Job).where(Job.kind.in_([kind] if kind else self._visible_kinds()))
        if state is not None:
            query = query.where(Job.state == state)
        with self.sessions() as s:
            jobs = s.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)).all()
        return [_info(job) for job in jobs]

    def cancel(self, job_id: str) -> JobInfo:
        """Ask a queued or running job to stop (audited as ``job.cancel``): its work stops at its next
        boundary and the job ends ``cancelled``; the answer is the job as it is now. ``Conflict``
        (``job_ended``) for a job that already ended. A job whose process is gone ends at once (failed,
        interrupted), as a start would find it."""
        with self.sessions() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            self._check_kind(job.kind)
            abandoned = job.state not in JOB_ENDED and _abandoned(job)
            asked = job.cancel_requested_at or datetime.now(UTC)
            values = _interrupted() if abandoned else {"cancel_requested_at": asked}
            # Only while it is still active: a job that ends meanwhile keeps its end (a conditional UPDATE).
            still = s.execute(update(Job).where(Job.id == job_id, Job.state.in_(JOB_ACTIVE)).values(**values))
            s.commit()
            s.refresh(job)
            if not cast("CursorResult[Any]", still).rowcount:
                raise Conflict(
                    f"job {job_id} already ended ({job.state}): nothing to cancel", code="job_ended"
                )
            info = _info(job)
        self.audit("job.cancel", "job", job_id, detail={"kind": info.kind})
        if abandoned:
            self.audit("job.end", "job", job_id, "failed", {"kind": info.kind, "error": INTERRUPTED})
        return info

    def prune(self, older_than_days: int) -> int:
        """Remove the ended jobs (done, failed, cancelled) of the kinds this caller may see that finished
        more than ``older_than_days`` ago; a queued or running job is never removed. How many went
        (audited as ``jobs.prune`` when any did)."""
        if older_than_days < 0:
            raise InvalidInput("older_than_days must be 0 or more")
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        ended = select(Job.id).where(Job.state.in_(JOB_ENDED), Job.active_kind.is_(None))
        with self.sessions() as s:
            old = list(s.scalars(ended.where(Job.finished_at < cutoff, Job.kind.in_(self._visible_kinds()))))
            for start in range(0, len(old), 500):
                s.execute(delete(Job).where(Job.id.in_(old[start : start + 500]), Job.state.in_(JOB_ENDED)))
            s.commit()
        removed = len(old)
        if removed:
            self.audit("jobs.prune", detail={"older_than_days": older_than_days, "removed": removed})
            log.info("jobs pruned removed=%d older_than_days=%d", removed, older_than_days)
        return removed

    def recover(self) -> list[str]:
        """At server start: every job left queued or running by a process that is gone is marked failed
        ("interrupted by a restart", audited), and input files no live job owns are removed. The ids.
        Each end is audited before it is recorded, as ``_end`` does: a crash between the two leaves the job
        for the next start to find (audited again), never a job ended without its entry."""
        with self.sessions() as s:
            waiting = s.scalars(select(Job).where(Job.state.in_((JOB_QUEUED, JOB_RUNNING)))).all()
            dead = [job for job in waiting if _abandoned(job)]
            for job in dead:
                self._audit_interrupted(job)
            for job in dead:
                _interrupt(job)
            s.commit()
            alive = {job.id for job in waiting} - {job.id for job in dead}
            ids = [job.id for job in dead]
        self._sweep_inputs(alive)
        return ids

    def _visible_kinds(self) -> list[str]:
        return [kind for kind in JOB_KINDS if may_follow_job(kind, self.caller.role)]

    def _check_kind(self, kind: str) -> None:
        if kind not in JOB_KINDS:
            raise InvalidInput(f"unknown job kind (expected one of {', '.join(JOB_KINDS)})")
        if not may_follow_job(kind, self.caller.role):
            raise Forbidden(f"the {self.caller.role} role may not see {kind} jobs")

    def _claim(self, kind: str) -> tuple[Job, bool]:
        """(a new queued job of ``kind`` owned by this process, True), or (the one already active, False).
        An active job whose process is gone is marked interrupted first. The catalog's unique
        ``active_kind`` decides a race between two requests, here or in two processes."""
        for _ in range(3):
            with self.sessions() as s:
                active = s.scalars(select(Job).where(Job.active_kind == kind)).first()
                if active is not None and not _abandoned(active):
                    return active, False
                if active is not None:  # audited before it is recorded, as in recover
                    self._audit_interrupted(active)
                    _interrupt(active)
                job = _new_job(kind, self.caller.user_id)
                s.add(job)
                with _RUNNING_LOCK:
                    _RUNNING.add(job.id)
                try:
                    s.commit()
                except IntegrityError:  # another request started one first: read it on the next turn
                    s.rollback()
                    _forget(job.id)
                    continue
            return job, True
        raise RuntimeError("could not start or find the job")  # three lost races in a row: not expected

    def _audit_interrupted(self, job: Job) -> None:
        self.audit("job.end", "job", job.id, "failed", {"kind": job.kind, "error": INTERRUPTED})
        log.warning("job interrupted by a restart kind=%s job=%s", job.kind, job.id)

    def _take_input(self, job_id: str, input: Path | None) -> Path | None:
        """The staged input renamed under the jobs folder by job id: ``recover`` finds what a dead
        process left there (a registration list is PHI) and removes it."""
        if input is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        moved = self.folder / f"{job_id}.input"
        input.replace(moved)
        return moved

    def _run(
        self, job_id: str, work: Work, input: Path | None, reraise: bool = False
    ) -> dict[str, Any] | None:
        """Running, heartbeats, then done with the result or failed with a summary (or cancelled); the
        result when done. Whatever happens, this process stops claiming the job when it ends: one the
        catalog could not be told the end of is then seen as abandoned (and marked interrupted) by the next
        start. ``reraise``: the work's exception is raised on once recorded (``run_here``)."""
        stop = threading.Event()
        try:
            self._update(job_id, state=JOB_RUNNING, started_at=datetime.now(UTC))
            threading.Thread(target=self._beat, args=(job_id, stop), name="cv-job-beat", daemon=True).start()
            context = JobContext(input, self._reporter(job_id), _cancel_poll(self.sessions, job_id))
            return self._outcome(job_id, work, context, reraise)
        finally:
            stop.set()
            _remove(input)
            _forget(job_id)

    def _outcome(self, job_id: str, work: Work, context: JobContext, reraise: bool) -> dict[str, Any] | None:
        """Run the work and record how it ended: its result when done."""
        try:
            if context.cancelled():  # cancelled while it waited: it never starts
                raise JobCancelled({})
            result = work(context)
        except JobCancelled as stopped:
            log.info("job cancelled job=%s", job_id)
            self._end(job_id, JOB_CANCELLED, "cancelled", result=stopped.result)
            if reraise:
                raise
            return None
        except Exception as exc:  # kept for the page; the details may hold PHI, so the type alone is logged
            log.warning("job failed job=%s error=%s", job_id, type(exc).__name__)
            self._end(job_id, JOB_FAILED, "failed", error=error_summary(exc))
            if reraise:
                raise
            return None
        self._end(job_id, JOB_DONE, "ok", result=result)
        return result

    def _end(self, job_id: str, state: str, outcome: str, **values: Any) -> None:
        """Audited first, then recorded as ended: whoever sees the job ended finds its entry, and a crash
        between the two leaves a job the next start marks interrupted (audited again), never an ended job
        that the audit log does not know of."""
        with self.sessions() as s:
            kind = s.scalar(select(Job.kind).where(Job.id == job_id))
        error = values.get("error")
        self.audit("job.end", "job", job_id, outcome, {"kind": kind, **({"error": error} if error else {})})
        self._finish(job_id, state, **values)

    def _reporter(self, job_id: str) -> Callable[[dict[str, Any]], None]:
        return lambda counts: self._report(job_id, counts)

    def _report(self, job_id: str, counts: dict[str, Any]) -> None:
        """Counts so far, kept as the job's result until its outcome replaces them."""
        self._update(job_id, result=dict(counts), heartbeat_at=datetime.now(UTC))

    def _beat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                self._update(job_id, heartbeat_at=datetime.now(UTC))
            except Exception as exc:  # the catalog busy or gone a moment: the next beat tries again
                log.warning("job heartbeat failed job=%s error=%s", job_id, type(exc).__name__)

    def _finish(self, job_id: str, state: str, **values: Any) -> None:
        """The job's outcome; it stops being its kind's active job."""
        now = datetime.now(UTC)
        self._update(job_id, state=state, active_kind=None, finished_at=now, heartbeat_at=now, **values)

    def _update(self, job_id: str, **values: Any) -> Job:
        with self.sessions() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            for name, value in values.items():
                setattr(job, name, value)
            s.commit()
            return job

    def _sweep_inputs(self, alive: set[str]) -> None:
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.name.removesuffix(".input") not in alive:
                _remove(path)


def job_summary(job: JobInfo) -> str:
    """How far a job got, or what it did, in a few words (counts only): objects checked of the total, rows
    read or applied, the retraining's stage; its error once it failed."""
    result = job.result or {}
    if job.error:
        return job.error
    if "objects_checked" in result:
        total = result.get("objects_total")
        return f"{result['objects_checked']:,}{f' of {total:,}' if total is not None else ''} objects checked"
    if "rows_applied" in result:
        return f"{result['rows_applied']:,} rows applied, {result.get('refused', 0):,} refused"
    if "imported" in result:
        return f"{result['imported']:,} new, {result['updated']:,} updated, {result['refused']:,} refused"
    if "rows_read" in result:
        return f"{result['rows_read']:,} rows read, {result.get('refused', 0):,} refused"
    if "stage" in result:
        return f"stage: {result['stage']}"
    if "n_train" in result:
        return f"trained on {result['n_train']:,} texts"
    return ""


def error_summary(exc: BaseException) -> str:
    """What a failed job says: our own refusals keep their message (written without patient data for
    API answers: a registration list with no header, say); anything else only its type."""
    if isinstance(exc, ChartVaultError):
        return f"{type(exc).__name__}: {exc.message}"[:300]
    return f"{type(exc).__name__}: {UNEXPECTED}"[:300]


def _cancel_poll(sessions: sessionmaker[Session], job_id: str) -> Callable[[], bool]:
    """Whether a cancel of the job was asked for, read from the catalog (any process may have asked: one
    query); once it was, always. Work asking it more often than a chunk or a step (per object) throttles
    it with ``throttled``."""
    asked = threading.Event()

    def cancelled() -> bool:
        if not asked.is_set():
            with sessions() as s:
                if s.scalar(select(Job.cancel_requested_at).where(Job.id == job_id)) is not None:
                    asked.set()
        return asked.is_set()

    return cancelled


def throttled(cancelled: Callable[[], bool], every_s: float = CANCEL_POLL_S) -> Callable[[], bool]:
    """``cancelled`` asked at most every ``every_s`` (in between, the last answer), for work that would ask
    it for every small item: a cancel is then seen up to ``every_s`` late."""
    last = [float("-inf"), False]

    def ask() -> bool:
        now = time.monotonic()
        if not last[1] and now - float(last[0]) >= every_s:
            last[0], last[1] = now, cancelled()
        return bool(last[1])

    return ask


def _abandoned(job: Job) -> bool:
    """Whether the process running ``job`` is gone. Ours: it is gone when its thread ended without saying
    how (the catalog failed under it). On this host: its pid has no process, or is ours (an earlier
    process's pid, reused). Elsewhere: it has not beaten for ``STALE_AFTER``."""
    if job.owner == this_process():
        with _RUNNING_LOCK:
            return job.id not in _RUNNING
    host, _, rest = job.owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == _HOST and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid() or not _pid_alive(pid):
            return True
    beat = job.heartbeat_at or job.created_at
    return datetime.now(UTC) - beat > STALE_AFTER


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _new_job(kind: str, user_id: str | None) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=new_id(),
        kind=kind,
        state=JOB_QUEUED,
        active_kind=kind,
        started_by=user_id,
        owner=this_process(),
        created_at=now,
        heartbeat_at=now,
    )


def _forget(job_id: str) -> None:
    with _RUNNING_LOCK:
        _RUNNING.discard(job_id)


def _interrupted() -> dict[str, Any]:
    """What a job whose process is gone becomes: failed, interrupted, its kind free again."""
    return {"state": JOB_FAILED, "active_kind": None, "error": INTERRUPTED, "finished_at": datetime.now(UTC)}


def _interrupt(job: Job) -> None:
    for name, value in _interrupted().items():
        setattr(job, name, value)


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def _info(job: Job) -> JobInfo:
    return JobInfo(
        id=job.id,
        kind=job.kind,
        state=job.state,
        started_by=job.started_by,
        created_at=iso(job.created_at),
        started_at=iso(job.started_at),
        finished_at=iso(job.finished_at),
        result=job.result,
        error=job.error,
        cancel_requested_at=iso(job.cancel_requested_at),
    )
