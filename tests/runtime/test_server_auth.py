import base64

import pytest

from tests.runtime.sample_models import CountingModel


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def client(serve):
    _, c = serve(CountingModel, basic_auth_user="ls", basic_auth_pass="s3cret")
    return c


@pytest.mark.parametrize("method,path", [("get", "/"), ("get", "/health"), ("post", "/setup"),
                                         ("post", "/predict"), ("post", "/webhook"), ("post", "/train"),
                                         ("post", "/job_status"), ("get", "/versions")])
def test_label_studio_routes_need_credentials(client, method, path):
    r = getattr(client, method)(path, json={})
    assert r.status_code == 401 and r.json["error"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    r = getattr(client, method)(path, json={}, headers=basic("ls", "wrong"))
    assert r.status_code == 401
    r = getattr(client, method)(path, json={}, headers=basic("other", "s3cret"))
    assert r.status_code == 401


def test_right_credentials_pass(client):
    assert client.get("/health", headers=basic("ls", "s3cret")).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
def test_probes_and_scrapes_stay_open(client, path):
    assert client.get(path).status_code in (200, 503)


def test_no_auth_configured_means_open(serve):
    _, c = serve(CountingModel)
    assert c.get("/health").status_code == 200
