"""`lsml.training.publishing`: what a publish triggers is subscribed, and a failing subscriber never undoes it."""

from __future__ import annotations

import logging

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from lsml.store import LocalModelStore
from lsml.training import TrainingRequest, publishing, run_training
from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import make_queue, write_backend
from tests.fixtures.sample_models import CountingModel, NoPublishModel


@pytest.fixture
def subscribe():
    """subscribe(hook): on_publish for this test only."""
    hooks = []

    def _subscribe(hook):
        hooks.append(hook)
        publishing.on_publish(hook)

    yield _subscribe
    for hook in hooks:
        publishing.unsubscribe(hook)


def test_every_subscriber_hears_of_each_published_version_once(settings, text_config, subscribe):
    heard = []
    hook = lambda s, project, version: heard.append((s, project, version))  # noqa: E731
    subscribe(hook)
    subscribe(hook)  # subscribing twice still calls it once
    request = TrainingRequest("1", "START_TRAINING", {}, text_config)
    run_training(CountingModel, request, settings)
    run_training(NoPublishModel, request, settings)  # fit returned False: nothing published, nobody told
    run_training(CountingModel, request, settings)
    assert heard == [(settings, "1", "v1"), (settings, "1", "v2")]


def test_a_failing_subscriber_is_logged_and_the_version_stays_published(settings, text_config, subscribe, caplog):
    heard = []

    def broken(s, project, version):
        raise RuntimeError("queue unreachable")

    subscribe(broken)
    subscribe(lambda s, project, version: heard.append(version))
    with caplog.at_level(logging.WARNING, logger="lsml.training"):
        out = run_training(CountingModel, TrainingRequest("1", "START_TRAINING", {}, text_config), settings)
    assert out["published"] and out["model_version"] == "v1"
    assert LocalModelStore(settings.model_dir).current("1").name == "v1"
    assert heard == ["v1"], "the next subscriber still runs"
    assert "broken after publishing v1 failed" in caplog.text and "queue unreachable" in caplog.text


def _prelabel_jobs(redis_url: str, queue_name: str) -> list[Job]:
    """Every pre-labelling job the queue knows of, whatever its state."""
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
    ids = set(queue.job_ids)
    for registry in (StartedJobRegistry, FinishedJobRegistry, FailedJobRegistry):
        ids |= set(registry(queue=queue).get_job_ids())
    jobs = Job.fetch_many(sorted(ids), connection=connection, serializer=JSONSerializer)
    return [j for j in jobs if j is not None and j.func_name == "lsml.prelabel_jobs.perform_prelabel"]


@pytest.mark.redis
def test_the_worker_subscribes_prelabelling_so_a_published_version_queues_re_prediction(tmp_path, procs, redis_url):
    """`label-studio-ml worker` with LSML_PRELABEL_ON_PUBLISH wires pre-labelling to what it publishes
    (training itself never imports pre-labelling): the training's publish queues a job for the
    project's unlabelled tasks. (The job itself then fails here: no Label Studio; only its queueing is checked.)"""
    backend = write_backend(tmp_path / "backend")
    queue = make_queue(redis_url)
    job_id = queue.submit(TrainingRequest("1", "ANNOTATION_CREATED", {"n": 1}, "<View/>"))
    procs.worker(backend, redis_url, LSML_PRELABEL_ON_PUBLISH="1")
    status = wait_for(
        lambda: (s := queue.status(job_id))["status"] in ("finished", "failed") and s, 60, what="the training"
    )
    assert status["status"] == "finished" and status["model_version"] == "v1", procs.log("worker")
    jobs = wait_for(lambda: _prelabel_jobs(redis_url, queue.queue.name), 30, what="a pre-labelling job")
    assert len(jobs) == 1, procs.log("worker")
    project, request = jobs[0].args
    assert project == "1" and request["mode"] == "unlabelled"
