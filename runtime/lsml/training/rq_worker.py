"""The RQ worker that runs trainings, in a process of its own (`label-studio-ml worker`).

It is RQ's forking `Worker` with these changes, each for a fault:

* Heartbeats every `HEARTBEAT_INTERVAL` s with a TTL of `HEARTBEAT_TTL` s
  (RQ: 30 s and 90 s), so when the worker is `kill -9`'d its job is turned
  into a failed one (`AbandonedJobError`) by the next registry cleanup within
  seconds. Cleanups run in every worker each `MAINTENANCE_INTERVAL` s and
  whenever a server asks for a job's status (`RQQueue.status`).
* The work horse (the forked child running `fit`) asks the kernel to kill it
  when its parent dies (`PR_SET_PDEATHSIG`): a `kill -9` of the worker never
  leaves an orphan fit that could publish a version after its job was
  declared failed.
* Jobs are `lsml.training.trusted_job.TrustedJob`s: a job naming any other
  function than `perform_training` (or a callback, or an RQ webhook) is
  failed with the reason and never imported or run, and `perform_training`
  checks its arguments (`lsml.training.queue.validated_request`): Redis is
  not trusted.
* A training whose work horse is killed (SIGKILL of worker and horse when
  a pod is deleted past its grace period, the OOM killer) runs again, at
  most ``LSML_FIT_ATTEMPTS`` times in all: `RQQueue` enqueues it with RQ's
  ``Retry``, which RQ applies both when this worker sees its horse die and
  when a registry cleanup (any worker, or a server's status call) finds a
  dead worker's job. The re-run claims the same request again
  (`lsml.training.coalesce`). A fit that raises, runs past its timeout or is
  refused is not retried (`handle_job_failure`). Pre-labelling jobs get the
  same treatment (``LSML_PRELABEL_ATTEMPTS``, `RETRIED_FUNCTIONS`): the re-run
  resumes from the project's checkpoint (`lsml.prelabel_jobs`). An idle worker cleans the
  registries every `MAINTENANCE_INTERVAL` s (RQ's default is minutes).
* SIGTERM mid-fit is RQ's warm shutdown: the worker finishes the running
  fit, then exits; the pod's ``terminationGracePeriodSeconds`` bounds that
  wait, after which the fit is killed and runs again on the next worker.
  A SIGTERM that comes while the worker is still starting (before RQ's
  handlers exist) is the same warm shutdown, not a lost signal.
* `run_worker` survives Redis outages: RQ already retries while waiting for
  jobs (its wait capped at `MAX_RECONNECT_WAIT` s, not RQ's 60); here a
  worker that starts (or loses Redis) before Redis is up waits and retries
  instead of exiting, and stops the lost worker's command thread. RQ's loop
  also quits by itself on any error it does not expect and, when its teardown
  reaches Redis, returns as if asked to stop (Redis lost right after a job and
  back before the teardown): only a signal or burst mode ends `run_worker`,
  any other return gets a new worker. While a
  job runs, a heartbeat that cannot reach Redis is skipped (logged) instead
  of ending the worker's loop, so the horse (e.g. a pre-labelling job, which rides out the outage itself) goes on
  and is still monitored when Redis is back. An outage longer than
  `HEARTBEAT_TTL` may get the job declared abandoned by the first registry
  cleanup after it; a pre-labelling job then stops at its next page
  (`lsml.prelabel_jobs`).

The job function, `perform_training`, claims the project's newest request
from the coalescing state (`lsml.training.coalesce`) and hands it to
`lsml.training.job.run_training`, the same function the embedded runner uses.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from rq import Worker, get_current_job
from rq.exceptions import StopRequested
from rq.serializers import JSONSerializer
from rq.utils import now

from lsml.procs import die_with_parent
from lsml.redis_connection import connect
from lsml.settings import Settings
from lsml.training.coalesce import Coalescer
from lsml.training.rq_queue import JOB_FUNCTION
from lsml.training.trusted_job import TrustedJob, trusted_queue

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 2
HEARTBEAT_TTL = 10
MAINTENANCE_INTERVAL = 10
#: Longest wait between two attempts to reach a Redis that is down.
MAX_RECONNECT_WAIT = 5.0
#: Jobs that run again when their horse is killed: trainings (`LSML_FIT_ATTEMPTS`) and pre-labelling jobs
#: (`LSML_PRELABEL_ATTEMPTS`, `lsml.prelabel_jobs`), each within the `Retry` its queue gave it.
RETRIED_FUNCTIONS = frozenset({JOB_FUNCTION, "lsml.prelabel_jobs.perform_prelabel"})
#: How a pre-labelling run's traceback ends when its job was queued again under it (`lsml.prelabel_jobs`).
REQUEUED = "lsml.prelabel_jobs.JobRequeued: "


def _status_in_redis(job) -> str | None:
    """The job's status as Redis has it now (not the horse's copy); None when unreadable."""
    try:
        status = job.connection.hget(job.key, "status")
    except redis.RedisError:
        return None
    return status.decode() if isinstance(status, bytes) else status


@dataclass(frozen=True)
class WorkerContext:
    """What every job of this worker needs; set before forking, inherited by the horse."""

    model_ref: str
    settings: Settings


_context: WorkerContext | None = None


def set_context(model_ref: str, settings: Settings) -> None:
    """Tell `perform_training` which model and settings this worker serves."""
    global _context
    _context = WorkerContext(model_ref, settings)


def perform_training(project: str, request: dict[str, Any]) -> dict[str, Any]:
    """RQ job: train `project` on the newest coalesced request, publish a version."""
    from lsml.model import load_model_class
    from lsml.training.job import run_training
    from lsml.training.queue import validated_request

    if _context is None:
        raise RuntimeError("perform_training runs only inside `label-studio-ml worker`")
    # the webhook route submits the model's TRAIN_EVENTS; the legacy /train route always START_TRAINING
    events = tuple(load_model_class(_context.model_ref, _context.settings.backend_dir).TRAIN_EVENTS)
    events += () if "START_TRAINING" in events else ("START_TRAINING",)
    validated_request(project, request, events)  # before `project` is used as a Redis key
    job = get_current_job()
    if job is None:
        raise RuntimeError("perform_training runs only as an RQ job")
    coalescer = Coalescer(job.connection, trusted_queue(job.origin, job.connection))
    newest = coalescer.claim(project, job.id)
    try:
        data = validated_request(project, newest if newest is not None else request, events)
        result = run_training(_context.model_ref, data, _context.settings, job_id=job.id)
    finally:
        try:
            coalescer.release(project, job.id)
        except redis.RedisError:
            log.warning("could not clear the running marker of job %s (Redis down); the next submit reaps it", job.id)
    return result


class TrainingWorker(Worker):
    """RQ's forking worker with short heartbeats, horses that die with it, and re-runs only of killed fits."""

    # RQ's idle loop doubles its wait for a Redis that is down up to 60 s, so after a long outage an idle
    # worker could leave queued trainings waiting up to a minute more; the same bound as lsml's own loop
    max_connection_wait_time = MAX_RECONNECT_WAIT

    #: Set by lsml's own SIGTERM/SIGINT handler, which is in place until RQ's (`run_worker`)
    stop_asked: threading.Event | None = None

    def _install_signal_handlers(self) -> None:
        """RQ's handlers, then a stop asked before they existed (the worker was still starting) turned into RQ's
        warm shutdown: RQ would otherwise work on, and the one SIGTERM of a supervisor or the kubelet was lost."""
        super()._install_signal_handlers()
        if self.stop_asked is not None and self.stop_asked.is_set():
            log.info("stopping: the signal came while the RQ worker was starting")
            self._shutdown_requested_date = now()
            self._stop_requested = True  # the loop's first turn ends it, with RQ's teardown

    def unsubscribe(self) -> None:
        """RQ's, without its unbounded wait. RQ unsubscribes, then stops the pubsub thread, and redis-py 8's
        ``stop()`` joins that thread with no bound while it sleeps up to 60 s (RQ's ``sleep_time``) for a
        message or, once unsubscribed, for a subscription that will not come: a stopped worker lingered
        until the supervisor's SIGKILL. Here the thread is told to stop first, so the UNSUBSCRIBE reply
        that wakes it ends its loop (which closes its connection); it is a daemon, waited for 1 s at most."""
        thread = self.pubsub_thread
        if thread is None:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        stop_pubsub_thread(thread)
        with contextlib.suppress(redis.RedisError):
            self.pubsub.unsubscribe()
        thread.join(timeout=1)
        if not thread.is_alive():
            self.pubsub.close()

    def get_heartbeat_ttl(self, job) -> int:  # noqa: D102 - see module doc
        return self.job_monitoring_interval + (HEARTBEAT_TTL - HEARTBEAT_INTERVAL)

    @property
    def dequeue_timeout(self) -> int:  # noqa: D102 - see module doc
        # RQ blocks an idle worker for worker_ttl - 15 (405) s between maintenance runs; a killed worker's
        # job must be put back within about MAINTENANCE_INTERVAL s even when nobody asks the server
        return min(super().dequeue_timeout, MAINTENANCE_INTERVAL)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="") -> None:  # noqa: D102
        if self.is_horse and REQUEUED in exc_string and _status_in_redis(job) == "queued":
            # a pre-labelling run that stopped because its job was queued again (`JobRequeued`): the job is
            # its re-run's now; writing `failed` over it would drop that re-run (the horse then exits 0)
            log.warning("job %s was queued again while running: this run stopped, the re-run goes on", job.id)
            return
        if not self._horse_was_killed(job):
            job.retries_left = None  # a fit that raised, timed out or was refused ends failed, as before
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry, exc_string=exc_string)

    def _horse_was_killed(self, job) -> bool:
        """True when this failure is the work horse dying under a training or pre-labelling job (SIGKILL, OOM).

        Only then may RQ use the job's ``retries_left``: a fit that raises
        fails inside the horse itself, and a horse the worker killed for
        running past the job's timeout would only run out of time again.
        """
        if self.is_horse or not isinstance(job, TrustedJob) or job.refusal() is not None:
            return False
        if job.func_name not in RETRIED_FUNCTIONS:
            return False
        started = job.started_at
        return not (
            job.timeout and job.timeout > 0 and started is not None and (now() - started).total_seconds() >= job.timeout
        )

    def main_work_horse(self, job, queue) -> None:  # noqa: D102 - see module doc
        die_with_parent()
        super().main_work_horse(job, queue)

    def maintain_heartbeats(self, job) -> None:  # noqa: D102 - see module doc
        self._while_redis_is_up(super().maintain_heartbeats, job)

    def set_current_job_working_time(self, current_job_working_time, pipeline=None) -> None:  # noqa: D102
        self._while_redis_is_up(super().set_current_job_working_time, current_job_working_time, pipeline)

    def _while_redis_is_up(self, write, *args) -> None:
        """Skip a monitoring write while Redis is unreachable (RQ would end the work loop, orphaning the horse)."""
        try:
            write(*args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("heartbeat skipped: Redis unreachable (%s); the job goes on", type(exc).__name__)


def run_worker(
    model_ref: str,
    settings: Settings,
    name: str | None = None,
    burst: bool = False,
) -> None:
    """Run trainings from `settings.queue_name` until SIGTERM/SIGINT (or, with `burst`, until empty)."""
    if not settings.redis_url:
        raise ValueError("the worker needs REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    set_context(model_ref, settings)
    stopping = threading.Event()
    _stop_on_signals(stopping)  # a signal while Redis is down, before RQ's worker exists
    wait = 0.5
    while not stopping.is_set():
        # no socket timeout (RQ blocks on reads), redis-py's retries: the loop below reconnects
        connection = connect(settings.redis_url, None, connect_timeout=2.0, fail_fast=False)
        worker = None
        started = time.monotonic()
        try:
            connection.ping()
            if stopping.is_set():
                break
            worker = TrainingWorker(
                [trusted_queue(settings.queue_name, connection)],
                connection=connection,
                name=name,
                serializer=JSONSerializer,
                job_class=TrustedJob,
                job_monitoring_interval=HEARTBEAT_INTERVAL,
                maintenance_interval=MAINTENANCE_INTERVAL,
            )
            worker.stop_asked = stopping
            worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level)  # installs RQ's handlers
            if burst or _stop_was_asked(worker):
                return
            # RQ's loop ends itself on any error it does not expect ("found an unhandled exception, quitting",
            # "Redis connection timeout, quitting") and, when its teardown reaches Redis, returns as if asked
            # to stop: e.g. Redis lost in the bookkeeping after a job and back before the teardown. Only a
            # signal (or burst) ends this process; a fault gets a new worker, not a dead training queue.
            _stop_on_signals(stopping)
            wait = _first_wait_after(started, wait)
            log.warning("the RQ worker quit without a stop request (its error is above); a new one in %.1fs", wait)
            wait = _pause(stopping, wait)
        except StopRequested:
            # RQ's handler of a worker whose loop Redis already broke: it raises wherever the signal lands
            log.warning("stopping while Redis is unreachable")
            return
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            _stop_on_signals(stopping)  # RQ's handlers belong to the worker that just failed
            if worker is not None:
                drop_pubsub(worker)
            if worker is not None and _stop_was_asked(worker):
                stopping.set()
            if stopping.is_set():
                log.warning("stopping while Redis is unreachable (%s)", exc)
                return
            if worker is not None:
                wait = _first_wait_after(started, wait)
            log.warning("Redis at %s unreachable (%s); retrying in %.1fs", _safe_url(settings.redis_url), exc, wait)
            wait = _pause(stopping, wait)
        finally:
            connection.close()
    log.warning("stopping on a signal that came while no RQ worker ran")


def _pause(stopping: threading.Event, wait: float) -> float:
    """Wait `wait` s before the next worker (a signal cuts it short); the next wait, doubled up to the cap."""
    stopping.wait(wait)
    return min(wait * 2, MAX_RECONNECT_WAIT)


def _first_wait_after(started: float, wait: float) -> float:
    """The wait before the next worker: short after one that ran a while (a new fault), else still growing."""
    return 0.5 if time.monotonic() - started > MAX_RECONNECT_WAIT else wait


def _stop_was_asked(worker: Worker) -> bool:
    """True when a signal asked RQ's worker to stop (warm shutdown), as opposed to its loop quitting on a fault."""
    return bool(worker._stop_requested or worker._shutdown_requested_date is not None)


def stop_pubsub_thread(thread: Any) -> None:
    """Tell redis-py's pubsub thread to end at its next turn, without waiting for it (redis-py 8's ``stop()``
    joins it, unbounded by default, while the thread may sleep for up to RQ's 60 s ``sleep_time``)."""
    if "timeout" in inspect.signature(thread.stop).parameters:
        thread.stop(timeout=0)
    else:  # redis-py before 8: stop() takes no timeout and only clears the flag
        thread.stop()


def drop_pubsub(worker: Worker) -> None:
    """Stop the command thread of a worker given up on, without Redis (which is down).

    RQ's pubsub thread retries a lost Redis every 2 s for ever: left running, each outage would leak one that
    subscribes again, beside the next worker's, when Redis is back.
    """
    if worker.pubsub_thread is not None:
        stop_pubsub_thread(worker.pubsub_thread)  # its loop ends at its next turn, after the retry sleep it may be in
    if worker.pubsub is not None:
        with contextlib.suppress(redis.RedisError):
            worker.pubsub.close()


def _stop_on_signals(stopping: threading.Event) -> None:
    """SIGTERM/SIGINT end the reconnect loop; inside `work()` RQ's own handlers take over (warm shutdown)."""

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def healthcheck(settings: Settings) -> bool:
    """True when an RQ worker of this host is registered on the queue (compose/k8s probe)."""
    connection = connect(str(settings.redis_url), socket_timeout=3.0)
    try:
        queue = trusted_queue(settings.queue_name, connection)
        host = socket.gethostname()
        return any(w.hostname == host for w in Worker.all(queue=queue))
    except redis.RedisError:
        return False
    finally:
        connection.close()


def _safe_url(url: str) -> str:
    """The Redis URL without its password, for logs."""
    parsed = urlsplit(url)
    return f"{parsed.hostname or '?'}:{parsed.port or 6379}{parsed.path or ''}"
