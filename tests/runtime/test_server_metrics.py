import base64
import re

import pytest

from tests.fixtures.polling import wait_for
from tests.fixtures.sample_models import CountingModel

pytestmark = pytest.mark.unit


def test_metrics_expose_requests_latency_errors_model_and_queue(serve, text_config):
    app, c = serve(CountingModel)
    c.post("/setup", json={"project": "31.1", "schema": text_config})
    c.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "31.1"})
    c.post("/predict", data="bad")
    r = c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 31}})
    app.extensions["lsml"].queue.wait(r.json["job"])
    r = c.get("/metrics")
    assert r.status_code == 200 and r.content_type.startswith("text/plain")
    text = r.get_data(as_text=True)
    assert 'lsml_http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert 'lsml_http_requests_total{method="POST",route="/predict",status="400"}' in text
    assert 'lsml_http_request_duration_seconds_bucket{le="0.001",route="/predict"}' in text
    assert 'lsml_http_errors_total{error="invalid_json"}' in text
    assert "lsml_model_load_seconds_count" in text
    assert re.search(r'lsml_model_version_info\{model_version="(0\.0\.1|v1)",project="31"\} 1\.0', text)
    assert re.search(r'lsml_model_version_number\{project="31"\} [01]\.0', text)
    assert "lsml_training_queue_depth" in text and "lsml_training_jobs_running" in text
    assert 'lsml_training_submitted_total{event="START_TRAINING"}' in text
    assert "lsml_predict_duration_seconds_count" in text


def _series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("auth", [True, False], ids=["auth-on", "auth-off"])
def test_made_up_methods_and_unauthenticated_requests_add_no_series(serve, auth):
    """Issue 22 item 5: 2,000 requests with made-up methods grew /metrics from 6 KB to 362 KB."""
    overrides = {"basic_auth_user": "u", "basic_auth_pass": "p"} if auth else {}
    _, c = serve(CountingModel, **overrides)
    headers = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()} if auth else {}
    c.open("/anything", method="X0", headers=headers)  # every kind of request once, so that its series exists
    c.open("/health", method="X0", headers=headers)
    c.open("/health", method="X0")
    c.get("/metrics", headers=headers)
    before = _series(c.get("/metrics", headers=headers).get_data(as_text=True))
    for i in range(1, 201):
        c.open(f"/anything{i}", method=f"X{i:06d}")
        c.open("/health", method=f"X{i:06d}")
        c.open("/health", method=f"X{i:06d}", headers=headers)
    after = _series(c.get("/metrics", headers=headers).get_data(as_text=True))
    assert len(after) == len(before), [
        line for line in after if line.split(" ")[0] not in {b.split(" ")[0] for b in before}
    ]
    assert not [line for line in after if "X0" in line]
    if auth:
        assert any('method="any",route="unauthenticated",status="401"' in line for line in after)
    assert any('method="other",route="unmatched",status="405"' in line for line in after)


def test_the_served_versions_fit_duration_comes_from_its_metadata(serve, text_config):
    """Fits may run in an RQ worker, which serves no /metrics: the version records how long its fit ran and the
    server reports it once it serves that version (lsml_model_fit_seconds, on the Grafana dashboard)."""
    app, c = serve(CountingModel)
    c.post("/setup", json={"project": "32", "schema": text_config})
    r = c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 32}})
    app.extensions["lsml"].queue.wait(r.json["job"])
    fit_seconds = app.extensions["lsml"].registry.store.find("32", "v1").metadata["fit_seconds"]
    assert isinstance(fit_seconds, float) and fit_seconds > 0

    def reported():
        c.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "32"})  # serves v1 once built
        found = re.search(r'lsml_model_fit_seconds\{project="32"\} (\S+)', c.get("/metrics").get_data(as_text=True))
        return float(found.group(1)) if found else None

    shown = wait_for(reported, 30, 0.2, "the server to report v1's fit duration", until=lambda v: v is not None)
    assert shown == fit_seconds
