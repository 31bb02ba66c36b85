"""The model store: immutable, numbered model versions per project, published atomically.

Layout of `LocalModelStore(root)`::

    <root>/<project>/versions/000001/        one published version (never modified)
    <root>/<project>/versions/000001/lsml-version.json
    <root>/<project>/current -> versions/000001   symlink, replaced with os.replace
    <root>/<project>/pinned -> versions/000001    symlink, only while a version is pinned
    <root>/<project>/.staging-XXXX/          a fit in progress (invisible to readers)

Publishing records a SHA-256 of every artifact in `lsml-version.json`
(`lsml.integrity`), which the loader and the training job check before a
model loads the version. Publishing: fsync every staged file and the staging dir, `os.rename` it into
`versions/`, fsync `versions/`, then point `current` at it by creating a temp
symlink and `os.replace`-ing it over `current`. A crashed or failed fit
leaves at most a `.staging-*` dir, which no reader looks at and `prune`
removes. Readers check for a new version by `os.readlink(current)`, which
costs microseconds (`pointer()`).

Pinning (`activate`, `unpin`): `pinned` is a second symlink beside
`current`, written the same way (temp symlink + `os.replace`, under the
publish lock). While it exists, `publish` numbers and keeps new versions but
leaves `current` alone, and `prune` never removes the pinned version. Readers
need nothing new: they follow `current`, which `activate` moves.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lsml.integrity import VERSION_FILE, digest_tree, verify_version
from lsml.settings import Settings

_STALE_STAGING_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ModelVersion:
    project: str
    number: int
    name: str
    path: Path
    created_at: float
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "number": self.number,
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


def version_name(number: int) -> str:
    return f"v{number}"


@runtime_checkable
class ModelStore(Protocol):
    """What the loader and the training job need from a store (local disk today, object store later)."""

    def pointer(self, project: str) -> str | None:
        """A cheap token that changes whenever `current` changes (None: no version)."""

    def current(self, project: str) -> ModelVersion | None: ...
    def projects(self) -> list[str]: ...
    def versions(self, project: str) -> list[ModelVersion]: ...
    def staging(self, project: str) -> contextlib.AbstractContextManager[Path]: ...
    def publish(
        self, project: str, staged: Path, metadata: dict | None = None, make_current: bool = True
    ) -> ModelVersion: ...
    def prune(self, project: str, keep: int, protect: tuple[str, ...] = ()) -> list[ModelVersion]: ...
    def latest(self, project: str) -> ModelVersion | None: ...
    def pinned(self, project: str) -> ModelVersion | None: ...
    def find(self, project: str, version: str | int) -> ModelVersion: ...
    def activate(self, project: str, version: str | int, pin: bool = True) -> ModelVersion: ...
    def unpin(self, project: str) -> ModelVersion | None: ...
    def training_lock(self, project: str) -> contextlib.AbstractContextManager[None]: ...


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(str(path), flags)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                _fsync_path(p)
        _fsync_path(Path(dirpath), directory=True)


class LocalModelStore:
    """A `ModelStore` on a local (or shared, POSIX) filesystem."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # paths -------------------------------------------------------------
    def project_dir(self, project: str) -> Path:
        project = str(project)
        if not project or "/" in project or project.startswith("."):
            raise ValueError(f"invalid project key {project!r}")
        return self.root / project

    def _versions_dir(self, project: str) -> Path:
        return self.project_dir(project) / "versions"

    # reading -----------------------------------------------------------
    def pointer(self, project: str) -> str | None:
        try:
            return os.readlink(self.project_dir(project) / "current")
        except (FileNotFoundError, OSError):
            return None

    def _version_from_dir(self, project: str, path: Path) -> ModelVersion | None:
        try:
            number = int(path.name)
        except ValueError:
            return None
        meta: dict[str, Any] = {}
        created = 0.0
        try:
            with open(path / VERSION_FILE, encoding="utf-8") as f:
                meta = json.load(f)
            created = float(meta.get("created_at", 0.0))
        except (OSError, ValueError):
            try:
                created = path.stat().st_mtime
            except OSError:
                return None
        return ModelVersion(
            project=str(project),
            number=number,
            name=version_name(number),
            path=path,
            created_at=created,
            metadata=meta.get("metadata", {}) if isinstance(meta, dict) else {},
        )

    def _linked(self, project: str, link: str) -> ModelVersion | None:
        try:
            target = os.readlink(self.project_dir(project) / link)
        except OSError:
            return None
        path = (self.project_dir(project) / target).resolve()
        if not path.is_dir():
            return None
        return self._version_from_dir(project, path)

    def current(self, project: str) -> ModelVersion | None:
        return self._linked(project, "current")

    def pinned(self, project: str) -> ModelVersion | None:
        """The version `activate` pinned (None: not pinned, every publish becomes current)."""
        return self._linked(project, "pinned")

    def latest(self, project: str) -> ModelVersion | None:
        """The newest published version, whatever is current: fits build on it, so a pin changes
        what is served, not what training continues from."""
        found = self.versions(project)
        return found[-1] if found else None

    def find(self, project: str, version: str | int) -> ModelVersion:
        """A kept version by name (`"v3"`) or number (`3`, `"3"`); `KeyError` naming the kept ones."""
        text = str(version).strip()
        number = text[1:] if text[:1] in ("v", "V") else text
        kept = self.versions(project)
        # ASCII digits only ("²".isdigit() is true, int() refuses it), and few: int() refuses past 4,300
        wanted = int(number) if number.isascii() and number.isdigit() and len(number) <= 18 else None
        for v in kept:
            if v.number == wanted:
                return v
        names = ", ".join(v.name for v in kept) or "none"
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise KeyError(f"project {project}: no version {shown!r} (kept: {names})")

    def projects(self) -> list[str]:
        """Projects that have a versions dir, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and (p / "versions").is_dir())

    def versions(self, project: str) -> list[ModelVersion]:
        vdir = self._versions_dir(project)
        if not vdir.is_dir():
            return []
        found = []
        for entry in vdir.iterdir():
            if entry.is_dir() and entry.name.isdigit():
                v = self._version_from_dir(project, entry)
                if v is not None:
                    found.append(v)
        return sorted(found, key=lambda v: v.number)

    # writing -----------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, project: str, name: str) -> Iterator[None]:
        pdir = self.project_dir(project)
        pdir.mkdir(parents=True, exist_ok=True)
        with open(pdir / name, "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def training_lock(self, project: str) -> contextlib.AbstractContextManager[None]:
        """Held while a fit runs, so two processes never train one project at once."""
        return self._lock(project, ".train.lock")

    @contextlib.contextmanager
    def staging(self, project: str) -> Iterator[Path]:
        """An empty dir inside the project dir; removed on exit unless published."""
        pdir = self.project_dir(project)
        pdir.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=pdir))
        try:
            yield staged
        finally:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)

    def publish(
        self, project: str, staged: Path, metadata: dict | None = None, make_current: bool = True
    ) -> ModelVersion:
        """Make `staged` the next version and the current one, atomically and durably.

        `make_current=False` keeps it as a candidate (the quality gate refused it): numbered and kept,
        not served until `activate` names it."""
        staged = Path(staged)
        pdir = self.project_dir(project)
        if staged.parent.resolve() != pdir.resolve():
            raise ValueError("publish() takes a dir made by staging() for the same project")
        vdir = self._versions_dir(project)
        with self._lock(project, ".publish.lock"):
            vdir.mkdir(parents=True, exist_ok=True)
            numbers = [int(p.name) for p in vdir.iterdir() if p.name.isdigit()]
            number = max(numbers, default=0) + 1
            created = time.time()
            info = {
                "project": str(project),
                "number": number,
                "name": version_name(number),
                "created_at": created,
                "metadata": metadata or {},
                "files": digest_tree(staged),
            }
            with open(staged / VERSION_FILE, "w", encoding="utf-8") as f:
                json.dump(info, f, default=str)
            _fsync_tree(staged)
            final = vdir / f"{number:06d}"
            os.rename(staged, final)
            _fsync_path(vdir, directory=True)
            if make_current and self._linked(project, "pinned") is None:  # a pinned version stays current
                self._point(pdir, "current", final.name)
        return ModelVersion(str(project), number, version_name(number), final, created, metadata or {})

    @staticmethod
    def _point(pdir: Path, link: str, version_dir_name: str) -> None:
        """Make `pdir/link` point at `versions/<name>` atomically and durably."""
        tmp_link = pdir / f".current-{uuid.uuid4().hex}"
        os.symlink(os.path.join("versions", version_dir_name), tmp_link)
        os.replace(tmp_link, pdir / link)
        _fsync_path(pdir, directory=True)

    def activate(self, project: str, version: str | int, pin: bool = True) -> ModelVersion:
        """Make a kept version current; pinned (default), later publishes do not replace it.

        Why pin by default: a rollback that the next fit undoes is no rollback.
        `pin=False` only moves `current` (and clears a pin), so the next publish
        replaces it. The version's digests are checked first, so a tampered one
        is refused here rather than by every server process.
        """
        pdir = self.project_dir(project)
        if not pdir.is_dir():  # no version to activate: refuse before the lock file would create the dir
            self.find(project, version)  # raises KeyError naming the version (kept: none)
        with self._lock(project, ".publish.lock"):
            target = self.find(project, version)
            verify_version(target.path, target.name)
            if pin:
                self._point(pdir, "pinned", target.path.name)
            else:
                (pdir / "pinned").unlink(missing_ok=True)
            self._point(pdir, "current", target.path.name)
        return target

    def unpin(self, project: str) -> ModelVersion | None:
        """Remove the pin and make the newest version current again (what publish would have done: a candidate
        the quality gate refused is skipped).

        A project without a directory has neither: nothing is done, and nothing is created (a request
        naming any project must not leave a directory behind on a shared volume)."""
        pdir = self.project_dir(project)
        if not pdir.is_dir():
            return None
        with self._lock(project, ".publish.lock"):
            (pdir / "pinned").unlink(missing_ok=True)
            _fsync_path(pdir, directory=True)
            # what publish would have made current: the newest version the quality gate did not keep as a candidate
            found = self.versions(project)
            newest = next((v for v in reversed(found) if not v.metadata.get("candidate")), found[-1] if found else None)
            if newest is not None:
                self._point(pdir, "current", newest.path.name)
        return newest

    def prune(self, project: str, keep: int, protect: tuple[str, ...] = ()) -> list[ModelVersion]:
        """Delete the oldest versions beyond `keep` (never the current or pinned one, nor those named in
        `protect`, e.g. a version LSML_PINNED_VERSIONS pins) and stale staging dirs."""
        keep = max(1, int(keep))
        removed: list[ModelVersion] = []
        pdir = self.project_dir(project)
        if not pdir.is_dir():
            return removed
        with self._lock(project, ".publish.lock"):
            protected = {
                os.path.basename(os.readlink(pdir / link))
                for link in ("current", "pinned")
                if os.path.islink(pdir / link)
            }
            versions = self.versions(project)
            for v in versions[: max(0, len(versions) - keep)]:
                if v.path.name in protected or v.name in protect:
                    continue
                trash = pdir / f".trash-{uuid.uuid4().hex}"
                os.rename(v.path, trash)
                shutil.rmtree(trash, ignore_errors=True)
                removed.append(v)
            now = time.time()
            for entry in pdir.iterdir():
                if entry.name.startswith((".staging-", ".trash-", ".current-")):
                    try:
                        age = now - entry.lstat().st_mtime
                    except OSError:
                        continue
                    if entry.name.startswith(".trash-") or age > _STALE_STAGING_SECONDS:
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.rmtree(entry, ignore_errors=True)
                        else:
                            entry.unlink(missing_ok=True)
        return removed


def make_store(settings: Settings) -> ModelStore:
    return LocalModelStore(settings.model_dir)
