"""label-studio-sdk interop (lsml.sdk): the SDK's objects with the `sdk` extra, lsml's stand-ins without it.

The dev extras install the SDK, so the "without" half runs in a fresh interpreter whose first act is
to swap the path finder on `sys.meta_path` for one that does not see `label_studio_sdk` (as if it were
not installed): lsml caches what it imported, and uninstalling a package under a running test suite
is no option.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse
from lsml.model import BuildContext, build_model
from lsml.response import serialize_predictions
from lsml.settings import Settings
from lsml.state import MemoryState

sdk_objects = pytest.importorskip("label_studio_sdk.label_interface.objects", reason="the dev extras install it")
from label_studio_sdk.label_interface import LabelInterface as SdkLabelInterface  # noqa: E402

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="label" toName="text"><Label value="ORG"/><Label value="PER"/></Labels>
</View>"""


class SdkValues(LabelStudioMLBase):
    """Answers with the SDK's PredictionValue, found through the SDK's LabelInterface (what reference examples do)."""

    def predict(self, tasks, context=None, **kwargs):
        control = self.label_interface.get_control("label")
        return ModelResponse(
            predictions=[
                sdk_objects.PredictionValue(
                    result=[{"from_name": control.name, "to_name": control.to_name[0], "type": "labels", "value": {}}],
                    score=0.9,
                )
                for _ in tasks
            ]
        )


def _model(cls, state=None, config=CONFIG):
    return build_model(cls, "1", config, BuildContext(Settings.from_env(env={}), state or MemoryState()))


def test_with_the_sdk_the_label_interface_is_the_sdks_own(monkeypatch):
    monkeypatch.delenv("LSML_LABEL_INTERFACE", raising=False)
    model = _model(LabelStudioMLBase)
    assert isinstance(model.label_interface, SdkLabelInterface)
    assert [t.name for t in model.label_interface.find_tags_by_class(type(model.label_interface.get_control("label")))]
    assert model.get_first_tag_occurence("Labels", "Text") == ("label", "text", "text")


def test_lsml_label_interface_standin_keeps_the_standin_with_the_sdk_installed(monkeypatch):
    from lsml.label_config import LabelInterface as StandIn

    monkeypatch.setenv("LSML_LABEL_INTERFACE", "standin")
    assert isinstance(_model(LabelStudioMLBase).label_interface, StandIn)


def test_sdk_prediction_values_are_served_and_versioned_like_lsmls(serve_app):
    client = serve_app(SdkValues)
    r = client.post(
        "/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "1", "label_config": CONFIG}
    )
    assert r.status_code == 200, r.json
    (prediction,) = r.json["results"]
    assert prediction["score"] == 0.9 and prediction["model_version"] == r.json["model_version"]
    assert prediction["result"][0]["from_name"] == "label"


def test_a_model_response_of_sdk_values_updates_their_versions_in_place():
    values = [
        sdk_objects.PredictionValue(result=[], score=0.1),
        sdk_objects.PredictionValue(result=[], model_version="m"),
    ]
    response = ModelResponse(predictions=[values[0], [values[1]]])
    response.set_version("v2")
    assert values[0].model_version == "v2" and values[1].model_version == "m"
    assert serialize_predictions(response, "ignored") == [
        {"model_version": "v2", "score": 0.1, "result": []},
        [{"model_version": "m", "score": 0.0, "result": []}],
    ]


def test_dicts_in_a_model_response_become_sdk_prediction_values():
    response = ModelResponse(predictions=[{"result": [{"a": 1}], "score": 0.5}])
    assert isinstance(response.predictions[0], sdk_objects.PredictionValue)


def test_a_foreign_response_object_with_predictions_and_a_version_is_served():
    """label-studio-ml-backend's own (pydantic) ModelResponse, or any object shaped like it."""

    class Foreign:
        def __init__(self):
            self.predictions = [sdk_objects.PredictionValue(result=[{"x": 1}], score=0.3)]
            self.model_version = "theirs"

    assert serialize_predictions(Foreign(), "v1") == [{"model_version": "theirs", "score": 0.3, "result": [{"x": 1}]}]


WITHOUT_SDK = textwrap.dedent(
    """
    import importlib.machinery, json, sys

    class PathFinderWithoutSdk(importlib.machinery.PathFinder):
        @classmethod
        def find_spec(cls, fullname, path=None, target=None):
            if fullname == "label_studio_sdk" or fullname.startswith("label_studio_sdk."):
                return None
            return super().find_spec(fullname, path, target)

    sys.meta_path[:] = [PathFinderWithoutSdk if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
    out = {}
    try:
        import label_studio_sdk  # noqa: F401
    except ModuleNotFoundError as exc:
        out["plain_error"] = str(exc)

    from lsml import sdk
    from lsml.label_config import LabelInterface as StandIn
    from lsml.response import PredictionValue
    from lsml.settings import Settings
    from lsml.state import MemoryState
    from lsml.model import BuildContext, build_model
    from label_studio_ml.model import LabelStudioMLBase
    from label_studio_ml.response import ModelResponse

    config = sys.argv[1]
    model = build_model(LabelStudioMLBase, "1", config, BuildContext(Settings.from_env(env={}), MemoryState()))
    out.update({"available": sdk.available(), "standin": isinstance(model.label_interface, StandIn),
                "first": list(model.get_first_tag_occurence("Labels", "Text")),
                "labels": model.label_interface.get_control("label").labels})
    try:
        model.label_interface.find_tags_by_class(object)
    except AttributeError as exc:
        out["beyond"] = str(exc)
    try:
        model.label_interface.get_control("label").attr
    except AttributeError as exc:
        out["tag_beyond"] = str(exc)
    response = ModelResponse(predictions=[{"result": [], "score": 0.5, "extra": 1}])
    out["value_class"] = type(response.predictions[0]).__module__ + "." + type(response.predictions[0]).__name__
    out["dumped"] = response.model_dump()
    try:  # what a reference model.py does first
        from label_studio_sdk.label_interface.objects import PredictionValue as SdkValue  # noqa: F401
    except ModuleNotFoundError as exc:
        out["hinted_error"] = str(exc)
    print(json.dumps(out))
    """
)


def test_without_the_sdk_the_standin_answers_and_anything_more_names_the_extra():
    done = subprocess.run([sys.executable, "-c", WITHOUT_SDK, CONFIG], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["plain_error"] == "No module named 'label_studio_sdk'"  # the SDK is out of sight
    assert (
        "pip install 'lsml[sdk]'" in out["hinted_error"]
    )  # once label_studio_ml is imported, the error names the extra
    assert out["available"] is False and out["standin"] is True
    assert out["first"] == ["label", "text", "text"] and out["labels"] == ["ORG", "PER"]
    assert "pip install 'lsml[sdk]'" in out["beyond"] and "find_tags_by_class" in out["beyond"]
    assert "pip install 'lsml[sdk]'" in out["tag_beyond"]
    assert out["value_class"] == "lsml.response.PredictionValue"
    assert out["dumped"] == {
        "model_version": None,
        "predictions": [{"result": [], "score": 0.5, "model_version": None}],
    }


@pytest.fixture
def serve_app(tmp_path):
    """An lsml app for a model class, its queue closed afterwards."""
    from lsml.server.app import create_app

    made = []

    def _serve(cls):
        settings = Settings.from_env(env={}, backend_dir=tmp_path).replace(model_dir=tmp_path / "models")
        app = create_app(cls, settings)
        made.append(app)
        return app.test_client()

    yield _serve
    for app in made:
        close = getattr(app.extensions["lsml"].queue, "close", None)
        if close:
            close()
