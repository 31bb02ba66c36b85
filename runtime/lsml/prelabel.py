"""Pre-label a whole project in the background: page its tasks, predict in batches, write predictions back.

Why: Label Studio's "Retrieve predictions" sends every selected task in one
`/predict` call with a 100 s timeout, so big projects or slow models lose
the work. This job reads the project's tasks from Label Studio page by page
(ordered by id; `READ_PAGE_SIZE` tasks, or `batch_size` if larger;
`fields=task_only` while no task of the page may hold a prediction, the
full tasks once one may; one request at a time: Label Studio's server is one
Python process, and a read running beside a write slows both 3-4x),
predicts them in batches of `batch_size` with the model of one store version,
and stores the predictions with `POST /api/projects/{id}/import/predictions`,
each carrying `model_version` and the model's (active-learning) score.

- Which tasks (`mode`): `missing` (default) every task without a prediction
  of this version; `unlabelled` the same, minus tasks with a submitted
  annotation; `all` every task (a task that has one gets another).
- No empty predictions: the rule of `/predict` (`lsml.response.task_predictions`).
- Resume: after each batch the job records `{"version", "mode", "last_task_id",
  "done", "total"}` in the project's state (`prelabel` key; sqlite or Redis).
  A run for the same version and mode skips tasks up to `last_task_id` (not
  predicted again). A SIGKILL between a page's write and its checkpoint
  leaves no duplicate either: in `missing`/`unlabelled` the written tasks
  now have a prediction of this version; in `all` a resumed run skips tasks
  with a prediction of this version created since the interrupted run
  started (Label Studio's `created_at`, with `CLOCK_MARGIN` for clock skew).
- `max_concurrent` batches are predicted at once (default 1), so a job next
  to live servers keeps their `/predict` latency; writes stay in task order.
- Progress also says where the time went: `read_seconds`, `predict_seconds`,
  `write_seconds` (Label Studio reads, the model, Label Studio writes).
- Errors become `PrelabelError` with a reason (unknown project, refused
  token, Label Studio down, unknown version), never a hang: the client's
  timeouts bound every call.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from lsml import credentials
from lsml.active_learning import is_labelled
from lsml.errors import LsmlError
from lsml.integrity import verify_version
from lsml.labelstudio import Credential, LabelStudioClient, LabelStudioError, connect
from lsml.model import BuildContext, ModelRef, build_model, load_model_class
from lsml.response import serialize_predictions, task_predictions
from lsml.settings import Settings
from lsml.state import State, make_state
from lsml.store import ModelVersion, make_store
from lsml.versions import served_version

logger = logging.getLogger(__name__)

MODES = ("missing", "unlabelled", "all")
CHECKPOINT_KEY = "prelabel"
CLOCK_MARGIN = 5.0  # seconds: Label Studio's clock may lag this host's
#: Tasks per read of Label Studio's task list (at least `batch_size`): fewer, larger reads cost Label Studio
#: less per task (bench/README.md, "Pre-labelling"); batches (predict, write, checkpoint) stay `batch_size`.
READ_PAGE_SIZE = 200


class PrelabelError(LsmlError):
    """The job cannot run or cannot go on; the message says why (no token in it)."""


#: What a pre-labelling request may name (checked here, published in /openapi.json).
LS_PROJECT_PATTERN = r"^[0-9]{1,18}(\.[0-9.]{0,32})?$"
VERSION_NAME_PATTERN = r"^v[0-9]{1,18}$"
# 200: Label Studio 1.23.2 recounts every task of the project on each import/predictions call (its default,
# non-"memory efficient" path), so fewer, larger writes; at most one batch is predicted again after a kill
BATCH_SIZE_DEFAULT = 200
BATCH_SIZE_MAX = 10_000
MAX_CONCURRENT_MAX = 64


@dataclass(frozen=True)
class PrelabelRequest:
    project: str
    mode: str = "missing"
    batch_size: int = BATCH_SIZE_DEFAULT
    max_concurrent: int = 1
    version: str | None = None  # a kept version name; None: the current one

    def validated(self) -> PrelabelRequest:
        """Raise `ValueError` naming the first bad field (arguments may come from HTTP or Redis)."""
        if not isinstance(self.project, str) or not self.project.isdigit():
            raise ValueError(f"project must be a Label Studio project id, got {self.project!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name, low, high in (("batch_size", 1, BATCH_SIZE_MAX), ("max_concurrent", 1, MAX_CONCURRENT_MAX)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
        if self.version is not None and (
            not isinstance(self.version, str) or re.fullmatch(VERSION_NAME_PATTERN, self.version) is None
        ):
            raise ValueError(f"version must be a version name like 'v3', got {self.version!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PrelabelRequest:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        return cls(**data).validated()


@dataclass
class Progress:
    """What the CLI's progress line, `/job_status` and `/metrics` show."""

    project: str
    model_version: str = ""
    total: int = 0  # tasks in the project
    done: int = 0  # tasks looked at (predicted, skipped or resumed past)
    predicted: int = 0  # tasks sent to the model by this run
    written: int = 0  # predictions Label Studio created in this run
    skipped: int = 0  # tasks not needing a prediction (mode), incl. resumed past
    resumed_after: int | None = None
    # where the time went (seconds, summed over calls): reading pages, the model's predict, writing predictions
    read_seconds: float = 0.0
    predict_seconds: float = 0.0
    write_seconds: float = 0.0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started_at
        return self.predicted / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        remaining = max(self.total - self.done, 0)
        return remaining / self.rate if self.rate > 0 else None

    def to_dict(self) -> dict:
        out = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items() if k != "started_at"}
        out.update(rate=round(self.rate, 2), eta=None if self.eta is None else round(self.eta, 1))
        return out


def _has_version(task: dict, version: str) -> bool:
    return any(isinstance(p, dict) and str(p.get("model_version")) == version for p in task.get("predictions") or [])


def _written_since(task: dict, version: str, since: float) -> bool:
    """A prediction of `version` created at or after `since` (epoch seconds): written by the interrupted run."""
    for p in task.get("predictions") or []:
        if isinstance(p, dict) and str(p.get("model_version")) == version and p.get("created_at"):
            try:
                created = datetime.fromisoformat(str(p["created_at"]).replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            if created >= since - CLOCK_MARGIN:
                return True
    return False


def needs_prediction(task: dict, mode: str, version: str, resumed_since: float | None = None) -> bool:
    if mode == "all":
        return resumed_since is None or not _written_since(task, version, resumed_since)
    if mode == "unlabelled" and is_labelled(task):
        return False
    return not _has_version(task, version)


def _decided_without_predictions(tasks: list[dict], after: int) -> bool:
    """False when a task past `after` may hold predictions: a `task_only` page cannot say which versions."""
    return all("total_predictions" in t and not t["total_predictions"] for t in tasks if int(t["id"]) > after)


def prediction_records(tasks: list[dict], results: list, version: str) -> list[dict]:
    """import/predictions items: one per prediction, `[]` (no prediction) writes nothing."""
    records = []
    for task, entry in zip(tasks, results, strict=True):
        for p in entry if isinstance(entry, list) else [entry]:
            if isinstance(p, dict) and "result" in p:
                records.append(
                    {
                        "task": int(task["id"]),
                        "result": p["result"],
                        "score": p.get("score"),
                        "model_version": p.get("model_version") or version,
                    }
                )
    return records


def _label_studio_failure(exc: LabelStudioError, project: str, url: str) -> PrelabelError:
    if exc.status is None:
        return PrelabelError(f"Label Studio at {url} is unreachable: {exc}")
    if exc.status in (401, 403):
        return PrelabelError(
            f"Label Studio refused the API token ({exc.status}): use a personal access token "
            "or an enabled legacy token of a user who can see the project"
        )
    if exc.status == 404:
        return PrelabelError(f"project {project} does not exist in Label Studio at {url} (or this token cannot see it)")
    return PrelabelError(f"Label Studio answered {exc.status}: {exc}")


class Prelabeler:
    """One pre-labelling run of one project (build with `prepare`, then `run`)."""

    def __init__(
        self,
        model: Any,
        client: LabelStudioClient,
        request: PrelabelRequest,
        state: State,
        on_progress: Callable[[Progress], None] | None = None,
        slots: Any = None,
    ) -> None:
        self.slots = slots  # the server's predict semaphore when the job runs inside a server process
        self.model = model
        self.client = client
        self.request = request
        self.state = state
        self.on_progress = on_progress
        self.version = model.model_version
        self.untrained = model.version_dir is None
        self.progress = Progress(project=request.project, model_version=self.version)
        self.started_at = time.time()  # wall clock, compared with Label Studio's created_at on resume

    def _checkpoint(self) -> dict | None:
        """The interrupted run of the same version and mode, if any."""
        saved = self.state.get(self.request.project, CHECKPOINT_KEY)
        if (
            isinstance(saved, dict)
            and saved.get("version") == self.version
            and saved.get("mode") == self.request.mode
            and saved.get("status") == "running"
        ):
            return saved
        return None

    def _save(self, last_task_id: int, status: str = "running") -> None:
        self.state.set(
            self.request.project,
            CHECKPOINT_KEY,
            {
                "version": self.version,
                "mode": self.request.mode,
                "last_task_id": last_task_id,
                "status": status,
                "started_at": self.started_at,
                "done": self.progress.done,
                "total": self.progress.total,
            },
        )

    def _predict(self, tasks: list[dict]) -> list:
        started = time.monotonic()
        if self.slots is not None:
            with self.slots:  # share LSML_PREDICT_CONCURRENCY with live /predict calls
                output = self.model.predict(tasks)
        else:
            output = self.model.predict(tasks)
        self.progress.predict_seconds += time.monotonic() - started
        results = task_predictions(serialize_predictions(output, self.version), untrained=self.untrained)
        if len(results) != len(tasks):
            raise PrelabelError(f"the model returned {len(results)} predictions for {len(tasks)} tasks")
        return results

    def _timed_reads(self, pages: Iterator[tuple[list[dict], int | None]]) -> Iterator[tuple[list[dict], int | None]]:
        while True:
            started = time.monotonic()
            item = next(pages, None)
            self.progress.read_seconds += time.monotonic() - started
            if item is None:
                return
            yield item

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def run(self) -> dict:
        req, project = self.request, int(self.request.project)
        saved = self._checkpoint()
        resume_after = int(saved.get("last_task_id") or 0) if saved else None
        resumed_since = float(saved.get("started_at") or 0) if saved else None
        self.started_at = resumed_since if resumed_since is not None else time.time()
        self.progress.resumed_after = resume_after
        last_id = resume_after or 0
        pending: list[tuple[list[dict], int, Future]] = []
        url = getattr(self.client, "url", "")

        def flush(limit: int) -> None:
            nonlocal last_id
            while len(pending) > limit:
                batch, batch_last, future = pending.pop(0)
                records = prediction_records(batch, future.result(), self.version)
                started = time.monotonic()
                self.progress.written += self.client.import_predictions(project, records)
                self.progress.write_seconds += time.monotonic() - started
                self.progress.done += len(batch)
                last_id = max(last_id, batch_last)
                self._save(last_id)
                self._report()

        def handle(tasks: list[dict]) -> None:
            """One batch: predict what needs it (`max_concurrent` at once), write in order, checkpoint."""
            nonlocal last_id
            todo = []
            for task in tasks:
                if resume_after is not None and int(task["id"]) <= resume_after:
                    self.progress.skipped += 1
                    self.progress.done += 1
                elif needs_prediction(task, req.mode, self.version, resumed_since):
                    todo.append(task)
                else:
                    self.progress.skipped += 1
                    self.progress.done += 1
            batch_last = max(int(t["id"]) for t in tasks)
            if todo:
                self.progress.predicted += len(todo)
                pending.append((todo, batch_last, pool.submit(self._predict, todo)))
                flush(req.max_concurrent - 1)
            else:
                flush(0)
                last_id = max(last_id, batch_last)
                self._save(last_id)
                self._report()

        # Label Studio's task list costs it 3-5x less without annotations and predictions (`task_only`): read
        # that way while it decides every task (e.g. nothing predicted yet), in full as soon as it cannot.
        light_decides = req.mode == "all" and resumed_since is None  # every task gets one: no need to look
        pages = self.client.iter_task_pages(
            project,
            max(req.batch_size, READ_PAGE_SIZE),
            fields="task_only",
            needs_all=None
            if light_decides
            else lambda tasks: not _decided_without_predictions(tasks, resume_after or 0),
        )
        try:
            with ThreadPoolExecutor(max_workers=req.max_concurrent, thread_name_prefix="lsml-prelabel") as pool:
                for page, total in self._timed_reads(pages):
                    self.progress.total = int(total if total is not None else self.progress.total + len(page))
                    for start in range(0, len(page), req.batch_size):
                        handle(page[start : start + req.batch_size])
                flush(0)
        except LabelStudioError as exc:
            raise _label_studio_failure(exc, req.project, url) from None
        self._save(last_id, status="finished")
        self._report()
        return self.progress.to_dict()


def prepare(
    model_ref: ModelRef,
    request: PrelabelRequest,
    settings: Settings,
    *,
    ls_url: str | None = None,
    api_key: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    slots: Any = None,
    state: State | None = None,
    models: Callable[[str, str | None], Any] | None = None,
) -> Prelabeler:
    """Load the model on the requested (or current) version and connect to Label Studio.

    Label Studio's URL: `ls_url`, else what `/setup` stored for the project, else
    LABEL_STUDIO_URL. The token: the first of `api_key` (bound to `ls_url`), the
    `/setup` token (bound to its hostname) and LABEL_STUDIO_API_KEY (bound to
    LABEL_STUDIO_URL) whose origin is the URL's; none otherwise (`lsml.labelstudio.connect`).
    `state`: where the checkpoint goes (default: the settings' state; an RQ job
    passes one that rides out a Redis restart).
    """
    request.validated()
    store, state = make_store(settings), state if state is not None else make_state(settings)
    project = request.project
    version: ModelVersion | None
    if request.version is not None:
        try:
            version = store.find(project, request.version)
        except KeyError as exc:
            raise PrelabelError(str(exc.args[0])) from None
    else:
        version = served_version(store, settings, project)
    if version is not None:
        verify_version(version.path, version.name)
    cls = load_model_class(model_ref, settings.backend_dir)

    def model_for(label_config: str | None) -> Any:
        # the served version through the server's bounded cache (`models`, shared with /predict); another
        # version (or no cache: the CLI, an RQ worker) gets an instance of its own, held by this run only
        if models is not None and request.version is None:
            return models(project, label_config)
        return build_model(cls, project, label_config, BuildContext(settings, state, version))

    label_config = state.get(project, "label_config")
    probe = model_for(label_config) if label_config else None
    stored = probe.label_studio_credential() if probe else None
    url = ls_url or (stored.url if stored else None) or settings.label_studio_url
    if not url:
        raise PrelabelError("Label Studio's URL is unknown: pass --ls-url or set LABEL_STUDIO_URL")
    # Each token goes only to its own URL's origin (connect): the configured key never to a /setup hostname.
    candidates = [Credential(ls_url, api_key), *([stored] if stored else []), credentials.configured(settings)]
    client = connect(url, *candidates, media_policy=credentials.media_policy(settings, stored))
    if probe is None:  # never set up by Label Studio: read the label config from the project
        try:
            label_config = client.project(int(project)).get("label_config")
        except LabelStudioError as exc:
            raise _label_studio_failure(exc, project, url) from None
        state.set(project, "label_config", label_config)
        probe = model_for(label_config)
    return Prelabeler(probe, client, request, state, on_progress, slots)


def run_prelabel(model_ref: ModelRef, request: PrelabelRequest | dict, settings: Settings, **kwargs: Any) -> dict:
    """The job function: prepare and run; returns the final progress dict."""
    if isinstance(request, dict):
        request = PrelabelRequest.from_dict(request)
    return prepare(model_ref, request, settings, **kwargs).run()
