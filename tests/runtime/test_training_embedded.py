"""EmbeddedQueue: a background thread, statuses in memory, coalescing per project."""

import threading

import pytest

from lsml.training import EmbeddedQueue, TrainingRequest, make_queue
from lsml.training.queue import TrainingQueue
from tests.fixtures.sample_models import CountingModel

pytestmark = pytest.mark.unit


class GatedRunner:
    """Stands in for run_training: blocks until released, records what ran."""

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()
        self.ran = []

    def __call__(self, model_ref, request, settings, job_id=None):
        self.started.set()
        self.gate.wait(10)
        self.ran.append((request.project, request.event, len(request.coalesced)))
        return {"model_version": f"v{len(self.ran)}", "published": True}


def req(project="1", event="ANNOTATION_CREATED", n=0):
    return TrainingRequest(project=project, event=event, payload={"n": n})


def test_make_queue_without_redis_is_embedded(settings):
    q = make_queue(settings, CountingModel)
    assert isinstance(q, EmbeddedQueue) and isinstance(q, TrainingQueue) and q.ping()


def test_a_job_runs_and_reports_its_version(settings):
    runner = GatedRunner()
    runner.gate.set()
    finished = []
    q = EmbeddedQueue(CountingModel, settings, runner=runner, on_finished=lambda p, r: finished.append(p))
    job = q.submit(req())
    st = q.wait(job)
    assert st["status"] == "finished" and st["model_version"] == "v1" and st["project"] == "1"
    assert finished == ["1"] and q.stats() == {"queued": 0, "running": 0, "failed": 0, "finished": 1}
    assert q.status("unknown") is None


def test_triggers_during_a_run_coalesce_into_one_more_run(settings):
    runner = GatedRunner()
    q = EmbeddedQueue(CountingModel, settings, runner=runner)
    first = q.submit(req(n=0))
    runner.started.wait(5)
    assert q.status(first)["status"] == "started"
    second = q.submit(req(n=1))
    third = q.submit(req(n=2, event="ANNOTATION_UPDATED"))
    fourth = q.submit(req(n=3))
    assert second == third == fourth != first
    assert q.stats()["queued"] == 1 and q.stats()["running"] == 1
    runner.gate.set()
    q.wait(fourth)
    q.wait_idle()
    assert runner.ran == [("1", "ANNOTATION_CREATED", 0), ("1", "ANNOTATION_CREATED", 2)]


def test_projects_queue_separately(settings):
    runner = GatedRunner()
    q = EmbeddedQueue(CountingModel, settings, runner=runner)
    q.submit(req("1"))
    runner.started.wait(5)
    a = q.submit(req("1"))
    b = q.submit(req("2"))
    assert a != b and q.stats()["queued"] == 2
    runner.gate.set()
    q.wait_idle()
    assert sorted(p for p, _, _ in runner.ran) == ["1", "1", "2"]


def test_a_failing_job_is_reported_and_the_runner_goes_on(settings):
    calls = []

    def runner(model_ref, request, settings, job_id=None):
        calls.append(request.project)
        if request.project == "bad":
            raise RuntimeError("boom")
        return {"model_version": "v1", "published": True}

    q = EmbeddedQueue(CountingModel, settings, runner=runner)
    bad = q.submit(req("bad"))
    good = q.submit(req("good"))
    assert q.wait(bad)["status"] == "failed" and "RuntimeError: boom" in q.status(bad)["error"]
    assert q.wait(good)["status"] == "finished"
    assert q.stats()["failed"] == 1
