"""Per-project key/value state shared by every process of one backend.

Values are JSON-encoded, so anything JSON can hold round-trips. Two
implementations: `SqliteState` (a file under MODEL_DIR, safe across
processes on one machine) and `RedisState` (when `REDIS_URL` is set, so
server pods and RQ workers on other machines see the same state).

This is where `/setup` remembers a project's label config, Label Studio's
hostname and access token: keep MODEL_DIR private (the token is a secret).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import redis

from lsml.errors import RedisUnavailable
from lsml.redis_connection import connect
from lsml.settings import Settings

logger = logging.getLogger(__name__)


#: The state store (Redis) cannot be reached: the server answers 503 `state_unavailable` with Retry-After.
StateUnavailable = RedisUnavailable  # its old name


@runtime_checkable
class State(Protocol):
    def get(self, project: str, key: str, default: Any = None) -> Any: ...
    def set(self, project: str, key: str, value: Any) -> None: ...
    def has(self, project: str, key: str) -> bool: ...
    def delete(self, project: str, key: str) -> None: ...
    def items(self, project: str) -> dict[str, Any]: ...


class MemoryState:
    """A dict: for tests and for models built outside a server."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, project: str, key: str, default: Any = None) -> Any:
        raw = self._data.get((str(project), key))
        return default if raw is None else json.loads(raw)

    def set(self, project: str, key: str, value: Any) -> None:
        with self._lock:
            self._data[(str(project), key)] = json.dumps(value)

    def has(self, project: str, key: str) -> bool:
        return (str(project), key) in self._data

    def delete(self, project: str, key: str) -> None:
        with self._lock:
            self._data.pop((str(project), key), None)

    def items(self, project: str) -> dict[str, Any]:
        return {k: json.loads(v) for (p, k), v in list(self._data.items()) if p == str(project)}


class SqliteState:
    """A sqlite file in WAL mode; one connection per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private_file(self.path)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS state ("
                " project TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                " PRIMARY KEY (project, key))"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                pass
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def get(self, project: str, key: str, default: Any = None) -> Any:
        row = self._conn().execute("SELECT value FROM state WHERE project=? AND key=?", (str(project), key)).fetchone()
        return default if row is None else json.loads(row[0])

    def set(self, project: str, key: str, value: Any) -> None:
        self._conn().execute(
            "INSERT INTO state(project, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT(project, key) DO UPDATE SET value=excluded.value",
            (str(project), key, json.dumps(value)),
        )

    def has(self, project: str, key: str) -> bool:
        row = self._conn().execute("SELECT 1 FROM state WHERE project=? AND key=?", (str(project), key)).fetchone()
        return row is not None

    def delete(self, project: str, key: str) -> None:
        self._conn().execute("DELETE FROM state WHERE project=? AND key=?", (str(project), key))

    def items(self, project: str) -> dict[str, Any]:
        rows = self._conn().execute("SELECT key, value FROM state WHERE project=?", (str(project),)).fetchall()
        return {k: json.loads(v) for k, v in rows}


def _private_file(path: Path) -> None:
    """Create `path` 0600 (or narrow it to 0600) before sqlite opens it: the state holds Label Studio
    tokens, and sqlite gives its -wal and -shm files the database file's mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    except PermissionError:  # another user's file (a shared volume): say so, serve anyway
        logger.warning("%s is readable by others and owned by another user: make it 0600", path)
    finally:
        os.close(fd)


def _redis_errors(method):
    """Redis errors leave a RedisState as RedisUnavailable (`state_unavailable`), naming the error type only (a URL may hold a password)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise RedisUnavailable(
                f"Redis (the state store) is unreachable ({type(exc).__name__}); try again when it is back",
                code="state_unavailable",
            ) from exc

    return wrapper


class RedisState:
    """One Redis hash per project: `<prefix>:<project>`."""

    def __init__(self, url: str, prefix: str = "lsml:state") -> None:
        self._redis = connect(url)  # short timeouts, no retries: never block a request
        self._prefix = prefix

    def _key(self, project: str) -> str:
        return f"{self._prefix}:{project}"

    @_redis_errors
    def get(self, project: str, key: str, default: Any = None) -> Any:
        raw = self._redis.hget(self._key(project), key)
        return default if raw is None else json.loads(raw)

    @_redis_errors
    def set(self, project: str, key: str, value: Any) -> None:
        self._redis.hset(self._key(project), key, json.dumps(value))

    @_redis_errors
    def has(self, project: str, key: str) -> bool:
        return bool(self._redis.hexists(self._key(project), key))

    @_redis_errors
    def delete(self, project: str, key: str) -> None:
        self._redis.hdel(self._key(project), key)

    @_redis_errors
    def items(self, project: str) -> dict[str, Any]:
        raw = self._redis.hgetall(self._key(project))
        return {k.decode() if isinstance(k, bytes) else k: json.loads(v) for k, v in raw.items()}


def make_state(settings: Settings) -> State:
    """Redis when `REDIS_URL` is set, else a sqlite file under MODEL_DIR."""
    if settings.redis_url:
        return RedisState(settings.redis_url)
    return SqliteState(Path(settings.model_dir) / ".lsml" / "state.sqlite3")
