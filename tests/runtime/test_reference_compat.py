"""A model written for label-studio-ml-backend runs on lsml after changing its imports.

`REFERENCE_STYLE_MODEL` follows the shape of label-studio-ml-backend's
scikit-learn text classifier example: class attributes read from env vars,
`setup` naming the model version with `self.set("model_version", ...)`, a
module-global pipeline loaded lazily from `MODEL_DIR/model.pkl`,
`self.label_interface.get_first_tag_occurence(...)` and `get_tag(...).labels`,
numpy scores, `ModelResponse` of plain dicts, `self.get("model_version")`,
and a `fit` that checks the event, reads `data["annotation"]["project"]`,
retrains and pickles into `MODEL_DIR`. Only the `label_studio_ml` imports are
changed to `lsml`; `_get_tasks` reads a JSON file where the reference calls
`label_studio_sdk.Client` (the SDK is not a dependency of lsml).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.fixtures.apps import TEXT_CONFIG
from tests.fixtures.polling import wait_for

REFERENCE_STYLE_MODEL = """
import os
import json
import logging
import pickle
import numpy as np

from typing import List, Dict, Optional
from lsml.model import LabelStudioMLBase          # was: from label_studio_ml.model import LabelStudioMLBase
from lsml.response import ModelResponse           # was: from label_studio_ml.response import ModelResponse
from lsml.label_config import DATA_UNDEFINED_NAME  # was: from label_studio_ml.utils import DATA_UNDEFINED_NAME
from sklearn.linear_model import LogisticRegression
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline, Pipeline

logger = logging.getLogger(__name__)

_model: Optional[Pipeline] = None


class ReferenceStyleClassifier(LabelStudioMLBase):
    C = float(os.getenv("LOGISTIC_REGRESSION_C", 10))
    START_TRAINING_EACH_N_UPDATES = int(os.getenv("START_TRAINING_EACH_N_UPDATES", 10))
    MODEL_DIR = os.getenv("MODEL_DIR", ".")

    def setup(self):
        self.set("model_version", f"{self.__class__.__name__}-v0.0.1")

    def get_model(self, blank=False):
        global _model
        if _model is not None:
            return _model
        model_path = os.path.join(self.MODEL_DIR, "model.pkl")
        if not os.path.exists(model_path) or blank:
            _model = make_pipeline(TfidfVectorizer(), LogisticRegression(C=self.C))
            config = self.get_label_studio_parameters()
            _model.fit(X=config["labels"], y=list(range(len(config["labels"]))))
        else:
            with open(model_path, "rb") as f:
                _model = pickle.load(f)
        return _model

    def get_label_studio_parameters(self) -> Dict:
        from_name, to_name, value = self.label_interface.get_first_tag_occurence("Choices", "Text")
        labels = sorted(self.label_interface.get_tag(from_name).labels)
        return {"from_name": from_name, "to_name": to_name, "value": value, "labels": labels}

    def predict(self, tasks: List[Dict], context: Optional[Dict] = None, **kwargs) -> ModelResponse:
        model = self.get_model()
        config = self.get_label_studio_parameters()
        texts = [t["data"].get(config["value"]) or t["data"].get(DATA_UNDEFINED_NAME) for t in tasks]
        probabilities = model.predict_proba(texts)
        best = np.argmax(probabilities, axis=1)
        scores = probabilities[np.arange(len(best)), best].astype(np.float32)
        predictions = []
        for idx, score in zip(best, scores):
            result = [{"from_name": config["from_name"], "to_name": config["to_name"], "type": "choices",
                       "value": {"choices": [config["labels"][idx]]}}]
            predictions.append({"result": result, "score": score, "model_version": self.get("model_version")})
        return ModelResponse(predictions=predictions, model_version=self.get("model_version"))

    def _get_tasks(self, project_id: int) -> List[Dict]:
        # the reference: label_studio_sdk.Client(HOST, KEY).get_project(id=project_id).get_labeled_tasks()
        with open(os.path.join(self.MODEL_DIR, f"labeled-{project_id}.json")) as f:
            return json.load(f)

    def fit(self, event, data, **kwargs):
        if event not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "START_TRAINING"):
            return
        project_id = data["annotation"]["project"]
        tasks = self._get_tasks(project_id)
        config = self.get_label_studio_parameters()
        if len(tasks) % self.START_TRAINING_EACH_N_UPDATES != 0 and event != "START_TRAINING":
            return
        label2idx = {l: i for i, l in enumerate(config["labels"])}
        texts, targets = [], []
        for task in tasks:
            for annotation in task["annotations"]:
                if not annotation.get("result") or annotation.get("was_cancelled"):
                    continue
                texts.append(task["data"][config["value"]])
                targets.append(label2idx[annotation["result"][0]["value"]["choices"][0]])
        model = self.get_model(blank=True)
        model.fit(texts, targets)
        with open(os.path.join(self.MODEL_DIR, "model.pkl"), "wb") as f:
            pickle.dump(model, f)
        global _model
        _model = None
        self.get_model()
"""

POSITIVE = ["great movie", "good fun", "lovely and nice", "wonderful acting", "great great fun"]
NEGATIVE = ["bad movie", "awful plot", "terrible acting", "boring and bad", "awful awful plot"]


def labeled_tasks() -> list[dict]:
    rows = [(t, "Positive") for t in POSITIVE] + [(t, "Negative") for t in NEGATIVE]
    return [
        {
            "id": i,
            "data": {"text": text},
            "annotations": [
                {
                    "id": 100 + i,
                    "result": [
                        {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                    ],
                }
            ],
        }
        for i, (text, label) in enumerate(rows)
    ]


def test_a_reference_style_model_serves_and_trains_after_changing_only_its_imports(
    serve, settings, tmp_path, monkeypatch
):
    backend = tmp_path / "backend"
    backend.mkdir()
    (backend / "reference_style_model.py").write_text(REFERENCE_STYLE_MODEL)
    model_dir = tmp_path / "reference-model-dir"
    model_dir.mkdir()
    (model_dir / "labeled-1.json").write_text(json.dumps(labeled_tasks()))
    monkeypatch.setenv("MODEL_DIR", str(model_dir))  # the reference reads it at import time
    monkeypatch.setenv("START_TRAINING_EACH_N_UPDATES", "1")
    _, client = serve("reference_style_model:ReferenceStyleClassifier", backend_dir=backend)

    assert client.post("/setup", json={"project": "1.1", "schema": TEXT_CONFIG}).status_code == 200
    tasks = [{"id": 1, "data": {"text": "great and lovely fun"}}, {"id": 2, "data": {"text": "awful boring plot"}}]
    r = client.post("/predict", json={"tasks": tasks, "project": "1.1", "label_config": TEXT_CONFIG})
    assert r.status_code == 200, r.json
    untrained = r.json
    assert untrained["model_version"] == "ReferenceStyleClassifier-v0.0.1"  # what setup() set
    assert len(untrained["results"]) == 2
    for item in untrained["results"]:
        assert item["result"][0]["from_name"] == "sentiment" and item["result"][0]["to_name"] == "text"
        assert item["result"][0]["value"]["choices"][0] in ("Positive", "Negative")
        assert isinstance(item["score"], float)  # a numpy float32 arrived as a JSON number

    annotation = labeled_tasks()[0]["annotations"][0]
    r = client.post(
        "/webhook",
        json={
            "action": "ANNOTATION_CREATED",
            "project": {"id": 1},
            "task": labeled_tasks()[0],
            "annotation": {**annotation, "project": 1},
        },
    )
    assert r.status_code == 201, r.json

    body = wait_for(
        lambda: client.post("/predict", json={"tasks": tasks, "project": "1.1"}).json,
        60,
        0.2,
        what="predictions from v1",
        until=lambda body: body.get("model_version") == "v1",
    )
    assert (model_dir / "model.pkl").exists()
    assert [item["result"][0]["value"]["choices"][0] for item in body["results"]] == ["Positive", "Negative"]
    assert all(item["model_version"] == "v1" and 0.5 < item["score"] <= 1 for item in body["results"])


SDK_SCRIPT = """
import json, sys
from label_studio_sdk._extensions.label_studio_tools.core.label_config import parse_config
from label_studio_sdk.label_interface import LabelInterface
config = sys.stdin.read()
li = LabelInterface(config=config)
print(json.dumps({"parsed": parse_config(config),
                  "first": list(li.get_first_tag_occurence("Choices", "Text")),
                  "labels": sorted(li.get_tag("sentiment").labels)}))
"""

SDK_CONFIG = """<View>
  <Header value="Rate it"/>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/>
    <Choice value="Negative" predicted_values="neg,bad"/>
  </Choices>
  <Image name="img" value="$image"/>
  <RectangleLabels name="box" toName="img">
    <Label value="Car" background="blue"/><Label value="Person"/>
  </RectangleLabels>
</View>"""


def _sdk_python() -> Path:
    from tests.fixtures.label_studio import find_label_studio_binary

    python = find_label_studio_binary().parent / "python"
    assert python.exists(), f"Label Studio's interpreter (with label-studio-sdk) is missing: {python}"
    return python


def test_parsed_label_config_and_tag_helpers_match_label_studio_sdk():
    """The SDK that ships with Label Studio is the authority for parsed_label_config's shape."""
    from lsml.label_config import LabelInterface, parse_config

    done = subprocess.run(
        [str(_sdk_python()), "-c", SDK_SCRIPT], input=SDK_CONFIG, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sdk = json.loads(done.stdout.strip().splitlines()[-1])
    ours = json.loads(json.dumps(parse_config(SDK_CONFIG)))
    assert ours == sdk["parsed"]
    li = LabelInterface(SDK_CONFIG)
    assert list(li.get_first_tag_occurence("Choices", "Text")) == sdk["first"]
    assert sorted(li.get_tag("sentiment").labels) == sdk["labels"]
    assert li.get_tag("img").value == "image" and li.get_object("text").tag == "Text"
