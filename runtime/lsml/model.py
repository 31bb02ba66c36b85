"""`LabelStudioMLBase`: the class users subclass, compatible with label-studio-ml-backend's.

A model written for label-studio-ml-backend runs here after changing its
import. What differs is *where things come from*: lsml builds one instance
per (process, project) and reuses it, `model_version` is the name of the
store version the instance was loaded from (`"v3"`), and `fit` writes its
artifacts to `self.output_dir`, which becomes the next version when `fit`
returns (anything but `False`) without raising. `setup()` loads artifacts
from `self.version_dir`.

The loader and the training job pass the store version, state and settings
through a context variable rather than constructor arguments, so a subclass
with its own `__init__(self, project_id=None, label_config=None)` (or
`**kwargs`) works unchanged.
"""

from __future__ import annotations

import contextvars
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsml import credentials, local_files, sdk, setting_names
from lsml.credentials import Credential
from lsml.evaluation.split import is_held_out
from lsml.label_config import LabelInterface, parse_config_cached
from lsml.response import ModelResponse
from lsml.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from lsml.labelstudio import LabelStudioClient
    from lsml.state import State
    from lsml.store import ModelVersion

logger = logging.getLogger(__name__)

DEFAULT_PROJECT = "default"
# What a project may be called: a key, or Label Studio's "<id>.<created_at>" (created_at: a unix
# time, possibly with a fraction). One home for the rule: `project_key` enforces it and
# lsml.server.openapi publishes the same bounds, so the spec and the server agree.
PROJECT_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}(\.[0-9.]{0,32})?$"
# Label Studio's ids are database integers: a numeric id must fit a signed 64-bit integer
# (`1e300` parses as an integral float, and 301 digits make no directory name).
MAX_PROJECT_ID = 2**63 - 1
_PROJECT_NAME = re.compile(PROJECT_NAME_PATTERN)


def project_key(value: Any, field: str = "project") -> str:
    """The key lsml files a project under.

    Label Studio names a project ``"<id>.<created_at>"`` in /setup and
    /predict, ``{"id": <id>, ...}`` in webhooks, and a bare id elsewhere; all
    give ``"<id>"``. No project gives ``"default"``. Anything else raises
    ValueError naming `field`, before the value reaches a path, a state row or
    a background build: the key becomes a directory name.
    """
    if value is None or value == "":
        return DEFAULT_PROJECT
    if isinstance(value, dict):
        if "id" not in value:
            raise ValueError(f"'{field}' object has no 'id'")
        return _id_key(value["id"], f"{field}.id")
    return _id_key(value, field)


def _id_key(value: Any, field: str) -> str:
    if isinstance(value, bool):
        raise ValueError(f"'{field}' must be a project id, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        if not 0 <= value <= MAX_PROJECT_ID:  # compared as a float: int(1e300) is not even built
            raise ValueError(f"'{field}' must be an id between 0 and {MAX_PROJECT_ID}, got {value!r}")
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value <= MAX_PROJECT_ID:
            raise ValueError(
                f"'{field}' must be an id between 0 and {MAX_PROJECT_ID}, got a number of {value.bit_length()} bits"
            )
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"'{field}' must be a string, an integer or an object with 'id', got {type(value).__name__}")
    if not _PROJECT_NAME.fullmatch(value):
        raise ValueError(
            f"invalid '{field}' {value[:80]!r}: expected '<id>' or '<id>.<created_at>' "
            "(at most 64 letters, digits, '_' or '-' before the dot)"
        )
    return value.split(".", 1)[0]


@dataclass
class BuildContext:
    """What the loader or the training job hands to a model while it is constructed."""

    settings: Settings
    state: State
    version: ModelVersion | None = None
    output_dir: Path | None = None
    #: whether the model's `use_label_config` writes the config to the project's state. The loader says no: it
    #: records the config a request brings itself, and a rebuild (a new version published) is for the config the
    #: process last saw, which may be older than another process' (written back, it undid the newer one).
    records_label_config: bool = True


_CONTEXT: contextvars.ContextVar[BuildContext | None] = contextvars.ContextVar("lsml_build_context", default=None)


def build_model(cls: type, project: str, label_config: str | None, context: BuildContext) -> LabelStudioMLBase:
    """Construct `cls` for `project` inside `context` (store version, state, settings)."""
    token = _CONTEXT.set(context)
    try:
        return cls(project_id=project, label_config=label_config)
    finally:
        _CONTEXT.reset(token)


def _default_context() -> BuildContext:
    """Settings from the environment; state on disk only when MODEL_DIR, LSML_BACKEND_DIR or REDIS_URL says where.

    Without them state is kept in memory, so a model built by hand never litters the cwd.
    """
    from lsml.state import MemoryState, make_state

    settings = Settings.from_env()
    configured = any(
        os.environ.get(name)
        for name in (setting_names.MODEL_DIR, setting_names.LSML_BACKEND_DIR, setting_names.REDIS_URL)
    )
    return BuildContext(settings=settings, state=make_state(settings) if configured else MemoryState())


_TASK_DATA: Any = object()  # preload_task_data's default: the task's data


class LabelStudioMLBase:
    """Base class of a model. Override `setup`, `predict` and `fit`."""

    INITIAL_MODEL_VERSION = "0.0.1"

    TRAIN_EVENTS = (
        "ANNOTATION_CREATED",
        "ANNOTATION_UPDATED",
        "ANNOTATION_DELETED",
        "ANNOTATIONS_DELETED",
        "START_TRAINING",
    )

    #: False: this model sees every annotated task and no version is scored on held-out ones
    #: (`LSML_HOLDOUT_FRACTION`): e.g. a model that evaluates itself some other way in `evaluate`.
    HOLD_OUT: bool = True

    def __init__(self, project_id: str | None = None, label_config: str | None = None, **kwargs: Any):
        ctx = _CONTEXT.get()
        if ctx is None:  # built by hand (a script, a notebook, a test), not by the loader or a job
            ctx = _default_context()
        self.project_id: str = project_key(project_id)
        self.settings: Settings = ctx.settings
        self._state = ctx.state
        self.version: ModelVersion | None = ctx.version
        self.version_dir: Path | None = ctx.version.path if ctx.version is not None else None
        self.output_dir: Path | None = ctx.output_dir
        self._records_label_config = ctx.records_label_config
        # the model's own version name (`self.set("model_version", ...)`), remembered per project
        self._model_version_override: str | None = _own_version(self._state, self.project_id)
        self._label_studio_client: LabelStudioClient | None = None
        self._label_config: str | None = None
        self._parsed_label_config: dict = {}
        self.label_interface: Any = LabelInterface(None, {})
        if label_config is None:
            label_config = self._state.get(self.project_id, "label_config")
        if label_config is not None:
            self.use_label_config(label_config)
        else:
            logger.warning("project %s: no label config yet", self.project_id)
        self.setup()

    # ---- lifecycle hooks (override) -----------------------------------
    def setup(self) -> None:
        """Load what predict needs (e.g. artifacts from `self.version_dir`). Runs once per instance."""

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs: Any) -> list[dict] | ModelResponse:
        """One prediction per task, in task order: dicts `{"result", "score", "model_version"}` or a ModelResponse."""
        raise NotImplementedError(f"{type(self).__name__} does not implement predict()")

    def fit(self, event: str, data: dict, **kwargs: Any) -> Any:
        """Train on `event` (`data` is the webhook payload without "action").

        Write artifacts to `self.output_dir`; returning anything but False publishes them
        as the next model version. The base class trains nothing.
        """
        return False

    def evaluate(self, tasks: list[dict]) -> dict[str, float]:
        """Scores of this version on `tasks` (held-out annotated tasks): `{metric: value}`.

        Runs after `fit`, on a fresh instance built on the new version. The
        default predicts the tasks and compares with their newest annotations by
        control type (`lsml.evaluation.scoring`); override it for anything else.
        """
        from lsml.evaluation.scoring import score_predictions

        predictions = self.predict(tasks)
        if isinstance(predictions, ModelResponse):
            predictions = list(predictions.predictions)
        return score_predictions(self.label_config, tasks, list(predictions or []))

    def process_event(self, event: str, data: dict, job_id: Any = None, additional_params: dict | None = None) -> Any:
        """The reference's entry point for events: `fit` for TRAIN_EVENTS, nothing otherwise."""
        if event in self.TRAIN_EVENTS:
            return self.fit(event, data, job_id=job_id, **(additional_params or {}))
        return None

    # ---- label config --------------------------------------------------
    def use_label_config(self, label_config: str) -> None:
        """Adopt a label config: parse it once and remember it for the project.

        `self.label_interface` (label-studio-sdk's `LabelInterface` with the `lsml[sdk]` extra,
        else lsml's stand-in: `lsml.sdk`) is built here, once, not on every predict.
        """
        self._parsed_label_config = parse_config_cached(label_config)
        self._label_config = label_config
        self.label_interface = sdk.make_label_interface(label_config, self._parsed_label_config)
        if not getattr(self, "_records_label_config", True):
            return
        try:
            if self._state.get(self.project_id, "label_config") != label_config:
                self._state.set(self.project_id, "label_config", label_config)
        except Exception:  # state is a convenience here, never fatal
            logger.warning("project %s: could not remember the label config", self.project_id, exc_info=True)

    @property
    def label_config(self) -> str | None:
        return self._label_config

    @property
    def parsed_label_config(self) -> dict:
        return self._parsed_label_config

    def get_first_tag_occurence(
        self,
        control_type: str | tuple,
        object_type: str | tuple,
        name_filter: Callable | None = None,
        to_name_filter: Callable | None = None,
    ) -> tuple[str, str, str]:
        """(from_name, to_name, value) of the first `control_type` tag bound to an `object_type` tag."""
        return self.label_interface.get_first_tag_occurence(control_type, object_type, name_filter, to_name_filter)

    def build_label_map(self, tag_name: str, names: list[str]) -> dict[str, str]:
        """Map the model's label names to the config's labels (`predicted_values`, exact, then case-insensitive)."""
        attrs = self._parsed_label_config.get(tag_name, {}).get("labels_attrs", {})
        lower = {n.lower(): n for n in names}
        mapping: dict[str, str] = {}
        for ls_label, attr in attrs.items():
            matched = False
            for value in (attr.get("predicted_values") or "").split(","):
                value = value.strip()
                if value and value in names:
                    mapping[value] = ls_label
                    matched = True
            if not matched:
                if ls_label in names:
                    mapping[ls_label] = ls_label
                elif ls_label.lower() in lower:
                    mapping[lower[ls_label.lower()]] = ls_label
        return mapping

    # ---- per-project state --------------------------------------------
    def get(self, key: str) -> Any:
        """A per-project value; `"model_version"` is the version served (`model_version`), what predictions carry."""
        if key == "model_version":
            return self.model_version
        return self._state.get(self.project_id, key)

    def set(self, key: str, value: Any) -> None:
        """Remember a per-project value (any JSON value; the reference takes strings only)."""
        if key == "model_version":
            value = str(value)
            self._model_version_override = value
        self._state.set(self.project_id, key, value)

    def has(self, key: str) -> bool:
        return self._state.has(self.project_id, key)

    @property
    def extra_params(self) -> dict:
        params = self._state.get(self.project_id, "extra_params")
        if isinstance(params, str):
            try:
                params = json.loads(params)
            except ValueError:
                return {}
        return params if isinstance(params, dict) else {}

    def set_extra_params(self, extra_params: Any) -> None:
        self._state.set(self.project_id, "extra_params", extra_params)

    # ---- versions --------------------------------------------------------
    # Two meanings of "model version" meet here (docs/migrating-from-label-studio-ml-backend.md,
    # "Model versions"): lsml's store versions (`v1`, `v2`, ...: one per published `fit`, what
    # Label Studio is told, so it fetches fresh predictions after each training) and the model's
    # own name (`self.set("model_version", "MyModel-v0.0.1")`, `bump_model_version()`), which
    # label-studio-ml-backend serves as is. The own name is served until the first version is
    # published, kept per project in state, and recorded in each published version's metadata
    # (`own_version`), where `/versions` and `label-studio-ml versions` show it.
    @property
    def model_version(self) -> str:
        """The store version this instance was loaded from, else the model's own, else INITIAL_MODEL_VERSION."""
        if self.version is not None:
            return self.version.name
        return self._model_version_override or self.INITIAL_MODEL_VERSION

    @property
    def own_model_version(self) -> str | None:
        """The name the model gave its version (`self.set("model_version", ...)`), or None."""
        return self._model_version_override

    def bump_model_version(self) -> str:
        """Bump the model's own version name (the minor part of a trailing `X.Y.Z`) and return it.

        label-studio-ml-backend's meant the same and bumps nothing (semver's `bump_minor`
        returns a new object it drops). Publishing still numbers the store version itself:
        the bumped name is recorded in the version's metadata (`own_version`).
        """
        bumped = bumped_version_name(self._model_version_override or self.INITIAL_MODEL_VERSION)
        self.set("model_version", bumped)
        return bumped

    # ---- Label Studio access --------------------------------------------
    def label_studio_credential(self) -> Credential:
        """This project's Label Studio URL and the token that may go to it (lsml.credentials says which)."""
        return credentials.resolve(self.settings, self._state.get(self.project_id, credentials.STATE_KEY))

    def get_label_studio_url(self) -> str | None:
        """LABEL_STUDIO_URL when set, else the hostname /setup sent for this project."""
        return self.label_studio_credential().url

    def get_label_studio_access_token(self) -> str | None:
        """The token for `get_label_studio_url()`'s origin only. Never log it.

        LABEL_STUDIO_API_KEY wins when LABEL_STUDIO_URL is configured: Label Studio 1.23's
        /setup always sends the project creator's *legacy* token, which is refused (401)
        in organisations where legacy tokens are off (the 1.23 default), while a
        configured personal access token works everywhere.
        """
        return self.label_studio_credential().token

    def label_studio_client(self) -> LabelStudioClient:
        """A `lsml.labelstudio.LabelStudioClient` for this project's Label Studio (cached)."""
        if self._label_studio_client is None:
            credential = self.label_studio_credential()
            if not credential.url:
                raise RuntimeError(
                    "Label Studio's URL is unknown: connect the backend from Label Studio (its /setup call "
                    "sends it) or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
                )
            from lsml.labelstudio import connect

            self._label_studio_client = connect(
                credential.url, credential, media_policy=credentials.media_policy(self.settings, credential)
            )
        return self._label_studio_client

    @property
    def holdout_fraction(self) -> float:
        """The share of tasks held out of fits for this model (0 when it opted out with `HOLD_OUT = False`)."""
        return float(self.settings.holdout_fraction) if self.HOLD_OUT else 0.0

    def fetch_annotated_tasks(self, project: Any = None, include_cancelled: bool = False) -> Iterator[dict]:
        """Tasks of the project that have annotations, from Label Studio's API (cancelled ones dropped).

        Held-out tasks (`LSML_HOLDOUT_FRACTION`) are left out: they score versions, a fit never sees them."""
        for task in self._annotated_tasks(project, include_cancelled):
            if not is_held_out(self.project_id, task.get("id"), self.holdout_fraction):
                yield task

    def fetch_held_out_tasks(self, project: Any = None) -> Iterator[dict]:
        """The annotated tasks no fit sees, on which each new version is scored."""
        for task in self._annotated_tasks(project, False):
            if is_held_out(self.project_id, task.get("id"), self.holdout_fraction):
                yield task

    def _annotated_tasks(self, project: Any, include_cancelled: bool) -> Iterator[dict]:
        client = self.label_studio_client()
        project_id = project_key(project) if project is not None else self.project_id
        for task in client.iter_tasks(int(project_id) if project_id.isdigit() else project_id):
            annotations = [a for a in task.get("annotations") or [] if include_cancelled or not a.get("was_cancelled")]
            if annotations:
                task = dict(task)
                task["annotations"] = annotations
                yield task

    def get_local_path(
        self,
        url: str,
        project_dir: str | None = None,
        ls_host: str | None = None,
        ls_access_token: str | None = None,
        task_id: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> str:
        """A local file for a task's media URL, downloaded (and cached) from Label Studio when needed.

        A local path or `file://` URL is read only under LSML_LOCAL_FILES_ROOTS
        (`lsml.local_files.LocalFileRefused` otherwise): task data is untrusted.

        Label Studio's token goes only to Label Studio's origin: an absolute URL on another
        host is fetched without it (lsml.labelstudio.media), and so is a redirect elsewhere.
        Every connection obeys the media address policy (`lsml.credentials.media_policy`):
        no link-local or metadata address, private ones only as LSML_MEDIA_ALLOW_PRIVATE says.
        """
        if not isinstance(url, str):
            raise TypeError("url must be a string")
        url = _uploaded_path(url)
        if url.startswith("file://"):
            return str(local_files.confined(local_files.file_url_path(url), self.settings.local_files_roots))
        if not url.startswith(("http://", "https://", "/data/")) and os.path.exists(url):
            return str(local_files.confined(url, self.settings.local_files_roots))
        credential = self._media_credential(ls_host, ls_access_token)
        host = (credential.url or "").rstrip("/")
        absolute = url.startswith(("http://", "https://"))
        if not absolute and not host:
            raise RuntimeError(
                f"cannot fetch {url!r}: Label Studio's URL is unknown: connect the backend from Label Studio "
                "(its /setup call sends it) or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
            )
        full = url if absolute else host + "/" + url.lstrip("/")
        cache_dir = Path(project_dir) if project_dir else Path(self.settings.model_dir) / ".lsml" / "media"
        if ls_host is None and ls_access_token is None and host:
            client = self.label_studio_client()
        else:
            from lsml.labelstudio import connect

            client = connect(host or full, credential, media_policy=credentials.media_policy(self.settings, credential))
        return str(
            client.download(
                full, cache_dir, max_bytes=self.settings.media_max_bytes, timeout=self.settings.media_timeout
            )
        )

    def _media_credential(self, ls_host: str | None, ls_access_token: str | None) -> Credential:
        """The project's credential, or the one a caller passed: a host without a token gets no foreign token."""
        own = self.label_studio_credential()
        if ls_host:
            return Credential(ls_host, ls_access_token if ls_access_token is not None else own.token_for(ls_host))
        if ls_access_token is not None:
            return Credential(own.url, ls_access_token)
        return own

    def preload_task_data(self, task: dict, value: Any = _TASK_DATA, read_file: bool = True) -> Any:
        """Replace media URLs in `value` (default: task["data"]) by local files (or their text).

        An explicit `None` stays None, as in label-studio-ml-backend (`preload_task_data(task,
        task["data"].get(key))` for a missing key). Unlike there, a string is a file reference only
        by its form (a URL, a storage URI, Label Studio's `/data/` and `upload/` paths), never
        because a file of that name exists on the server: task data is untrusted text.
        """
        if value is _TASK_DATA:
            value = task.get("data")
        if isinstance(value, dict):
            return {k: self.preload_task_data(task, v, read_file) for k, v in value.items()}
        if isinstance(value, list):
            return [self.preload_task_data(task, v, read_file) for v in value]
        if isinstance(value, str) and needs_preload(value):
            path = self.get_local_path(url=value, task_id=task.get("id"))
            if not read_file:
                return path
            with open(path, encoding="utf-8") as f:
                return f.read()
        return value


def needs_preload(value: str) -> bool:
    """True when a task data string names a file to fetch (by its form only: a URL, a storage URI, a Label Studio path)."""
    return value.startswith(
        ("http://", "https://", "s3://", "gs://", "azure-blob://", "/data/", "file://", "upload/", "/upload/")
    )


def _uploaded_path(value: str) -> str:
    """Label Studio serves `upload/x` and `/upload/x` (an uploaded file's path in older tasks) at `/data/upload/x`."""
    if value.startswith(("upload/", "/upload/")):
        return "/data/" + value.lstrip("/")
    return value


def _own_version(state: State, project: str) -> str | None:
    """The model's own version name an earlier instance set for `project` (None when unknown or unreadable)."""
    try:
        named = state.get(project, "model_version")
    except Exception:  # noqa: BLE001 - state (Redis) down: the model's setup() may name it again
        return None
    return str(named) if named else None


_TRAILING_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)$")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def bumped_version_name(name: str) -> str:
    """`"0.0.1"` -> `"0.1.0"`, `"MyModel-v0.0.1"` -> `"MyModel-v0.1.0"`, `"v7"` -> `"v8"`, `"yolo"` -> `"yolo-1"`."""
    semver = _TRAILING_SEMVER.search(name)
    if semver:
        major, minor = semver.group(1), int(semver.group(2)) + 1
        return f"{name[: semver.start()]}{major}.{minor}.0"
    number = _TRAILING_NUMBER.search(name)
    if number:
        return f"{name[: number.start()]}{int(number.group(1)) + 1}"
    return f"{name}-1"


# ---- model references ------------------------------------------------------
ModelRef = str | type


def model_ref_string(ref: ModelRef) -> str:
    """`"module:Class"` for a class or a ref string (what crosses process boundaries)."""
    if isinstance(ref, str):
        return ref
    return f"{ref.__module__}:{ref.__qualname__}"


def model_class_name(ref: ModelRef) -> str:
    if isinstance(ref, str):
        return re.split(r"[:.]", ref)[-1]
    return ref.__name__


def load_model_class(ref: ModelRef, backend_dir: str | Path | None = None) -> type[Any]:
    """Import `"module:Class"` (with `backend_dir` first on sys.path), or return a class as is."""
    if isinstance(ref, type):
        return ref
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"model reference must be 'module:Class', got {ref!r}")
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
    else:
        module_name, _, attr = ref.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"model reference must be 'module:Class', got {ref!r}")
    if backend_dir is not None:
        path = str(Path(backend_dir).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"module {module_name!r} has no class {attr!r}") from None
    if not isinstance(obj, type):
        raise ImportError(f"{ref!r} is not a class")
    return obj
