"""`label_studio_ml` (lsml's facade of label-studio-ml-backend's import path) on lsml's engine.

The model classes here are written against `label_studio_ml`, as a reference backend is; the app
comes from `label_studio_ml.api.init_app`, as a reference `_wsgi.py` builds it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import lsml
from label_studio_ml.api import init_app
from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse
from lsml.model import bumped_version_name
from lsml.settings import Settings
from lsml.state import MemoryState
from lsml.store import make_store
from lsml.training.job import run_training
from lsml.training.queue import TrainingRequest
from tests.fixtures.polling import wait_for

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="Positive"/><Choice value="Negative"/></Choices>
</View>"""


class ReferenceModel(LabelStudioMLBase):
    """A reference-style model: names its version in setup, answers with ModelResponse, trains in fit."""

    built = 0
    fits: list[str] = []
    lock = threading.Lock()

    def setup(self):
        with type(self).lock:
            type(self).built += 1
        self.set("model_version", "ReferenceModel-v0.0.1")

    def predict(self, tasks, context=None, **kwargs):
        from_name, to_name, value = self.label_interface.get_first_tag_occurence("Choices", "Text")
        predictions = [
            {
                "result": [
                    {"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": ["Positive"]}}
                ],
                "score": 0.5,
                "model_version": self.get("model_version"),
            }
            for _ in tasks
        ]
        return ModelResponse(predictions=predictions, model_version=self.get("model_version"))

    def fit(self, event, data, **kwargs):
        type(self).fits.append(event)
        self.bump_model_version()
        return {"trained_on": event}


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """MODEL_DIR for apps built by init_app (it reads the environment, as a reference _wsgi.py expects)."""
    path = tmp_path / "models"
    for name in ("REDIS_URL", "LSML_MODEL", "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "LABEL_STUDIO_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_DIR", str(path))
    monkeypatch.setenv("LSML_RELOAD_INTERVAL", "0")
    ReferenceModel.built = 0
    ReferenceModel.fits = []
    return path


@pytest.fixture
def apps():
    """init_app's apps, their training queues closed after the test."""
    made = []
    yield made
    for app in made:
        close = getattr(app.extensions["lsml"].queue, "close", None)
        if close:
            close()


def test_the_facade_is_lsml_itself():
    assert LabelStudioMLBase is lsml.LabelStudioMLBase
    assert issubclass(ModelResponse, lsml.ModelResponse)
    import label_studio_ml.model

    assert label_studio_ml.model.ModelResponse is ModelResponse


def test_init_app_serves_a_reference_model_built_once_and_trains_it_off_the_request(model_dir, apps):
    app = init_app(model_class=ReferenceModel)
    apps.append(app)
    assert "lsml" in app.extensions  # lsml's server, not a copy of the reference's
    client = app.test_client()
    assert client.get("/health").json == {"status": "UP", "model_class": "ReferenceModel"}
    assert client.post("/setup", json={"project": "7.1700000000", "schema": CONFIG}).status_code == 200
    tasks = [{"id": 1, "data": {"text": "fine"}}, {"id": 2, "data": {"text": "also fine"}}]
    for _ in range(3):
        r = client.post("/predict", json={"tasks": tasks, "project": "7.1700000000", "label_config": CONFIG})
        assert r.status_code == 200, r.json
        assert r.json["model_version"] == "ReferenceModel-v0.0.1"  # the model's own name, untrained
        assert [p["result"][0]["value"]["choices"] for p in r.json["results"]] == [["Positive"], ["Positive"]]
    assert ReferenceModel.built == 1  # the reference builds the class on every request

    r = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 7, "label_config": CONFIG}})
    assert r.status_code == 201 and r.json["status"] == "queued"  # answered before fit ran
    body = wait_for(
        lambda: client.post("/predict", json={"tasks": tasks, "project": "7"}).json,
        30,
        0.1,
        what="predictions of the published version",
        until=lambda b: b.get("model_version") == "v1",
    )
    assert {p["model_version"] for p in body["results"]} == {"v1"}
    assert ReferenceModel.fits == ["ANNOTATION_CREATED"]
    version = make_store(Settings.from_env()).current("7")
    assert version is not None and version.metadata["own_version"] == "ReferenceModel-v0.1.0"  # bumped in fit
    assert version.metadata["result"] == {"trained_on": "ANNOTATION_CREATED"}


def test_init_app_takes_basic_auth_from_its_arguments(model_dir, apps):
    app = init_app(model_class=ReferenceModel, basic_auth_user="user", basic_auth_pass="secret")
    apps.append(app)
    client = app.test_client()
    assert client.post("/setup", json={"project": "1", "schema": CONFIG}).status_code == 401
    ok = client.post("/setup", json={"project": "1", "schema": CONFIG}, auth=("user", "secret"))
    assert ok.status_code == 200


def test_init_app_refuses_half_of_the_basic_auth_pair_and_a_class_that_is_no_model(model_dir):
    with pytest.raises(ValueError, match="BASIC_AUTH_PASS"):
        init_app(model_class=ReferenceModel, basic_auth_user="user")
    with pytest.raises(ValueError, match="subclass of LabelStudioMLBase"):
        init_app(model_class=dict)


def test_the_reference_module_level_server_is_the_newest_app(model_dir, apps):
    import label_studio_ml.api as api

    app = init_app(model_class=ReferenceModel)
    apps.append(app)
    assert api._server is app


def test_model_response_builds_prediction_values_from_dicts_and_ignores_unknown_keywords():
    response = ModelResponse(
        predictions=[{"result": [{"a": 1}], "score": 0.25, "extra": "dropped"}, [{"result": []}]],
        model_versions="a typo one reference example ships",
    )
    first = response.predictions[0]
    assert first.result == [{"a": 1}] and first.score == 0.25 and first.model_version is None
    assert isinstance(response.predictions[1], list) and response.predictions[1][0].result == []
    response.set_version("v3")
    dumped = response.model_dump()
    assert dumped["model_version"] == "v3"
    assert dumped["predictions"][0] == {"result": [{"a": 1}], "score": 0.25, "model_version": "v3"}


# ---- model versions -----------------------------------------------------------


def test_a_named_version_is_served_until_a_version_is_published_and_kept_per_project():
    state = MemoryState()
    from lsml.model import BuildContext, build_model

    settings = Settings.from_env(env={})

    class Named(LabelStudioMLBase):
        def setup(self):
            if not self.own_model_version:
                self.set("model_version", "1.2.3")

    model = build_model(Named, "5", None, BuildContext(settings, state))
    assert model.model_version == model.get("model_version") == "1.2.3"
    assert model.bump_model_version() == "1.3.0"
    again = build_model(Named, "5", None, BuildContext(settings, state))  # another process, same state
    assert again.model_version == "1.3.0" and again.own_model_version == "1.3.0"
    other = build_model(Named, "6", None, BuildContext(settings, state))
    assert other.model_version == "1.2.3"


@pytest.mark.parametrize(
    "name, bumped",
    [("0.0.1", "0.1.0"), ("MyModel-v0.0.1", "MyModel-v0.1.0"), ("2.9.4", "2.10.0"), ("v7", "v8"), ("yolo", "yolo-1")],
)
def test_bump_model_version_bumps_the_minor_part_of_the_models_own_name(name, bumped):
    assert bumped_version_name(name) == bumped


def test_a_published_version_records_the_models_own_name(tmp_path):
    settings = Settings.from_env(env={}, backend_dir=tmp_path).replace(model_dir=tmp_path / "models")
    out = run_training(
        ReferenceModel, TrainingRequest(project="3", event="START_TRAINING", payload={}, label_config=CONFIG), settings
    )
    assert out["published"] and out["model_version"] == "v1"
    assert make_store(settings).current("3").metadata["own_version"] == "ReferenceModel-v0.1.0"


# ---- preload_task_data and get_local_path ---------------------------------------------


class RecordingPaths(LabelStudioMLBase):
    """A model with its own get_local_path (a model may override it): records the calls, returns a real file."""

    def setup(self):
        self.calls: list[dict] = []

    def get_local_path(self, url, project_dir=None, ls_host=None, ls_access_token=None, task_id=None, **kwargs):
        self.calls.append({"url": url, "task_id": task_id})
        path = Path(self.settings.model_dir) / "body.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("body")
        return str(path)


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/test/1.jpg",
        "gs://bucket/test/1.jpg",
        "azure-blob://bucket/test/1.jpg",
        "/data/local-files?d=test",
        "/upload/123.jpg",
        "upload/1/x.txt",
    ],
)
def test_preload_reads_storage_uris_and_label_studio_paths_through_get_local_path(url, tmp_path):
    settings = Settings.from_env(env={}, backend_dir=tmp_path).replace(model_dir=tmp_path / "m")
    from lsml.model import BuildContext, build_model

    model = build_model(RecordingPaths, "1", None, BuildContext(settings, MemoryState()))
    task = {"id": 9, "data": {"root": {"url": url, "urls": [url, url], "text": "this is text"}, "n": 3, "none": None}}
    assert model.preload_task_data(task, value=json.loads(json.dumps(task["data"]))) == {
        "root": {"url": "body", "urls": ["body", "body"], "text": "this is text"},
        "n": 3,
        "none": None,
    }
    assert model.calls == [{"url": url, "task_id": 9}] * 3


def test_preload_keeps_text_that_names_an_existing_file_and_an_explicit_none(tmp_path):
    settings = Settings.from_env(env={}, backend_dir=tmp_path).replace(model_dir=tmp_path / "m")
    from lsml.model import BuildContext, build_model

    model = build_model(RecordingPaths, "1", None, BuildContext(settings, MemoryState()))
    existing = str(tmp_path)
    assert model.preload_task_data({"id": 1, "data": {}}, existing) == existing  # text, not a file to read
    assert model.preload_task_data({"id": 1, "data": {"text": "x"}}, None) is None  # the reference's answer
    assert model.preload_task_data({"id": 1, "data": {"text": "x"}}) == {"text": "x"}  # lsml's default
    assert model.calls == []


def test_an_uploaded_files_path_is_fetched_from_label_studios_data_upload(tmp_path, http_recorder):
    from tests.fixtures.http_recorder import Answer

    label_studio = http_recorder()
    label_studio.routes["/data/upload/1/x.txt"] = Answer(200, b"uploaded text", {"Content-Type": "text/plain"})
    settings = Settings.from_env(
        env={"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": "token"}, backend_dir=tmp_path
    ).replace(model_dir=tmp_path / "m")
    from lsml.model import BuildContext, build_model

    model = build_model(LabelStudioMLBase, "1", None, BuildContext(settings, MemoryState()))
    assert model.preload_task_data({"id": 4, "data": {"doc": "upload/1/x.txt"}}) == {"doc": "uploaded text"}
    assert [r.path for r in label_studio.requests] == ["/data/upload/1/x.txt"]


# ---- utils, cache, exceptions -------------------------------------------------------


def test_utils_helpers_answer_as_the_references_do(tmp_path):
    from PIL import Image

    from label_studio_ml import utils
    from lsml.label_config import LabelConfigError, parse_config

    parsed = parse_config(CONFIG)
    assert utils.get_single_tag_keys(parsed, "Choices", "Text") == (
        "sentiment",
        "text",
        "text",
        ["Positive", "Negative"],
    )
    with pytest.raises(LabelConfigError, match="RectangleLabels"):
        utils.get_single_tag_keys(parsed, "RectangleLabels", "Image")
    assert utils.get_first_tag_keys(parsed, "Choices", "Text")[0] == "sentiment"
    assert utils.get_first_tag_keys(parsed, "Labels", "Text") == (None, None)
    assert utils.match_labels("positve\nnegatve", ["Positive", "Negative"]) == ["Positive", "Negative"]
    assert utils.is_skipped({"annotations": [{"was_cancelled": True}]})
    assert not utils.is_skipped({"annotations": [{"result": []}]})
    task = {"annotations": [{"result": [{"value": {"choices": ["Positive"]}}]}]}
    assert utils.get_choice(task) == "Positive"
    assert utils.is_valid_url("https://host/x") and not utils.is_valid_url("/data/upload/x")
    assert utils.is_preload_needed("s3://b/k") and not utils.is_preload_needed("plain text")
    assert utils.DATA_UNDEFINED_NAME == "$undefined$"
    cache = utils.InMemoryLRUDictCache(capacity=2)
    cache.put("a", 1), cache.put("b", 2), cache.get("a"), cache.put("c", 3)
    assert "a" in cache and "b" not in cache and cache.get("c") == 3
    utils.compare_nested_structures({"x": [1.00001, "s"]}, {"x": [1.0, "s"]})
    with pytest.raises(AssertionError, match="Mismatch at .x"):
        utils.compare_nested_structures({"x": 1.1}, {"x": 1.0})
    # a portrait photo stored sideways (EXIF orientation 6): the size as displayed
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 10)).save(tmp_path / "sideways.jpg", exif=exif.tobytes())
    assert utils.get_image_size(str(tmp_path / "sideways.jpg")) == (10, 40)


def test_the_reference_cache_is_lsmls_state_under_model_dir(tmp_path):
    from label_studio_ml.cache import create_cache
    from lsml.model import BuildContext, build_model
    from lsml.state import make_state

    settings = Settings.from_env(env={}, backend_dir=tmp_path).replace(model_dir=tmp_path / "m")
    model = build_model(LabelStudioMLBase, "2", None, BuildContext(settings, make_state(settings)))
    model.set("threshold", 0.4)
    cache = create_cache("sqlite", str(tmp_path / "m"))
    assert cache["2", "threshold"] == 0.4
    cache["2", "labels"] = "a,b"
    assert model.get("labels") == "a,b" and ("2", "labels") in cache
    del cache["2", "labels"]
    assert not model.has("labels")
    with pytest.raises(ValueError, match="unsupported cache type"):
        create_cache("memcached", "x")


def test_an_answer_exception_is_answered_as_json_with_its_status(model_dir, apps):
    from label_studio_ml.exceptions import AnswerException

    class Refusing(LabelStudioMLBase):
        def predict(self, tasks, context=None, **kwargs):
            raise AnswerException(422, "no such labels")

    app = init_app(model_class=Refusing)
    apps.append(app)
    r = app.test_client().post("/predict", json={"tasks": [{"data": {}}], "project": "1", "label_config": CONFIG})
    assert r.status_code == 422 and r.json == {"error": "answer", "message": "no such labels"}
