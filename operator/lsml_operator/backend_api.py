"""The only access to a backend's own HTTP API: which version each project serves, its scores, a held candidate.

The operator learns model quality the way KubeRay learns a RayService's state from the Ray dashboard:
it asks the backend. ``served_versions`` reads ``GET /versions`` (every project the backend's store
knows) and then ``GET /versions?project=P`` per project (the runtime's ``lsml.versions.version_report``),
with the backend's Basic credentials when ``spec.basicAuth`` is set. What comes back is untrusted
input: the body is capped, names are cut, scores must be finite numbers, and at most ``MAX_PROJECTS``
projects are read per poll. Errors name the URL and what failed, never the credentials.
"""

from __future__ import annotations

import json
import math
from typing import Any

import requests

from .reconcile.quality_status import HeldCandidate, ServedVersion

#: Projects read per poll (the lowest ids first); more are left out of status (logged by the caller).
MAX_PROJECTS = 20
#: Scores kept per version (the runtime stores at most 16), metric and version names cut to these lengths.
MAX_SCORES = 16
MAX_NAME = 64
#: A /versions answer larger than this is refused (a report of a few dozen versions is a few kB).
MAX_BODY = 1 << 20


class BackendUnavailable(Exception):
    """The backend did not answer usefully: unreachable, an HTTP error, or a body that is not a version report."""


def _name(value: Any) -> str | None:
    return str(value)[:MAX_NAME] if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _scores(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    numbers = [(str(k)[:MAX_NAME], _number(v)) for k, v in raw.items()]
    return dict(sorted((k, v) for k, v in numbers if v is not None)[:MAX_SCORES])


def _version_number(detail: dict[str, Any]) -> int:
    number = detail.get("number")
    return number if isinstance(number, int) and not isinstance(number, bool) else -1


def _project_order(project: str) -> tuple[int, str]:
    return (int(project), "") if project.isdigit() else (2**63, project)


def parse_report(project: str, report: Any) -> ServedVersion:
    """One project's ``/versions?project=`` answer -> what it serves and its newest held candidate."""
    if not isinstance(report, dict) or not isinstance(report.get("details", []), list):
        raise BackendUnavailable(f"project {project}: /versions is not a version report")
    details = [d for d in report.get("details") or [] if isinstance(d, dict)]
    current = _name(report.get("current"))
    served = next((d for d in details if d.get("name") == current), None)
    served_number = _version_number(served) if served else -1
    held = None
    newer = [d for d in details if d.get("candidate") is True and _version_number(d) > served_number]
    if newer:
        newest = max(newer, key=_version_number)
        raw_check = newest.get("gate_check")
        check: dict[str, Any] = raw_check if isinstance(raw_check, dict) else {}
        held = HeldCandidate(
            version=_name(newest.get("name")) or "?",
            metric=_name(check.get("metric")),
            score=_number(check.get("score")),
            served_version=_name(check.get("served")),
            served_score=_number(check.get("served_score")),
            tolerance=_number(check.get("tolerance")),
        )
    return ServedVersion(project, current, _scores(served.get("scores")) if served else {}, held)


class BackendClient:
    """GETs against one backend base URL, with its Basic credentials (or none), a bounded timeout and body."""

    def __init__(self, base_url: str, basic_auth: tuple[str, str] | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy variables or .netrc: the credentials go to this URL only
        self.session.auth = basic_auth

    def close(self) -> None:
        self.session.close()

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = self.base_url + path
        try:
            with self.session.get(
                url, params=params, timeout=self.timeout, allow_redirects=False, stream=True
            ) as response:
                if response.status_code != 200:
                    raise BackendUnavailable(f"GET {url}: HTTP {response.status_code}")
                body = response.raw.read(MAX_BODY + 1, decode_content=True)
        except requests.RequestException as exc:
            raise BackendUnavailable(f"GET {url}: {type(exc).__name__}") from None
        if len(body) > MAX_BODY:
            raise BackendUnavailable(f"GET {url}: answer larger than {MAX_BODY} bytes")
        try:
            return json.loads(body)
        except ValueError:
            raise BackendUnavailable(f"GET {url}: not JSON") from None


def served_versions(client: BackendClient, max_projects: int = MAX_PROJECTS) -> tuple[list[ServedVersion], int]:
    """(what each project serves, in project order, and how many projects were left out past ``max_projects``)."""
    index = client.get("/versions")
    projects = index.get("projects") if isinstance(index, dict) else None
    if not isinstance(projects, dict):
        raise BackendUnavailable(f"GET {client.base_url}/versions: no 'projects' in the answer")
    names = sorted((str(p)[:MAX_NAME] for p in projects), key=_project_order)
    return [parse_report(p, client.get("/versions", {"project": p})) for p in names[:max_projects]], max(
        0, len(names) - max_projects
    )
