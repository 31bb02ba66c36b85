"""`TrustedJob`: the RQ job class of lsml's worker, which runs lsml's training entry point and nothing else.

Why: anyone who can write to the training queue's Redis could otherwise name
any importable function (`os.system`, `subprocess.call`, ...) in a job and
have the worker run it; RQ resolves a job's function by importing its dotted
name. RQ's documented hook for this is a custom job class
(`Worker(job_class=...)`): every place RQ turns a name into a callable goes
through one of this class's properties, so the checks here run before
anything named by the job is imported:

* `func`: the job's function must be exactly `ALLOWED_FUNCTIONS` and not a
  method of a serialised instance;
* `success_callback` / `failure_callback` / `stopped_callback`: lsml's jobs
  set none, so a job that names one is refused (and the callback is never
  resolved, not even on the failure path);
* `send_webhooks`: lsml's jobs carry no RQ webhooks, so none is sent (a job
  that names one is refused: it would make the worker call any URL);
* the job's data is read with the worker's JSON serializer; a pickled
  payload fails to decode and is refused as well (it is never unpickled).

A refused job ends failed with the reason (`/job_status` shows it) and the
worker logs it; the function is never imported or called.

The server reads the same jobs: `/job_status` and `/metrics` reap a dead
worker's job with RQ's `StartedJobRegistry.cleanup()`, which calls the job's
failure callback. A registry built without `job_class` reads jobs as plain
`rq.job.Job` and imports whatever callback a forged job names, in the server
process (issue 22 item 6). So lsml builds every queue with `trusted_queue` and
reaps with `reap_abandoned_jobs`: no lsml code builds an RQ queue, registry or
job with RQ's default job class.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis, RedisError
from rq import Queue
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import current_timestamp

from lsml.errors import LsmlError

log = logging.getLogger(__name__)

#: The functions a job may name: the training (`lsml.training.rq_queue.JOB_FUNCTION`) and the pre-labelling
#: job (`lsml.prelabel_jobs.JOB_FUNCTION`, which checks its arguments with `PrelabelRequest.from_dict`).
ALLOWED_FUNCTIONS = frozenset({"lsml.training.rq_worker.perform_training", "lsml.prelabel_jobs.perform_prelabel"})
#: Names the entry points had in earlier releases, read as today's: a training queued by a server of the
#: previous release (the module was `lsml.training.worker`) still runs on an upgraded worker.
RENAMED_FUNCTIONS = {"lsml.training.worker.perform_training": "lsml.training.rq_worker.perform_training"}


class JobRefused(LsmlError, DeserializationError):
    """A job in the training queue that is not an lsml training: it is failed, never run.

    A `DeserializationError` subclass, so RQ's own handling of undecodable
    jobs (log, fail, carry on) applies to it unchanged.
    """


class TrustedJob(Job):
    """An RQ `Job` that refuses to resolve anything but lsml's training entry point."""

    def refusal(self) -> str | None:
        """Why this job must not run, or None when it is an lsml training."""
        try:
            name = self.func_name
            instance = self.instance
        except JobRefused as exc:
            return str(exc)
        if name not in ALLOWED_FUNCTIONS:
            return (
                f"function {str(name)[:200]!r} is not lsml's training entry point "
                f"(allowed: {', '.join(sorted(ALLOWED_FUNCTIONS))})"
            )
        if instance is not None:
            return "a training job must not carry a serialised instance"
        for kind in ("success", "failure", "stopped"):
            if getattr(self, f"_{kind}_callback_name", None):
                return f"a training job must not name a {kind} callback"
        if self.webhooks:
            return "a training job must not carry RQ webhooks"
        return None

    def _refuse(self) -> JobRefused:
        reason = self.refusal() or "refused"
        log.error("refused job %s from queue %r: %s; it is marked failed and never runs", self.id, self.origin, reason)
        return JobRefused(f"refused job {self.id}: {reason}")

    def _deserialize_data(self) -> None:
        try:
            super()._deserialize_data()
        except DeserializationError as exc:
            raise JobRefused(
                "its data is not lsml's JSON job format (a pickled or corrupt payload is never decoded)"
            ) from exc
        if isinstance(self._func_name, str) and self._func_name in RENAMED_FUNCTIONS:
            self._func_name = RENAMED_FUNCTIONS[self._func_name]

    @property
    def func(self) -> Any:
        if self.refusal() is not None:
            raise self._refuse()
        return super().func

    @property
    def success_callback(self) -> Any:
        return None

    @property
    def failure_callback(self) -> Any:
        return None

    @property
    def stopped_callback(self) -> Any:
        return None

    def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
        return None


def trusted_queue(name: str, connection: Redis) -> Queue:
    """An lsml queue: JSON jobs, read as `TrustedJob` by the queue and by every registry it builds."""
    return Queue(name, connection=connection, serializer=JSONSerializer, job_class=TrustedJob)


class TrustedStartedJobRegistry(StartedJobRegistry):
    """RQ's registry of running jobs, reading them as `TrustedJob`, also in the queue its `cleanup` re-enqueues on.

    An expired entry whose job hash RQ cannot even read (a forged `status`,
    `retries_left` or date) is dropped with a log line before RQ's cleanup:
    RQ would raise on it at every call, so every `/job_status` answered 500
    and `/metrics` lost its queue gauges until someone repaired Redis by hand.
    """

    def __init__(self, queue: Queue) -> None:
        super().__init__(queue=queue, job_class=TrustedJob, serializer=JSONSerializer)

    def get_queue(self) -> Queue:
        return trusted_queue(self.name, self.connection)

    def cleanup(self, timestamp: float | None = None, exception_handlers: list | None = None) -> None:
        self._drop_unreadable(timestamp if timestamp is not None else current_timestamp())
        super().cleanup(timestamp, exception_handlers)

    def _drop_unreadable(self, score: float) -> None:
        entries: list[bytes] = self.connection.zrangebyscore(self.key, 0, score)  # type: ignore[assignment]
        for entry in entries:
            job_id = self.parse_job_id(entry)  # type: ignore[arg-type]  # RQ passes its bytes too
            try:
                TrustedJob.fetch(job_id, connection=self.connection, serializer=self.serializer)
            except (NoSuchJobError, RedisError):
                continue  # RQ's cleanup skips a missing job; a Redis error is the caller's (503)
            except Exception as exc:  # noqa: BLE001 - whatever RQ raises on a hash it cannot read
                log.error(
                    "dropped job %.200r from the running jobs of %r: its record in Redis is unreadable (%s)",
                    job_id,
                    self.name,
                    exc,
                )
                self.connection.zrem(self.key, entry)


def reap_abandoned_jobs(queue: Queue) -> None:
    """Fail (or re-enqueue, while retries are left) the jobs whose worker stopped heartbeating.

    RQ's own abandoned-job handling, run by servers too: no callback a job
    names is resolved (`TrustedJob.failure_callback` is always None).
    """
    TrustedStartedJobRegistry(queue).cleanup()
