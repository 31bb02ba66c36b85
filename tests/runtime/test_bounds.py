"""Memory stays bounded whatever requests arrive: loaded models, request bodies, coalesced triggers."""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter

import pytest

from lsml.settings import Settings
from lsml.training.embedded import EmbeddedQueue
from lsml.training.queue import MAX_COALESCED, TrainingRequest
from tests.fixtures.polling import wait_for
from tests.fixtures.sample_models import CountingModel

LIMIT = 5


def evictions(client) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    match = re.search(r"^lsml_model_evictions_total ([0-9.e+]+)$", text, re.M)
    assert match, "lsml_model_evictions_total missing from /metrics"
    return float(match.group(1))


def test_forty_project_ids_leave_at_most_max_loaded_models_instances(serve, text_config, caplog):
    app, client = serve(CountingModel, max_loaded_models=LIMIT)
    registry = app.extensions["lsml"].registry
    before = evictions(client)
    with caplog.at_level(logging.INFO, logger="lsml.loader"):
        for project in range(1, 41):
            r = client.post(
                "/predict",
                json={
                    "tasks": [{"id": 1, "data": {"text": "x"}}],
                    "project": f"{project}.1",
                    "label_config": text_config,
                },
            )
            assert r.status_code == 200, r.json
            assert len(registry._entries) <= LIMIT
    assert len(registry.loaded()) <= LIMIT
    assert set(registry.loaded()) == {str(p) for p in range(36, 41)}, "the most recently used ones stay"
    assert evictions(client) - before == 40 - LIMIT
    assert caplog.text.count("evicted: more than 5 projects loaded (LSML_MAX_LOADED_MODELS)") == 40 - LIMIT
    metrics_text = client.get("/metrics").get_data(as_text=True)
    assert 'lsml_model_version_number{project="1"}' not in metrics_text, "an evicted project's series goes"
    # an evicted project comes back on its next request, rebuilt from the store
    r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "1.1"})
    assert r.status_code == 200 and "1" in registry.loaded()


def test_recently_used_projects_are_not_evicted(serve, text_config):
    app, client = serve(CountingModel, max_loaded_models=2)
    registry = app.extensions["lsml"].registry
    body = {"tasks": [{"id": 1, "data": {"text": "x"}}], "label_config": text_config}
    for project in ("1", "2", "1", "3"):
        assert client.post("/predict", json={**body, "project": project}).status_code == 200
    assert set(registry.loaded()) == {"1", "3"}


def test_the_default_body_limit_is_ten_mib():
    settings = Settings.from_env(env={})
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.max_loaded_models == 16


def test_a_body_over_the_default_limit_gets_413(serve):
    _, client = serve(CountingModel, max_body_bytes=Settings.from_env(env={}).max_body_bytes)
    r = client.post("/predict", data=b"[" + b"0," * (6 * 1024 * 1024) + b"0]", content_type="application/json")
    assert r.status_code == 413 and r.json["error"] == "body_too_large"


def test_the_embedded_queue_keeps_the_newest_coalesced_triggers_and_counts_the_dropped(settings):
    started, release = [], threading.Event()

    def runner(model_ref, request, settings, job_id=None):
        started.append(request)
        release.wait(10)
        return {"model_version": "v1", "published": False}

    queue = EmbeddedQueue(CountingModel, settings, runner=runner)
    try:
        queue.submit(TrainingRequest(project="1", event="START_TRAINING", payload={"n": -1}))
        wait_for(lambda: started, 10, 0.02, what="the first fit to start")
        total = MAX_COALESCED + 250
        for n in range(total + 1):  # the first queued one, then `total` folded into it
            job = queue.submit(TrainingRequest(project="1", event="ANNOTATION_CREATED", payload={"n": n}))
        status = queue.status(job)
        assert status["coalesced"] == MAX_COALESCED and status["coalesced_dropped"] == 250
        release.set()
        queue.wait(job)
        request = started[-1]
        assert request.payload == {"n": total}, "fit gets the newest trigger"
        assert len(request.coalesced) == MAX_COALESCED
        assert request.coalesced[-1]["data"] == {"n": total - 1}, "and the newest earlier ones, oldest first"
        assert request.coalesced[0]["data"] == {"n": total - MAX_COALESCED}
        assert request.coalesced_dropped == 250
    finally:
        release.set()
        queue.close()


@pytest.mark.redis
def test_the_redis_coalescer_keeps_the_newest_triggers_and_counts_the_dropped(redis_url):
    from tests.fixtures.rq_procs import make_queue

    queue = make_queue(redis_url)
    total = MAX_COALESCED + 50
    ids = {
        queue.submit(TrainingRequest(project="1", event="ANNOTATION_CREATED", payload={"n": n})) for n in range(total)
    }
    assert len(ids) == 1
    claimed = TrainingRequest.from_dict(queue.coalescer.claim("1", ids.pop()))
    assert claimed.payload == {"n": total - 1}
    assert len(claimed.coalesced) == MAX_COALESCED - 1  # the list holds the newest trigger too
    assert claimed.coalesced[0]["data"] == {"n": 50} and claimed.coalesced[-1]["data"] == {"n": total - 2}
    assert claimed.coalesced_dropped == 50


#: The admin routes (/prelabel, /versions/activate, /versions/unpin) need a credential (issue 22 item 4).
ADMIN_TOKEN = "admin"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _junk_requests(project: str) -> list[tuple[str, str, dict | None]]:
    """Every route that names a project, with a project no one has set up: none may create anything."""
    return [
        ("POST", "/versions/unpin", {"project": project}),
        ("POST", "/versions/activate", {"project": project, "version": "v1"}),
        ("POST", "/versions/activate", {"project": project, "version": "v1", "pin": False}),
        ("GET", f"/versions?project={project}", None),
        ("POST", "/versions", {"project": project}),
        ("POST", "/job_status", {"job": project}),
        ("POST", "/setup", {"project": project}),
        ("POST", "/predict", {"tasks": [{"id": 1, "data": {"text": "x"}}], "project": project}),
        ("POST", "/webhook", {"action": "PROJECT_UPDATED", "project": {"id": project, "label_config": "<View/>"}}),
        ("POST", "/webhook", {"action": "TASKS_CREATED", "project": {"id": project}}),
    ]


def test_requests_naming_unknown_projects_create_no_directory_and_no_state(serve, settings):
    """Issue 22 item 8: 300 `POST /versions/unpin {"project": "junk..."}` made 301 directories under MODEL_DIR."""
    from lsml import versions

    app, client = serve(
        CountingModel, pinned_versions=(("*", "v3"),), admin_token=ADMIN_TOKEN
    )  # a pin every project looks up
    state = app.extensions["lsml"].registry.state
    warned = set(versions._warned)
    model_dir = settings.model_dir
    before = sorted(model_dir.rglob("*")) if model_dir.exists() else []
    projects = [f"junk{i}" for i in range(30)]
    statuses: Counter = Counter()
    for project in projects:
        for method, path, body in _junk_requests(project):
            r = client.open(path, method=method, json=body, headers=ADMIN)
            assert r.status_code < 500, (path, r.json)
            statuses[(path, r.status_code)] += 1
    after = sorted(model_dir.rglob("*")) if model_dir.exists() else []
    assert after == before, f"{len(after) - len(before)} new paths under MODEL_DIR, e.g. {after[:3]}"
    assert all(state.items(project) == {} for project in projects), "state written for an unknown project"
    assert versions._warned == warned, "a warning remembered per unknown project"
    assert statuses[("/versions/activate", 404)] == 60 and statuses[("/versions/unpin", 200)] == 30, statuses


def post_prelabel(client, body: dict):
    """`POST /prelabel`, an admin route (SECURITY.md, issue 22 item 4): the servers here take ADMIN_TOKEN."""
    return client.post("/prelabel", json=body, headers=ADMIN)


@pytest.fixture
def silent_label_studio(http_recorder):
    """A Label Studio that accepts every request and answers none while the test runs (then 503)."""
    release = threading.Event()
    server = http_recorder()

    def hold(_request):
        from tests.fixtures.http_recorder import Answer

        release.wait(120)
        return Answer(503, b"{}", {"Content-Type": "application/json"})

    server.routes["/"] = hold
    yield server
    release.set()


def _prelabel_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("lsml-prelabel"))


def _set_up(client, projects: list[str], text_config: str, label_studio_url: str) -> None:
    for project in projects:
        body = {"project": project, "schema": text_config, "hostname": label_studio_url, "access_token": "t"}
        r = client.post("/setup", json=body)
        assert r.status_code == 200, r.json


def test_running_and_queued_prelabel_jobs_are_bounded(serve, text_config, silent_label_studio):
    """Issue 22 item 3: 500 `POST /prelabel` against a Label Studio that never answers started 502 threads
    and kept 500 jobs in memory."""
    running, queued = 2, 3
    app, client = serve(
        CountingModel, prelabel_max_running=running, prelabel_max_queued=queued, admin_token=ADMIN_TOKEN
    )
    threads_before = _prelabel_threads()
    projects = [str(p) for p in range(1, 13)]
    _set_up(client, projects, text_config, silent_label_studio.url)
    answers = [post_prelabel(client, {"project": project}) for project in projects]
    accepted = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code == 429]
    assert len(accepted) == running + queued and len(refused) == len(projects) - running - queued, [
        r.status_code for r in answers
    ]
    for r in refused:
        assert r.json["error"] == "prelabel_busy" and "LSML_PRELABEL_MAX_QUEUED" in r.json["message"], r.json
        assert int(r.headers["Retry-After"]) > 0
    wait_for(
        lambda: len(silent_label_studio.requests) >= running, timeout=30, what="the running jobs reach Label Studio"
    )
    assert _prelabel_threads() - threads_before <= running
    jobs = app.extensions["lsml_prelabel"]
    assert len(jobs._jobs) == running + queued
    statuses = [client.post("/job_status", json={"job": r.json["job"]}).json["status"] for r in accepted]
    assert statuses.count("started") == running and statuses.count("queued") == queued, statuses


def test_prelabel_jobs_take_their_model_from_the_bounded_cache(serve, text_config, silent_label_studio):
    """Issue 22 item 3: each job built a model of its own, outside LSML_MAX_LOADED_MODELS."""
    app, client = serve(CountingModel, prelabel_max_running=2, admin_token=ADMIN_TOKEN)
    registry = app.extensions["lsml"].registry
    projects = ["1", "2"]
    _set_up(client, projects, text_config, silent_label_studio.url)
    for project in projects:
        registry.get(project)  # built and cached, as /predict would have it
    built = CountingModel.built
    for project in projects:
        assert post_prelabel(client, {"project": project}).status_code == 201
    wait_for(lambda: len(silent_label_studio.requests) >= 2, timeout=30, what="both jobs reach Label Studio")
    assert CountingModel.built == built, "a job of the served version takes the registry's model, builds none"
    assert set(registry.loaded()) == set(projects)


def test_ended_prelabel_jobs_are_forgotten_past_the_limit_even_behind_an_active_one(
    serve, settings, text_config, silent_label_studio
):
    """Issue 22 item 3: the trim of the job list stopped at the oldest job when it was still active, so every
    later job stayed in memory."""
    from lsml.prelabel import PrelabelRequest
    from lsml.prelabel_jobs import EmbeddedPrelabelJobs

    _, client = serve(CountingModel)
    _set_up(client, ["1"], text_config, silent_label_studio.url)  # its job hangs on Label Studio
    jobs = EmbeddedPrelabelJobs(CountingModel, settings, max_jobs=5)
    hanging, _ = jobs.submit(PrelabelRequest("1"))
    wait_for(lambda: silent_label_studio.requests, timeout=30, what="the first job reaches Label Studio")
    for project in range(2, 14):  # never set up and no LABEL_STUDIO_URL: each fails at once
        job, created = jobs.submit(PrelabelRequest(str(project)))
        assert created and jobs.wait(job, timeout=30)["status"] == "failed"
    assert len(jobs._jobs) == 5, len(jobs._jobs)
    assert jobs.status(hanging)["status"] == "started", "the active job is kept"


def test_rq_prelabel_jobs_waiting_on_the_queue_are_bounded(serve, redis_url):
    """Issue 22 item 3, with Redis: each submit for another project put one more job on the queue (no worker
    here: they all wait), without bound."""
    _, client = serve(CountingModel, redis_url=redis_url, prelabel_max_queued=3, admin_token=ADMIN_TOKEN)
    answers = [post_prelabel(client, {"project": str(project)}) for project in range(1, 11)]
    assert [r.status_code for r in answers] == [201] * 3 + [429] * 7, [r.json for r in answers]
    for r in answers[3:]:
        assert r.json["error"] == "prelabel_busy" and "LSML_PRELABEL_MAX_QUEUED=3" in r.json["message"], r.json
        assert int(r.headers["Retry-After"]) > 0
    again = post_prelabel(client, {"project": "1"})
    assert again.status_code == 200 and again.json["job"] == answers[0].json["job"], "a project's active job"
    import redis

    connection = redis.Redis.from_url(redis_url)
    assert connection.llen("rq:queue:lsml-training") == 3
    assert connection.get("lsml:prelabel:lsml-training:4") is None, "a refused submit leaves no marker behind"
