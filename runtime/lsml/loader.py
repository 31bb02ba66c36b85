"""ModelRegistry: one model instance per (process, project), built off the request path, hot-reloaded.

- The model class is imported once, in a background thread started by
  `start()`; `/readyz` reports when that is done.
- `setup(project, label_config)` (what `/setup` calls) remembers the label
  config, schedules a background build when there is no instance yet (or the
  config changed) and returns at once.
- `get(project, label_config)` (what `/predict` calls) returns the instance;
  when none is ready yet it waits (bounded by `LSML_MODEL_LOAD_TIMEOUT`,
  then `ModelNotReady`).
- At most `LSML_MAX_LOADED_MODELS` projects keep an instance per process;
  the least recently used one beyond that is evicted (logged, counted in
  `lsml_model_evictions_total`) and rebuilt from the store when asked again.
- Hot reload: at most every `LSML_RELOAD_INTERVAL` seconds a request reads
  the store's `current` pointer (one `readlink`, microseconds). When it
  moved, a new instance is built in the background and swapped in with one
  attribute assignment; the old instance serves until then. Every gunicorn
  worker does this on its own, so any number of processes sharing MODEL_DIR
  converge on the published version.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lsml.errors import LsmlError
from lsml.integrity import VersionIntegrityError, verify_version
from lsml.label_config import parse_config_cached
from lsml.model import BuildContext, LabelStudioMLBase, ModelRef, build_model, load_model_class, model_class_name
from lsml.settings import Settings
from lsml.state import State, make_state
from lsml.store import ModelStore, make_store
from lsml.versions import configured_pin, served_version

logger = logging.getLogger(__name__)

_RETRY_AFTER_FAILURE = 1.0
#: Seconds before the reload check builds a version whose build failed again. Why again at all: a build fails for
#: reasons that pass (a GPU out of memory while the old instance still holds it, Label Studio down in `setup()`,
#: a file fixed by hand), and without a retry that process would serve the old version until another was
#: published, even when the failed one is activated again. Why not at every check: a tampered version would be
#: hashed and logged every `LSML_RELOAD_INTERVAL`.
_RETRY_FAILED_VERSION = 60.0
_START_LOCK = threading.Lock()  # held only inside ModelRegistry.start, never across a fork by a request


class ModelNotReady(LsmlError):
    """The model is still loading after the wait bound (HTTP 503)."""


class ModelLoadFailed(LsmlError):
    """Building the model raised; the message names the exception type only (HTTP 503)."""


class UnknownProject(LsmlError):
    """No label config is known for this project: Label Studio never called /setup for it (HTTP 404)."""


@dataclass
class _Entry:
    project: str
    label_config: str | None
    instance: LabelStudioMLBase | None = None
    pointer: str | None = None
    loading: bool = False
    ready: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    failed_at: float = 0.0
    failed_pointer: str | None = None
    last_check: float = 0.0


class ModelRegistry:
    def __init__(
        self,
        model_ref: ModelRef,
        settings: Settings,
        store: ModelStore | None = None,
        state: State | None = None,
        on_loaded: Callable[[str, str, float], None] | None = None,
        on_evicted: Callable[[str], None] | None = None,
    ) -> None:
        self.model_ref = model_ref
        self.settings = settings
        self.store = store if store is not None else make_store(settings)
        self.state = state if state is not None else make_state(settings)
        self.on_loaded = on_loaded
        self.on_evicted = on_evicted
        self.class_name = model_class_name(model_ref)
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._remembered: dict[tuple[str, str], Any] = {}
        self._cls: type[Any] | None = model_ref if isinstance(model_ref, type) else None
        self._cls_error: str | None = None
        self._cls_ready = threading.Event()
        self._started_pid: int | None = None  # the process that started the threads (see start)
        self._import_thread: threading.Thread | None = None
        if self._cls is not None:
            self._cls_ready.set()
        os.register_at_fork(before=partial(_finish_import_before_fork, weakref.ref(self)))

    # ---- model class ----------------------------------------------------
    def start(self) -> None:
        """Import the model class in the background and start the reload watcher (once per process).

        A class given as an object (`create_app(MyModel)`) needs no import, but still the watcher.

        Once per *process*, and the app calls this before every request: `gunicorn --preload` (the
        reference SDK's Dockerfile CMD) builds the app in the master and then forks the workers,
        and threads do not survive a fork. A worker starts its own watcher on its first request;
        the import is whole by then (`finish_import`, run before every fork).
        """
        pid = os.getpid()
        if self._started_pid == pid:
            return
        with _START_LOCK:
            if self._started_pid == pid:
                return
            if self._started_pid is not None:
                self._forget_threads_of_parent()
            self._started_pid = pid
        if not self._cls_ready.is_set():
            self._import_thread = threading.Thread(target=self._import_class, name="lsml-import", daemon=True)
            self._import_thread.start()
        threading.Thread(target=self._watch, name="lsml-reload", daemon=True).start()

    def finish_import(self) -> None:
        """Wait (bounded by LSML_MODEL_LOAD_TIMEOUT) for the model class's import under way in this process.

        Run before every fork (`os.register_at_fork`). Why: a fork copies a module that another
        thread is still executing half-initialised, and no thread of the child will ever finish
        it; the child's own import then finds the half module in `sys.modules` ("module 'model'
        has no class ..."). Waiting gives `gunicorn --preload` what it is for: the model code
        imported once, in the master, shared by the workers.
        """
        thread = self._import_thread
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join(self.settings.model_load_timeout)

    def _forget_threads_of_parent(self) -> None:
        """In a forked child: fresh locks and events (a parent's thread may have held one), and no
        build the parent had under way (its thread is gone; the next request schedules one)."""
        self._lock = threading.Lock()
        self._import_thread = None
        if not self._cls_ready.is_set():  # the parent's import outlived LSML_MODEL_LOAD_TIMEOUT: try again here
            self._cls_ready = threading.Event()
        for project, entry in list(self._entries.items()):
            if entry.loading:
                del self._entries[project]

    def _watch(self) -> None:
        """Check `current` of every loaded project in the background, so a process reloads a version
        a worker published before any request asks (a request still checks too)."""
        while True:
            time.sleep(max(self.settings.reload_interval, 0.1))
            for entry in list(self._entries.values()):
                if entry.instance is not None:
                    try:
                        self._maybe_reload(entry)
                    except Exception:  # noqa: BLE001 - a store hiccup must not end the watcher
                        logger.debug("reload check failed for project %s", entry.project, exc_info=True)

    def _import_class(self) -> None:
        try:
            self._cls = load_model_class(self.model_ref, self.settings.backend_dir)
            self._cls_error = None
        except BaseException as exc:  # noqa: BLE001 - reported through /readyz
            self._cls_error = f"cannot import model {self.model_ref!r}: {type(exc).__name__}: {exc}"
            logger.error("%s", self._cls_error, exc_info=True)
        finally:
            self._cls_ready.set()

    @property
    def class_ready(self) -> bool:
        return self._cls_ready.is_set() and self._cls is not None

    @property
    def class_error(self) -> str | None:
        return self._cls_error

    def model_class(self, timeout: float | None = None) -> type[Any]:
        self.start()
        if not self._cls_ready.wait(timeout):
            raise ModelNotReady("the model class is still being imported")
        if self._cls is None:
            raise ModelLoadFailed(self._cls_error or "the model class could not be imported")
        return self._cls

    def model_class_if_ready(self) -> type[Any] | None:
        return self._cls if self._cls_ready.is_set() else None

    # ---- per-project memory ------------------------------------------------
    def remember(self, project: str, key: str, value: Any) -> None:
        """Write a per-project value to state, skipping the write when this process already wrote it."""
        marker = (project, key)
        if self._remembered.get(marker, _UNSET) == value:
            return
        try:
            if self.state.get(project, key) != value:
                self.state.set(project, key, value)
        except Exception as exc:  # noqa: BLE001 - state (Redis) down: serve anyway, remember next time
            logger.warning("project %s: could not remember %s (%s)", project, key, type(exc).__name__)
            return
        self._remembered[marker] = value

    def _known_label_config(self, project: str) -> str | None:
        return self.state.get(project, "label_config")

    # ---- loading --------------------------------------------------------------
    def _schedule(self, entry: _Entry) -> None:
        """Start a background build for `entry` unless one is running. Call with self._lock held."""
        if entry.loading:
            return
        entry.loading = True
        if entry.instance is None:
            entry.ready.clear()
        label_config = entry.label_config
        threading.Thread(
            target=self._build, args=(entry, label_config), name=f"lsml-load-{entry.project}", daemon=True
        ).start()

    def _build(self, entry: _Entry, label_config: str | None) -> None:
        started = time.perf_counter()
        project = entry.project
        instance = None
        pointer = None
        try:
            cls = self.model_class(timeout=self.settings.model_load_timeout)
            pointer = self._pointer(project)
            version = served_version(self.store, self.settings, project)
            if version is not None:
                verify_version(version.path, version.name)  # before setup() unpickles anything
            context = BuildContext(self.settings, self.state, version, records_label_config=False)
            instance = build_model(cls, project, label_config, context)
        except VersionIntegrityError as exc:
            self._build_failed(entry, pointer, str(exc), "project %s: %s", exc)
            return
        except BaseException as exc:  # noqa: BLE001 - surfaced to /predict as 503
            self._build_failed(
                entry,
                pointer,
                f"building the model raised {type(exc).__name__} (see the server log)",
                "project %s: building the model failed (%s)",
                type(exc).__name__,
                exc_info=True,
            )
            return
        elapsed = time.perf_counter() - started
        rebuild = False
        with self._lock:
            entry.loading = False
            if entry.label_config == label_config:
                entry.instance = instance
                entry.pointer = pointer
                entry.failed_pointer = None
                entry.error = None
                entry.last_check = time.monotonic()
                entry.ready.set()
            else:
                rebuild = True  # the label config changed while we built
            if rebuild:
                self._schedule(entry)
        if not rebuild:
            logger.info(
                "project %s: model %s loaded (version %s) in %.3fs",
                project,
                self.class_name,
                instance.model_version,
                elapsed,
            )
            if self.on_loaded is not None:
                try:
                    self.on_loaded(project, instance.model_version, elapsed)
                except Exception:  # pragma: no cover - metrics must never break loading
                    logger.debug("on_loaded callback failed", exc_info=True)

    def _build_failed(
        self, entry: _Entry, pointer: str | None, error: str, message: str, *args: Any, exc_info: bool = False
    ) -> None:
        """Record a failed build. A previous instance keeps serving; the reload check builds the refused pointer
        again only after `_RETRY_FAILED_VERSION` (a new publish at once; a failed first build after
        `_RETRY_AFTER_FAILURE`)."""
        serving = entry.instance
        suffix = f"; still serving {serving.model_version}" if serving is not None else ""
        logger.error(message + suffix, entry.project, *args, exc_info=exc_info)
        with self._lock:
            entry.error = error
            entry.failed_at = time.monotonic()
            entry.failed_pointer = pointer
            entry.loading = False
            entry.ready.set()

    def _entry_for(self, project: str, label_config: str | None) -> _Entry:
        """The entry of `project`, created or re-pointed at a new label config (validated first)."""
        entry = self._entries.get(project)
        if entry is not None and (label_config is None or label_config == entry.label_config):
            self._touch(project)
            return entry
        if label_config is not None:
            parse_config_cached(label_config)  # raises LabelConfigError before anything is remembered
            self.remember(project, "label_config", label_config)
        else:
            label_config = self._known_label_config(project)
            if label_config is None:
                raise UnknownProject(
                    f"project {project!r} is unknown: Label Studio has not called /setup for it "
                    "and the request carries no label_config"
                )
        evicted: list[_Entry] = []
        with self._lock:
            entry = self._entries.get(project)
            if entry is None:
                entry = _Entry(project=project, label_config=label_config)
                self._entries[project] = entry
                evicted = self._evict_beyond_bound()
                self._schedule(entry)
            elif entry.label_config != label_config:
                entry.label_config = label_config
                entry.instance = None  # predictions for the old labels would be wrong
                entry.ready.clear()
                if not entry.loading:  # a build under way notices the change and rebuilds
                    self._schedule(entry)
        self._report_evicted(evicted)
        return entry

    def _touch(self, project: str) -> None:
        """Mark `project` most recently used (one C-level OrderedDict call: atomic under the GIL)."""
        try:
            self._entries.move_to_end(project)
        except KeyError:
            pass

    def _evict_beyond_bound(self) -> list[_Entry]:
        """Drop the least recently used entries beyond LSML_MAX_LOADED_MODELS. Call with self._lock held.

        Why: every project id a request names would otherwise keep a model
        instance in memory for the life of the process. An evicted project is
        rebuilt from the store on its next request.
        """
        evicted = []
        while len(self._entries) > self.settings.max_loaded_models:
            _, entry = self._entries.popitem(last=False)
            evicted.append(entry)
        for entry in evicted:
            for marker in [m for m in self._remembered if m[0] == entry.project]:
                del self._remembered[marker]
        return evicted

    def _report_evicted(self, evicted: list[_Entry]) -> None:
        for entry in evicted:
            version = entry.instance.model_version if entry.instance is not None else None
            logger.info(
                "project %s: model instance (%s) evicted: more than %d projects loaded "
                "(LSML_MAX_LOADED_MODELS); it is rebuilt on its next request",
                entry.project,
                version or "not loaded",
                self.settings.max_loaded_models,
            )
            if self.on_evicted is not None:
                try:
                    self.on_evicted(entry.project)
                except Exception:  # pragma: no cover - metrics must never break serving
                    logger.debug("on_evicted callback failed", exc_info=True)

    def _maybe_reload(self, entry: _Entry) -> None:
        now = time.monotonic()
        if now - entry.last_check < self.settings.reload_interval:
            return
        entry.last_check = now
        if entry.loading:
            return
        pointer = self._pointer(entry.project)
        refused = pointer == entry.failed_pointer and now - entry.failed_at <= _RETRY_FAILED_VERSION
        if pointer != entry.pointer and not refused:
            with self._lock:
                self._schedule(entry)

    def _pointer(self, project: str) -> str | None:
        """What the reload check compares: a configured pin (LSML_PINNED_VERSIONS) stays put when later
        versions are published; otherwise the store's `current` link target."""
        pinned = configured_pin(self.store, self.settings, project)
        return f"pinned:{pinned.name}" if pinned is not None else self.store.pointer(project)

    def _retry_failed_build_if_due(self, entry: _Entry) -> bool:
        """Schedule a new build of a failed entry once _RETRY_AFTER_FAILURE has passed (a model
        file fixed, Label Studio back); True when it did, so callers stop failing fast."""
        if time.monotonic() - entry.failed_at <= _RETRY_AFTER_FAILURE:
            return False
        with self._lock:
            self._schedule(entry)
        return True

    # ---- public -----------------------------------------------------------------
    def setup(self, project: str, label_config: str | None = None) -> str:
        """Remember the config, make sure a build is under way, answer the model version at once."""
        entry = self._entry_for(project, label_config)
        instance = entry.instance
        if instance is not None:
            self._maybe_reload(entry)
            return instance.model_version
        if entry.error and not entry.loading:
            self._retry_failed_build_if_due(entry)
        return self._version_without_instance(project)

    def get(self, project: str, label_config: str | None = None, timeout: float | None = None) -> LabelStudioMLBase:
        """The project's model instance, waiting (bounded) while it is built."""
        entry = self._entries.get(project)
        if (
            entry is not None
            and entry.instance is not None
            and (label_config is None or label_config == entry.label_config)
        ):
            self._touch(project)
            self._maybe_reload(entry)
            return entry.instance
        entry = self._entry_for(project, label_config)
        timeout = self.settings.model_load_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            instance = entry.instance
            if instance is not None:
                return instance
            if entry.error and not entry.loading and not self._retry_failed_build_if_due(entry):
                raise ModelLoadFailed(entry.error)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not entry.ready.wait(remaining):
                raise ModelNotReady(
                    f"the model for project {project!r} is still loading after {timeout:g}s (LSML_MODEL_LOAD_TIMEOUT)"
                )
            if entry.instance is None and entry.error and not entry.loading:
                raise ModelLoadFailed(entry.error)
            if entry.instance is None and not entry.loading and not entry.error:
                continue  # the ready flag belonged to a superseded build
            if entry.instance is None:
                time.sleep(0.005)

    def has_other_label_config(self, project: str, label_config: str) -> bool:
        """True when this process holds a model of `project` built for a different label config."""
        entry = self._entries.get(project)
        return entry is not None and entry.label_config != label_config

    def reload(self, project: str) -> None:
        """Check the store now (e.g. right after this process published a version, or activated one: a version
        whose build failed here is built again then)."""
        entry = self._entries.get(project)
        if entry is None:
            return
        with self._lock:
            entry.last_check = 0.0
            entry.failed_pointer = None
        self._maybe_reload(entry)

    def model_version(self, project: str) -> str:
        """The version the project's instance serves, or would serve once built."""
        entry = self._entries.get(project)
        if entry is not None and entry.instance is not None:
            return entry.instance.model_version
        return self._version_without_instance(project)

    def _version_without_instance(self, project: str) -> str:
        """The store's current version; untrained, the name the model's `setup` gave itself
        (`self.set("model_version", ...)`, kept in state by an earlier build, possibly in another
        process), so /setup and the predictions agree; else INITIAL_MODEL_VERSION."""
        current = served_version(self.store, self.settings, project)
        if current is not None:
            return current.name
        try:
            named = self.state.get(project, "model_version")
        except Exception:  # noqa: BLE001 - state (Redis) down: answer the default
            named = None
        if named:
            return str(named)
        cls = self.model_class_if_ready() or LabelStudioMLBase
        return cls.INITIAL_MODEL_VERSION

    def projects(self) -> list[str]:
        """Projects this process has an entry for (set up, or asked for), loaded or still building."""
        return list(self._entries)

    def loaded(self) -> dict[str, str]:
        """project -> model_version of every instance this process holds."""
        return {p: e.instance.model_version for p, e in list(self._entries.items()) if e.instance is not None}


_UNSET = object()


def _finish_import_before_fork(registry: weakref.ref[ModelRegistry]) -> None:
    """`os.register_at_fork` hook of one registry (held weakly: an app thrown away is not kept alive)."""
    alive = registry()
    if alive is not None:
        alive.finish_import()
