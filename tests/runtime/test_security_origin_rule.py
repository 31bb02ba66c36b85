"""Issue 22 item 1: pre-labelling sent LABEL_STUDIO_API_KEY to the host an unauthenticated `/setup` named.

Every Label Studio client is now built by `lsml.labelstudio.connect`, which sends a token only to the
origin it is bound to. The attacker is a real HTTP server on a free loopback port
(tests.fixtures.http_recorder) answering like an empty Label Studio; it must see no Authorization header.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from lsml import credentials
from lsml.cli.main import main as cli_main
from lsml.labelstudio import Credential, connect
from lsml.settings import Settings
from lsml.state import make_state
from tests.fixtures.apps import TEXT_CONFIG
from tests.fixtures.http_recorder import Answer
from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import write_backend
from tests.fixtures.sample_models import CountingModel

ROOT = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json"}
ADMIN = {"Authorization": "Bearer admin"}


def attacker_label_studio(http_recorder):
    """An empty 'Label Studio': project 7 with the text config and no tasks."""
    attacker = http_recorder()
    attacker.routes["/api/tasks"] = Answer(200, json.dumps({"tasks": [], "total": 0}).encode(), JSON)
    attacker.routes["/api/projects/7"] = Answer(200, json.dumps({"id": 7, "label_config": TEXT_CONFIG}).encode(), JSON)
    return attacker


def test_prelabel_never_sends_the_configured_key_to_a_setup_hostname(serve, http_recorder):
    """The issue's exploit: key set, LABEL_STUDIO_URL unset, `/setup` naming the attacker without a token,
    then `POST /prelabel` (with the admin token: the admin gate of item 4 is not what is tested here)."""
    attacker = attacker_label_studio(http_recorder)
    _, c = serve(CountingModel, label_studio_api_key="configured-key", admin_token="admin")
    r = c.post("/setup", json={"project": "7", "hostname": attacker.url, "schema": TEXT_CONFIG})
    assert r.status_code == 200, r.json
    r = c.post("/prelabel", json={"project": "7"}, headers=ADMIN)
    assert r.status_code == 201, r.json
    job = r.json["job"]
    status = wait_for(
        lambda: c.post("/job_status", json={"job": job}).json,
        30,
        0.05,
        what=f"job {job} to end",
        until=lambda st: st["status"] in ("finished", "failed"),
    )
    assert status["status"] == "finished", status
    assert any(req.path.startswith("/api/tasks/") for req in attacker.requests)  # it did read the tasks there
    assert attacker.header_values("Authorization") == [None] * len(attacker.requests)


def test_rq_prelabel_job_never_sends_the_configured_key_to_a_setup_hostname(tmp_path, procs, redis_url, http_recorder):
    """The same exploit against a gunicorn server and a real `label-studio-ml worker` (RQ's `perform_prelabel`),
    the `/setup` credential going through Redis."""
    import requests

    from tests.fixtures.rq_procs import start_server

    attacker = attacker_label_studio(http_recorder)
    backend = write_backend(tmp_path / "backend")
    env = {"LABEL_STUDIO_API_KEY": "configured-key", "LSML_ADMIN_TOKEN": "admin"}
    url = start_server(procs, backend, redis_url, workers=1, **env)
    procs.worker(backend, redis_url, **env)
    r = requests.post(
        url + "/setup", json={"project": "7", "hostname": attacker.url, "schema": TEXT_CONFIG}, timeout=30
    )
    assert r.status_code == 200, r.text
    r = requests.post(url + "/prelabel", json={"project": "7"}, headers=ADMIN, timeout=30)
    assert r.status_code == 201, r.text
    job = r.json()["job"]
    status = wait_for(
        lambda: requests.post(url + "/job_status", json={"job": job}, timeout=30).json(),
        60,
        0.2,
        what=f"job {job} to end",
        until=lambda st: st.get("status") in ("finished", "failed"),
    )
    assert status["status"] == "finished", status
    assert any(req.path.startswith("/api/tasks/") for req in attacker.requests)
    assert attacker.header_values("Authorization") == [None] * len(attacker.requests)


def test_predict_cli_without_ls_url_sends_the_key_nowhere(tmp_path, http_recorder, monkeypatch, capsys):
    """`label-studio-ml predict BACKEND` with LABEL_STUDIO_API_KEY in the environment and no --ls-url / LABEL_STUDIO_URL,
    on a backend whose state holds a `/setup` naming the attacker (the same `prepare` RQ's `perform_prelabel` runs)."""
    attacker = attacker_label_studio(http_recorder)
    backend = write_backend(tmp_path / "backend")
    # a module name of its own: other tests leave another `model` module in sys.modules
    (backend / "model.py").rename(backend / "origin_rule_model.py")
    for name in ("LABEL_STUDIO_URL", "MODEL_DIR", "REDIS_URL", "LSML_BACKEND_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LSML_MODEL", "origin_rule_model:Counter")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "configured-key")
    state = make_state(Settings.from_env(env={}, backend_dir=backend))
    state.set("7", credentials.STATE_KEY, credentials.setup_value(attacker.url, None))
    state.set("7", "label_config", TEXT_CONFIG)
    assert cli_main(["predict", str(backend), "--project", "7", "--quiet"]) == 0, capsys.readouterr().err
    assert attacker.requests, "the job read its tasks from the /setup hostname"
    assert attacker.header_values("Authorization") == [None] * len(attacker.requests)


def test_connect_sends_each_token_only_to_its_own_origin(http_recorder):
    ls, other = http_recorder(), http_recorder()
    for server in (ls, other):
        server.routes["/api/version"] = Answer(200, b"{}", JSON)
        server.routes["/api/current-user/whoami"] = Answer(200, b"{}", JSON)
    key, setup = Credential(ls.url, "configured-key"), Credential(other.url + "/", "setup-token")
    keyless = Credential(None, "key-without-url")
    for url in (ls.url, other.url):
        with connect(url, keyless, key, setup) as client:
            client.current_user()
    assert ls.header_values("Authorization") == ["Token configured-key"]
    assert other.header_values("Authorization") == ["Token setup-token"]
    with connect(other.url, keyless, key) as client:  # no credential for this origin: no token at all
        client.current_user()
    assert other.header_values("Authorization")[-1] is None


def _constructions(path: Path) -> list[int]:
    """Lines of `path` that call `LabelStudioClient(...)` (or `lsml.labelstudio.client.LabelStudioClient(...)`)."""
    tree = ast.parse(path.read_text(), str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in ("LabelStudioClient", "Transport", "MediaMixin"):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("tree", ["runtime", "operator"])
def test_every_label_studio_client_is_built_by_connect(tree):
    """The one function that applies the origin rule is the only place a client is constructed."""
    found = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / tree).rglob("*.py"))
        if (lines := _constructions(path))
    }
    expected = {"runtime/lsml/labelstudio/connect.py": found.get("runtime/lsml/labelstudio/connect.py", [])}
    assert found == (expected if tree == "runtime" else {}), found
    if tree == "runtime":
        assert expected["runtime/lsml/labelstudio/connect.py"], "connect() builds the client"
