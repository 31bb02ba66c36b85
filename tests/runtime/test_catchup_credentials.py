"""Catch-up sends a Label Studio credential only to the origin it belongs to (SECURITY.md, "Catch-up").

Two real HTTP servers play Label Studio: the configured one (`LABEL_STUDIO_URL`)
and a host a `/setup` named (anyone who reaches `/setup` can name one).
"""

from __future__ import annotations

import json

from lsml import credentials
from lsml.catchup import Checker
from lsml.settings import Settings
from lsml.state import MemoryState
from lsml.store import LocalModelStore
from lsml.training import EmbeddedQueue
from tests.fixtures.http_recorder import Answer

KEY = "configured-legacy-key"
SETUP_TOKEN = "token-sent-with-setup"


def _label_studio(recorder) -> None:
    """Answers of a Label Studio project without annotations."""
    json_headers = {"Content-Type": "application/json"}
    recorder.routes["/api/projects/"] = Answer(
        200, json.dumps({"id": 3, "total_annotations_number": 0, "label_config": "<View/>"}).encode(), json_headers
    )
    recorder.routes["/api/tasks/"] = Answer(200, json.dumps({"tasks": [], "total": 0}).encode(), json_headers)


def _checker(tmp_path, settings: Settings, setup_hostname: str) -> Checker:
    store = LocalModelStore(tmp_path / "models")
    with store.staging("3") as staged:
        store.publish("3", staged)
    state = MemoryState()
    state.set("3", credentials.STATE_KEY, credentials.setup_value(setup_hostname, SETUP_TOKEN))
    queue = EmbeddedQueue("tests.fixtures.sample_models:CountingModel", settings)
    return Checker(settings, store, state, queue, lambda: ("ANNOTATION_CREATED",))


def test_the_configured_key_goes_only_to_label_studio_url_never_to_a_setup_named_host(tmp_path, http_recorder):
    configured, named = http_recorder(), http_recorder()
    _label_studio(configured)
    _label_studio(named)
    settings = Settings(model_dir=tmp_path / "models", label_studio_url=configured.url, label_studio_api_key=KEY)

    result = _checker(tmp_path, settings, named.url).check("3")

    assert result.outcome == "baseline"
    assert named.requests == []
    assert configured.requests and set(configured.header_values("Authorization")) == {f"Token {KEY}"}


def test_without_label_studio_url_a_setup_token_goes_only_to_the_host_it_came_with(tmp_path, http_recorder):
    named = http_recorder()
    _label_studio(named)
    settings = Settings(model_dir=tmp_path / "models", label_studio_api_key=KEY)  # a key without a URL: sent nowhere

    result = _checker(tmp_path, settings, named.url).check("3")

    assert result.outcome == "baseline"
    assert set(named.header_values("Authorization")) == {f"Token {SETUP_TOKEN}"}


def test_without_any_credential_the_project_is_skipped(tmp_path, http_recorder):
    settings = Settings(model_dir=tmp_path / "models")
    checker = _checker(tmp_path, settings, "")
    checker.state.delete("3", credentials.STATE_KEY)
    assert checker.check("3").outcome == "skipped"
