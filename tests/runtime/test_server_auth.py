import base64

import pytest

from tests.fixtures.sample_models import CountingModel

pytestmark = pytest.mark.unit


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def client(serve):
    _, c = serve(CountingModel, basic_auth_user="ls", basic_auth_pass="s3cret")
    return c


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/"),
        ("get", "/health"),
        ("post", "/setup"),
        ("post", "/predict"),
        ("post", "/webhook"),
        ("post", "/train"),
        ("post", "/job_status"),
        ("get", "/versions"),
    ],
)
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


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_probes_stay_open(client, path):
    assert client.get(path).status_code in (200, 503)


def test_metrics_need_credentials_when_auth_is_on(client, text_config):
    """Issue 10 item 9: /metrics labels name every project the backend serves (and its versions);
    with Basic auth on, a scrape needs the same credentials (Prometheus `basic_auth`)."""
    headers = basic("ls", "s3cret")
    assert (
        client.post(
            "/setup",
            json={
                "project": "31.1",
                "schema": text_config,
                "access_token": "tok-31",
                "hostname": "http://ls.internal:8080",
            },
            headers=headers,
        ).status_code
        == 200
    )
    r = client.get("/metrics")
    assert r.status_code == 401 and r.json["error"] == "unauthorized" and "31" not in r.get_data(as_text=True)
    r = client.get("/metrics", headers=headers)
    text = r.get_data(as_text=True)
    assert r.status_code == 200 and "lsml_http_requests_total" in text
    assert "tok-31" not in text and "ls.internal" not in text  # ids and versions only, never /setup's secrets


def test_metrics_stay_open_when_auth_is_off(serve):
    _, c = serve(CountingModel)
    assert c.get("/metrics").status_code == 200


def test_readyz_detail_needs_auth(serve, caplog):
    """Issue 10 item 9: the model's import error (paths, module names, values) was served to anyone."""
    from tests.fixtures.polling import wait_for

    _, c = serve("no_such_module_xyz:Model", basic_auth_user="ls", basic_auth_pass="s3cret")
    r = wait_for(
        lambda: c.get("/readyz"),
        10,
        0.02,
        what="the model import to fail",
        until=lambda r: r.json["error"] != "the model class is still being imported",
    )
    assert r.status_code == 503 and r.json == {
        "status": "not_ready",
        "error": "the model class could not be imported (see the server log)",
    }
    r = c.get("/readyz", headers=basic("ls", "wrong"))
    assert "no_such_module_xyz" not in r.get_data(as_text=True)
    r = c.get("/readyz", headers=basic("ls", "s3cret"))
    assert r.status_code == 503 and "ModuleNotFoundError" in r.json["error"] and "no_such_module_xyz" in r.json["error"]
    assert "No module named 'no_such_module_xyz'" in caplog.text  # the full detail is in the log


def test_no_auth_configured_means_open(serve):
    _, c = serve(CountingModel)
    assert c.get("/health").status_code == 200
