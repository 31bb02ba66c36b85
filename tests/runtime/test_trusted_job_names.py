"""`TrustedJob` reads a job by its function's name: the names of earlier releases still resolve to today's."""

from __future__ import annotations

import json

import pytest
import redis
from rq.serializers import JSONSerializer

from lsml.training import rq_worker
from lsml.training.rq_queue import JOB_FUNCTION
from lsml.training.trusted_job import ALLOWED_FUNCTIONS, RENAMED_FUNCTIONS, TrustedJob

pytestmark = pytest.mark.unit


def job_naming(function: str) -> TrustedJob:
    """A job as a worker reads it from Redis (the connection is never used: nothing here talks to Redis)."""
    job = TrustedJob(connection=redis.Redis(port=1), serializer=JSONSerializer)
    job.data = json.dumps([function, None, ["1", {"project": "1", "event": "START_TRAINING"}], {}]).encode()
    return job


def test_a_training_queued_by_the_previous_release_runs_the_renamed_entry_point():
    """Before the rename the module was `lsml.training.worker`: its queued trainings still run after an upgrade."""
    job = job_naming("lsml.training.worker.perform_training")
    assert job.func_name == JOB_FUNCTION
    assert job.refusal() is None
    assert job.func is rq_worker.perform_training


def test_every_renamed_name_maps_to_an_allowed_one_and_the_job_function_is_allowed():
    assert set(RENAMED_FUNCTIONS.values()) <= ALLOWED_FUNCTIONS
    assert JOB_FUNCTION in ALLOWED_FUNCTIONS
    assert job_naming("os.system").refusal() is not None
