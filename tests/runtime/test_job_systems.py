"""Training and pre-labelling share one interface (`lsml.jobs.JobSystem`), embedded or on RQ (issue 23 Also).

mypy checks the factories' return types against the protocols; this checks what each system says about itself.
Nothing here talks to Redis: building an RQ client opens no connection.
"""

from __future__ import annotations

import pytest

from lsml.jobs import JobSystem
from lsml.prelabel_jobs import PrelabelJobs, make_prelabel_jobs
from lsml.training import make_queue
from lsml.training.queue import TrainingQueue

pytestmark = pytest.mark.unit

MODEL = "tests.fixtures.sample_models:CountingModel"
NOWHERE = "redis://127.0.0.1:1/0"  # never connected to


def systems(settings):
    rq = settings.replace(redis_url=NOWHERE, fit_attempts=4, prelabel_attempts=5)
    return {
        "embedded training": make_queue(settings, MODEL),
        "embedded pre-labelling": make_prelabel_jobs(settings, MODEL),
        "RQ training": make_queue(rq, MODEL),
        "RQ pre-labelling": make_prelabel_jobs(rq, MODEL),
    }


def test_both_systems_are_job_systems_embedded_without_redis_and_rerun_on_rq_only(settings):
    found = systems(settings)
    assert all(isinstance(s, JobSystem) for s in found.values())
    assert isinstance(found["embedded training"], TrainingQueue) and isinstance(found["RQ training"], TrainingQueue)
    assert isinstance(found["embedded pre-labelling"], PrelabelJobs)
    assert isinstance(found["RQ pre-labelling"], PrelabelJobs)
    assert {name: (s.embedded, s.attempts) for name, s in found.items()} == {
        "embedded training": (True, 1),
        "embedded pre-labelling": (True, 1),
        "RQ training": (False, 4),
        "RQ pre-labelling": (False, 5),
    }


def test_an_unknown_job_is_none_in_an_embedded_system(settings):
    found = systems(settings)
    assert found["embedded training"].status("nope") is None
    assert found["embedded pre-labelling"].status("nope") is None
