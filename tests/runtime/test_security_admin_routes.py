"""Issue 22 item 4: the admin routes (`/prelabel`, `/versions/activate`, `/versions/unpin`) refuse without credentials.

Label Studio never calls them, so "Basic auth off" no longer opens them: they take `Bearer <LSML_ADMIN_TOKEN>`,
or Basic auth when it is configured, and answer 403 `admin_disabled` when neither is.
"""

from __future__ import annotations

import json

import pytest

from lsml.store import LocalModelStore
from tests.fixtures.http_recorder import Answer
from tests.fixtures.model_store import publish
from tests.fixtures.sample_models import CountingModel

pytestmark = pytest.mark.unit

ADMIN_ROUTES = [
    ("/prelabel", {"project": "1"}),
    ("/versions/activate", {"project": "1", "version": "v1"}),
    ("/versions/unpin", {"project": "1"}),
]
BASIC = {"Authorization": "Basic dTpw"}  # u:p


@pytest.fixture
def two_versions(settings):
    store = LocalModelStore(settings.model_dir)
    for _ in range(2):
        publish(store, name="fit.json", content="{}")
    return store


@pytest.mark.parametrize("path,body", ADMIN_ROUTES)
def test_admin_routes_are_disabled_unless_configured(serve, two_versions, path, body):
    app, c = serve(CountingModel)
    r = c.post(path, json=body)
    assert r.status_code == 403 and r.json["error"] == "admin_disabled", r.json
    assert "LSML_ADMIN_TOKEN" in r.json["message"] and "BASIC_AUTH_USER" in r.json["message"]
    assert c.post(path, json=body, headers={"Authorization": "Bearer anything"}).status_code == 403
    assert two_versions.current("1").name == "v2" and two_versions.pinned("1") is None  # nothing moved
    assert "lsml_prelabel" not in app.extensions  # no job was made


@pytest.mark.parametrize("path,body", ADMIN_ROUTES)
def test_admin_routes_need_the_admin_token(serve, two_versions, path, body):
    _, c = serve(CountingModel, admin_token="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dTpw"}):
        r = c.post(path, json=body, headers=headers)
        assert r.status_code == 401 and r.json["error"] == "unauthorized", (headers, r.json)
        assert "LSML_ADMIN_TOKEN" in r.json["message"] and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert two_versions.pinned("1") is None
    r = c.post(path, json=body, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code in (200, 201), r.json


def test_with_basic_auth_on_admin_routes_take_basic_or_the_token_and_label_studio_routes_stay_basic(
    serve, two_versions
):
    _, c = serve(CountingModel, basic_auth_user="u", basic_auth_pass="p", admin_token="s3cret")
    body = {"project": "1", "version": "v1"}
    assert c.post("/versions/activate", json=body).status_code == 401
    assert c.post("/versions/activate", json=body, headers=BASIC).status_code == 200
    assert (
        c.post("/versions/unpin", json={"project": "1"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    )
    # the admin token is no key to the Label Studio-facing routes
    assert c.get("/versions?project=1", headers={"Authorization": "Bearer s3cret"}).status_code == 401
    assert c.get("/versions?project=1", headers=BASIC).status_code == 200


def test_basic_auth_alone_enables_the_admin_routes(serve, two_versions):
    _, c = serve(CountingModel, basic_auth_user="u", basic_auth_pass="p")
    r = c.post("/versions/unpin", json={"project": "1"})
    assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"]
    assert c.post("/versions/unpin", json={"project": "1"}, headers=BASIC).status_code == 200


def test_read_only_versions_and_job_status_follow_label_studio_auth(serve, two_versions):
    """Decision (SECURITY.md): `GET /versions` (Label Studio calls it) and `/job_status` only read, so they keep
    the Label Studio routes' rule: open with Basic auth off, Basic auth when it is on."""
    _, c = serve(CountingModel)
    assert c.get("/versions?project=1").status_code == 200
    assert c.post("/job_status", json={"job": "no-such-job"}).status_code == 404
    _, c = serve(CountingModel, basic_auth_user="u", basic_auth_pass="p")
    assert c.get("/versions?project=1").status_code == 401
    assert c.post("/job_status", json={"job": "no-such-job"}).status_code == 401


def test_the_spec_says_admin_routes_need_the_token_or_basic_auth(serve):
    _, c = serve(CountingModel)
    spec = c.get("/openapi.json").json
    assert spec["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "LSML_ADMIN_TOKEN (admin routes)",
    }
    for path, _ in ADMIN_ROUTES:
        op = spec["paths"][path]["post"]
        assert op["security"] == [{"adminToken": []}, {"basicAuth": []}] and {"401", "403"} <= op["responses"].keys()


@pytest.mark.parametrize(
    "flags,env,expected",
    [
        (["--admin-token", "from-flag"], {}, "Bearer from-flag"),
        ([], {"LSML_ADMIN_TOKEN": "from-env"}, "Bearer from-env"),
        ([], {"LSML_ADMIN_TOKEN": "from-env\n"}, "Bearer from-env"),  # a Secret file's newline
        ([], {"BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "p"}, "Basic dTpw"),
    ],
)
def test_predict_server_sends_the_admin_credential(http_recorder, monkeypatch, capsys, flags, env, expected):
    """`label-studio-ml predict --server` against a recording server playing the backend."""
    from lsml.cli.main import main as cli_main

    for name in ("LSML_ADMIN_TOKEN", "BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    server = http_recorder()
    server.routes["/prelabel"] = Answer(201, json.dumps({"job": "j1"}).encode(), {"Content-Type": "application/json"})
    done = {"status": "finished", "progress": {"written": 0}}
    server.routes["/job_status"] = Answer(200, json.dumps(done).encode(), {"Content-Type": "application/json"})
    assert cli_main(["predict", "--project", "1", "--server", server.url, "--quiet", *flags]) == 0, capsys.readouterr()
    (prelabel,) = [r for r in server.requests if r.path == "/prelabel"]
    assert prelabel.headers["authorization"] == expected
    assert all("from-" not in (v or "") for v in capsys.readouterr())  # the token is never printed


def test_the_admin_token_from_a_secret_file_is_read_without_its_newline(serve, two_versions):
    from lsml.settings import Settings

    assert Settings.from_env({"LSML_ADMIN_TOKEN": "s3cret\n"}).admin_token == "s3cret"
    assert Settings.from_env({"LSML_ADMIN_TOKEN": " \n"}).admin_token is None
    _, c = serve(CountingModel, admin_token=Settings.from_env({"LSML_ADMIN_TOKEN": "s3cret\n"}).admin_token)
    r = c.post("/versions/unpin", json={"project": "1"}, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200, r.json


def test_help_says_the_admin_routes_need_credentials(capsys):
    from lsml.cli.main import main as cli_main

    for command in ("predict", "activate", "unpin"):
        with pytest.raises(SystemExit):
            cli_main([command, "--help"])
        assert "LSML_ADMIN_TOKEN" in capsys.readouterr().out.replace("\n", " "), command
