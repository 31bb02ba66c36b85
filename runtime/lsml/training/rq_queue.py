"""`RQQueue`: the `TrainingQueue` that sends trainings to RQ workers through Redis.

Why RQ: its one dependency is Redis, which label-studio-ml-backend's
production setup (what lsml replaces) runs too, its registries give job
states (queued/started/finished/failed) for free, and its worker handles a
dying work horse. What lsml adds on top:

* coalescing per project (see `lsml.training.coalesce`): a burst of webhooks
  leaves at most one queued and one running training;
* a Redis client with short socket timeouts, so the web server answers a
  fast 503 when Redis is down instead of blocking a request thread, and
  reconnects by itself when it is back (redis-py reconnects per command);
* bounded detection of dead workers: `status()` and `stats()` run RQ's
  `StartedJobRegistry.cleanup()` (so does every worker), which finds a job
  whose heartbeat expired. Workers heartbeat every `HEARTBEAT_INTERVAL`
  seconds with a TTL of `HEARTBEAT_TTL` (`lsml.training.rq_worker`), so a
  `kill -9`'d worker's job is found within about `HEARTBEAT_TTL` seconds
  rather than RQ's default minute and more;
* no training lost to a killed worker: jobs carry RQ's `Retry` with
  ``LSML_FIT_ATTEMPTS - 1`` retries, and that cleanup (which may run here,
  in a server, without the worker's handlers) re-enqueues a dead worker's
  job under the same id while retries are left, then fails it
  (`AbandonedJobError`). The re-run claims the request it claimed before
  (`lsml.training.coalesce`) and is checked like any job (`TrustedJob`,
  `validated_request`).

Jobs are JSON-serialised (`rq.serializers.JSONSerializer`): the job hash
holds the project and the request, never pickled objects or settings with
secrets in them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Dependency, Job, JobStatus, Retry
from rq.serializers import JSONSerializer

from lsml import setting_names
from lsml.errors import RedisUnavailable
from lsml.model import ModelRef, model_ref_string
from lsml.redis_connection import connect
from lsml.settings import Settings
from lsml.training.coalesce import Coalescer
from lsml.training.queue import (
    FAILED,
    FINISHED,
    QUEUED,
    STARTED,
    TrainingRequest,
    job_status,
    quality_fields,
)
from lsml.training.trusted_job import TrustedJob, reap_abandoned_jobs, trusted_queue

log = logging.getLogger(__name__)

#: The job function every RQ training job runs (in `lsml.training.rq_worker`).
JOB_FUNCTION = "lsml.training.rq_worker.perform_training"
#: Seconds RQ keeps a finished job (so /job_status can report it), and a failed one.
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600

_STATUS_NAMES = {
    JobStatus.QUEUED.value: QUEUED,
    JobStatus.DEFERRED.value: QUEUED,
    JobStatus.SCHEDULED.value: QUEUED,
    JobStatus.CREATED.value: QUEUED,
    JobStatus.STARTED.value: STARTED,
    JobStatus.FINISHED.value: FINISHED,
    JobStatus.FAILED.value: FAILED,
    JobStatus.STOPPED.value: FAILED,
    JobStatus.CANCELED.value: FAILED,
}


def failure_message(exc: redis.RedisError) -> str:
    """What a 503 says: never the URL (it may hold a password)."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return f"Redis is unreachable ({exc.__class__.__name__}); training requests are refused until it is back"
    return f"Redis refused the training request: {exc}"


class RQQueue:
    """`TrainingQueue` on RQ + Redis, with per-project coalescing."""

    embedded = False

    def __init__(self, model_ref: ModelRef, settings: Settings, connection: redis.Redis | None = None) -> None:
        if not settings.redis_url and connection is None:
            raise ValueError("RQQueue needs REDIS_URL")
        self.model_ref = model_ref_string(model_ref)  # informational: workers run their own backend's model
        self.connection = connection or connect(str(settings.redis_url))
        self.queue = trusted_queue(settings.queue_name, self.connection)
        self.coalescer = Coalescer(self.connection, self.queue)
        # seconds a training may run before RQ's work horse kills it: LSML_FIT_TIMEOUT, as in the embedded runner
        self.job_timeout = int(math.ceil(settings.fit_timeout))
        # a fit whose horse is killed runs again (LSML_FIT_ATTEMPTS in all; see `lsml.training.rq_worker`)
        self.attempts = settings.fit_attempts
        self.retry = rerun_retry(self.attempts)

    # --- TrainingQueue -------------------------------------------------
    def submit(self, request: TrainingRequest) -> str:
        """Coalesce or enqueue a training for `request.project`; returns the job id at once."""
        data = request.to_dict()
        project = str(data["project"])

        def enqueue(pipe: redis.client.Pipeline, job_id: str, depends_on: Dependency | None) -> Job:
            return self.queue.enqueue_call(
                JOB_FUNCTION,
                args=(project, data),
                job_id=job_id,
                depends_on=depends_on,
                timeout=self.job_timeout,
                retry=self.retry,
                result_ttl=RESULT_TTL,
                failure_ttl=FAILURE_TTL,
                description=f"lsml training of project {project} ({self.model_ref})",
                pipeline=pipe,
            )

        try:
            submitted = self.coalescer.submit(project, data, enqueue)
        except redis.RedisError as exc:
            raise RedisUnavailable(failure_message(exc), code="training_unavailable") from exc
        log.info(
            "training of project %s: %s job %s",
            project,
            "queued" if submitted.created else "coalesced into",
            submitted.job_id,
        )
        return submitted.job_id

    def status(self, job_id: str) -> dict[str, Any] | None:
        """`{"job", "status", "error", "model_version", "project"}` of one job; None if unknown/expired."""
        found = read_job(self.queue, job_id)
        if found is None:
            return None
        job, status, rq_status, result = found
        error = None
        model_version = None
        quality: dict = {}
        if status == FAILED:
            error = failure_reason(result.exc_string if result is not None else None, rq_status)
        elif status == FINISHED and result is not None and isinstance(result.return_value, dict):
            model_version = result.return_value.get("model_version")
            quality = quality_fields(result.return_value)
        return job_status(job_id, status, project=_project_of(job), error=error, model_version=model_version, **quality)

    def stats(self) -> dict[str, int]:
        """Counts for /metrics: queued (incl. waiting on a running one), running, failed.

        A job moves deferred -> queue -> intermediate (dequeued, not yet started) -> started, and the counts are
        read in that order, so a job that moves between two reads is counted twice at worst, never missed: a
        scrape that says nothing is queued or running ("idle") cannot be reading a job in mid-hand-off.
        """
        try:
            self._reap_dead_workers()
            deferred = self.queue.deferred_job_registry.count
            waiting = self.queue.count
            dequeued = self.connection.llen(self.queue.intermediate_queue_key)
            running = self.queue.started_job_registry.count
            return {
                "queued": deferred + waiting + dequeued,
                "running": running,
                "failed": self.queue.failed_job_registry.count,
            }
        except redis.RedisError as exc:
            raise RedisUnavailable(failure_message(exc), code="training_unavailable") from exc

    def ping(self) -> bool:
        """True when Redis answers (readiness); never raises."""
        try:
            return bool(self.connection.ping())
        except redis.RedisError:
            return False

    # --- internals -----------------------------------------------------
    def _reap_dead_workers(self) -> None:
        """Fail jobs whose worker stopped heartbeating (RQ's own abandoned-job handling)."""
        reap_abandoned_jobs(self.queue)


def read_job(queue: Queue, job_id: str) -> tuple[Job, str, Any, Any] | None:
    """`(job, lsml status, RQ status, latest result)` of a job on `queue`, after failing the jobs of dead
    workers; None when unknown or expired; `RedisUnavailable` when Redis is down. Shared by the training
    and the pre-labelling queues."""
    try:
        reap_abandoned_jobs(queue)
        job = TrustedJob.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
        rq_status = job.get_status(refresh=False)
        result = job.latest_result()
    except NoSuchJobError:
        return None
    except redis.RedisError as exc:
        raise RedisUnavailable(failure_message(exc), code="training_unavailable") from exc
    return job, _STATUS_NAMES.get(getattr(rq_status, "value", rq_status), QUEUED), rq_status, result


def _project_of(job: Job) -> str | None:
    """The project a job was queued for; None for a job whose data is not lsml's (it was refused)."""
    try:
        args = job.args
    except DeserializationError:
        return None
    return args[0] if args and isinstance(args[0], str) else None


def rerun_retry(attempts: int) -> Retry | None:
    """RQ's retry for a job whose work horse is killed (the worker honours it only then): at once and at
    the front of the queue, since an interval would need RQ's scheduler, which lsml does not run."""
    return Retry(max=attempts - 1, enqueue_at_front=True) if attempts > 1 else None


def failure_reason(
    exc_string: str | None,
    rq_status: Any = None,
    *,
    what: str = "training",
    attempts: str = setting_names.LSML_FIT_ATTEMPTS,
) -> str:
    """One line saying why a job failed, from RQ's stored traceback; a killed one names its attempts.

    `what` names the job ("training", "pre-labelling job"), `attempts` what
    bounded its re-runs (the setting, with the count when it is known).
    """
    if not exc_string:
        return f"{what} {getattr(rq_status, 'value', rq_status) or 'failed'}"
    if "AbandonedJobError" in exc_string:
        return f"the worker running this {what} died (no heartbeat) and it had no attempt left ({attempts}): AbandonedJobError"
    if "Work-horse terminated unexpectedly" in exc_string:
        return f"the worker process running this {what} was killed ({attempts}): " + exc_string.strip().rstrip(";")
    lines = [line for line in exc_string.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else exc_string.strip()
