"""EmbeddedQueue: training in a background thread of the server process (no Redis).

One worker thread runs `run_training` for one job at a time. Per project at
most one job is queued and one running; a trigger while a job is queued
folds into it (see `lsml.training.queue`), so a burst of annotation events
during a run causes exactly one more run after it. Job statuses live in
memory (the newest `max_jobs`), so `/job_status` answers for jobs this
process accepted.

Several server processes each with an EmbeddedQueue (gunicorn workers > 1)
would each train; `run_training` holds the store's per-project training lock
so they take turns, but `label-studio-ml start` runs one worker in embedded
mode: use `REDIS_URL` (RQ) to scale out.

Each job runs under LSML_FIT_TIMEOUT (`lsml.training.deadline`): past it the
job fails and the runner goes on; the abandoned fit never publishes.

At interpreter exit (an `atexit` handler, registered when the first runner
thread starts) every queue closes, no queued job starts, and a running one
gets LSML_FIT_EXIT_WAIT seconds to finish and publish; then it is abandoned
and stopped (`lsml.training.exit_wait`), so the process exits cleanly, with
its own exit code, instead of finalizing around a training thread.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable

from lsml.model import ModelRef
from lsml.settings import Settings
from lsml.training.deadline import FitStopped, FitThread
from lsml.training.exit_wait import finish_fits
from lsml.training.job import run_training
from lsml.training.queue import FAILED, FINISHED, QUEUED, STARTED, TrainingRequest, job_status, quality_fields

logger = logging.getLogger(__name__)

_QUEUES: weakref.WeakSet[EmbeddedQueue] = weakref.WeakSet()
_EXIT_HANDLER = threading.Lock()
_exit_handler_registered = False


def _register_exit_handler() -> None:
    """Once per process, when a runner thread first starts: late, so it runs before earlier atexit handlers
    (logging's shutdown among them; atexit runs the last registered first)."""
    global _exit_handler_registered
    with _EXIT_HANDLER:
        if not _exit_handler_registered:
            atexit.register(_at_exit)
            _exit_handler_registered = True


def _at_exit() -> None:
    """Close every queue (no queued job starts now), then let the running trainings finish or abandon them."""
    queues = list(_QUEUES)
    for queue in queues:
        queue.close()
    if queues:
        finish_fits(max(queue.settings.fit_exit_wait for queue in queues))


class EmbeddedQueue:
    """`TrainingQueue` in a thread of this process (no Redis)."""

    embedded = True
    attempts = 1  # a training dies with the process running it; nothing runs it again

    def __init__(
        self,
        model_ref: ModelRef,
        settings: Settings,
        on_finished: Callable[[str, dict], None] | None = None,
        runner: Callable = run_training,
        max_jobs: int = 1000,
    ) -> None:
        self.model_ref = model_ref
        self.settings = settings
        self.on_finished = on_finished
        self._runner = runner
        self._max_jobs = max_jobs
        self._cv = threading.Condition()
        self._jobs: OrderedDict[str, dict] = OrderedDict()
        self._requests: dict[str, TrainingRequest] = {}
        self._queued: dict[str, str] = {}
        self._running: dict[str, str] = {}
        self._order: deque[str] = deque()
        self._failed = 0
        self._finished = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        _QUEUES.add(self)

    # ---- TrainingQueue -----------------------------------------------------
    def submit(self, request: TrainingRequest) -> str:
        with self._cv:
            if self._closed:
                raise RuntimeError("the training queue is closed")
            job_id = self._queued.get(request.project)
            if job_id is not None:
                self._requests[job_id] = self._requests[job_id].merged_with(request)
                self._jobs[job_id]["event"] = request.event
                self._jobs[job_id]["coalesced"] = len(self._requests[job_id].coalesced)
                self._jobs[job_id]["coalesced_dropped"] = self._requests[job_id].coalesced_dropped
                return job_id
            job_id = uuid.uuid4().hex
            self._jobs[job_id] = job_status(
                job_id,
                QUEUED,
                project=request.project,
                event=request.event,
                enqueued_at=time.time(),
                coalesced=0,
                coalesced_dropped=0,
            )
            self._requests[job_id] = request
            self._queued[request.project] = job_id
            self._order.append(job_id)
            self._trim()
            self._ensure_thread()
            self._cv.notify_all()
            return job_id

    def status(self, job_id: str) -> dict | None:
        with self._cv:
            st = self._jobs.get(job_id)
            return dict(st) if st is not None else None

    def stats(self) -> dict:
        with self._cv:
            return {
                "queued": len(self._order),
                "running": len(self._running),
                "failed": self._failed,
                "finished": self._finished,
            }

    def ping(self) -> bool:
        return not self._closed

    # ---- helpers ------------------------------------------------------------
    def wait(self, job_id: str, timeout: float = 30.0) -> dict:
        """Block until the job finished or failed (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                st = self._jobs.get(job_id)
                if st is None:
                    raise KeyError(job_id)
                if st["status"] in (FINISHED, FAILED):
                    return dict(st)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"job {job_id} still {st['status']} after {timeout}s")
                self._cv.wait(remaining)

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._order or self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("training queue still busy")
                self._cv.wait(remaining)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            _register_exit_handler()
            self._thread = threading.Thread(target=self._work, name="lsml-training", daemon=True)
            self._thread.start()

    def _trim(self) -> None:
        while len(self._jobs) > self._max_jobs:
            oldest, st = next(iter(self._jobs.items()))
            if st["status"] in (QUEUED, STARTED):
                break
            self._jobs.popitem(last=False)

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._order and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job_id = self._order.popleft()
                request = self._requests.pop(job_id)
                del self._queued[request.project]
                self._running[request.project] = job_id
                self._jobs[job_id].update(status=STARTED, started_at=time.time())
                self._cv.notify_all()
            result: dict | None = None
            try:
                fit = FitThread(
                    f"training job {job_id} of project {request.project}",
                    self._runner,
                    self.model_ref,
                    request,
                    self.settings,
                    job_id=job_id,
                )
                result = fit.run(self.settings.fit_timeout)
                update = dict(
                    status=FINISHED,
                    model_version=result.get("model_version"),
                    published=result.get("published"),
                    **quality_fields(result),
                )
            except FitStopped as exc:  # the process is exiting: exit_wait has said so
                update = dict(status=FAILED, error=f"FitStopped: {str(exc)[:500]}")
            except BaseException as exc:  # noqa: BLE001 - a failed fit must not kill the runner
                logger.error(
                    "project %s: training job %s failed: %s", request.project, job_id, type(exc).__name__, exc_info=True
                )
                update = dict(status=FAILED, error=f"{type(exc).__name__}: {str(exc)[:500]}")
            with self._cv:
                self._jobs[job_id].update(finished_at=time.time(), **update)
                if update["status"] == FAILED:
                    self._failed += 1
                else:
                    self._finished += 1
                del self._running[request.project]
                self._cv.notify_all()
            if result is not None and self.on_finished is not None:
                try:
                    self.on_finished(request.project, result)
                except Exception:  # pragma: no cover
                    logger.debug("on_finished callback failed", exc_info=True)
