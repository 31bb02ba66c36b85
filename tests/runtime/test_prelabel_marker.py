"""The project's pre-labelling marker in Redis (one job per project; a publish meanwhile asks it to run once more),
driven against a real redis-server with no worker: each race is played in the order that lost a request."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from lsml.prelabel import PrelabelRequest
from lsml.prelabel_jobs import RQPrelabelJobs, _marker, _release
from lsml.settings import Settings
from lsml.training.queue import STARTED
from tests.fixtures.rq_procs import write_backend

pytestmark = pytest.mark.redis


@pytest.fixture
def jobs(tmp_path, redis_url) -> RQPrelabelJobs:
    settings = Settings.from_env(env={}, backend_dir=write_backend(tmp_path / "backend")).replace(redis_url=redis_url)
    return RQPrelabelJobs(settings)


def _marker_of(jobs: RQPrelabelJobs, project: str) -> str | None:
    value = jobs.connection.get(_marker(jobs.settings.queue_name, project))
    return value.decode() if value is not None else None


def test_a_run_again_request_racing_the_end_of_the_running_job_queues_a_job(jobs, monkeypatch):
    """Re-predict on publish asks the running job to run once more (a flag it reads as it lets go of the marker). When
    the job let go between the submit's read of its status and the flag's write, the flag was left for no one: the
    newest version's re-prediction never ran (and the stray flag re-ran the next job a day later)."""
    running, created = jobs.submit(PrelabelRequest("7"))
    assert created and _marker_of(jobs, "7") == running
    job = SimpleNamespace(id=running, origin=jobs.settings.queue_name, connection=jobs.connection)
    real_status = jobs.status

    def status_as_the_job_ends(job_id: str) -> dict[str, Any] | None:
        if job_id == running:
            _release(job, "7")  # the job's end, while RQ still reports it started
            return {"status": STARTED}
        return real_status(job_id)

    monkeypatch.setattr(jobs, "status", status_as_the_job_ends)
    job_id, created = jobs.submit(PrelabelRequest("7"), again_if_active=True)
    assert created and job_id != running, "the job had ended: the request must be a job of its own"
    assert _marker_of(jobs, "7") == job_id
    assert jobs.connection.get(_marker(jobs.settings.queue_name, "7") + ":again") is None, "no flag left for no one"


def test_a_run_again_request_while_the_job_runs_is_left_for_it(jobs, monkeypatch):
    running, _ = jobs.submit(PrelabelRequest("8"))
    monkeypatch.setattr(jobs, "status", lambda job_id: {"status": STARTED})
    assert jobs.submit(PrelabelRequest("8", mode="all"), again_if_active=True) == (running, False)
    flag = jobs.connection.get(_marker(jobs.settings.queue_name, "8") + ":again")
    assert flag is not None and b'"all"' in flag


def test_a_stale_marker_is_cleared_only_while_it_still_names_the_stale_job(jobs, monkeypatch):
    """Two submits that both found an ended job's marker deleted it without looking: the second deleted the marker
    the first had just set, and both queued a job that wrote predictions for the same tasks."""
    stale = "0" * 32  # a job Redis no longer has (ended, its result expired)
    real_status = jobs.status
    first: list[str] = []

    def ended_while_another_submit_takes_the_marker(job_id: str) -> dict[str, Any] | None:
        if job_id == stale and not first:
            monkeypatch.setattr(jobs, "status", real_status)
            first.append(jobs.submit(PrelabelRequest("9"))[0])  # the other server, first to clear it
            return None
        return real_status(job_id)

    jobs.connection.set(_marker(jobs.settings.queue_name, "9"), stale)
    monkeypatch.setattr(jobs, "status", ended_while_another_submit_takes_the_marker)
    job_id, created = jobs.submit(PrelabelRequest("9"))
    assert first and not created and job_id == first[0], "one job per project: the other submit's"
