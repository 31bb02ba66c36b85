"""Every environment variable the runtime reads, in one frozen dataclass.

`Settings` is picklable on purpose: a training job sent to another process
(an RQ worker) carries it and rebuilds the store, the state and the model
class from it alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


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


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with `Settings.from_env()`; override with `.replace(...)`."""

    backend_dir: Path = Path(".")
    model: str | None = None
    model_dir: Path = Path("data/models")
    redis_url: str | None = None
    queue_name: str = "lsml-training"
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = dataclasses.field(default=None, repr=False)
    label_studio_url: str | None = None
    label_studio_api_key: str | None = dataclasses.field(default=None, repr=False)
    predict_concurrency: int = 4
    predict_wait_timeout: float = 30.0
    predict_timeout: float = 100.0
    fit_timeout: float = 21600.0
    fit_attempts: int = 3
    prelabel_attempts: int = 3
    model_load_timeout: float = 60.0
    max_body_bytes: int = 10_485_760
    max_loaded_models: int = 16
    media_max_bytes: int = 104_857_600
    media_timeout: float = 60.0
    keep_versions: int = 5
    reload_interval: float = 0.5
    score_strategy: str | None = None
    log_level: str = "INFO"
    local_files_roots: tuple[Path, ...] = ()
    prelabel_on_publish: bool = False
    pinned_versions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, backend_dir: str | Path | None = None) -> Settings:
        """Read the environment (or `env`). `backend_dir` defaults to `LSML_BACKEND_DIR`, else the cwd."""
        env = os.environ if env is None else env
        base = Path(backend_dir or _str(env, "LSML_BACKEND_DIR") or os.getcwd()).resolve()
        model_dir = _str(env, "MODEL_DIR")
        return cls(
            backend_dir=base,
            model=_str(env, "LSML_MODEL"),
            model_dir=Path(model_dir).resolve() if model_dir else base / "data" / "models",
            redis_url=_str(env, "REDIS_URL"),
            queue_name=_str(env, "LSML_QUEUE") or "lsml-training",
            basic_auth_user=_str(env, "BASIC_AUTH_USER"),
            basic_auth_pass=_str(env, "BASIC_AUTH_PASS"),
            # the reference SDK's fallbacks too (label_studio_ml/model.py), but not its last one, HOSTNAME:
            # in a container that is the container's own name, so lsml would call itself Label Studio
            label_studio_url=_str(env, "LABEL_STUDIO_URL") or _str(env, "LABEL_STUDIO_HOST"),
            label_studio_api_key=_str(env, "LABEL_STUDIO_API_KEY") or _str(env, "LABEL_STUDIO_ACCESS_TOKEN"),
            predict_concurrency=_int(env, "LSML_PREDICT_CONCURRENCY", 4, minimum=1),
            predict_wait_timeout=_float(env, "LSML_PREDICT_WAIT_TIMEOUT", 30.0),
            predict_timeout=_float(env, "LSML_PREDICT_TIMEOUT", 100.0, minimum=0.001),
            fit_timeout=_float(env, "LSML_FIT_TIMEOUT", 21600.0, minimum=1.0),
            fit_attempts=_int(env, "LSML_FIT_ATTEMPTS", 3, minimum=1),
            prelabel_attempts=_int(env, "LSML_PRELABEL_ATTEMPTS", 3, minimum=1),
            model_load_timeout=_float(env, "LSML_MODEL_LOAD_TIMEOUT", 60.0),
            max_body_bytes=_int(env, "LSML_MAX_BODY_BYTES", 10_485_760, minimum=1),
            max_loaded_models=_int(env, "LSML_MAX_LOADED_MODELS", 16, minimum=1),
            media_max_bytes=_int(env, "LSML_MEDIA_MAX_BYTES", 104_857_600, minimum=1),
            media_timeout=_float(env, "LSML_MEDIA_TIMEOUT", 60.0, minimum=0.001),
            keep_versions=_int(env, "LSML_KEEP_VERSIONS", 5, minimum=1),
            reload_interval=_float(env, "LSML_RELOAD_INTERVAL", 0.5),
            score_strategy=_str(env, "LSML_SCORE_STRATEGY"),
            log_level=(_str(env, "LOG_LEVEL") or "INFO").upper(),
            local_files_roots=_paths(env, "LSML_LOCAL_FILES_ROOTS"),
            prelabel_on_publish=_bool(env, "LSML_PRELABEL_ON_PUBLISH"),
            pinned_versions=_pins(env, "LSML_PINNED_VERSIONS"),
        )

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

    host: str = "0.0.0.0"
    port: int = 9090
    workers: int = 1
    threads: int = 8
    client_timeout: float = 30.0
    backend_dir: str = "."
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        env = os.environ if env is None else env
        return cls(
            host=_str(env, "HOST") or "0.0.0.0",
            port=_int(env, "PORT", 9090, minimum=0),
            # one worker without Redis: each would run its own embedded training queue
            workers=_int(env, "WORKERS", 2 if _str(env, "REDIS_URL") else 1, minimum=1),
            threads=_int(env, "THREADS", 8, minimum=1),
            client_timeout=_float(env, "LSML_CLIENT_TIMEOUT", 30.0, minimum=0.1),
            backend_dir=_str(env, "LSML_BACKEND_DIR") or ".",
            log_level=(_str(env, "LOG_LEVEL") or "info").lower(),
        )
