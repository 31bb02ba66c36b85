"""Pre-labelling jobs queued from HTTP (`POST /prelabel`): in a server thread, or on RQ with `REDIS_URL`.

At most one pre-labelling job per project: a submit while one is queued or
running answers that job's id (`"created": false`). The job itself is
`lsml.prelabel` (resumable; progress in the project's state).

Re-predict on publish (`LSML_PRELABEL_ON_PUBLISH`, `after_publish`): a new
version queues a job for the project's unlabelled tasks. A burst coalesces:
while a job is active, further publishes only set an "again" flag, and the
job, when it ends, starts one more run, which loads the newest version; so
at most one job per project runs and the last one ends on the newest version.

- `EmbeddedPrelabelJobs`: at most `LSML_PRELABEL_MAX_RUNNING` jobs run at
  once (one daemon thread each) and `LSML_PRELABEL_MAX_QUEUED` more wait;
  beyond, `submit` raises `PrelabelJobsFull` (429 + `Retry-After`), so a
  burst of submits for many projects cannot start a thread and keep a job
  per project. Statuses (with live progress) in memory, the newest 1000
  ended ones kept. A job of the project's served version takes its model
  from the server's registry (`models`: bounded by `LSML_MAX_LOADED_MODELS`,
  shared with `/predict`); one of another version builds its own, at most
  one per running job. Predict calls take the server's predict slots
  (`LSML_PREDICT_CONCURRENCY`), so live `/predict` keeps its share.
- `RQPrelabelJobs`: a submit finding `LSML_PRELABEL_MAX_QUEUED` jobs (of any
  kind) already waiting on the queue raises `PrelabelJobsFull`; the workers
  bound how many run. RQ jobs on the training queue naming
  `lsml.prelabel_jobs.perform_prelabel` (the worker's `TrustedJob`
  allow-list names it explicitly); args are only `(project, request dict)`,
  checked again in the worker (`PrelabelRequest.from_dict`). Progress goes to
  the job's meta (what `/job_status` shows). The per-project marker is
  `lsml:prelabel:<queue>:<project>` (the job id, SET NX).
  A job whose worker or work horse is killed (SIGKILL, OOM killer, a pod
  deleted past its grace period) runs again by itself, at most
  `LSML_PRELABEL_ATTEMPTS` times in all: RQ's `Retry`, honoured as for
  trainings only when the horse died (`lsml.training.rq_worker`), puts the same
  job (same id, same marker, so still the project's one job) back at the
  front of the queue, and the re-run resumes from the project's checkpoint.
  A job that raises, runs past `JOB_TIMEOUT` or is refused is not run again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from lsml import setting_names
from lsml.errors import LsmlError, RedisUnavailable
from lsml.jobs import JobSystem
from lsml.model import ModelRef
from lsml.prelabel import PrelabelError, PrelabelRequest, run_prelabel
from lsml.redis_outage import PatientState, ride_out
from lsml.settings import Settings
from lsml.state import make_state
from lsml.training.queue import FAILED, FINISHED, QUEUED, STARTED, job_status

logger = logging.getLogger(__name__)

JOB_FUNCTION = "lsml.prelabel_jobs.perform_prelabel"
JOB_TIMEOUT = 24 * 3600
MARKER_TTL = JOB_TIMEOUT + 3600
# Ask the project's running job to run once more, only while the marker still names it: a job that let go of the
# marker between our read and this write has read (and cleared) its flag already, and would never see this one.
_JOIN_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""
# Delete the marker only while it names ARGV[1] (a stale job's, or ours): never another submit's fresh marker.
_DELETE_IF_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _failure(exc: BaseException) -> str:
    """A failed job's reason: a PrelabelError says it all; anything else by type (details in the log)."""
    if isinstance(exc, (PrelabelError, ValueError)):
        return str(exc)[:500]
    return f"{type(exc).__name__}: {str(exc)[:300]}"


class PrelabelJobsFull(LsmlError, RuntimeError):
    """As many pre-labelling jobs are running and queued as the settings allow: the caller answers 429 with
    `Retry-After` (the message names the settings)."""


@runtime_checkable
class PrelabelJobs(JobSystem, Protocol):
    """The pre-labelling job system (`lsml.jobs.JobSystem`: embedded or RQ, attempts, status) plus its submit."""

    def submit(self, request: PrelabelRequest, again_if_active: bool = False) -> tuple[str, bool]:
        """Queue `request`, or join the project's active job; returns (job id, whether a new job was made).
        With `again_if_active` a joined job runs once more when it ends (it then predicts on the newest version).
        """
        ...

    def projects(self) -> list[str]:
        """The projects this process has submitted jobs for (the `/metrics` series)."""
        ...


class EmbeddedPrelabelJobs:
    """`PrelabelJobs` in threads of the server process (no Redis), bounded by `LSML_PRELABEL_MAX_*`."""

    embedded = True
    attempts = 1  # a job dies with the server process; a new submit resumes from the project's checkpoint

    def __init__(
        self,
        model_ref: ModelRef,
        settings: Settings,
        slots: Any = None,
        max_jobs: int = 1000,
        models: Callable[[str, str | None], Any] | None = None,
    ) -> None:
        self.model_ref = model_ref
        self.settings = settings
        self.slots = slots
        self.models = models  # the server's bounded model cache: `ModelRegistry.get(project, label_config)`
        self._max_jobs = max_jobs  # ended jobs kept for /job_status
        self.max_running = settings.prelabel_max_running
        self.max_active = settings.prelabel_max_running + settings.prelabel_max_queued
        self._lock = threading.Lock()
        self._jobs: dict[str, dict] = {}
        self._active: dict[str, str] = {}  # project -> job id queued or running
        self._again: dict[str, PrelabelRequest] = {}  # project -> run once more when the active job ends
        self._pending: deque[tuple[str, PrelabelRequest]] = deque()  # queued, oldest first
        self._runners = 0  # threads taking jobs from `_pending`, at most `max_running`

    def submit(self, request: PrelabelRequest, again_if_active: bool = False) -> tuple[str, bool]:
        request.validated()
        with self._lock:
            active = self._active.get(request.project)
            if active is not None:
                if again_if_active:
                    self._again[request.project] = request
                return active, False
            if len(self._active) >= self.max_active:
                raise PrelabelJobsFull(
                    f"{len(self._active)} pre-labelling jobs are running or queued in this process, the most "
                    f"it takes (LSML_PRELABEL_MAX_RUNNING={self.max_running} running, "
                    f"LSML_PRELABEL_MAX_QUEUED={self.max_active - self.max_running} queued); retry later"
                )
            job_id = uuid.uuid4().hex
            self._jobs[job_id] = job_status(
                job_id,
                QUEUED,
                project=request.project,
                kind="prelabel",
                request=request.to_dict(),
                progress=None,
                enqueued_at=time.time(),
            )
            self._active[request.project] = job_id
            self._pending.append((job_id, request))
            self._trim()
            start_runner = self._runners < self.max_running
            if start_runner:
                self._runners += 1
        if start_runner:
            threading.Thread(target=self._runner, name="lsml-prelabel", daemon=True).start()
        return job_id, True

    def _trim(self) -> None:
        """Forget the oldest ended jobs beyond `max_jobs` (active ones stay, wherever they are in the order).
        Call with the lock held."""
        excess = len(self._jobs) - self._max_jobs
        if excess <= 0:
            return
        ended = [job_id for job_id, st in self._jobs.items() if st["status"] in (FINISHED, FAILED)]
        for job_id in ended[:excess]:
            del self._jobs[job_id]

    def _runner(self) -> None:
        """Run queued jobs one after the other until none is left (one of at most `max_running` threads)."""
        while True:
            with self._lock:
                if not self._pending:
                    self._runners -= 1
                    return
                job_id, request = self._pending.popleft()
            try:
                self._run(job_id, request)
            except Exception:  # noqa: BLE001 - `_run` reports the job's own failures; this thread must go on
                logger.exception("project %s: pre-labelling job %s: unexpected error", request.project, job_id)

    def _progress(self, job_id: str, progress: Any) -> None:
        with self._lock:
            self._jobs[job_id]["progress"] = progress.to_dict()

    def _run(self, job_id: str, request: PrelabelRequest) -> None:
        with self._lock:
            self._jobs[job_id].update(status=STARTED, started_at=time.time())
        try:
            result = run_prelabel(
                self.model_ref,
                request,
                self.settings,
                slots=self.slots,
                models=self.models,
                on_progress=lambda p: self._progress(job_id, p),
            )
            update = dict(status=FINISHED, progress=result, model_version=result.get("model_version"))
        except BaseException as exc:  # noqa: BLE001 - reported through /job_status
            logger.error(
                "project %s: pre-labelling job %s failed: %s",
                request.project,
                job_id,
                _failure(exc),
                exc_info=not isinstance(exc, PrelabelError),
            )
            update = dict(status=FAILED, error=_failure(exc))
        with self._lock:
            self._jobs[job_id].update(finished_at=time.time(), **update)
            self._active.pop(request.project, None)
            again = self._again.pop(request.project, None)
        if again is not None:  # a version was published while this job ran: once more, on the newest
            try:
                self.submit(again)
            except PrelabelJobsFull as exc:
                logger.warning("project %s: no re-prediction on the newest version: %s", request.project, exc)

    def status(self, job_id: str) -> dict | None:
        with self._lock:
            st = self._jobs.get(job_id)
            return dict(st) if st is not None else None

    def wait(self, job_id: str, timeout: float = 60.0) -> dict:
        """Block until the job ended (tests and scripts)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(job_id)
            if st is None or st["status"] in (FINISHED, FAILED):
                return st or {}
            if time.monotonic() > deadline:
                raise TimeoutError(f"pre-labelling job {job_id} still {st['status']} after {timeout}s")
            time.sleep(0.05)

    def projects(self) -> list[str]:
        with self._lock:
            return sorted({st["project"] for st in self._jobs.values()})


class RQPrelabelJobs:
    """`PrelabelJobs` on the RQ queue: `label-studio-ml worker`s run them."""

    embedded = False

    def __init__(self, settings: Settings, connection: Any = None) -> None:
        from lsml.training.rq_queue import connect, rerun_retry
        from lsml.training.trusted_job import trusted_queue

        self.settings = settings
        self.connection = connection or connect(str(settings.redis_url))
        self.queue = trusted_queue(settings.queue_name, self.connection)
        self._projects: set[str] = set()
        self.attempts = settings.prelabel_attempts
        self.retry = rerun_retry(self.attempts)  # re-runs of a job whose horse was killed
        self.max_queued = settings.prelabel_max_queued  # running ones are bounded by the workers

    def _marker(self, project: str) -> str:
        return _marker(self.settings.queue_name, project)

    def submit(self, request: PrelabelRequest, again_if_active: bool = False) -> tuple[str, bool]:
        import redis

        from lsml.training.rq_queue import failure_message

        request.validated()
        job_id = uuid.uuid4().hex
        marker = self._marker(request.project)
        try:
            for _ in range(3):
                if self.connection.set(marker, job_id, nx=True, ex=MARKER_TTL):
                    break
                existing = self.connection.get(marker)
                existing = existing.decode() if isinstance(existing, bytes) else str(existing or "")
                st = self.status(existing) if existing else None
                if st is not None and st["status"] in (QUEUED, STARTED):
                    if not again_if_active:
                        return existing, False
                    again = json.dumps(request.to_dict())
                    if self.connection.eval(_JOIN_LUA, 2, marker, marker + ":again", existing, again, MARKER_TTL):
                        return existing, False
                    continue  # the job ended meanwhile and let go of the marker: queue this one
                self.connection.eval(_DELETE_IF_LUA, 1, marker, existing)  # a stale marker (ended or expired job)
            waiting = self.queue.count  # LLEN: trainings and pre-labelling jobs no worker has taken yet
            if waiting >= self.max_queued:
                self.connection.eval(_DELETE_IF_LUA, 1, marker, job_id)
                raise PrelabelJobsFull(
                    f"{waiting} jobs are waiting on the queue {self.settings.queue_name!r} for a worker, the most "
                    f"a pre-labelling job is queued behind (LSML_PRELABEL_MAX_QUEUED={self.max_queued}); "
                    "retry later, or add workers"
                )
            self.queue.enqueue_call(
                JOB_FUNCTION,
                args=(request.project, request.to_dict()),
                job_id=job_id,
                timeout=JOB_TIMEOUT,
                retry=self.retry,
                meta={"attempts": self.attempts},
                result_ttl=24 * 3600,
                failure_ttl=7 * 24 * 3600,
                description=f"lsml pre-labelling of project {request.project}",
            )
        except redis.RedisError as exc:
            raise RedisUnavailable(failure_message(exc), code="training_unavailable") from exc
        self._projects.add(request.project)
        return job_id, True

    def status(self, job_id: str) -> dict | None:
        from lsml.training.rq_queue import failure_reason, read_job

        found = read_job(self.queue, job_id)  # also fails the job of a SIGKILLed worker
        if found is None or found[0].func_name != JOB_FUNCTION:
            return None  # unknown, or a training job: the training queue answers for it
        job, status, rq_status, result = found
        project = str(job.args[0]) if job.args else None
        meta = job.meta or {}
        extra: dict[str, Any] = {"progress": meta.get("progress"), "attempt": meta.get("attempt")}
        if status == FAILED:
            extra["error"] = meta.get("error") or failure_reason(
                result.exc_string if result is not None else None,
                rq_status,
                what="pre-labelling job",
                attempts=_attempts(meta),
            )
        elif status == FINISHED and result is not None and isinstance(result.return_value, dict):
            extra["progress"] = result.return_value
            extra["model_version"] = result.return_value.get("model_version")
        return job_status(job_id, status, project=project, kind="prelabel", **extra)

    def projects(self) -> list[str]:
        return sorted(self._projects)


def _attempts(meta: dict) -> str:
    """How many runs a failed job had, for its reason (`meta` is Redis's: only integers are believed)."""
    ran, allowed = meta.get("attempt"), meta.get("attempts")
    if isinstance(ran, int) and isinstance(allowed, int):
        return f"attempt {ran} of {allowed}, LSML_PRELABEL_ATTEMPTS"
    return setting_names.LSML_PRELABEL_ATTEMPTS


def perform_prelabel(project: str, request: dict) -> dict:
    """RQ job (runs in `label-studio-ml worker`): check the arguments, pre-label, record progress in the job's meta."""
    from rq import get_current_job

    from lsml.training import rq_worker

    context = rq_worker._context
    if context is None:
        raise RuntimeError("perform_prelabel runs only inside `label-studio-ml worker`")
    if not isinstance(request, dict):
        raise ValueError("a pre-labelling request must be a JSON object")
    checked = PrelabelRequest.from_dict(request)  # Redis is not trusted: fields, types, bounds
    if checked.project != project:
        raise ValueError(f"the request's project {checked.project!r} is not the job's {project!r}")
    job = get_current_job()
    if job is None:
        raise RuntimeError("perform_prelabel runs inside an RQ job (label-studio-ml worker)")
    ran = job.meta.get("attempt")
    job.meta["attempt"] = (ran if isinstance(ran, int) else 0) + 1  # a re-run after a killed horse counts on
    ride_out(job.save_meta, "recording the attempt")

    def record(progress: Any) -> None:
        ride_out(lambda: _still_running(job), "checking the job")
        job.meta["progress"] = progress.to_dict()
        ride_out(job.save_meta, "recording progress")

    requeued = False
    try:
        return run_prelabel(
            context.model_ref,
            checked,
            context.settings,
            on_progress=record,
            state=PatientState(make_state(context.settings)),
        )
    except JobRequeued:
        requeued = True  # the job (and the project's marker) is its re-run's now: leave both as they are
        raise
    except PrelabelError as exc:
        if not isinstance(exc, JobLost):  # a lost job's hash is gone: writing meta would make a stub of it
            job.meta["error"] = str(exc)
            ride_out(job.save_meta, "recording the failure")
        raise
    finally:
        if not requeued:
            ride_out(lambda: _release(job, project), "releasing the project's marker")


class JobLost(PrelabelError):
    """The job is no longer this horse's to run: Redis lost it, or declared it abandoned."""


class JobRequeued(JobLost):
    """A registry cleanup declared the job abandoned (an outage longer than the heartbeat TTL) and, with an
    attempt left, queued it again: its re-run resumes from the checkpoint. The worker leaves the job's
    record alone for this one (`TrainingWorker.handle_job_failure`): it is queued, not failed."""


def _still_running(job: Any) -> None:
    """Stop at a page boundary when the job is no longer ours (checked after every page, one HGET).

    Redis restarted EMPTY (data lost): the job's hash is gone; the run stops
    at its next page instead of passing for a success, and RQ's failure
    handling in the horse writes the whole job back as failed with this
    reason (what `/job_status` and `predict --server` show). The checkpoint
    written just before points after the last page written, and `missing`
    mode skips tasks that have a prediction of this version anyway, so a new
    submit resumes without duplicates. A registry cleanup declared it abandoned (an
    outage longer than the heartbeat TTL): with an attempt left it queued the
    job again (`JobRequeued`: this run stops, its re-run resumes), else failed
    it; either way this run stops rather than write the same tasks twice.
    """
    status = job.connection.hget(job.key, "status")
    status = status.decode() if isinstance(status, bytes) else status
    if status is None:
        raise JobLost(
            f"pre-labelling job {job.id} lost: Redis came back without its data (restarted empty?); "
            "the run stops; submit it again to go on (tasks written so far keep their predictions)"
        )
    if status == "queued":
        raise JobRequeued(
            f"pre-labelling job {job.id} was queued again (declared abandoned during a Redis outage); "
            "this run stops and the re-run resumes from the checkpoint"
        )
    if status != "started":
        raise JobLost(
            f"pre-labelling job {job.id} is {status} (declared abandoned during a Redis outage?); "
            "this run stops so that a new one does not write the same tasks twice"
        )


def _marker(queue_name: str, project: str) -> str:
    return f"lsml:prelabel:{queue_name}:{project}"


def _release(job: Any, project: str) -> None:
    """Clear the project's marker, then run once more if a publish asked for it meanwhile (coalescing).

    Clearing first: a submit racing with this either sees no marker and
    queues a job itself, or set the flag before and is picked up here.
    """
    from lsml.training import rq_worker

    marker = _marker(job.origin, project)
    job.connection.eval(_DELETE_IF_LUA, 1, marker, job.id)
    again = job.connection.getdel(marker + ":again")
    if again and rq_worker._context is not None:
        settings = rq_worker._context.settings
        RQPrelabelJobs(settings.replace(queue_name=job.origin), connection=job.connection).submit(
            PrelabelRequest.from_dict(json.loads(again)), again_if_active=True
        )


def after_publish(settings: Settings, project: str, version: str, jobs: PrelabelJobs | None = None) -> str | None:
    """Queue re-prediction of the project's unlabelled tasks after `version` was published, when
    `LSML_PRELABEL_ON_PUBLISH` is on and no version is pinned (a pinned version did not change).
    `jobs`: the server's embedded jobs; None with REDIS_URL (RQ). Returns the job id, or None."""
    from lsml.store import make_store

    if not settings.prelabel_on_publish:
        return None
    if settings.pinned_version(project) is not None or make_store(settings).pinned(project) is not None:
        logger.info("project %s: %s published while a version is pinned: no re-prediction", project, version)
        return None
    if jobs is None:
        if not settings.redis_url:
            return None
        jobs = RQPrelabelJobs(settings)
    job, created = jobs.submit(PrelabelRequest(str(project), mode="unlabelled"), again_if_active=True)
    logger.info(
        "project %s: %s published; re-prediction %s (job %s)",
        project,
        version,
        "queued" if created else "coalesced into the active job",
        job,
    )
    return job


def make_prelabel_jobs(
    settings: Settings, model_ref: ModelRef, slots: Any = None, models: Callable[[str, str | None], Any] | None = None
) -> PrelabelJobs:
    """RQ when `REDIS_URL` is set (the workers run the jobs), else threads of this server process, which
    take their models from `models` (the server's bounded cache) when given."""
    if settings.redis_url:
        return RQPrelabelJobs(settings)
    return EmbeddedPrelabelJobs(model_ref, settings, slots=slots, models=models)
