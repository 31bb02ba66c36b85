"""Every environment variable the runtime reads, in one frozen dataclass.

`Settings` is picklable on purpose: a training job sent to another process
(an RQ worker) carries it and rebuilds the store, the state and the model
class from it alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _number(env: Mapping[str, str], name: str, default, minimum, kind: type, noun: str):
    """`kind(env[name])` or `default`; anything unreadable, non-finite or below `minimum` names the variable."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be {noun}, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {raw!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    return _number(env, name, default, minimum, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    return _number(env, name, default, minimum, float, "a number")


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {env.get(name)!r}")


def _pins(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    """`"*=v3,5=v2"` -> (("*", "v3"), ("5", "v2")): a version per project id, `*` for every project."""
    raw = (env.get(name) or "").strip()
    pins: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        project, sep, version = (x.strip() for x in item.partition("="))
        number = version[1:] if version[:1] in ("v", "V") else version
        if not sep or not (project == "*" or project.isdigit()) or not number.isdigit():
            raise ValueError(
                f"{name} must be a comma-separated list of PROJECT=VERSION (PROJECT a project id or *, "
                f"VERSION like v3), got {item!r}"
            )
        pins[project] = f"v{int(number)}"
    return tuple(sorted(pins.items()))


def _str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw


def _paths(env: Mapping[str, str], name: str) -> tuple[Path, ...]:
    """A colon-separated list of directories, resolved (symlinks too, so containment checks compare real paths)."""
    raw = _str(env, name)
    if raw is None:
        return ()
    return tuple(Path(part.strip()).resolve() for part in raw.split(os.pathsep) if part.strip())


#: LSML_HOLDOUT_FRACTION when LSML_QUALITY_GATE is set and it is not: a gate without scores would pass anything.
GATE_HOLDOUT_FRACTION = 0.2


def _credential(env: Mapping[str, str], name: str) -> str | None:
    """A secret's text without surrounding whitespace, or None when blank.

    Why strip: a value from a Kubernetes Secret made with `kubectl create secret --from-file` (or an `.env`
    line) ends in a newline nobody types when they send it, so the server would refuse the right token."""
    raw = env.get(name)
    return raw.strip() or None if raw is not None else None


def setting(
    default: Any,
    env: str,
    doc: str,
    *,
    minimum: float | None = None,
    read: Callable[[Mapping[str, str], str], Any] | None = None,
    aliases: tuple[str, ...] = (),
    shown: str | None = None,
    repr: bool = True,
) -> Any:
    """A dataclass field that names the environment variable it is read from and says what it does.

    Each setting is declared once, here: `from_env` reads every field through `_read` from this declaration
    (the reader follows the default's type; `read` for the others, `minimum` for numbers, `aliases` for the
    reference SDK's older names read when the first is unset), so a name or a default cannot differ between the
    field and the code that reads it. The description lives here too, so that docs/reference/environment.md
    (generated from these fields by hack/docs/reference.py) cannot drift from the code. `shown` replaces the
    default in the docs where the real one is computed (from the backend directory, the model, ...).
    """
    metadata = {"env": env, "doc": doc, "shown": shown, "minimum": minimum, "read": read, "aliases": aliases}
    return dataclasses.field(default=default, repr=repr, metadata=metadata)


def _read(env: Mapping[str, str], field: dataclasses.Field) -> Any:
    """One `setting(...)` field's value from `env`, or its default; a bad value raises naming the variable."""
    meta = field.metadata
    name, default = meta["env"], field.default
    if meta["read"] is not None:
        return meta["read"](env, name)
    if isinstance(default, bool):  # before int: bool is an int
        return _bool(env, name, default)
    if isinstance(default, int):
        return _int(env, name, default, int(meta["minimum"] or 0))
    if isinstance(default, float):
        return _float(env, name, default, float(meta["minimum"] or 0.0))
    for candidate in (name, *meta["aliases"]):
        value = _str(env, candidate)
        if value is not None:
            return value
    return default


def _read_all(cls: type, env: Mapping[str, str]) -> dict[str, Any]:
    return {f.name: _read(env, f) for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with `Settings.from_env()`; override with `.replace(...)`."""

    backend_dir: Path = setting(
        Path("."),
        "LSML_BACKEND_DIR",
        "the backend directory (`start` sets it); the default `MODEL_DIR` and the `sys.path` entry for the model "
        "derive from it",
        read=_str,  # the raw value (None when unset): from_env resolves it, or takes the working directory
        shown="the working directory",
    )
    model: str | None = setting(
        None,
        "LSML_MODEL",
        "`module:Class` of the user model, importable with the backend directory on `sys.path`",
        shown="`_wsgi.py`'s `MODEL`",
    )
    model_dir: Path = setting(
        Path("data/models"),
        "MODEL_DIR",
        "root of the local model store (versions) and of the per-project state (sqlite without Redis)",
        read=_str,  # the raw value (None when unset): from_env resolves it against the backend directory
        shown="`<backend dir>/data/models`",
    )
    redis_url: str | None = setting(
        None,
        "REDIS_URL",
        "set: training runs on RQ workers and per-project state lives in Redis; unset: an embedded runner in the "
        "server process and sqlite state",
    )
    queue_name: str = setting("lsml-training", "LSML_QUEUE", "the RQ queue training and pre-labelling jobs go to")
    basic_auth_user: str | None = setting(
        None,
        "BASIC_AUTH_USER",
        "HTTP Basic auth user on every Label Studio-facing route; set both `BASIC_AUTH_USER` and `BASIC_AUTH_PASS` "
        "or neither (one alone, or a blank password, is a settings error: the server, `start` and the worker "
        "refuse to start)",
    )
    basic_auth_pass: str | None = setting(
        None, "BASIC_AUTH_PASS", "HTTP Basic auth password (see `BASIC_AUTH_USER`); never logged", repr=False
    )
    label_studio_url: str | None = setting(
        None,
        "LABEL_STUDIO_URL",
        "the Label Studio the backend talks to; with it set, a `/setup` naming another origin (scheme, host, "
        "port) is ignored with a warning, and so is its token",
        aliases=("LABEL_STUDIO_HOST",),
    )
    label_studio_api_key: str | None = setting(
        None,
        "LABEL_STUDIO_API_KEY",
        "the Label Studio token (personal access token or legacy token); only ever sent to `LABEL_STUDIO_URL`'s "
        "origin, never logged",
        repr=False,
        aliases=("LABEL_STUDIO_ACCESS_TOKEN",),
    )
    predict_concurrency: int = setting(
        4, "LSML_PREDICT_CONCURRENCY", "`predict` calls running at once in one server process (a semaphore)", minimum=1
    )
    predict_fast_path: bool = setting(
        True,
        "LSML_PREDICT_FAST_PATH",
        "`false`: every `/predict` goes through Flask (by default the common one is served beside it, at less CPU; "
        "`lsml.server.fast_predict`)",
    )
    predict_wait_timeout: float = setting(
        30.0, "LSML_PREDICT_WAIT_TIMEOUT", "seconds a `/predict` waits for a free predict slot, then 503 `busy`"
    )
    predict_timeout: float = setting(
        100.0,
        "LSML_PREDICT_TIMEOUT",
        "seconds one `predict` may run (Label Studio's `ML_TIMEOUT_PREDICT` is 100 s); then 504 `predict_timeout`, "
        "the slot is given back and the thread counted as stuck (`lsml_predict_stuck_threads`)",
        minimum=0.001,
    )
    fit_timeout: float = setting(
        21600.0,
        "LSML_FIT_TIMEOUT",
        "seconds one training may run: the RQ job's timeout (the work horse is killed) and the embedded runner's "
        "deadline (the job fails; the late fit never publishes)",
        minimum=1.0,
    )
    fit_exit_wait: float = setting(
        10.0,
        "LSML_FIT_EXIT_WAIT",
        "seconds a training running in the server process (no Redis) gets to finish and publish when the "
        "process exits; then it is abandoned (nothing published), stopped, and given as long again to return, so "
        "the process never finalizes around a training thread (`lsml.training.exit_wait`)",
    )
    training_nice: int = setting(
        10,
        "LSML_TRAINING_NICE",
        "niceness of the thread that runs a training (and of the threads and processes `fit` starts), 0 to 19: "
        "a CPU-bound fit yields the cores to `/predict` and `/webhook` on a machine they share, and uses them all "
        "when idle; 0 leaves the priority alone (`lsml.training.priority`)",
        minimum=0,
    )
    fit_attempts: int = setting(
        3,
        "LSML_FIT_ATTEMPTS",
        "runs of one RQ training whose worker or work horse is killed mid-fit (SIGKILL, the OOM killer, a pod "
        "deleted past its grace period): the same job is queued again and trains on what it had claimed; after the "
        "last attempt it fails. A fit that raises or runs past `LSML_FIT_TIMEOUT` is never retried",
        minimum=1,
    )
    prelabel_attempts: int = setting(
        3,
        "LSML_PRELABEL_ATTEMPTS",
        "runs of one RQ pre-labelling job whose worker or work horse is killed mid-job: the same job is queued "
        "again and resumes from the project's checkpoint; after the last attempt it fails naming its attempts. "
        "Read by the process that enqueues (the server, or a worker queueing after a publish)",
        minimum=1,
    )
    prelabel_max_running: int = setting(
        2,
        "LSML_PRELABEL_MAX_RUNNING",
        "pre-labelling jobs running at once without Redis (one thread each); with Redis the workers bound it",
        minimum=1,
    )
    prelabel_max_queued: int = setting(
        16,
        "LSML_PRELABEL_MAX_QUEUED",
        "pre-labelling jobs waiting beyond the running ones (without Redis), or jobs waiting on the RQ queue (with "
        "it, trainings included); past it `POST /prelabel` answers 429 `prelabel_busy` with `Retry-After`",
    )
    model_load_timeout: float = setting(
        60.0, "LSML_MODEL_LOAD_TIMEOUT", "seconds `/predict` waits for a model that is still loading, then 503"
    )
    max_body_bytes: int = setting(
        10_485_760,
        "LSML_MAX_BODY_BYTES",
        "larger request bodies get 413 `body_too_large` (Label Studio sends `/predict` batches of tasks, not media; "
        "raise it for very large batches)",
        shown="10485760 (10 MiB)",
        minimum=1,
    )
    max_loaded_models: int = setting(
        16,
        "LSML_MAX_LOADED_MODELS",
        "model instances kept per process; the least recently used beyond it is evicted (logged, "
        "`lsml_model_evictions_total`) and rebuilt on its next request",
        minimum=1,
    )
    media_max_bytes: int = setting(
        104_857_600,
        "LSML_MEDIA_MAX_BYTES",
        "largest media file `get_local_path`/`download` fetches (`MediaRefused` beyond)",
        shown="104857600 (100 MiB)",
        minimum=1,
    )
    media_timeout: float = setting(
        60.0, "LSML_MEDIA_TIMEOUT", "seconds one media download may take in total (not per read)", minimum=0.001
    )
    media_allow_private: bool = setting(
        False,
        "LSML_MEDIA_ALLOW_PRIVATE",
        "`true`: media URLs from task data may reach loopback and private addresses (by default only on "
        "`LABEL_STUDIO_URL`'s origin); link-local and cloud metadata addresses are refused whatever it says",
    )
    admin_token: str | None = setting(
        None,
        "LSML_ADMIN_TOKEN",
        "bearer token of the admin routes (`/prelabel`, `/versions/activate`, `/versions/unpin`), which Label "
        "Studio never calls; unset and no Basic auth: those routes answer 403 `admin_disabled`; never logged "
        "(surrounding whitespace, such as a Secret file's newline, is not part of it)",
        read=_credential,
        repr=False,
    )
    keep_versions: int = setting(
        5, "LSML_KEEP_VERSIONS", "model versions kept per project (older ones are pruned)", minimum=1
    )
    reload_interval: float = setting(
        0.5,
        "LSML_RELOAD_INTERVAL",
        "seconds between two checks, in every server process, of the store's `current` pointer: a new version is "
        "loaded in the background and swapped in within this interval",
    )
    score_strategy: str | None = setting(
        None,
        "LSML_SCORE_STRATEGY",
        "active-learning score of predictions: `confidence`, `least_confidence`, `margin` or `entropy`",
        shown="the model's own default",
    )
    log_level: str = setting("INFO", "LOG_LEVEL", "log level of the server, the worker and `start`")
    local_files_roots: tuple[Path, ...] = setting(
        (),
        "LSML_LOCAL_FILES_ROOTS",
        "colon-separated directories whose files task data may name (`file://` URLs, local paths) in "
        "`get_local_path`/`preload_task_data`; symlinks and `..` are resolved first; anything else raises "
        "`lsml.local_files.LocalFileRefused`",
        shown="unset (no local files)",
        read=_paths,
    )
    prelabel_on_publish: bool = setting(
        False,
        "LSML_PRELABEL_ON_PUBLISH",
        "`true`: every published version queues a pre-labelling job of the project's unlabelled tasks (coalesced: "
        "one job per project, ending on the newest version; nothing while a version is pinned)",
    )
    pinned_versions: tuple[tuple[str, str], ...] = setting(
        (),
        "LSML_PINNED_VERSIONS",
        "`PROJECT=VERSION,...` (`*` = every project, e.g. `*=v3,5=v2`): the version served whatever later fits "
        "publish and whatever `activate` did, while it names a kept version (else the store's current, warned "
        "once); `prune` keeps it. MLBackend `spec.model.pinnedVersions` sets it",
        read=_pins,
    )
    holdout_fraction: float = setting(
        0.0,
        "LSML_HOLDOUT_FRACTION",
        "share of a project's annotated tasks (by a hash of the task id, so always the same ones) that no fit sees "
        "and every new version is scored on (`/versions`, `/metrics`), e.g. `0.2`; `0` (the default) turns scoring "
        "off, so a fit sees every annotation as with the reference SDK (with `LSML_QUALITY_GATE` set and this unset: "
        "`0.2`, the gate needs scores); a model opts out with `HOLD_OUT = False`",
    )
    quality_gate: str | None = setting(
        None,
        "LSML_QUALITY_GATE",
        "`METRIC[:TOLERANCE]`, e.g. `accuracy:0.02`: a new version becomes current only if its METRIC is at least "
        "the served version's minus TOLERANCE, else it is kept as a candidate, not served (`activate` serves it); "
        "MLBackend `spec.model.qualityGate` sets it",
        shown="unset (every version is served)",
    )
    catchup_interval: float = setting(
        60.0,
        "LSML_CATCHUP_INTERVAL",
        "seconds between two catch-up checks in each server process: annotations Label Studio changed or deleted "
        "after the served version's watermark, whose webhook never arrived, trigger one coalesced training; `0` "
        "turns it off (it is off anyway without Label Studio credentials, and `/health` says so)",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, backend_dir: str | Path | None = None) -> Settings:
        """Read the environment (or `env`). `backend_dir` defaults to `LSML_BACKEND_DIR`, else the cwd."""
        env = os.environ if env is None else env
        values = _read_all(cls, env)
        base = Path(backend_dir or values["backend_dir"] or os.getcwd()).resolve()
        model_dir = values["model_dir"]
        values.update(
            backend_dir=base,
            model_dir=Path(model_dir).resolve() if model_dir else base / "data" / "models",
            log_level=values["log_level"].upper(),
        )
        if values["quality_gate"] and _str(env, "LSML_HOLDOUT_FRACTION") is None:
            values["holdout_fraction"] = GATE_HOLDOUT_FRACTION  # the gate compares scores: it needs a holdout
        values["holdout_fraction"] = min(1.0, values["holdout_fraction"])
        return cls(**values)

    def __post_init__(self) -> None:
        _check_basic_auth(self.basic_auth_user, self.basic_auth_pass)

    def pinned_version(self, project: str) -> str | None:
        """The version LSML_PINNED_VERSIONS pins for `project` (its own entry, else `*`), or None."""
        pins = dict(self.pinned_versions)
        return pins.get(str(project)) or pins.get("*")

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed (paths given as str are converted)."""
        for key in ("backend_dir", "model_dir"):
            if key in changes and changes[key] is not None:
                changes[key] = Path(changes[key])
        if "local_files_roots" in changes:
            roots = changes["local_files_roots"] or ()
            roots = [roots] if isinstance(roots, (str, os.PathLike)) else roots
            changes["local_files_roots"] = tuple(Path(p).resolve() for p in roots)
        return dataclasses.replace(self, **changes)

    @property
    def basic_auth_enabled(self) -> bool:
        return bool(self.basic_auth_user) and bool(self.basic_auth_pass)

    @property
    def admin_enabled(self) -> bool:
        """Whether the admin routes can be used at all: LSML_ADMIN_TOKEN or Basic auth is configured."""
        return bool(self.admin_token and self.admin_token.strip()) or self.basic_auth_enabled


def _check_basic_auth(user: str | None, password: str | None) -> None:
    """Auth is on with both variables and off with neither; one alone is a mistake that must not open the server.

    Without this check a blank or missing password would silently turn auth off (SECURITY.md).
    """
    has_user = bool(user and user.strip())
    has_pass = bool(password and password.strip())
    if has_user and not has_pass:
        raise ValueError(
            "BASIC_AUTH_USER is set but BASIC_AUTH_PASS is empty or missing: set a password "
            "(or unset BASIC_AUTH_USER to run without auth)"
        )
    if has_pass and not has_user:
        raise ValueError(
            "BASIC_AUTH_PASS is set but BASIC_AUTH_USER is empty or missing: set a user "
            "(or unset BASIC_AUTH_PASS to run without auth)"
        )


@dataclass(frozen=True)
class ServingSettings:
    """How gunicorn serves a backend: read by `lsml.server.gunicorn_conf` in every deployment.

    Why env vars and not command-line flags: the image's CMD, the compose file, the
    operator's container and `label-studio-ml start` all run the same command
    (`gunicorn --config python:lsml.server.gunicorn_conf _wsgi:app`); only these
    values differ between them.
    """

    host: str = setting("0.0.0.0", "HOST", "the address gunicorn listens on")
    port: int = setting(9090, "PORT", "the port gunicorn listens on")
    workers: int = setting(
        1,
        "WORKERS",
        "gunicorn worker processes (the image sets 2, the operator 1, `start` 1 or 2); without Redis keep 1: each "
        "worker would run its own embedded training queue",
        shown="2 with `REDIS_URL`, else 1",
        minimum=1,
    )
    threads: int = setting(
        8, "THREADS", "request threads per gunicorn worker (the image, compose file and operator say 8 too)", minimum=1
    )
    client_timeout: float = setting(
        30.0,
        "LSML_CLIENT_TIMEOUT",
        "seconds a client has to finish sending a request once it started, or to take its answer; also bounds one "
        "socket call of a pool thread",
        minimum=0.1,
    )
    backend_dir: str = setting(".", "LSML_BACKEND_DIR", "the backend directory gunicorn serves `_wsgi:app` from")
    log_level: str = setting("info", "LOG_LEVEL", "gunicorn's log level")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        env = os.environ if env is None else env
        values = _read_all(cls, env)
        if _str(env, "WORKERS") is None and _str(env, "REDIS_URL"):
            values["workers"] = 2  # one worker without Redis: each would run its own embedded training queue
        values["log_level"] = values["log_level"].lower()
        return cls(**values)


# Variables read outside the two dataclasses above: named here so the reference lists them and the docs test
# (tests/docs/test_reference.py) can tell a documented variable from a forgotten one.
OTHER_VARIABLES: dict[str, tuple[str, str]] = {
    "PROMETHEUS_MULTIPROC_DIR": (
        "set by `start` and the image",
        "prometheus-client's multi-process mode: each gunicorn worker keeps its metrics in files there and "
        "`/metrics` merges them (read by `lsml.server.metrics` and `lsml.server.gunicorn_conf`)",
    ),
    "LABEL_STUDIO_HOST": (
        "unset",
        "the reference SDK's name for `LABEL_STUDIO_URL`, read only when `LABEL_STUDIO_URL` is unset (a backend "
        "moved from label-studio-ml-backend keeps its environment); the same origin rule applies",
    ),
    "LABEL_STUDIO_ACCESS_TOKEN": (
        "unset",
        "the reference SDK's name for `LABEL_STUDIO_API_KEY`, read only when `LABEL_STUDIO_API_KEY` is unset; sent "
        "only to that URL's origin, never logged",
    ),
    "LSML_LABEL_INTERFACE": (
        "unset",
        "`standin`: `self.label_interface` is lsml's small stand-in even when label-studio-sdk (the `sdk` extra) is "
        "installed (read by `lsml.sdk`)",
    ),
}
