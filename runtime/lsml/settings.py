"""Every environment variable the runtime reads, in one frozen dataclass.

`Settings` is picklable on purpose: a training job sent to another process
(an RQ worker) carries it and rebuilds the store, the state and the model
class from it alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


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


def _str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw


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
    model_load_timeout: float = 60.0
    max_body_bytes: int = 104_857_600
    keep_versions: int = 5
    reload_interval: float = 0.5
    score_strategy: str | None = None
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, backend_dir: str | Path | None = None) -> "Settings":
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
            label_studio_url=_str(env, "LABEL_STUDIO_URL"),
            label_studio_api_key=_str(env, "LABEL_STUDIO_API_KEY"),
            predict_concurrency=_int(env, "LSML_PREDICT_CONCURRENCY", 4, minimum=1),
            predict_wait_timeout=_float(env, "LSML_PREDICT_WAIT_TIMEOUT", 30.0),
            model_load_timeout=_float(env, "LSML_MODEL_LOAD_TIMEOUT", 60.0),
            max_body_bytes=_int(env, "LSML_MAX_BODY_BYTES", 104_857_600, minimum=1),
            keep_versions=_int(env, "LSML_KEEP_VERSIONS", 5, minimum=1),
            reload_interval=_float(env, "LSML_RELOAD_INTERVAL", 0.5),
            score_strategy=_str(env, "LSML_SCORE_STRATEGY"),
            log_level=(_str(env, "LOG_LEVEL") or "INFO").upper(),
        )

    def replace(self, **changes) -> "Settings":
        """A copy with some fields changed (paths given as str are converted)."""
        for key in ("backend_dir", "model_dir"):
            if key in changes and changes[key] is not None:
                changes[key] = Path(changes[key])
        return dataclasses.replace(self, **changes)

    @property
    def basic_auth_enabled(self) -> bool:
        return bool(self.basic_auth_user) and self.basic_auth_pass is not None


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
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ServingSettings":
        env = os.environ if env is None else env
        return cls(
            host=_str(env, "HOST") or "0.0.0.0",
            port=_int(env, "PORT", 9090, minimum=0),
            workers=_int(env, "WORKERS", 1, minimum=1),
            threads=_int(env, "THREADS", 8, minimum=1),
            client_timeout=_float(env, "LSML_CLIENT_TIMEOUT", 30.0, minimum=0.1),
            backend_dir=_str(env, "LSML_BACKEND_DIR") or ".",
            log_level=(_str(env, "LOG_LEVEL") or "info").lower(),
        )
