"""examples/image_classifier end to end at the model level: real PNG files, training, predictions, scores."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from lsml.model import BuildContext, build_model
from lsml.settings import Settings
from lsml.state import make_state
from lsml.store import make_store
from lsml.training.job import run_training
from lsml.training.queue import TrainingRequest

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "image_classifier"
CONFIG = (EXAMPLE / "label_config.xml").read_text()
N_TRAIN, N_TEST = 120, 150


def load(name: str, filename: str):
    """Import an example file under a unique module name (every backend has a `model.py`)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / filename)
    if spec is None or spec.loader is None:
        pytest.fail(f"cannot import {EXAMPLE / filename}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


model_module = load("lsml_example_image_classifier_model", "model.py")
make_dataset = load("lsml_example_image_classifier_make_dataset", "make_dataset.py")
ImageClassifier = model_module.ImageClassifier


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """PNG files written by make_dataset.py, as tasks with ids and the true digit of each."""
    out = tmp_path_factory.mktemp("digits")
    tasks = make_dataset.make_dataset(out, n=N_TRAIN + N_TEST, url_prefix="")
    truth = json.loads((out / "labels.json").read_text())
    for i, task in enumerate(tasks):
        task["id"] = i + 1
        task["truth"] = truth[Path(task["data"]["image"]).name]
    return out, tasks


def annotated(task: dict) -> dict:
    result = [{"from_name": "digit", "to_name": "image", "type": "choices", "value": {"choices": [task["truth"]]}}]
    return {"id": task["id"], "data": task["data"], "annotations": [{"id": 1000 + task["id"], "result": result}]}


def settings_for(tmp_path: Path, **changes) -> Settings:
    # the tasks name local PNGs (digits fixture, tmp_path): allow this session's temp dir, where both live;
    # no held-out split: these tests count what the fit trained on (the split has tests of its own)
    changes = {"holdout_fraction": 0.0, **changes}
    return Settings.from_env(env={}, backend_dir=EXAMPLE).replace(
        model_dir=tmp_path / "models", local_files_roots=[tmp_path.parent], **changes
    )


def model_for(settings: Settings) -> ImageClassifier:
    current = make_store(settings).current("1")
    return build_model(ImageClassifier, "1", CONFIG, BuildContext(settings, make_state(settings), current))


def test_make_dataset_writes_pngs_of_the_real_digits(digits):
    out, tasks = digits
    assert len(list(out.glob("*.png"))) == N_TRAIN + N_TEST
    data = load_digits()
    flat = data.images.reshape(len(data.images), -1)
    for task in tasks[:10]:
        features = np.array(model_module.image_features(task["data"]["image"]))
        index = int(np.abs(flat - features * 16).sum(axis=1).argmin())  # the source digit, found by its pixels
        assert np.abs(flat[index] - features * 16).max() < 0.05
        assert str(data.target[index]) == task["truth"]


def test_make_dataset_rejects_a_bad_count(tmp_path):
    with pytest.raises(ValueError, match="n must be >= 1"):
        make_dataset.make_dataset(tmp_path, n=0)


def test_trains_on_annotated_pngs_and_scores_uncertain_tasks_low(digits, tmp_path):
    _, tasks = digits
    settings = settings_for(tmp_path, score_strategy="margin")
    untrained = model_for(settings)
    assert untrained.predict(tasks[:2]) == [[], []]  # no prediction: Label Studio stores nothing

    request = TrainingRequest("1", "START_TRAINING", {"annotations": [annotated(t) for t in tasks[:N_TRAIN]]}, CONFIG)
    trained = run_training(ImageClassifier, request, settings)
    assert trained["published"] and trained["result"]["examples"] == N_TRAIN

    model = model_for(settings)
    held_out = tasks[N_TRAIN:]
    predictions = model.predict(held_out)
    assert len(predictions) == N_TEST
    right, wrong = [], []
    for task, prediction in zip(held_out, predictions, strict=True):
        item = prediction["result"][0]
        probs = item["probabilities"]
        assert set(probs) == {str(d) for d in range(10)}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        best = max(probs, key=probs.get)
        assert item["value"]["choices"] == [best]
        top = sorted(probs.values(), reverse=True)
        assert prediction["score"] == pytest.approx(top[0] - top[1], abs=1e-4)  # margin: low = uncertain
        (right if best == task["truth"] else wrong).append(prediction["score"])
    assert len(right) / N_TEST > 0.75
    assert wrong, "expected a few mistakes from 120 training images"
    # The orientation that matters: mistakes (what a person should look at) score lower on average.
    assert np.mean(wrong) < np.mean(right)


def test_strategy_comes_from_lsml_score_strategy(digits, tmp_path):
    _, tasks = digits
    settings = settings_for(tmp_path)
    request = TrainingRequest("1", "START_TRAINING", {"annotations": [annotated(t) for t in tasks[:60]]}, CONFIG)
    run_training(ImageClassifier, request, settings)
    env_settings = Settings.from_env(env={"LSML_SCORE_STRATEGY": "entropy"}, backend_dir=EXAMPLE).replace(
        model_dir=settings.model_dir, local_files_roots=settings.local_files_roots
    )
    prediction = model_for(env_settings).predict([tasks[-1]])[0]
    p = np.array(list(prediction["result"][0]["probabilities"].values()))
    p = p[p > 0] / p.sum()
    assert prediction["score"] == pytest.approx(1 + (p * np.log(p)).sum() / np.log(10), abs=1e-4)
    default = model_for(settings).predict([tasks[-1]])[0]  # default strategy of this example: margin
    top = sorted(default["result"][0]["probabilities"].values(), reverse=True)
    assert default["score"] == pytest.approx(top[0] - top[1], abs=1e-4)
    with pytest.raises(ValueError, match="LSML_SCORE_STRATEGY: unknown score strategy 'bogus'"):
        model_for(settings.replace(score_strategy="bogus"))


def test_annotation_events_extend_the_training_set(digits, tmp_path):
    _, tasks = digits
    settings = settings_for(tmp_path)
    first = [annotated(t) for t in tasks[:20]]
    run_training(ImageClassifier, TrainingRequest("1", "START_TRAINING", {"annotations": first}, CONFIG), settings)
    new = annotated(tasks[30])
    event = {"task": {"id": new["id"], "data": new["data"]}, "annotation": new["annotations"][0]}
    result = run_training(ImageClassifier, TrainingRequest("1", "ANNOTATION_CREATED", event, CONFIG), settings)
    assert result["published"] and result["result"]["examples"] == 21
    assert model_for(settings).model_version == result["model_version"]


def test_unreadable_image_gets_no_prediction_not_a_failed_batch(digits, tmp_path):
    _, tasks = digits
    settings = settings_for(tmp_path)
    run_training(
        ImageClassifier,
        TrainingRequest("1", "START_TRAINING", {"annotations": [annotated(t) for t in tasks[:40]]}, CONFIG),
        settings,
    )
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = model_for(settings).predict([tasks[-1], {"id": 999, "data": {"image": str(broken)}}])
    assert out[0]["result"] and "score" in out[0]
    assert out[1] == []
