"""`label_studio_ml.cache`: the reference's per-project key/value cache, over lsml's state.

`create_cache("sqlite", path)` is the sqlite state lsml's server keeps under MODEL_DIR (so
`CACHE[project, key]` sees what `self.get`/`self.set` and `/setup` store), `"redis"` the Redis
state (`path` is then the Redis URL). Values are JSON, so anything JSON holds round-trips
(the reference stores strings only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsml.state import RedisState, SqliteState, State


class BaseCache:
    """`cache[project_id, key]` get, set, `in` and `del` over an lsml `State`."""

    def __init__(self, state: State, path: str | None = None) -> None:
        self.state = state
        self.path = path

    def __getitem__(self, project_id_key: tuple[str, str]) -> Any:
        project_id, key = project_id_key
        return self.state.get(str(project_id), key)

    def __setitem__(self, project_id_key: tuple[str, str], value: Any) -> None:
        project_id, key = project_id_key
        self.state.set(str(project_id), key, value)

    def __contains__(self, project_id_key: tuple[str, str]) -> bool:
        project_id, key = project_id_key
        return self.state.has(str(project_id), key)

    def __delitem__(self, project_id_key: tuple[str, str]) -> None:
        project_id, key = project_id_key
        self.state.delete(str(project_id), key)


class SqliteCache(BaseCache):
    """The sqlite state file lsml's server uses for MODEL_DIR `path` (`<path>/.lsml/state.sqlite3`)."""

    def __init__(self, path: str) -> None:
        super().__init__(SqliteState(Path(path) / ".lsml" / "state.sqlite3"), path)


def create_cache(cache_type: str, path: str, **_ignored: Any) -> BaseCache:
    """A cache of `cache_type` (`"sqlite"`: a MODEL_DIR path, `"redis"`: a Redis URL)."""
    if cache_type == "sqlite":
        return SqliteCache(path)
    if cache_type == "redis":
        return BaseCache(RedisState(path), path)
    raise ValueError(f"unsupported cache type {cache_type!r}: 'sqlite' or 'redis'")


__all__ = ["BaseCache", "SqliteCache", "create_cache"]
